package pdqindex

import (
	"crypto/sha256"
	"slices"
	"testing"
)

// fuzzSpecs are the layouts FuzzIndex pins: small substrings so that a few dozen hashes fill buckets, wide
// blocks included.
var fuzzSpecs = []spec{{}, uniform(2, 3), uniform(4, 6), {5, 2, 9, 7}, uniform(13, 12), uniform(1, 5)}

// FuzzIndex drives an index with add, remove, re-add, batch-add, bulk-load and search operations decoded
// from the input and checks every search against brute force, and the tables' contents after each batch. Hashes are near-duplicates of 8 bases, so buckets
// and results hold many of them.
func FuzzIndex(f *testing.F) {
	f.Add([]byte{2, 0, 1, 2, 3, 0, 1, 2, 4, 2, 0, 1, 31, 1, 1, 0, 0, 2, 1, 2, 63})
	f.Add([]byte{3, 0, 5, 7, 9, 0, 6, 7, 1, 3, 5, 0, 0, 2, 3, 7, 200, 1, 5, 0, 0, 2, 3, 7, 16})
	f.Add([]byte{5, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 2, 0, 0, 0})
	f.Add([]byte{1, 5, 3, 200, 9, 0, 1, 2, 3, 5, 3, 7, 129, 3, 4, 1, 9, 5, 39, 255, 7, 2, 3, 0, 0, 3, 7, 1, 31})
	f.Add([]byte{4, 5, 0, 255, 1, 5, 8, 255, 2, 2, 8, 0, 0, 5, 16, 254, 130, 3, 9, 3, 63})
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		var bases [8]Hash
		for i := range bases {
			bases[i] = sha256.Sum256([]byte{byte(i), in[0]})
		}
		hashOf := func(b, f byte) Hash {
			h := bases[b%8]
			if f&0x80 != 0 { // flip up to 3 bits
				for _, p := range []byte{f, f * 7, f * 13}[:1+int(f%3)] {
					h[p%32] ^= 1 << (p / 32 % 8)
				}
			}
			return h
		}
		x := pinned(t, fuzzSpecs[int(in[0])%len(fuzzSpecs)])
		m := model{}
		ops := in[1:]
		for len(ops) >= 4 {
			op, a, b, c := ops[0], ops[1], ops[2], ops[3]
			ops = ops[4:]
			id := uint32(a % 40)
			switch op % 6 {
			case 0, 1:
				h := hashOf(b, c)
				x.Add(id, h)
				m[id] = h
			case 2:
				_, had := m[id]
				if got := x.Remove(id); got != had {
					t.Fatalf("Remove(%d): got %v, want %v", id, got, had)
				}
				delete(m, id)
			case 3:
				q := hashOf(b, c^a)
				radius := int(a) % 70
				if got, want := x.Search(q, radius, nil), m.search(q, radius); !slices.Equal(got, want) {
					t.Fatalf("Search(radius %d): got %v, want %v", radius, got, want)
				}
			case 4: // bulk-load a few pairs
				var ids []uint32
				var hs []Hash
				for k := range int(b%4) + 1 {
					ids = append(ids, (id+uint32(k)*7)%40)
					hs = append(hs, hashOf(c+byte(k), c^byte(k)))
				}
				x.BulkLoad(pairs(ids, hs))
				for k := range ids {
					m[ids[k]] = hs[k]
				}
			case 5: // batch-add up to 32 pairs: ids from a, stepping by b (0: one id repeated), hashes from c
				var ids []uint32
				var hs []Hash
				for k := range int(c%32) + 1 {
					ids = append(ids, (id+uint32(k)*uint32(b%8))%40)
					hs = append(hs, hashOf(c+byte(k), b^byte(k*37)))
				}
				x.AddBatch(ids, hs)
				m.applyBatch(ids, hs)
				checkTables(t, x, m)
			}
			if got := x.Len(); got != len(m) {
				t.Fatalf("Len: got %d, want %d", got, len(m))
			}
		}
		for _, bb := range []byte{0, 3, 6} {
			q := hashOf(bb, 0x81)
			for _, radius := range []int{0, 2, 31, 64} {
				if got, want := x.Search(q, radius, nil), m.search(q, radius); !slices.Equal(got, want) {
					t.Fatalf("final Search(radius %d): got %v, want %v", radius, got, want)
				}
			}
		}
	})
}
