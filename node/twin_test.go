package node

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// TestSecondWriterStops: an operator copies alpha's data directory to a second machine and starts
// it there while the first node still runs (a migration, a standby started by mistake). Both hold
// alpha's key, so both would append to alpha's log and sign it; each one that hears the other's
// checkpoint first fetches the other's entries and goes on, and the first time both take a
// submission within the same second the log forks and every peer freezes it for good. So the node
// that hears a checkpoint of its own log extending entries it appended and signed itself must stop
// appending and signing (ErrSecondWriter), and the other go on alone.
func TestSecondWriterStops(t *testing.T) {
	c := newCluster(t, 2, "alpha", "bravo", "charlie")
	c.start("alpha")
	c.start("bravo")
	c.start("charlie")
	for i := range 2 {
		submitOK(t, c.nodes["alpha"], fixture.Add(0, fixture.PDQ(i)))
	}
	c.waitHeads("alpha", 2)
	c.stop("alpha")
	copyDir := filepath.Join(c.dir, "alpha-copy")
	if err := os.MkdirAll(copyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	db, err := os.ReadFile(c.dbPath("alpha"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(copyDir, "hashfed.db"), db, 0o600); err != nil {
		t.Fatal(err)
	}
	first := c.start("alpha")
	submitOK(t, first, fixture.Add(0, fixture.PDQ(10))) // entry 2, signed by the first node
	c.waitHeads("alpha", 3)

	cfg := c.config("alpha")
	cfg.DataDir = copyDir
	second, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { second.Close() })
	// The copy fetches entry 2 from the peers before it appends (the restore rule), then takes an
	// entry of its own and signs it.
	var at uint64
	waitFor(t, 20*time.Second, "the copy to take a submission", func() bool {
		out, err := second.Submit(t.Context(), []*pb.Entry{fixture.Add(0, fixture.PDQ(20))})
		if errors.Is(err, ErrRestoring) {
			return false
		}
		if err != nil || out[0].Err != nil {
			t.Fatalf("copy: got %v %v, want the entry appended", err, out)
		}
		at = out[0].Index
		return true
	})
	if at != 3 {
		t.Fatalf("the copy appended at %d, want 3 (after the first node's entry 2)", at)
	}
	waitFor(t, 20*time.Second, "the first node to hear the copy's checkpoint of size 4", func() bool {
		first.own.mu.Lock()
		defer first.own.mu.Unlock()
		return first.own.seen >= 4
	})
	// The first node must now refuse: it appended and signed entry 2 itself, and someone else
	// signed a checkpoint that extends it.
	waitFor(t, 20*time.Second, "the first node to refuse submissions as a second writer", func() bool {
		out, err := first.Submit(t.Context(), []*pb.Entry{fixture.Add(0, fixture.PDQ(30))})
		switch {
		case errors.Is(err, ErrSecondWriter):
			return true
		case errors.Is(err, ErrRestoring):
			return false
		case err != nil:
			t.Fatalf("first node: got %v, want ErrSecondWriter", err)
		}
		t.Fatalf("the first node appended entry %d after another node signed alpha's log: two writers of one log fork it sooner or later", out[0].Index)
		return false
	})
	if code := codeOf(ErrSecondWriter); code.String() != "FailedPrecondition" {
		t.Errorf("got code %v for ErrSecondWriter, want FailedPrecondition", code)
	}
	// The copy goes on alone; nobody holds evidence against alpha.
	submitOK(t, second, fixture.Add(0, fixture.PDQ(21)))
	waitFor(t, 20*time.Second, "bravo to hold alpha's log at 5", func() bool {
		h, ok := c.nodes["bravo"].store.Head("alpha")
		return ok && h.Size == 5
	})
	for _, n := range []*Node{first, second, c.nodes["bravo"], c.nodes["charlie"]} {
		if ev := n.store.Evidence(); len(ev) != 0 {
			t.Errorf("a node records equivocation: %v", ev)
		}
	}
}
