package pdqindex

import (
	"fmt"
	"sync"
	"testing"

	"github.com/hashfed/hashfed/internal/corpus"
)

// bench1M is an index of the first 1M hashes of the benchmark corpus (seed 1), with 2000 queries that
// flip 16 bits of a planted hash, built once for all benchmarks.
var bench1M = sync.OnceValues(func() (*Index, []Hash) { return benchIndex(1_000_000) })

func benchmarkSearch(b *testing.B, radius int) {
	x, qs := bench1M()
	var dst []Match
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		dst = x.Search(qs[i%len(qs)], radius, dst[:0])
	}
}

// BenchmarkSearch1M is a radius-31 search of 1M corpus hashes (see "PDQ matching" in
// docs/BENCHMARKS.md and `hashfed-bench match` for the side-by-side figures with the faiss anchor).
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

// corpusHashes returns n hashes of the benchmark corpus (seed), from the first-th.
func corpusHashes(seed, first, n int) []Hash {
	hs := make([]Hash, n)
	for i := range hs {
		hs[i] = corpus.Hash(seed, first+i)
	}
	return hs
}

// BenchmarkAddBatch adds corpus hashes in batches of 16,384 (about the size of the store's chunks):
// growing an empty index to 1M and to 2M hashes (each op grows one index, re-layouts included), and into an
// index of 1M (each op adds one batch, then removes it untimed). Reported as adds/s, with the bytes per hash
// at the end of a growth.
func BenchmarkAddBatch(b *testing.B) {
	const batch = 16384
	for _, n := range []int{1 << 20, 2 << 20} {
		b.Run(fmt.Sprintf("grow0to%dM", n>>20), func(b *testing.B) {
			hs := corpusHashes(1, 0, n)
			ids := make([]uint32, n)
			for i := range ids {
				ids[i] = uint32(i)
			}
			var st Stats
			for b.Loop() {
				x, _ := New(DefaultOptions())
				for i := 0; i < n; i += batch {
					x.AddBatch(ids[i:i+batch], hs[i:i+batch])
				}
				x.waitRebuild()
				st = x.Stats()
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "adds/s")
			b.ReportMetric(float64(st.Bytes)/float64(st.Len), "B/hash")
		})
	}
	b.Run("16384into1M", func(b *testing.B) {
		x, _ := bench1M()
		hs := corpusHashes(3, 0, batch)
		ids := make([]uint32, batch)
		for i := range ids {
			ids[i] = uint32(1_000_000 + i)
		}
		for b.Loop() {
			x.AddBatch(ids, hs)
			b.StopTimer()
			for _, id := range ids {
				x.Remove(id)
			}
			b.StartTimer()
		}
		b.ReportMetric(float64(batch)*float64(b.N)/b.Elapsed().Seconds(), "adds/s")
	})
}
