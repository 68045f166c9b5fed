package node

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// startReplica starts a read replica with key id following member's node at addr.
func (c *cluster) startReplica(t *testing.T, id, member, addr string) *Node {
	t.Helper()
	cfg := c.config(id)
	cfg.Key = fixture.Key(id)
	cfg.DataDir = filepath.Join(c.dir, id)
	cfg.Follow, cfg.FollowMember = addr, member
	cfg.FollowInterval = 50 * time.Millisecond
	cfg.Join, cfg.netFilter = nil, nil
	n, err := New(cfg)
	if err != nil {
		t.Fatalf("replica %s: %v", id, err)
	}
	if err := n.Start(); err != nil {
		t.Fatalf("start replica %s: %v", id, err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// TestReadReplica: a replica of alpha's node catches up on every log, matches, sees revokes,
// refuses submissions, may only read on the peer API, and follows alpha's node again after it
// restarts.
func TestReadReplica(t *testing.T) {
	c := newCluster(t, 2, "alpha", "bravo")
	peerAddr := ""
	c.tweak = func(cfg *Config) {
		if cfg.Key.ID() == "alpha" {
			cfg.Replicas = []ReplicaKey{fixture.Key("alpha-r1").Public()}
			if peerAddr != "" {
				cfg.PeerListen = peerAddr // restarted on the same address, as behind a Service
			}
		}
	}
	a := c.start("alpha")
	peerAddr = a.PeerAddr()
	b := c.start("bravo")
	var es []*pb.Entry
	for i := range 1000 {
		es = append(es, fixture.Add(fixture.At(1), fixture.PDQ(i)))
	}
	submitOK(t, a, es...)
	submitOK(t, b, fixture.Add(fixture.At(1), fixture.MD5(1)))
	r := c.startReplica(t, "alpha-r1", "alpha", peerAddr)
	waitFor(t, 10*time.Second, "the replica catches up", func() bool {
		return r.store.Size("alpha") == 1000 && r.store.Size("bravo") == 1
	})
	waitFor(t, 5*time.Second, "the replica's state is alpha's", func() bool { return digestOf(r) == digestOf(a) })
	if len(matches(r, fixture.PDQ(999))) != 1 || len(matches(r, fixture.MD5(1))) != 1 {
		t.Error("the replica does not match what it replicated")
	}

	// Revokes reach it.
	submitOK(t, a, fixture.RevokeSignal(fixture.At(2), fixture.PDQ(5)))
	waitFor(t, 5*time.Second, "the replica sees the revoke", func() bool { return len(matches(r, fixture.PDQ(5))) == 0 })

	// It refuses submissions, and signs, cosigns and pushes nothing.
	_, err := r.Submit(t.Context(), []*pb.Entry{fixture.Add(fixture.At(3), fixture.PDQ(5000))})
	if !errors.Is(err, ErrReadReplica) || codeOf(err) != codes.FailedPrecondition {
		t.Errorf("submit to a replica: got %v (code %v), want ErrReadReplica, FAILED_PRECONDITION", err, codeOf(err))
	}
	if hasCosigner(mustHead(t, r, "alpha"), "alpha-r1") {
		t.Error("the replica cosigned alpha's log")
	}
	if _, ok := r.store.Head("alpha-r1"); ok {
		t.Error("the replica signed a log of its own")
	}

	// On alpha's peer API the replica's key may read and nothing else; an unlisted replica key
	// is refused at the handshake.
	rc := peerClient(t, a, "alpha-r1")
	if _, err := rc.Heads(t.Context(), &pb.HeadsRequest{}); err != nil {
		t.Errorf("replica Heads: %v", err)
	}
	h := mustHead(t, a, "bravo")
	if _, err := rc.Cosign(t.Context(), &pb.CosignRequest{Checkpoint: h.Note}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("replica Cosign: got %v, want PERMISSION_DENIED", err)
	}
	if _, err := rc.Push(t.Context(), &pb.PushRequest{Checkpoint: h.Note}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("replica Push: got %v, want PERMISSION_DENIED", err)
	}
	if _, err := peerClient(t, a, "alpha-r2").Heads(t.Context(), &pb.HeadsRequest{}); status.Code(err) != codes.Unavailable {
		t.Errorf("unlisted replica key: got %v, want UNAVAILABLE (handshake refused)", err)
	}

	// alpha's node restarts on the same address; the replica follows it again.
	c.stop("alpha")
	a = c.start("alpha")
	if a.PeerAddr() != peerAddr {
		t.Fatalf("alpha restarted on %s, want %s", a.PeerAddr(), peerAddr)
	}
	submitOK(t, a, fixture.Add(fixture.At(4), fixture.PDQ(6000)))
	waitFor(t, 15*time.Second, "the replica follows alpha after its restart", func() bool { return len(matches(r, fixture.PDQ(6000))) == 1 })
}

func mustHead(t *testing.T, n *Node, member string) *consortium.Checkpoint {
	t.Helper()
	h, ok := n.store.Head(member)
	if !ok {
		t.Fatalf("%s holds no head of %s", n.id, member)
	}
	return h
}

func hasCosigner(cp *consortium.Checkpoint, id string) bool {
	for _, c := range cp.Cosigners {
		if c.Member == id {
			return true
		}
	}
	return false
}

// TestReadReplicaVerifies: a replica following a node that serves tampered ranges stores none of
// them.
func TestReadReplicaVerifies(t *testing.T) {
	c := newCluster(t, 2, "alpha", "bravo")
	c.tweak = func(cfg *Config) {
		cfg.Replicas = []ReplicaKey{fixture.Key("alpha-r1").Public()}
		cfg.tamperRange = func(ch *pb.RangeChunk) {
			if len(ch.Entries) > 0 {
				ch.Entries[0] = fixture.Marshal(fixture.Add(fixture.At(9), fixture.PDQ(7777)))
			}
		}
	}
	a := c.start("alpha")
	submitOK(t, a, fixture.Add(fixture.At(1), fixture.PDQ(1)), fixture.Add(fixture.At(1), fixture.PDQ(2)))
	waitFor(t, 5*time.Second, "alpha signs", func() bool { _, ok := a.store.Head("alpha"); return ok })
	r := c.startReplica(t, "alpha-r1", "alpha", a.PeerAddr())
	waitFor(t, 5*time.Second, "the replica hears of alpha's checkpoint", func() bool {
		return metricValue(r.metrics.badRanges.WithLabelValues("alpha")) > 0
	})
	if got := r.store.Size("alpha"); got != 0 {
		t.Errorf("the replica stored %d tampered entries, want 0", got)
	}
	if len(matches(r, fixture.PDQ(7777))) != 0 {
		t.Error("the replica matches a tampered entry")
	}
}

// TestReplicaIsNoPeer: a read replica's key reads through the peer API, and nothing it says makes
// it one of the node's peers: an address it announces in a Heads call is not dialled (the node
// would ask it for heads, wait for it before signing its own log after a restart, and try it for
// ranges), and sizes it claims start no head exchange.
func TestReplicaIsNoPeer(t *testing.T) {
	c := newCluster(t, 2, "alpha", "bravo")
	c.tweak = func(cfg *Config) { cfg.Replicas = []ReplicaKey{fixture.Key("alpha-r1").Public()} }
	a := c.start("alpha")
	rc := peerClient(t, a, "alpha-r1")
	if _, err := rc.Heads(testCtx(t), &pb.HeadsRequest{PeerAddr: a.PeerAddr(), Heads: []*pb.Head{{Member: "bravo", Size: 1 << 40}}}); err != nil {
		t.Fatalf("replica's Heads: %v", err)
	}
	for _, p := range a.alivePeers() {
		if p == replicaPrefix+"alpha-r1" {
			t.Errorf("the replica is a live peer of alpha after announcing an address")
		}
	}
	a.mu.Lock()
	_, inTable := a.peers[replicaPrefix+"alpha-r1"]
	_, nudged := a.nudges[replicaPrefix+"alpha-r1"]
	a.mu.Unlock()
	if inTable || nudged {
		t.Errorf("got replica in the peer table %v, nudged %v; want neither", inTable, nudged)
	}
}

// peerStatus returns n's status of its peer member (nil when it has none).
func peerStatus(n *Node, member string) *pb.PeerStatus {
	for _, p := range n.Status().Peers {
		if p.Member == member {
			return p
		}
	}
	return nil
}

// TestReplicaPinnedToMember: a replica of alpha pointed at bravo's node (a hijacked Service name, a
// misconfiguration; bravo lists the replica's public key so that its node accepts it) refuses it,
// says which member it reached, and stores and serves nothing from it: bravo's node could feed it a
// verified but stale or selectively withheld view of every log.
func TestReplicaPinnedToMember(t *testing.T) {
	c := newCluster(t, 2, "alpha", "bravo")
	c.tweak = func(cfg *Config) { cfg.Replicas = []ReplicaKey{fixture.Key("alpha-r1").Public()} }
	a := c.start("alpha")
	b := c.start("bravo")
	submitOK(t, a, fixture.Add(fixture.At(1), fixture.PDQ(1)))
	submitOK(t, b, fixture.Add(fixture.At(1), fixture.MD5(1)))
	waitFor(t, 10*time.Second, "bravo holds both logs", func() bool { return mustSize(b, "alpha") == 1 && mustSize(b, "bravo") == 1 })
	r := c.startReplica(t, "alpha-r1", "alpha", b.PeerAddr())
	waitFor(t, 10*time.Second, "the replica says it reached bravo's node, not alpha's", func() bool {
		p := peerStatus(r, "alpha")
		return p != nil && strings.Contains(p.LastError, "bravo") && p.State != "alive"
	})
	time.Sleep(300 * time.Millisecond) // several follow rounds
	if got := r.store.Size("alpha") + r.store.Size("bravo"); got != 0 {
		t.Errorf("the replica stored %d entries from bravo's node, want 0", got)
	}
	if len(matches(r, fixture.MD5(1))) != 0 {
		t.Error("the replica matches what bravo's node served it")
	}
	if p := peerStatus(r, "bravo"); p != nil {
		t.Errorf("the replica made bravo a peer: %+v", p)
	}
}

func mustSize(n *Node, member string) uint64 { return n.store.Size(member) }

// TestReplicaFollowMemberRequired: a replica without the member it follows does not start.
func TestReplicaFollowMemberRequired(t *testing.T) {
	c := newCluster(t, 1, "alpha")
	for _, member := range []string{"", "replica/x", "a b"} {
		cfg := c.config("alpha-r1")
		cfg.Key = fixture.Key("alpha-r1")
		cfg.Follow, cfg.FollowMember = "127.0.0.1:1", member
		n, err := New(cfg)
		if err == nil {
			n.Close()
		}
		if !errors.Is(err, ErrConfig) {
			t.Errorf("follow member %q: got %v, want ErrConfig", member, err)
		}
	}
	cfg := c.config("alpha")
	cfg.FollowMember = "alpha"
	if _, err := New(cfg); !errors.Is(err, ErrConfig) {
		t.Errorf("follow member without follow: got %v, want ErrConfig", err)
	}
}

// rollbackPeer plays alpha's node restored from an older backup: once rolled, it answers Heads
// with the first answer it gave that named alpha's log.
type rollbackPeer struct {
	pb.PeerServiceServer
	rolled atomic.Bool
	old    atomic.Pointer[pb.HeadsResponse]
}

func (p *rollbackPeer) Heads(ctx context.Context, req *pb.HeadsRequest) (*pb.HeadsResponse, error) {
	if p.rolled.Load() {
		return p.old.Load(), nil
	}
	resp, err := p.PeerServiceServer.Heads(ctx, req)
	if err == nil {
		for _, h := range resp.Heads {
			if h.Member == "alpha" && h.Size > 0 {
				p.old.CompareAndSwap(nil, resp)
			}
		}
	}
	return resp, err
}

// TestReplicaRefusesRollback: when the followed node goes back to an older view (restored from a
// backup, or withholding), the replica keeps everything it verified, keeps matching it, and says
// how far behind the followed node is.
func TestReplicaRefusesRollback(t *testing.T) {
	c := newCluster(t, 1, "alpha")
	rp := &rollbackPeer{}
	c.tweak = func(cfg *Config) {
		cfg.Replicas = []ReplicaKey{fixture.Key("alpha-r1").Public()}
		cfg.peerWrap = func(s pb.PeerServiceServer) pb.PeerServiceServer { rp.PeerServiceServer = s; return rp }
	}
	a := c.start("alpha")
	r := c.startReplica(t, "alpha-r1", "alpha", a.PeerAddr())
	submitOK(t, a, fixture.Add(fixture.At(1), fixture.PDQ(1)))
	waitFor(t, 10*time.Second, "the replica holds alpha's first entry", func() bool { return r.store.Size("alpha") == 1 })
	var es []*pb.Entry
	for i := range 9 {
		es = append(es, fixture.Add(fixture.At(2), fixture.PDQ(100+i)))
	}
	submitOK(t, a, es...)
	waitFor(t, 10*time.Second, "the replica holds alpha's ten entries", func() bool { return r.store.Size("alpha") == 10 })
	if rp.old.Load() == nil {
		t.Fatal("no old heads answer recorded")
	}
	rp.rolled.Store(true)
	waitFor(t, 10*time.Second, "the replica says the followed node is behind it", func() bool {
		p := peerStatus(r, "alpha")
		return gaugeValue(r.metrics.followBehind.WithLabelValues("alpha")) > 0 && p != nil && strings.Contains(p.LastError, "behind")
	})
	if got, want := gaugeValue(r.metrics.followBehind.WithLabelValues("alpha")), float64(10-1); got != want {
		t.Errorf("followed node behind by %v entries, want %v", got, want)
	}
	if got := r.store.Size("alpha"); got != 10 {
		t.Errorf("the replica holds %d of alpha's entries after the rollback, want 10", got)
	}
	if h := mustHead(t, r, "alpha"); h.Size != 10 {
		t.Errorf("the replica's checkpoint of alpha is at %d, want 10", h.Size)
	}
	if len(matches(r, fixture.PDQ(108))) != 1 {
		t.Error("the replica lost a match it had verified")
	}
	// The followed node catches up again: the replica says so.
	rp.rolled.Store(false)
	waitFor(t, 10*time.Second, "the replica sees the followed node caught up", func() bool {
		return gaugeValue(r.metrics.followBehind.WithLabelValues("alpha")) == 0
	})
}

// TestReplicaRefusesHijackedAddress: the address a replica of alpha follows is taken over by
// bravo's node (alpha's node down, bravo's put behind its name): the replica refuses bravo's node
// from the first handshake, names it, keeps serving what it verified from alpha, stores nothing of
// bravo's, and follows alpha's node again once it is back at the address.
func TestReplicaRefusesHijackedAddress(t *testing.T) {
	c := newCluster(t, 1, "alpha", "bravo")
	peerAddr := ""
	c.tweak = func(cfg *Config) {
		cfg.Replicas = []ReplicaKey{fixture.Key("alpha-r1").Public()}
		cfg.Join = nil // alpha and bravo never meet: bravo holds only its own log
		if peerAddr != "" {
			cfg.PeerListen = peerAddr
		}
	}
	a := c.start("alpha")
	peerAddr = a.PeerAddr()
	submitOK(t, a, fixture.Add(fixture.At(1), fixture.PDQ(1)))
	r := c.startReplica(t, "alpha-r1", "alpha", peerAddr)
	waitFor(t, 10*time.Second, "the replica holds alpha's entry", func() bool { return r.store.Size("alpha") == 1 })

	c.stop("alpha")
	b := c.start("bravo")
	if b.PeerAddr() != peerAddr {
		t.Fatalf("bravo listens on %s, want alpha's %s", b.PeerAddr(), peerAddr)
	}
	submitOK(t, b, fixture.Add(fixture.At(2), fixture.MD5(1)))
	waitFor(t, 15*time.Second, "the replica names bravo's node at alpha's address", func() bool {
		p := peerStatus(r, "alpha")
		return p != nil && strings.Contains(p.LastError, "holds bravo's key, not alpha's")
	})
	if got := r.store.Size("bravo"); got != 0 {
		t.Errorf("the replica stored %d of bravo's entries from the hijacked address, want 0", got)
	}
	if len(matches(r, fixture.PDQ(1))) != 1 {
		t.Error("the replica stopped serving what it verified from alpha")
	}

	c.stop("bravo")
	a = c.start("alpha")
	submitOK(t, a, fixture.Add(fixture.At(3), fixture.PDQ(2)))
	waitFor(t, 20*time.Second, "the replica follows alpha's node again", func() bool { return len(matches(r, fixture.PDQ(2))) == 1 })
	if got := r.store.Size("bravo"); got != 0 {
		t.Errorf("the replica holds %d of bravo's entries, want 0", got)
	}
}

// TestReplicaKeyNotAMembers: a read replica's key is its own. One whose key id is the member it
// follows (or another roster member's id), or that holds a roster member's key, does not start,
// with an error saying so: its node id would be that member's, so it would take the member's log
// for its own and sign heads notes in that member's name (with the member's key, valid ones: a
// second signer of the member's statements), and with the member's key the member node would take
// its calls for the member's own, not a replica's read-only ones.
func TestReplicaKeyNotAMembers(t *testing.T) {
	c := newCluster(t, 1, "alpha", "bravo")
	alphaSeed := sha256.Sum256([]byte("hashfed test key alpha"))
	otherSeed := sha256.Sum256([]byte("another key"))
	key := func(id string, seed [32]byte) *consortium.PrivateKey {
		k, err := consortium.NewPrivateKey(id, seed[:])
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	for _, tc := range []struct {
		name    string
		key     *consortium.PrivateKey
		wantMsg string
	}{
		{"its own key, named as the followed member", key("alpha", otherSeed), `read replica's key id "alpha" is the id of the member it follows`},
		{"the followed member's key", fixture.Key("alpha"), `read replica's key id "alpha" is the id of the member it follows`},
		{"its own key, named as another member", key("bravo", otherSeed), `read replica's key id "bravo" is a roster member's`},
		{"the followed member's key under a replica's name", key("alpha-r1", alphaSeed), `read replica's key is member "alpha"'s`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := c.config("alpha-r1")
			cfg.Key, cfg.DataDir = tc.key, t.TempDir()
			cfg.Follow, cfg.FollowMember = "127.0.0.1:1", "alpha"
			cfg.Join = nil
			n, err := New(cfg)
			if err == nil {
				n.Close()
			}
			if !errors.Is(err, ErrConfig) || !strings.Contains(fmt.Sprint(err), tc.wantMsg) {
				t.Errorf("got %v, want ErrConfig saying %q", err, tc.wantMsg)
			}
		})
	}
}

// TestReplicaAuditExport: an audit bundle exported by a read replica carries the heads notes it
// received from the member node, and none signed by the replica, whose key is no member's (such a
// note fails the audit, rule heads): the bundle audits.
func TestReplicaAuditExport(t *testing.T) {
	c := newCluster(t, 2, "alpha", "bravo")
	c.tweak = func(cfg *Config) { cfg.Replicas = []ReplicaKey{fixture.Key("alpha-r1").Public()} }
	a := c.start("alpha")
	b := c.start("bravo")
	submitOK(t, a, fixture.Add(fixture.At(1), fixture.PDQ(1)))
	submitOK(t, b, fixture.Add(fixture.At(1), fixture.MD5(1)))
	r := c.startReplica(t, "alpha-r1", "alpha", a.PeerAddr())
	waitFor(t, 15*time.Second, "the replica holds both logs and alpha's heads note naming them", func() bool {
		held, err := r.store.HeadsNotes()
		if err != nil || held["alpha"] == nil || r.store.Size("alpha") != 1 || r.store.Size("bravo") != 1 {
			return false
		}
		h, err := consortium.OpenHeads(r.g.ID, r.g, held["alpha"])
		return err == nil && len(h.Heads) == 2
	})
	in, err := r.AuditInput(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if in.Heads["alpha-r1"] != nil {
		t.Error("the replica signed a heads note of its own into the bundle")
	}
	if rep := consortium.Audit(in, consortium.AuditOptions{RequireHeads: 1}); !rep.OK {
		t.Errorf("audit of the replica's bundle: got failures, want ok:\n%s", rep)
	}
	if _, ok := r.store.Head("alpha-r1"); ok {
		t.Error("the replica signed a log of its own for the export")
	}
}
