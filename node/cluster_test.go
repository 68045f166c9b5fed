package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"github.com/hashfed/hashfed/store"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// partition is a set of network cuts between members, shared by a test cluster's nodes.
type partition struct {
	mu    sync.Mutex
	group map[string]int // member to group; members in different groups cannot talk
}

func (p *partition) cut(groups ...[]string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.group = map[string]int{}
	for i, g := range groups {
		for _, m := range g {
			p.group[m] = i + 1
		}
	}
}

func (p *partition) heal() { p.mu.Lock(); p.group = nil; p.mu.Unlock() }

// blocks returns the filter of member: true for members in another group.
func (p *partition) blocks(member string) func(string) bool {
	return func(other string) bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.group == nil {
			return false
		}
		a, b := p.group[member], p.group[other]
		return a != 0 && b != 0 && a != b
	}
}

// cluster is a test consortium of nodes on loopback.
type cluster struct {
	t     *testing.T
	g     *consortium.Genesis
	dir   string
	nodes map[string]*Node
	part  *partition
	tweak func(*Config)
}

func newCluster(t *testing.T, quorum int, ids ...string) *cluster {
	t.Helper()
	return &cluster{t: t, g: fixture.Genesis(quorum, fixture.Members(ids...)...), dir: t.TempDir(), nodes: map[string]*Node{}, part: &partition{}}
}

func (c *cluster) config(id string) Config {
	cfg := DefaultConfig()
	cfg.Genesis = c.g
	cfg.Key = fixture.Key(id)
	cfg.DataDir = filepath.Join(c.dir, id)
	cfg.PeerListen = "127.0.0.1:0"
	cfg.GossipListen = "127.0.0.1:0"
	cfg.MemberListen = ""
	cfg.HTTPListen = ""
	cfg.CheckpointInterval = 50 * time.Millisecond
	cfg.AntiEntropyInterval = 300 * time.Millisecond
	cfg.GossipInterval = 50 * time.Millisecond
	cfg.RequestTimeout = 5 * time.Second
	cfg.Store.NoSync = true
	cfg.netFilter = c.part.blocks(id)
	for _, n := range c.nodes {
		cfg.Join = append(cfg.Join, n.GossipAddr())
	}
	if c.tweak != nil {
		c.tweak(&cfg)
	}
	return cfg
}

// start starts (or restarts, on the same data directory) the node of id.
func (c *cluster) start(id string) *Node {
	c.t.Helper()
	n, err := New(c.config(id))
	if err != nil {
		c.t.Fatalf("node %s: %v", id, err)
	}
	if err := n.Start(); err != nil {
		c.t.Fatalf("start %s: %v", id, err)
	}
	c.nodes[id] = n
	c.t.Cleanup(func() { n.Close() })
	return n
}

