package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"github.com/hashicorp/memberlist"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"
)

// peerClient dials n's peer API holding id's key (which may or may not be on the roster).
func peerClient(t *testing.T, n *Node, id string) pb.PeerServiceClient {
	t.Helper()
	cert, err := selfCert(id, fixture.Key(id).Ed25519())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(n.PeerAddr(), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pb.NewPeerServiceClient(conn)
}

// randomHeads is a head vector of k random log names, each claiming size.
func randomHeads(r *rand.Rand, k int, size uint64) []*pb.Head {
	out := make([]*pb.Head, k)
	for i := range out {
		out[i] = &pb.Head{Member: fmt.Sprintf("junk-%016x", r.Uint64()), Size: size}
	}
	return out
}

// bookkeeping returns the sizes of every map of n that a peer's words can add keys to.
func bookkeeping(n *Node) map[string]int {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := map[string]int{"peers": len(n.peers), "known": len(n.known), "fetches": len(n.fetches), "nudges": len(n.nudges)}
	for id, p := range n.peers {
		out["sizes/"+id] = len(p.sizes)
		out["badUntil/"+id] = len(p.badUntil)
	}
	return out
}

// TestHeadsFloodBounded has a member with a roster key send head vectors of random log names, and
// claims of 2^62 entries for real logs, again and again. The node keeps at most one entry per
// roster member in every map a peer can name, and its lag stays what signed checkpoints say.
func TestHeadsFloodBounded(t *testing.T) {
	c := newCluster(t, 2, "alpha", "bravo", "mallory")
	a := c.start("alpha")
	submitOK(t, a, fixture.Add(0, fixture.PDQ(1)))
	waitFor(t, 5*time.Second, "alpha signs its log", func() bool { _, ok := a.store.Head("alpha"); return ok })
	cl := peerClient(t, a, "mallory")
	r := rand.New(rand.NewPCG(5, 6))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for range 20 {
		req := &pb.HeadsRequest{Heads: randomHeads(r, maxHeads-3, 1<<40)}
		req.Heads = append(req.Heads, &pb.Head{Member: "alpha", Size: 1 << 62}, &pb.Head{Member: "bravo", Size: 1 << 62}, &pb.Head{Member: "mallory", Size: 1 << 62})
		if _, err := cl.Heads(ctx, req); err != nil {
			t.Fatalf("heads: %v", err)
		}
	}
	// The node may ask mallory back; give that time to settle, then look.
	time.Sleep(300 * time.Millisecond)
	roster := 3
	for name, k := range bookkeeping(a) {
		if k > roster {
			t.Errorf("%s holds %d entries after the flood, want at most %d (one per roster member)", name, k, roster)
		}
	}
	for _, l := range a.Status().Logs {
		if l.Lag != 0 || l.KnownSize != l.Size {
			t.Errorf("log %s: lag %d, known size %d, stored %d: an unsigned claim set them", l.Member, l.Lag, l.KnownSize, l.Size)
		}
	}
}

// forgedState is a memberlist delegate whose push/pull state claims huge logs.
type forgedState struct{ heads []*pb.Head }

func (f *forgedState) NodeMeta(int) []byte             { return nil }
func (f *forgedState) NotifyMsg([]byte)                {}
func (f *forgedState) GetBroadcasts(int, int) [][]byte { return nil }
func (f *forgedState) MergeRemoteState([]byte, bool)   {}
func (f *forgedState) LocalState(bool) []byte {
	b, _ := proto.Marshal(&pb.GossipState{Heads: f.heads})
	return b
}
func (f *forgedState) NotifyAlive(*memberlist.Node) error   { return nil }
func (f *forgedState) NotifyMerge([]*memberlist.Node) error { return nil }

// outsider starts a memberlist that knows the cluster label of n but holds no roster key.
func outsider(t *testing.T, n *Node, name string, d memberlist.Delegate) *memberlist.Memberlist {
	t.Helper()
	mc := memberlist.DefaultLANConfig()
	mc.Name = name
	mc.BindAddr, mc.BindPort, mc.AdvertisePort = "127.0.0.1", 0, 0
	mc.Label = n.cfg.ClusterLabel
	mc.Delegate = d
	mc.Logger = log.New(io.Discard, "", 0)
	ml, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ml.Shutdown() })
	return ml
}

func gaugeValue(g interface{ Write(*dto.Metric) error }) float64 {
	var m dto.Metric
	g.Write(&m)
	return m.GetGauge().GetValue()
}

