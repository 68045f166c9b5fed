package store_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"github.com/hashfed/hashfed/store"
)

// outcome is what one submitted entry came to, in a word.
func outcome(a store.Appended) string {
	switch {
	case a.Err != nil:
		return "refused"
	case a.Unchanged:
		return "unchanged"
	case a.Updated:
		return "updated"
	}
	return "added"
}

// TestRelistIsIdempotent: an add identical to the member's listing in force is not appended;
// any difference in labels, content id, expiry, note or quality is an update; a revoke or an add
// earlier in the same submission makes the add count again.
func TestRelistIsIdempotent(t *testing.T) {
	g := fixture.Genesis(2, founders...)
	s := openStore(t, filepath.Join(t.TempDir(), "hashfed.db"), g, testOptions())
	p1, m1, m2 := fixture.PDQ(1), fixture.MD5(1), fixture.MD5(2)
	q := uint32(90)
	full := func() *pb.Entry {
		return &pb.Entry{Op: &pb.Entry_Add{Add: &pb.Add{Signal: p1.Proto(), Labels: []string{"behaviour:threat-incitement"}, ContentId: "c1", Note: "n", Quality: &q, ExpiresUnixMs: 4102444800000}}}
	}
	first := submit(t, s, "alpha", full(), fixture.Add(0, m1, "lang:en"))
	size := s.Size("alpha")
	feed := s.FeedEnd()

	again := submit(t, s, "alpha", full(), fixture.Add(0, m1, "lang:en"))
	for i, a := range again {
		if outcome(a) != "unchanged" || a.Index != first[i].Index || string(a.Entry) != string(first[i].Entry) {
			t.Errorf("re-sent entry %d: got %s at %d, want unchanged at %d (the listing's add)", i, outcome(a), a.Index, first[i].Index)
		}
	}
	if got := s.Size("alpha"); got != size {
		t.Errorf("log size after re-sending the same list: got %d, want %d", got, size)
	}
	if got := s.FeedEnd(); got != feed {
		t.Errorf("feed end after re-sending the same list: got %d, want %d", got, feed)
	}

	change := func(f func(*pb.Add)) *pb.Entry { e := full(); f(e.GetAdd()); return e }
	for _, tc := range []struct {
		name string
		e    *pb.Entry
	}{
		{"labels", change(func(a *pb.Add) { a.Labels = []string{"behaviour:threat-incitement", "lang:en"} })},
		{"content id", change(func(a *pb.Add) { a.ContentId = "c2" })},
		{"expiry", change(func(a *pb.Add) { a.ExpiresUnixMs = 0 })},
		{"note", change(func(a *pb.Add) { a.Note = "" })},
		{"quality", change(func(a *pb.Add) { a.Quality = nil })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := s.Size("alpha")
			out := submit(t, s, "alpha", tc.e)
			if got := outcome(out[0]); got != "updated" || out[0].Index != before {
				t.Errorf("got %s at %d, want updated at %d", got, out[0].Index, before)
			}
			// Sent once more, the new listing is the one in force: unchanged.
			if got := outcome(submit(t, s, "alpha", tc.e)[0]); got != "unchanged" {
				t.Errorf("sent again: got %s, want unchanged", got)
			}
			submit(t, s, "alpha", full()) // back to the first listing
		})
	}

	// Earlier in the same submission: a revoke of the signal, a revoke by index, the same add.
	for _, tc := range []struct {
		name string
		es   func(next uint64) []*pb.Entry
		want []string
	}{
		{"revoke then add", func(uint64) []*pb.Entry {
			return []*pb.Entry{fixture.RevokeSignal(0, m1), fixture.Add(0, m1, "lang:en")}
		}, []string{"added", "added"}},
		{"revoke by index then add", func(next uint64) []*pb.Entry {
			return []*pb.Entry{fixture.Add(0, m2), fixture.RevokeIndex(0, next), fixture.Add(0, m1, "lang:en")}
		}, []string{"added", "added", "added"}},
		{"new add twice", func(uint64) []*pb.Entry {
			return []*pb.Entry{fixture.Add(0, fixture.MD5(3)), fixture.Add(0, fixture.MD5(3))}
		}, []string{"added", "added"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := submit(t, s, "alpha", tc.es(s.Size("alpha"))...)
			for i, a := range out {
				if got := outcome(a); got != tc.want[i] {
					t.Errorf("entry %d: got %s, want %s", i, got, tc.want[i])
				}
			}
		})
	}

	// Another member listing the same signal the same way is its own listing: added.
	if got := outcome(submit(t, s, "bravo", full())[0]); got != "added" {
		t.Errorf("bravo's first add of a signal alpha lists: got %s, want added", got)
	}
	// The state replayed from the logs is the state the store holds.
	if d, r := digest(s), replayDigest(t, s); d != r {
		t.Errorf("digest %x, replay %x", d, r)
	}
}

// TestDigestCached: Store.Digest is the state's digest after every kind of change, and a
// re-listing that appends nothing leaves it as it was.
func TestDigestCached(t *testing.T) {
	g := fixture.Genesis(2, founders...)
	s := openStore(t, filepath.Join(t.TempDir(), "hashfed.db"), g, testOptions())
	check := func(when string) {
		t.Helper()
		if got, want := s.Digest(), digest(s); got != want {
			t.Errorf("%s: Digest() %x, state %x", when, got, want)
		}
	}
	check("empty")
	submit(t, s, "alpha", fixture.Add(0, fixture.MD5(1)))
	check("after an add")
	d := s.Digest()
	submit(t, s, "alpha", fixture.Add(0, fixture.MD5(1)))
	if got := s.Digest(); got != d {
		t.Errorf("an unchanged re-listing changed the digest: %x, was %x", got, d)
	}
	submit(t, s, "bravo", fixture.Add(0, fixture.MD5(1)))
	check("after bravo's add")
	submit(t, s, "alpha", fixture.RevokeSignal(0, fixture.MD5(1)))
	check("after a revoke")
}

// TestOwner: a store records whose node keeps it; opened for another member it is refused with
// ErrWrongOwner and left as it was; a store recording no owner adopts the first one given.
func TestOwner(t *testing.T) {
	g := fixture.Genesis(2, founders...)
	path := filepath.Join(t.TempDir(), "hashfed.db")
	alpha, bravo := fixture.Key("alpha").Public().String(), fixture.Key("bravo").Public().String()
	o := testOptions()
	o.Owner = alpha
	s := openStore(t, path, g, o)
	submit(t, s, "alpha", fixture.Add(0, fixture.MD5(1)))
	s.Close()

	o.Owner = bravo
	if _, err := store.Open(path, g, o); !errors.Is(err, store.ErrWrongOwner) || !strings.Contains(err.Error(), `data of member "alpha"`) {
		t.Fatalf("opened as bravo: got %v, want ErrWrongOwner naming alpha", err)
	}
	o.Owner = alpha
	s = openStore(t, path, g, o)
	if got := s.Size("alpha"); got != 1 {
		t.Errorf("alpha's log after the refused open: got %d entries, want 1", got)
	}
	s.Close()

	// A store made before owners were recorded takes the first owner that opens it.
	legacy := filepath.Join(t.TempDir(), "hashfed.db")
	s = openStore(t, legacy, g, testOptions())
	s.Close()
	o.Owner = bravo
	s = openStore(t, legacy, g, o)
	s.Close()
	o.Owner = alpha
	if _, err := store.Open(legacy, g, o); !errors.Is(err, store.ErrWrongOwner) {
		t.Errorf("legacy store adopted by bravo, opened as alpha: got %v, want ErrWrongOwner", err)
	}
}
