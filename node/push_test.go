package node

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// slowGossip makes gossip and anti-entropy too slow to matter within a test, so what arrives
// arrives by push. Every node joins every node started before it, so membership is complete
// without gossip rounds.
func slowGossip(fanout int) func(*Config) {
	return func(cfg *Config) {
		cfg.GossipInterval = time.Minute
		cfg.AntiEntropyInterval = time.Minute
		cfg.PushFanout = fanout
	}
}

func pushCount(n *Node, vec string, outcome string) float64 {
	if vec == "sent" {
		return metricValue(n.push.sent.WithLabelValues(outcome))
	}
	return metricValue(n.push.recv.WithLabelValues(outcome))
}

// waitPeers waits until every node of c can reach every other.
func (c *cluster) waitPeers(t *testing.T) {
	t.Helper()
	waitFor(t, 10*time.Second, "every node knows every other", func() bool {
		for _, n := range c.nodes {
			if len(n.alivePeers()) < len(c.nodes)-1 {
				return false
			}
		}
		return true
	})
}

func TestPushChildren(t *testing.T) {
	for _, tc := range []struct {
		i, size, k int
		want       []int
	}{
		{0, 5, 2, []int{1, 2}},
		{1, 5, 2, []int{3, 4}},
		{2, 5, 2, nil},
		{0, 100, 6, []int{1, 2, 3, 4, 5, 6}},
		{16, 100, 6, []int{97, 98, 99}},
	} {
		got := pushChildren(tc.i, tc.size, tc.k)
		if !slicesEqual(got, tc.want) {
			t.Errorf("pushChildren(%d, %d, %d): got %v, want %v", tc.i, tc.size, tc.k, got, tc.want)
		}
	}
}

