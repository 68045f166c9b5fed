package pdqindex

import (
	"encoding/binary"
	"slices"
)

// A table is one substring's hash table: 2^b buckets keyed by b bits of the hash, each bucket listing the
// ids whose substring has that value.
//
// Buckets are grouped 60 to a 64-byte record and 4 records (240 buckets) to a block. A block's ids sit in
// one region of the table's arena, in bucket order. A record holds where the group's ids start in the
// arena (uint32: chunk<<posBits | offset in the chunk, see packPos) and, for each of its 60 buckets, the
// bucket's end relative to that start (uint8, cumulative), so a lookup reads one cache line of offsets and
// then the ids, with no look-up of the block's place in the arena: about 1.07 bytes of offsets per bucket,
// where a flat uint32 CSR offset array costs 4. The arena rewrites a block's record positions whenever it
// moves the block (arena.setLoc). A group holds at most 255 ids, so a block at most 1,020. A block with a
// fuller group (which clustered data produces: near-duplicates share substrings) is "wide": its records
// carry wideMark32 and its exact uint32 offsets, relative to the block's region, live in the wide map.
type table struct {
	word  uint8 // the substring starts at bit shift of word (little-endian uint64 words of the hash)
	shift uint8
	spans bool   // the substring continues into word+1
	b     uint8  // substring length in bits
	mask  uint32 // 1<<b - 1
	recs  []byte
	mem   *hugeMem            // keeps recs mapped (see hugeSlice); shared by the tables of a layout
	ids   arena               // block k/blockBuckets holds bucket k's ids
	wide  map[uint32][]uint32 // block -> blockBuckets+1 bucket starts relative to the block
}

const (
	groupBuckets = 60                         // buckets per 64-byte record
	groupsBlock  = 4                          // records per block
	blockBuckets = groupBuckets * groupsBlock // 240
	recSize      = 64
	endsAt       = 4                       // byte of a record where its buckets' ends start
	wideMark     = 0xFFFF                  // groupStart's answer for a wide block
	wideMark32   = ^uint32(0)              // a wide block's records' position
	posBits      = 19                      // bits of a record position's offset in its chunk
	posMask      = 1<<posBits - 1          //
	maxChunks    = 1<<(32-posBits) - 1     // chunk indexes stay below, so no position is wideMark32
	maxGroupIDs  = 0xFF                    // largest id count a narrow group holds
	wideBytes    = (blockBuckets+1)*4 + 48 // memory of one wide block's offsets
	noKey        = ^uint32(0)
)

// recBytes returns the size of the records of a table of b-bit substrings.
func recBytes(b int) int { return (1<<b + groupBuckets - 1) / groupBuckets * recSize }

// newTable returns an empty table of b-bit substrings starting at hash bit start, its arena sized for about
// n ids, its records recs (recBytes(b) zero bytes, kept mapped by mem).
func newTable(start, b, n int, recs []byte, mem *hugeMem) table {
	nb := 1 << b
	groups := (nb + groupBuckets - 1) / groupBuckets
	blocks := (groups + groupsBlock - 1) / groupsBlock
	t := table{
		word:  uint8(start / 64),
		shift: uint8(start % 64),
		spans: start%64+b > 64,
		b:     uint8(b),
		mask:  uint32(nb - 1),
		recs:  recs[: groups*recSize : groups*recSize],
		mem:   mem,
		ids:   newArena(blocks, n),
	}
	t.ids.recs = t.recs
	return t
}

// key returns the table's substring of h.
func (t *table) key(h *[4]uint64) uint32 {
	v := h[t.word&3] >> t.shift
	if t.spans {
		v |= h[(t.word+1)&3] << (64 - t.shift)
	}
	return uint32(v) & t.mask
}

func (t *table) groups() int { return len(t.recs) / recSize }

// packPos returns the record position of offset off of chunk c. A narrow block's regions lie in chunks of
// at most maxChunk entries, so off (at most the chunk's size) fits in posBits.
func packPos(c, off uint32) uint32 { return c<<posBits | off }

// recPos returns record g's position: where its group's ids start in the arena, or wideMark32.
func (t *table) recPos(g uint32) uint32 { return binary.LittleEndian.Uint32(t.recs[g*recSize:]) }

// groupStart returns the start of group g in its block's region (wideMark if the block is wide).
func (t *table) groupStart(g uint32) uint32 {
	p := t.recPos(g)
	if p == wideMark32 {
		return wideMark
	}
	return p&posMask - t.ids.locs[g/groupsBlock].off
}

