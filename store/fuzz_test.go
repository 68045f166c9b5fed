package store_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"github.com/hashfed/hashfed/store"
)

// FuzzOpenDamaged opens store files with arbitrary damage (bytes overwritten at an offset): the
// store must refuse them with an error or open them consistently, never crash, never write.
func FuzzOpenDamaged(f *testing.F) {
	g := fixture.Genesis(2, founders...)
	dir := f.TempDir()
	path := filepath.Join(dir, "seed.db")
	s, err := store.Open(path, g, testOptions())
	if err != nil {
		f.Fatal(err)
	}
	for i := range 30 {
		if _, err := s.Submit(f.Context(), "alpha", []*pb.Entry{fixture.Add(0, fixture.PDQ(i))}); err != nil {
			f.Fatal(err)
		}
	}
	l := peerLog(g, "bravo", 20, 100)
	if err := s.AppendRange(openCheckpointF(f, g, l.Checkpoint()), 0, l.Entries, nil); err != nil {
		f.Fatal(err)
	}
	if _, err := s.SignHead(fixture.Key("alpha")); err != nil {
		f.Fatal(err)
	}
	want := snapshot(f, s)
	s.Close()
	good, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint32(0), []byte{0})
	f.Add(uint32(4096), []byte{1, 2, 3, 4})
	f.Add(uint32(8192+16), []byte{0xff, 0xff})
	f.Add(uint32(len(good)-100), []byte("damage"))
	f.Fuzz(func(t *testing.T, off uint32, patch []byte) {
		data := append([]byte(nil), good...)
		o := int(off) % len(data)
		copy(data[o:], patch)
		p := filepath.Join(t.TempDir(), "d.db")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := store.Open(p, g, testOptions())
		if err != nil {
			if !errors.Is(err, store.ErrDamaged) {
				t.Fatalf("got %v, want an error wrapping ErrDamaged", err)
			}
			return
		}
		defer s.Close()
		// It opened: with everything intact, and it must answer reads without crashing.
		checkIntact(t, s, want)
		s.MatchPDQ(fixture.PDQ(1).Value, store.DefaultQuery())
	})
}

// storeSnapshot is what a store holds, to compare a damaged copy that opened with the original.
type storeSnapshot struct {
	entries  map[string][][]byte
	heads    map[string]*consortium.Checkpoint
	evidence int
	digest   consortium.Hash
}

func snapshot(tb testing.TB, s *store.Store) storeSnapshot {
	tb.Helper()
	snap := storeSnapshot{entries: map[string][][]byte{}, heads: s.Heads(), evidence: len(s.Evidence())}
	for m, n := range s.Sizes() {
		es, err := s.Entries(m, 0, n, 1<<30)
		if err != nil {
			tb.Fatal(err)
		}
		snap.entries[m] = es
	}
	s.View(func(st *consortium.State) { snap.digest = st.Digest() })
	return snap
}

// checkIntact fails unless s, a damaged copy of the store want was taken of that opened anyway,
// holds everything want holds: every log entry for entry, the same heads (each verifying against
// its log), the same evidence, and the same state.
func checkIntact(tb testing.TB, s *store.Store, want storeSnapshot) {
	tb.Helper()
	got := snapshot(tb, s)
	for m, es := range want.entries {
		if len(got.entries[m]) != len(es) {
			tb.Fatalf("log %s: got %d entries, want %d (silent loss)", m, len(got.entries[m]), len(es))
		}
		for i := range es {
			if !bytes.Equal(got.entries[m][i], es[i]) {
				tb.Fatalf("log %s: entry %d differs from the original", m, i)
			}
		}
	}
	if len(got.entries) != len(want.entries) {
		tb.Fatalf("got %d logs, want %d", len(got.entries), len(want.entries))
	}
	for m, h := range want.heads {
		gh := got.heads[m]
		if gh == nil || gh.Size != h.Size || gh.Root != h.Root {
			tb.Fatalf("log %s: head differs from the original", m)
		}
		if _, _, err := consortium.VerifyRange(consortium.NewTree(), got.entries[m][:gh.Size], gh); err != nil {
			tb.Fatalf("log %s does not verify against its checkpoint: %v", m, err)
		}
	}
	if len(got.heads) != len(want.heads) || got.evidence != want.evidence {
		tb.Fatalf("got %d heads and %d evidence, want %d and %d", len(got.heads), got.evidence, len(want.heads), want.evidence)
	}
	if got.digest != want.digest {
		tb.Fatal("state differs from the original's")
	}
}

func openCheckpointF(f *testing.F, g *consortium.Genesis, note []byte) *consortium.Checkpoint {
	cp, err := consortium.OpenCheckpoint(g.ID, g, note)
	if err != nil {
		f.Fatal(err)
	}
	return cp
}
