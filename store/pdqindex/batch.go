package pdqindex

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"runtime"
	"slices"
)

const (
	// minSlice is the fewest ids AddBatch inserts per pass over the tables; a pass takes up to an eighth of
	// the index. A pass costs about one rewrite of every block it touches, so larger passes cost less per
	// id; they need about 70 bytes of scratch per id (with two CPUs), kept between calls up to minSlice.
	minSlice = 1 << 17
	// lockWork bounds what AddBatch does per hold of the write lock: about this many ids moved (4 bytes
	// each) per table being changed, well under a millisecond of copying.
	lockWork = 1 << 18
	// putsPerLock is how many hashes AddBatch stores per hold of the write lock (a few hundred
	// microseconds), and reAddsPerLock how many re-adds with a new hash (each a remove and an insert in
	// every table, a few microseconds).
	putsPerLock   = 1 << 15
	reAddsPerLock = 256
)

// batchScratch is AddBatch's working memory, kept between calls (under wmu).
type batchScratch struct {
	ids  []uint32    // the new ids of a slice
	ws   [][4]uint64 // and their hashes
	kv   [][]uint64  // per table being changed: key<<32 | id of each new id, sorted by key
	tmp  [][]uint64  // per worker: radix sort space
	ends [][]uint32  // per worker: insertBlock's scratch
	// minSlice, when set (by tests), replaces the package's minSlice.
	minSlice int
}

// AddBatch stores hs[i] under ids[i] for every i, as calling [Index.Add] for each pair in order would (so
// for an id given twice the later hash wins), and much faster for many pairs. The new ids are left pending:
// stored, and found by every search, which compares the query with each pending id's hash, until they
// number Len/8 (at least 4,096, at most 32,768); then each table sorts them by bucket and rewrites each
// block they land in once. Pending ids left by a last batch are merged in the background once AddBatch has
// not been called for 100 ms. A batch that takes the index past the size its layout serves lays the tables
// out afresh instead. Every pair is visible to every search that starts after AddBatch returns; a search
// that runs during AddBatch may see some, all or none of them. It panics if ids and hs differ in length.
//
// A merge costs about one pass over every block it touches, so about the whole index (4 bytes per id per
// table) once it has a few thousand ids, per pass of up to max(131072, Len/8) ids: the more ids merged at
// once, the cheaper each (16,384 into 1M hashes: about 0.7 µs each on two CPUs, where Add takes 3.7 µs).
// It uses every CPU. Searches keep running: AddBatch holds the write lock for about a millisecond at a
// time at most. While ids are pending a search costs about 5 ns more per pending id (up to 32,768). A
// re-add with a changed hash costs what Add costs.
func (x *Index) AddBatch(ids []uint32, hs []Hash) {
	if len(ids) != len(hs) {
		panic(fmt.Sprintf("pdqindex: AddBatch got %d ids and %d hashes", len(ids), len(hs)))
	}
	x.init()
	if len(ids) == 0 {
		return
	}
	x.wmu.Lock()
	defer x.wmu.Unlock()
	// Under wmu nobody else changes the index: it may be read without the lock.
	pos := lastOccurrences(ids)
	added := 0
	for _, p := range pos {
		if !x.hs.has(ids[p]) {
			added++
		}
	}
	if target := max(x.n+added, x.hint); target > x.hi && !x.rebuildServes(target) {
		l := level(target)
		if s := x.choose(l); s != x.lay.spec {
			x.addRelayout(ids, hs, pos, l)
			return
		}
		x.mu.Lock()
		x.setLayout(l, x.lay)
		x.mu.Unlock()
	}
	keep := x.lay.m > 0
	changes := x.store(ids, hs, pos, keep)
	if limit := cmp.Or(x.test.pendingMax, pendingLimit(x.n)); len(x.pending.ids) >= limit {
		x.mergePending()
	} else if len(x.pending.ids) > 0 {
		x.armMerge()
	}
	x.mu.Lock()
	x.maybeRelayout(changes)
	x.mu.Unlock()
}

// rebuildServes reports whether a background re-layout is running for a size range that includes target:
// a batch that takes the index there goes into the current tables, and the re-layout catches up.
func (x *Index) rebuildServes(target int) bool {
	if x.reb == nil {
		return false
	}
	lo, hi := levelRange(x.reb.lvl)
	return target >= lo && target <= hi
}

