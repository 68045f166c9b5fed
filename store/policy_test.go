package store_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"github.com/hashfed/hashfed/store"
	bolt "go.etcd.io/bbolt"
)

// near returns sig with its first k bits flipped.
func near(sig consortium.Signal, k int) consortium.Signal {
	for i := range k {
		sig.Value[i/8] ^= 1 << (i % 8)
	}
	return sig
}

func hiddenQuery() store.Query {
	q := store.DefaultQuery()
	q.IncludeHidden = true
	return q
}

func TestSuppressedNeverMatches(t *testing.T) {
	g := fixture.Genesis(2, founders...)
	path := filepath.Join(t.TempDir(), "db")
	s := openStore(t, path, g, testOptions())
	pdq, md5 := fixture.PDQ(1), fixture.MD5(1)
	submit(t, s, "alpha", fixture.Add(fixture.At(0), pdq), fixture.Add(fixture.At(0), md5))
	if err := s.Suppress(pdq, "", "no reason"); !errors.Is(err, store.ErrPolicy) {
		t.Fatalf("suppress without who: got %v, want ErrPolicy", err)
	}
	for _, sig := range []consortium.Signal{pdq, md5} {
		if err := s.Suppress(sig, "rev@example.org", "matches our logo"); err != nil {
			t.Fatal(err)
		}
	}
	check := func(s *store.Store, when string) {
		t.Helper()
		for _, q := range []consortium.Signal{pdq, near(pdq, 3), md5} {
			if ms, err := s.MatchSignal(q, store.DefaultQuery()); err != nil || len(ms) != 0 {
				t.Errorf("%s: %v matched a suppressed signal: got %d matches (%v), want 0", when, q, len(ms), err)
			}
			ms, err := s.MatchSignal(q, hiddenQuery())
			if err != nil || len(ms) != 1 || !strings.Contains(ms[0].Hidden, "suppressed by rev@example.org") || !strings.Contains(ms[0].Hidden, "matches our logo") {
				t.Errorf("%s: hidden match of %v: got %+v (%v), want one explaining who and why", when, q, ms, err)
			}
		}
	}
	check(s, "before reopening")
	// Another member listing it too, or a re-add, does not lift it.
	submit(t, s, "bravo", fixture.Add(fixture.At(1), pdq))
	check(s, "after bravo lists it")
	s.Close()
	s = openStore(t, path, g, testOptions())
	check(s, "after reopening")
	if v := s.Policy(); len(v.Suppressed) != 2 || v.Suppressed[0].Who != "rev@example.org" {
		t.Errorf("policy view: got %+v, want the two suppressions", v.Suppressed)
	}
	if err := s.Unsuppress(md5); err != nil {
		t.Fatal(err)
	}
	if ms, _ := s.MatchSignal(md5, store.DefaultQuery()); len(ms) != 1 {
		t.Errorf("unsuppressed md5: got %d matches, want 1", len(ms))
	}
}

