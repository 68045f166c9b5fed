package consortium_test

import (
	"fmt"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	"google.golang.org/protobuf/proto"
)

// TestAuditAgreedEntries: a node that joined after a member forked its log holds only the agreed
// entries of that log (below the cutoff, PROTOCOL.md section 5.2) and no signed head covering
// exactly them. Its bundle gives them with the resolved evidence, whose agreed root, proven by
// consistency proofs to both of the member's signed checkpoints, verifies them (section 12.1): the
// audit computes the node's digest. Nothing weaker passes: more entries than the agreed size,
// fewer, entries not of the signed tree, evidence of another consortium, evidence whose proofs are
// for another size, or unresolved evidence.
func TestAuditAgreedEntries(t *testing.T) {
	f := newForkPair(t, 5, 9, 13)
	unresolved := f.evidence(t)
	resolved, err := unresolved.Resolve(f.agreement(t, 5))
	if err != nil {
		t.Fatal(err)
	}
	digestOf := func(n int) string {
		st, err := consortium.Replay(f.g, consortium.Logs{"alpha": f.ea[:n]}, consortium.ReplayOptions{})
		if err != nil {
			t.Fatal(err)
		}
		d := st.Digest()
		return fmt.Sprintf("%x", d[:])
	}
	bundle := func(entries [][]byte, cps [][]byte, evidence ...[]byte) consortium.AuditInput {
		in := consortium.AuditInput{Genesis: f.g.Marshal(), Logs: consortium.Logs{"alpha": entries}, Checkpoints: map[string][][]byte{}}
		if cps != nil {
			in.Checkpoints["alpha"] = cps
		}
		in.Evidence = evidence
		return in
	}
	// A third history that shares only 3 entries with the agreed tree.
	third := testLog(t, f.g, "alpha", 3)
	third.Append(fixture.Add(fixture.At(103), fixture.PDQ(303)), fixture.Add(fixture.At(104), fixture.PDQ(304)))
	// The same fork in another consortium (same member, same key, same entries).
	other := fixture.Genesis(1, fixture.Members("alpha", "bravo", "charlie")...)
	oa, ob := testLog(t, other, "alpha", 5), testLog(t, other, "alpha", 5)
	for i := 5; i < 9; i++ {
		oa.Append(fixture.Add(fixture.At(int64(100+i)), fixture.PDQ(100+i)))
	}
	for i := 5; i < 13; i++ {
		ob.Append(fixture.Add(fixture.At(int64(100+i)), fixture.PDQ(200+i)))
	}
	of := &forkPair{g: other, ea: oa.Entries, eb: ob.Entries, a: open(t, other, oa.Checkpoint()), b: open(t, other, ob.Checkpoint())}
	foreign, err := of.evidence(t).Resolve(of.agreement(t, 5))
	if err != nil {
		t.Fatal(err)
	}
	// Resolved evidence edited to claim another agreed size with the proofs of size 5.
	resize := func(n uint64) []byte {
		p := resolved.Proto()
		p.AgreedSize = &n
		b, err := proto.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	below := testLog(t, f.g, "alpha", 3).Checkpoint()

	for _, tc := range []struct {
		name         string
		in           consortium.AuditInput
		wantVerified uint64   // when the audit passes
		wantRules    []string // when it fails: every rule broken
		wantMsg      string
	}{
		{name: "agreed entries of fork a", in: bundle(f.ea[:5], nil, resolved.Marshal()), wantVerified: 5},
		{name: "agreed entries of fork b", in: bundle(f.eb[:5], nil, resolved.Marshal()), wantVerified: 5},
		{name: "agreed entries and a checkpoint below them", in: bundle(f.ea[:5], [][]byte{below}, resolved.Marshal()), wantVerified: 5},
		{name: "agreed entries, unresolved evidence too", in: bundle(f.ea[:5], nil, unresolved.Marshal(), resolved.Marshal()), wantVerified: 5},

		{name: "entries beyond the agreed size", in: bundle(f.ea[:7], nil, resolved.Marshal()),
			wantRules: []string{consortium.RuleAgreed}, wantMsg: "entries [5, 7) are beyond the agreed size 5 and no checkpoint covers them"},
		{name: "entries beyond the agreed size above a checkpoint", in: bundle(f.ea[:6], [][]byte{below}, resolved.Marshal()),
			wantRules: []string{consortium.RuleAgreed}, wantMsg: "entries [5, 6) are beyond the agreed size 5"},
		{name: "fewer entries than the agreed size", in: bundle(f.ea[:4], nil, resolved.Marshal()),
			wantRules: []string{consortium.RuleAgreed}, wantMsg: "4 entries, fewer than the 5 agreed ones"},
		{name: "entries not of the signed tree", in: bundle(third.Entries, nil, resolved.Marshal()),
			wantRules: []string{consortium.RuleAgreed}, wantMsg: "entries [0, 5) do not give the agreed root"},
		{name: "evidence of another consortium", in: bundle(f.ea[:5], nil, foreign.Marshal()),
			wantRules: []string{consortium.RuleEvidence, consortium.RuleUnsigned}, wantMsg: "is not a log of consortium"},
		{name: "agreement proofs for another size", in: bundle(f.ea[:4], nil, resize(4)),
			wantRules: []string{consortium.RuleEvidence, consortium.RuleUnsigned}, wantMsg: "agreed root at 4 is not checkpoint a's"},
		{name: "agreed size raised beyond the agreement", in: bundle(f.ea[:7], nil, resize(7)),
			wantRules: []string{consortium.RuleEvidence, consortium.RuleUnsigned}, wantMsg: "evidence 0 does not verify"},
		{name: "unresolved evidence only", in: bundle(f.ea[:5], nil, unresolved.Marshal()),
			wantRules: []string{consortium.RuleUnsigned}, wantMsg: "5 entries and no valid checkpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := consortium.Audit(tc.in, consortium.AuditOptions{})
			if tc.wantRules == nil {
				if !r.OK || r.Digest != digestOf(5) {
					t.Fatalf("got ok %v, digest %s; want ok, digest %s (alpha's first 5 entries):\n%s", r.OK, r.Digest, digestOf(5), r)
				}
				if got := len(r.VerifiedLogs(tc.in.Logs)["alpha"]); uint64(got) != tc.wantVerified || r.Logs[0].Agreed != tc.wantVerified {
					t.Errorf("got %d verified entries (agreed %d), want %d", got, r.Logs[0].Agreed, tc.wantVerified)
				}
				// The bundle's files carry it: written and read back, it audits the same.
				files := mapWriter{}
				if err := consortium.WriteBundle(files, tc.in); err != nil {
					t.Fatal(err)
				}
				fsys := fstest.MapFS{}
				for name, b := range files {
					fsys[name] = &fstest.MapFile{Data: b}
				}
				back, err := consortium.ReadBundle(fsys)
				if err != nil {
					t.Fatal(err)
				}
				if r2 := consortium.Audit(back, consortium.AuditOptions{}); !r2.OK || r2.Digest != r.Digest {
					t.Errorf("read back: got ok %v, digest %s; want ok, %s", r2.OK, r2.Digest, r.Digest)
				}
				return
			}
			if r.OK {
				t.Fatalf("got ok, want failures %v:\n%s", tc.wantRules, r)
			}
			rules := map[string]bool{}
			var msgs []string
			for _, fl := range r.Failures {
				rules[fl.Rule] = true
				msgs = append(msgs, fl.Message)
			}
			for _, rule := range tc.wantRules {
				if !rules[rule] {
					t.Errorf("got failures %q, want one of rule %s", msgs, rule)
				}
			}
			if !strings.Contains(strings.Join(msgs, "\n"), tc.wantMsg) {
				t.Errorf("got failures %q, want one saying %q", msgs, tc.wantMsg)
			}
			// What is not verified is not replayed: alpha's state is at most its first 5 entries'.
			if r.Digest != "" && r.Digest != digestOf(5) && r.Digest != digestOf(0) {
				t.Errorf("got digest %s, which is neither the agreed state nor the empty one", r.Digest)
			}
		})
	}
}