func slicesEqual(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestPushPropagatesWithoutGossip: with gossip and anti-entropy a minute apart, an add reaches
// every node of a two-level push tree within a second, relayed by the inner node; when a node of
// the tree is down, its children get the push from its parent.
func TestPushPropagatesWithoutGossip(t *testing.T) {
	ids := []string{"alpha", "bravo", "charlie", "delta", "echo"}
	c := newCluster(t, 2, ids...)
	c.tweak = slowGossip(2)
	for _, id := range ids {
		c.start(id)
	}
	c.waitPeers(t)
	a := c.nodes["alpha"]
	// alpha's tree with fan-out 2: alpha -> bravo, charlie; bravo -> delta, echo.
	submitOK(t, a, fixture.Add(fixture.At(1), fixture.PDQ(1)))
	waitFor(t, 15*time.Second, "every node matches the add", func() bool {
		for _, n := range c.nodes {
			if len(matches(n, fixture.PDQ(1))) != 1 {
				return false
			}
		}
		return true
	})
	waitFor(t, 15*time.Second, "bravo pushes on to its two children", func() bool { return pushCount(c.nodes["bravo"], "sent", "ok") >= 2 })
	for _, id := range ids {
		n := c.nodes[id]
		t.Logf("%s: recv stored %v known %v fetching %v refused %v; sent ok %v error %v skipped %v", id, pushCount(n, "recv", "stored"), pushCount(n, "recv", "known"), pushCount(n, "recv", "fetching"), pushCount(n, "recv", "refused"), pushCount(n, "sent", "ok"), pushCount(n, "sent", "error"), pushCount(n, "sent", "skipped"))
	}
	for _, id := range []string{"delta", "echo"} {
		// (memberlist piggybacks the gossiped checkpoint on its probes: the push may find it known)
		if got := pushCount(c.nodes[id], "recv", "stored") + pushCount(c.nodes[id], "recv", "known"); got < 1 {
			t.Errorf("%s took %v pushes, want at least 1 (relayed by bravo)", id, got)
		}
	}
	if got := pushCount(c.nodes["bravo"], "sent", "ok"); got < 2 {
		t.Errorf("bravo pushed on %v times, want at least 2", got)
	}
	// bravo goes down: alpha pushes to its children in its place.
	c.stop("bravo")
	submitOK(t, a, fixture.Add(fixture.At(1), fixture.PDQ(2)))
	waitFor(t, 15*time.Second, "the live nodes match the second add", func() bool {
		for _, n := range c.nodes {
			if len(matches(n, fixture.PDQ(2))) != 1 {
				return false
			}
		}
		return true
	})
}

// TestPushHostile has mallory, a member with a roster key, push to bravo: forged checkpoints,
// entries that do not match, ranges that do not end at the checkpoint, too many entries, an
// oversized message, old checkpoints, a fork, a flood. Bravo stores nothing that does not verify,
// pushes nothing on but what it stored, records the fork as evidence, and keeps its bookkeeping
// bounded. charlie, bravo's child in alpha's push tree, sees only the verified push.
func TestPushHostile(t *testing.T) {
	c := newCluster(t, 2, "alpha", "bravo", "charlie", "mallory")
	c.tweak = slowGossip(1) // alpha's tree: alpha -> bravo -> charlie -> mallory
	b := c.start("bravo")
	ch := c.start("charlie")
	c.waitPeers(t)
	cl := peerClient(t, b, "mallory")
	ctx := t.Context()
	l := fixture.NewLog(c.g.ID, fixture.Key("alpha"))
	l.Append(fixture.Add(fixture.At(1), fixture.PDQ(1)), fixture.Add(fixture.At(1), fixture.PDQ(2)))
	good := l.Checkpoint()
	before := bookkeeping(b)

	refuse := []struct {
		name string
		req  *pb.PushRequest
		code codes.Code
	}{
		{"forged checkpoint", &pb.PushRequest{Checkpoint: flipSig(good), Entries: l.Entries}, codes.InvalidArgument},
		{"checkpoint of no member", &pb.PushRequest{Checkpoint: fixture.NewLog(c.g.ID, fixture.Key("zulu")).Checkpoint()}, codes.InvalidArgument},
		{"entries that do not match", &pb.PushRequest{Checkpoint: good, Entries: [][]byte{l.Entries[0], fixture.Marshal(fixture.Add(fixture.At(1), fixture.PDQ(3)))}}, codes.InvalidArgument},
		{"range short of the checkpoint", &pb.PushRequest{Checkpoint: good, Entries: l.Entries[:1]}, codes.InvalidArgument},
		{"range past the checkpoint", &pb.PushRequest{Checkpoint: good, Entries: append(l.Entries, l.Entries[0])}, codes.InvalidArgument},
		{"too many entries", &pb.PushRequest{Checkpoint: good, Entries: make([][]byte, maxPushEntries+1)}, codes.InvalidArgument},
		{"too many bytes", &pb.PushRequest{Checkpoint: good, Start: 1, Entries: [][]byte{bytes.Repeat([]byte{1}, maxPushBytes+1)}}, codes.InvalidArgument},
		{"oversized message", &pb.PushRequest{Checkpoint: good, Entries: [][]byte{bytes.Repeat([]byte{1}, maxPeerRequest+1)}}, codes.ResourceExhausted},
	}
	for _, tc := range refuse {
		_, err := cl.Push(ctx, tc.req)
		if status.Code(err) != tc.code {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.code)
		}
	}
	if got := b.store.Size("alpha"); got != 0 {
		t.Fatalf("bravo stored %d entries of alpha's log from refused pushes, want 0", got)
	}
	if got := pushCount(b, "sent", "ok") + pushCount(b, "sent", "error"); got != 0 {
		t.Errorf("bravo pushed on %v times after refused pushes, want 0", got)
	}

	// The verified push is stored and pushed on to charlie.
	if resp, err := cl.Push(ctx, &pb.PushRequest{Checkpoint: good, Entries: l.Entries}); err != nil || resp.Size != 2 {
		t.Fatalf("good push: got %v, %v; want size 2", resp, err)
	}
	waitFor(t, 10*time.Second, "bravo pushes on to charlie", func() bool { return pushCount(b, "sent", "ok") == 1 })
	// charlie takes the push (or, on a slow machine, already fetched the range from bravo over the
	// pull path, and the push is then known): one push arrived, and charlie holds the log.
	if got := pushCount(ch, "recv", "stored") + pushCount(ch, "recv", "known"); got != 1 || ch.store.Size("alpha") != 2 {
		t.Errorf("charlie received %v pushes (stored or known) and holds %d entries of alpha's log, want 1 and 2", got, ch.store.Size("alpha"))
	}
	sent := pushCount(b, "sent", "ok")

	// Replays and old checkpoints are known: nothing stored again, nothing pushed on.
	old := fixture.NewLog(c.g.ID, fixture.Key("alpha"))
	old.Append(fixture.Add(fixture.At(1), fixture.PDQ(1)))
	for _, req := range []*pb.PushRequest{
		{Checkpoint: good, Entries: l.Entries},
		{Checkpoint: good, Start: 1, Entries: l.Entries[1:]},
		{Checkpoint: old.Checkpoint(), Entries: old.Entries},
		{Checkpoint: old.Checkpoint()},
	} {
		if _, err := cl.Push(ctx, req); err != nil {
			t.Errorf("replayed push: %v", err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if got := pushCount(b, "sent", "ok"); got != sent {
		t.Errorf("bravo pushed on replays: sent %v, want %v", got, sent)
	}

	// A second history of alpha's log at the same size: evidence, and the log is frozen.
	fork := fixture.NewLog(c.g.ID, fixture.Key("alpha"))
	fork.Append(fixture.Add(fixture.At(1), fixture.PDQ(1)), fixture.Add(fixture.At(1), fixture.PDQ(4)))
	if _, err := cl.Push(ctx, &pb.PushRequest{Checkpoint: fork.Checkpoint(), Entries: fork.Entries}); err != nil {
		t.Errorf("forked push: %v", err)
	}
	if b.store.Evidence()["alpha"] == nil {
		t.Error("bravo holds no evidence after a pushed fork")
	}
	if len(matches(b, fixture.PDQ(4))) != 0 {
		t.Error("bravo matches an entry of the fork")
	}

	// A flood of concurrent pushes of large forged ranges: refused, bounded, the node serves on.
	var wg sync.WaitGroup
	big := make([][]byte, maxPushEntries)
	for i := range big {
		big[i] = bytes.Repeat([]byte{byte(i)}, 900)
	}
	var mu sync.Mutex
	seen := map[codes.Code]int{}
	for range 200 {
		wg.Go(func() {
			_, err := cl.Push(ctx, &pb.PushRequest{Checkpoint: flipSig(good), Entries: big})
			mu.Lock()
			seen[status.Code(err)]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if seen[codes.OK] != 0 {
		t.Errorf("forged pushes accepted: %v", seen)
	}
	after := bookkeeping(b)
	for k, v := range after {
		if v > before[k]+2 {
			t.Errorf("bookkeeping %s grew from %d to %d", k, before[k], v)
		}
	}
	if got := ch.store.Size("alpha"); got != 2 {
		t.Errorf("charlie holds %d entries of alpha's log, want 2", got)
	}
}

// TestPushCosignedHeadHostile: a node hands its cosignature of a head to the head's author by Push
// (a checkpoint alone). What a peer can send that way: a forged cosignature, a cosignature moved
// from another tree head, an old head, a replay. The author keeps only cosignatures that verify on
// its head, and nothing else changes.
func TestPushCosignedHeadHostile(t *testing.T) {
	c := newCluster(t, 2, "alpha", "bravo", "mallory")
	c.tweak = slowGossip(6)
	a := c.start("alpha")
	submitOK(t, a, fixture.Add(0, fixture.PDQ(1)))
	waitFor(t, 10*time.Second, "alpha signs its log", func() bool { h, ok := a.store.Head("alpha"); return ok && h.Size == 1 })
	first := mustHead(t, a, "alpha")
	cl := peerClient(t, a, "mallory")
	ctx := t.Context()
	at := time.Now()
	cosigned := func(cp *consortium.Checkpoint, by string) *consortium.Checkpoint {
		t.Helper()
		out, err := consortium.Cosign(c.g.ID, c.g, cp, fixture.Key(by), at)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	oldByBravo := cosigned(first, "bravo")
	submitOK(t, a, fixture.Add(0, fixture.PDQ(2)))
	waitFor(t, 10*time.Second, "alpha signs its log again", func() bool { h, ok := a.store.Head("alpha"); return ok && h.Size == 2 })
	head := mustHead(t, a, "alpha")
	byBravo := cosigned(head, "bravo")
	// bravo's cosignature of size 1 moved under the checkpoint of size 2.
	lines := strings.SplitAfter(string(oldByBravo.Note), "\n")
	moved := append(append([]byte(nil), head.Note...), lines[len(lines)-2]...)

	for _, tc := range []struct {
		name string
		note []byte
		code codes.Code
	}{
		{"forged cosignature", flipSig(byBravo.Note), codes.InvalidArgument},
		{"cosignature of another tree head", moved, codes.InvalidArgument},
		{"old head, cosigned", oldByBravo.Note, codes.OK},
		{"the head, replayed", head.Note, codes.OK},
	} {
		_, err := cl.Push(ctx, &pb.PushRequest{Checkpoint: tc.note})
		if status.Code(err) != tc.code {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.code)
		}
		if h := mustHead(t, a, "alpha"); h.Size != 2 || h.HasCosigner("bravo") {
			t.Errorf("%s: alpha's head is size %d with cosigners %v, want size 2 without bravo", tc.name, h.Size, h.Cosigners)
		}
	}
	if a.store.Evidence()["alpha"] != nil {
		t.Error("alpha holds evidence against itself after pushes of its own heads")
	}
	// A genuine cosignature is kept (by mallory too: it is a member, and cosigned what it holds).
	for _, by := range []string{"bravo", "mallory"} {
		if _, err := cl.Push(ctx, &pb.PushRequest{Checkpoint: cosigned(head, by).Note}); err != nil {
			t.Errorf("%s's cosignature: %v", by, err)
		}
	}
	if h := mustHead(t, a, "alpha"); !h.HasCosigner("bravo") || !h.HasCosigner("mallory") || h.Size != 2 {
		t.Errorf("alpha's head: size %d, cosigners %v; want size 2 cosigned by bravo and mallory", h.Size, h.Cosigners)
	}
}
