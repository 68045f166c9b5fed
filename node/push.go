package node

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/hashfed/hashfed/consortium"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"github.com/hashfed/hashfed/store"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
)

// Push: the moment a node holds a new checkpoint verified (it signed its own log, or stored a
// range of another's up to the checkpoint), it pushes the checkpoint, with the entries since its
// previous push of that log when they are few, to a few peers over the peer API; a peer that
// stores it pushes on. This is the eager half of an epidemic broadcast tree (Plumtree): the tree
// for a log is a k-ary tree over the roster's member ids, sorted and rotated to start at the log's
// author, which every node computes alike from the verified roster without exchanging a message.
// A child that is down or does not answer is replaced by its own children, so one dead node does
// not cut off its subtree. The lazy half is what was there before: gossip of the checkpoint
// (memberlist), which makes a node that missed the push fetch the range, and anti-entropy.
//
// Nothing pushed is trusted: the checkpoint is verified against the roster keys, the entries
// against the checkpoint's root, before anything is stored; a node pushes on only what it stored
// (see [Node.verified]), so it never relays what it did not verify. A checkpoint that contradicts
// the stored log is equivocation evidence, as from any other source.

const (
	// maxPushEntries and maxPushBytes bound the entries one push carries; a larger range travels
	// as a checkpoint alone, and the receiver fetches it from the sender.
	maxPushEntries = 256
	maxPushBytes   = 256 << 10
	// maxPeerRequest bounds every request the peer API receives (a push at most maxPushBytes of
	// entries, a head vector of maxHeads logs): what a flood of calls can make the node hold.
	maxPeerRequest = 2 << 20
	// pushInflight bounds the pushes a node handles at once; more are refused before their
	// message is read. pushOutflight bounds the pushes a node sends at once; more are left to
	// gossip.
	pushInflight  = 16
	pushOutflight = 64
	// pushTimeout bounds one push call.
	pushTimeout = 2 * time.Second
)

const pushMethod = "/hashfed.v1.PeerService/Push"

// refPushRefused counts pushes refused: too large, too many at once, a checkpoint that does not
// verify, entries that do not match it.
const refPushRefused = "push_refused"

// pushState is the node's push bookkeeping.
type pushState struct {
	in, out chan struct{}
	mu      sync.Mutex
	// pushed holds, per log (members ever on the roster only), the size of the last checkpoint
	// this node pushed on.
	pushed map[string]uint64
	// cosigned holds, per log, when this node last cosigned it, cosignDue the logs whose
	// cosignature waits (see cosignSoon), and cosignNow those whose wait is over.
	cosigned  map[string]time.Time
	cosignDue map[string]bool
	cosignNow map[string]bool
	sent      *prometheus.CounterVec
	recv      *prometheus.CounterVec
	// stage times the steps of propagation (see initPush).
	stage *prometheus.HistogramVec
}

func (n *Node) initPush() {
	n.push = pushState{
		in:        make(chan struct{}, pushInflight),
		out:       make(chan struct{}, pushOutflight),
		pushed:    map[string]uint64{},
		cosigned:  map[string]time.Time{},
		cosignDue: map[string]bool{},
		cosignNow: map[string]bool{},
		sent:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hashfed_push_sent_total", Help: "Checkpoint pushes sent to peers, by outcome (ok, cosigned: a cosigned head handed to its author, error, skipped when too many were in flight)."}, []string{"outcome"}),
		recv:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hashfed_push_received_total", Help: "Checkpoint pushes received, by outcome (stored, known, fetching, evidence, refused)."}, []string{"outcome"}),
	}
	n.push.stage = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "hashfed_push_stage_seconds",
		Help:    "Propagation steps: sign (own checkpoint signed after the log grew, from the signer's wake-up), call (a push sent, to the peer's answer), verified and stored (a push received, from its arrival to its range verified and relayed, and to its range stored and applied).",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	}, []string{"stage"})
	n.metrics.registry.MustRegister(n.push.sent, n.push.recv, n.push.stage)
}

// pushTap refuses a push before its message is read when the node already handles pushInflight.
func (n *Node) pushTap(ctx context.Context, info *tap.Info) (context.Context, error) {
	if info.FullMethodName == pushMethod && len(n.push.in) >= cap(n.push.in) {
		n.push.recv.WithLabelValues("refused").Inc()
		n.metrics.refused.WithLabelValues(refPushRefused).Inc()
		return nil, status.Errorf(codes.ResourceExhausted, "too many pushes in flight (limit %d); the checkpoint also travels by gossip", pushInflight)
	}
	return ctx, nil
}

func (s *peerServer) Push(ctx context.Context, req *pb.PushRequest) (*pb.PushResponse, error) {
	return s.n.takePush(ctx, caller(ctx), req)
}

