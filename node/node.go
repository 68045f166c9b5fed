// Package node runs a hashfed node: the member API for the platform's own systems, the peer API
// between nodes (gRPC over mutual TLS with roster keys), gossip of signed checkpoints with
// memberlist, replication that verifies every received range before storing it, and the HTTP
// endpoints (/metrics, /healthz, a JSON lookup and match API).
//
// A node trusts no peer: checkpoints are checked against roster keys, ranges against signed
// checkpoints, and a peer that serves bad data costs only that range, fetched again elsewhere.
package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashfed/hashfed/consortium"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"github.com/hashfed/hashfed/store"
	"github.com/hashicorp/memberlist"
	"google.golang.org/grpc"
)

// Node is a running hashfed node.
type Node struct {
	cfg     Config
	id      string
	g       *consortium.Genesis
	key     *consortium.PrivateKey
	log     *slog.Logger
	store   *store.Store
	metrics *metrics
	started time.Time

	cert    tls.Certificate
	peerSrv *grpc.Server
	peerLis net.Listener
	peerAdv string

	memberSrv *grpc.Server
	memberLis net.Listener
	httpSrv   *http.Server
	httpLis   net.Listener

	ml       *memberlist.Memberlist
	bq       *memberlist.TransmitLimitedQueue
	gossipIn chan []byte
	trans    *filterTransport

	mu      sync.Mutex
	peers   map[string]*peerInfo
	known   map[string]uint64
	fetches map[string]*fetchState
	// nudges, refused and heal: unsigned claims, refused traffic and gossip healing (peers.go,
	// refused.go, heal.go).
	nudges  map[string]*nudge
	refused *refusals
	heal    healState

	memberStreams  chan struct{}
	memberInflight chan struct{}
	peerStreams    chan struct{}
	fetchSem       chan struct{}
	ownGrew        chan struct{}
	own            ownLog
	push           pushState
	headsCache     headsNoteCache

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed bool
}

// New opens the node's store (rebuilding its state from the logs) and prepares the node; Start
// brings it onto the network.
func New(cfg Config) (*Node, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	n := &Node{
		cfg:            cfg,
		id:             cfg.Key.ID(),
		g:              cfg.Genesis,
		key:            cfg.Key,
		log:            cfg.Logger.With("member", cfg.Key.ID()),
		peers:          map[string]*peerInfo{},
		known:          map[string]uint64{},
		fetches:        map[string]*fetchState{},
		nudges:         map[string]*nudge{},
		memberStreams:  make(chan struct{}, cfg.MaxMatchStreams),
		memberInflight: make(chan struct{}, cfg.MaxInflight),
		peerStreams:    make(chan struct{}, cfg.MaxPeerStreams),
		fetchSem:       make(chan struct{}, cfg.FetchParallel),
		ownGrew:        make(chan struct{}, 1),
		gossipIn:       make(chan []byte, 4096),
		own:            ownLog{restored: make(chan struct{}), heard: map[string]bool{}},
	}
	n.metrics = newMetrics(n)
	n.initPush()
	n.refused = newRefusals(n.log, n.metrics.refused)
	so := cfg.Store
	so.Logger = n.log
	so.Owner = cfg.Key.Public().String()
	userChange := so.OnChange
	so.OnChange = func(c consortium.Change) {
		n.metrics.onChange(c)
		if userChange != nil {
			userChange(c)
		}
	}
	st, err := openStore(cfg, so)
	if err != nil {
		return nil, err
	}
	n.store = st
	var known, sameKey bool
	st.View(func(s *consortium.State) {
		k, ok := s.MemberKey(n.id)
		known, sameKey = ok, ok && k.Equal(cfg.Key.Public().Key)
	})
	switch {
	case n.replica():
		// A read replica's key is its own, not a member's (see replica.go).
		if err := n.checkReplicaKey(); err != nil {
			st.Close()
			return nil, err
		}
	case known && !sameKey:
		st.Close()
		return nil, fmt.Errorf("%w: the roster has another key for %q than the one configured", ErrConfig, n.id)
	case !known:
		// A newly admitted member starts from the genesis: it learns of its admission by fetching
		// the founders' logs, and can submit once it has.
		n.log.Warn("this member is not on the roster as far as the local logs go; fetching the logs from peers (has it been admitted?)")
	}
	c, err := selfCert(n.id, cfg.Key.Ed25519())
	if err != nil {
		st.Close()
		return nil, err
	}
	n.cert = c
	return n, nil
}

