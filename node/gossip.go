package node

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/hashfed/hashfed/consortium"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"github.com/hashicorp/memberlist"
	"google.golang.org/protobuf/proto"
)

// Gossip carries only small signed things: each log's latest checkpoint as a named broadcast (a
// newer one replaces an older one in the queue) and equivocation evidence. Entries never travel by
// gossip. Push/pull state carries the head vector as a backstop.

// maxGossipCheckpoint bounds the checkpoint note in a gossip message; cosignatures that do not fit
// travel through the peer API's head exchange instead.
const maxGossipCheckpoint = 1000

// Message kinds queued for the gossip worker.
const (
	inGossip = 'g'
	inState  = 's'
)

func (n *Node) startGossip() error {
	mc := memberlist.DefaultLANConfig()
	mc.Name = n.id
	host, port, err := net.SplitHostPort(n.cfg.GossipListen)
	if err != nil {
		return fmt.Errorf("gossip listen address %q: %w", n.cfg.GossipListen, err)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	mc.BindAddr = host
	if mc.BindPort, err = strconv.Atoi(port); err != nil {
		return fmt.Errorf("gossip listen port %q: %w", port, err)
	}
	if n.cfg.GossipAdvertise != "" {
		ah, ap, err := net.SplitHostPort(n.cfg.GossipAdvertise)
		if err != nil {
			return fmt.Errorf("gossip advertise address %q: %w", n.cfg.GossipAdvertise, err)
		}
		mc.AdvertiseAddr = ah
		if mc.AdvertisePort, err = strconv.Atoi(ap); err != nil {
			return fmt.Errorf("gossip advertise port %q: %w", ap, err)
		}
	}
	mc.Label = n.cfg.ClusterLabel
	mc.GossipInterval = n.cfg.GossipInterval
	mc.GossipNodes = n.cfg.GossipNodes
	mc.DeadNodeReclaimTime = time.Second
	mc.EnableCompression = false
	mc.Delegate = &delegate{n: n}
	mc.Events = &events{n: n}
	mc.Alive = &alive{n: n}
	mc.Logger = log.New(&slogWriter{l: n.log.With("component", "memberlist"), r: n.refused}, "", 0)
	if len(n.cfg.GossipKeys) > 0 {
		kr, err := memberlist.NewKeyring(n.cfg.GossipKeys[1:], n.cfg.GossipKeys[0])
		if err != nil {
			return fmt.Errorf("gossip keyring: %w", err)
		}
		mc.Keyring = kr
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{host}, BindPort: mc.BindPort, Logger: mc.Logger})
	// Port 0 takes the TCP port the kernel picks and then binds UDP on the same number, which another
	// process may hold: pick again a few times, as memberlist itself does for port 0.
	for try := 0; err != nil && mc.BindPort == 0 && try < 10; try++ {
		nt, err = memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{host}, BindPort: 0, Logger: mc.Logger})
	}
	if err != nil {
		return fmt.Errorf("gossip transport on %s: %w", n.cfg.GossipListen, err)
	}
	if mc.BindPort == 0 {
		mc.BindPort = nt.GetAutoBindPort()
	}
	n.loadPeers()
	n.trans = &filterTransport{NetTransport: nt, n: n}
	mc.Transport = n.trans
	n.bq = &memberlist.TransmitLimitedQueue{NumNodes: func() int { return n.ml.NumMembers() }, RetransmitMult: mc.RetransmitMult}
	ml, err := memberlist.Create(mc)
	if err != nil {
		nt.Shutdown()
		return fmt.Errorf("gossip: %w", err)
	}
	n.ml = ml
	if len(n.cfg.Join) > 0 {
		n.wg.Add(1)
		go n.joinLoop()
	}
	n.wg.Add(1)
	go n.healLoop()
	return nil
}

// joinRefusalsMax is how many join attempts the seeds may refuse (accept the connection, then
// close it) before joinLoop stops and says why; healLoop still tries them, with its backoff.
const joinRefusalsMax = 5

