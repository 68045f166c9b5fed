package pdqindex

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// checkArena verifies that block i of a holds want[i], that no two blocks' regions overlap, and that the
// size and dead-entry counts add up.
func checkArena(t *testing.T, a *arena, want [][]uint32) {
	t.Helper()
	type region struct{ off, end uint32 }
	byChunk := map[uint32][]region{}
	maxCap := int64(0)
	for blk := range want {
		if got := a.ids(uint32(blk)); !slices.Equal(got, want[blk]) {
			t.Fatalf("block %d: got %v, want %v", blk, got, want[blk])
		}
		l := a.locs[blk]
		if l.n > l.cap {
			t.Fatalf("block %d: got %d ids in a region of %d", blk, l.n, l.cap)
		}
		if l.cap > 0 {
			if l.c == 0 || a.chunks[l.c] == nil || l.off+l.cap > a.used[l.c] {
				t.Fatalf("block %d: region %+v is not in a used part of a live chunk", blk, l)
			}
			byChunk[l.c] = append(byChunk[l.c], region{l.off, l.off + l.cap})
			maxCap = max(maxCap, int64(l.cap))
		}
	}
	size, dead := int64(0), int64(0)
	for c := 1; c < len(a.chunks); c++ {
		if a.chunks[c] == nil {
			continue
		}
		size += int64(len(a.chunks[c]))
		rs := byChunk[uint32(c)]
		slices.SortFunc(rs, func(x, y region) int { return int(x.off) - int(y.off) })
		inUse := uint32(0)
		for i, r := range rs {
			if i > 0 && r.off < rs[i-1].end {
				t.Fatalf("chunk %d: regions %v and %v overlap", c, rs[i-1], r)
			}
			inUse += r.end - r.off
		}
		if got, want := a.used[c]-a.dead[c], inUse; got != want {
			t.Fatalf("chunk %d: used-dead is %d, want the %d entries blocks hold", c, got, want)
		}
		dead += int64(a.dead[c])
	}
	if size != a.size || dead != a.deadAll {
		t.Fatalf("got size %d dead %d, want %d and %d", a.size, a.deadAll, size, dead)
	}
	// Compaction keeps dead entries outside the tail chunk near 1/16 of the arena (one operation may
	// leave up to one block's region over).
	if got, limit := a.deadAll-int64(a.dead[a.tail]), a.size/16+int64(a.chunkSize/2)+maxCap; got > limit {
		t.Fatalf("got %d dead entries outside the tail chunk in %d, want at most %d", got, a.size, limit)
	}
}

func TestArena(t *testing.T) {
	tests := []struct {
		name   string
		blocks int
		ops    int
		big    bool // one block grows past a chunk
	}{
		{"few blocks", 3, 20_000, false},
		{"many blocks", 200, 40_000, false},
		{"a block larger than a chunk", 20, 30_000, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(11, uint64(tc.blocks)))
			a := newArena(tc.blocks, 0)
			want := make([][]uint32, tc.blocks)
			for i := range tc.ops {
				blk := r.IntN(tc.blocks)
				if tc.big && r.IntN(3) == 0 {
					blk = 0
				}
				if n := len(want[blk]); n > 0 && r.IntN(5) < 2 && !(tc.big && blk == 0) {
					p := r.IntN(n)
					a.remove(uint32(blk), uint32(p))
					want[blk] = slices.Delete(want[blk], p, p+1)
				} else {
					p := r.IntN(n + 1)
					v := r.Uint32()
					a.insert(uint32(blk), uint32(p), v)
					want[blk] = slices.Insert(want[blk], p, v)
				}
				if i%1000 == 0 {
					checkArena(t, &a, want)
				}
			}
			checkArena(t, &a, want)
			if tc.big && len(want[0]) <= int(a.chunkSize) {
				t.Fatalf("block 0 holds %d ids, want more than a chunk (%d)", len(want[0]), a.chunkSize)
			}
			// Emptying every block frees every chunk.
			for blk := range want {
				for len(want[blk]) > 0 {
					a.remove(uint32(blk), 0)
					want[blk] = want[blk][1:]
				}
			}
			checkArena(t, &a, want)
			if a.size > int64(a.chunkSize) {
				t.Errorf("empty arena: got %d entries in chunks, want at most the tail chunk's %d", a.size, a.chunkSize)
			}
		})
	}
}

// TestArenaChunkIndexes checks that chunk indexes stay within a record position's bits: an arena that has
// used half of them takes larger chunks from then on, and one that would exceed them panics rather than
// write a position that reads as another chunk (or as wideMark32).
func TestArenaChunkIndexes(t *testing.T) {
	// Pretend the arena already has k chunks (freed ones, which take no memory).
	withChunks := func(k int) *arena {
		a := newArena(1, 0)
		for len(a.chunks) < k {
			a.chunks, a.used, a.dead, a.fromBulk = append(a.chunks, nil), append(a.used, 0), append(a.dead, 0), append(a.fromBulk, false)
		}
		return &a
	}
	a := withChunks(maxChunks / 2)
	size := a.chunkSize
	if c, _ := a.alloc(16); c != maxChunks/2 {
		t.Fatalf("got chunk %d, want %d", c, maxChunks/2)
	}
	if a.chunkSize != 2*size || len(a.chunks[a.tail]) != int(2*size) {
		t.Fatalf("got chunk size %d (new chunk %d entries), want %d", a.chunkSize, len(a.chunks[a.tail]), 2*size)
	}
	if p := packPos(maxChunks-1, posMask); p == wideMark32 {
		t.Fatalf("the last chunk's last position is wideMark32")
	}
	a = withChunks(maxChunks)
	defer func() {
		if recover() == nil {
			t.Fatalf("alloc in an arena of %d chunks did not panic", maxChunks)
		}
	}()
	a.alloc(16)
}