// Store returns the node's store.
func (n *Node) Store() *store.Store { return n.store }

// ID returns the node's member id.
func (n *Node) ID() string { return n.id }

// Start opens the listeners, joins the gossip cluster and starts replication. It returns once the
// node serves; joining the peers in Config.Join continues in the background until one answers.
func (n *Node) Start() (err error) {
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.started = time.Now()
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if n.replica() {
		return n.startReplica()
	}
	if err := n.startPeerAPI(); err != nil {
		return err
	}
	if err := n.startGossip(); err != nil {
		return err
	}
	if err := n.startMemberAPI(); err != nil {
		return err
	}
	if err := n.startHTTP(); err != nil {
		return err
	}
	n.wg.Add(4)
	go n.gossipWorker()
	go n.signer()
	// Entries appended before a crash or stop may not be signed yet: they are signed once the own
	// log is known to be no shorter than what the peers hold (at once when there is no one to ask).
	n.startOwnRestore()
	go n.antiEntropy()
	go n.sweeper()
	n.log.Info("node started", "peer", n.peerAdv, "gossip", n.GossipAddr(), "member_api", n.MemberAddr(), "http", n.HTTPAddr())
	return nil
}

// Close stops the node: it leaves the gossip cluster, lets streams in flight finish (for a few
// seconds at most), stops replication and closes the store.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	n.mu.Unlock()
	if n.ml != nil {
		n.ml.Leave(500 * time.Millisecond)
	}
	if n.cancel != nil {
		n.cancel()
	}
	stopGRPC := func(s *grpc.Server) {
		if s == nil {
			return
		}
		done := make(chan struct{})
		go func() { s.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			s.Stop()
		}
	}
	stopGRPC(n.memberSrv)
	stopGRPC(n.peerSrv)
	if n.httpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		n.httpSrv.Shutdown(ctx)
		cancel()
	}
	if n.ml != nil {
		n.ml.Shutdown()
	}
	n.wg.Wait()
	n.mu.Lock()
	for _, p := range n.peers {
		if p.conn != nil {
			p.conn.Close()
		}
	}
	n.mu.Unlock()
	err := n.store.Close()
	n.log.Info("node stopped")
	return err
}

// PeerAddr returns the address other nodes dial for the peer API.
func (n *Node) PeerAddr() string { return n.peerAdv }

// GossipAddr returns the node's gossip address.
func (n *Node) GossipAddr() string {
	if n.ml == nil {
		return ""
	}
	return n.ml.LocalNode().Address()
}

// GossipMembers returns how many nodes (this one included) memberlist knows alive.
func (n *Node) GossipMembers() int {
	if n.ml == nil {
		return 0
	}
	return n.ml.NumMembers()
}

// MemberAddr returns the member API's address ("" when disabled).
func (n *Node) MemberAddr() string {
	if n.memberLis == nil {
		return ""
	}
	if n.memberLis.Addr().Network() == "unix" {
		return "unix:" + n.memberLis.Addr().String()
	}
	return n.memberLis.Addr().String()
}

// HTTPAddr returns the HTTP endpoint's address ("" when disabled).
func (n *Node) HTTPAddr() string {
	if n.httpLis == nil {
		return ""
	}
	return n.httpLis.Addr().String()
}

// memberByKey returns the id of the roster member (any role) with the given key.
func (n *Node) memberByKey(pub ed25519.PublicKey) (string, bool) {
	var id string
	n.store.View(func(s *consortium.State) {
		for _, m := range s.Roster().Members {
			if m.Key.Equal(pub) {
				id = m.ID
				return
			}
		}
	})
	return id, id != ""
}