// joinLoop joins the configured nodes, retrying until one answers, then compares heads with a few
// peers at once (bootstrap and catch-up after a restart). Seeds that accept connections but refuse
// to gossip (memberlist closes a stream whose cluster label, derived from the genesis, or whose
// encryption differs) are reported as what they most likely are, and after joinRefusalsMax such
// attempts the loop stops retrying.
func (n *Node) joinLoop() {
	defer n.wg.Done()
	delay := 200 * time.Millisecond
	refusals := 0
	for {
		if n.ml.NumMembers() > 1 {
			// Joined meanwhile through remembered peers (see healLoop): gossip finds the seeds.
			n.catchUp()
			return
		}
		k, err := n.ml.Join(n.cfg.Join)
		if k > 0 {
			n.log.Info("joined", "nodes", n.ml.NumMembers())
			n.catchUp()
			return
		}
		if open := n.listeningSeeds(); len(open) > 0 {
			refusals++
			why := fmt.Sprintf("the seeds %s accept connections but refuse this node's gossip: they run with another genesis (another consortium; this node's is %s, cluster label %q) or with other gossip keys, or this member is not on their roster", strings.Join(open, ","), n.g.ID, n.cfg.ClusterLabel)
			if refusals >= joinRefusalsMax {
				n.log.Error("join refused; not retrying the seeds here (the rejoin loop still tries them, with backoff): check that every node runs with the same genesis.bin and gossip keys", "reason", why, "attempts", refusals)
				return
			}
			n.log.Warn("join refused; retrying", "reason", why, "err", err)
		} else {
			n.log.Warn("join failed; retrying", "seeds", strings.Join(n.cfg.Join, ","), "err", err)
		}
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// listeningSeeds returns the configured seeds that accept a TCP connection (memberlist's
// push-pull listens on TCP at the gossip address).
func (n *Node) listeningSeeds() []string {
	var open []string
	for _, seed := range n.cfg.Join {
		c, err := net.DialTimeout("tcp", seed, time.Second)
		if err != nil {
			continue
		}
		c.Close()
		open = append(open, seed)
	}
	return open
}

// NodeMeta returns the memberlist metadata of the node.
func (n *Node) nodeMeta() []byte {
	b, _ := proto.Marshal(&pb.NodeMeta{Member: n.id, PeerAddr: n.peerAdv, Protocol: consortium.ProtocolVersion, Consortium: n.g.ID.String()})
	return b
}

type delegate struct{ n *Node }

func (d *delegate) NodeMeta(limit int) []byte {
	b := d.n.nodeMeta()
	if len(b) > limit {
		return nil
	}
	return b
}

// NotifyMsg runs on memberlist's single receive goroutine: copy and hand over, never block.
func (d *delegate) NotifyMsg(b []byte) {
	d.n.enqueueGossip(inGossip, b)
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.n.bq.GetBroadcasts(overhead, limit)
}

func (d *delegate) LocalState(join bool) []byte {
	st := &pb.GossipState{}
	for m, s := range d.n.store.Sizes() {
		st.Heads = append(st.Heads, &pb.Head{Member: m, Size: s})
	}
	b, _ := proto.Marshal(st)
	return b
}

func (d *delegate) MergeRemoteState(buf []byte, join bool) {
	d.n.enqueueGossip(inState, buf)
}

func (n *Node) enqueueGossip(kind byte, b []byte) {
	if len(b) > 1<<20 {
		n.metrics.gossipIn.WithLabelValues("oversized", "dropped").Inc()
		n.refused.refuse(refGossipOversized, "gossip message refused: too large", "bytes", len(b))
		return
	}
	msg := make([]byte, 1+len(b))
	msg[0] = kind
	copy(msg[1:], b)
	select {
	case n.gossipIn <- msg:
	default:
		n.metrics.gossipDropped.Inc()
	}
}

type events struct{ n *Node }

func (e *events) NotifyJoin(node *memberlist.Node) { e.n.nodeUp(node) }
func (e *events) NotifyUpdate(node *memberlist.Node) {
	e.n.nodeUp(node)
}
func (e *events) NotifyLeave(node *memberlist.Node) {
	e.n.setPeer(node.Name, "", false)
}

func (n *Node) nodeUp(node *memberlist.Node) {
	var meta pb.NodeMeta
	if proto.Unmarshal(node.Meta, &meta) != nil {
		return
	}
	n.setPeer(meta.Member, meta.PeerAddr, true)
	n.sawGossip(meta.Member, node.Address())
}

type alive struct{ n *Node }

// NotifyAlive refuses nodes that are not members of this consortium's roster.
func (a *alive) NotifyAlive(node *memberlist.Node) error {
	n := a.n
	if node.Name == n.id {
		return nil
	}
	var meta pb.NodeMeta
	var err error
	if err = proto.Unmarshal(node.Meta, &meta); err != nil {
		err = fmt.Errorf("node %q: unreadable metadata", node.Name)
	} else {
		switch {
		case meta.Consortium != n.g.ID.String():
			err = fmt.Errorf("node %q belongs to consortium %s", node.Name, meta.Consortium)
		case meta.Protocol != consortium.ProtocolVersion:
			err = fmt.Errorf("node %q speaks protocol %d, this node %d", node.Name, meta.Protocol, consortium.ProtocolVersion)
		case meta.Member != node.Name:
			err = fmt.Errorf("node %q claims member id %q", node.Name, meta.Member)
		case !n.onRoster(meta.Member):
			err = fmt.Errorf("node %q is not on the roster", node.Name)
		}
	}
	if err != nil {
		// The name and address come from an unsigned alive message: the node only claims them.
		n.metrics.refusedPeers.Inc()
		n.refused.refuse(refGossipNode, "gossip node refused", "claims", node.Name, "addr", node.Address(), "err", err)
	}
	return err
}

// cpBroadcast is a log's checkpoint in the gossip queue; a newer one of the same log replaces it.
type cpBroadcast struct {
	name string
	msg  []byte
}

func (b *cpBroadcast) Invalidates(other memberlist.Broadcast) bool {
	o, ok := other.(memberlist.NamedBroadcast)
	return ok && o.Name() == b.name
}
func (b *cpBroadcast) Message() []byte { return b.msg }
func (b *cpBroadcast) Finished()       {}
func (b *cpBroadcast) Name() string    { return b.name }

type evBroadcast struct{ msg []byte }

func (b *evBroadcast) Invalidates(memberlist.Broadcast) bool { return false }
func (b *evBroadcast) Message() []byte                       { return b.msg }
func (b *evBroadcast) Finished()                             {}
func (b *evBroadcast) UniqueBroadcast()                      {}

// broadcastCheckpoint queues a log's checkpoint for gossip, trimmed to fit a packet.
func (n *Node) broadcastCheckpoint(cp *consortium.Checkpoint) {
	if n.bq == nil {
		return
	}
	b, _ := proto.Marshal(&pb.Gossip{From: n.id, Msg: &pb.Gossip_Checkpoint{Checkpoint: trimNote(cp.Note, maxGossipCheckpoint)}})
	n.bq.QueueBroadcast(&cpBroadcast{name: "cp/" + cp.Member, msg: b})
}

// broadcastEvidence queues equivocation evidence for gossip (without cosignatures, to stay small).
func (n *Node) broadcastEvidence(ev *consortium.Evidence) {
	if n.bq == nil {
		return
	}
	p := ev.Proto()
	p.CheckpointA = trimNote(p.CheckpointA, 0)
	p.CheckpointB = trimNote(p.CheckpointB, 0)
	b, _ := proto.Marshal(&pb.Gossip{From: n.id, Msg: &pb.Gossip_Evidence{Evidence: p}})
	n.bq.QueueBroadcast(&evBroadcast{msg: b})
}

// trimNote keeps a signed note's text and first signature line (the author's), and then as many
// further signature lines as fit in limit bytes.
func trimNote(note []byte, limit int) []byte {
	text, sigs, ok := bytes.Cut(note, []byte("\n\n"))
	if !ok {
		return note
	}
	lines := bytes.SplitAfter(sigs, []byte("\n"))
	out := append(append([]byte(nil), text...), "\n\n"...)
	for i, l := range lines {
		if len(l) == 0 {
			continue
		}
		if i > 0 && len(out)+len(l) > limit {
			break
		}
		out = append(out, l...)
	}
	return out
}

// gossipWorker handles gossip messages off memberlist's receive goroutine.
func (n *Node) gossipWorker() {
	defer n.wg.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case msg := <-n.gossipIn:
			switch msg[0] {
			case inGossip:
				n.handleGossip(msg[1:])
			case inState:
				n.handleRemoteState(msg[1:])
			}
		}
	}
}

