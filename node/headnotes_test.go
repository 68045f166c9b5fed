package node

import (
	"bytes"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// TestHeadsNotesExchanged: nodes swap heads notes in their Heads exchanges and keep each other's;
// a node's audit bundle then carries both, so that it audits with --require-heads 2, and a bundle
// from which a log is removed fails naming it.
func TestHeadsNotesExchanged(t *testing.T) {
	c := newCluster(t, 1, "alpha", "bravo")
	a, b := c.start("alpha"), c.start("bravo")
	submitOK(t, a, fixture.Add(0, fixture.PDQ(1)))
	submitOK(t, b, fixture.Add(0, fixture.PDQ(2)))
	waitFor(t, 15*time.Second, "alpha holds bravo's heads note naming both logs, and both logs as far as it names them", func() bool {
		held, err := a.store.HeadsNotes()
		if err != nil || held["bravo"] == nil {
			return false
		}
		h, err := consortium.OpenHeads(a.g.ID, a.g, held["bravo"])
		if err != nil || len(h.Heads) != 2 {
			return false
		}
		// The export leaves out a note naming more than alpha holds (alpha lags behind it): wait
		// until alpha has replicated what bravo's note names too (slow under load).
		heads := a.store.Heads()
		for _, hd := range h.Heads {
			if cp := heads[hd.Member]; cp == nil || cp.Size < hd.Size {
				return false
			}
		}
		return true
	})
	in := consortium.AuditInput{Logs: consortium.Logs{}, Checkpoints: map[string][][]byte{}, Heads: map[string][]byte{}}
	err := a.exportLogs(t.Context(), func(ch *pb.LogChunk) error {
		switch {
		case len(ch.Genesis) > 0:
			in.Genesis = ch.Genesis
		case len(ch.Heads) > 0:
			in.Heads[ch.Member] = ch.Heads
		case len(ch.Evidence) > 0:
			in.Evidence = append(in.Evidence, ch.Evidence)
		default:
			in.Logs[ch.Member] = append(in.Logs[ch.Member], ch.Entries...)
			if len(ch.Checkpoint) > 0 {
				in.Checkpoints[ch.Member] = append(in.Checkpoints[ch.Member], ch.Checkpoint)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if r := consortium.Audit(in, consortium.AuditOptions{RequireHeads: 2}); !r.OK {
		t.Fatalf("audit of alpha's export failed:\n%s", r)
	}
	delete(in.Logs, "bravo")
	delete(in.Checkpoints, "bravo")
	r := consortium.Audit(in, consortium.AuditOptions{})
	if r.OK || len(r.Failures) != 1 || r.Failures[0].Rule != consortium.RuleOmitted || r.Failures[0].Log != "bravo" {
		t.Errorf("bundle without bravo's log: got failures %v, want bravo omitted", r.Failures)
	}
}

// TestTakeHeadsNoteRefusesOthers: a peer can only hand over its own heads note.
func TestTakeHeadsNoteRefusesOthers(t *testing.T) {
	c := newCluster(t, 1, "alpha", "bravo", "charlie")
	a := c.start("alpha")
	note, err := consortium.SignHeads(a.g.ID, fixture.Key("charlie"), time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	a.takeHeadsNote("bravo", note)        // charlie's note, relayed by bravo: refused
	a.takeHeadsNote("bravo", []byte("x")) // not a note: refused
	held, err := a.store.HeadsNotes()
	if err != nil || len(held) != 0 {
		t.Errorf("got %d heads notes stored, %v; want none", len(held), err)
	}
	a.takeHeadsNote("charlie", note)
	if held, _ := a.store.HeadsNotes(); held["charlie"] == nil {
		t.Error("charlie's own note was not stored")
	}
}

// TestExportLeavesOutNotesAhead: a heads note naming a log beyond what the node exports (the node
// lags behind its signer) is left out of the bundle, which would otherwise fail its audit as rolled
// back; a note the exported logs satisfy is kept, and the node's own names exactly what is exported.
func TestExportLeavesOutNotesAhead(t *testing.T) {
	n := startTestNode(t, "alpha", nil)
	bl := fixture.NewLog(n.g.ID, fixture.Key("beta"))
	bl.Append(fixture.Add(fixture.At(0), fixture.MD5(1)))
	cp1, err := n.openCheckpoint(bl.Checkpoint())
	if err != nil {
		t.Fatal(err)
	}
	bl.Append(fixture.Add(fixture.At(1), fixture.MD5(2)))
	cp2, err := n.openCheckpoint(bl.Checkpoint())
	if err != nil {
		t.Fatal(err)
	}
	if err := n.store.AppendRange(cp1, 0, bl.Entries[:1], nil); err != nil {
		t.Fatal(err)
	}
	put := func(signer string, cp *consortium.Checkpoint) {
		h, err := consortium.HeadOf(cp)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := consortium.SignHeads(n.g.ID, fixture.Key(signer), time.Now(), []consortium.LogHead{h})
		if err != nil {
			t.Fatal(err)
		}
		n.takeHeadsNote(signer, raw)
	}
	put("beta", cp1) // satisfied by what alpha holds
	put("obs", cp2)  // beta at size 2: alpha holds 1
	if held, _ := n.store.HeadsNotes(); len(held) != 2 {
		t.Fatalf("got %d notes held, want 2", len(held))
	}
	got := map[string]bool{}
	err = n.exportLogs(t.Context(), func(ch *pb.LogChunk) error {
		if len(ch.Heads) > 0 {
			got[ch.Member] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !got["alpha"] || !got["beta"] || got["obs"] {
		t.Errorf("exported heads notes of %v, want alpha's and beta's", got)
	}
}

// TestOwnHeadsNoteCached: the heads note a node sends in Heads exchanges is signed again when its
// heads change, when it is headsNoteMaxAge old, and when the clock went back; otherwise the last
// one is sent again (an Ed25519 signature saved per exchange), never older than headsNoteMaxAge.
func TestOwnHeadsNoteCached(t *testing.T) {
	c := newCluster(t, 1, "alpha")
	var offset atomic.Int64
	c.tweak = func(cfg *Config) {
		cfg.Store.Now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	}
	a := c.start("alpha")
	submitOK(t, a, fixture.Add(0, fixture.PDQ(1)))
	waitFor(t, 5*time.Second, "alpha signs its log", func() bool { _, ok := a.store.Head("alpha"); return ok })
	open := func(raw []byte) *consortium.HeadsNote {
		t.Helper()
		h, err := consortium.OpenHeads(a.g.ID, a.g, raw)
		if err != nil {
			t.Fatalf("own heads note: %v", err)
		}
		return h
	}
	first := a.ownHeadsNote()
	h1 := open(first)
	offset.Add(int64(headsNoteMaxAge / 2))
	if again := a.ownHeadsNote(); !bytes.Equal(again, first) {
		t.Errorf("heads unchanged, %v later: got a new note of %v, want the note of %v again", headsNoteMaxAge/2, open(again).Time, h1.Time)
	}
	offset.Add(int64(headsNoteMaxAge / 2))
	aged := open(a.ownHeadsNote())
	if !aged.Time.After(h1.Time) {
		t.Errorf("note %v old: got time %v, want one signed after %v", headsNoteMaxAge, aged.Time, h1.Time)
	}
	// The clock goes back: a note from the (now) future is not sent again.
	offset.Add(-int64(time.Minute))
	if back := open(a.ownHeadsNote()); !back.Time.Before(aged.Time) {
		t.Errorf("clock back: got time %v, want before %v", back.Time, aged.Time)
	}
	// The heads change: signed again at once, naming the new size.
	before := a.ownHeadsNote()
	submitOK(t, a, fixture.Add(0, fixture.PDQ(2)))
	waitFor(t, 5*time.Second, "alpha signs its second entry", func() bool { h, _ := a.store.Head("alpha"); return h != nil && h.Size == 2 })
	after := open(a.ownHeadsNote())
	if bytes.Equal(after.Note, before) || len(after.Heads) != 1 || after.Heads[0].Size != 2 {
		t.Errorf("after the heads changed: got %+v, want a new note naming alpha at 2", after.Heads)
	}
}
