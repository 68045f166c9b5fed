package consortium_test

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// forkWorld is a consortium in which bravo signed two histories of its log that share their first
// two entries: nodes holding history a have logsA, nodes holding history b logsB. resolved proves
// where they part (agreed size 2); unresolved only that they do.
type forkWorld struct {
	g                    *consortium.Genesis
	logsA, logsB         consortium.Logs
	resolved, unresolved []byte
	from, to             time.Time
}

func newForkWorld(t *testing.T) *forkWorld {
	t.Helper()
	g := fixture.Genesis(2, fixture.Members("alpha", "bravo", "charlie")...)
	alpha := []*pb.Entry{
		fixture.Add(fixture.At(0), fixture.PDQ(1), "content:manifesto"),
		fixture.Add(fixture.At(8*day), fixture.PDQ(2)),
	}
	charlie := []*pb.Entry{fixture.Opinion(fixture.At(6*day), fixture.PDQ(10), pb.Stance_STANCE_FALSE_POSITIVE)}
	common := []*pb.Entry{
		fixture.Add(fixture.At(1*day), fixture.PDQ(10), "behaviour:threat-incitement"),
		fixture.Add(fixture.At(2*day), fixture.PDQ(11)),
	}
	a := fixture.NewLog(g.ID, fixture.Key("bravo"))
	a.Append(common...)
	a.Append(fixture.Add(fixture.At(3*day), fixture.PDQ(12)), fixture.RevokeSignal(fixture.At(9*day), fixture.PDQ(10)))
	b := fixture.NewLog(g.ID, fixture.Key("bravo"))
	b.Append(common...)
	b.Append(fixture.Add(fixture.At(3*day), fixture.PDQ(13)), fixture.Add(fixture.At(4*day), fixture.PDQ(14)))
	cpA, cpB := open(t, g, a.Checkpoint()), open(t, g, b.Checkpoint())
	ev, err := consortium.SameSizeEvidence(cpA, cpB)
	if err != nil {
		t.Fatal(err)
	}
	agreement, err := consortium.AgreementOf(cpA, cpB, fixture.StoredHashes(t, a.Entries), fixture.StoredHashes(t, b.Entries))
	if err != nil {
		t.Fatal(err)
	}
	res, err := ev.Resolve(agreement)
	if err != nil {
		t.Fatal(err)
	}
	marshal := func(es []*pb.Entry) [][]byte {
		var out [][]byte
		for _, e := range es {
			out = append(out, fixture.Marshal(e))
		}
		return out
	}
	return &forkWorld{
		g:        g,
		logsA:    consortium.Logs{"alpha": marshal(alpha), "bravo": a.Entries, "charlie": marshal(charlie)},
		logsB:    consortium.Logs{"alpha": marshal(alpha), "bravo": b.Entries, "charlie": marshal(charlie)},
		resolved: res.Marshal(), unresolved: ev.Marshal(),
		from: fixture.Epoch, to: fixture.Epoch.Add(30 * 24 * time.Hour),
	}
}

// TestReportAppliesCutoffs: a member that forked its log has no effect from its cutoff on in the
// state every node computes (PROTOCOL.md section 5.2), so the transparency report, computed with
// the same evidence, counts none of its later entries, gives the digest of that state, says which
// cutoff it applied, and is the same report whichever history a node holds.
func TestReportAppliesCutoffs(t *testing.T) {
	w := newForkWorld(t)
	for _, tc := range []struct {
		name     string
		evidence [][]byte
		cut      uint64
		resolved bool
		bravo    consortium.KeyCount
	}{
		{"resolved evidence", [][]byte{w.resolved}, 2, true, consortium.KeyCount{Key: "bravo", Additions: 2}},
		{"unresolved evidence", [][]byte{w.unresolved}, 0, false, consortium.KeyCount{}},
		// Unresolved evidence is stale once resolved evidence is known: the cutoff is the resolved one.
		{"stale and resolved evidence", [][]byte{w.unresolved, w.resolved}, 2, true, consortium.KeyCount{Key: "bravo", Additions: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ra, err := consortium.NewReport(w.g, w.logsA, tc.evidence, w.from, w.to)
			if err != nil {
				t.Fatal(err)
			}
			st, err := consortium.Replay(w.g, w.logsA, consortium.ReplayOptions{Sizes: map[string]uint64{"bravo": tc.cut}})
			if err != nil {
				t.Fatal(err)
			}
			d := st.Digest()
			signals, listings := st.Counts()
			var bravo consortium.KeyCount
			for _, k := range ra.ByMember {
				if k.Key == "bravo" {
					bravo = k
				}
			}
			checks := []struct {
				name      string
				got, want any
			}{
				{"digest", ra.Digest, fmt.Sprintf("%x", d[:])},
				{"signals and listings", [2]int{ra.Signals, ra.Listings}, [2]int{signals, listings}},
				{"bravo's entries covered", ra.Logs["bravo"], tc.cut},
				{"bravo's counts", bravo, tc.bravo},
				{"revocations", ra.Totals.Revocations, 0},
				{"cutoffs", ra.Cutoffs, []consortium.ReportCutoff{{Member: "bravo", Cutoff: tc.cut, Resolved: tc.resolved, Excluded: 4 - tc.cut}}},
			}
			for _, c := range checks {
				if got, want := sprint(c.got), sprint(c.want); got != want {
					t.Errorf("%s: got %s, want %s", c.name, got, want)
				}
			}
			// A node holding the other history computes the same report.
			rb, err := consortium.NewReport(w.g, w.logsB, tc.evidence, w.from, w.to)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(consortium.MarshalReport(ra), consortium.MarshalReport(rb)) {
				t.Errorf("the two histories give different reports:\n%s\n%s", consortium.MarshalReport(ra), consortium.MarshalReport(rb))
			}
			if diffs, _, err := consortium.CheckReport(w.g, w.logsB, tc.evidence, consortium.MarshalReport(ra)); err != nil || len(diffs) > 0 {
				t.Errorf("check with the other history: got %v (%v), want no differences", diffs, err)
			}
		})
	}
}

