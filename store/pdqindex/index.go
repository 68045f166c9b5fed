package pdqindex

import (
	"errors"
	"fmt"
	"iter"
	"math"
	"math/bits"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
)

// DefaultRadius is the PDQ match radius the consortium uses, and the radius an [Index] is tuned for unless
// [Options.Radius] says otherwise.
const DefaultRadius = 31

// ErrInvalidOptions is returned by [New] for options out of range.
var ErrInvalidOptions = errors.New("pdqindex: invalid options")

// Options configure an [Index]. The zero value is valid and means [DefaultOptions].
type Options struct {
	// SizeHint is the number of hashes the index is expected to hold. The substring layout is chosen for
	// max(Len, SizeHint), so an index that will grow to SizeHint by single adds gets its final layout at
	// once instead of being re-laid out on the way; the price is more memory per hash while Len is well
	// below SizeHint (the tables are sized for SizeHint). 0 means no hint. [Index.BulkLoad] chooses the
	// layout for the size it loads to, so a store that opens with BulkLoad needs no hint.
	SizeHint int
	// Radius is the search radius the layout is tuned for, 1 to 63; 0 means DefaultRadius. Searches at
	// every radius are exact; other radii are only slower.
	Radius int
}

// DefaultOptions returns the options for an index tuned for DefaultRadius with no size hint.
func DefaultOptions() Options { return Options{Radius: DefaultRadius} }

// Match is one search result: a stored id and the Hamming distance of its hash to the query.
type Match struct {
	ID       uint32
	Distance int
}

// Stats describe an index at one moment.
type Stats struct {
	Len int // hashes held
	// Bytes is the memory the index holds: hash storage and tables, excluding the tables of a re-layout
	// in progress (which needs as much again as the tables it replaces, for the time it runs).
	Bytes       int64
	Substrings  int    // tables in the current layout (0: searches scan)
	Layout      string // the substrings' lengths, e.g. "4x19+10x18 bits"
	Relayouts   int    // re-layouts completed
	Relayouting bool   // a re-layout is running in the background
}

const (
	// compactMin is the smallest index that is re-laid out to shed its arenas' spare room.
	compactMin = 1 << 16
	// rebuildBatch is how many ids a background re-layout reads per read-lock hold (about 0.1 ms).
	rebuildBatch = 1 << 14
	// scanFactor is how many hashes a scan compares in the time of one of the cost model's random reads
	// (measured: the two cross at radius 56 to 57 at 1M hashes); a search scans when that is cheaper than
	// its estimated table cost.
	scanFactor = 8
)

// Index is an in-memory PDQ match index: ids (dense uint32 chosen by the caller) each with a hash,
// searched by Hamming radius. It is safe for concurrent use: searches run in parallel with each other and
// wait only for single changes (microseconds; about a millisecond when an arena compacts), a step of an
// AddBatch (about a millisecond) or a BulkLoad.
// The zero Index is an empty index with [DefaultOptions].
type Index struct {
	once sync.Once
	// wmu serializes writers: Add, Remove, AddBatch, BulkLoad and a re-layout's swap take it before mu.
	// A writer holding it may read the tables without mu (nobody else changes them) and may release mu
	// between steps of one change, as AddBatch does between tables.
	wmu     sync.Mutex
	mu      sync.RWMutex
	radius  int // tuning radius
	hint    int
	hs      hashStore
	n       int
	lay     *layout
	lvl     int // the size level lay was chosen for
	lo, hi  int // re-layout when max(n, hint) leaves [lo, hi]
	reb     *rebuild
	running sync.WaitGroup // re-layout goroutines, cancelled ones included
	done    int            // re-layouts completed
	changes int            // changes since the layout was installed
	// choose picks the layout for a size level; tests replace it to pin a layout.
	choose func(level int) spec
	// hook, when set (by tests), is called by a re-layout after each batch of ids it reads and before
	// it replays the log, without the lock.
	hook  func()
	batch batchScratch // AddBatch's working memory, used under wmu
}

