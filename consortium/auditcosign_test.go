package consortium_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
)

// TestAuditAgreedCosignatures: a log the bundle verifies only by the agreed root of resolved
// evidence (PROTOCOL.md section 12.1, step 2e) has no checkpoint of its entries in the bundle. With
// --require-cosignatures, the cosignatures that count for it are those on the two checkpoints of the
// evidence that sets its cutoff (each cosigner verified a tree whose first F entries are the agreed
// ones). So an exporter that drops the log's poorly cosigned checkpoint and trims the log to the
// agreed entries still fails, naming the member and rule cosignatures; one whose evidence carries
// enough cosignatures passes.
func TestAuditAgreedCosignatures(t *testing.T) {
	f := newForkPair(t, 5, 9, 13)
	cosign := func(cp *consortium.Checkpoint) *consortium.Checkpoint {
		c, err := consortium.Cosign(f.g.ID, f.g, cp, fixture.Key("bravo"), fixture.Epoch)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	resolve := func(f *forkPair) []byte {
		ev, err := f.evidence(t).Resolve(f.agreement(t, 5))
		if err != nil {
			t.Fatal(err)
		}
		return ev.Marshal()
	}
	bare := resolve(f) // neither of the evidence's checkpoints is cosigned
	onlyB := resolve(&forkPair{g: f.g, ea: f.ea, eb: f.eb, a: f.a, b: cosign(f.b)})
	both := resolve(&forkPair{g: f.g, ea: f.ea, eb: f.eb, a: cosign(f.a), b: cosign(f.b)})
	below := cosign(open(t, f.g, testLog(t, f.g, "alpha", 3).Checkpoint())).Note

	bundle := func(entries [][]byte, cps [][]byte, evidence ...[]byte) consortium.AuditInput {
		in := consortium.AuditInput{Genesis: f.g.Marshal(), Logs: consortium.Logs{"alpha": entries}, Checkpoints: map[string][][]byte{}}
		if cps != nil {
			in.Checkpoints["alpha"] = cps
		}
		in.Evidence = evidence
		return in
	}
	for _, tc := range []struct {
		name          string
		in            consortium.AuditInput
		wantOK        bool
		wantCosigners []string
		wantMsg       string
	}{
		// The whole fork a with its checkpoint, not cosigned: fails as any log would.
		{name: "fork a with its checkpoint", in: bundle(f.ea, [][]byte{f.a.Note}, bare),
			wantMsg: "checkpoint of size 9 has 0 cosignatures, 1 required"},
		// The attack: the same bundle with the checkpoint dropped and the log trimmed to the agreed
		// entries, which the evidence alone verifies.
		{name: "checkpoint dropped, agreed entries only", in: bundle(f.ea[:5], nil, bare),
			wantMsg: "5 entries verified by the agreed root of the equivocation evidence (no checkpoint of them in the bundle); the evidence's checkpoints carry 0 cosignatures"},
		// A cosigned checkpoint below the agreed size covers only part of what is replayed.
		{name: "cosigned checkpoint below the agreed entries", in: bundle(f.ea[:5], [][]byte{below}, bare),
			wantMsg: "the evidence's checkpoints carry 0 cosignatures"},
		{name: "evidence's checkpoint b cosigned", in: bundle(f.ea[:5], nil, onlyB), wantOK: true, wantCosigners: []string{"bravo"}},
		{name: "both of the evidence's checkpoints cosigned", in: bundle(f.eb[:5], nil, both), wantOK: true, wantCosigners: []string{"bravo"}},
		{name: "uncosigned evidence beside cosigned evidence of the same agreement", in: bundle(f.ea[:5], nil, bare, both), wantOK: true, wantCosigners: []string{"bravo"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := consortium.Audit(tc.in, consortium.AuditOptions{RequireCosignatures: 1})
			var la *consortium.LogAudit
			for i := range r.Logs {
				if r.Logs[i].Member == "alpha" {
					la = &r.Logs[i]
				}
			}
			if la == nil {
				t.Fatalf("no audit of alpha's log:\n%s", r)
			}
			if tc.wantOK {
				if !r.OK {
					t.Fatalf("got failures, want ok:\n%s", r)
				}
				if !slices.Equal(la.Cosigners, tc.wantCosigners) {
					t.Errorf("got cosigners %v, want %v", la.Cosigners, tc.wantCosigners)
				}
				return
			}
			var found bool
			for _, fl := range r.Failures {
				if fl.Rule == consortium.RuleCosignatures && fl.Log == "alpha" && strings.Contains(fl.Message, tc.wantMsg) {
					found = true
				}
			}
			if !found {
				t.Errorf("got failures %q, want one of rule %s on log alpha saying %q", r.FailureText(), consortium.RuleCosignatures, tc.wantMsg)
			}
		})
	}
}
