package store_test

import (
	"errors"
	"maps"
	"path/filepath"
	"testing"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	"github.com/hashfed/hashfed/store"
)

func put(sig consortium.Signal, content string, labels ...string) store.LocalOp {
	return store.LocalOp{Entry: store.LocalEntry{Signal: sig, ContentID: content, Labels: labels}}
}

func del(sig consortium.Signal) store.LocalOp {
	return store.LocalOp{Delete: true, Entry: store.LocalEntry{Signal: sig}}
}

func delContent(id string) store.LocalOp { return store.LocalOp{Delete: true, ContentID: id} }

// localSet returns a bank's signals.
func localSet(t *testing.T, s *store.Store, bank string) map[consortium.Signal]string {
	t.Helper()
	es, err := s.LocalEntries(bank)
	if err != nil {
		t.Fatal(err)
	}
	out := map[consortium.Signal]string{}
	for _, e := range es {
		out[e.Signal] = e.ContentID
	}
	return out
}

// TestLocalBanks applies puts and deletions (by signal, by content id, by replacing the list),
// matches exactly and by PDQ distance, survives a reopen, and never touches the logs or the
// shared state.
func TestLocalBanks(t *testing.T) {
	g := fixture.Genesis(1, fixture.Founder{ID: "alpha"})
	path := filepath.Join(t.TempDir(), "hashfed.db")
	s := openStore(t, path, g, testOptions())
	submit(t, s, "alpha", fixture.Add(fixture.At(1), fixture.MD5(99)))
	before, sizes := digest(s), s.Sizes()

	p1, p2, m1, m2 := fixture.PDQ(1), fixture.PDQ(2), fixture.MD5(1), fixture.MD5(2)
	res, err := s.LocalApply("ncmec", []store.LocalOp{put(p1, "42-image1", "A1"), put(m1, "42-image1"), put(m2, "42-video1"), put(p2, "")}, false, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if res != (store.LocalResult{Added: 4, Size: 4}) {
		t.Errorf("got %+v, want 4 added", res)
	}
	ms, err := s.LocalMatch(flipBits(p1, 5), 31)
	if err != nil || len(ms) != 1 || ms[0].Bank != "ncmec" || ms[0].Entry.Signal != p1 || ms[0].Distance != 5 || ms[0].Entry.Labels[0] != "A1" {
		t.Fatalf("pdq match: got %+v, %v; want p1 at distance 5 in ncmec", ms, err)
	}
	if ms, _ := s.LocalMatch(flipBits(p1, 5), 4); len(ms) != 0 {
		t.Errorf("radius 4: got %+v, want nothing", ms)
	}
	if ms, _ := s.LocalMatch(m2, 0); len(ms) != 1 || ms[0].Entry.ContentID != "42-video1" {
		t.Errorf("md5 match: got %+v", ms)
	}

	// NCMEC deletes an entry by its id: every signal of it goes, nothing else.
	res, err = s.LocalApply("ncmec", []store.LocalOp{delContent("42-image1"), delContent("nothing")}, false, 2000)
	if err != nil || res.Deleted != 2 || res.Size != 2 {
		t.Fatalf("got %+v, %v; want 2 deleted, 2 left", res, err)
	}
	if got, want := localSet(t, s, "ncmec"), map[consortium.Signal]string{m2: "42-video1", p2: ""}; !maps.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if ms, _ := s.LocalMatch(p1, 31); len(ms) != 0 {
		t.Errorf("deleted p1 still matches: %+v", ms)
	}
	// A put then a delete of the same signal in one apply: the order holds.
	if _, err := s.LocalApply("ncmec", []store.LocalOp{put(m1, "x"), del(m1), del(p2)}, false, 3000); err != nil {
		t.Fatal(err)
	}
	if got, want := localSet(t, s, "ncmec"), map[consortium.Signal]string{m2: "42-video1"}; !maps.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	// Another bank; replace makes it exactly the list given.
	s.LocalApply("own", []store.LocalOp{put(m1, ""), put(p1, "")}, false, 4000)
	res, err = s.LocalApply("own", []store.LocalOp{put(p1, "c")}, true, 5000)
	if err != nil || res != (store.LocalResult{Updated: 1, Deleted: 1, Size: 1}) {
		t.Fatalf("replace: got %+v, %v", res, err)
	}

	// Nothing of it is in a log or the shared state.
	if d := digest(s); d != before {
		t.Error("local banks changed the state digest")
	}
	if got := s.Sizes(); !maps.Equal(got, sizes) {
		t.Errorf("local banks changed the logs: sizes %v, want %v", got, sizes)
	}

	// Reopened, the banks are as left.
	s.Close()
	s = openStore(t, path, g, testOptions())
	banks, err := s.LocalBanks()
	if err != nil || len(banks) != 2 || banks[0] != (store.LocalBank{Name: "ncmec", Size: 1}) || banks[1] != (store.LocalBank{Name: "own", Size: 1}) {
		t.Fatalf("after reopen: got %+v, %v", banks, err)
	}
	if ms, _ := s.LocalMatch(p1, 0); len(ms) != 1 || ms[0].Bank != "own" || ms[0].Entry.ContentID != "c" || ms[0].Entry.AddedUnixMs != 4000 {
		t.Errorf("after reopen: got %+v, want p1 in own, added at 4000", ms)
	}
	if err := s.LocalDrop("own"); err != nil {
		t.Fatal(err)
	}
	if ms, _ := s.LocalMatch(p1, 31); len(ms) != 0 {
		t.Errorf("dropped bank still matches: %+v", ms)
	}
	if err := s.LocalDrop("own"); !errors.Is(err, store.ErrUnknownBank) {
		t.Errorf("drop twice: got %v, want ErrUnknownBank", err)
	}
	for _, name := range []string{"", "Upper", "a/b", "../x", string(make([]byte, 65))} {
		if _, err := s.LocalApply(name, nil, false, 0); !errors.Is(err, store.ErrBankName) {
			t.Errorf("bank %q: got %v, want ErrBankName", name, err)
		}
	}
	if _, err := s.LocalApply("x", []store.LocalOp{{Delete: true}}, false, 0); !errors.Is(err, consortium.ErrInvalidEntry) {
		t.Errorf("an empty delete: got %v, want ErrInvalidEntry", err)
	}
}

// flipBits returns a PDQ signal k bits away from sig.
func flipBits(sig consortium.Signal, k int) consortium.Signal {
	for i := range k {
		sig.Value[i] ^= 1
	}
	return sig
}