// takePush verifies and stores a pushed checkpoint (and its entries), then pushes it on.
func (n *Node) takePush(ctx context.Context, from string, req *pb.PushRequest) (*pb.PushResponse, error) {
	t0 := time.Now()
	select {
	case n.push.in <- struct{}{}:
		defer func() { <-n.push.in }()
	default:
		return nil, n.refusePush(from, codes.ResourceExhausted, "too many pushes in flight (limit %d)", pushInflight)
	}
	bytes := 0
	for _, e := range req.Entries {
		bytes += len(e)
	}
	if len(req.Entries) > maxPushEntries || bytes > maxPushBytes {
		return nil, n.refusePush(from, codes.InvalidArgument, "push of %d entries (%d bytes), at most %d entries and %d bytes", len(req.Entries), bytes, maxPushEntries, maxPushBytes)
	}
	cp, err := n.openCheckpoint(req.Checkpoint)
	if err != nil {
		return nil, n.refusePush(from, codes.InvalidArgument, "pushed checkpoint: %v", err)
	}
	n.peerCalled(from, "")
	resp := func() (*pb.PushResponse, error) { return &pb.PushResponse{Size: n.store.Size(cp.Member)}, nil }
	if cp.Member == n.id || len(req.Entries) == 0 {
		// The own log is restored only through fetches (see restore.go); a checkpoint alone is
		// news to fetch from the sender.
		n.peerProved(from, cp.Member, cp.Size)
		if n.handleCheckpoint(cp, from) {
			n.push.recv.WithLabelValues("fetching").Inc()
		} else {
			n.push.recv.WithLabelValues("known").Inc()
		}
		return resp()
	}
	obs, ev, err := n.store.ObserveCheckpoint(cp)
	switch {
	case err != nil:
		n.log.Warn("pushed checkpoint", "log", cp.Member, "size", cp.Size, "peer", from, "err", err)
		return nil, n.refusePush(from, codes.FailedPrecondition, "pushed checkpoint of %s at size %d: %v", cp.Member, cp.Size, err)
	case obs == store.Equivocated:
		n.push.recv.WithLabelValues("evidence").Inc()
		n.takeEvidence(ev)
		return resp()
	case obs == store.Known:
		n.push.recv.WithLabelValues("known").Inc()
		return resp()
	}
	n.peerProved(from, cp.Member, cp.Size)
	have := n.store.Size(cp.Member)
	end := req.Start + uint64(len(req.Entries))
	if end != cp.Size {
		return nil, n.refusePush(from, codes.InvalidArgument, "pushed entries [%d, %d) of %s do not end at the checkpoint's size %d", req.Start, end, cp.Member, cp.Size)
	}
	if have >= end {
		// Stored meanwhile, by a fetch or another push.
		n.push.recv.WithLabelValues("known").Inc()
		return resp()
	}
	if req.Start > have {
		// A gap: the entries before start are fetched from the sender.
		n.push.recv.WithLabelValues("fetching").Inc()
		n.want(cp.Member, cp.Size, from)
		return resp()
	}
	fresh := req.Entries[have-req.Start:]
	// Pushed on as soon as verified, while this node writes and fsyncs it: verified before relayed
	// still holds, and each hop of the tree costs no disk write.
	relay := func() {
		n.push.stage.WithLabelValues("verified").Observe(time.Since(t0).Seconds())
		n.pushOnWith(cp, have, fresh)
	}
	err = n.store.AppendRangeRelay(cp, have, fresh, nil, relay)
	switch {
	case err == nil:
	case errors.Is(err, consortium.ErrRootMismatch):
		if n.checkFork(from, cp) {
			n.push.recv.WithLabelValues("evidence").Inc()
			return resp()
		}
		n.markBad(from, cp.Member)
		n.metrics.badRanges.WithLabelValues(from).Inc()
		return nil, n.refusePush(from, codes.InvalidArgument, "pushed entries of %s do not match the checkpoint at size %d: %v", cp.Member, cp.Size, err)
	case errors.Is(err, store.ErrGap):
		// Stored meanwhile (by a fetch or another push): fetch whatever is still missing.
		n.want(cp.Member, cp.Size, from)
		n.push.recv.WithLabelValues("known").Inc()
		return resp()
	default:
		n.log.Warn("store pushed range", "log", cp.Member, "peer", from, "err", err)
		return nil, status.Errorf(codes.Unavailable, "store pushed range of %s: %v", cp.Member, err)
	}
	n.push.recv.WithLabelValues("stored").Inc()
	n.noteKnown(cp.Member, cp.Size)
	n.metrics.replEntries.Add(float64(len(req.Entries) - int(have-req.Start)))
	n.push.stage.WithLabelValues("stored").Observe(time.Since(t0).Seconds())
	n.verified(cp.Member)
	return resp()
}

// refusePush counts and logs a refused push and returns its status error.
func (n *Node) refusePush(from string, code codes.Code, format string, a ...any) error {
	err := status.Errorf(code, format, a...)
	n.push.recv.WithLabelValues("refused").Inc()
	n.refused.refuse(refPushRefused, "push refused", "peer", from, "err", status.Convert(err).Message())
	return err
}

// pushOn pushes a checkpoint this node holds verified (with the range up to it stored) to its
// children in the log's push tree, once per checkpoint size.
func (n *Node) pushOn(cp *consortium.Checkpoint) { n.pushOnWith(cp, 0, nil) }

