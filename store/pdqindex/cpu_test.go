package pdqindex

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/hashfed/hashfed/internal/corpus"
)

// These benchmarks report CPU time as well as wall time, for A/B comparisons on a shared machine where
// wall time mostly measures the other tenants (docs/BENCHMARKS.md, "Round four"): the search's CPU time
// is the one thread's (its stalls on memory included), a batch add's the whole process's.

// bench10M is bench1M's index and queries at 10M hashes (about 1 GB; built once, on first use).
var bench10M = sync.OnceValues(func() (*Index, []Hash) { return benchIndex(10_000_000) })

// benchIndex bulk-loads the first n hashes of the benchmark corpus (seed 1) and returns the index with
// 2000 queries that flip 16 bits of a planted hash.
func benchIndex(n int) (*Index, []Hash) {
	x, err := New(DefaultOptions())
	if err != nil {
		panic(err)
	}
	x.BulkLoad(func(yield func(uint32, Hash) bool) {
		for i := range n {
			if !yield(uint32(i), corpus.Hash(1, i)) {
				return
			}
		}
	})
	qs := make([]Hash, 2000)
	for j := range qs {
		qs[j], _ = corpus.Query(1, n, j, 16)
	}
	return x, qs
}

// grown1M is bench1M's hashes and queries in an index grown from empty by AddBatch in batches of 10,000
// (the store's own-entry ingest), its last pending ids merged.
var grown1M = sync.OnceValues(func() (*Index, []Hash) {
	const n, batch = 1_000_000, 10_000
	_, qs := bench1M()
	x, err := New(DefaultOptions())
	if err != nil {
		panic(err)
	}
	hs := corpusHashes(1, 0, n)
	ids := make([]uint32, n)
	for i := range ids {
		ids[i] = uint32(i)
	}
	for i := 0; i < n; i += batch {
		x.AddBatch(ids[i:i+batch], hs[i:i+batch])
	}
	x.waitRebuild()
	mergeAll(x)
	return x, qs
})

// BenchmarkSearchCPU is a radius-31 search at 1M and at 10M hashes (and at 1M grown by batches), reporting the searching thread's CPU
// time per query beside the wall time, and the distinct cache lines a query reads (records, ids, first
// halves of hashes; counted outside the timed loop over the first 200 queries).
func BenchmarkSearchCPU(b *testing.B) {
	for _, tc := range []struct {
		name  string
		index func() (*Index, []Hash)
	}{{"1M", bench1M}, {"10M", bench10M}, {"1Mgrown", grown1M}} {
		b.Run(tc.name, func(b *testing.B) {
			x, qs := tc.index()
			rec, ids, hs := searchLines(x, qs[:200])
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var dst []Match
			c0 := threadCPU()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				dst = x.Search(qs[i%len(qs)], 31, dst[:0])
			}
			b.ReportMetric(float64(threadCPU()-c0)/float64(b.N)/1e3, "cpu-µs/query")
			b.ReportMetric(rec, "record-lines/query")
			b.ReportMetric(ids, "id-lines/query")
			b.ReportMetric(hs, "hash-lines/query")
		})
	}
}

// searchLines returns the mean number of distinct cache lines of records, of ids and of hashes' first
// halves that searching qs at radius 31 reads, from the addresses the search computed for its prefetches
// (an empty bucket's id prefetch points at its record and is not counted).
func searchLines(x *Index, qs []Hash) (rec, ids, hs float64) {
	distinct := func(a []uintptr) float64 {
		m := make(map[uintptr]bool, len(a))
		for _, v := range a {
			m[v/64] = true
		}
		return float64(len(m))
	}
	for _, q := range qs {
		qw := [1][4]uint64{words(&q)}
		out := [1][]Match{}
		s := new(scratch)
		x.mu.RLock()
		x.searchTablesWith(s, x.lay, qw[:], 31, out[:])
		x.mu.RUnlock()
		var idl []uintptr
		for p, sp := range s.spans[:len(s.probes)] {
			if sp.s != sp.e {
				idl = append(idl, s.addrs[1][2*p], s.addrs[1][2*p+1])
			}
		}
		rec += distinct(s.addrs[0])
		ids += distinct(idl)
		hs += distinct(s.addrs[2][:len(s.cands)])
	}
	n := float64(len(qs))
	return rec / n, ids / n, hs / n
}

// BenchmarkAddBatchCPU grows an empty index to 1M corpus hashes by batches of 10,000 (the store's own-entry
// ingest batches), re-layouts included, reporting the process's CPU time per add beside the wall time.
func BenchmarkAddBatchCPU(b *testing.B) {
	const n, batch = 1_000_000, 10_000
	hs := corpusHashes(1, 0, n)
	ids := make([]uint32, n)
	for i := range ids {
		ids[i] = uint32(i)
	}
	b.Run(fmt.Sprintf("grow0to1Mby%d", batch), func(b *testing.B) {
		var cpu time.Duration
		for b.Loop() {
			x, _ := New(DefaultOptions())
			c0 := processCPU()
			for i := 0; i < n; i += batch {
				x.AddBatch(ids[i:i+batch], hs[i:i+batch])
			}
			x.waitRebuild()
			mergeAll(x) // what the idle timer would merge
			cpu += processCPU() - c0
		}
		b.ReportMetric(float64(cpu)/float64(n)/float64(b.N), "cpu-ns/add")
	})
}