// TestForgedGossipStateLag has an outsider that knows the cluster label push a gossip state
// claiming 2^62 entries of every log and thousands of made-up logs. The node's lag, in its status
// and its metrics, stays what signed checkpoints prove, and its bookkeeping stays bounded.
func TestForgedGossipStateLag(t *testing.T) {
	c := newCluster(t, 2, "alpha", "bravo")
	a := c.start("alpha")
	b := c.start("bravo")
	submitOK(t, a, fixture.Add(0, fixture.PDQ(1)))
	waitFor(t, 10*time.Second, "bravo replicates", func() bool { return b.store.Size("alpha") == 1 })
	r := rand.New(rand.NewPCG(7, 8))
	forged := &forgedState{heads: append(randomHeads(r, 2000, 1<<62), &pb.Head{Member: "alpha", Size: 1 << 62}, &pb.Head{Member: "bravo", Size: 1 << 62})}
	before := metricValue(a.metrics.gossipIn.WithLabelValues("state", "ok"))
	o := outsider(t, a, "eve", forged)
	for range 5 {
		o.Join([]string{a.GossipAddr()})
	}
	waitFor(t, 10*time.Second, "alpha merges the forged states", func() bool {
		return metricValue(a.metrics.gossipIn.WithLabelValues("state", "ok")) >= before+5
	})
	time.Sleep(200 * time.Millisecond)
	a.updateLagMetrics()
	for _, l := range a.Status().Logs {
		if l.Lag != 0 || l.KnownSize != l.Size {
			t.Errorf("log %s: lag %d, known size %d, stored %d: the forged state set them", l.Member, l.Lag, l.KnownSize, l.Size)
		}
		if g := gaugeValue(a.metrics.logLag.WithLabelValues(l.Member)); g != 0 {
			t.Errorf("log %s: metric lag %v, want 0", l.Member, g)
		}
	}
	for name, k := range bookkeeping(a) {
		if k > 2 {
			t.Errorf("%s holds %d entries after the forged state, want at most 2", name, k)
		}
	}
}

// TestPeerAddrMustProveKey has mallory advertise alpha's peer API address as its own, and charlie a
// closed loopback port. bravo dials mallory's address once, finds alpha's key there, counts and
// logs it, and neither uses nor remembers that address for mallory; charlie's closed port is never
// proven either. alpha's real address is proven and remembered.
func TestPeerAddrMustProveKey(t *testing.T) {
	c := newCluster(t, 2, "alpha", "bravo", "charlie", "mallory")
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	a := c.start("alpha")
	c.tweak = func(cfg *Config) {
		switch cfg.Key.ID() {
		case "mallory":
			cfg.PeerAdvertise = a.PeerAddr()
		case "charlie":
			cfg.PeerAdvertise = closedAddr
		}
	}
	b := c.start("bravo")
	c.start("mallory")
	c.start("charlie")
	waitFor(t, 10*time.Second, "bravo sees mallory's address answer with alpha's key", func() bool {
		return refusedCount(b, refPeerAddrWrongKey) >= 1
	})
	if _, err := b.client("mallory"); !errors.Is(err, errAddrRefused) {
		t.Errorf("client for mallory after the refusal: got %v, want errAddrRefused", err)
	}
	if slices.Contains(b.alivePeers(), "mallory") {
		t.Error("mallory is still a source of data for bravo")
	}
	k := refusedCount(b, refPeerAddrWrongKey)
	time.Sleep(time.Second) // several anti-entropy rounds
	if got := refusedCount(b, refPeerAddrWrongKey); got > k+2 {
		t.Errorf("bravo dialled the refused address %v more times", got-k)
	}
	waitFor(t, 10*time.Second, "bravo proves alpha's address", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.peers["alpha"] != nil && b.peers["alpha"].provenAddr == a.PeerAddr()
	})
	b.mu.Lock()
	for _, m := range []string{"mallory", "charlie"} {
		if p := b.peers[m]; p != nil && p.provenAddr != "" {
			t.Errorf("%s's address %s counts as proven", m, p.provenAddr)
		}
	}
	b.mu.Unlock()
}

func TestValidPeerAddr(t *testing.T) {
	long := make([]byte, maxPeerAddr)
	for i := range long {
		long[i] = 'a'
	}
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:7400", true},
		{"node.example.org:7400", true},
		{"[::1]:7400", true},
		{"127.0.0.1", false},
		{":7400", false},
		{"127.0.0.1:0", false},
		{"127.0.0.1:65536", false},
		{"127.0.0.1:http", false},
		{string(long) + ":1", false},
	} {
		if got := validPeerAddr(tc.addr); got != tc.want {
			t.Errorf("validPeerAddr(%q): got %v, want %v", tc.addr, got, tc.want)
		}
	}
}
