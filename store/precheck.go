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
	if err := checkFreelist(f, best); err != nil {
		return fmt.Errorf("open store %s: %w: %v", path, ErrDamaged, err)
	}
	return nil
}

// checkFreelist checks the freelist page of the commit m opens from, which bbolt reads as it
// opens the file and which, damaged, would make it panic or read past its pages: a page header
// (id, flags, count, overflow), the count in the first element when the header's is 0xFFFF, then
// that many page ids, each of a page the commit may free (from 2, below its high-water mark).
func checkFreelist(f *os.File, m *boltMeta) error {
	const freelistFlag = 0x10
	if m.freelist == ^uint64(0) {
		return nil // no freelist written: bbolt rebuilds it (not a file hashfed writes)
	}
	if m.freelist < 2 || m.freelist >= m.pgid {
		return fmt.Errorf("freelist page %d is outside the file's pages [2, %d)", m.freelist, m.pgid)
	}
	off := int64(m.freelist) * int64(m.pageSize)
	var hdr [24]byte
	if _, err := f.ReadAt(hdr[:], off); err != nil && err != io.EOF {
		return err
	}
	le := binary.LittleEndian
	id, flags, count, overflow := le.Uint64(hdr[0:]), le.Uint16(hdr[8:]), uint64(le.Uint16(hdr[10:])), uint64(le.Uint32(hdr[12:]))
	if id != m.freelist || flags&freelistFlag == 0 {
		return fmt.Errorf("page %d is not a freelist page (id %d, flags %#x)", m.freelist, id, flags)
	}
	first := int64(16)
	if count == 0xFFFF {
		count = le.Uint64(hdr[16:])
		first += 8
	}
	span := (overflow + 1) * uint64(m.pageSize)
	if m.freelist+overflow >= m.pgid || count > span/8 || uint64(first)+8*count > span {
		return fmt.Errorf("freelist page %d claims %d ids over %d pages, more than it holds", m.freelist, count, overflow+1)
	}
	ids := make([]byte, 8*count)
	if _, err := f.ReadAt(ids, off+first); err != nil && err != io.EOF {
		return err
	}
	for i := range count {
		if p := le.Uint64(ids[8*i:]); p < 2 || p >= m.pgid {
			return fmt.Errorf("freelist page %d names page %d, outside the file's pages [2, %d)", m.freelist, p, m.pgid)
		}
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
