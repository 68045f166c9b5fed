package pdqindex

import (
	"encoding/binary"
	"math/bits"
	"slices"
	"sync"
	"unsafe"
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
	qw := [1][4]uint64{words(&q)}
	start := len(dst)
	out := [1][]Match{dst}
	x.mu.RLock()
	if lay := x.lay; radius > maxTableRadius || lay.cost[radius]*scanFactor > float64(x.n) && !x.test.tables {
		x.scan(qw[:], radius, out[:])
	} else {
		x.searchTables(lay, qw[:], radius, out[:])
		if len(x.pending.ids) > 0 {
			x.scanPending(lay, qw[:], radius, out[:])
		}
	}
	x.mu.RUnlock()
	sortMatches(out[0][start:])
	return out[0]
}

// SearchBatch runs [Index.Search] for every query of qs at one radius: it appends query i's matches to
// dst[i] (dst is grown to len(qs) first; nil is fine) and returns dst. The results are exactly Search's, each
// query's sorted by distance and then id. A search that scans reads every hash once for all the queries of
// a batch; a table search costs about what Search costs, as one query's prefetched reads already keep the
// memory busy. It takes the read lock once for every few queries, so searches of a batch may see
// different states of an index that is being changed, as separate Search calls would.
func (x *Index) SearchBatch(qs []Hash, radius int, dst [][]Match) [][]Match {
	if len(dst) < len(qs) {
		dst = append(dst, make([][]Match, len(qs)-len(dst))...)
	}
	if radius < 0 || len(qs) == 0 {
		return dst
	}
	radius = min(radius, 256)
	x.init()
	var qw [groupQueries][4]uint64
	var starts [groupQueries]int
	for i := 0; i < len(qs); i += groupQueries {
		k := min(groupQueries, len(qs)-i)
		for j := range k {
			qw[j] = words(&qs[i+j])
			starts[j] = len(dst[i+j])
		}
		out := dst[i : i+k]
		x.mu.RLock()
		if lay := x.lay; radius > maxTableRadius || lay.cost[radius]*scanFactor > float64(x.n) && !x.test.tables {
			x.scan(qw[:k], radius, out)
		} else {
			x.searchTables(lay, qw[:k], radius, out)
			if len(x.pending.ids) > 0 {
				x.scanPending(lay, qw[:k], radius, out)
			}
		}
		x.mu.RUnlock()
		for j := range k {
			sortMatches(out[j][starts[j]:])
		}
	}
	return dst
}

// sortMatches sorts ms by distance and then id.
func sortMatches(ms []Match) {
	slices.SortFunc(ms, func(a, b Match) int {
		if a.Distance != b.Distance {
			return a.Distance - b.Distance
		}
		return int(a.ID) - int(b.ID)
	})
}

// scan compares each query of qs with every stored hash, reading each hash once, and appends query i's
// matches to dst[i].
func (x *Index) scan(qs [][4]uint64, radius int, dst [][]Match) {
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
				for qi := range qs {
					q := &qs[qi]
					d := bits.OnesCount64(q[0]^a[0]) + bits.OnesCount64(q[1]^a[1]) +
						bits.OnesCount64(q[2]^b[0]) + bits.OnesCount64(q[3]^b[1])
					if d <= radius {
						dst[qi] = append(dst[qi], Match{uint32(pi<<pageBits + j), d})
					}
				}
			}
		}
	}
}

// scratch is one search's working memory, pooled.
type scratch struct {
	keys   []uint32     // the queries' key per table: keys[qi*m+t]
	probes []uint32     // the buckets to read
	ends   []int        // probes (and spans) of query qi's table t end at ends[qi*m+t]
	spans  []span       // where each probed bucket's ids are
	addrs  [3][]uintptr // the lines the phases read: records, ids, hashes
	cands  []uint32     // candidate ids
	cends  []int        // candidates of query qi's table t end at cends[qi*m+t]
	masks  []uint32     // masks of weight > cachedWeight
	radius []int        // the radius table t is searched at
}

