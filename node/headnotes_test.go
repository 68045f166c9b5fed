package node

import (
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
	waitFor(t, 15*time.Second, "alpha holds bravo's heads note naming both logs", func() bool {
		held, err := a.store.HeadsNotes()
		if err != nil || held["bravo"] == nil {
			return false
		}
		h, err := consortium.OpenHeads(a.g.ID, a.g, held["bravo"])
		return err == nil && len(h.Heads) == 2
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
