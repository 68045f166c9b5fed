package pdqindex

import (
	"fmt"
	"math"
	"sync"
)

// A spec is a substring layout: m disjoint substrings laid end to end from hash bit 0, the first nlong of
// long bits and the rest of short bits. m == 0 means no tables: every search scans.
type spec struct{ m, nlong, long, short int }

// uniform returns the spec of m substrings of b bits.
func uniform(m, b int) spec { return spec{m: m, short: b, long: b} }

// String describes s, e.g. "4x19+10x18 bits", "11x23 bits" or "no tables".
func (s spec) String() string {
	switch {
	case s.m == 0:
		return "no tables"
	case s.nlong == 0 || s.long == s.short:
		return fmt.Sprintf("%dx%d bits", s.m, s.short)
	case s.nlong == s.m:
		return fmt.Sprintf("%dx%d bits", s.m, s.long)
	}
	return fmt.Sprintf("%dx%d+%dx%d bits", s.nlong, s.long, s.m-s.nlong, s.short)
}

// bits returns the length of substring t.
func (s spec) bits(t int) int {
	if t < s.nlong {
		return s.long
	}
	return s.short
}

// A layout is a spec with its tables, and for each search radius the radius each table is searched at.
type layout struct {
	spec
	tabs  []table
	masks [2][]uint32 // every short (0) and long (1) mask of weight <= cachedWeight, by weight
	// radii[r][t] is the radius table t is searched at for a search of radius r (-1: not searched), and
	// cost[r] the expected number of random reads of that search (+Inf: the tables cannot answer it).
	radii [maxTableRadius + 1][]int8
	cost  [maxTableRadius + 1]float64
}

const (
	// maxBits is the longest substring: 2^26 buckets, for indexes of about 64M hashes.
	maxBits = 26
	// minTableSize is the smallest target size that gets tables; below it a scan is about as fast.
	minTableSize = 4096
	// budgetBytes is what a layout may cost per hash at the low end of its size range, hash storage
	// included (see bytesPerHash).
	budgetBytes = 100
	// cachedWeight is the largest mask weight kept in layout.masks.
	cachedWeight = 3
	// maxTableRadius is the largest search radius the tables answer; larger ones scan.
	maxTableRadius = 63
	// idSlack is the memory model's allowance for the arenas' spare room and dead entries: about 1% after a
	// bulk load, up to about 10% once adds have moved blocks (see arena).
	idSlack = 1.10
	// maxLoad is the most ids per bucket a table is laid out for, at the top of its size range: a
	// 60-bucket group then holds 180 ids on average, and the 255 a narrow group can hold is 5.6 standard
	// deviations away.
	maxLoad = 3
)

// newLayout returns s's layout with empty tables, its radius allocation tuned for n hashes.
func newLayout(s spec, n int) *layout {
	l := &layout{spec: s}
	// The tables' records are one allocation, so that they fill whole huge pages even when each is smaller.
	size := 0
	for t := range s.m {
		size += recBytes(s.bits(t))
	}
	recs, mem := hugeSlice[byte](size)
	start := 0
	for t := range s.m {
		b := s.bits(t)
		l.tabs = append(l.tabs, newTable(start, b, n, recs, mem))
		recs = recs[recBytes(b):]
		start += b
	}
	if s.m == 0 {
		for r := range l.cost {
			l.cost[r] = math.Inf(1)
		}
		return l
	}
	l.masks[0] = appendMasks(nil, s.short, cachedWeight)
	l.masks[1] = appendMasks(nil, s.long, cachedWeight)
	for r := range l.radii {
		l.radii[r], l.cost[r] = s.allocate(r, float64(max(n, 1)))
	}
	return l
}

// tableCost is the expected number of random reads of searching a table of b-bit substrings over n
// hashes at radius r: two per bucket read (its record, then its ids) and one per candidate (its hash; n/2^b
// candidates per bucket). Weighing bucket reads double matches the ranking of layouts measured on the
// benchmark corpus at 1M and 10M hashes (docs/BENCHMARKS.md, "PDQ matching").
func tableCost(b, r int, n float64) float64 {
	return volume(b, r) * (2 + n/math.Exp2(float64(b)))
}