// New returns an empty index.
func New(opts Options) (*Index, error) {
	if opts.Radius == 0 {
		opts.Radius = DefaultRadius
	}
	if opts.Radius < 0 || opts.Radius > 63 {
		return nil, fmt.Errorf("%w: Radius %d is outside 1..63", ErrInvalidOptions, opts.Radius)
	}
	if opts.SizeHint < 0 {
		return nil, fmt.Errorf("%w: SizeHint %d is negative", ErrInvalidOptions, opts.SizeHint)
	}
	x := &Index{radius: opts.Radius, hint: opts.SizeHint}
	x.init()
	return x, nil
}

// init sets up an index made by New or a zero Index, once, before its first use.
func (x *Index) init() {
	x.once.Do(func() {
		if x.radius == 0 {
			x.radius = DefaultRadius
		}
		x.choose = func(l int) spec { return chooseSpec(l, x.radius) }
		l := level(x.hint)
		x.setLayout(l, newLayout(x.choose(l), levelSize(l)))
	})
}

// setLayout installs lay as the layout for level l.
func (x *Index) setLayout(l int, lay *layout) {
	x.lay, x.lvl = lay, l
	x.lo, x.hi = levelRange(l)
	x.changes = 0
}

// levelRange returns the sizes a layout chosen for level l serves: half an octave either side of its size,
// so that after a re-layout the size must change by at least a quarter octave (19%) to cause another.
func levelRange(l int) (lo, hi int) {
	lo = int(math.Ceil(math.Exp2(float64(l-1) / 2)))
	hi = int(math.Floor(math.Exp2(float64(l+1) / 2)))
	if l <= 1 {
		lo = 0
	}
	return lo, hi
}

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

// Len returns the number of hashes held.
func (x *Index) Len() int {
	x.init()
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.n
}

// Add stores hash h under id, replacing the hash id had. The change is visible to every search that
// starts after Add returns.
func (x *Index) Add(id uint32, h Hash) {
	x.init()
	w := words(&h)
	x.wmu.Lock()
	defer x.wmu.Unlock()
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.set(id, &w, true) {
		x.maybeRelayout(1)
	}
}

// Remove deletes id and reports whether it was present. The change is visible to every search that starts
// after Remove returns.
func (x *Index) Remove(id uint32) bool {
	x.init()
	x.wmu.Lock()
	defer x.wmu.Unlock()
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.set(id, nil, false) {
		return false
	}
	x.maybeRelayout(1)
	return true
}

