package pdqindex

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"unsafe"
)

// An arena holds a table's id blocks: each block's ids are one region of a chunk, in bucket order, with
// some spare room after inserts. Chunks are []uint32 of chunkSize entries (a block larger than that gets a
// chunk of its own), so a table's ids cost 4 bytes each plus the spare room, with no allocator rounding per
// block. A bulk build cuts its chunks from one slab that huge pages can back (see reserve).
//
// A block that outgrows its region moves to fresh space at the end of the tail chunk, with room for
// about 1/16 more; its old region becomes dead. When dead entries pass 1/16 of the arena, the chunk with the
// most dead entries is emptied by moving its blocks to the tail, and freed: about 0.2 ms of copying, and a
// bounded amortized cost per insert (the emptied chunk is at least as dead as the average).
type arena struct {
	locs []blockLoc
	// recs are the records of the arena's table (nil in tests of the arena alone): each narrow record
	// holds where its group's ids are (packPos), which setLoc keeps true as blocks move.
	recs      []byte
	chunks    [][]uint32 // chunks[0] is an empty chunk that empty blocks point into; freed chunks are nil
	used      []uint32   // per chunk: entries handed out (the rest is free)
	dead      []uint32   // per chunk: handed-out entries no block uses
	free      []uint32   // indexes of freed chunks, for reuse
	tail      uint32     // the chunk new regions come from (0: none yet)
	chunkSize uint32
	size      int64 // entries in all chunks
	deadAll   int64 // dead entries in all chunks, tail remainders included
	// A bulk build cuts its chunks from one slab (see reserve), so that they can be backed by huge pages.
	// The slab stays allocated until its last chunk is freed, but its pages not in a live chunk take no
	// memory: those not yet cut have never been written, and a freed chunk's are given back (dropPages).
	bulk       []uint32 // the slab's part not yet cut into chunks
	bulkMem    *hugeMem // keeps the slab mapped (see hugeSlice)
	fromBulk   []bool   // per chunk: cut from the slab
	bulkChunks int      // live chunks cut from the slab
}

// A blockLoc places a block: n ids at chunks[c][off:off+n], in a region of cap entries.
type blockLoc struct{ c, off, n, cap uint32 }

const (
	minChunk = 1 << 12
	maxChunk = 1 << 18
)

// newArena returns an empty arena of the given number of blocks, its chunks sized for about total ids.
func newArena(blocks int, total int) arena {
	cs := uint32(1) << bits.Len(uint(max(total/32, 1)))
	return arena{
		locs:      make([]blockLoc, blocks),
		chunks:    [][]uint32{{}},
		fromBulk:  []bool{false},
		used:      []uint32{0},
		dead:      []uint32{0},
		chunkSize: min(max(cs, minChunk), maxChunk),
	}
}

// ids returns block blk's ids.
func (a *arena) ids(blk uint32) []uint32 {
	l := &a.locs[blk]
	return a.chunks[l.c][l.off : l.off+l.n]
}

// alloc hands out a region of n entries.
func (a *arena) alloc(n uint32) (c, off uint32) {
	if n == 0 {
		return 0, 0
	}
	if n > a.chunkSize {
		c = a.newChunk(n)
		a.used[c] = n
		return c, 0
	}
	if a.tail == 0 || a.used[a.tail]+n > uint32(len(a.chunks[a.tail])) {
		if t := a.tail; t != 0 { // the rest of the old tail is never handed out
			rest := uint32(len(a.chunks[t])) - a.used[t]
			a.used[t] += rest
			a.tail = 0
			a.release(t, rest)
		}
		a.tail = a.newChunk(a.chunkSize)
	}
	off = a.used[a.tail]
	a.used[a.tail] += n
	return a.tail, off
}

func (a *arena) newChunk(size uint32) uint32 {
	var c uint32
	if k := len(a.free); k > 0 {
		c, a.free = a.free[k-1], a.free[:k-1]
	} else {
		c = uint32(len(a.chunks))
		if c >= maxChunks/2 && a.chunkSize < maxChunk {
			// Far more ids than the arena was sized for: larger chunks from now on, so that chunk
			// indexes stay within a record position's bits.
			if size == a.chunkSize {
				size *= 2
			}
			a.chunkSize *= 2
		}
		if c >= maxChunks {
			panic(fmt.Sprintf("pdqindex: an arena of %d entries needs more than %d chunks", a.size, maxChunks))
		}
		a.chunks, a.used, a.dead = append(a.chunks, nil), append(a.used, 0), append(a.dead, 0)
		a.fromBulk = append(a.fromBulk, false)
	}
	if size == a.chunkSize && len(a.bulk) >= int(size) {
		a.chunks[c], a.bulk = a.bulk[:size:size], a.bulk[size:]
		a.fromBulk[c] = true
		a.bulkChunks++
	} else {
		a.chunks[c] = make([]uint32, size)
		a.fromBulk[c] = false
	}
	a.used[c], a.dead[c] = 0, 0
	a.size += int64(size)
	return c
}