// allocate returns the radius to search each table at for a search of radius r over n hashes, and the
// expected cost: the cheapest radii r_t (-1 meaning "skip the table") with sum(r_t+1) = r+1. That sum is
// what makes the search exact: a hash within r of the query differs from it in at most r bits in all,
// so in at most r_t bits of some substring t, or else it would differ in at least sum(r_t+1) = r+1.
// (Norouzi, Punjani and Fleet's refined pigeonhole is the case of equal substrings.) It returns nil and
// +Inf when the substrings cannot answer radius r (r+1 > sum(b_t+1)).
func (s spec) allocate(r int, n float64) ([]int8, float64) {
	need := r + 1
	inf := math.Inf(1)
	// cost[i][c] is the cost of searching a table of the short (i=0) or long (i=1) length at radius c-1.
	var cost [2][]float64
	for i, b := range [2]int{s.short, s.long} {
		cost[i] = make([]float64, min(need, b+1)+1)
		for c := 1; c < len(cost[i]); c++ {
			cost[i][c] = tableCost(b, c-1, n)
		}
	}
	// best[t][k] is the cheapest cost of tables t.. with sum(r_u+1) = k over them, pick[t][k] its r_t+1.
	best := make([][]float64, s.m+1)
	pick := make([][]int8, s.m)
	best[s.m] = make([]float64, need+1)
	for k := 1; k <= need; k++ {
		best[s.m][k] = inf
	}
	for t := s.m - 1; t >= 0; t-- {
		ct := cost[0]
		if t < s.nlong {
			ct = cost[1]
		}
		best[t] = make([]float64, need+1)
		pick[t] = make([]int8, need+1)
		next := best[t+1]
		for k := range need + 1 {
			best[t][k] = inf
			for c := 0; c < len(ct) && c <= k; c++ {
				if v := next[k-c] + ct[c]; v < best[t][k] {
					best[t][k], pick[t][k] = v, int8(c)
				}
			}
		}
	}
	if math.IsInf(best[0][need], 1) {
		return nil, inf
	}
	radii := make([]int8, s.m)
	for t, k := 0, need; t < s.m; t++ {
		radii[t] = pick[t][k] - 1
		k -= int(pick[t][k])
	}
	return radii, best[0][need]
}

// volume returns the number of b-bit masks of weight at most r.
func volume(b, r int) float64 {
	if r < 0 {
		return 0
	}
	v, c := 0.0, 1.0
	for w := 0; w <= min(r, b); w++ {
		v += c
		c = c * float64(b-w) / float64(w+1)
	}
	return v
}

// bytesPerHash is the memory model of a layout holding n hashes: 32 bytes of hash, and per table 4 bytes of
// id (times idSlack) and per bucket 64/60 bytes of record and 16/240 bytes of block location (which only
// writers read).
func (s spec) bytesPerHash(n float64) float64 {
	perBucket := float64(recSize)/groupBuckets + 16.0/blockBuckets
	v := 32.0
	for t := range s.m {
		v += 4*idSlack + perBucket*math.Exp2(float64(s.bits(t)))/n
	}
	return v
}

// level returns the size level of n: round(2*log2(n)), so levels are half an octave apart.
func level(n int) int {
	if n < 1 {
		return 0
	}
	return int(math.Round(2 * math.Log2(float64(n))))
}

// levelSize returns the target size of level l, 2^(l/2).
func levelSize(l int) int { return int(math.Exp2(float64(l) / 2)) }

var specCache sync.Map // [2]int{level, radius} -> spec

// chooseSpec returns the layout for level l tuned for searches of radius r: the cheapest (by allocate's
// cost at the level's size n) of the layouts with substrings of one or two lengths (differing by at most 2
// bits, the shorter within a few bits of log2(n)), using at most 256 bits, whose memory at the low end of
// the level's range (a factor sqrt 2 down) stays within budgetBytes and whose load at the top of the range
// (a factor sqrt 2 up) stays within maxLoad.
func chooseSpec(l, r int) spec {
	if v, ok := specCache.Load([2]int{l, r}); ok {
		return v.(spec)
	}
	n := levelSize(l)
	best, bestCost := spec{}, math.Inf(1)
	if n >= minTableSize {
		low, high := float64(n)/math.Sqrt2, float64(n)*math.Sqrt2
		lg := int(math.Log2(float64(n)))
		for m := 1; float64(m)*4*idSlack+32 <= budgetBytes; m++ {
			for short := max(1, lg-4); short <= min(maxBits, 256/m, lg+1); short++ {
				if high/math.Exp2(float64(short)) > maxLoad {
					continue
				}
				for long := short; long <= min(maxBits, short+2); long++ {
					for nlong := 0; nlong <= m; nlong++ {
						if long == short && nlong > 0 {
							break
						}
						s := spec{m, nlong, long, short}
						if nlong*long+(m-nlong)*short > 256 || s.bytesPerHash(low) > budgetBytes {
							continue
						}
						if _, c := s.allocate(r, float64(n)); c < bestCost {
							best, bestCost = s, c
						}
					}
				}
			}
		}
	}
	specCache.Store([2]int{l, r}, best)
	return best
}

// appendMasks appends every b-bit mask of weight at most r to dst, by increasing weight.
func appendMasks(dst []uint32, b, r int) []uint32 {
	for w := 0; w <= min(r, b); w++ {
		if w == 0 {
			dst = append(dst, 0)
			continue
		}
		// Gosper's hack: the next larger integer with the same number of set bits.
		for v := uint64(1)<<w - 1; v < 1<<b; {
			dst = append(dst, uint32(v))
			c := v & -v
			n := v + c
			v = ((n^v)>>2)/c | n
		}
	}
	return dst
}