func (n *Node) handleGossip(b []byte) {
	// Gossip messages carry no authenticated sender (memberlist does not say where a message came
	// from, and From is unsigned): logs name the sender only as "claims".
	var g pb.Gossip
	if err := proto.Unmarshal(b, &g); err != nil {
		n.metrics.gossipIn.WithLabelValues("unknown", "malformed").Inc()
		n.refused.refuse(refGossipMalformed, "gossip message refused: does not decode", "bytes", len(b), "err", err)
		return
	}
	if n.cfg.netFilter != nil && n.cfg.netFilter(g.From) {
		return
	}
	switch m := g.Msg.(type) {
	case *pb.Gossip_Checkpoint:
		if n.staleCheckpoint(m.Checkpoint) {
			// A copy heard again (each cosigner broadcasts the head it cosigned, and memberlist
			// retransmits each broadcast), or an older head the stored log agrees with.
			n.metrics.gossipIn.WithLabelValues("checkpoint", "known").Inc()
			return
		}
		cp, err := n.openCheckpoint(m.Checkpoint)
		if err != nil {
			n.metrics.gossipIn.WithLabelValues("checkpoint", "bad").Inc()
			n.refused.refuse(refGossipCheckpoint, "gossiped checkpoint refused", "claims", g.From, "err", err)
			return
		}
		n.metrics.gossipIn.WithLabelValues("checkpoint", "ok").Inc()
		hint := ""
		if n.onRoster(g.From) {
			hint = g.From
		}
		if n.handleCheckpoint(cp, hint) {
			// News to this node: pass it on.
			n.bq.QueueBroadcast(&cpBroadcast{name: "cp/" + cp.Member, msg: b})
		}
	case *pb.Gossip_Evidence:
		ev, err := n.verifyEvidence(m.Evidence)
		if err != nil {
			n.metrics.gossipIn.WithLabelValues("evidence", "bad").Inc()
			n.refused.refuse(refGossipEvidence, "gossiped evidence refused", "claims", g.From, "err", err)
			return
		}
		n.metrics.gossipIn.WithLabelValues("evidence", "ok").Inc()
		if n.takeEvidence(ev) {
			n.bq.QueueBroadcast(&evBroadcast{msg: b})
		}
	default:
		n.metrics.gossipIn.WithLabelValues("unknown", "malformed").Inc()
		n.refused.refuse(refGossipMalformed, "gossip message refused: unknown kind", "claims", g.From, "bytes", len(b))
	}
}