// setGroupStart sets the start of group g in its block's region to v (wideMark: the block is wide).
func (t *table) setGroupStart(g, v uint32) {
	p := wideMark32
	if v != wideMark {
		l := &t.ids.locs[g/groupsBlock]
		p = packPos(l.c, l.off+v)
	}
	binary.LittleEndian.PutUint32(t.recs[g*recSize:], p)
}

// span returns the block of bucket k and the bucket's [start, end) in that block's region.
func (t *table) span(k uint32) (blk, s, e uint32) {
	g := k / groupBuckets
	j := k - g*groupBuckets
	blk = g / groupsBlock
	st := t.groupStart(g)
	if st == wideMark {
		s, e = t.wideSpan(g, j)
		return blk, s, e
	}
	r := t.recs[g*recSize : g*recSize+recSize : g*recSize+recSize]
	e = st + uint32(r[endsAt+j])
	s = st
	if j > 0 {
		s += uint32(r[endsAt+j-1])
	}
	return blk, s, e
}

// wideSpan is span for a bucket of a wide block: j of group g.
//
//go:noinline
func (t *table) wideSpan(g, j uint32) (s, e uint32) {
	offs := t.wide[g/groupsBlock]
	i := (g%groupsBlock)*groupBuckets + j
	return offs[i], offs[i+1]
}

// wideSpanAt returns where bucket j of group g of a wide block is in the arena.
//
//go:noinline
func (t *table) wideSpanAt(g, j uint32) span {
	s, e := t.wideSpan(g, j)
	l := &t.ids.locs[g/groupsBlock]
	return span{l.c, l.off + s, l.off + e}
}

// blockGroups returns the first group of block blk and the number of groups it has.
func (t *table) blockGroups(blk uint32) (first, n uint32) {
	first = blk * groupsBlock
	n = min(uint32(t.groups())-first, groupsBlock)
	return first, n
}

// makeWide converts block blk to exact uint32 offsets.
func (t *table) makeWide(blk uint32) {
	if t.wide == nil {
		t.wide = make(map[uint32][]uint32)
	}
	offs := make([]uint32, blockBuckets+1)
	first, n := t.blockGroups(blk)
	for gi := range uint32(groupsBlock) {
		g := first + gi
		base := uint32(0)
		if gi < n {
			base = g*recSize + endsAt
		}
		for j := range uint32(groupBuckets) {
			i := gi*groupBuckets + j
			if gi < n {
				offs[i+1] = t.groupStart(g) + uint32(t.recs[base+j])
			} else {
				offs[i+1] = offs[i]
			}
		}
	}
	for gi := range n {
		t.setGroupStart(first+gi, wideMark)
	}
	t.wide[blk] = offs
}

// insert adds id to bucket k.
func (t *table) insert(k, id uint32) {
	g := k / groupBuckets
	j := k - g*groupBuckets
	blk := g / groupsBlock
	first, n := t.blockGroups(blk)
	if st := t.groupStart(g); st != wideMark {
		r := t.recs[g*recSize : g*recSize+recSize]
		last := first + n - 1
		if r[recSize-1] == maxGroupIDs {
			t.makeWide(blk)
		} else {
			t.ids.insert(blk, st+uint32(r[endsAt+j]), id)
			bumpEnds(r, endsAt+j, true)
			for g2 := g + 1; g2 <= last; g2++ {
				t.setGroupStart(g2, t.groupStart(g2)+1)
			}
			return
		}
	}
	offs := t.wide[blk]
	i := (g%groupsBlock)*groupBuckets + j
	t.ids.insert(blk, offs[i+1], id)
	for i2 := i + 1; i2 < uint32(len(offs)); i2++ {
		offs[i2]++
	}
}

// bumpEnds adds 1 (up) or -1 to bytes p to the end of 64-byte record r (bucket ends), eight at a time:
// no byte carries (a narrow group's ends are at most maxGroupIDs) or borrows (the ends from a removed id's
// bucket on are at least 1).
func bumpEnds(r []byte, p uint32, up bool) {
	m := uint64(ones) << (8 * (p % 8))
	for w := p / 8 * 8; w < recSize; w += 8 {
		v := binary.LittleEndian.Uint64(r[w:])
		if up {
			v += m
		} else {
			v -= m
		}
		binary.LittleEndian.PutUint64(r[w:], v)
		m = ones
	}
}