// onRoster reports whether member is on the current roster (any role).
func (n *Node) onRoster(member string) bool {
	var ok bool
	n.store.View(func(s *consortium.State) { _, ok = s.Roster().Member(member) })
	return ok
}

// openCheckpoint verifies a checkpoint note against the keys of every member ever on the roster.
// The signature lines it shares with the stored head of that log were verified when stored, and
// are not verified again (see [consortium.OpenCheckpointKnown]): a cosigned head arrives from
// every peer that cosigned it, many times over.
func (n *Node) openCheckpoint(note []byte) (*consortium.Checkpoint, error) {
	var cp *consortium.Checkpoint
	var err error
	// The head is looked up before View: the store's read lock is not taken twice.
	var head *consortium.Checkpoint
	origin, _, _ := bytes.Cut(note, []byte("\n"))
	if member, ok := strings.CutPrefix(string(origin), "hashfed/"+n.g.ID.String()+"/"); ok {
		head, _ = n.store.Head(member)
	}
	known := func(member string) *consortium.Checkpoint {
		if head == nil || head.Member != member {
			return nil
		}
		return head
	}
	n.store.View(func(s *consortium.State) { cp, err = consortium.OpenCheckpointKnown(n.g.ID, s, note, known) })
	return cp, err
}

// staleCheckpoint reports whether a checkpoint note can tell this node nothing, without verifying
// it: the stored head of its log holds its text and every one of its signature lines (see
// [consortium.Checkpoint.Covers]), or it claims a smaller tree head that the stored log has (the
// cosignatures of an older head are not kept). A note about a tree head the stored log lacks or
// contradicts is not stale: it is opened, and may be news or equivocation evidence.
func (n *Node) staleCheckpoint(note []byte) bool {
	member, size, root, ok := consortium.PeekCheckpoint(n.g.ID, note)
	if !ok {
		return false
	}
	head, ok := n.store.Head(member)
	switch {
	case !ok:
		return false
	case head.Covers(note):
		return true
	case size == 0 || size >= head.Size:
		return false
	}
	stored, err := n.store.TreeHash(member, size)
	return err == nil && stored == root
}

// noteKnown records that member's log has at least size entries somewhere.
func (n *Node) noteKnown(member string, size uint64) {
	n.mu.Lock()
	if size > n.known[member] {
		n.known[member] = size
	}
	n.mu.Unlock()
}

// signer signs the node's own checkpoint when its log grew: at once after a quiet spell, at most
// once per CheckpointInterval under load; each new checkpoint is gossiped.
func (n *Node) signer() {
	defer n.wg.Done()
	var last time.Time
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.ownGrew:
		}
		woke := time.Now()
		if wait := n.cfg.CheckpointInterval - time.Since(last); wait > 0 {
			select {
			case <-n.ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		if err := n.ownLogBlocked(); err != nil {
			// Signing now could fork the log from what the peers hold; the restore wakes the
			// signer again when it completes.
			n.log.Debug("not signing own checkpoint", "err", err)
			continue
		}
		// Pushed and gossiped as soon as signed, while the head is written (see
		// store.SignHeadPublish).
		_, err := n.store.SignHeadPublish(n.key, func(cp *consortium.Checkpoint) {
			n.push.stage.WithLabelValues("sign").Observe(time.Since(woke).Seconds())
			n.ownSigned(cp.Size)
			n.noteKnown(n.id, cp.Size)
			n.pushOn(cp)
			n.broadcastCheckpoint(cp)
		})
		last = time.Now()
		if err != nil {
			n.log.Error("sign checkpoint", "err", err)
			continue
		}
	}
}

// maxClockAhead is how far ahead of the node's clock a submitted entry's time may be. An entry's
// time is its author's clock, and a log's times never go backwards: one entry stamped far ahead
// (milliseconds taken for microseconds, a wrong year) would, once signed, carry every later entry of
// the member to that time and make each add expiring before it invalid, for good.
const maxClockAhead = 10 * time.Minute

