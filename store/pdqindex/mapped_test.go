package pdqindex

import (
	"math/rand/v2"
	"runtime"
	"testing"
)

// TestPrefetchAnyAddress checks that prefetching addresses that are not mapped does not fault: a search
// prefetches the line before an empty bucket's region, which may lie outside every mapping.
func TestPrefetchAnyAddress(t *testing.T) {
	x := []uint64{1, 2}
	prefetch([]uintptr{0, 8, ^uintptr(0), ^uintptr(0) - 4, addr(&x[0]) - 4, addr(&x[1])})
	prefetch(nil)
}

// TestMappedIndex builds an index large enough for its arrays to be mapped outside the Go heap (see
// hugeSlice), then changes it, lays it out afresh (dropping the old tables, whose mapping is then unmapped)
// and collects garbage between the steps: every search must still equal brute force, and nothing the index
// uses may be unmapped.
func TestMappedIndex(t *testing.T) {
	if raceEnabled {
		t.Skip("under the race detector hugeSlice uses the Go heap")
	}
	if testing.Short() {
		t.Skip("builds an index of 600,000 hashes")
	}
	r := rand.New(rand.NewPCG(17, 3))
	const n = 600_000
	m := model{}
	x, err := New(DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	hs := dataset(r, n, false)
	x.BulkLoad(func(yield func(uint32, Hash) bool) {
		for i, h := range hs {
			m[uint32(i)] = h
			if !yield(uint32(i), h) {
				return
			}
		}
	})
	mapped := len(x.hs.mems) > 0 && x.lay.m > 0 && x.lay.tabs[0].mem != nil
	for t := range x.lay.tabs {
		mapped = mapped && x.lay.tabs[t].ids.bulkMem != nil
	}
	if _, mem := mapHuge(hugePage); mem == nil {
		t.Skip("no mapping outside the Go heap here: the index is on the heap")
	}
	if !mapped {
		t.Fatalf("an index of %d hashes: hash slabs mapped %d, records mapped %v, want all its large arrays mapped",
			n, len(x.hs.mems), x.lay.tabs[0].mem != nil)
	}
	check := func(step string) {
		t.Helper()
		runtime.GC()
		runtime.GC()
		qs := queries(r, hs, 24)
		for _, q := range qs[:12] {
			checkSearch(t, x, m, q, 31)
		}
		checkSearchBatch(t, x, m, qs[12:], 31)
		if t.Failed() {
			t.Fatalf("after %s", step)
		}
	}
	check("the bulk load")
	// Changes in place: new ids by a batch and one by one, re-adds, removes.
	ids, more := make([]uint32, 0, 20_000), make([]Hash, 0, 20_000)
	for i := range 20_000 {
		h := randHash(r)
		ids, more = append(ids, uint32(n+i)), append(more, h)
		m[uint32(n+i)] = h
	}
	x.AddBatch(ids, more)
	for i := range 2_000 {
		id := uint32(r.IntN(n + 20_000))
		if i%2 == 0 {
			h := randHash(r)
			x.Add(id, h)
			m[id] = h
		} else if x.Remove(id) != (m[id] != Hash{}) {
			t.Fatalf("Remove(%d) disagrees with the model", id)
		} else {
			delete(m, id)
		}
	}
	check("changes in place")
	// A batch that takes the index past its layout's range: new tables, the old ones dropped.
	before := x.Stats().Relayouts
	ids, more = ids[:0], more[:0]
	for i := range 200_000 {
		h := randHash(r)
		ids, more = append(ids, uint32(n+20_000+i)), append(more, h)
		m[uint32(n+20_000+i)] = h
	}
	x.AddBatch(ids, more)
	x.waitRebuild()
	if got := x.Stats().Relayouts; got == before {
		t.Fatalf("adding 200,000 to %d hashes: no re-layout", n)
	}
	check("a re-layout")
}
