package pdqindex

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hashfed/hashfed/consortium/pdq"
)

// model is the brute-force reference: what the index must return.
type model map[uint32]Hash

func (m model) search(q Hash, radius int) []Match {
	var out []Match
	if radius < 0 {
		return out
	}
	for id, h := range m {
		if d := pdq.Distance(q, h); d <= radius {
			out = append(out, Match{id, d})
		}
	}
	slices.SortFunc(out, func(a, b Match) int {
		if a.Distance != b.Distance {
			return a.Distance - b.Distance
		}
		return int(a.ID) - int(b.ID)
	})
	return out
}

// pinned returns an empty index whose layout is always s (m == 0: no tables).
func pinned(t testing.TB, s spec) *Index {
	t.Helper()
	x, err := New(DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	x.choose = func(int) spec { return s }
	x.setLayout(0, newLayout(s, 2000))
	return x
}

func randHash(r *rand.Rand) Hash {
	var h Hash
	for i := range h {
		h[i] = byte(r.Uint32())
	}
	return h
}

// flip returns h with k distinct random bits flipped.
func flip(r *rand.Rand, h Hash, k int) Hash {
	for _, p := range r.Perm(256)[:k] {
		h[p/8] ^= 1 << (p % 8)
	}
	return h
}

// dataset returns n hashes: random ones, or clustered ones (near-duplicates: groups of hashes within a few
// bits of a centre, exact duplicates included).
func dataset(r *rand.Rand, n int, clustered bool) []Hash {
	hs := make([]Hash, n)
	var centre Hash
	for i := range hs {
		switch {
		case !clustered:
			hs[i] = randHash(r)
		case i%50 == 0:
			centre = randHash(r)
			hs[i] = centre
		default:
			hs[i] = flip(r, centre, r.IntN(6))
		}
	}
	return hs
}

// queries returns stored hashes, stored hashes moved by up to 40 bits, and random hashes.
func queries(r *rand.Rand, hs []Hash, n int) []Hash {
	qs := make([]Hash, 0, n)
	for i := range n {
		switch i % 3 {
		case 0:
			qs = append(qs, hs[r.IntN(len(hs))])
		case 1:
			qs = append(qs, flip(r, hs[r.IntN(len(hs))], r.IntN(41)))
		default:
			qs = append(qs, randHash(r))
		}
	}
	return qs
}

var testRadii = []int{-1, 0, 1, 15, 16, 31, 32, 47, 63, 64, 256, 300}

func checkSearch(t *testing.T, x *Index, m model, q Hash, radius int) {
	t.Helper()
	got := x.Search(q, radius, nil)
	if want := m.search(q, radius); !slices.Equal(got, want) {
		t.Fatalf("Search(%v, %d): got %d matches %v, want %d matches %v", q, radius, len(got), head(got), len(want), head(want))
	}
}

func head(ms []Match) []Match { return ms[:min(len(ms), 8)] }

// checkSearchBatch checks that SearchBatch of qs appends to each query's existing results exactly what
// the model finds for it.
func checkSearchBatch(t *testing.T, x *Index, m model, qs []Hash, radius int) {
	t.Helper()
	prefix := Match{ID: 1 << 31, Distance: -1}
	dst := make([][]Match, len(qs)-1) // SearchBatch grows it
	for i := range dst {
		dst[i] = []Match{prefix}
	}
	dst = x.SearchBatch(qs, radius, dst)
	if len(dst) != len(qs) {
		t.Fatalf("SearchBatch of %d queries: got %d results", len(qs), len(dst))
	}
	for i, q := range qs {
		want := m.search(q, radius)
		got := dst[i]
		if i < len(qs)-1 {
			if len(got) == 0 || got[0] != prefix {
				t.Fatalf("SearchBatch(radius %d) query %d: lost the results it was given: %v", radius, i, head(got))
			}
			got = got[1:]
		}
		if !slices.Equal(got, want) && (len(got) > 0 || len(want) > 0) {
			t.Fatalf("SearchBatch(radius %d) query %d of %d: got %d matches %v, want %d matches %v", radius, i, len(qs), len(got), head(got), len(want), head(want))
		}
	}
}

func TestSearchBatch(t *testing.T) {
	for _, clustered := range []bool{false, true} {
		for _, s := range testSpecs {
			t.Run(fmt.Sprintf("clustered=%v/%v", clustered, s), func(t *testing.T) {
				r := rand.New(rand.NewPCG(3, uint64(s.m*100+s.short)))
				hs := dataset(r, 1500, clustered)
				x, m := pinned(t, s), model{}
				for i, h := range hs {
					x.Add(uint32(i), h)
					m[uint32(i)] = h
				}
				// 11 queries: not a multiple of the group size; radii that use tables, scan, or match nothing.
				qs := queries(r, hs, 11)
				for _, radius := range []int{-1, 0, 16, 31, 63, 64, 300} {
					checkSearchBatch(t, x, m, qs, radius)
					checkSearchBatch(t, x, m, qs[:1], radius)
				}
				if got := x.SearchBatch(nil, 31, nil); len(got) != 0 {
					t.Fatalf("SearchBatch of no queries: got %v, want nothing", got)
				}
			})
		}
	}
}

// testSpecs are layouts the tests pin, small enough that a few thousand hashes fill their tables.
var testSpecs = []spec{{}, uniform(1, 8), uniform(4, 6), uniform(11, 9), uniform(13, 12), uniform(16, 16), uniform(32, 8),
	uniform(11, 23), {5, 2, 9, 7}, {14, 4, 19, 18}, {12, 11, 10, 8}}

func TestSearchBruteForce(t *testing.T) {
	for _, clustered := range []bool{false, true} {
		for _, s := range testSpecs {
			t.Run(fmt.Sprintf("clustered=%v/%v", clustered, s), func(t *testing.T) {
				r := rand.New(rand.NewPCG(1, uint64(s.m*100+s.short)))
				hs := dataset(r, 1500, clustered)
				x, m := pinned(t, s), model{}
				for i, h := range hs {
					x.Add(uint32(i), h)
					m[uint32(i)] = h
				}
				for _, q := range queries(r, hs, 12) {
					for _, radius := range testRadii {
						checkSearch(t, x, m, q, radius)
					}
				}
			})
		}
	}
}

func TestSearchForcedTables(t *testing.T) {
	// Large radii normally scan; check the tables alone give the same answers at every radius.
	r := rand.New(rand.NewPCG(2, 2))
	hs := dataset(r, 2000, true)
	for _, s := range []spec{uniform(4, 6), uniform(11, 9), {5, 2, 9, 7}} {
		x, m := pinned(t, s), model{}
		for i, h := range hs {
			x.Add(uint32(i), h)
			m[uint32(i)] = h
		}
		qs := queries(r, hs, 12)
		qw := make([][4]uint64, len(qs))
		for i := range qs {
			qw[i] = words(&qs[i])
		}
		byID := func(a, b Match) int { return int(a.ID) - int(b.ID) }
		for _, radius := range []int{0, 1, 15, 16, 31, 32, 47, 63} {
			if math.IsInf(x.lay.cost[radius], 1) {
				continue // more than the tables' bits can answer
			}
			// Each query alone, then all of them as one group (whose phases are shared).
			for _, group := range [][][4]uint64{nil, qw} {
				out := make([][]Match, len(qs))
				if group == nil {
					for i := range qw {
						x.searchTables(x.lay, qw[i:i+1], radius, out[i:i+1])
					}
				} else {
					x.searchTables(x.lay, group, radius, out)
				}
				for i, q := range qs {
					got, want := out[i], m.search(q, radius)
					slices.SortFunc(got, byID)
					slices.SortFunc(want, byID)
					if !slices.Equal(got, want) {
						t.Fatalf("%v, radius %d, query %d (grouped %v): got %d matches, want %d", s, radius, i, group != nil, len(got), len(want))
					}
				}
			}
		}
	}
}

func TestSingleHash(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	h := randHash(r)
	tests := []struct {
		name   string
		q      Hash
		radius int
		want   []Match
	}{
		{"same hash at radius 0", h, 0, []Match{{7, 0}}},
		{"31 bits away at radius 31", flip(r, h, 31), 31, []Match{{7, 31}}},
		{"32 bits away at radius 31", flip(r, h, 32), 31, nil},
		{"16 bits away at radius 16", flip(r, h, 16), 16, []Match{{7, 16}}},
		{"1 bit away at radius 0", flip(r, h, 1), 0, nil},
	}
	for _, s := range testSpecs {
		x := pinned(t, s)
		x.Add(7, h)
		for _, tc := range tests {
			t.Run(fmt.Sprintf("%v/%s", s, tc.name), func(t *testing.T) {
				if got := x.Search(tc.q, tc.radius, nil); !slices.Equal(got, tc.want) {
					t.Errorf("got %v, want %v", got, tc.want)
				}
			})
		}
	}
	// And with the layout the index picks for itself, including one sized for 10M hashes.
	for _, hint := range []int{0, 10_000_000} {
		x, err := New(Options{SizeHint: hint})
		if err != nil {
			t.Fatal(err)
		}
		x.Add(7, h)
		if got, want := x.Search(flip(r, h, 31), 31, nil), []Match{{7, 31}}; !slices.Equal(got, want) {
			t.Errorf("SizeHint %d: got %v, want %v", hint, got, want)
		}
	}
}

func TestEmpty(t *testing.T) {
	for _, s := range testSpecs {
		x := pinned(t, s)
		for _, radius := range testRadii {
			if got := x.Search(Hash{}, radius, nil); len(got) != 0 {
				t.Errorf("%v, radius %d: got %v, want no matches", s, radius, got)
			}
		}
		if got := x.Len(); got != 0 {
			t.Errorf("Len: got %d, want 0", got)
		}
		if x.Remove(3) {
			t.Errorf("Remove(3) on an empty index: got true, want false")
		}
	}
}

func TestZeroIndex(t *testing.T) {
	var x Index
	h := Hash{5}
	if got := x.Search(h, 31, nil); len(got) != 0 {
		t.Fatalf("empty zero Index: got %v, want no matches", got)
	}
	x.Add(3, h)
	if got, want := x.Search(h, 31, nil), []Match{{3, 0}}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got := x.Len(); got != 1 {
		t.Errorf("Len: got %d, want 1", got)
	}
}

func TestSearchAppends(t *testing.T) {
	x := pinned(t, uniform(4, 6))
	h := Hash{1}
	x.Add(1, h)
	prefix := []Match{{99, 5}}
	got := x.Search(h, 0, prefix)
	if want := []Match{{99, 5}, {1, 0}}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestInterleaved(t *testing.T) {
	for _, s := range testSpecs {
		t.Run(s.String(), func(t *testing.T) {
			r := rand.New(rand.NewPCG(4, uint64(s.m)))
			pool := dataset(r, 400, true)
			x, m := pinned(t, s), model{}
			for step := range 3000 {
				id := uint32(r.IntN(300))
				switch k := r.IntN(10); {
				case k < 6: // add or re-add, often with a hash that is stored already
					h := pool[r.IntN(len(pool))]
					x.Add(id, h)
					m[id] = h
				case k < 9:
					_, had := m[id]
					if got := x.Remove(id); got != had {
						t.Fatalf("step %d: Remove(%d): got %v, want %v", step, id, got, had)
					}
					delete(m, id)
				default: // an id that was never added
					if x.Remove(1_000_000 + id) {
						t.Fatalf("step %d: Remove of a never-added id: got true, want false", step)
					}
				}
				if got := x.Len(); got != len(m) {
					t.Fatalf("step %d: Len: got %d, want %d", step, got, len(m))
				}
				if step%50 == 0 {
					q := flip(r, pool[r.IntN(len(pool))], r.IntN(20))
					for _, radius := range []int{0, 16, 31, 63} {
						checkSearch(t, x, m, q, radius)
					}
				}
			}
		})
	}
}

func TestReAddSameHash(t *testing.T) {
	x := pinned(t, uniform(4, 6))
	h := Hash{9}
	x.Add(1, h)
	x.Add(1, h)
	if got, want := x.Search(h, 0, nil), []Match{{1, 0}}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got := x.Len(); got != 1 {
		t.Errorf("Len: got %d, want 1", got)
	}
}

// TestWideBlocks fills buckets past what the compact offsets hold (255 ids in a group), by adds and by a
// bulk load.
func TestWideBlocks(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	for _, n := range []int{300, 3000} {
		for _, bulk := range []bool{false, true} {
			t.Run(fmt.Sprintf("n=%d,bulk=%v", n, bulk), func(t *testing.T) {
				x, m := pinned(t, uniform(4, 8)), model{}
				h := randHash(r)
				var ids []uint32
				var hs []Hash
				for i := range n {
					v := h
					if i%3 == 0 {
						v = flip(r, h, 1+r.IntN(3))
					}
					ids, hs = append(ids, uint32(i)), append(hs, v)
					m[uint32(i)] = v
				}
				if bulk {
					x.BulkLoad(pairs(ids, hs))
				} else {
					for i := range ids {
						x.Add(ids[i], hs[i])
					}
				}
				if len(x.lay.tabs[0].wide) == 0 {
					t.Fatalf("got no wide blocks, want some")
				}
				for i := 0; i < n; i += 7 {
					x.Remove(uint32(i))
					delete(m, uint32(i))
				}
				for _, radius := range []int{0, 2, 31} {
					checkSearch(t, x, m, h, radius)
					checkSearch(t, x, m, flip(r, h, 2), radius)
				}
			})
		}
	}
}

func pairs(ids []uint32, hs []Hash) func(func(uint32, Hash) bool) {
	return func(yield func(uint32, Hash) bool) {
		for i := range ids {
			if !yield(ids[i], hs[i]) {
				return
			}
		}
	}
}

func TestBulkLoad(t *testing.T) {
	r := rand.New(rand.NewPCG(6, 6))
	hs := dataset(r, 20_000, true)
	ids := make([]uint32, len(hs))
	for i := range ids {
		ids[i] = uint32(3 * i) // sparse ids
	}
	x, err := New(DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	m := model{}
	for i := range 500 { // an index that already holds hashes, some replaced by the load
		h := randHash(r)
		x.Add(uint32(i), h)
		m[uint32(i)] = h
	}
	x.BulkLoad(pairs(ids, hs))
	for i, id := range ids {
		m[id] = hs[i]
	}
	if got := x.Len(); got != len(m) {
		t.Fatalf("Len: got %d, want %d", got, len(m))
	}
	if st := x.Stats(); st.Substrings == 0 {
		t.Fatalf("after loading %d hashes: got no tables, want some", len(m))
	}
	for _, q := range queries(r, hs, 40) {
		for _, radius := range []int{0, 16, 31, 47} {
			checkSearch(t, x, m, q, radius)
		}
	}
	// Changes after the load go to the new tables.
	x.Remove(ids[0])
	delete(m, ids[0])
	x.Add(ids[1], hs[2])
	m[ids[1]] = hs[2]
	for _, q := range []Hash{hs[0], hs[1], hs[2]} {
		checkSearch(t, x, m, q, 31)
	}
}

// TestRelayout grows an index by single adds through several re-layouts, changing it while they run.
func TestRelayout(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	hs := dataset(r, 20_000, false)
	x, err := New(DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	m := model{}
	var mu sync.Mutex // guards r and m against the hook, which runs on the re-layout's goroutine
	x.hook = func() {
		// Change hashes the re-layout has read and hashes it has not: adds, re-adds, removes.
		mu.Lock()
		defer mu.Unlock()
		for range 5 {
			id := uint32(r.IntN(len(hs) + 100))
			if r.IntN(3) == 0 {
				x.Remove(id)
				delete(m, id)
			} else {
				h := hs[r.IntN(len(hs))]
				x.Add(id, h)
				m[id] = h
			}
		}
	}
	// Grow in steps, letting each re-layout finish (one that the index outgrows while it runs is
	// abandoned; TestRelayoutAbandoned covers that).
	next := 0
	for _, upto := range []int{5000, 8000, 12_000, len(hs)} {
		for ; next < upto; next++ {
			mu.Lock()
			x.Add(uint32(next), hs[next])
			m[uint32(next)] = hs[next]
			mu.Unlock()
		}
		x.waitRebuild()
	}
	x.hook = nil
	st := x.Stats()
	if st.Relayouts < 2 || st.Substrings == 0 {
		t.Fatalf("got %d re-layouts to %d tables, want at least 2 re-layouts to tables", st.Relayouts, st.Substrings)
	}
	if st.Len != len(m) {
		t.Fatalf("Len: got %d, want %d", st.Len, len(m))
	}
	for _, q := range queries(r, hs, 60) {
		for _, radius := range []int{0, 16, 31} {
			checkSearch(t, x, m, q, radius)
		}
	}
	// Shrinking re-lays out too, down to no tables at all.
	for id := range m {
		if id%10 != 0 {
			x.Remove(id)
			delete(m, id)
		}
	}
	x.waitRebuild()
	for id := range m {
		x.Remove(id)
		delete(m, id)
	}
	x.waitRebuild()
	if st := x.Stats(); st.Substrings != 0 || st.Len != 0 {
		t.Errorf("emptied index: got %d tables and Len %d, want 0 and 0", st.Substrings, st.Len)
	}
}

// TestRelayoutAbandoned grows the index far past a running re-layout's size range: the re-layout is
// dropped for a new one, and nothing is lost.
func TestRelayoutAbandoned(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 13))
	hs := dataset(r, 40_000, false)
	x, err := New(DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	m := model{}
	grown := false
	x.hook = func() {
		if grown {
			return
		}
		grown = true
		for i := 6000; i < len(hs); i++ {
			x.Add(uint32(i), hs[i])
		}
	}
	for i := range 6000 {
		x.Add(uint32(i), hs[i])
	}
	x.waitRebuild()
	x.hook = nil
	for i, h := range hs {
		m[uint32(i)] = h
	}
	if !grown {
		t.Fatalf("no re-layout ran while adding 6000 hashes")
	}
	st := x.Stats()
	if lo, hi := levelRange(x.lvl); st.Len < lo || st.Len > hi || st.Substrings == 0 {
		t.Fatalf("got %d hashes in a layout (%s) for sizes %d..%d, want one that fits", st.Len, st.Layout, lo, hi)
	}
	for _, q := range queries(r, hs, 40) {
		checkSearch(t, x, m, q, 31)
	}
}

// TestConcurrent runs searches while one writer adds (and a re-layout runs): a search must find every hash
// added before it started, and report only true distances.
func TestConcurrent(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 8))
	const n = 8000
	hs := dataset(r, n, false)
	x, err := New(DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	var added atomic.Int64
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Go(func() {
			rr := rand.New(rand.NewPCG(9, uint64(g)))
			var buf []Match
			for added.Load() < n {
				k := int(added.Load())
				if k == 0 {
					continue
				}
				i := rr.IntN(k)
				q := flip(rr, hs[i], rr.IntN(16))
				buf = x.Search(q, 31, buf[:0])
				found := false
				for _, mt := range buf {
					if int(mt.ID) == i {
						found = true
					}
					if int(mt.ID) >= n || pdq.Distance(q, hs[mt.ID]) != mt.Distance || mt.Distance > 31 {
						t.Errorf("got match %v, want only true matches", mt)
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
	for i, h := range hs {
		x.Add(uint32(i), h)
		added.Store(int64(i + 1))
	}
	wg.Wait()
	x.waitRebuild()
}

func TestNewOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		ok   bool
	}{
		{"zero", Options{}, true},
		{"default", DefaultOptions(), true},
		{"radius 63", Options{Radius: 63}, true},
		{"radius 64", Options{Radius: 64}, false},
		{"negative radius", Options{Radius: -1}, false},
		{"negative hint", Options{SizeHint: -5}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.opts)
			if got := err == nil; got != tc.ok {
				t.Errorf("New(%+v): got error %v, want ok=%v", tc.opts, err, tc.ok)
			}
		})
	}
}

func TestStatsBytesPerHash(t *testing.T) {
	r := rand.New(rand.NewPCG(10, 10))
	const n = 200_000
	x, err := New(DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	x.BulkLoad(func(yield func(uint32, Hash) bool) {
		for i := range n {
			if !yield(uint32(i), randHash(r)) {
				return
			}
		}
	})
	st := x.Stats()
	if st.Len != n || st.Substrings == 0 {
		t.Fatalf("got Len %d with %d tables, want %d with tables", st.Len, st.Substrings, n)
	}
	if got := float64(st.Bytes) / n; got > budgetBytes || got < 32 {
		t.Errorf("bytes per hash: got %.1f, want 32..%d", got, budgetBytes)
	}
	// An index grown by single adds into tables sized in advance (SizeHint) fills its arenas with spare
	// room and dead regions; past budgetBytes per hash it is laid out afresh.
	y, err := New(Options{SizeHint: n})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		y.Add(uint32(i), randHash(r))
	}
	y.waitRebuild()
	if st := y.Stats(); float64(st.Bytes)/n > budgetBytes+2 || st.Relayouts == 0 {
		t.Errorf("grown by adds: got %.1f bytes per hash after %d re-layouts, want at most about %d after at least one",
			float64(st.Bytes)/n, st.Relayouts, budgetBytes)
	}
	// Adds after a bulk load give blocks spare room; memory stays within budget.
	for i := range n / 10 {
		x.Add(uint32(n+i), randHash(r))
	}
	x.waitRebuild()
	st = x.Stats()
	if got := float64(st.Bytes) / float64(st.Len); got > budgetBytes {
		t.Errorf("bytes per hash after adds: got %.1f, want at most %d", got, budgetBytes)
	}
}
