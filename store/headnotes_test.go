package store_test

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
)

// TestHeadsNotes: the latest heads note of each signer is kept across a reopen; an older or
// same-time note does not replace it.
func TestHeadsNotes(t *testing.T) {
	g := fixture.Genesis(1, fixture.Members("alpha", "bravo")...)
	path := filepath.Join(t.TempDir(), "store.db")
	s := openStore(t, path, g, testOptions())
	note := func(signer string, ms int64, size int) *consortium.HeadsNote {
		l := fixture.NewLog(g.ID, fixture.Key("alpha"))
		for i := range size {
			l.Append(fixture.Add(fixture.At(int64(i)), fixture.PDQ(i)))
		}
		cp, err := consortium.OpenCheckpoint(g.ID, g, l.Checkpoint())
		if err != nil {
			t.Fatal(err)
		}
		head, err := consortium.HeadOf(cp)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := consortium.SignHeads(g.ID, fixture.Key(signer), time.UnixMilli(fixture.At(ms)), []consortium.LogHead{head})
		if err != nil {
			t.Fatal(err)
		}
		h, err := consortium.OpenHeads(g.ID, g, raw)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	if got, err := s.HeadsNotes(); err != nil || len(got) != 0 {
		t.Fatalf("fresh store: got %d notes, %v, want none", len(got), err)
	}
	newer, older := note("bravo", 2000, 5), note("bravo", 1000, 9)
	steps := []struct {
		h      *consortium.HeadsNote
		minAge time.Duration
		want   bool
	}{
		{newer, 0, true},
		{older, 0, false},
		{note("bravo", 2000, 7), 0, false},
		{note("alpha", 500, 1), 0, true},
		{note("alpha", 5000, 1), 10 * time.Second, false}, // only 4.5 s newer
	}
	for i, st := range steps {
		got, err := s.PutHeadsNote(st.h, st.minAge)
		if err != nil || got != st.want {
			t.Errorf("put %d: got %v, %v, want %v", i, got, err, st.want)
		}
	}
	s.Close()
	s = openStore(t, path, g, testOptions())
	got, err := s.HeadsNotes()
	if err != nil {
		t.Fatal(err)
	}
	if one, err := s.HeadsNote("bravo"); err != nil || !bytes.Equal(one, newer.Note) {
		t.Errorf("HeadsNote(bravo): got %d bytes, %v, want the newest note", len(one), err)
	}
	if none, err := s.HeadsNote("charlie"); err != nil || none != nil {
		t.Errorf("HeadsNote(charlie): got %d bytes, %v, want nothing", len(none), err)
	}
	if len(got) != 2 || !bytes.Equal(got["bravo"], newer.Note) {
		t.Errorf("after reopen: got %d notes, bravo's equal to the newest: %v", len(got), bytes.Equal(got["bravo"], newer.Note))
	}
}
