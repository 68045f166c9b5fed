package store_test

import (
	"path/filepath"
	"testing"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	"github.com/hashfed/hashfed/store"
)

// BenchmarkAppendRange stores verified ranges of 10,000 entries (fsync per range), as replication
// and bootstrap do. Reported as entries/s.
func BenchmarkAppendRange(b *testing.B) {
	g := fixture.Genesis(2, founders...)
	const n, chunk = 1_000_000, 10_000
	l := peerLog(g, "bravo", 0, 0)
	var cps []*consortium.Checkpoint
	for i := 0; i < n; i += chunk {
		for j := i; j < i+chunk; j++ {
			l.Append(fixture.Add(fixture.At(int64(j)), fixture.PDQ(j), "behaviour:threat-incitement"))
		}
		cp, _ := consortium.OpenCheckpoint(g.ID, g, l.Checkpoint())
		cps = append(cps, cp)
	}
	b.ResetTimer()
	for k := 0; k < b.N; k++ {
		b.StopTimer()
		s, err := store.Open(filepath.Join(b.TempDir(), "db"), g, store.DefaultOptions())
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for c, i := 0, 0; i < n; c, i = c+1, i+chunk {
			if err := s.AppendRange(cps[c], uint64(i), l.Entries[i:i+chunk], nil); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		s.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}
