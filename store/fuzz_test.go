package store_test

import (
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
			return
		}
		// It opened: it must answer reads without crashing.
		s.Sizes()
		s.MatchPDQ(fixture.PDQ(1).Value, store.DefaultQuery())
		s.Close()
	})
}

func openCheckpointF(f *testing.F, g *consortium.Genesis, note []byte) *consortium.Checkpoint {
	cp, err := consortium.OpenCheckpoint(g.ID, g, note)
	if err != nil {
		f.Fatal(err)
	}
	return cp
}
