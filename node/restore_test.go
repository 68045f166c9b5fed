package node

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"github.com/hashfed/hashfed/store"
)

// dbPath is the store file of a test cluster's node.
func (c *cluster) dbPath(id string) string { return filepath.Join(c.dir, id, "hashfed.db") }

// waitHeads waits until every running node holds member's log with a checkpoint of size.
func (c *cluster) waitHeads(member string, size uint64) {
	c.t.Helper()
	for id, n := range c.nodes {
		waitFor(c.t, 10*time.Second, id+" holds "+member+"'s log", func() bool {
			h, ok := n.store.Head(member)
			return ok && h.Size == size
		})
	}
}

// TestRestoreFromBackup is the operator's journey of restoring a node's store from an older copy:
// alpha adds entries that replicate, a copy of its store is taken, alpha adds more, then its store
// is replaced by the copy and it starts again, at first cut off from its peers. It must refuse
// submissions rather than append at an index its peers already hold a different entry at (which,
// signed, is equivocation: every peer would freeze alpha's log), and once it reaches its peers it
// must fetch its own log back and only then take the add, after everything acknowledged before.
func TestRestoreFromBackup(t *testing.T) {
	c := newCluster(t, 2, "alpha", "bravo", "charlie")
	a := c.start("alpha")
	b, ch := c.start("bravo"), c.start("charlie")
	submitOK(t, b, fixture.Add(0, fixture.PDQ(900)))
	for i := range 5 {
		submitOK(t, a, fixture.Add(0, fixture.PDQ(i)))
	}
	c.waitHeads("alpha", 5)
	c.waitHeads("bravo", 1)
	c.stop("alpha")
	backup, err := os.ReadFile(c.dbPath("alpha"))
	if err != nil {
		t.Fatal(err)
	}
	a = c.start("alpha")
	for i := 5; i < 10; i++ {
		submitOK(t, a, fixture.Add(0, fixture.PDQ(i)))
	}
	c.waitHeads("alpha", 10)
	acked, err := b.store.Entries("alpha", 0, 10, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	c.stop("alpha")
	if err := os.WriteFile(c.dbPath("alpha"), backup, 0o600); err != nil {
		t.Fatal(err)
	}

	c.part.cut([]string{"alpha"}, []string{"bravo", "charlie"})
	a = c.start("alpha")
	if got := a.store.Size("alpha"); got != 5 {
		t.Fatalf("restored copy holds %d entries of alpha, want 5", got)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	out, err := a.Submit(ctx, []*pb.Entry{fixture.Add(0, fixture.PDQ(100))})
	cancel()
	if err == nil {
		t.Fatalf("cut off with a restored store, alpha took a submission (entry %d): it would fork its log", out[0].Index)
	}
	if !errors.Is(err, ErrRestoring) || !strings.Contains(err.Error(), "no peer has answered") {
		t.Errorf("got %v, want ErrRestoring saying no peer answered", err)
	}

	c.part.heal()
	var idx uint64
	waitFor(t, 20*time.Second, "alpha to take the add once restored", func() bool {
		out, err := a.Submit(t.Context(), []*pb.Entry{fixture.Add(0, fixture.PDQ(100))})
		if err != nil {
			if !errors.Is(err, ErrRestoring) {
				t.Fatalf("got %v, want ErrRestoring while alpha restores", err)
			}
			return false
		}
		if out[0].Err != nil {
			t.Fatal(out[0].Err)
		}
		idx = out[0].Index
		return true
	})
	if idx != 10 {
		t.Fatalf("the add landed at entry %d, want 10 (after the 10 acknowledged entries)", idx)
	}
	c.waitHeads("alpha", 11)
	for id, n := range c.nodes {
		if ev := n.store.Evidence(); len(ev) != 0 {
			t.Errorf("%s records equivocation: %v", id, ev)
		}
		es, err := n.store.Entries("alpha", 0, 10, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		for i := range acked {
			if !bytes.Equal(es[i], acked[i]) {
				t.Errorf("%s: alpha's entry %d differs from the acknowledged one", id, i)
			}
		}
	}
	waitFor(t, 10*time.Second, "one state everywhere", c.converged)
	if got := len(matches(ch, fixture.PDQ(3))); got != 1 {
		t.Errorf("charlie matches alpha's entry 3 %d times, want 1", got)
	}
}

// TestRecoverDamagedStore: a node whose store file is empty (0 bytes) refuses to start, saying
// what to do; started with Recover it moves the file aside, fetches its own log back from its
// peers, and takes submissions after it.
func TestRecoverDamagedStore(t *testing.T) {
	c := newCluster(t, 2, "alpha", "bravo")
	a := c.start("alpha")
	c.start("bravo")
	for i := range 4 {
		submitOK(t, a, fixture.Add(0, fixture.PDQ(i)))
	}
	c.waitHeads("alpha", 4)
	c.stop("alpha")
	if err := os.WriteFile(c.dbPath("alpha"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := New(c.config("alpha"))
	if !errors.Is(err, store.ErrDamaged) || !strings.Contains(err.Error(), "--recover") || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("got %v, want ErrDamaged saying the file is empty and naming --recover", err)
	}
	if fi, err := os.Stat(c.dbPath("alpha")); err != nil || fi.Size() != 0 {
		t.Fatalf("the damaged file was changed: %v", err)
	}

	c.tweak = func(cfg *Config) { cfg.Recover = true }
	a = c.start("alpha")
	aside, _ := filepath.Glob(c.dbPath("alpha") + ".damaged-*")
	if len(aside) != 1 {
		t.Fatalf("got %d damaged files set aside, want 1", len(aside))
	}
	var idx uint64
	waitFor(t, 20*time.Second, "alpha to take an add once recovered", func() bool {
		out, err := a.Submit(t.Context(), []*pb.Entry{fixture.Add(0, fixture.PDQ(100))})
		if err != nil {
			return false
		}
		idx = out[0].Index
		return out[0].Err == nil
	})
	if idx != 4 {
		t.Fatalf("the add landed at entry %d, want 4", idx)
	}
	c.waitHeads("alpha", 5)
	for id, n := range c.nodes {
		if ev := n.store.Evidence(); len(ev) != 0 {
			t.Errorf("%s records equivocation: %v", id, ev)
		}
	}
}

// TestFrozenMemberRefusesSubmissions: a node that holds evidence that its own member equivocated
// refuses submissions instead of appending entries no peer will take.
func TestFrozenMemberRefusesSubmissions(t *testing.T) {
	c := newCluster(t, 2, "alpha", "bravo")
	a := c.start("alpha")
	c.start("bravo")
	submitOK(t, a, fixture.Add(0, fixture.PDQ(1)), fixture.Add(0, fixture.PDQ(2)))
	c.waitHeads("alpha", 2)
	es, _ := a.store.Entries("alpha", 0, 1, 1<<20)
	fork := fixture.NewLog(c.g.ID, fixture.Key("alpha"))
	fork.AppendRaw(es[0])
	fork.Append(fixture.Add(fixture.At(99), fixture.PDQ(666)))
	cp, err := a.openCheckpoint(fork.Checkpoint())
	if err != nil {
		t.Fatal(err)
	}
	a.handleCheckpoint(cp, "")
	waitFor(t, 10*time.Second, "evidence against alpha at alpha", func() bool { return a.frozen("alpha") })
	_, err = a.Submit(t.Context(), []*pb.Entry{fixture.Add(0, fixture.PDQ(3))})
	if !errors.Is(err, store.ErrForked) || !strings.Contains(err.Error(), "frozen") {
		t.Fatalf("got %v, want a refusal wrapping ErrForked saying the log is frozen", err)
	}
	if got := a.store.Size("alpha"); got != 2 {
		t.Errorf("alpha's log has %d entries, want 2", got)
	}
}

// TestRemovedMemberRefusesSubmissions: a node whose logs show its member removed from the roster
// refuses submissions as a whole, saying why, instead of taking entries no state counts.
func TestRemovedMemberRefusesSubmissions(t *testing.T) {
	c := newCluster(t, 2, "alpha", "bravo", "charlie")
	a, b := c.start("alpha"), c.start("bravo")
	c.start("charlie")
	out := submitOK(t, a, fixture.Remove(0, "alpha", 0, "charlie"))
	waitFor(t, 10*time.Second, "alpha's proposal at bravo", func() bool { return b.store.Size("alpha") == 1 })
	submitOK(t, b, fixture.Endorse(0, 0, out[0].Entry))
	waitFor(t, 10*time.Second, "bravo's endorsement at alpha", func() bool {
		h, ok := a.store.Head("bravo")
		return ok && h.Size == 1
	})
	c.stop("charlie")
	// Whether charlie fetched the vote before its peers stopped taking its key is a race: hand it
	// the logs directly, as a restored copy of its store might hold them.
	st, err := store.Open(c.dbPath("charlie"), c.g, store.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"alpha", "bravo"} {
		h, _ := a.store.Head(m)
		es, err := a.store.Entries(m, 0, h.Size, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		if have := st.Size(m); have < h.Size {
			if err := st.AppendRange(h, have, es[have:], nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	st.Close()
	ch := c.start("charlie")
	var on bool
	ch.store.View(func(s *consortium.State) { _, on = s.Roster().Member("charlie") })
	if on {
		t.Fatal("charlie's logs do not show its removal")
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	_, err = ch.Submit(ctx, []*pb.Entry{fixture.Add(0, fixture.PDQ(7))})
	if !errors.Is(err, consortium.ErrUnknownMember) || !strings.Contains(err.Error(), "not on the roster of epoch 1") {
		t.Fatalf("got %v, want ErrUnknownMember naming epoch 1", err)
	}
}

// TestOwnLogConflict: a node started on a store whose own log is longer than, but not an extension
// of, what its peers hold (a store that is not a copy of this member's history) signs nothing and
// refuses submissions, instead of signing a second history.
func TestOwnLogConflict(t *testing.T) {
	c := newCluster(t, 2, "alpha", "bravo")
	a := c.start("alpha")
	b := c.start("bravo")
	submitOK(t, a, fixture.Add(0, fixture.PDQ(1)), fixture.Add(0, fixture.PDQ(2)))
	c.waitHeads("alpha", 2)
	c.stop("alpha")
	if err := os.Remove(c.dbPath("alpha")); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(c.dbPath("alpha"), c.g, store.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := st.Submit(t.Context(), "alpha", []*pb.Entry{fixture.Add(0, fixture.PDQ(50+i))}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	a = c.start("alpha")
	waitFor(t, 10*time.Second, "alpha to find the conflict", func() bool {
		_, err := a.Submit(t.Context(), []*pb.Entry{fixture.Add(0, fixture.PDQ(9))})
		if err == nil {
			t.Fatal("alpha took a submission on a log that contradicts its peers'")
		}
		return errors.Is(err, ErrOwnLogConflict)
	})
	time.Sleep(500 * time.Millisecond)
	if h, ok := a.store.Head("alpha"); ok && h.Size != 2 {
		t.Errorf("alpha signed its log at size %d", h.Size)
	}
	if ev := b.store.Evidence(); len(ev) != 0 {
		t.Errorf("bravo records equivocation: %v", ev)
	}
}
