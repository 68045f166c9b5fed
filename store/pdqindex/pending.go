package pdqindex

import (
	"cmp"
	"math"
	"math/bits"
	"slices"
	"time"
)

const (
	// pendingMax is the most new ids AddBatch leaves pending (stored and found by a scan, but in no table
	// yet) before it merges them into the tables: Len/8 of them, at least pendingMin. A merge rewrites
	// about every block of every table whatever its size, so merging the store's batches of 10,000 three
	// at a time costs about a third of merging each; but a search scans the pending ids' first halves,
	// 16 bytes each: 5 to 9 ns an id on the loaded EPYC of docs/BENCHMARKS.md ("Round five"), so up to
	// about 0.2 ms a search while 32,768 are pending.
	pendingMax = 1 << 15
	pendingMin = 1 << 12
	// pendingIdle is how long pending ids wait for more before a background goroutine merges them, so
	// that an index no longer being added to searches its tables alone.
	pendingIdle = 100 * time.Millisecond
)

// pending are the ids AddBatch has stored but not yet merged into the tables. Every search that uses the
// tables also compares the query with each pending id's hash, so a pending id is found as soon as AddBatch
// returns. While a merge runs (merging; it holds wmu), ids[from:] are being merged into the tables: table t
// holds those whose key<<32 | id is below done[t], and a search reports such an id from the scan only if
// the first table that would report it (the first whose substring is within that table's radius) does
// not hold it yet, so that it is reported once. Changed under the write lock; read under the read lock.
type pending struct {
	ids     []uint32
	bits    []uint64 // bit id%64 of bits[id/64]: id is pending
	merging bool
	from    int
	done    []uint64 // per table, during a merge
	// timer merges the pending ids once AddBatch has not been called for pendingIdle (last: its last
	// call); set and read under wmu.
	timer *time.Timer
	last  time.Time
}

// has reports whether id is pending.
func (p *pending) has(id uint32) bool {
	w := int(id / 64)
	return w < len(p.bits) && p.bits[w]&(1<<(id%64)) != 0
}

// add makes id pending; it must not be.
func (p *pending) add(id uint32) {
	w := int(id / 64)
	if w >= len(p.bits) {
		p.bits = slices.Grow(p.bits, w+1-len(p.bits))[:w+1]
	}
	p.bits[w] |= 1 << (id % 64)
	p.ids = append(p.ids, id)
}

// remove takes pending id out of the list (never during a merge, which holds wmu as Remove does).
func (p *pending) remove(id uint32) {
	p.bits[id/64] &^= 1 << (id % 64)
	i := slices.Index(p.ids, id)
	p.ids[i] = p.ids[len(p.ids)-1]
	p.ids = p.ids[:len(p.ids)-1]
}

// clear forgets every pending id, which the tables now hold (or are built from).
func (p *pending) clear() {
	for _, id := range p.ids {
		p.bits[id/64] = 0
	}
	p.ids, p.from, p.merging = p.ids[:0], 0, false
	clear(p.done)
	if cap(p.ids) > 2*pendingMax {
		p.ids = nil
	}
}

// bytes returns the memory the pending list holds.
func (p *pending) bytes() int64 { return int64(cap(p.ids)+2*cap(p.bits)+2*cap(p.done)) * 4 }

// scanPending compares each query of qs with the hash of every pending id, appending query i's matches
// to dst[i], save those a table search over lay reports (see pending). Called under the read lock, beside
// searchTables at the same radius.
func (x *Index) scanPending(lay *layout, qs [][4]uint64, radius int, dst [][]Match) {
	p := &x.pending
	radii := lay.radii[radius]
	var lo [][2]uint64 // the page of the ids' first halves, reloaded when the page changes
	page := ^uint32(0)
	for i, id := range p.ids {
		if id>>pageBits != page {
			page = id >> pageBits
			lo = x.hs.lo[page]
		}
		a := &lo[id&(pageSize-1)]
		for qi := range qs {
			q := &qs[qi]
			d := bits.OnesCount64(q[0]^a[0]) + bits.OnesCount64(q[1]^a[1])
			if d > radius {
				continue
			}
			b := &x.hs.hi[page][id&(pageSize-1)]
			d += bits.OnesCount64(q[2]^b[0]) + bits.OnesCount64(q[3]^b[1])
			if d > radius {
				continue
			}
			if p.merging && i >= p.from && x.tableHolds(lay, radii, q, &[4]uint64{a[0], a[1], b[0], b[1]}, id) {
				continue
			}
			dst[qi] = append(dst[qi], Match{id, d})
		}
	}
}