// pushOnWith is pushOn with the entries [freshStart, cp.Size) given, verified against cp but
// perhaps not stored yet; the entries before freshStart that the push carries are read from the
// store.
func (n *Node) pushOnWith(cp *consortium.Checkpoint, freshStart uint64, fresh [][]byte) {
	if n.cfg.PushFanout <= 0 || cp == nil {
		return
	}
	if fresh != nil && freshStart+uint64(len(fresh)) != cp.Size {
		fresh = nil
	}
	n.push.mu.Lock()
	prev, seen := n.push.pushed[cp.Member]
	if seen && cp.Size <= prev {
		n.push.mu.Unlock()
		return
	}
	n.push.pushed[cp.Member] = cp.Size
	n.push.mu.Unlock()
	if !seen {
		prev = cp.Size - min(cp.Size, maxPushEntries)
	}
	req := &pb.PushRequest{Checkpoint: cp.Note}
	if cp.Size-prev <= maxPushEntries {
		var es [][]byte
		var err error
		switch {
		case fresh != nil && prev >= freshStart:
			es = fresh[prev-freshStart:]
		case fresh != nil:
			es, err = n.store.Entries(cp.Member, prev, freshStart, maxPushBytes)
			es = append(es, fresh...)
		default:
			es, err = n.store.Entries(cp.Member, prev, cp.Size, maxPushBytes)
		}
		bytes := 0
		for _, e := range es {
			bytes += len(e)
		}
		if err == nil && uint64(len(es)) == cp.Size-prev && bytes <= maxPushBytes {
			req.Start, req.Entries = prev, es
		}
	}
	order := n.pushOrder(cp.Member)
	me := slices.Index(order, n.id)
	if me < 0 {
		return
	}
	for _, c := range pushChildren(me, len(order), n.cfg.PushFanout) {
		n.pushTo(order, c, req, 2)
	}
}

// pushOrder is the roster's member ids, sorted and rotated to start at author: the push tree of
// author's log, node i's children being i*k+1 … i*k+k.
func (n *Node) pushOrder(author string) []string {
	var ids []string
	n.store.View(func(s *consortium.State) {
		for _, m := range s.Roster().Members {
			ids = append(ids, m.ID)
		}
	})
	slices.Sort(ids)
	i, _ := slices.BinarySearch(ids, author)
	return append(ids[i:], ids[:i]...)
}

// pushChildren returns the positions of node i's children in a k-ary tree of size nodes.
func pushChildren(i, size, k int) []int {
	var out []int
	for c := i*k + 1; c <= i*k+k && c < size; c++ {
		out = append(out, c)
	}
	return out
}

// pushTo pushes req to the node at position i of order; when it is down, or does not take the
// push, to its children in turn (depth levels down at most).
func (n *Node) pushTo(order []string, i int, req *pb.PushRequest, depth int) {
	target := order[i]
	skip := func() {
		if depth > 0 {
			for _, c := range pushChildren(i, len(order), n.cfg.PushFanout) {
				n.pushTo(order, c, req, depth-1)
			}
		}
	}
	if target == n.id {
		return
	}
	if !n.peerUp(target) {
		skip()
		return
	}
	if !n.takePushSlot() {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		t0 := time.Now()
		err := n.pushCall(target, req)
		n.push.stage.WithLabelValues("call").Observe(time.Since(t0).Seconds())
		<-n.push.out
		if err != nil {
			n.push.sent.WithLabelValues("error").Inc()
			n.log.Debug("push", "peer", target, "err", err)
			if status.Code(err) != codes.ResourceExhausted {
				skip()
			}
			return
		}
		n.push.sent.WithLabelValues("ok").Inc()
	}()
}

// peerUp tells whether the peer with this id is known and usable now.
func (n *Node) peerUp(id string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.peers[id]
	return p != nil && p.usable(time.Now())
}

// takePushSlot takes one of the bounded slots for a push call in flight (the caller frees it with
// <-n.push.out when the call ends), or counts the push as skipped when all are taken.
func (n *Node) takePushSlot() bool {
	select {
	case n.push.out <- struct{}{}:
		return true
	default:
		n.push.sent.WithLabelValues("skipped").Inc()
		return false
	}
}

// pushCosigned hands this node's cosigned head of another member's log to that member's node (a
// push of the checkpoint alone), when it is reachable.
func (n *Node) pushCosigned(cp *consortium.Checkpoint) {
	if n.cfg.PushFanout <= 0 || cp.Member == n.id {
		return
	}
	if !n.peerUp(cp.Member) || !n.takePushSlot() {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer func() { <-n.push.out }()
		if err := n.pushCall(cp.Member, &pb.PushRequest{Checkpoint: cp.Note}); err != nil {
			n.push.sent.WithLabelValues("error").Inc()
			n.log.Debug("push cosigned head", "peer", cp.Member, "err", err)
			return
		}
		n.push.sent.WithLabelValues("cosigned").Inc()
	}()
}

func (n *Node) pushCall(target string, req *pb.PushRequest) error {
	c, err := n.client(target)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(n.ctx, pushTimeout)
	defer cancel()
	_, err = c.Push(ctx, req)
	n.contact(target, err)
	return err
}