// remove deletes id from bucket k and reports whether it was there.
func (t *table) remove(k, id uint32) bool {
	blk, s, e := t.span(k)
	ids := t.ids.ids(blk)
	p := s
	for p < e && ids[p] != id {
		p++
	}
	if p == e {
		return false
	}
	t.ids.remove(blk, p)
	g := k / groupBuckets
	j := k - g*groupBuckets
	if st := t.groupStart(g); st == wideMark {
		offs := t.wide[blk]
		for i := (g%groupsBlock)*groupBuckets + j + 1; i < uint32(len(offs)); i++ {
			offs[i]--
		}
		return true
	}
	first, n := t.blockGroups(blk)
	bumpEnds(t.recs[g*recSize:g*recSize+recSize], endsAt+j, false)
	for g2 := g + 1; g2 < first+n; g2++ {
		t.setGroupStart(g2, t.groupStart(g2)-1)
	}
	return true
}

// buildScratch is table.build's working memory, reused from table to table.
type buildScratch struct {
	keys []uint32 // by id: the id's key in the table being built, or noKey
	cnt  []uint32 // per block
	tmp  []uint64 // bucket-in-block<<32 | id, grouped by block
}

// build fills an empty table from sc.keys (by id: the id's key, or noKey for an absent id), giving each
// block a region of exactly its size, or with the spare room a block gets when it grows if spare is set.
// It sorts in two passes that stay in cache: the ids by block (a
// counter per block), then each block's few hundred ids by bucket, straight into the block's region.
func (t *table) build(sc *buildScratch, spare bool) {
	blocks := len(t.ids.locs)
	cnt := growTo(&sc.cnt, blocks)
	clear(cnt)
	total := 0
	for _, k := range sc.keys {
		if k != noKey {
			cnt[k/blockBuckets]++
			total++
		}
	}
	sum := uint32(0)
	for b, c := range cnt {
		cnt[b] = sum
		sum += c
	}
	tmp := growTo(&sc.tmp, total)
	for id, k := range sc.keys {
		if k != noKey {
			b := k / blockBuckets
			tmp[cnt[b]] = uint64(k-b*blockBuckets)<<32 | uint64(id)
			cnt[b]++
		}
	}
	t.ids = newArena(blocks, total)
	t.ids.recs = t.recs
	room := func(n uint32) uint32 { return n }
	if spare {
		room = grown
	}
	need := 0
	for blk := range cnt {
		lo := uint32(0)
		if blk > 0 {
			lo = cnt[blk-1]
		}
		need += int(room(cnt[blk] - lo))
	}
	t.ids.reserve(need)
	var offs [blockBuckets + 1]uint32
	start := uint32(0)
	for blk := range uint32(blocks) {
		run := tmp[start:cnt[blk]]
		start = cnt[blk]
		clear(offs[:])
		for _, v := range run {
			offs[v>>32+1]++
		}
		for i := 1; i < len(offs); i++ {
			offs[i] += offs[i-1]
		}
		t.ids.place(blk, uint32(len(run)), room(uint32(len(run))))
		t.setOffsets(blk, &offs)
		ids := t.ids.ids(blk)
		for _, v := range run {
			ids[offs[v>>32]] = uint32(v)
			offs[v>>32]++
		}
	}
}

// setOffsets sets block blk's records from offs, its buckets' starts (offs[blockBuckets]: its size): in
// the records if every group fits them, else in the wide map.
func (t *table) setOffsets(blk uint32, offs *[blockBuckets + 1]uint32) {
	first, n := t.blockGroups(blk)
	narrow := true
	for gi := range n {
		narrow = narrow && offs[(gi+1)*groupBuckets]-offs[gi*groupBuckets] <= maxGroupIDs
	}
	if !narrow {
		if t.wide == nil {
			t.wide = make(map[uint32][]uint32)
		}
		t.wide[blk] = slices.Clone(offs[:])
		for g := first; g < first+n; g++ {
			t.setGroupStart(g, wideMark)
		}
		return
	}
	delete(t.wide, blk)
	for gi := range n {
		st := offs[gi*groupBuckets]
		t.setGroupStart(first+gi, st)
		r := t.recs[(first+gi)*recSize+endsAt : (first+gi+1)*recSize]
		for j, e := range offs[gi*groupBuckets+1 : (gi+1)*groupBuckets+1] {
			r[j] = byte(e - st)
		}
	}
}

// bytes returns the memory the table holds.
func (t *table) bytes() int64 {
	return int64(len(t.recs)) + t.ids.bytes() + int64(len(t.wide))*wideBytes
}