// tableHolds reports whether the first table of lay whose substring of h is within its radius of q's
// already holds id, which is being merged (see pending).
func (x *Index) tableHolds(lay *layout, radii []int8, q, h *[4]uint64, id uint32) bool {
	for t := range lay.tabs {
		tb := &lay.tabs[t]
		k := tb.key(h)
		if rt := int(radii[t]); rt >= 0 && bits.OnesCount32(k^tb.key(q)) <= rt {
			return uint64(k)<<32|uint64(id) < x.pending.done[t]
		}
	}
	return false // not within the radius after all: the caller checked
}

// mergePending merges the pending ids into the tables, under wmu, in passes of up to max(minSlice, Len/8)
// ids from the end of the list, each taken off the list when every table holds it.
func (x *Index) mergePending() {
	p := &x.pending
	slice := minSlice
	if x.batch.minSlice > 0 {
		slice = x.batch.minSlice
	}
	if len(p.ids) > slice {
		defer func() { x.batch = batchScratch{minSlice: x.batch.minSlice} }() // large: not worth keeping
	}
	for len(p.ids) > 0 {
		k := min(len(p.ids), max(slice, x.n/8))
		x.mu.Lock()
		p.from, p.merging = len(p.ids)-k, true
		p.done = growTo(&p.done, len(x.lay.tabs))
		clear(p.done)
		x.mu.Unlock()
		x.mergeSlice(p.ids[p.from:])
		x.mu.Lock()
		for _, id := range p.ids[p.from:] {
			p.bits[id/64] &^= 1 << (id % 64)
		}
		p.ids, p.from, p.merging = p.ids[:p.from], 0, false
		clear(p.done)
		x.mu.Unlock()
	}
	if cap(p.ids) > 2*pendingMax {
		x.mu.Lock()
		p.ids = nil
		x.mu.Unlock()
	}
}

// mergeSlice merges pending ids ids into every table, under wmu, marking its progress in pending.done.
// The ids go in sorted: each table then inserts them in key<<32 | id order (its sort by key is stable),
// the order pending.done counts in. The list is not in id order after a Remove's swap, nor when a batch
// of lower ids follows one of higher ids; the usual list is in order already.
func (x *Index) mergeSlice(ids []uint32) {
	b := &x.batch
	b.ids = append(b.ids[:0], ids...)
	if !slices.IsSorted(b.ids) {
		slices.Sort(b.ids)
	}
	b.ws = growTo(&b.ws, len(ids))
	for i, id := range b.ids {
		b.ws[i] = x.hs.get(id)
	}
	x.mergeTables()
}

// idleMerge runs on the pending timer: it merges the pending ids if AddBatch has not been called for
// pendingIdle, and otherwise waits until it has been that long.
func (x *Index) idleMerge() {
	x.wmu.Lock()
	defer x.wmu.Unlock()
	p := &x.pending
	if len(p.ids) == 0 {
		p.timer = nil
		return
	}
	if wait := cmp.Or(x.test.idle, pendingIdle) - time.Since(p.last); wait > 0 {
		p.timer.Reset(wait)
		return
	}
	p.timer = nil
	x.mergePending()
}

// armMerge notes a call of AddBatch that leaves ids pending and makes sure the timer that merges them
// once AddBatch is idle is running. Called under wmu.
func (x *Index) armMerge() {
	p := &x.pending
	p.last = time.Now()
	if p.timer == nil {
		p.timer = time.AfterFunc(cmp.Or(x.test.idle, pendingIdle), x.idleMerge)
	}
}

// pendingLimit returns how many ids AddBatch may leave pending in an index of n hashes.
func pendingLimit(n int) int { return min(pendingMax, max(pendingMin, n/8)) }

// noDone is pending.done for a table that holds every id being merged.
const noDone = math.MaxUint64
