package consortium_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

const day = 24 * 3600 * 1000

// reportWorld is three members' logs over forty days (fixture.Epoch is Thursday 2026-01-01).
func reportWorld(t *testing.T) (*consortium.Genesis, consortium.Logs) {
	t.Helper()
	g := fixture.Genesis(2, fixture.Members("alpha", "bravo", "charlie")...)
	p1, p2, p3 := fixture.PDQ(1), fixture.PDQ(2), fixture.PDQ(3)
	logs := consortium.Logs{}
	put := func(m string, es ...*pb.Entry) {
		for _, e := range es {
			logs[m] = append(logs[m], fixture.Marshal(e))
		}
	}
	put("alpha",
		fixture.Add(fixture.At(0), p1, "behaviour:threat-incitement"),
		fixture.Add(fixture.At(1*day), p2, "content:manifesto"),
		fixture.RevokeSignal(fixture.At(10*day), p1),
		fixture.Add(fixture.At(40*day), p3))
	put("bravo",
		fixture.Add(fixture.At(2*day), p1),
		fixture.Opinion(fixture.At(3*day), p2, pb.Stance_STANCE_FALSE_POSITIVE),
		fixture.Opinion(fixture.At(4*day), p1, pb.Stance_STANCE_FALSE_POSITIVE),
		fixture.RevokeIndex(fixture.At(12*day), 0))
	put("charlie",
		fixture.Opinion(fixture.At(5*day), p2, pb.Stance_STANCE_FALSE_POSITIVE),
		fixture.Opinion(fixture.At(6*day), p2, pb.Stance_STANCE_WITHDRAWN))
	return g, logs
}

