package pdqindex

import (
	"bytes"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashfed/hashfed/consortium/pdq"
)

var zeroRecs [groupsBlock * recSize]byte

// checkTables verifies every table of x against m: each id of m is in exactly the bucket of its hash's
// substring, once, and nothing else is; the offsets are consistent with the arena; and the arenas' regions
// and counts add up (checkArena).
func checkTables(t *testing.T, x *Index, m model) {
	t.Helper()
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.n != len(m) {
		t.Fatalf("n: got %d, want %d", x.n, len(m))
	}
	for id, h := range m {
		if !x.hs.has(id) || x.hs.get(id) != words(&h) {
			t.Fatalf("hash of %d: got %v (present %v), want %v", id, x.hs.get(id), x.hs.has(id), words(&h))
		}
	}
	// Pending ids (stored, in no table yet) are listed once each, marked, and stored.
	pend := make(map[uint32]bool, len(x.pending.ids))
	for _, id := range x.pending.ids {
		if pend[id] || !x.pending.has(id) || !x.hs.has(id) {
			t.Fatalf("pending id %d: listed twice (%v), or not marked (%v) or not stored (%v)", id, pend[id], !x.pending.has(id), !x.hs.has(id))
		}
		pend[id] = true
	}
	if x.pending.merging || len(x.pending.ids) > 0 && x.lay.m == 0 {
		t.Fatalf("pending: %d ids (merging %v) with %d tables, want no merge, and none without tables", len(x.pending.ids), x.pending.merging, x.lay.m)
	}
	for w, b := range x.pending.bits {
		for ; b != 0; b &= b - 1 {
			if id := uint32(w*64 + bits.TrailingZeros64(b)); !pend[id] {
				t.Fatalf("id %d: marked pending, not listed", id)
			}
		}
	}
	for ti := range x.lay.tabs {
		tb := &x.lay.tabs[ti]
		seen := make(map[uint32]bool, len(m))
		blocks := make([][]uint32, len(tb.ids.locs))
		for blk := range blocks {
			blocks[blk] = slices.Clone(tb.ids.ids(uint32(blk)))
		}
		for k := uint32(0); k <= tb.mask; k++ {
			if blk := k / blockBuckets; k%blockBuckets == 0 && tb.ids.locs[blk].n == 0 {
				// An empty block: every bucket's offsets must be zero.
				first, n := tb.blockGroups(blk)
				if tb.groupStart(first) == wideMark {
					if offs := tb.wide[blk]; !slices.Equal(offs, make([]uint32, len(offs))) {
						t.Fatalf("table %d block %d: empty, with wide offsets %v", ti, blk, offs)
					}
				} else {
					for g := first; g < first+n; g++ {
						if ends := tb.recs[g*recSize+endsAt : (g+1)*recSize]; tb.groupStart(g) != 0 || !bytes.Equal(ends, zeroRecs[:len(ends)]) {
							t.Fatalf("table %d block %d: empty, with group %d starting at %d and ends %v", ti, blk, g, tb.groupStart(g), ends)
						}
					}
				}
				k += blockBuckets - 1
				continue
			}
			blk, s, e := tb.span(k)
			if g := k / groupBuckets; k%groupBuckets == 0 {
				// A narrow record's position is in its block's region, which the search reads
				// through it alone.
				l := tb.ids.locs[blk]
				if p := tb.recPos(g); p != wideMark32 && (p>>posBits != l.c || p&posMask < l.off || p&posMask > l.off+l.n) {
					t.Fatalf("table %d group %d: position chunk %d offset %d, outside its block's region %+v", ti, g, p>>posBits, p&posMask, l)
				}
			}
			if s > e || e > tb.ids.locs[blk].n {
				t.Fatalf("table %d bucket %d: span [%d, %d) outside the block's %d ids", ti, k, s, e, tb.ids.locs[blk].n)
			}
			if k%blockBuckets == 0 && s != 0 {
				t.Fatalf("table %d bucket %d: first bucket of a block starts at %d, want 0", ti, k, s)
			}
			if (k+1)%blockBuckets == 0 || k == tb.mask {
				if e != tb.ids.locs[blk].n {
					t.Fatalf("table %d bucket %d: last bucket of a block ends at %d, want %d", ti, k, e, tb.ids.locs[blk].n)
				}
			} else if _, s2, _ := tb.span(k + 1); s2 != e {
				t.Fatalf("table %d bucket %d: ends at %d, next starts at %d", ti, k, e, s2)
			}
			for _, id := range tb.ids.ids(blk)[s:e] {
				h, ok := m[id]
				if !ok {
					t.Fatalf("table %d bucket %d: holds id %d, which is not stored", ti, k, id)
				}
				if got := tb.key(new(words(&h))); got != k {
					t.Fatalf("table %d: id %d in bucket %d, want %d", ti, id, k, got)
				}
				if seen[id] || pend[id] {
					t.Fatalf("table %d: id %d held twice, or held and pending (%v)", ti, id, pend[id])
				}
				seen[id] = true
			}
		}
		if len(seen) != len(m)-len(pend) {
			t.Fatalf("table %d: holds %d ids, want %d (%d stored, %d pending)", ti, len(seen), len(m)-len(pend), len(m), len(pend))
		}
		checkArena(t, &tb.ids, blocks)
	}
}

