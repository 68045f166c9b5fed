package node

import (
	"errors"
	"testing"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// TestCopiedProposalKeepsRoster is issue 10's attack on real nodes: alpha's proposal to admit delta
// passes (bravo endorses), then oscar, an observer, writes the same proposal bytes into its own log.
// Its node refuses to submit the copy, so oscar writes it as an attacker would, straight into its
// store under a checkpoint signed with its key, and gossips it. Every node must take oscar's log,
// record the copy as a rejection, keep delta admitted and hold one digest, also after a restart.
func TestCopiedProposalKeepsRoster(t *testing.T) {
	g := fixture.Genesis(2, fixture.Founder{ID: "alpha"}, fixture.Founder{ID: "bravo"}, fixture.Founder{ID: "oscar", Observer: true})
	c := &cluster{t: t, g: g, dir: t.TempDir(), nodes: map[string]*Node{}, part: &partition{}}
	a, b, o := c.start("alpha"), c.start("bravo"), c.start("oscar")
	out := submitOK(t, a, fixture.Admit(0, "alpha", 0, "delta"))
	p := out[0].Entry
	waitFor(t, 10*time.Second, "bravo holds alpha's proposal", func() bool { return b.store.Size("alpha") == 1 })
	submitOK(t, b, fixture.Endorse(0, 0, p))
	admitted := func(n *Node) bool {
		var ok bool
		n.store.View(func(s *consortium.State) { ok = s.Roster().Epoch == 1 && s.Roster().CanAdd("delta") })
		return ok
	}
	for _, n := range []*Node{a, b, o} {
		waitFor(t, 10*time.Second, n.id+" admits delta", func() bool { return admitted(n) && n.store.Size("bravo") == 1 })
	}
	before := digestOf(a)

	// Through its node, the copy is refused.
	e, err := consortium.ParseEntry(p)
	if err != nil {
		t.Fatal(err)
	}
	res, err := o.Submit(t.Context(), []*pb.Entry{e})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(res[0].Err, consortium.ErrWrongAuthor) {
		t.Fatalf("oscar's node submitting a copy: got %v, want ErrWrongAuthor", res[0].Err)
	}

	// Written directly: oscar's key signs its log with the copy appended.
	size := o.store.Size("oscar")
	es, err := o.store.Entries("oscar", 0, size, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	l := fixture.NewLog(g.ID, fixture.Key("oscar"))
	for _, raw := range es {
		l.AppendRaw(raw)
	}
	l.AppendRaw(p)
	cp, err := o.openCheckpoint(l.Checkpoint())
	if err != nil {
		t.Fatal(err)
	}
	if err := o.store.AppendRange(cp, size, [][]byte{p}, nil); err != nil {
		t.Fatal(err)
	}
	o.broadcastCheckpoint(cp)

	for _, n := range []*Node{a, b, o} {
		waitFor(t, 10*time.Second, n.id+" holds oscar's copy", func() bool { return n.store.Size("oscar") == size+1 })
		if !admitted(n) {
			t.Errorf("%s: delta no longer admitted after oscar's copy", n.id)
		}
		var rejected error
		n.store.View(func(s *consortium.State) {
			rs, _ := s.Rejections()
			for _, r := range rs {
				if r.Member == "oscar" && r.Index == size {
					rejected = r.Err
				}
			}
		})
		if !errors.Is(rejected, consortium.ErrWrongAuthor) {
			t.Errorf("%s: oscar's copy: got rejection %v, want ErrWrongAuthor", n.id, rejected)
		}
	}
	waitFor(t, 10*time.Second, "one state everywhere", c.converged)
	if d := digestOf(a); d != before {
		t.Errorf("digest changed with oscar's copy: %x, was %x", d[:6], before[:6])
	}

	// A restart replays the stored logs afresh: same digest, delta still admitted.
	c.stop("bravo")
	b = c.start("bravo")
	if d := digestOf(b); d != before || !admitted(b) {
		t.Errorf("bravo after restart: digest %x (delta admitted %v), want %x with delta", d[:6], admitted(b), before[:6])
	}
	waitFor(t, 10*time.Second, "one state after the restart", c.converged)
}
