package store

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// TestOpenDamagedFreelist damages the freelist page of the commit a store opens from, which bbolt
// reads while it opens the file (and panicked on, or read past its pages with): the page's type,
// its id, its count (also the overflowed count in its first element), and a page id it names.
// Each copy must be refused with ErrDamaged naming the freelist, and the file left as it was.
func TestOpenDamagedFreelist(t *testing.T) {
	g := fixture.Genesis(2, fixture.Members("alpha", "bravo", "charlie")...)
	dir := t.TempDir()
	path := filepath.Join(dir, "hashfed.db")
	o := DefaultOptions()
	o.NoSync = true
	s, err := Open(path, g, o)
	if err != nil {
		t.Fatal(err)
	}
	// Some commits, so that the freelist names freed pages.
	for i := range 20 {
		if _, err := s.Submit(t.Context(), "alpha", []*pb.Entry{fixture.Add(0, fixture.PDQ(i))}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	m0, err0 := readMeta(f, 0)
	m1, err1 := readMeta(f, storePageSize)
	f.Close()
	if err0 != nil || err1 != nil {
		t.Fatalf("meta pages: %v, %v", err0, err1)
	}
	m := m0
	if m1.txid > m0.txid {
		m = m1
	}
	off := int(m.freelist) * int(m.pageSize)
	le := binary.LittleEndian
	if le.Uint16(good[off+10:]) == 0 {
		t.Fatal("the freelist names no page: the test needs freed pages")
	}
	for _, c := range []struct {
		name  string
		patch func(p []byte)
	}{
		{"not a freelist page", func(p []byte) { le.PutUint16(p[8:], 0x02) }},
		{"another page's id", func(p []byte) { le.PutUint64(p[0:], m.freelist+1) }},
		{"more ids than the page holds", func(p []byte) { le.PutUint16(p[10:], 0xFFFE) }},
		{"overflowed count beyond the page", func(p []byte) { le.PutUint16(p[10:], 0xFFFF); le.PutUint64(p[16:], 1<<40) }},
		{"a page id beyond the file", func(p []byte) { le.PutUint64(p[16:], m.pgid+7) }},
		{"text over the header", func(p []byte) { copy(p, "0000000000000000000000000") }},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := append([]byte(nil), good...)
			c.patch(data[off:])
			p := filepath.Join(t.TempDir(), "d.db")
			if err := os.WriteFile(p, data, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := Open(p, g, o)
			if err == nil {
				s.Close()
				t.Fatal("opened, want ErrDamaged")
			}
			if !errors.Is(err, ErrDamaged) {
				t.Fatalf("got %v, want ErrDamaged", err)
			}
			after, rerr := os.ReadFile(p)
			if rerr != nil || string(after) != string(data) {
				t.Fatalf("the damaged file was modified (%v)", rerr)
			}
		})
	}
}