// applyBatch is AddBatch on the model.
func (m model) applyBatch(ids []uint32, hs []Hash) {
	for i, id := range ids {
		m[id] = hs[i]
	}
}

func TestAddBatchBruteForce(t *testing.T) {
	for _, clustered := range []bool{false, true} {
		for _, s := range testSpecs {
			if !clustered && s.long > 16 {
				continue // a few thousand random hashes leave such tables all but empty: clustered only
			}
			t.Run(fmt.Sprintf("clustered=%v/%v", clustered, s), func(t *testing.T) {
				r := rand.New(rand.NewPCG(21, uint64(s.m*100+s.short)))
				hs := dataset(r, 1200, clustered)
				x, m := pinned(t, s), model{}
				// Batches of growing size, some with ids out of order, then single adds and removes
				// mixed with small batches.
				next := 0
				for _, size := range []int{1, 7, 100, 400, 650} {
					ids := make([]uint32, 0, size)
					for i := range size {
						ids = append(ids, uint32(next+i))
					}
					if size > 10 {
						r.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
					}
					bh := make([]Hash, size)
					for i, id := range ids {
						bh[i] = hs[id]
					}
					next += size
					x.AddBatch(ids, bh)
					m.applyBatch(ids, bh)
					if size < 100 {
						checkTables(t, x, m)
					}
				}
				checkTables(t, x, m)
				for range 100 {
					id := uint32(r.IntN(next + 100))
					switch k := r.IntN(10); {
					case k < 4:
						h := hs[r.IntN(len(hs))]
						x.Add(id, h)
						m[id] = h
					case k < 7:
						x.Remove(id)
						delete(m, id)
					default:
						var ids []uint32
						var bh []Hash
						for range r.IntN(40) {
							ids = append(ids, uint32(r.IntN(next+100)))
							bh = append(bh, hs[r.IntN(len(hs))])
						}
						x.AddBatch(ids, bh)
						m.applyBatch(ids, bh)
					}
				}
				checkTables(t, x, m)
				for _, q := range queries(r, hs, 5) {
					for _, radius := range []int{-1, 0, 1, 16, 31, 47, 64} {
						checkSearch(t, x, m, q, radius)
					}
				}
			})
		}
	}
}