// lastOccurrences returns the positions in ids of the last occurrence of each id: every position when the
// ids are increasing (the usual case), else in id order.
func lastOccurrences(ids []uint32) []int32 {
	pos := make([]int32, 0, len(ids))
	inc := true
	for i := 1; i < len(ids) && inc; i++ {
		inc = ids[i-1] < ids[i]
	}
	if inc {
		for i := range ids {
			pos = append(pos, int32(i))
		}
		return pos
	}
	kv := make([]uint64, len(ids))
	for i, id := range ids {
		kv[i] = uint64(id)<<32 | uint64(i)
	}
	kv = radixSortHi(kv, make([]uint64, len(ids)), 32) // stable: an id's positions stay in order
	for i, v := range kv {
		if i+1 == len(kv) || kv[i+1]>>32 != v>>32 {
			pos = append(pos, int32(uint32(v)))
		}
	}
	return pos
}

// store stores the hashes of the pairs at positions pos (each id once) under wmu, in holds of the write
// lock, and returns the number of changes. Re-adds with a new hash change every table at once, as Add
// does; new ids are only stored, and made pending when keep is set.
func (x *Index) store(ids []uint32, hs []Hash, pos []int32, keep bool) int {
	changes, work := 0, 0
	x.mu.Lock()
	for _, p := range pos {
		if work >= putsPerLock {
			x.mu.Unlock()
			x.mu.Lock()
			work = 0
		}
		id, w := ids[p], words(&hs[p])
		work++
		if x.hs.has(id) {
			if x.set(id, &w, true) {
				changes++
				work += putsPerLock / reAddsPerLock
			}
			continue
		}
		x.hs.put(id, &w)
		x.n++
		changes++
		if x.reb != nil {
			x.reb.ops = append(x.reb.ops, op{id: id, has: true, new: w})
		}
		if keep {
			x.pending.add(id)
		}
	}
	x.mu.Unlock()
	return changes
}

// addRelayout adds the pairs at positions pos (each id once) by storing the hashes and laying the tables
// out afresh for level l, under wmu. Searches use the old tables meanwhile.
func (x *Index) addRelayout(ids []uint32, hs []Hash, pos []int32, l int) {
	x.mu.Lock()
	x.cancelRebuild() // for a size the batch leaves behind
	x.mu.Unlock()
	x.store(ids, hs, pos, false)
	lay := newLayout(x.choose(l), levelSize(l))
	x.build(lay, true) // the batches that follow would give every block spare room at once
	x.mu.Lock()
	x.setLayout(l, lay)
	x.done++
	x.mu.Unlock()
}

// mergeTables merges the ids of x.batch (ids and ws), which are pending, into every table, under wmu.
func (x *Index) mergeTables() {
	b := &x.batch
	// The tables, one per CPU: the new ids sorted by key outside the lock, then merged in under it,
	// in holds of about lockWork ids moved per table, each hold marking how far the table has got
	// (pending.done) for the searches that run meanwhile (see pending).
	lay := x.lay
	workers := min(runtime.GOMAXPROCS(0), len(lay.tabs))
	b.kv, b.tmp, b.ends = growTo(&b.kv, workers), growTo(&b.tmp, workers), growTo(&b.ends, workers)
	for first := 0; first < len(lay.tabs); first += workers {
		tabs := lay.tabs[first:min(first+workers, len(lay.tabs))]
		parallel(len(tabs), len(tabs), func(w, i int) {
			tb := &tabs[i]
			kv := growTo(&b.kv[i], len(b.ids))
			for j := range b.ids {
				kv[j] = uint64(tb.key(&b.ws[j]))<<32 | uint64(b.ids[j])
			}
			if s := radixSortHi(kv, growTo(&b.tmp[w], len(kv)), int(tb.b)); len(kv) > 0 && &s[0] != &kv[0] {
				copy(kv, s)
			}
			b.kv[i] = kv
		})
		left := slices.Clone(b.kv[:len(tabs)])
		budget := cmp.Or(x.test.lockWork, lockWork)
		for slices.ContainsFunc(left, func(kv []uint64) bool { return len(kv) > 0 }) {
			x.mu.Lock()
			parallel(len(tabs), len(tabs), func(w, i int) {
				left[i] = left[i][tabs[i].insertSorted(left[i], budget, &b.ends[w]):]
				done := uint64(noDone)
				if len(left[i]) > 0 {
					done = left[i][0]
				}
				x.pending.done[first+i] = done
			})
			x.mu.Unlock()
			if x.test.mergeHook != nil {
				x.test.mergeHook()
			}
		}
	}
}

