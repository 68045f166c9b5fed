package pdqindex

import (
	"math"
)

// stale reports whether re-layout rb is no longer wanted: cancelled (by AddBatch, which re-lays out
// itself), or the index has left the size range rb is building for. Called under a lock.
func (x *Index) stale(rb *rebuild) bool {
	lo, hi := levelRange(rb.lvl)
	target := max(x.n, x.hint)
	return x.reb != rb || target < lo || target > hi
}

// cancelRebuild drops the background re-layout, if one is running; its goroutine stops at its next look
// at the index. Called under wmu and the write lock.
func (x *Index) cancelRebuild() {
	if rb := x.reb; rb != nil {
		x.reb = nil
		close(rb.done)
	}
}

// maybeRelayout starts a re-layout when the index has left its size range, after k changes. Called under
// wmu and the write lock.
func (x *Index) maybeRelayout(k int) {
	if x.reb != nil {
		return
	}
	x.changes += k
	target := max(x.n, x.hint)
	if target >= x.lo && target <= x.hi {
		// In range; but once the arenas' spare room and dead entries push the index past budgetBytes
		// per hash, lay the same layout out afresh (packed), at most once per n/8 changes. (Below
		// compactMin hashes, page and chunk granularity, not spare room, set the bytes per hash.)
		if x.lay.m > 0 && x.n >= compactMin && x.changes > x.n/8 && x.bytes() > budgetBytes*int64(x.n) {
			x.startRebuild(x.lvl, x.lay.spec)
		}
		return
	}
	l := level(target)
	s := x.choose(l)
	switch {
	case s == x.lay.spec:
		x.setLayout(l, x.lay)
	case s.m == 0:
		x.setLayout(l, newLayout(s, levelSize(l))) // dropping the tables is immediate: searches scan
		x.done++
	default:
		x.startRebuild(l, s)
	}
}

// startRebuild starts a background re-layout to spec s for level l. Called under the write lock.
func (x *Index) startRebuild(l int, s spec) {
	rb := &rebuild{lay: newLayout(s, levelSize(l)), lvl: l, slots: x.hs.slots(), done: make(chan struct{})}
	x.reb = rb
	x.running.Go(func() { x.rebuild(rb) })
}

// A rebuild is a re-layout running in the background. It builds the new tables from the hashes as they
// are when it reads them, while writers keep changing the current tables (which searches use) and log each
// change in ops; it then replays the changes it did not see and swaps the layouts under the write lock.
type rebuild struct {
	lay   *layout
	lvl   int
	slots int  // ids below slots are read by the builder; changes to later ids are all in ops
	ops   []op // every change since the rebuild started
	done  chan struct{}
}

// An op is one change: id's hash went from old (if had) to new (if has).
type op struct {
	id       uint32
	had, has bool
	old, new [4]uint64
}

func (x *Index) rebuild(rb *rebuild) {
	lay := rb.lay
	batches := (rb.slots + rebuildBatch - 1) / rebuildBatch
	// seen[t][i] is how many ops had been logged when table t read batch i: the later ones are replayed.
	seen := make([][]int, len(lay.tabs))
	sc := &buildScratch{keys: make([]uint32, rb.slots)}
	keys := sc.keys
	for t := range lay.tabs {
		tb := &lay.tabs[t]
		seen[t] = make([]int, batches)
		for i := range batches {
			x.mu.RLock()
			seen[t][i] = len(rb.ops)
			for id := i * rebuildBatch; id < min((i+1)*rebuildBatch, rb.slots); id++ {
				keys[id] = noKey
				if x.hs.has(uint32(id)) {
					h := x.hs.get(uint32(id))
					keys[id] = tb.key(&h)
				}
			}
			stale := x.stale(rb)
			x.mu.RUnlock()
			if x.hook != nil {
				x.hook()
			}
			if stale {
				x.abandon(rb)
				return
			}
		}
		tb.build(sc, false)
	}
	sc, keys = nil, nil
	var byID, tmp, ins, tmp2 []uint64
	var ends []uint32
	replay := func(ops []op, base int) {
		// The ops a table replays for an id are those logged after the builder read the id: a suffix
		// of the id's ops, whose net effect is to remove the first's old hash (if it had one) and insert
		// the last's new hash (if it has one). Removes go one by one, inserts as a batch.
		byID = growTo(&byID, len(ops))
		for i := range ops {
			byID[i] = uint64(ops[i].id)<<32 | uint64(i)
		}
		sorted := radixSortHi(byID, growTo(&tmp, len(ops)), 32) // stable: each id's ops stay in order
		for t := range lay.tabs {
			tb := &lay.tabs[t]
			ins = ins[:0]
			for g := 0; g < len(sorted); {
				id := uint32(sorted[g] >> 32)
				e := g + 1
				for e < len(sorted) && uint32(sorted[e]>>32) == id {
					e++
				}
				f := g
				if int(id) < rb.slots {
					s := seen[t][int(id)/rebuildBatch]
					for f < e && base+int(uint32(sorted[f])) < s {
						f++
					}
				}
				if f < e {
					if o := &ops[uint32(sorted[f])]; o.had {
						tb.remove(tb.key(&o.old), id)
					}
					if o := &ops[uint32(sorted[e-1])]; o.has {
						ins = append(ins, uint64(tb.key(&o.new))<<32|uint64(id))
					}
				}
				g = e
			}
			tb.insertSorted(radixSortHi(ins, growTo(&tmp2, len(ins)), int(tb.b)), math.MaxInt, &ends)
		}
	}
	if x.hook != nil {
		x.hook()
	}
	// Catch up without the locks while the log grows; then, holding wmu so that nobody logs more,
	// finish the replay (the new tables are still private) and swap under the write lock.
	done := 0
	for {
		x.mu.RLock()
		ops, stale := rb.ops, x.stale(rb)
		x.mu.RUnlock()
		if stale {
			x.abandon(rb)
			return
		}
		if len(ops)-done <= 64 {
			break
		}
		replay(ops[done:], done)
		done = len(ops)
	}
	x.wmu.Lock()
	defer x.wmu.Unlock()
	if x.stale(rb) {
		x.mu.Lock()
		x.abandonLocked(rb)
		x.mu.Unlock()
		return
	}
	replay(rb.ops[done:], done)
	x.mu.Lock()
	x.setLayout(rb.lvl, lay)
	x.reb = nil
	x.done++
	close(rb.done)
	x.maybeRelayout(0)
	x.mu.Unlock()
}

// abandon drops re-layout rb, whose size range the index has left while it ran (so that replaying its log
// would cost more than starting afresh), and starts the re-layout the index's size now calls for.
func (x *Index) abandon(rb *rebuild) {
	x.wmu.Lock()
	defer x.wmu.Unlock()
	x.mu.Lock()
	defer x.mu.Unlock()
	x.abandonLocked(rb)
}

// abandonLocked is abandon under wmu and the write lock.
func (x *Index) abandonLocked(rb *rebuild) {
	if x.reb != rb {
		return // cancelled already
	}
	x.reb = nil
	close(rb.done)
	x.maybeRelayout(0)
}

// waitRebuild blocks until no re-layout is running, and the goroutines of cancelled ones have returned.
func (x *Index) waitRebuild() {
	for {
		x.mu.RLock()
		rb := x.reb
		x.mu.RUnlock()
		if rb == nil {
			x.running.Wait()
			return
		}
		<-rb.done
	}
}