func TestReport(t *testing.T) {
	g, logs := reportWorld(t)
	r, err := consortium.NewReport(g, logs, nil, fixture.Epoch, fixture.Epoch.Add(30*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"totals", r.Totals, consortium.ReportTotals{Additions: 3, Revocations: 2, Opinions: 4, Disputes: 3}},
		{"logs covered", r.Logs, map[string]uint64{"alpha": 3, "bravo": 4, "charlie": 2}},
		{"signals at the end", [2]int{r.Signals, r.Listings}, [2]int{1, 1}},
		{"weeks", r.Weeks[:3], []consortium.WeekCount{{Week: "2025-12-29", Additions: 3}, {Week: "2026-01-05", Revocations: 1}, {Week: "2026-01-12", Revocations: 1}}},
		{"number of weeks", len(r.Weeks), 5},
		{"by label", r.ByLabel, []consortium.KeyCount{{Key: "(none)", Additions: 1, Revocations: 1}, {Key: "behaviour:threat-incitement", Additions: 1, Revocations: 1}, {Key: "content:manifesto", Additions: 1}}},
		{"by member", r.ByMember, []consortium.KeyCount{{Key: "alpha", Additions: 2, Revocations: 1}, {Key: "bravo", Additions: 1, Revocations: 1}}},
		{"revoke reasons", r.RevokeReasons, []consortium.NameCount{{Name: "false_positive", Count: 1}, {Name: "order_overturned", Count: 1}}},
		{"disputes", r.Disputes, consortium.Disputes{Raised: 3, Outcomes: []consortium.NameCount{{Name: "revoked", Count: 1}, {Name: "withdrawn", Count: 1}, {Name: "open", Count: 1}}}},
		{"time to first revocation", [3]int64{int64(r.TimeToRevocation.Count), r.TimeToRevocation.MedianSeconds, r.TimeToRevocation.P90Seconds}, [3]int64{1, 10 * 24 * 3600, 10 * 24 * 3600}},
		{"duration buckets", r.TimeToRevocation.Buckets[2], consortium.NameCount{Name: "7 to 30 days", Count: 1}},
	}
	for _, c := range checks {
		if got, want := sprint(c.got), sprint(c.want); got != want {
			t.Errorf("%s: got %s, want %s", c.name, got, want)
		}
	}
	// The same period over the same logs gives the same bytes; entries after the period change
	// nothing.
	logs["charlie"] = append(logs["charlie"], fixture.Marshal(fixture.Add(fixture.At(50*day), fixture.PDQ(9))))
	again, err := consortium.NewReport(g, logs, nil, fixture.Epoch, fixture.Epoch.Add(30*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(consortium.MarshalReport(r), consortium.MarshalReport(again)) {
		t.Error("a later entry changed the report of an earlier period")
	}
	for _, bad := range [][2]time.Time{{fixture.Epoch, fixture.Epoch}, {fixture.Epoch, fixture.Epoch.AddDate(11, 0, 0)}} {
		if _, err := consortium.NewReport(g, logs, nil, bad[0], bad[1]); !errors.Is(err, consortium.ErrReport) {
			t.Errorf("period %v: got %v, want ErrReport", bad, err)
		}
	}
}

func sprint(v any) string { return strings.TrimSpace(strings.ReplaceAll(fmtV(v), "\n", " ")) }

func TestCheckReportRefusesTampering(t *testing.T) {
	g, logs := reportWorld(t)
	r, err := consortium.NewReport(g, logs, nil, fixture.Epoch, fixture.Epoch.Add(30*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	good := consortium.MarshalReport(r)
	diffs, n, err := consortium.CheckReport(g, logs, nil, good)
	if err != nil || len(diffs) != 0 || n < 40 {
		t.Fatalf("untouched report: got %d differences %v over %d values (%v), want none over 40 or more", len(diffs), diffs, n, err)
	}
	html := []byte("<html><body><p>report</p>" + consortium.ReportHTMLData(r) + "</body></html>")
	if diffs, _, err := consortium.CheckReport(g, logs, nil, html); err != nil || len(diffs) != 0 {
		t.Fatalf("untouched HTML report: got %v (%v), want no differences", diffs, err)
	}
	cases := []struct {
		name     string
		old, new string
		want     string
	}{
		{"a total", `"additions": 3,`, `"additions": 2,`, "totals.additions: the report says 2, the logs give 3"},
		{"a week", `"week": "2025-12-29",
      "additions": 3`, `"week": "2025-12-29",
      "additions": 1`, "weeks[0].additions: the report says 1, the logs give 3"},
		{"a reason", `"name": "false_positive"`, `"name": "complaint_upheld"`, "revoke_reasons[0].name"},
		{"a dispute outcome", `"name": "open",
        "count": 1`, `"name": "open",
        "count": 0`, "disputes.outcomes[2].count"},
		{"the digest", r.Digest, strings.Repeat("0", 64), "digest: the report says"},
		{"a log's size", `"alpha": 3`, `"alpha": 2`, "logs.alpha"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bad := bytes.Replace(good, []byte(tc.old), []byte(tc.new), 1)
			if bytes.Equal(bad, good) {
				t.Fatalf("%q not in the report", tc.old)
			}
			diffs, _, err := consortium.CheckReport(g, logs, nil, bad)
			if err != nil || len(diffs) == 0 || !strings.Contains(strings.Join(diffs, "\n"), tc.want) {
				t.Errorf("got %v (%v), want a difference naming %q", diffs, err, tc.want)
			}
		})
	}
	// A member that back-dates an entry into the reported period after the report was written is
	// caught too.
	logs["bravo"] = append(logs["bravo"], fixture.Marshal(fixture.Add(fixture.At(13*day), fixture.PDQ(7))))
	if diffs, _, _ := consortium.CheckReport(g, logs, nil, good); len(diffs) == 0 {
		t.Error("an entry added to the period after the report did not change it")
	}
	if _, _, err := consortium.CheckReport(g, logs, nil, []byte("not a report")); !errors.Is(err, consortium.ErrReport) {
		t.Errorf("garbage: got %v, want ErrReport", err)
	}
}

func fmtV(v any) string { return fmt.Sprintf("%+v", v) }

// FuzzReadReport: a report ReadReport accepts, written again, reads back the same.
func FuzzReadReport(f *testing.F) {
	g := fixture.Genesis(2, fixture.Members("alpha", "bravo", "charlie")...)
	logs := consortium.Logs{"alpha": {fixture.Marshal(fixture.Add(fixture.At(0), fixture.PDQ(1), "content:manifesto"))}}
	r, err := consortium.NewReport(g, logs, nil, fixture.Epoch, fixture.Epoch.Add(time.Hour))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(consortium.MarshalReport(r))
	f.Add([]byte("<p>" + consortium.ReportHTMLData(r)))
	f.Add([]byte(`{"version":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, _, err := consortium.ReadReport(b)
		if err != nil {
			return
		}
		again, _, err := consortium.ReadReport(consortium.MarshalReport(r))
		if err != nil {
			t.Fatalf("re-read: %v", err)
		}
		if x, y := consortium.MarshalReport(r), consortium.MarshalReport(again); !bytes.Equal(x, y) {
			t.Fatalf("re-read differs:\n%s\n%s", x, y)
		}
	})
}