// insertSorted inserts the ids of kv (key<<32 | id, sorted by key) into their buckets, block by block,
// rewriting each block once. It stops after the block at which the ids moved pass budget and returns how
// many of kv it inserted. ends is scratch space.
func (t *table) insertSorted(kv []uint64, budget int, ends *[]uint32) int {
	done, work := 0, 0
	var lines [prefetchBlockLines]uintptr
	next := 0 // the first of kv in the block after the current one
	for done < len(kv) && work < budget {
		blk := uint32(kv[done]>>32) / blockBuckets
		lim := uint64((blk+1)*blockBuckets) << 32
		e := max(next, done+1)
		for e < len(kv) && kv[e] < lim {
			e++
		}
		// The blocks are scattered over the arena: fetch the next one's records and ids while this one
		// is merged, so that the merges do not wait on memory at each block's start.
		if next = e; e < len(kv) {
			nb := uint32(kv[e]>>32) / blockBuckets
			prefetch(t.blockLines(nb, lines[:0]))
		}
		work += t.insertBlock(blk, kv[done:e], ends)
		done = e
	}
	return done
}

// prefetchBlockLines bounds the lines of a block that insertSorted prefetches: its records and the first
// lines of its ids (a block at 1M hashes holds about 500 ids, 32 lines).
const prefetchBlockLines = 48

// blockLines appends to dst the addresses of block blk's records and of the lines of its ids, up to
// prefetchBlockLines in all, and returns dst.
func (t *table) blockLines(blk uint32, dst []uintptr) []uintptr {
	first, n := t.blockGroups(blk)
	for g := first; g < first+n; g++ {
		dst = append(dst, addr(&t.recs[g*recSize]))
	}
	l := &t.ids.locs[blk]
	if l.cap == 0 {
		return dst
	}
	ids := t.ids.chunks[l.c][l.off : l.off+l.cap]
	for i := 0; i < len(ids) && len(dst) < prefetchBlockLines; i += 16 {
		dst = append(dst, addr(&ids[i]))
	}
	return dst
}