// A span is where a bucket's ids are: chunk c of its table's arena, [s, e).
type span struct{ c, s, e uint32 }

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// groupQueries is how many queries SearchBatch runs through the phases of searchTables together: their
// cache misses of a phase overlap, and their working set (a few thousand candidates each) stays in L2.
const groupQueries = 4

// addr returns the address of *p, for prefetch.
func addr[T any](p *T) uintptr { return uintptr(unsafe.Pointer(p)) }

// prefetchDistance is how many lines ahead of its reads a search phase prefetches (prefetchStep at a
// time): enough misses in flight to cover the memory's latency. Prefetching a whole phase's lines in one
// burst first measured hardly faster than no prefetch (the CPU keeps only so many misses in flight), and
// distances from 16 to 128 all measured about the same (docs/BENCHMARKS.md, "Round three").
const (
	prefetchDistance = 48
	prefetchStep     = 8
)

// prefetchAhead prefetches the addresses of addrs from i (the read that is prefetchDistance ahead of the
// current one), prefetchStep of them; the caller calls it every prefetchStep reads.
func prefetchAhead(addrs []uintptr, i int) {
	if i < len(addrs) {
		prefetch(addrs[i:min(i+prefetchStep, len(addrs))])
	}
}

// searchTables runs a multi-index search of each query of qs, appending query i's matches to dst[i]. It
// reads in phases: the records of every bucket to read (for every query), then the ids in those buckets,
// then the first halves of the candidates' hashes. Each phase computes the addresses the next will read,
// and the next prefetches them a few dozen lines ahead of its reads (see prefetch), so that its cache
// misses overlap and its loop, which does not wait for them, does not hold them up: the misses, not the
// loops' instructions, set the pace. A hash found through several tables is reported from the first
// table that can find it (the first whose substring is within that table's radius), so no visited set is
// needed.
func (x *Index) searchTables(lay *layout, qs [][4]uint64, radius int, dst [][]Match) {
	s := scratchPool.Get().(*scratch)
	x.searchTablesWith(s, lay, qs, radius, dst)
	scratchPool.Put(s)
}

