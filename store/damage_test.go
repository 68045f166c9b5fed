package store_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"github.com/hashfed/hashfed/store"
)

// TestOpenDamagedMiddle damages 64 bytes in the middle of a store of a few thousand entries, at
// many offsets, and opens each copy several times: every open must either refuse the file with an
// error wrapping ErrDamaged or open it; none may crash. Opening verifies and decodes entries on
// one goroutine while another applies them; a refusal must not close the database while either
// still reads it (it did: SIGSEGV).
func TestOpenDamagedMiddle(t *testing.T) {
	g := fixture.Genesis(2, founders...)
	dir := t.TempDir()
	path := filepath.Join(dir, "hashfed.db")
	s, err := store.Open(path, g, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 6000; i += 500 {
		var es []*pb.Entry
		for j := i; j < i+500; j++ {
			es = append(es, fixture.Add(0, fixture.PDQ(j)))
		}
		submit(t, s, "alpha", es...)
	}
	l := peerLog(g, "bravo", 3000, 100_000)
	if err := s.AppendRange(openCP(t, g, l.Checkpoint()), 0, l.Entries, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SignHead(fixture.Key("alpha")); err != nil {
		t.Fatal(err)
	}
	want := snapshot(t, s)
	s.Close()
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	for k := range 12 {
		data := append([]byte(nil), good...)
		off := len(data)/4 + k*len(data)/24
		for i := range 64 {
			data[off+i] ^= 0xa5
		}
		p := filepath.Join(dir, "damaged.db")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			s, err := store.Open(p, g, testOptions())
			if err != nil {
				if !errors.Is(err, store.ErrDamaged) {
					t.Errorf("offset %d: got %v, want an error wrapping ErrDamaged", off, err)
				}
				refused++
				continue
			}
			checkIntact(t, s, want)
			s.Close()
		}
	}
	t.Logf("%d of %d opens refused", refused, 12*3)
}