func TestDistanceCaps(t *testing.T) {
	g := fixture.Genesis(2, founders...)
	s := openStore(t, filepath.Join(t.TempDir(), "db"), g, testOptions())
	tight, loose := fixture.PDQ(1), fixture.PDQ(2)
	submit(t, s, "alpha", fixture.Add(fixture.At(0), tight, "behaviour:threat-incitement"), fixture.Add(fixture.At(0), loose, "content:manifesto"))
	if err := s.SetLabelCap("behaviour:threat-incitement", 8); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLabelCap("not a label", 8); !errors.Is(err, store.ErrPolicy) {
		t.Errorf("cap on a bad label: got %v, want ErrPolicy", err)
	}
	if err := s.SetMemberCap("alpha", 99); !errors.Is(err, store.ErrPolicy) {
		t.Errorf("cap over the largest radius: got %v, want ErrPolicy", err)
	}
	cases := []struct {
		name   string
		query  consortium.Signal
		hidden bool
	}{
		{"within the label cap", near(tight, 8), false},
		{"beyond the label cap", near(tight, 9), true},
		{"other label, no cap", near(loose, 20), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ms, err := s.MatchSignal(tc.query, store.DefaultQuery())
			if err != nil {
				t.Fatal(err)
			}
			if got := len(ms) == 0; got != tc.hidden {
				t.Errorf("hidden: got %v, want %v (%+v)", got, tc.hidden, ms)
			}
			if tc.hidden {
				ms, _ = s.MatchSignal(tc.query, hiddenQuery())
				if len(ms) != 1 || !strings.Contains(ms[0].Hidden, "label behaviour:threat-incitement capped at 8") {
					t.Errorf("reason: got %+v, want the label cap named", ms)
				}
			}
		})
	}
	// A member cap lower than the label cap wins; a second lister without caps lets it match.
	if err := s.SetMemberCap("alpha", 4); err != nil {
		t.Fatal(err)
	}
	if ms, _ := s.MatchSignal(near(tight, 6), store.DefaultQuery()); len(ms) != 0 {
		t.Errorf("member cap 4 at distance 6: got %d matches, want 0", len(ms))
	}
	if ms, _ := s.MatchSignal(near(tight, 6), hiddenQuery()); len(ms) != 1 || !strings.Contains(ms[0].Hidden, "member alpha capped at 4") {
		t.Errorf("member cap reason: got %+v", ms)
	}
	submit(t, s, "bravo", fixture.Add(fixture.At(1), tight))
	if ms, _ := s.MatchSignal(near(tight, 6), store.DefaultQuery()); len(ms) != 1 {
		t.Errorf("bravo's uncapped listing: got %d matches, want 1", len(ms))
	}
	if err := s.SetMemberCap("alpha", -1); err != nil {
		t.Fatal(err)
	}
	if v := s.Policy(); len(v.MemberCaps) != 0 || v.LabelCaps["behaviour:threat-incitement"] != 8 {
		t.Errorf("caps after removing alpha's: got %v %v", v.MemberCaps, v.LabelCaps)
	}
}

func TestFloodQuarantine(t *testing.T) {
	g := fixture.Genesis(2, founders...)
	c := &clock{t: fixture.Epoch}
	o := testOptions()
	o.Now = c.now
	o.FloodThreshold = 5
	o.FloodWindow = time.Hour
	path := filepath.Join(t.TempDir(), "db")
	s := openStore(t, path, g, o)
	flood, calm := fixture.PDQ(1), fixture.PDQ(2)
	submit(t, s, "alpha", fixture.Add(fixture.At(0), flood), fixture.Add(fixture.At(0), calm))
	// A usual rate of 3 an hour for a few hours: never held.
	for range 4 {
		for range 3 {
			if ms, _ := s.MatchSignal(near(calm, 2), store.DefaultQuery()); len(ms) != 1 {
				t.Fatalf("calm signal: got %d matches, want 1", len(ms))
			}
		}
		c.add(time.Hour)
	}
	// Four uploads match; the fifth trips the threshold and is held, as is everything after.
	for i := range 4 {
		if ms, _ := s.MatchSignal(flood, store.DefaultQuery()); len(ms) != 1 {
			t.Fatalf("upload %d: got %d matches, want 1", i, len(ms))
		}
	}
	for i := range 3 {
		if ms, _ := s.MatchSignal(flood, store.DefaultQuery()); len(ms) != 0 {
			t.Fatalf("upload %d after the flood: got %d matches, want 0 (held)", 5+i, len(ms))
		}
	}
	// A reviewer's look is not an upload and shows why.
	q := hiddenQuery()
	q.Inspect = true
	ms, _ := s.MatchSignal(flood, q)
	if len(ms) != 1 || !strings.Contains(ms[0].Hidden, "held for review") || !strings.Contains(ms[0].Hidden, "5 uploads matched it") {
		t.Fatalf("held match: got %+v, want the hold explained", ms)
	}
	if v := s.Policy(); len(v.Held) != 1 || v.Held[0].Signal != flood || v.Held[0].Matches != 5 {
		t.Fatalf("held list: got %+v", v.Held)
	}
	// The hold survives a restart; a confirm releases it for good.
	s.Close()
	s = openStore(t, path, g, o)
	if ms, _ := s.MatchSignal(flood, store.DefaultQuery()); len(ms) != 0 {
		t.Fatalf("after reopening: got %d matches, want 0 (still held)", len(ms))
	}
	if _, err := s.RecordReview(flood, "rev", store.Verdict("maybe"), "", -1); !errors.Is(err, store.ErrPolicy) {
		t.Errorf("bad verdict: got %v, want ErrPolicy", err)
	}
	if _, err := s.RecordReview(flood, "rev", store.Confirm, "real attack video", 7); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if ms, _ := s.MatchSignal(flood, store.DefaultQuery()); len(ms) != 1 {
			t.Fatalf("confirmed signal: got %d matches, want 1", len(ms))
		}
	}
	if r, ok := s.ReviewOf(flood); !ok || r.Verdict != store.Confirm || r.Opinion != 7 {
		t.Errorf("review: got %+v %v", r, ok)
	}
}

