package store

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// precheck reads the two bbolt meta pages of an existing file and refuses a file whose meta pages
// are both invalid, or which is shorter than its valid meta page says. bbolt maps the file into
// memory, and a truncated file would otherwise fault (SIGBUS) on the first read past its end, which
// no recover can catch. It reads only, never writes.
func precheck(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open store %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("open store %s: %w", path, err)
	}
	size := fi.Size()
	// The first meta page is at offset 0; its page size locates the second.
	var best, second *boltMeta
	first, err := readMeta(f, 0)
	if err == nil {
		best = first
	}
	for _, ps := range []int64{int64(pageSizeOr(first)), 4096, 16384, 65536} {
		if ps <= 0 || ps >= size {
			continue
		}
		if m, err := readMeta(f, ps); err == nil {
			second = m
			if best == nil || m.txid > best.txid {
				best = m
			}
			break
		}
	}
	if best == nil {
		return fmt.Errorf("open store %s: %w: no valid bbolt meta page (not a store, or its header is damaged)", path, ErrDamaged)
	}
	// bbolt commits by writing one of its two meta pages (in turn), and opens from the valid one
	// with the higher transaction id. With one of them damaged it would open from the other, which
	// may be the commit before the last: the last commit (acknowledged entries, or a signed
	// checkpoint) would be lost without a word. A meta page is written in one small write that
	// does not tear in practice, so a bad one is damage.
	if first == nil || second == nil {
		which := "first"
		if first != nil {
			which = "second"
		}
		return fmt.Errorf("open store %s: %w: the %s bbolt meta page is damaged, so the last commit may be missing", path, ErrDamaged, which)
	}
	if need := int64(best.pgid) * int64(best.pageSize); size < need {
		return fmt.Errorf("open store %s: %w: file is %d bytes but its last commit needs %d (truncated)", path, ErrDamaged, size, need)
	}
	return nil
}

type boltMeta struct {
	pageSize, version    uint32
	root, freelist, pgid uint64
	txid                 uint64
}

func pageSizeOr(m *boltMeta) uint32 {
	if m == nil {
		return 0
	}
	return m.pageSize
}

// readMeta reads and validates the bbolt meta page at offset off: a 16-byte page header, then
// magic, version, page size, flags, root bucket (root, sequence), freelist, high-water page id,
// txid and an FNV-64a checksum of the fields before it.
func readMeta(f *os.File, off int64) (*boltMeta, error) {
	var buf [16 + 72]byte
	if _, err := f.ReadAt(buf[:], off); err != nil && err != io.EOF {
		return nil, err
	}
	b := buf[16:]
	le := binary.LittleEndian
	if le.Uint32(b[0:]) != 0xED0CDAED {
		return nil, fmt.Errorf("bad magic")
	}
	m := &boltMeta{
		version:  le.Uint32(b[4:]),
		pageSize: le.Uint32(b[8:]),
		root:     le.Uint64(b[16:]),
		freelist: le.Uint64(b[32:]),
		pgid:     le.Uint64(b[40:]),
		txid:     le.Uint64(b[48:]),
	}
	h := fnv.New64a()
	h.Write(b[:56])
	if h.Sum64() != le.Uint64(b[56:]) {
		return nil, fmt.Errorf("bad checksum")
	}
	if m.version != 2 || m.pageSize < 512 || m.pageSize > 1<<20 || m.root >= m.pgid {
		return nil, fmt.Errorf("bad meta")
	}
	return m, nil
}
