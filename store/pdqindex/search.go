package pdqindex

import (
	"math/bits"
	"slices"
	"sync"
)

// Search appends to dst every stored id whose hash is within radius of q (Hamming distance <= radius),
// each once, sorted by distance and then id, and returns the extended slice. A negative radius matches
// nothing; a radius of 256 or more matches everything.
func (x *Index) Search(q Hash, radius int, dst []Match) []Match {
	if radius < 0 {
		return dst
	}
	radius = min(radius, 256)
	x.init()
	qw := words(&q)
	start := len(dst)
	x.mu.RLock()
	if lay := x.lay; radius > maxTableRadius || lay.cost[radius]*scanFactor > float64(x.n) {
		dst = x.scan(&qw, radius, dst)
	} else {
		dst = x.searchTables(lay, &qw, radius, dst)
	}
	x.mu.RUnlock()
	slices.SortFunc(dst[start:], func(a, b Match) int {
		if a.Distance != b.Distance {
			return a.Distance - b.Distance
		}
		return int(a.ID) - int(b.ID)
	})
	return dst
}

// scan compares q with every stored hash.
func (x *Index) scan(q *[4]uint64, radius int, dst []Match) []Match {
	const wordsPerPage = pageSize / 64
	live := x.hs.live
	for pi, lo := range x.hs.lo {
		if lo == nil {
			continue
		}
		hi := x.hs.hi[pi][:len(lo)]
		for w := range wordsPerPage {
			lw := uint64(0)
			if k := pi*wordsPerPage + w; k < len(live) {
				lw = live[k]
			}
			for lw != 0 {
				j := w*64 + bits.TrailingZeros64(lw)
				lw &= lw - 1
				// Sequential reads: the whole distance, with no branch on the first half (which
				// mispredicts when the radius is near 64).
				a, b := &lo[j], &hi[j]
				d := bits.OnesCount64(q[0]^a[0]) + bits.OnesCount64(q[1]^a[1]) +
					bits.OnesCount64(q[2]^b[0]) + bits.OnesCount64(q[3]^b[1])
				if d <= radius {
					dst = append(dst, Match{uint32(pi<<pageBits + j), d})
				}
			}
		}
	}
	return dst
}

// scratch is one search's working memory, pooled.
type scratch struct {
	keys   []uint32 // the query's key per table
	spans  []span   // the buckets to read
	ends   []int    // spans of table t end at ends[t]
	cands  []uint32 // candidate ids
	cends  []int    // candidates of table t end at cends[t]
	masks  []uint32 // masks of weight > cachedWeight
	sink   uint64
	radius []int
}

type span struct{ blk, s, e uint32 }

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// searchTables runs a multi-index search. It reads in phases so that the cache misses of one phase are
// independent of each other and overlap: the offsets of every bucket to read, then the ids in them, then
// the candidates' hashes. A hash found through several tables is reported from the first table that can
// find it (the first whose substring is within that table's radius), so no visited set is needed.
func (x *Index) searchTables(lay *layout, q *[4]uint64, radius int, dst []Match) []Match {
	s := scratchPool.Get().(*scratch)
	defer scratchPool.Put(s)
	s.keys, s.radius = s.keys[:0], s.radius[:0]
	s.spans, s.ends = s.spans[:0], s.ends[:0]
	radii := lay.radii[radius]
	for t := range lay.tabs {
		tb := &lay.tabs[t]
		rt := int(radii[t])
		key := tb.key(q)
		s.keys, s.radius = append(s.keys, key), append(s.radius, rt)
		var masks []uint32
		switch {
		case rt < 0:
		case rt <= cachedWeight && t < lay.nlong:
			masks = lay.masks[1][:int(volume(lay.long, rt))]
		case rt <= cachedWeight:
			masks = lay.masks[0][:int(volume(lay.short, rt))]
		default:
			s.masks = appendMasks(s.masks[:0], int(tb.b), rt)
			masks = s.masks
		}
		spans := slices.Grow(s.spans, len(masks))
		recs := tb.recs
		for _, mk := range masks {
			// tb.span, inlined by hand: one 64-byte record gives the bucket's ids' place.
			k := key ^ mk
			g := k / groupBuckets
			j := k - g*groupBuckets
			r := recs[g*recSize : g*recSize+recSize : g*recSize+recSize]
			st := uint32(r[0]) | uint32(r[1])<<8
			var b, e uint32
			if st == wideMark {
				b, e = tb.wideSpan(g, j)
			} else {
				e = st + uint32(r[(2+j)&63])
				b = st
				if j > 0 {
					b += uint32(r[(1+j)&63])
				}
			}
			spans = append(spans, span{g / groupsBlock, b, e})
		}
		s.spans = spans
		s.ends = append(s.ends, len(s.spans))
	}
	total := 0
	for _, sp := range s.spans {
		total += int(sp.e - sp.s)
	}
	cands := slices.Grow(s.cands[:0], total)[:total]
	s.cends = s.cends[:0]
	c, first := 0, 0
	for t := range lay.tabs {
		a := &lay.tabs[t].ids
		locs, chunks := a.locs, a.chunks
		for _, sp := range s.spans[first:s.ends[t]] {
			// Buckets hold a few ids: a loop beats copy's call.
			l := &locs[sp.blk]
			for _, id := range chunks[l.c][l.off+sp.s : l.off+sp.e] {
				cands[c] = id
				c++
			}
		}
		first = s.ends[t]
		s.cends = append(s.cends, c)
	}
	s.cands = cands
	lo, hi := x.hs.lo, x.hs.hi
	var sink uint64
	for _, id := range cands {
		sink += lo[id>>pageBits][id&(pageSize-1)][0]
	}
	s.sink = sink
	first = 0
	for t := range lay.tabs {
		for _, id := range cands[first:s.cends[t]] {
			a := &lo[id>>pageBits][id&(pageSize-1)]
			// Most candidates are far: the first half of the hash almost always settles it.
			d := bits.OnesCount64(q[0]^a[0]) + bits.OnesCount64(q[1]^a[1])
			if d > radius {
				continue
			}
			b := &hi[id>>pageBits][id&(pageSize-1)]
			d += bits.OnesCount64(q[2]^b[0]) + bits.OnesCount64(q[3]^b[1])
			if d > radius {
				continue
			}
			if h := [4]uint64{a[0], a[1], b[0], b[1]}; foundBefore(lay, s, t, &h) {
				continue
			}
			dst = append(dst, Match{id, d})
		}
		first = s.cends[t]
	}
	return dst
}

// foundBefore reports whether a table before t also finds h.
func foundBefore(lay *layout, s *scratch, t int, h *[4]uint64) bool {
	for u := range t {
		tb := &lay.tabs[u]
		if rt := s.radius[u]; rt >= 0 && bits.OnesCount32(tb.key(h)^s.keys[u]) <= rt {
			return true
		}
	}
	return false
}