func TestAddBatchReAdd(t *testing.T) {
	r := rand.New(rand.NewPCG(22, 22))
	hs := dataset(r, 2000, true)
	tests := []struct {
		name string
		ids  func(i int) uint32 // the id of the i-th pair of the second batch
		hash func(i int) Hash
	}{
		{"same ids, same hashes", func(i int) uint32 { return uint32(i) }, func(i int) Hash { return hs[i] }},
		{"same ids, new hashes", func(i int) uint32 { return uint32(i) }, func(i int) Hash { return hs[len(hs)-1-i] }},
		{"each id three times", func(i int) uint32 { return uint32(i / 3) }, func(i int) Hash { return hs[(i*7)%len(hs)] }},
		{"old and new ids interleaved", func(i int) uint32 { return uint32(i*2) % 3000 }, func(i int) Hash { return hs[(i+5)%len(hs)] }},
	}
	for _, s := range []spec{uniform(4, 6), uniform(11, 9), {5, 2, 9, 7}} {
		for _, tc := range tests {
			t.Run(fmt.Sprintf("%v/%s", s, tc.name), func(t *testing.T) {
				x, m := pinned(t, s), model{}
				ids := make([]uint32, 1000)
				for i := range ids {
					ids[i] = uint32(i)
				}
				x.AddBatch(ids, hs[:1000])
				m.applyBatch(ids, hs[:1000])
				var ids2 []uint32
				var hs2 []Hash
				for i := range 1500 {
					ids2, hs2 = append(ids2, tc.ids(i)), append(hs2, tc.hash(i))
				}
				x.AddBatch(ids2, hs2)
				m.applyBatch(ids2, hs2)
				checkTables(t, x, m)
				for _, q := range queries(r, hs, 10) {
					for _, radius := range []int{0, 8, 31, 64} {
						checkSearch(t, x, m, q, radius)
					}
				}
			})
		}
	}
}

func TestAddBatchEmpty(t *testing.T) {
	x := pinned(t, uniform(4, 6))
	x.AddBatch(nil, nil)
	x.AddBatch([]uint32{}, []Hash{})
	if got := x.Len(); got != 0 {
		t.Errorf("Len after empty batches: got %d, want 0", got)
	}
	var z Index // the zero Index too
	z.AddBatch(nil, nil)
	z.AddBatch([]uint32{4}, []Hash{{4}})
	if got, want := z.Search(Hash{4}, 0, nil), []Match{{4, 0}}; !slices.Equal(got, want) {
		t.Errorf("zero Index: got %v, want %v", got, want)
	}
	defer func() {
		if recover() == nil {
			t.Errorf("AddBatch with 2 ids and 1 hash: got no panic, want one")
		}
	}()
	x.AddBatch([]uint32{1, 2}, []Hash{{1}})
}

// TestAddBatchGrowth grows indexes that choose their own layouts with batches, including batches larger
// than the index and than a slice, through re-layouts, with adds and removes while re-layouts run.
func TestAddBatchGrowth(t *testing.T) {
	tests := []struct {
		name  string
		sizes []int
		slice int // AddBatch's minSlice, if set
	}{
		{"one batch from empty", []int{12_000}, 0},
		{"batches larger than the index", []int{1500, 4000, 10_000}, 0},
		{"batches of 2048", slices.Repeat([]int{2048}, 6), 0},
		// 8,000 hashes are laid out for up to 11,585: the second batch goes into the tables, in 3
		// slices.
		{"batches larger than a slice", []int{8000, 3000}, 1000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(23, uint64(len(tc.sizes))))
			total := 0
			for _, s := range tc.sizes {
				total += s
			}
			hs := dataset(r, total, false)
			x, err := New(DefaultOptions())
			if err != nil {
				t.Fatal(err)
			}
			x.batch.minSlice = tc.slice
			m := model{}
			var mu sync.Mutex // guards r and m against the hook, which runs on a re-layout's goroutine
			x.hook = func() {
				mu.Lock()
				defer mu.Unlock()
				id := uint32(r.IntN(total))
				if r.IntN(2) == 0 {
					x.Remove(id)
					delete(m, id)
				} else {
					x.AddBatch([]uint32{id, id + 1}, []Hash{hs[id], hs[(id+1)%uint32(total)]})
					m[id], m[id+1] = hs[id], hs[(id+1)%uint32(total)]
				}
			}
			next := 0
			for _, size := range tc.sizes {
				ids := make([]uint32, size)
				for i := range ids {
					ids[i] = uint32(next + i)
				}
				mu.Lock()
				x.AddBatch(ids, hs[next:next+size])
				m.applyBatch(ids, hs[next:next+size])
				mu.Unlock()
				next += size
				for _, q := range queries(r, hs[:next], 3) {
					mu.Lock()
					checkSearch(t, x, m, q, 31)
					mu.Unlock()
				}
			}
			x.waitRebuild()
			x.hook = nil
			checkTables(t, x, m)
			st := x.Stats()
			if lo, hi := levelRange(x.lvl); st.Len < lo || st.Len > hi || st.Substrings == 0 {
				t.Fatalf("got %d hashes in a layout (%s) for sizes %d..%d, want one that fits", st.Len, st.Layout, lo, hi)
			}
			for _, q := range queries(r, hs, 10) {
				for _, radius := range []int{0, 16, 31} {
					checkSearch(t, x, m, q, radius)
				}
			}
		})
	}
}