// TestReportBeforeTheFork: a report of a period that ends before a member's cutoff is the same
// with and without the evidence, so a report published before a member forks stays true.
func TestReportBeforeTheFork(t *testing.T) {
	w := newForkWorld(t)
	to := fixture.Epoch.Add(2 * 24 * time.Hour) // bravo's first entry only; its cutoff is 2
	with, err := consortium.NewReport(w.g, w.logsA, [][]byte{w.resolved}, w.from, to)
	if err != nil {
		t.Fatal(err)
	}
	without, err := consortium.NewReport(w.g, w.logsA, nil, w.from, to)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(consortium.MarshalReport(with), consortium.MarshalReport(without)) || len(with.Cutoffs) != 0 {
		t.Errorf("the evidence changed a report of a period before the cutoff: cutoffs %+v", with.Cutoffs)
	}
	if diffs, _, err := consortium.CheckReport(w.g, w.logsB, [][]byte{w.resolved, w.unresolved}, consortium.MarshalReport(without)); err != nil || len(diffs) > 0 {
		t.Errorf("checked with the evidence: got %v (%v), want no differences", diffs, err)
	}
	// Unresolved evidence alone cuts bravo at 0, which leaves out its first entry.
	if diffs, _, err := consortium.CheckReport(w.g, w.logsA, [][]byte{w.unresolved}, consortium.MarshalReport(without)); err != nil || !strings.Contains(strings.Join(diffs, "\n"), `cutoffs: "bravo"`) {
		t.Errorf("checked with unresolved evidence: got %v (%v), want bravo's cutoff named", diffs, err)
	}
}