func (c *cluster) stop(id string) {
	c.t.Helper()
	if err := c.nodes[id].Close(); err != nil {
		c.t.Fatalf("close %s: %v", id, err)
	}
	delete(c.nodes, id)
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func submitOK(t *testing.T, n *Node, es ...*pb.Entry) []store.Appended {
	t.Helper()
	out, err := n.Submit(t.Context(), es)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range out {
		if a.Err != nil {
			t.Fatalf("%s: entry %d refused: %v", n.id, i, a.Err)
		}
	}
	return out
}

func matches(n *Node, sig consortium.Signal) []store.Match {
	ms, _ := n.store.MatchSignal(sig, store.DefaultQuery())
	return ms
}

func digestOf(n *Node) consortium.Hash {
	var d consortium.Hash
	n.store.View(func(s *consortium.State) { d = s.Digest() })
	return d
}

// converged reports whether every node holds the same state digest.
func (c *cluster) converged() bool {
	var first *consortium.Hash
	for _, n := range c.nodes {
		d := digestOf(n)
		if first == nil {
			first = &d
		} else if d != *first {
			return false
		}
	}
	return true
}

func (c *cluster) describe() string {
	s := ""
	for id, n := range c.nodes {
		d := digestOf(n)
		s += fmt.Sprintf("%s: digest %x sizes %v; ", id, d[:4], n.store.Sizes())
	}
	return s
}

func TestReplicationAddRevokeOpinion(t *testing.T) {
	c := newCluster(t, 2, "alpha", "bravo", "charlie")
	a, b, ch := c.start("alpha"), c.start("bravo"), c.start("charlie")
	sig := fixture.PDQ(1)
	submitOK(t, a, fixture.Add(0, sig, "behaviour:glorification-of-terrorist-acts"))
	for _, n := range []*Node{b, ch} {
		waitFor(t, 10*time.Second, n.id+" matches alpha's add", func() bool {
			ms := matches(n, sig)
			return len(ms) == 1 && ms[0].Listings[0].Member == "alpha" && ms[0].Listings[0].Labels[0] == "behaviour:glorification-of-terrorist-acts"
		})
	}
	submitOK(t, ch, fixture.Opinion(0, sig, pb.Stance_STANCE_DISAGREE_WITH_LABELS))
	waitFor(t, 10*time.Second, "charlie's opinion at alpha", func() bool {
		ms := matches(a, sig)
		return len(ms) == 1 && len(ms[0].Opinions) == 1 && ms[0].Opinions[0].Author == "charlie"
	})
	submitOK(t, a, fixture.RevokeSignal(0, sig))
	for _, n := range []*Node{b, ch} {
		waitFor(t, 10*time.Second, n.id+" stops matching the revoked signal", func() bool { return len(matches(n, sig)) == 0 })
	}
	waitFor(t, 10*time.Second, "one state everywhere", c.converged)
	// Every node cosigned the others' checkpoints.
	waitFor(t, 10*time.Second, "cosignatures", func() bool {
		h, ok := b.store.Head("alpha")
		return ok && h.HasCosigner("bravo")
	})
}

func TestCatchUpAfterDowntime(t *testing.T) {
	c := newCluster(t, 2, "alpha", "bravo", "charlie")
	a := c.start("alpha")
	c.start("bravo")
	c.start("charlie")
	submitOK(t, a, fixture.Add(0, fixture.PDQ(0)))
	waitFor(t, 10*time.Second, "first add everywhere", c.converged)
	c.stop("charlie")
	var es []*pb.Entry
	for i := 1; i <= 2000; i++ {
		es = append(es, fixture.Add(0, fixture.PDQ(i)))
	}
	submitOK(t, a, es...)
	ch := c.start("charlie")
	start := time.Now()
	waitFor(t, 15*time.Second, "charlie catches up", func() bool { return ch.store.Size("alpha") == 2001 })
	t.Logf("charlie caught up with 2000 entries in %v", time.Since(start))
	waitFor(t, 10*time.Second, "one state everywhere", c.converged)
}

func TestPartitionHeals(t *testing.T) {
	c := newCluster(t, 2, "alpha", "bravo", "charlie", "delta")
	for _, id := range []string{"alpha", "bravo", "charlie", "delta"} {
		c.start(id)
	}
	submitOK(t, c.nodes["alpha"], fixture.Add(0, fixture.PDQ(1)))
	waitFor(t, 10*time.Second, "initial convergence", c.converged)
	c.part.cut([]string{"alpha", "bravo"}, []string{"charlie", "delta"})
	submitOK(t, c.nodes["alpha"], fixture.Add(0, fixture.PDQ(2)))
	submitOK(t, c.nodes["charlie"], fixture.Add(0, fixture.PDQ(3)), fixture.Add(0, fixture.PDQ(4)))
	submitOK(t, c.nodes["delta"], fixture.Opinion(0, fixture.PDQ(1), pb.Stance_STANCE_AGREE))
	waitFor(t, 10*time.Second, "writes spread within each side", func() bool {
		return c.nodes["bravo"].store.Size("alpha") == 2 && c.nodes["delta"].store.Size("charlie") == 2 && c.nodes["charlie"].store.Size("delta") == 1
	})
	if c.nodes["alpha"].store.Size("charlie") != 0 || c.nodes["charlie"].store.Size("alpha") != 1 {
		t.Fatalf("writes crossed the partition: %s", c.describe())
	}
	c.part.heal()
	start := time.Now()
	waitFor(t, 20*time.Second, "one state after healing", func() bool {
		return c.converged() && c.nodes["alpha"].store.Size("charlie") == 2 && c.nodes["charlie"].store.Size("alpha") == 2
	})
	t.Logf("converged %v after healing", time.Since(start))
}

func TestAdmittedMemberBootstraps(t *testing.T) {
	c := newCluster(t, 2, "alpha", "bravo", "charlie")
	a, b := c.start("alpha"), c.start("bravo")
	c.start("charlie")
	var es []*pb.Entry
	for i := 0; i < 300; i++ {
		es = append(es, fixture.Add(0, fixture.PDQ(i), "behaviour:threat-incitement"))
	}
	submitOK(t, a, es...)
	submitOK(t, b, fixture.Add(0, fixture.MD5(7)))
	out := submitOK(t, a, fixture.Admit(0, "alpha", 0, "delta"))
	waitFor(t, 10*time.Second, "bravo sees the proposal", func() bool { return b.store.Size("alpha") == 301 })
	submitOK(t, b, fixture.Endorse(0, 0, out[0].Entry))
	waitFor(t, 10*time.Second, "delta admitted at alpha", func() bool {
		var ok bool
		a.store.View(func(s *consortium.State) { ok = s.Roster().CanAdd("delta") })
		return ok
	})
	d := c.start("delta")
	waitFor(t, 20*time.Second, "delta bootstraps the whole set", func() bool {
		return d.store.Size("alpha") == 301 && d.store.Size("bravo") == 2 && len(matches(d, fixture.PDQ(299))) == 1
	})
	submitOK(t, d, fixture.Add(0, fixture.PDQ(5000)))
	waitFor(t, 10*time.Second, "delta's add reaches alpha", func() bool { return len(matches(a, fixture.PDQ(5000))) == 1 })
	waitFor(t, 10*time.Second, "one state everywhere", c.converged)
}

func TestEquivocationCaughtEverywhere(t *testing.T) {
	c := newCluster(t, 2, "alpha", "bravo", "charlie")
	a, b, ch := c.start("alpha"), c.start("bravo"), c.start("charlie")
	submitOK(t, a, fixture.Add(0, fixture.PDQ(1)), fixture.Add(0, fixture.PDQ(2)))
	waitFor(t, 10*time.Second, "alpha's log everywhere", func() bool { return b.store.Size("alpha") == 2 && ch.store.Size("alpha") == 2 })
	// alpha's key signs a second history of size 2 and shows it to bravo alone.
	es, _ := a.store.Entries("alpha", 0, 1, 1<<20)
	fork := fixture.NewLog(c.g.ID, fixture.Key("alpha"))
	fork.AppendRaw(es[0])
	fork.Append(fixture.Add(fixture.At(99), fixture.PDQ(666)))
	cp, err := b.openCheckpoint(fork.Checkpoint())
	if err != nil {
		t.Fatal(err)
	}
	b.handleCheckpoint(cp, "")
	for _, n := range []*Node{a, b, ch} {
		waitFor(t, 10*time.Second, n.id+" holds evidence against alpha", func() bool { return n.store.Evidence()["alpha"] != nil })
		ev := n.store.Evidence()["alpha"]
		if _, err := consortium.ParseEvidence(c.g.ID, c.g, ev.Marshal()); err != nil {
			t.Errorf("%s: evidence does not verify offline: %v", n.id, err)
		}
	}
	if st := ch.Status(); len(st.Equivocations) != 1 || st.Equivocations[0].Member != "alpha" {
		t.Errorf("status does not report the equivocation: %+v", st.Equivocations)
	}
}

func TestTamperedRangeFetchedElsewhere(t *testing.T) {
	c := newCluster(t, 2, "alpha", "bravo", "charlie", "delta")
	c.tweak = func(cfg *Config) {
		if cfg.Key.ID() == "bravo" {
			cfg.tamperRange = func(ch *pb.RangeChunk) {
				if len(ch.Entries) > 0 {
					e := append([]byte(nil), ch.Entries[len(ch.Entries)/2]...)
					e[len(e)-1] ^= 1
					ch.Entries[len(ch.Entries)/2] = e
				}
			}
		}
	}
	a, b, d := c.start("alpha"), c.start("bravo"), c.start("delta")
	var es []*pb.Entry
	for i := 0; i < 50; i++ {
		es = append(es, fixture.Add(0, fixture.PDQ(i)))
	}
	submitOK(t, a, es...)
	waitFor(t, 10*time.Second, "bravo and delta hold alpha's log", func() bool { return b.store.Size("alpha") == 50 && d.store.Size("alpha") == 50 })
	c.stop("alpha")
	// charlie can reach only the liar at first: its ranges do not verify, nothing is stored, and
	// the bad ranges are counted against bravo.
	c.part.cut([]string{"charlie", "bravo"}, []string{"delta"})
	ch := c.start("charlie")
	bad := func() float64 {
		var m dto.Metric
		ch.metrics.badRanges.WithLabelValues("bravo").Write(&m)
		return m.GetCounter().GetValue()
	}
	waitFor(t, 10*time.Second, "charlie refuses bravo's tampered range", func() bool { return bad() >= 1 })
	if n := ch.store.Size("alpha"); n != 0 {
		t.Fatalf("charlie stored %d entries from the lying peer", n)
	}
	c.part.heal()
	ch.want("alpha", 50, "bravo")
	waitFor(t, 10*time.Second, "charlie gets alpha's log from the honest peer", func() bool { return ch.store.Size("alpha") == 50 })
	if digestOf(ch) != digestOf(d) {
		t.Error("charlie's state differs from delta's")
	}
}

func TestPeerAPIRefusesKeysNotOnTheRoster(t *testing.T) {
	c := newCluster(t, 1, "alpha", "bravo")
	a := c.start("alpha")
	dial := func(key *consortium.PrivateKey) error {
		cert, err := selfCert(key.ID(), key.Ed25519())
		if err != nil {
			t.Fatal(err)
		}
		conf := &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}
		conn, err := grpc.NewClient(a.PeerAddr(), grpc.WithTransportCredentials(credentials.NewTLS(conf)))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		_, err = pb.NewPeerServiceClient(conn).Heads(ctx, &pb.HeadsRequest{})
		return err
	}
	if err := dial(fixture.Key("mallory")); err == nil {
		t.Error("a key not on the roster got an answer from the peer API")
	}
	if err := dial(fixture.Key("bravo")); err != nil {
		t.Errorf("a roster key was refused: %v", err)
	}
	// Plain TLS without a client certificate gets nothing either.
	conn, _ := grpc.NewClient(a.PeerAddr(), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{InsecureSkipVerify: true})))
	defer conn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := pb.NewPeerServiceClient(conn).Heads(ctx, &pb.HeadsRequest{}); err == nil {
		t.Error("a client without a certificate got an answer")
	}
}