func TestDeconfirmSuppresses(t *testing.T) {
	g := fixture.Genesis(2, founders...)
	s := openStore(t, filepath.Join(t.TempDir(), "db"), g, testOptions())
	sig := fixture.PDQ(1)
	submit(t, s, "alpha", fixture.Add(fixture.At(0), sig))
	if _, err := s.RecordReview(sig, "rev", store.Deconfirm, "a cartoon", -1); err != nil {
		t.Fatal(err)
	}
	if ms, _ := s.MatchSignal(sig, store.DefaultQuery()); len(ms) != 0 {
		t.Errorf("deconfirmed signal: got %d matches, want 0", len(ms))
	}
	ms, _ := s.MatchSignal(sig, hiddenQuery())
	if len(ms) != 1 || !strings.Contains(ms[0].Hidden, "suppressed by rev") || !strings.Contains(ms[0].Hidden, "deconfirmed in review: a cartoon") {
		t.Errorf("deconfirmed: got %+v", ms)
	}
}

func TestHistoryAndDisputed(t *testing.T) {
	g := fixture.Genesis(2, founders...)
	s := openStore(t, filepath.Join(t.TempDir(), "db"), g, testOptions())
	sig, other := fixture.PDQ(1), fixture.PDQ(2)
	submit(t, s, "alpha", fixture.Add(fixture.At(0), sig, "content:manifesto"), fixture.Add(fixture.At(1), other))
	// bravo's opinions come while sig is listed (an opinion on a signal nobody lists is refused).
	submit(t, s, "bravo", fixture.Opinion(fixture.At(3), sig, pb.Stance_STANCE_FALSE_POSITIVE), fixture.Opinion(fixture.At(3), other, pb.Stance_STANCE_AGREE))
	if ds, err := s.Disputed(10); err != nil || len(ds) != 1 || ds[0].Signal != sig {
		t.Errorf("disputed: got %+v (%v), want %v alone", ds, err, sig)
	}
	submit(t, s, "alpha", fixture.RevokeIndex(fixture.At(4), 0))
	hist, err := s.History(sig)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range hist {
		got = append(got, fmt.Sprintf("%s/%d %s %s", h.Member, h.Index, h.Op, h.Detail))
	}
	want := []string{"alpha/0 add labels [content:manifesto]", "alpha/2 revoke reason order_overturned", "bravo/0 opinion false_positive: seen"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("history:\ngot  %q\nwant %q", got, want)
	}
	if _, err := s.SignHead(fixture.Key("alpha")); err != nil {
		t.Fatal(err)
	}
	hist, _ = s.History(sig)
	if hist[0].Checkpoint != 3 || hist[0].Proof != "verified" || hist[2].Checkpoint != 0 || hist[2].Proof != "" {
		t.Errorf("signature status: got %+v", hist)
	}
	// sig is disputed but no longer listed: nothing is left to review (Lookup finds no listing).
	if ds, err := s.Disputed(10); err != nil || len(ds) != 0 {
		t.Errorf("disputed after the revoke: got %+v (%v), want none", ds, err)
	}
}

// A damaged policy entry is refused at open with its key named; the logs are untouched.
func TestDamagedPolicyRefused(t *testing.T) {
	g := fixture.Genesis(2, founders...)
	path := filepath.Join(t.TempDir(), "db")
	s := openStore(t, path, g, testOptions())
	if err := s.Suppress(fixture.PDQ(1), "rev", "why"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("policy")).Put([]byte("suppress/pdq nothex"), []byte("{}"))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	_, err = store.Open(path, g, testOptions())
	if !errors.Is(err, store.ErrDamaged) || !strings.Contains(err.Error(), `policy entry "suppress/pdq nothex"`) {
		t.Errorf("open with a damaged policy entry: got %v, want ErrDamaged naming it", err)
	}
}
