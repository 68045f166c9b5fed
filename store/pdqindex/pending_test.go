package pdqindex

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// TestPendingMergeIDsOutOfOrder merges pending ids that share a bucket but are not listed in id order (a
// later batch of lower ids, as a Remove's swap leaves the list too), one block per write-lock hold, and
// searches between the holds: an id of that bucket not yet merged must still be found by the scan of the
// pending ids, even when its id is below that of the first id the merge has yet to insert.
func TestPendingMergeIDsOutOfOrder(t *testing.T) {
	for _, s := range []spec{uniform(11, 9), uniform(13, 12), {5, 2, 9, 7}, {14, 4, 19, 18}} {
		t.Run(fmt.Sprint(s), func(t *testing.T) {
			x, m := pinned(t, s), model{}
			x.test.pendingMax, x.test.lockWork, x.test.tables = 1<<20, 1, true
			x.test.idle = time.Hour // merged below, on this goroutine
			var twin Hash
			for i := range twin {
				twin[i] = 0xff
			}
			tw := words(&twin)
			// u is the first table a search of twin at radius 31 reports it from; the other hashes keep
			// out of twin's block in it, so that the merge reaches that block in a hold of its own.
			u := 0
			for x.lay.radii[31][u] < 0 {
				u++
			}
			tb := &x.lay.tabs[u]
			r := rand.New(rand.NewPCG(31, uint64(s.m)))
			var ids []uint32
			var hs []Hash
			for len(hs) < 300 {
				h := randHash(r)
				if tb.key(new(words(&h)))/blockBuckets != tb.key(&tw)/blockBuckets {
					ids, hs = append(ids, uint32(1000+len(hs))), append(hs, h)
				}
			}
			x.AddBatch(ids, hs)
			m.applyBatch(ids, hs)
			for _, id := range []uint32{500, 100} {
				x.AddBatch([]uint32{id}, []Hash{twin})
				m[id] = twin
			}
			if got := len(x.pending.ids); got != 302 {
				t.Fatalf("pending: got %d ids, want 302", got)
			}
			holds := 0
			x.test.mergeHook = func() {
				holds++
				checkSearch(t, x, m, twin, 31)
				checkSearchBatch(t, x, m, []Hash{twin, flip(r, twin, 4)}, 31)
			}
			mergeAll(x)
			if holds < 2 {
				t.Fatalf("got %d write-lock holds in the merge, want at least 2", holds)
			}
			x.wmu.Lock()
			x.test.mergeHook = nil
			if x.pending.timer != nil {
				x.pending.timer.Stop()
			}
			x.wmu.Unlock()
			checkTables(t, x, m)
			checkSearch(t, x, m, twin, 31)
		})
	}
}