// searchTablesWith is searchTables with working memory s.
func (x *Index) searchTablesWith(s *scratch, lay *layout, qs [][4]uint64, radius int, dst [][]Match) {
	m := len(lay.tabs)
	s.keys, s.radius = s.keys[:0], s.radius[:0]
	s.probes, s.ends = s.probes[:0], s.ends[:0]
	recAddrs := s.addrs[0][:0]
	radii := lay.radii[radius]
	for t := range lay.tabs {
		s.radius = append(s.radius, int(radii[t]))
	}
	// The buckets to read, and the lines of their records.
	for qi := range qs {
		q := &qs[qi]
		for t := range lay.tabs {
			tb := &lay.tabs[t]
			rt := int(radii[t])
			key := tb.key(q)
			s.keys = append(s.keys, key)
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
			probes := slices.Grow(s.probes, len(masks))
			recAddrs = slices.Grow(recAddrs, len(masks))
			base := addr(unsafe.SliceData(tb.recs))
			for _, mk := range masks {
				k := key ^ mk
				probes = append(probes, k)
				recAddrs = append(recAddrs, base+uintptr(k/groupBuckets*recSize))
			}
			s.probes = probes
			s.ends = append(s.ends, len(probes))
		}
	}
	s.addrs[0] = recAddrs
	// Where each bucket's ids are, and their lines.
	spans := growTo(&s.spans, len(s.probes))
	idAddrs := growTo(&s.addrs[1], 2*len(s.probes))
	total, first := 0, 0
	prefetch(recAddrs[:min(prefetchDistance, len(recAddrs))])
	for i, end := range s.ends {
		tb := &lay.tabs[i%m]
		recs := tb.recs
		chunks := tb.ids.chunks
		for p := first; p < end; p++ {
			if p%prefetchStep == 0 {
				prefetchAhead(recAddrs, p+prefetchDistance)
			}
			// tb.span, inlined by hand: one 64-byte record gives the bucket's ids' place in the
			// arena. No branch on what the record says (but for wide blocks, which random data never
			// has): a mispredicted branch on a line still on its way would stall the loop until it
			// arrives.
			k := s.probes[p]
			g := k / groupBuckets
			j := k - g*groupBuckets
			r := recs[g*recSize : g*recSize+recSize : g*recSize+recSize]
			pos := binary.LittleEndian.Uint32(r)
			var sp span
			if pos == wideMark32 {
				sp = tb.wideSpanAt(g, j)
			} else {
				st := pos & posMask
				sp.c = pos >> posBits
				sp.e = st + uint32(r[(endsAt+j)&63])
				sp.s = st + uint32(r[(endsAt-1+j)&63])&-min(j, 1) // bucket 0 starts at the group's start
			}
			spans[p] = sp
			// The lines of the bucket's first and last id (the same for most). An empty bucket (a third to
			// a half of them at 10M hashes) points at its record's line instead, already in the cache:
			// fetching a line of ids nobody reads would take a miss buffer from the lines that are read.
			// Chosen by a mask, not a branch on the record (which may still be on its way).
			base := addr(unsafe.SliceData(chunks[sp.c]))
			a0, a1 := base+uintptr(sp.s)*4, base+uintptr(sp.e)*4-4
			rl := addr(&r[0])
			full := -uintptr(min(sp.e-sp.s, 1)) // all ones unless the bucket is empty
			idAddrs[2*p], idAddrs[2*p+1] = rl^(rl^a0)&full, rl^(rl^a1)&full
			total += int(sp.e - sp.s)
		}
		first = end
	}
	// The candidates, and the lines of their hashes' first halves.
	cands := growTo(&s.cands, total)
	hashAddrs := growTo(&s.addrs[2], total)
	lo, hi := x.hs.lo, x.hs.hi
	s.cends = s.cends[:0]
	c := 0
	first = 0
	prefetch(idAddrs[:min(2*prefetchDistance, len(idAddrs))])
	for i, end := range s.ends {
		chunks := lay.tabs[i%m].ids.chunks
		for p := first; p < end; p++ {
			if p%(prefetchStep/2) == 0 {
				prefetchAhead(idAddrs, 2*(p+prefetchDistance))
			}
			sp := spans[p]
			// Buckets hold a few ids: a loop beats copy's call.
			for _, id := range chunks[sp.c][sp.s:sp.e] {
				cands[c] = id
				hashAddrs[c] = addr(&lo[id>>pageBits][id&(pageSize-1)])
				c++
			}
		}
		first = end
		s.cends = append(s.cends, c)
	}
	first = 0
	prefetch(hashAddrs[:min(prefetchDistance, len(hashAddrs))])
	for i, end := range s.cends {
		qi, t := i/m, i%m
		q := &qs[qi]
		out := dst[qi]
		for c := first; c < end; c++ {
			if c%prefetchStep == 0 {
				prefetchAhead(hashAddrs, c+prefetchDistance)
			}
			id := cands[c]
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
			if h := [4]uint64{a[0], a[1], b[0], b[1]}; foundBefore(lay, s, s.keys[qi*m:qi*m+m], t, &h) {
				continue
			}
			out = append(out, Match{id, d})
		}
		dst[qi] = out
		first = end
	}
}

// foundBefore reports whether a table before t also finds h, for a query whose keys are keys.
func foundBefore(lay *layout, s *scratch, keys []uint32, t int, h *[4]uint64) bool {
	for u := range t {
		tb := &lay.tabs[u]
		if rt := s.radius[u]; rt >= 0 && bits.OnesCount32(tb.key(h)^keys[u]) <= rt {
			return true
		}
	}
	return false
}
