package pdqindex

import (
	"errors"
	"fmt"
	"iter"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
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
	pending
	// test is set by tests: lockWork, pendingMax and idle replace the constants (idle: pendingIdle),
	// mergeHook is called by a merge of pending ids after each hold of the write lock (under wmu), and
	// tables makes searches that the tables can answer use them even where a scan is cheaper.
	test struct {
		lockWork, pendingMax int
		idle                 time.Duration
		mergeHook            func()
		tables               bool
	}
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
	if lay != x.lay {
		x.pending.clear() // the new tables are built from every stored hash
	}
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
	// A pending id (see pending) is in no table yet: its new hash goes in with the others when they are
	// merged, and a removed one leaves the list.
	pend := had && x.pending.has(id)
	if pend && !add {
		x.pending.remove(id)
	}
	for t := range x.lay.tabs {
		if pend {
			break
		}
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

// bytes is Stats.Bytes, computed in O(tables) from the sizes of the index's arrays.
func (x *Index) bytes() int64 {
	n := x.hs.bytes() + x.pending.bytes()
	for t := range x.lay.tabs {
		n += x.lay.tabs[t].bytes()
	}
	return n
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
	mems := make([]*hugeMem, 2*len(scs))
	for w := range scs {
		scs[w].keys, mems[2*w] = hugeSlice[uint32](x.hs.slots())
		scs[w].tmp, mems[2*w+1] = hugeSlice[uint64](x.n)
	}
	defer runtime.KeepAlive(mems)
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