// TestAddBatchConcurrent runs searches while batches are added (and re-layouts run): a search must find
// every hash of every batch that returned before it started, and report only stored hashes at their true
// distances, each once.
func TestAddBatchConcurrent(t *testing.T) {
	r := rand.New(rand.NewPCG(24, 24))
	const n, batch = 10_000, 500
	hs := dataset(r, n, true)
	x, err := New(DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	var added atomic.Int64
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Go(func() {
			rr := rand.New(rand.NewPCG(25, uint64(g)))
			var buf []Match
			for {
				k := int(added.Load())
				if k == n {
					return
				}
				if k == 0 {
					continue
				}
				i := rr.IntN(k)
				q := flip(rr, hs[i], rr.IntN(16))
				buf = x.Search(q, 31, buf[:0])
				found := false
				for j, mt := range buf {
					if int(mt.ID) == i {
						found = true
					}
					if int(mt.ID) >= n || pdq.Distance(q, hs[mt.ID]) != mt.Distance || mt.Distance > 31 {
						t.Errorf("got match %v, want only true matches", mt)
						return
					}
					if j > 0 && buf[j-1] == mt {
						t.Errorf("got match %v twice", mt)
						return
					}
				}
				if !found {
					t.Errorf("search for hash %d (added before the search): got %v, want it found", i, head(buf))
					return
				}
			}
		})
	}
	ids := make([]uint32, n)
	for i := range ids {
		ids[i] = uint32(i)
	}
	for i := 0; i < n; i += batch {
		x.AddBatch(ids[i:i+batch], hs[i:i+batch])
		added.Store(int64(i + batch))
	}
	wg.Wait()
	x.waitRebuild()
}

func TestRadixSortHi(t *testing.T) {
	r := rand.New(rand.NewPCG(26, 26))
	for _, n := range []int{0, 1, 5, 32, 33, 1000, 70_000} {
		for _, nbits := range []int{1, 9, 19, 26, 32} {
			a := make([]uint64, n)
			for i := range a {
				a[i] = uint64(r.Uint32()>>(32-nbits))<<32 | uint64(i)
			}
			want := slices.Clone(a)
			slices.SortStableFunc(want, func(p, q uint64) int { return int(p>>32) - int(q>>32) })
			if got := radixSortHi(a, make([]uint64, n), nbits); !slices.Equal(got, want) {
				t.Errorf("n=%d nbits=%d: not sorted stably by the high bits", n, nbits)
			}
		}
	}
}