// TestReportEvidenceAttacks: what a member or an outsider could try with evidence, against the
// report and its check.
func TestReportEvidenceAttacks(t *testing.T) {
	w := newForkWorld(t)
	with, err := consortium.NewReport(w.g, w.logsA, [][]byte{w.resolved}, w.from, w.to)
	if err != nil {
		t.Fatal(err)
	}
	without, err := consortium.NewReport(w.g, w.logsA, nil, w.from, w.to)
	if err != nil {
		t.Fatal(err)
	}
	if with.Digest == without.Digest {
		t.Fatal("the cutoff does not change the digest: the test proves nothing")
	}

	t.Run("evidence that does not verify", func(t *testing.T) {
		other := fixture.Genesis(3, fixture.Members("alpha", "bravo", "charlie")...) // another consortium, same keys
		otherLog := fixture.NewLog(other.ID, fixture.Key("bravo"))
		otherLog.Append(fixture.Add(fixture.At(0), fixture.PDQ(1)))
		otherFork := fixture.NewLog(other.ID, fixture.Key("bravo"))
		otherFork.Append(fixture.Add(fixture.At(0), fixture.PDQ(2)))
		otherEv, err := consortium.SameSizeEvidence(open(t, other, otherLog.Checkpoint()), open(t, other, otherFork.Checkpoint()))
		if err != nil {
			t.Fatal(err)
		}
		// delta is no member of w.g: its checkpoints are signed with a key the consortium does not know.
		dl, df := fixture.NewLog(w.g.ID, fixture.Key("delta")), fixture.NewLog(w.g.ID, fixture.Key("delta"))
		dl.Append(fixture.Add(fixture.At(0), fixture.PDQ(1)))
		df.Append(fixture.Add(fixture.At(0), fixture.PDQ(2)))
		nonMember := (&consortium.Evidence{Member: "delta",
			A: &consortium.Checkpoint{Member: "delta", Size: 1, Root: dl.Tree.Root(), Note: dl.Checkpoint()},
			B: &consortium.Checkpoint{Member: "delta", Size: 1, Root: df.Tree.Root(), Note: df.Checkpoint()}}).Marshal()
		forged := bytes.Clone(w.resolved)
		i := bytes.Index(forged, []byte("\n— "))
		j := bytes.IndexByte(forged[i+len("\n— "):], ' ')
		if i < 0 || j < 0 {
			t.Fatal("no signature line in the evidence")
		}
		forged[i+len("\n— ")+j+20] ^= 1 // inside checkpoint a's base64 signature
		for _, tc := range []struct {
			name string
			ev   []byte
			want string
		}{
			{"forged signature", forged, "does not verify"},
			{"another consortium", otherEv.Marshal(), "is not a log of consortium"},
			{"a non-member", nonMember, "unknown member"},
			{"garbage", []byte("not evidence"), "evidence 0 does not verify"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := consortium.NewReport(w.g, w.logsA, [][]byte{tc.ev}, w.from, w.to)
				if !errors.Is(err, consortium.ErrReport) || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("NewReport: got %v, want ErrReport naming %q", err, tc.want)
				}
				_, _, err = consortium.CheckReport(w.g, w.logsA, [][]byte{tc.ev}, consortium.MarshalReport(with))
				if !errors.Is(err, consortium.ErrReport) || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("CheckReport: got %v, want ErrReport naming %q", err, tc.want)
				}
			})
		}
	})

	t.Run("a third history", func(t *testing.T) {
		// A bundle holding a history of bravo's that parts from the evidence's two before their
		// agreed size: cutting it at 2 would count entries no node applies.
		third := fixture.NewLog(w.g.ID, fixture.Key("bravo"))
		third.AppendRaw(w.logsA["bravo"][0])
		third.Append(fixture.Add(fixture.At(2*day), fixture.PDQ(30)), fixture.Add(fixture.At(3*day), fixture.PDQ(31)))
		logs := maps.Clone(w.logsA)
		logs["bravo"] = third.Entries
		_, err := consortium.NewReport(w.g, logs, [][]byte{w.resolved}, w.from, w.to)
		if !errors.Is(err, consortium.ErrReport) || !strings.Contains(err.Error(), "third history") {
			t.Errorf("got %v, want ErrReport naming a third history", err)
		}
	})

	refused := func(t *testing.T, evidence [][]byte, claimed []byte, want ...string) {
		t.Helper()
		diffs, _, err := consortium.CheckReport(w.g, w.logsA, evidence, claimed)
		all := strings.Join(diffs, "\n")
		for _, s := range want {
			if err != nil || !strings.Contains(all, s) {
				t.Errorf("got %q (%v), want a difference naming %q", all, err, s)
			}
		}
	}
	t.Run("report made before the evidence was known", func(t *testing.T) {
		refused(t, [][]byte{w.resolved}, consortium.MarshalReport(without),
			`cutoffs: "bravo": the report applies all of its log, the evidence cuts it at 2 entries`, "digest: the report says")
	})
	t.Run("report claims evidence the checker does not hold", func(t *testing.T) {
		refused(t, nil, consortium.MarshalReport(with),
			`cutoffs: "bravo": the report cuts its log at 2 entries, no evidence given here cuts it`)
	})
	t.Run("a member invents a cutoff against another", func(t *testing.T) {
		forged := *with
		forged.Cutoffs = append([]consortium.ReportCutoff{{Member: "alpha", Cutoff: 0, Resolved: false, Excluded: 2}}, forged.Cutoffs...)
		refused(t, [][]byte{w.resolved}, consortium.MarshalReport(&forged),
			`cutoffs: "alpha": the report cuts its log at 0 entries, no evidence given here cuts it`)
	})
	t.Run("a cutoff moved", func(t *testing.T) {
		forged := *with
		forged.Cutoffs = []consortium.ReportCutoff{{Member: "bravo", Cutoff: 3, Resolved: true, Excluded: 1}}
		refused(t, [][]byte{w.resolved}, consortium.MarshalReport(&forged),
			`cutoffs: "bravo": the report cuts its log at 3 entries, the evidence cuts it at 2 entries`)
	})
	t.Run("a cutoff listed twice", func(t *testing.T) {
		forged := *with
		forged.Cutoffs = append(slices.Clone(with.Cutoffs), with.Cutoffs...)
		refused(t, [][]byte{w.resolved}, consortium.MarshalReport(&forged), `cutoffs: "bravo" is listed more than once`)
	})
	t.Run("unresolved evidence given to the checker, resolved to the reporter", func(t *testing.T) {
		refused(t, [][]byte{w.unresolved}, consortium.MarshalReport(with),
			`cutoffs: "bravo": the report cuts its log at 2 entries, the evidence cuts it at 0 entries`)
	})
}