// insertBlock inserts the ids of kv (key<<32 | id, sorted by key, all keys in block blk) at the ends of
// their buckets, moving each of the block's ids at most once. It returns the number of ids it moved.
func (t *table) insertBlock(blk uint32, kv []uint64, scratch *[]uint32) int {
	first, ng := t.blockGroups(blk)
	wide := t.groupStart(first) == wideMark
	if !wide {
		// A narrow group holds at most maxGroupIDs ids; past that the block goes wide.
		for q := 0; q < len(kv); {
			g := uint32(kv[q]>>32) / groupBuckets
			e := q + 1
			for e < len(kv) && uint32(kv[e]>>32)/groupBuckets == g {
				e++
			}
			if int(t.recs[g*recSize+recSize-1])+e-q > maxGroupIDs {
				t.makeWide(blk)
				wide = true
				break
			}
			q = e
		}
	}
	// ends[q] is where kv[q]'s bucket ends before the inserts; then the offsets take the inserts.
	ends := growTo(scratch, len(kv))
	if wide {
		offs := t.wide[blk]
		base := blk * blockBuckets
		for q, v := range kv {
			ends[q] = offs[uint32(v>>32)-base+1]
		}
		// offs[i] (bucket i's start) grows by the number of inserts into buckets before i.
		add, i := uint32(0), uint32(0)
		for _, v := range kv {
			for bi := uint32(v>>32) - base; i <= bi; i++ {
				offs[i] += add
			}
			add++
		}
		for ; i < uint32(len(offs)); i++ {
			offs[i] += add
		}
	} else {
		for q, v := range kv {
			k := uint32(v >> 32)
			g := k / groupBuckets
			ends[q] = t.groupStart(g) + uint32(t.recs[g*recSize+endsAt+k-g*groupBuckets])
		}
		// A group's start grows by the inserts into earlier groups of the block, and the end of its
		// bucket j (cumulative, from the start) by the inserts into its buckets up to j: eight bytes
		// at a time, which never carry (a narrow group holds at most 255 ids).
		add, q := uint64(0), 0
		for g := first; g < first+ng && (q < len(kv) || add > 0); g++ {
			rec := t.recs[g*recSize : g*recSize+recSize]
			var inc [recSize / 8]uint64    // per word: ones at the bytes from an insert's bucket on
			var from [recSize/8 + 1]uint64 // per word: inserts into buckets of earlier words
			lim := uint64((g+1)*groupBuckets) << 32
			in := uint64(0)
			for ; q < len(kv) && kv[q] < lim; q++ {
				p := endsAt + uint32(kv[q]>>32) - g*groupBuckets // byte of the bucket's end in the record
				inc[p/8] += ones << (8 * (p % 8))
				from[p/8+1]++
				in++
			}
			c := uint64(0)
			for w := range inc {
				c += from[w]
				if v := inc[w] + c*ones; v != 0 {
					binary.LittleEndian.PutUint64(rec[w*8:], binary.LittleEndian.Uint64(rec[w*8:])+v)
				}
			}
			if add > 0 {
				t.setGroupStart(g, t.groupStart(g)+uint32(add))
			}
			add += in
		}
	}
	a := &t.ids
	l := &a.locs[blk]
	n0, n1 := l.n, l.n+uint32(len(kv))
	if n1 <= l.cap {
		// In place, from the back: each id moves once, by the number of inserts before it.
		ids := a.chunks[l.c][l.off : l.off+n1]
		w, r := n1, n0
		for q := len(kv) - 1; q >= 0; q-- {
			e := ends[q]
			copy(ids[w-(r-e):w], ids[e:r])
			w -= r - e
			r = e
			w--
			ids[w] = uint32(kv[q])
		}
		l.n = n1
		return int(n1 - r)
	}
	// To a larger region, merging on the way.
	old := *l
	newCap := grown(n1)
	c, off := a.alloc(newCap)
	src := a.chunks[old.c][old.off : old.off+n0]
	dst := a.chunks[c][off : off+n1]
	w, r := uint32(0), uint32(0)
	for q, v := range kv {
		e := ends[q]
		copy(dst[w:], src[r:e])
		w += e - r
		r = e
		dst[w] = uint32(v)
		w++
	}
	copy(dst[w:], src[r:])
	a.setLoc(blk, blockLoc{c: c, off: off, n: n1, cap: newCap})
	a.release(old.c, old.cap)
	return int(n1) + a.compact()
}

// ones has a 1 in every byte.
const ones = 0x0101010101010101

// growTo returns (*s)[:n], growing *s if it is shorter.
func growTo[E any](s *[]E, n int) []E {
	if cap(*s) < n {
		*s = make([]E, n, n+n/4)
	}
	return (*s)[:n]
}

// radixSortHi sorts a by bits 32 to 32+nbits of each element (higher bits must be zero), stably, using tmp
// (as long as a) as scratch, and returns the sorted slice: a or tmp.
func radixSortHi(a, tmp []uint64, nbits int) []uint64 {
	if len(a) <= 32 {
		for i := 1; i < len(a); i++ {
			for j := i; j > 0 && a[j]>>32 < a[j-1]>>32; j-- {
				a[j], a[j-1] = a[j-1], a[j]
			}
		}
		return a
	}
	const maxDigit = 11
	passes := (nbits + maxDigit - 1) / maxDigit
	d := (nbits + passes - 1) / passes
	var cnt [1 << maxDigit]int
	for p := range passes {
		shift := uint(32 + p*d)
		mask := uint64(1)<<d - 1
		c := cnt[:1<<d]
		clear(c)
		for _, v := range a {
			c[v>>shift&mask]++
		}
		sum := 0
		for i, n := range c {
			c[i] = sum
			sum += n
		}
		for _, v := range a {
			k := v >> shift & mask
			tmp[c[k]] = v
			c[k]++
		}
		a, tmp = tmp, a
	}
	return a
}