// TestAddBatchDuringRelayout adds batches while a background re-layout (set off by single adds) runs:
// batches within the size it is building for go into the current tables and are replayed by it; a batch
// past that size cancels it and lays out afresh.
func TestAddBatchDuringRelayout(t *testing.T) {
	small, large := uniform(4, 6), uniform(11, 9)
	tests := []struct {
		name   string
		batch  int  // new ids the hook adds in one batch, the first time it runs
		cancel bool // whether that batch passes the re-layout's size range
	}{
		{"within the re-layout's range", 600, false},
		{"past the re-layout's range", 6000, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(27, uint64(tc.batch)))
			hs := dataset(r, 12_000, true)
			x, err := New(DefaultOptions())
			if err != nil {
				t.Fatal(err)
			}
			// Small tables up to level 23 (2,048 to 4,096 hashes), larger from level 24.
			x.choose = func(l int) spec {
				if l < 24 {
					return small
				}
				return large
			}
			x.setLayout(0, newLayout(small, 2000))
			m := model{}
			var mu sync.Mutex // guards m and ran against the hook
			ran := 0
			x.hook = func() {
				mu.Lock()
				defer mu.Unlock()
				ran++
				switch ran {
				case 1: // new ids, re-adds with a new hash and with the same, an id twice
					ids := []uint32{5, 7, 7, 9}
					bh := []Hash{hs[11_000], hs[11_001], hs[11_002], hs[9]}
					for i := range tc.batch {
						ids, bh = append(ids, uint32(5000+i)), append(bh, hs[5000+i])
					}
					x.AddBatch(ids, bh)
					m.applyBatch(ids, bh)
					// Laid out afresh at once, or into the current tables.
					if got, want := x.Stats().Layout == large.String(), tc.cancel; got != want {
						t.Errorf("after the batch: got the large layout %v, want %v", got, want)
					}
				case 2:
					x.Remove(11)
					delete(m, 11)
					x.AddBatch([]uint32{12, 20_000}, []Hash{hs[11_003], hs[11_004]})
					m.applyBatch([]uint32{12, 20_000}, []Hash{hs[11_003], hs[11_004]})
				}
			}
			for i := range 4200 { // passes 4,096: a re-layout to the large tables starts
				mu.Lock()
				x.Add(uint32(i), hs[i])
				m[uint32(i)] = hs[i]
				mu.Unlock()
			}
			x.waitRebuild()
			x.hook = nil
			// A cancelled re-layout stops at its next look at the index, after the first batch.
			if want := map[bool]int{false: 2, true: 1}[tc.cancel]; ran < want {
				t.Fatalf("the hook ran %d times, want at least %d", ran, want)
			}
			if st := x.Stats(); st.Layout != large.String() || st.Relayouts != 1 {
				t.Fatalf("got layout %s after %d re-layouts, want %s after 1", st.Layout, st.Relayouts, large)
			}
			checkTables(t, x, m)
			for _, q := range queries(r, hs[:5000], 20) {
				for _, radius := range []int{0, 8, 31} {
					checkSearch(t, x, m, q, radius)
				}
			}
		})
	}
}