// reserve makes the chunks of a bulk build of about n entries come from one slab backed by huge pages
// where the system allows (see hugeSlice), when n is large enough for that to matter.
func (a *arena) reserve(n int) {
	chunks := (n + int(a.chunkSize) - 1) / int(a.chunkSize)
	if n*4 < hugePage || chunks < 2 {
		return
	}
	a.bulk, a.bulkMem = hugeSlice[uint32](chunks * int(a.chunkSize))
}

// release marks n entries of chunk c dead, and frees the chunk when nothing in it is live.
func (a *arena) release(c, n uint32) {
	if n == 0 || c == 0 {
		return
	}
	a.dead[c] += n
	a.deadAll += int64(n)
	if c != a.tail && a.dead[c] == a.used[c] {
		a.size -= int64(len(a.chunks[c]))
		a.deadAll -= int64(a.dead[c])
		if a.fromBulk[c] {
			a.fromBulk[c] = false
			if a.bulkChunks--; a.bulkChunks == 0 {
				a.bulk, a.bulkMem = nil, nil // no chunk of the slab is left
			} else {
				ch := a.chunks[c]
				dropPages(unsafe.Pointer(unsafe.SliceData(ch)), uintptr(len(ch))*4)
			}
		}
		a.chunks[c], a.used[c], a.dead[c] = nil, 0, 0
		a.free = append(a.free, c)
	}
}

// compact empties the non-tail chunk with the most dead entries when dead entries outside the tail chunk
// (which is still being filled, so not compacted) pass 1/16 of the arena. It returns the number of ids it
// moved.
func (a *arena) compact() int {
	if a.deadAll-int64(a.dead[a.tail]) <= a.size/16+int64(a.chunkSize/2) {
		return 0
	}
	worst := uint32(0)
	for c := 1; c < len(a.chunks); c++ {
		if uint32(c) != a.tail && a.chunks[c] != nil && (worst == 0 || a.dead[c] > a.dead[worst]) {
			worst = uint32(c)
		}
	}
	if worst == 0 || a.dead[worst] == 0 {
		return 0
	}
	moved := 0
	for blk := range a.locs {
		if l := &a.locs[blk]; l.c == worst && l.cap > 0 {
			moved += int(l.n)
			a.move(uint32(blk), grown(l.n))
		}
	}
	return moved
}

// grown returns the capacity a block of n ids gets when it moves: 1/16 spare room.
func grown(n uint32) uint32 { return n + n/16 + 2 }

// move gives block blk a new region of newCap entries.
func (a *arena) move(blk, newCap uint32) {
	c, off := a.alloc(newCap)
	l := &a.locs[blk]
	copy(a.chunks[c][off:off+l.n], a.chunks[l.c][l.off:l.off+l.n])
	old := *l
	a.setLoc(blk, blockLoc{c: c, off: off, n: l.n, cap: newCap})
	a.release(old.c, old.cap)
}

// setLoc places block blk at l and moves its narrow records' positions with it (by the same offset
// within the region).
func (a *arena) setLoc(blk uint32, l blockLoc) {
	old := a.locs[blk]
	a.locs[blk] = l
	if len(a.recs) == 0 || (old.c == l.c && old.off == l.off) {
		return
	}
	first := blk * groupsBlock
	for g := first; g < min(first+groupsBlock, uint32(len(a.recs)/recSize)); g++ {
		r := a.recs[g*recSize : g*recSize+4]
		if p := binary.LittleEndian.Uint32(r); p != wideMark32 {
			binary.LittleEndian.PutUint32(r, packPos(l.c, l.off+p&posMask-old.off))
		}
	}
}

// insert puts v at position p of block blk.
func (a *arena) insert(blk, p, v uint32) {
	if l := &a.locs[blk]; l.n == l.cap {
		a.move(blk, grown(l.n))
	}
	l := &a.locs[blk]
	r := a.chunks[l.c][l.off : l.off+l.n+1]
	copy(r[p+1:], r[p:l.n])
	r[p] = v
	l.n++
	a.compact()
}

// remove deletes position p of block blk, moving the block to a smaller region when it is under half full.
func (a *arena) remove(blk, p uint32) {
	l := &a.locs[blk]
	r := a.chunks[l.c][l.off : l.off+l.n]
	copy(r[p:], r[p+1:])
	l.n--
	if l.cap > 16 && l.n < l.cap/2 {
		a.move(blk, grown(l.n))
	}
	a.compact()
}

// place gives an empty block a region of cap entries and n ids, for a bulk build.
func (a *arena) place(blk, n, cap uint32) {
	c, off := a.alloc(cap)
	a.setLoc(blk, blockLoc{c: c, off: off, n: n, cap: cap})
}

// bytes returns the memory the arena holds.
func (a *arena) bytes() int64 {
	return a.size*4 + int64(cap(a.locs))*16 + int64(cap(a.fromBulk)) + int64(cap(a.chunks))*24 + int64(cap(a.used)+cap(a.dead)+cap(a.free))*4
}