// errTimeAhead refuses an entry stamped too far ahead of the node's clock.
var errTimeAhead = errors.New("entry time is ahead of this node's clock")

// dropFutureTimes returns the entries whose time is not more than maxClockAhead ahead of the
// node's clock (0, for the node to stamp, included), and the refusals of the others by position.
func (n *Node) dropFutureTimes(entries []*pb.Entry) ([]*pb.Entry, map[int]error) {
	limit := n.now().Add(maxClockAhead).UnixMilli()
	var ahead map[int]error
	for i, e := range entries {
		if t := e.GetTimeUnixMs(); t > limit {
			if ahead == nil {
				ahead = map[int]error{}
			}
			ahead[i] = fmt.Errorf("%w: %w: time %d ms is %v ahead of this node's clock (at most %v): an entry's time is signed for good and a log's times never go backwards; send milliseconds since 1970 UTC, or 0 for the node to stamp it",
				consortium.ErrInvalidEntry, errTimeAhead, t, time.Duration(t-n.now().UnixMilli())*time.Millisecond, maxClockAhead)
		}
	}
	if ahead == nil {
		return entries, nil
	}
	kept := make([]*pb.Entry, 0, len(entries)-len(ahead))
	for i, e := range entries {
		if ahead[i] == nil {
			kept = append(kept, e)
		}
	}
	return kept, ahead
}

// mergeRefused puts the refusals of dropFutureTimes back at their positions among the results of
// the entries submitted.
func mergeRefused(out []store.Appended, ahead map[int]error) []store.Appended {
	if ahead == nil {
		return out
	}
	all := make([]store.Appended, 0, len(out)+len(ahead))
	for i := 0; len(all) < cap(all); i++ {
		if err := ahead[i]; err != nil {
			all = append(all, store.Appended{Err: err})
			continue
		}
		all = append(all, out[0])
		out = out[1:]
	}
	return all
}

// ownLogGrew wakes the signer.
func (n *Node) ownLogGrew() {
	select {
	case n.ownGrew <- struct{}{}:
	default:
	}
}

func (n *Node) sweeper() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.SweepInterval)
	defer t.Stop()
	// Cosignatures merged into heads are written once a second, not each with an fsync of its
	// own (see store.FlushHeads).
	heads := time.NewTicker(time.Second)
	defer heads.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
			if k := n.store.Sweep(); k > 0 {
				n.log.Info("expired listings out of the match index", "signals", k)
			}
		case <-heads.C:
			if err := n.store.FlushHeads(); err != nil {
				n.log.Warn("write cosigned heads", "err", err)
			}
		}
	}
}

// Submit appends entries to the node's own log (see [store.Store.Submit]) and wakes the checkpoint
// signer, so the new entries reach the peers. The whole submission is refused while the node
// restores its own log from its peers ([ErrRestoring], after waiting up to 10 s for it), when
// the member equivocated (an error wrapping [store.ErrForked]), or when it is not on the current
// roster ([consortium.ErrUnknownMember]): entries accepted then would reach no one.
func (n *Node) Submit(ctx context.Context, entries []*pb.Entry) ([]store.Appended, error) {
	if n.replica() {
		return nil, fmt.Errorf("%w of the member node at %s: submit to the member node", ErrReadReplica, n.cfg.Follow)
	}
	if err := n.checkOwnLog(ctx); err != nil {
		return nil, err
	}
	entries, ahead := n.dropFutureTimes(entries)
	out, err := n.store.Submit(ctx, n.id, entries)
	if err != nil {
		return nil, err
	}
	out = mergeRefused(out, ahead)
	for _, a := range out {
		if a.Err == nil {
			n.metrics.submitted.Inc()
		}
	}
	n.ownLogGrew()
	return out, nil
}

var errClosed = errors.New("node closed")