// set applies one change to the hashes and every table, under the write lock: id gets hash w (add) or is
// removed (!add). It reports whether anything changed. The caller then calls maybeRelayout.
func (x *Index) set(id uint32, w *[4]uint64, add bool) bool {
	had := x.hs.has(id)
	var old [4]uint64
	if had {
		old = x.hs.get(id)
	}
	switch {
	case !add && !had, add && had && old == *w:
		return false
	}
	for t := range x.lay.tabs {
		tb := &x.lay.tabs[t]
		if had {
			tb.remove(tb.key(&old), id)
		}
		if add {
			tb.insert(tb.key(w), id)
		}
	}
	if add {
		x.hs.put(id, w)
	} else {
		x.hs.del(id)
	}
	switch {
	case add && !had:
		x.n++
	case !add:
		x.n--
	}
	if x.reb != nil {
		o := op{id: id, had: had, old: old, has: add}
		if add {
			o.new = *w
		}
		x.reb.ops = append(x.reb.ops, o)
	}
	return true
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

// bytes is Stats.Bytes, computed in O(tables) from the sizes of the index's arrays.
func (x *Index) bytes() int64 {
	n := x.hs.bytes()
	for t := range x.lay.tabs {
		n += x.lay.tabs[t].bytes()
	}
	return n
}

// Search appends to dst every stored id whose hash is within radius of q (Hamming distance <= radius),
// each once, sorted by distance and then id, and returns the extended slice. A negative radius matches
// nothing; a radius of 256 or more matches everything.
func (x *Index) Search(q Hash, radius int, dst []Match) []Match {
	if radius < 0 {
		return dst
	}
	radius = min(radius, 256)
	x.init()
	qw := words(&q)
	start := len(dst)
	x.mu.RLock()
	if lay := x.lay; radius > maxTableRadius || lay.cost[radius]*scanFactor > float64(x.n) {
		dst = x.scan(&qw, radius, dst)
	} else {
		dst = x.searchTables(lay, &qw, radius, dst)
	}
	x.mu.RUnlock()
	slices.SortFunc(dst[start:], func(a, b Match) int {
		if a.Distance != b.Distance {
			return a.Distance - b.Distance
		}
		return int(a.ID) - int(b.ID)
	})
	return dst
}

// scan compares q with every stored hash.
func (x *Index) scan(q *[4]uint64, radius int, dst []Match) []Match {
	const wordsPerPage = pageSize / 64
	live := x.hs.live
	for pi, lo := range x.hs.lo {
		if lo == nil {
			continue
		}
		hi := x.hs.hi[pi][:len(lo)]
		for w := range wordsPerPage {
			lw := uint64(0)
			if k := pi*wordsPerPage + w; k < len(live) {
				lw = live[k]
			}
			for lw != 0 {
				j := w*64 + bits.TrailingZeros64(lw)
				lw &= lw - 1
				// Sequential reads: the whole distance, with no branch on the first half (which
				// mispredicts when the radius is near 64).
				a, b := &lo[j], &hi[j]
				d := bits.OnesCount64(q[0]^a[0]) + bits.OnesCount64(q[1]^a[1]) +
					bits.OnesCount64(q[2]^b[0]) + bits.OnesCount64(q[3]^b[1])
				if d <= radius {
					dst = append(dst, Match{uint32(pi<<pageBits + j), d})
				}
			}
		}
	}
	return dst
}

// scratch is one search's working memory, pooled.
type scratch struct {
	keys   []uint32 // the query's key per table
	spans  []span   // the buckets to read
	ends   []int    // spans of table t end at ends[t]
	cands  []uint32 // candidate ids
	cends  []int    // candidates of table t end at cends[t]
	masks  []uint32 // masks of weight > cachedWeight
	sink   uint64
	radius []int
}

type span struct{ blk, s, e uint32 }

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// searchTables runs a multi-index search. It reads in phases so that the cache misses of one phase are
// independent of each other and overlap: the offsets of every bucket to read, then the ids in them, then
// the candidates' hashes. A hash found through several tables is reported from the first table that can
// find it (the first whose substring is within that table's radius), so no visited set is needed.
func (x *Index) searchTables(lay *layout, q *[4]uint64, radius int, dst []Match) []Match {
	s := scratchPool.Get().(*scratch)
	defer scratchPool.Put(s)
	s.keys, s.radius = s.keys[:0], s.radius[:0]
	s.spans, s.ends = s.spans[:0], s.ends[:0]
	radii := lay.radii[radius]
	for t := range lay.tabs {
		tb := &lay.tabs[t]
		rt := int(radii[t])
		key := tb.key(q)
		s.keys, s.radius = append(s.keys, key), append(s.radius, rt)
		var masks []uint32
		switch {
		case rt < 0:
		case rt <= cachedWeight && t < lay.nlong:
			masks = lay.masks[1][:int(volume(lay.long, rt))]
		case rt <= cachedWeight:
			masks = lay.masks[0][:int(volume(lay.short, rt))]
		default:
			s.masks = appendMasks(s.masks[:0], int(tb.b), rt)
			masks = s.masks
		}
		spans := slices.Grow(s.spans, len(masks))
		recs := tb.recs
		for _, mk := range masks {
			// tb.span, inlined by hand: one 64-byte record gives the bucket's ids' place.
			k := key ^ mk
			g := k / groupBuckets
			j := k - g*groupBuckets
			r := recs[g*recSize : g*recSize+recSize : g*recSize+recSize]
			st := uint32(r[0]) | uint32(r[1])<<8
			var b, e uint32
			if st == wideMark {
				b, e = tb.wideSpan(g, j)
			} else {
				e = st + uint32(r[(2+j)&63])
				b = st
				if j > 0 {
					b += uint32(r[(1+j)&63])
				}
			}
			spans = append(spans, span{g / groupsBlock, b, e})
		}
		s.spans = spans
		s.ends = append(s.ends, len(s.spans))
	}
	total := 0
	for _, sp := range s.spans {
		total += int(sp.e - sp.s)
	}
	cands := slices.Grow(s.cands[:0], total)[:total]
	s.cends = s.cends[:0]
	c, first := 0, 0
	for t := range lay.tabs {
		a := &lay.tabs[t].ids
		locs, chunks := a.locs, a.chunks
		for _, sp := range s.spans[first:s.ends[t]] {
			// Buckets hold a few ids: a loop beats copy's call.
			l := &locs[sp.blk]
			for _, id := range chunks[l.c][l.off+sp.s : l.off+sp.e] {
				cands[c] = id
				c++
			}
		}
		first = s.ends[t]
		s.cends = append(s.cends, c)
	}
	s.cands = cands
	lo, hi := x.hs.lo, x.hs.hi
	var sink uint64
	for _, id := range cands {
		sink += lo[id>>pageBits][id&(pageSize-1)][0]
	}
	s.sink = sink
	first = 0
	for t := range lay.tabs {
		for _, id := range cands[first:s.cends[t]] {
			a := &lo[id>>pageBits][id&(pageSize-1)]
			// Most candidates are far: the first half of the hash almost always settles it.
			d := bits.OnesCount64(q[0]^a[0]) + bits.OnesCount64(q[1]^a[1])
			if d > radius {
				continue
			}
			b := &hi[id>>pageBits][id&(pageSize-1)]
			d += bits.OnesCount64(q[2]^b[0]) + bits.OnesCount64(q[3]^b[1])
			if d > radius {
				continue
			}
			if h := [4]uint64{a[0], a[1], b[0], b[1]}; foundBefore(lay, s, t, &h) {
				continue
			}
			dst = append(dst, Match{id, d})
		}
		first = s.cends[t]
	}
	return dst
}

// foundBefore reports whether a table before t also finds h.
func foundBefore(lay *layout, s *scratch, t int, h *[4]uint64) bool {
	for u := range t {
		tb := &lay.tabs[u]
		if rt := s.radius[u]; rt >= 0 && bits.OnesCount32(tb.key(h)^s.keys[u]) <= rt {
			return true
		}
	}
	return false
}

// BulkLoad adds every (id, hash) pair of all, as Add would in order, and then lays out the tables afresh
// for the new size in one pass per table, using every CPU: about 10 times faster than adding the pairs one
// by one, and the fastest way to open a store. It holds the write lock throughout, so searches wait for it,
// and it first waits for a background re-layout to finish. all must not call the index.
func (x *Index) BulkLoad(all iter.Seq2[uint32, Hash]) {
	x.init()
	for {
		x.wmu.Lock()
		x.mu.Lock()
		if x.reb == nil {
			break
		}
		done := x.reb.done
		x.mu.Unlock()
		x.wmu.Unlock()
		<-done
	}
	defer x.wmu.Unlock()
	defer x.mu.Unlock()
	for id, h := range all {
		if !x.hs.has(id) {
			x.n++
		}
		x.hs.put(id, new(words(&h)))
	}
	l := level(max(x.n, x.hint))
	lay := newLayout(x.choose(l), levelSize(l))
	x.build(lay, false)
	x.setLayout(l, lay)
	x.done++
}

// build fills the empty tables of lay from the stored hashes, one table per CPU, each block with spare room
// if spare is set. The caller holds wmu, so the hashes do not change; it need not hold the write lock.
func (x *Index) build(lay *layout, spare bool) {
	scs := make([]buildScratch, min(runtime.GOMAXPROCS(0), len(lay.tabs)))
	parallel(len(scs), len(lay.tabs), func(w, t int) {
		tb := &lay.tabs[t]
		scs[w].keys = x.hs.keys(tb, scs[w].keys)
		tb.build(&scs[w], spare)
	})
}

// parallel calls f(w, i) for every i in [0, n) on workers goroutines (w is the worker's number, 0 to
// workers-1), and returns when every call has.
func parallel(workers, n int, f func(w, i int)) {
	workers = min(workers, n)
	if workers <= 1 {
		for i := range n {
			f(0, i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				f(w, i)
			}
		})
	}
	wg.Wait()
}

// Stats returns the index's size, memory and layout.
func (x *Index) Stats() Stats {
	x.init()
	x.mu.RLock()
	defer x.mu.RUnlock()
	st := Stats{
		Len:         x.n,
		Bytes:       x.bytes(),
		Substrings:  x.lay.m,
		Layout:      x.lay.spec.String(),
		Relayouts:   x.done,
		Relayouting: x.reb != nil,
	}
	return st
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