func (n *Node) handleRemoteState(b []byte) {
	var st pb.GossipState
	if err := proto.Unmarshal(b, &st); err != nil || len(st.Heads) > maxHeads {
		n.metrics.gossipIn.WithLabelValues("state", "malformed").Inc()
		n.refused.refuse(refGossipState, "gossip state refused: malformed or too long", "bytes", len(b))
		return
	}
	n.metrics.gossipIn.WithLabelValues("state", "ok").Inc()
	// The state is unsigned and its sender unknown: a claim of more than this node holds only
	// makes it compare signed heads with a live peer; it sets no lag and starts no fetch.
	known := n.everOnRoster(st.Heads)
	sizes := n.store.Sizes()
	for _, h := range st.Heads {
		if known[h.Member] && h.Size > sizes[h.Member] {
			n.nudge("")
			return
		}
	}
}

// logKnown reports whether member's log is one this node may hold: a member ever on the roster.
func (n *Node) logKnown(member string) bool {
	var ok bool
	n.store.View(func(s *consortium.State) { _, ok = s.MemberKey(member) })
	return ok
}

// filterTransport is memberlist's network transport with an optional filter that drops traffic to
// members the test's partition cuts off. Filtering the outgoing side on both ends cuts both ways.
type filterTransport struct {
	*memberlist.NetTransport
	n *Node
}

func (t *filterTransport) blocked(name string) bool {
	return name != "" && t.n.cfg.netFilter != nil && t.n.cfg.netFilter(name)
}

func (t *filterTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if t.blocked(a.Name) {
		return time.Now(), nil // dropped, as a cut network would
	}
	return t.NetTransport.WriteToAddress(b, a)
}

func (t *filterTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if t.blocked(a.Name) {
		return nil, fmt.Errorf("dial %s: partitioned", a.Name)
	}
	return t.NetTransport.DialAddressTimeout(a, timeout)
}

// slogWriter turns memberlist's "[LEVEL] memberlist: ..." lines into slog records, rate-limited
// by kind (see [refusals]). A warning or error about traffic received ("from=" an address) counts
// as refused gossip traffic.
type slogWriter struct {
	l *slog.Logger
	r *refusals
}

func (w *slogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelDebug
	for tag, l := range map[string]slog.Level{"[ERR]": slog.LevelError, "[WARN]": slog.LevelWarn, "[INFO]": slog.LevelInfo, "[DEBUG]": slog.LevelDebug} {
		if i := strings.Index(line, tag); i >= 0 {
			level = l
			line = strings.TrimSpace(line[i+len(tag):])
			break
		}
	}
	line = strings.TrimPrefix(line, "memberlist: ")
	// memberlist names the unauthenticated sender of a suspect or dead message "from": it is a claim.
	line = strings.ReplaceAll(line, "(from: ", "(claims: ")
	if level >= slog.LevelWarn && strings.Contains(line, "from=") {
		w.r.count.WithLabelValues(refGossipPacket).Inc()
	}
	w.r.logLimited(w.l, memberlistKind(level, line), level, line)
	return len(p), nil
}

var _ io.Writer = (*slogWriter)(nil)