// TestAddBatchBytesPerHash checks memory stays within budget when an index grows by batches (through
// re-layouts) and when batches go into a bulk-loaded index (every block then takes spare room).
func TestAddBatchBytesPerHash(t *testing.T) {
	r := rand.New(rand.NewPCG(28, 28))
	const n, batch = 100_000, 8192
	hs := make([]Hash, n)
	ids := make([]uint32, n)
	for i := range hs {
		hs[i], ids[i] = randHash(r), uint32(i)
	}
	check := func(name string, x *Index) {
		t.Helper()
		st := x.Stats()
		if got := float64(st.Bytes) / float64(st.Len); got > budgetBytes || st.Substrings == 0 {
			t.Errorf("%s: got %.1f bytes per hash in %d tables, want at most %d in some", name, got, st.Substrings, budgetBytes)
		}
	}
	x, err := New(DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i += batch {
		x.AddBatch(ids[i:min(i+batch, n)], hs[i:min(i+batch, n)])
	}
	x.waitRebuild()
	check("grown by batches", x)
	y, err := New(DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	y.BulkLoad(pairs(ids[:n/2], hs[:n/2]))
	for i := n / 2; i < n/2+4*batch; i += batch {
		y.AddBatch(ids[i:i+batch], hs[i:i+batch])
	}
	y.waitRebuild()
	check("batches after a bulk load", y)
}

// TestPendingMerge adds batches that stay pending (stored, found by a scan, in no table) until their
// number passes pendingMax, and checks every search against brute force between the write-lock holds of
// each merge: an id of a batch that has returned is found whether it is still pending, being merged (in
// some tables only) or merged, and reported once. Then the ids left pending are merged by the idle timer.
func TestPendingMerge(t *testing.T) {
	for _, clustered := range []bool{false, true} {
		for _, s := range []spec{uniform(11, 9), uniform(13, 12), {5, 2, 9, 7}, {14, 4, 19, 18}} { // each answers radius 31
			t.Run(fmt.Sprintf("clustered=%v/%v", clustered, s), func(t *testing.T) {
				r := rand.New(rand.NewPCG(30, uint64(s.m*100+s.short)))
				hs := dataset(r, 2500, clustered)
				x, m := pinned(t, s), model{}
				x.test.pendingMax, x.test.lockWork, x.test.tables = 700, 40, true
				x.test.idle = time.Hour // merges only in AddBatch, on this goroutine, until the end
				qs := queries(r, hs, 4)
				holds := 0
				x.test.mergeHook = func() {
					holds++
					if len(x.pending.ids) == 0 || !x.pending.merging {
						t.Fatalf("merge hook: %d ids pending, merging %v: want a merge under way", len(x.pending.ids), x.pending.merging)
					}
					// Queries near ids being merged, and near others.
					merging := x.pending.ids[x.pending.from:]
					hq := slices.Clone(qs)
					for range 4 {
						hq = append(hq, flip(r, m[merging[r.IntN(len(merging))]], 3))
					}
					for _, q := range hq {
						checkSearch(t, x, m, q, 31)
					}
					checkSearchBatch(t, x, m, hq, 24)
				}
				next := 0
				for _, size := range []int{300, 300, 300, 50, 600, 500, 200} {
					ids := make([]uint32, size)
					for i := range ids {
						ids[i] = uint32(next + i)
					}
					m.applyBatch(ids, hs[next:next+size]) // before: the hook checks during AddBatch
					x.AddBatch(ids, hs[next:next+size])
					next += size
					// A re-add with a new hash and a remove, of a pending id or a merged one.
					id := uint32(r.IntN(next))
					h := hs[2400+r.IntN(100)]
					x.AddBatch([]uint32{id}, []Hash{h})
					m[id] = h
					rm := uint32(r.IntN(next))
					x.Remove(rm)
					delete(m, rm)
					checkTables(t, x, m)
					for _, q := range qs {
						checkSearch(t, x, m, q, 31)
					}
				}
				if holds < 2 {
					t.Fatalf("got %d write-lock holds in merges, want at least 2", holds)
				}
				x.wmu.Lock()
				x.test.mergeHook, x.test.idle = nil, time.Millisecond
				pend, timer := len(x.pending.ids), x.pending.timer
				x.wmu.Unlock()
				if pend == 0 || timer == nil {
					t.Fatalf("%d ids pending at the end, timer set %v: the idle merge is not tested", pend, timer != nil)
				}
				timer.Reset(0)
				for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
					x.wmu.Lock()
					n := len(x.pending.ids)
					x.wmu.Unlock()
					if n == 0 {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("%d ids still pending 10 s after the last AddBatch, want none after %v", n, time.Millisecond)
					}
				}
				checkTables(t, x, m)
				for _, q := range qs {
					checkSearch(t, x, m, q, 31)
				}
			})
		}
	}
}