// TestReportVersion1: a report of version 1 (before cutoffs) still checks when no evidence cuts a
// log, and is refused with an error saying why when one does.
func TestReportVersion1(t *testing.T) {
	w := newForkWorld(t)
	r, err := consortium.NewReport(w.g, w.logsA, nil, w.from, w.to)
	if err != nil {
		t.Fatal(err)
	}
	v2 := consortium.MarshalReport(r)
	v1 := bytes.Replace(v2, []byte(`"version": 2,`), []byte(`"version": 1,`), 1)
	v1 = bytes.Replace(v1, []byte(`,
  "cutoffs": []
}`), []byte("\n}"), 1)
	if bytes.Equal(v1, v2) || bytes.Contains(v1, []byte("cutoffs")) {
		t.Fatalf("could not write a version 1 report from\n%s", v2)
	}
	if diffs, n, err := consortium.CheckReport(w.g, w.logsA, nil, v1); err != nil || len(diffs) > 0 || n < 40 {
		t.Errorf("version 1 without evidence: got %v over %d values (%v), want no differences", diffs, n, err)
	}
	_, _, err = consortium.CheckReport(w.g, w.logsA, [][]byte{w.resolved}, v1)
	if !errors.Is(err, consortium.ErrReport) || !strings.Contains(err.Error(), "version 1") || !strings.Contains(err.Error(), `"bravo"`) {
		t.Errorf("version 1 with evidence: got %v, want an error naming version 1 and bravo's cutoff", err)
	}
	bad := bytes.Replace(v2, []byte(`"version": 2,`), []byte(`"version": 3,`), 1)
	if _, _, err := consortium.ReadReport(bad); !errors.Is(err, consortium.ErrReport) {
		t.Errorf("version 3: got %v, want ErrReport", err)
	}
}

// TestReportCountsOnlySignedEntries: entries after a log's last valid checkpoint are signed by
// no one (anyone can append valid-looking entries to a bundle's log file). A report computed from
// them, inflating a member's numbers, must not check against the audited logs.
func TestReportCountsOnlySignedEntries(t *testing.T) {
	in := auditWorld(t)
	g, err := consortium.ParseGenesis(in.Genesis)
	if err != nil {
		t.Fatal(err)
	}
	in.Logs["alpha"] = append(in.Logs["alpha"], fixture.Marshal(fixture.Add(fixture.At(40_000), fixture.PDQ(999), "content:manifesto")))
	ar := consortium.Audit(in, consortium.AuditOptions{})
	if !ar.OK {
		t.Fatalf("audit failed:\n%s", ar)
	}
	logs := ar.VerifiedLogs(in.Logs)
	if got := len(logs["alpha"]); got != 21 {
		t.Fatalf("verified logs: alpha has %d entries, want the 21 its checkpoint covers", got)
	}
	from, to := fixture.Epoch, fixture.Epoch.Add(24*time.Hour)
	inflated, err := consortium.NewReport(g, in.Logs, nil, from, to)
	if err != nil {
		t.Fatal(err)
	}
	r, err := consortium.NewReport(g, logs, nil, from, to)
	if err != nil {
		t.Fatal(err)
	}
	if r.Totals.Additions != 40 || inflated.Totals.Additions != 41 {
		t.Fatalf("additions: signed %d, with the unsigned entry %d; want 40 and 41", r.Totals.Additions, inflated.Totals.Additions)
	}
	if r.Digest != ar.Digest {
		t.Errorf("report digest %s, audit digest %s: want equal", r.Digest, ar.Digest)
	}
	diffs, _, err := consortium.CheckReport(g, logs, nil, consortium.MarshalReport(inflated))
	if err != nil || !strings.Contains(strings.Join(diffs, "\n"), "totals.additions: the report says 41, the logs give 40") {
		t.Errorf("inflated report checked against the audited logs: got %v (%v), want totals.additions refused", diffs, err)
	}
}
