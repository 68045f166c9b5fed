package consortium_test

import (
	"strings"
	"testing"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
)

// TestAuditHeadsOfForkedLog: after a member signed two histories, honest nodes' bundles hold heads
// notes of either. A note beyond the cutoff (the other history, or more entries than the bundle
// verifies past the cutoff) has no effect and is a warning; a note at or below the cutoff with
// another root (a third history), or a bundle that withholds entries below the cutoff, still fails.
func TestAuditHeadsOfForkedLog(t *testing.T) {
	// build audits a bundle with resolved evidence against alpha (agreed size F = its size - 1)
	// and bravo's heads note naming head's checkpoint of alpha's log instead, cut by cut.
	build := func(t *testing.T, head func(w *goldenWorld, in consortium.AuditInput, other *consortium.Checkpoint) *consortium.Checkpoint, cut func(in *consortium.AuditInput)) *consortium.AuditReport {
		w := newGoldenWorld(t)
		in := w.bundle(t, nil)
		b, _ := w.resolveFork(t, &in)
		s, _ := consortium.Replay(w.g, in.Logs, consortium.ReplayOptions{})
		h, err := consortium.OpenHeads(w.g.ID, s, in.Heads["bravo"])
		if err != nil {
			t.Fatal(err)
		}
		cp := head(w, in, b)
		found := false
		for i := range h.Heads {
			if h.Heads[i].Member == "alpha" {
				if h.Heads[i], err = consortium.HeadOf(cp); err != nil {
					t.Fatal(err)
				}
				found = true
			}
		}
		if !found {
			t.Fatal("bravo's heads note names no alpha log")
		}
		if in.Heads["bravo"], err = consortium.SignHeads(w.g.ID, fixture.Key("bravo"), h.Time, h.Heads); err != nil {
			t.Fatal(err)
		}
		if cut != nil {
			cut(&in)
		}
		return consortium.Audit(in, consortium.AuditOptions{})
	}
	otherHistory := func(_ *goldenWorld, _ consortium.AuditInput, b *consortium.Checkpoint) *consortium.Checkpoint {
		return b
	}
	// thirdHistory: alpha signs another tree of F entries, parting before the agreed size.
	thirdHistory := func(w *goldenWorld, in consortium.AuditInput, _ *consortium.Checkpoint) *consortium.Checkpoint {
		n := len(w.logs["alpha"].Entries) - 1
		third := fixture.NewLog(w.g.ID, fixture.Key("alpha"))
		for _, e := range w.logs["alpha"].Entries[:n-1] {
			third.AppendRaw(e)
		}
		third.Append(fixture.Add(w.at(), fixture.PDQ(4242)))
		s, _ := consortium.Replay(w.g, in.Logs, consortium.ReplayOptions{})
		cp, err := consortium.OpenCheckpoint(w.g.ID, s, third.Checkpoint())
		if err != nil {
			t.Fatal(err)
		}
		return cp
	}
	t.Run("other history beyond the cutoff warns", func(t *testing.T) {
		r := build(t, otherHistory, nil)
		if !r.OK || !warns(r, "the other of the two histories") {
			t.Errorf("ok %v, warnings %q; want ok and a warning of the other history:\n%s", r.OK, r.Warnings, r)
		}
	})
	t.Run("third history at the cutoff fails", func(t *testing.T) {
		if r := build(t, thirdHistory, nil); r.OK || !failedRule(r, consortium.RuleHeadsRoot, "alpha") {
			t.Errorf("ok %v: want heads-root on alpha:\n%s", r.OK, r)
		}
	})
	t.Run("entries below the cutoff withheld fails", func(t *testing.T) {
		r := build(t, otherHistory, func(in *consortium.AuditInput) {
			// Only the first two of alpha's entries, with the checkpoint that covers them gone: the
			// agreed root no longer verifies anything, nor does a checkpoint reach the cutoff.
			in.Logs["alpha"] = in.Logs["alpha"][:2]
			delete(in.Checkpoints, "alpha")
		})
		if r.OK {
			t.Errorf("a bundle withholding alpha's agreed entries passed:\n%s", r)
		}
	})
}

func warns(r *consortium.AuditReport, s string) bool {
	for _, w := range r.Warnings {
		if strings.Contains(w, s) {
			return true
		}
	}
	return false
}

func failedRule(r *consortium.AuditReport, rule, log string) bool {
	for _, f := range r.Failures {
		if f.Rule == rule && f.Log == log {
			return true
		}
	}
	return false
}
