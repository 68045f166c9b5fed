package pdqindex

import (
	"sync"
	"testing"

	"github.com/hashfed/hashfed/internal/corpus"
)

// bench1M is an index of the first 1M hashes of the benchmark corpus (seed 1), with 2000 queries that
// flip 16 bits of a planted hash, built once for all benchmarks.
var bench1M = sync.OnceValues(func() (*Index, []Hash) {
	const n, nq = 1_000_000, 2000
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
	qs := make([]Hash, nq)
	for j := range qs {
		qs[j], _ = corpus.Query(1, n, j, 16)
	}
	return x, qs
})

func benchmarkSearch(b *testing.B, radius int) {
	x, qs := bench1M()
	var dst []Match
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		dst = x.Search(qs[i%len(qs)], radius, dst[:0])
	}
}

// BenchmarkSearch1M is a radius-31 search of 1M corpus hashes (see docs/BENCHMARKS-match.md and
// `hashfed bench match` for the side-by-side figures with the faiss anchor).
func BenchmarkSearch1M(b *testing.B) { benchmarkSearch(b, 31) }

func BenchmarkSearch1MRadius16(b *testing.B) { benchmarkSearch(b, 16) }

// BenchmarkSearch1MRadius64 scans: radii above 63 compare the query with every hash.
func BenchmarkSearch1MRadius64(b *testing.B) { benchmarkSearch(b, 64) }

func BenchmarkAdd1M(b *testing.B) {
	x, _ := bench1M()
	h := corpus.Hash(2, 0)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		h[i%32]++
		x.Add(uint32(2_000_000+i%1000), h)
	}
}