// TestThreeWayPartitions cuts six nodes into three groups, writes in each (adds, revokes, opinions,
// and a roster proposal endorsed across the cut), and heals in several orders. Every node must reach
// the same state digest; the time to converge after the last heal is reported.
func TestThreeWayPartitions(t *testing.T) {
	A, B, C := []string{"a1", "a2"}, []string{"b1", "b2"}, []string{"c1", "c2"}
	join := func(gs ...[]string) []string {
		var out []string
		for _, g := range gs {
			out = append(out, g...)
		}
		return out
	}
	orders := []struct {
		name   string
		stages [][][]string // group layouts after each heal step; the last step heals everything
	}{
		{"all at once", nil},
		{"A+B, then C", [][][]string{{join(A, B), C}}},
		{"B+C, then A", [][][]string{{A, join(B, C)}}},
		{"A+C, then B", [][][]string{{join(A, C), B}}},
	}
	for _, o := range orders {
		t.Run(o.name, func(t *testing.T) {
			c := newCluster(t, 3, "a1", "a2", "b1", "b2", "c1", "c2")
			for _, id := range join(A, B, C) {
				c.start(id)
			}
			out := submitOK(t, c.nodes["a1"], fixture.Add(0, fixture.PDQ(1)), fixture.Add(0, fixture.PDQ(2)), fixture.Admit(0, "a1", 0, "d1"))
			waitFor(t, 15*time.Second, "initial convergence", func() bool { return c.converged() && c.nodes["c2"].store.Size("a1") == 3 })
			c.part.cut(A, B, C)
			// Writes on every side, including endorsements of the admission from both other sides
			// (proposer + b1 + b2 + c1 = 4 votes, the effective quorum of six voters).
			submitOK(t, c.nodes["a1"], fixture.RevokeSignal(0, fixture.PDQ(1)))
			submitOK(t, c.nodes["a2"], fixture.Add(0, fixture.PDQ(3)))
			submitOK(t, c.nodes["b1"], fixture.Add(0, fixture.PDQ(1)), fixture.Endorse(0, 0, out[2].Entry))
			submitOK(t, c.nodes["b2"], fixture.Opinion(0, fixture.PDQ(2), pb.Stance_STANCE_FALSE_POSITIVE), fixture.Endorse(0, 0, out[2].Entry))
			submitOK(t, c.nodes["c1"], fixture.Add(0, fixture.MD5(4)), fixture.Endorse(0, 0, out[2].Entry))
			submitOK(t, c.nodes["c2"], fixture.Add(0, fixture.PDQ(9)), fixture.RevokeSignal(0, fixture.PDQ(9)))
			time.Sleep(500 * time.Millisecond)
			if c.nodes["a1"].store.Size("b1") != 0 || c.nodes["c1"].store.Size("a1") != 3 {
				t.Fatalf("writes crossed the partition: %s", c.describe())
			}
			for _, layout := range o.stages {
				c.part.cut(layout...)
				time.Sleep(time.Second)
			}
			c.part.heal()
			start := time.Now()
			waitFor(t, 30*time.Second, "one state after the last heal", func() bool {
				if !c.converged() {
					return false
				}
				for _, n := range c.nodes {
					if n.store.Size("a1") != 4 || n.store.Size("b1") != 2 || n.store.Size("b2") != 2 || n.store.Size("c1") != 2 {
						return false
					}
				}
				return true
			})
			var epoch uint64
			c.nodes["c2"].store.View(func(s *consortium.State) { epoch = s.Roster().Epoch })
			if epoch != 1 {
				t.Errorf("the admission endorsed across the cut did not take effect: epoch %d", epoch)
			}
			t.Logf("%s: six nodes converged %v after the last heal", o.name, time.Since(start).Round(time.Millisecond))
		})
	}
}