// TestAuditEvidenceNamesLog: resolved evidence against alpha with cutoff F > 0 carries two
// checkpoints alpha signed, both larger than F, and every node applies alpha's first F entries
// (PROTOCOL.md section 5.2). A bundle that keeps the evidence but leaves out alpha's log, or holds
// fewer than F verified entries of it, omits entries that count: the audit fails (omitted,
// rolled-back), naming alpha, as it does for a log a heads note names. Unresolved evidence (F = 0)
// requires nothing.
func TestAuditEvidenceNamesLog(t *testing.T) {
	f := newForkPair(t, 5, 9, 13)
	unresolved := f.evidence(t)
	resolved, err := unresolved.Resolve(f.agreement(t, 5))
	if err != nil {
		t.Fatal(err)
	}
	below := testLog(t, f.g, "alpha", 3).Checkpoint()
	bravo := testLog(t, f.g, "bravo", 2)
	bundle := func(alpha [][]byte, cps [][]byte, evidence ...[]byte) consortium.AuditInput {
		in := consortium.AuditInput{Genesis: f.g.Marshal(), Logs: consortium.Logs{"bravo": bravo.Entries},
			Checkpoints: map[string][][]byte{"bravo": {bravo.Checkpoint()}}, Evidence: evidence}
		if alpha != nil {
			in.Logs["alpha"] = alpha
		}
		if cps != nil {
			in.Checkpoints["alpha"] = cps
		}
		return in
	}
	for _, tc := range []struct {
		name      string
		in        consortium.AuditInput
		wantRule  string // "" when the audit passes
		wantIndex *uint64
	}{
		{name: "agreed entries", in: bundle(f.ea[:5], nil, resolved.Marshal())},
		{name: "whole fork with its checkpoint", in: bundle(f.ea, [][]byte{f.a.Note}, resolved.Marshal())},
		{name: "log left out, unresolved evidence", in: bundle(nil, nil, unresolved.Marshal())},
		{name: "log left out, resolved evidence kept", in: bundle(nil, nil, resolved.Marshal()), wantRule: consortium.RuleOmitted},
		{name: "only a checkpoint below the cutoff", in: bundle(f.ea[:3], [][]byte{below}, resolved.Marshal()), wantRule: consortium.RuleRolledBack, wantIndex: ptr(3)},
		{name: "entries below the cutoff beyond a checkpoint", in: bundle(f.ea[:4], [][]byte{below}, resolved.Marshal()), wantRule: consortium.RuleRolledBack, wantIndex: ptr(3)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := consortium.Audit(tc.in, consortium.AuditOptions{})
			if tc.wantRule == "" {
				if !r.OK {
					t.Fatalf("got failures, want ok:\n%s", r)
				}
				return
			}
			if len(r.Failures) != 1 {
				t.Fatalf("got failures %q, want exactly one of rule %s on alpha", r.FailureText(), tc.wantRule)
			}
			fl := r.Failures[0]
			if fl.Rule != tc.wantRule || fl.Log != "alpha" || (tc.wantIndex == nil) != (fl.Index == nil) || (fl.Index != nil && *fl.Index != *tc.wantIndex) {
				t.Errorf("got failure %s (index %v), want rule %s on alpha at index %v", fl, fl.Index, tc.wantRule, tc.wantIndex)
			}
			if !strings.Contains(fl.Message, "equivocation evidence") {
				t.Errorf("got message %q, want it to name the evidence", fl.Message)
			}
		})
	}
}

func ptr(i uint64) *uint64 { return &i }
