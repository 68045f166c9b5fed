package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	dto "github.com/prometheus/client_model/go"
)

// TestForkResolvedEverywhere is the split-brain attack: member alpha signs two histories that
// share their first three entries and shows one to bravo, the other to charlie. Detecting the
// equivocation is not enough: once the evidence (with the agreed size, 3) has spread, every node
// applies alpha's log up to entry 3 only, so digests are equal and a signal alpha listed only
// beyond the fork point matches nowhere; a restart keeps it.
func TestForkResolvedEverywhere(t *testing.T) {
	c := newCluster(t, 2, "alpha", "bravo", "charlie", "delta", "echo")
	b, ch, d := c.start("bravo"), c.start("charlie"), c.start("delta")
	la := fixture.NewLog(c.g.ID, fixture.Key("alpha"))
	lb := fixture.NewLog(c.g.ID, fixture.Key("alpha"))
	for i := 1; i <= 3; i++ {
		la.Append(fixture.Add(fixture.At(int64(i)), fixture.PDQ(i)))
		lb.Append(fixture.Add(fixture.At(int64(i)), fixture.PDQ(i)))
	}
	common := append([][]byte(nil), la.Entries...)
	// alpha's honest beginning reaches everyone.
	deliverAlpha(t, b, la)
	waitFor(t, 10*time.Second, "alpha's first entries everywhere", func() bool {
		return ch.store.Size("alpha") == 3 && d.store.Size("alpha") == 3
	})
	// Then two histories: bravo gets one, charlie the other.
	onlyA, onlyB := fixture.PDQ(10), fixture.PDQ(20)
	la.Append(fixture.Add(fixture.At(10), onlyA), fixture.Add(fixture.At(11), fixture.PDQ(11)))
	lb.Append(fixture.Add(fixture.At(10), onlyB), fixture.Add(fixture.At(11), fixture.PDQ(21)), fixture.Add(fixture.At(12), fixture.PDQ(22)))
	deliverAlpha(t, b, la)
	deliverAlpha(t, ch, lb)

	want, err := consortium.Replay(c.g, consortium.Logs{"alpha": common}, consortium.ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantDigest := want.Digest()
	resolved := func(n *Node) bool {
		agreed, ok := n.store.Evidence()["alpha"].AgreedSize()
		return ok && agreed == 3 && n.store.Cutoffs()["alpha"] == 3 && digestOf(n) == wantDigest
	}
	for _, n := range []*Node{b, ch, d} {
		waitFor(t, 20*time.Second, n.id+" applies alpha's log up to the fork point ("+c.describe()+")", func() bool { return resolved(n) })
	}
	check := func() {
		t.Helper()
		for id, n := range c.nodes {
			if got := digestOf(n); got != wantDigest {
				t.Errorf("%s: digest %x, want %x (alpha's log up to the fork point)", id, got[:4], wantDigest[:4])
			}
			for _, sig := range []consortium.Signal{onlyA, onlyB} {
				if ms := matches(n, sig); len(ms) != 0 {
					t.Errorf("%s: a signal alpha listed only after the fork matches: %+v", id, ms)
				}
			}
			if ms := matches(n, fixture.PDQ(2)); len(ms) != 1 {
				t.Errorf("%s: a signal alpha listed before the fork: got %d matches, want 1", id, len(ms))
			}
			// A point-in-time export (hashfed export --at) applies the cutoff too.
			exported := map[string]bool{}
			err := n.exportAt(t.Context(), fixture.At(1000), func(r *pb.ExportRecord) error {
				exported[string(r.Signal.Value)] = true
				return nil
			})
			if err != nil {
				t.Errorf("%s: export at a time: %v", id, err)
			}
			for _, sig := range []consortium.Signal{onlyA, onlyB} {
				if exported[string(sig.Bytes())] {
					t.Errorf("%s: export at a time lists a signal alpha listed only after the fork", id)
				}
			}
			if !exported[string(fixture.PDQ(2).Bytes())] {
				t.Errorf("%s: export at a time misses a signal alpha listed before the fork", id)
			}
			ev := n.store.Evidence()["alpha"]
			back, err := consortium.ParseEvidence(c.g.ID, c.g, ev.Marshal())
			if err != nil {
				t.Errorf("%s: evidence does not verify offline: %v", id, err)
			} else if agreed, _ := back.AgreedSize(); agreed != 3 {
				t.Errorf("%s: offline agreed size %d, want 3", id, agreed)
			}
			// The transparency report (hashfed report, the console) of what the node holds
			// applies the same cutoff: its digest is the state's, and alpha's adds after the fork
			// count nowhere. On echo too, which fetched only the agreed entries and holds no
			// signed head of alpha's: its bundle carries them, verified by the evidence's agreed
			// root (PROTOCOL.md section 11).
			// A bundle may hold a heads note of the other history of alpha's (bravo's and
			// charlie's do, once the notes have spread, node/headnotes.go): beyond the cutoff
			// it has no effect and the audit only warns (PROTOCOL.md section 12.1, step 4).
			in, err := n.AuditInput(t.Context())
			if err != nil {
				t.Errorf("%s: audit input: %v", id, err)
			} else if r := consortium.Audit(in, consortium.AuditOptions{}); !r.OK || r.Digest != fmt.Sprintf("%x", wantDigest[:]) {
				t.Errorf("%s: audit of the node's bundle: ok %v, digest %s, want %x:\n%s", id, r.OK, r.Digest, wantDigest[:], r)
			} else if got := len(r.VerifiedLogs(in.Logs)["alpha"]); got < 3 {
				t.Errorf("%s: the audit verified %d of alpha's entries, want at least the 3 agreed ones", id, got)
			}
			if err != nil {
				continue
			}
			if rep, err := consortium.NewReport(c.g, in.Logs, in.Evidence, fixture.Epoch, fixture.Epoch.AddDate(1, 0, 0)); err != nil {
				t.Errorf("%s: report: %v", id, err)
			} else {
				// The cutoff is listed when it leaves out entries the node holds (delta holds
				// only the agreed ones).
				wantCuts := "[]"
				if n.store.Size("alpha") > 3 {
					wantCuts = fmt.Sprintf("[{alpha 3 true %d}]", n.store.Size("alpha")-3)
				}
				if got := fmt.Sprint(rep.Cutoffs); rep.Digest != fmt.Sprintf("%x", wantDigest[:]) || rep.Totals.Additions != 3 || got != wantCuts {
					t.Errorf("%s: report digest %s, %d additions, cutoffs %s; want %x, 3, %s", id, rep.Digest, rep.Totals.Additions, got, wantDigest[:], wantCuts)
				}
			}
			if r := consortium.Audit(auditInputOf(t, n), consortium.AuditOptions{}); !r.OK || r.Digest != fmt.Sprintf("%x", wantDigest[:]) {
				t.Errorf("%s: audit of what the node holds: ok %v, digest %s, want %x:\n%s", id, r.OK, r.Digest, wantDigest[:], r)
			}
		}
	}
	check()
	// echo joins late and learns of the evidence before it holds any of alpha's log (cut off from
	// everyone, it hears the evidence alone): it still reaches the same state, fetching the agreed
	// entries from its peers, and nothing beyond them.
	c.part.cut([]string{"echo"}, []string{"bravo", "charlie", "delta"})
	e := c.start("echo")
	e.takeEvidence(b.store.Evidence()["alpha"])
	if got := e.store.Size("alpha"); got != 0 {
		t.Fatalf("echo holds %d entries of alpha before the network heals, want 0", got)
	}
	c.part.heal()
	waitFor(t, 20*time.Second, "echo reaches the cutoff ("+c.describe()+")", func() bool { return resolved(e) })
	if got := e.store.Size("alpha"); got != 3 {
		t.Errorf("echo holds %d entries of alpha, want the 3 agreed ones", got)
	}
	check()
	// The signed history beyond the fork stays stored.
	if got := b.store.Size("alpha"); got != 5 {
		t.Errorf("bravo holds %d entries of alpha, want its 5 (kept as signed history)", got)
	}
	// A restart applies the stored cutoff.
	for _, id := range []string{"bravo", "charlie"} {
		c.stop(id)
		c.start(id)
	}
	check()
	if got := c.nodes["charlie"].store.Cutoffs()["alpha"]; got != 3 {
		t.Errorf("after restart, charlie's cutoff of alpha is %d, want 3", got)
	}
}

// auditInputOf is what an auditor collects from a node: its logs, heads and evidence.
func auditInputOf(t *testing.T, n *Node) consortium.AuditInput {
	t.Helper()
	in := consortium.AuditInput{Genesis: n.g.Marshal(), Logs: consortium.Logs{}, Checkpoints: map[string][][]byte{}}
	for m, size := range n.store.Sizes() {
		es, err := n.store.Entries(m, 0, size, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		in.Logs[m] = es
	}
	for m, cp := range n.store.Heads() {
		in.Checkpoints[m] = [][]byte{cp.Note}
	}
	for _, ev := range n.store.Evidence() {
		in.Evidence = append(in.Evidence, ev.Marshal())
	}
	return in
}

// TestThirdForkLowersTheCutoff: alpha shows three histories. Bravo's and charlie's agree on four
// entries (the evidence between them resolves at 4), but delta's parts from them after two.
// Delta, cut off, hears the resolved evidence (agreed size 4) before it sees any checkpoint of the
// other histories: applying its own log up to 4 would give a state no other node has. It must
// notice that its log contradicts the agreed tree, prove its own equivocation pair against one of
// the others' checkpoints, and resolve it: every node then cuts alpha at 2, the smallest agreed
// size of any pair, with one digest.
func TestThirdForkLowersTheCutoff(t *testing.T) {
	// Delta's history reaches past the cutoff (its own tree shows the difference), or stops short
	// of it (the others' root at its size comes from a peer).
	for _, deltaSize := range []int{7, 3} {
		t.Run(fmt.Sprintf("delta holds %d entries", deltaSize), func(t *testing.T) { thirdFork(t, deltaSize) })
	}
}

func thirdFork(t *testing.T, deltaSize int) {
	c := newCluster(t, 2, "alpha", "bravo", "charlie", "delta")
	b, ch, d := c.start("bravo"), c.start("charlie"), c.start("delta")
	la := fixture.NewLog(c.g.ID, fixture.Key("alpha"))
	lb := fixture.NewLog(c.g.ID, fixture.Key("alpha"))
	lc := fixture.NewLog(c.g.ID, fixture.Key("alpha"))
	for i := 1; i <= 2; i++ {
		for _, l := range []*fixture.Log{la, lb, lc} {
			l.Append(fixture.Add(fixture.At(int64(i)), fixture.PDQ(i)))
		}
	}
	common := append([][]byte(nil), la.Entries...)
	for i := 3; i <= 4; i++ {
		la.Append(fixture.Add(fixture.At(int64(i)), fixture.PDQ(i)))
		lb.Append(fixture.Add(fixture.At(int64(i)), fixture.PDQ(i)))
		lc.Append(fixture.Add(fixture.At(int64(i)), fixture.PDQ(30+i)))
	}
	la.Append(fixture.Add(fixture.At(5), fixture.PDQ(10)), fixture.Add(fixture.At(6), fixture.PDQ(11)))
	lb.Append(fixture.Add(fixture.At(5), fixture.PDQ(20)))
	lc.Append(fixture.Add(fixture.At(5), fixture.PDQ(40)), fixture.Add(fixture.At(6), fixture.PDQ(41)), fixture.Add(fixture.At(7), fixture.PDQ(42)))
	if deltaSize < len(lc.Entries) {
		short := fixture.NewLog(c.g.ID, fixture.Key("alpha"))
		for _, e := range lc.Entries[:deltaSize] {
			short.AppendRaw(e)
		}
		lc = short
	}
	deliver := func(n *Node, l *fixture.Log) {
		t.Helper()
		cp, err := n.openCheckpoint(l.Checkpoint())
		if err != nil {
			t.Fatal(err)
		}
		if err := n.store.AppendRange(cp, 0, l.Entries, nil); err != nil {
			t.Fatalf("%s: %v", n.id, err)
		}
		n.verified("alpha")
	}
	c.part.cut([]string{"delta"}, []string{"bravo", "charlie"})
	deliver(d, lc)
	deliver(b, la)
	deliver(ch, lb)
	waitFor(t, 20*time.Second, "bravo and charlie resolve at 4 ("+c.describe()+")", func() bool {
		return b.store.Cutoffs()["alpha"] == 4 && ch.store.Cutoffs()["alpha"] == 4
	})
	d.takeEvidence(b.store.Evidence()["alpha"])
	c.part.heal()

	want, err := consortium.Replay(c.g, consortium.Logs{"alpha": common}, consortium.ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantDigest := want.Digest()
	for _, n := range []*Node{b, ch, d} {
		waitFor(t, 30*time.Second, n.id+" cuts alpha at 2 ("+c.describe()+")", func() bool {
			f, ok := n.store.Cutoffs()["alpha"]
			return ok && f == 2 && digestOf(n) == wantDigest
		})
	}
	for _, n := range []*Node{b, ch, d} {
		if ms := matches(n, fixture.PDQ(33)); len(ms) != 0 {
			t.Errorf("%s: a signal only delta's history lists matches", n.id)
		}
		ev := n.store.Evidence()["alpha"]
		if back, err := consortium.ParseEvidence(c.g.ID, c.g, ev.Marshal()); err != nil {
			t.Errorf("%s: evidence does not verify offline: %v", n.id, err)
		} else if agreed, _ := back.AgreedSize(); agreed != 2 {
			t.Errorf("%s: offline agreed size %d, want 2", n.id, agreed)
		}
	}
}

// TestUnresolvableForkConverges: alpha signs a checkpoint of a tree it never publishes, of the
// size bravo and charlie hold, while delta, cut off, holds fewer of alpha's entries. No node holds
// that tree, so the evidence cannot be resolved; nodes that froze alpha's log wherever they stood
// would keep different states for good. With the total rule every node applies none of alpha's
// log (cutoff 0) and all hold one digest; a feed consumer at bravo that followed alpha's adds sees
// each of them retracted, and the state-change metric counts the retractions. When alpha's other
// history turns up after all (echo holds it), the evidence resolves, the cutoff rises to the
// agreed size everywhere, and delta fetches the agreed entries it lacked.
func TestUnresolvableForkConverges(t *testing.T) {
	c := newCluster(t, 2, "alpha", "bravo", "charlie", "delta", "echo")
	b, ch, d := c.start("bravo"), c.start("charlie"), c.start("delta")
	la := fixture.NewLog(c.g.ID, fixture.Key("alpha"))
	hidden := fixture.NewLog(c.g.ID, fixture.Key("alpha"))
	for i := 1; i <= 2; i++ {
		la.Append(fixture.Add(fixture.At(int64(i)), fixture.PDQ(i)))
	}
	deliverAlpha(t, b, la)
	waitFor(t, 10*time.Second, "alpha's first entries everywhere", func() bool {
		return ch.store.Size("alpha") == 2 && d.store.Size("alpha") == 2
	})
	c.part.cut([]string{"delta"}, []string{"bravo", "charlie"})
	for i := 3; i <= 5; i++ {
		la.Append(fixture.Add(fixture.At(int64(i)), fixture.PDQ(i)))
	}
	deliverAlpha(t, b, la)
	waitFor(t, 10*time.Second, "charlie holds alpha's 5 entries", func() bool { return ch.store.Size("alpha") == 5 })
	// The hidden history shares 4 entries with the published one; only its checkpoint is shown.
	for _, e := range la.Entries[:4] {
		hidden.AppendRaw(e)
	}
	hidden.Append(fixture.Add(fixture.At(5), fixture.PDQ(50)))
	cp, err := ch.openCheckpoint(hidden.Checkpoint())
	if err != nil {
		t.Fatal(err)
	}
	ch.handleCheckpoint(cp, "")
	ev := ch.store.Evidence()["alpha"]
	if ev == nil {
		t.Fatal("charlie made no evidence from the hidden checkpoint")
	}
	d.takeEvidence(ev)
	c.part.heal()

	none, err := consortium.Replay(c.g, consortium.Logs{}, consortium.ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	noneDigest := none.Digest()
	cutAt := func(n *Node, f uint64, digest consortium.Hash) bool {
		got, ok := n.store.Cutoffs()["alpha"]
		return ok && got == f && digestOf(n) == digest
	}
	for _, n := range []*Node{b, ch, d} {
		waitFor(t, 20*time.Second, n.id+" applies none of alpha's log ("+c.describe()+")", func() bool { return cutAt(n, 0, noneDigest) })
	}
	// It stays so: nobody can resolve the evidence.
	time.Sleep(time.Second)
	for _, n := range []*Node{b, ch, d} {
		if !cutAt(n, 0, noneDigest) || n.store.Evidence()["alpha"].Resolved() {
			t.Errorf("%s: cutoff %v, evidence resolved %v: want cutoff 0, unresolved", n.id, n.store.Cutoffs(), n.store.Evidence()["alpha"].Resolved())
		}
		if ms := matches(n, fixture.PDQ(1)); len(ms) != 0 {
			t.Errorf("%s: a signal of alpha's cut log matches", n.id)
		}
	}
	if got := d.store.Size("alpha"); got != 2 {
		t.Errorf("delta holds %d entries of alpha, want 2 (the log froze)", got)
	}
	// bravo's feed, followed from the start, retracts every listing of alpha's, after the adds.
	evs, _, err := b.store.Feed(0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	listed := map[uint64]bool{}
	for _, fe := range b.feedEvents(evs) {
		if fe.Member != "alpha" {
			continue
		}
		switch fe.Cutoff {
		case pb.CutoffEffect_CUTOFF_EFFECT_UNSPECIFIED:
			if fe.Entry.GetAdd() != nil {
				listed[fe.Index] = true
			}
		case pb.CutoffEffect_CUTOFF_EFFECT_UNLISTED:
			if fe.Entry.GetAdd() == nil || len(fe.ListedBy) != 0 {
				t.Errorf("feed event %d: an Unlisted event should carry the add and no lister now: %v", fe.Seq, fe)
			}
			delete(listed, fe.Index)
		default:
			t.Errorf("feed event %d: unexpected effect %v", fe.Seq, fe.Cutoff)
		}
	}
	if len(listed) != 0 {
		t.Errorf("bravo's feed leaves alpha's adds %v listed, want none", listed)
	}
	var m dto.Metric
	if err := b.metrics.changes.WithLabelValues("unlisted").Write(&m); err != nil || m.GetCounter().GetValue() < 5 {
		t.Errorf("bravo's unlisted state changes: %v (%v), want at least the 5 retractions", m.GetCounter().GetValue(), err)
	}

	// Alpha's hidden history turns up at echo: the evidence resolves (agreed size 4), every node
	// raises the cutoff to 4, and delta fetches entries 2 and 3.
	c.part.cut([]string{"echo"}, []string{"bravo", "charlie", "delta"})
	e := c.start("echo")
	deliverAlpha(t, e, hidden)
	c.part.heal()
	want, err := consortium.Replay(c.g, consortium.Logs{"alpha": la.Entries[:4]}, consortium.ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantDigest := want.Digest()
	for _, n := range []*Node{b, ch, d, e} {
		waitFor(t, 30*time.Second, n.id+" raises alpha's cutoff to 4 ("+c.describe()+")", func() bool {
			if e.store.Evidence()["alpha"] == nil {
				e.takeEvidence(ev) // echo, which holds the other history, resolves it
			}
			return cutAt(n, 4, wantDigest)
		})
	}
	if got := d.store.Size("alpha"); got != 4 {
		t.Errorf("delta holds %d entries of alpha, want the 4 agreed ones", got)
	}
	// Every node's bundle audits to that state. Delta's carries alpha's agreed entries beyond
	// delta's signed head (of size 2), verified by the evidence's agreed root; the others hold
	// heads notes of both histories of size 5, beyond the cutoff, which the audit only warns of.
	for _, n := range []*Node{b, ch, d, e} {
		if in, err := n.AuditInput(t.Context()); err != nil {
			t.Errorf("%s: audit input: %v", n.id, err)
		} else if r := consortium.Audit(in, consortium.AuditOptions{}); !r.OK || r.Digest != fmt.Sprintf("%x", wantDigest[:]) {
			t.Errorf("%s: audit of the node's bundle: ok %v, digest %s, want %x:\n%s", n.id, r.OK, r.Digest, wantDigest[:], r)
		}
	}
}

// deliverAlpha stores alpha's log l at n, from what n holds up to l's checkpoint, as a verified
// range from a peer would be.
func deliverAlpha(t *testing.T, n *Node, l *fixture.Log) {
	t.Helper()
	cp, err := n.openCheckpoint(l.Checkpoint())
	if err != nil {
		t.Fatal(err)
	}
	have := n.store.Size("alpha")
	if err := n.store.AppendRange(cp, have, l.Entries[have:], nil); err != nil {
		t.Fatalf("%s: %v", n.id, err)
	}
	n.verified("alpha")
}