// TestOverload opens many more match streams than allowed, floods unary matches, and runs a bulk
// import at the same time. The node refuses the excess with RESOURCE_EXHAUSTED, keeps its memory
// bounded, completes the import, and keeps answering within the limits.
func TestOverload(t *testing.T) {
	c := newCluster(t, 1, "alpha", "bravo")
	c.tweak = func(cfg *Config) {
		cfg.MemberListen = "127.0.0.1:0"
		cfg.MaxMatchStreams = 4
		cfg.MaxInflight = 8
		cfg.Store.MaxQueued = 50_000
	}
	a := c.start("alpha")
	conn, err := grpc.NewClient(a.MemberAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cl := pb.NewMemberServiceClient(conn)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	var mu sync.Mutex
	got := map[string]map[codes.Code]int{"stream": {}, "unary": {}, "import": {}}
	count := func(kind string, err error) {
		mu.Lock()
		got[kind][status.Code(err)]++
		mu.Unlock()
	}
	var wg sync.WaitGroup
	// 40 bulk match streams, each sending 200 queries.
	for range 40 {
		wg.Go(func() {
			s, err := cl.MatchStream(ctx)
			if err == nil {
				for i := range 200 {
					if err = s.Send(&pb.MatchRequest{Id: fmt.Sprint(i), Signal: fixture.PDQ(i).Proto()}); err != nil {
						break
					}
				}
				s.CloseSend()
				for err == nil {
					_, err = s.Recv()
				}
				if errors.Is(err, io.EOF) {
					err = nil
				}
			}
			count("stream", err)
		})
	}
	// 64 clients hammering unary Match.
	for range 64 {
		wg.Go(func() {
			for i := range 50 {
				_, err := cl.Match(ctx, &pb.MatchRequest{Signal: fixture.PDQ(i).Proto()})
				count("unary", err)
			}
		})
	}
	// Bulk imports: 20 of 10,000 entries at once; the commit queue holds 50,000.
	for k := range 20 {
		wg.Go(func() {
			var es []*pb.Entry
			for i := range 10_000 {
				es = append(es, fixture.Add(0, fixture.PDQ(k*100_000+i)))
			}
			_, err := cl.Submit(ctx, &pb.SubmitRequest{Entries: es})
			count("import", err)
		})
	}
	wg.Wait()
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	t.Logf("outcomes: %v; heap in use %d MB -> %d MB", got, before.HeapInuse>>20, after.HeapInuse>>20)
	for kind, m := range got {
		if m[codes.ResourceExhausted] == 0 {
			t.Errorf("%s: nothing was refused with RESOURCE_EXHAUSTED: %v", kind, m)
		}
		if m[codes.OK] == 0 {
			t.Errorf("%s: nothing got through: %v", kind, m)
		}
		for code := range m {
			if code != codes.OK && code != codes.ResourceExhausted {
				t.Errorf("%s: unexpected outcome %v: %v", kind, code, m)
			}
		}
	}
	if n := a.store.Size("alpha"); n != uint64(got["import"][codes.OK]*10_000) {
		t.Errorf("log holds %d entries, %d imports of 10,000 succeeded", n, got["import"][codes.OK])
	}
	// Within the limits everything answers again.
	if _, err := cl.Match(ctx, &pb.MatchRequest{Signal: fixture.PDQ(1).Proto()}); err != nil {
		t.Errorf("match after the storm: %v", err)
	}
}
