package pdqindex

import "math"

// A spec is a substring layout: m disjoint substrings of b bits, substring t covering hash bits
// [t*b, (t+1)*b). m == 0 means no tables: every search scans.
type spec struct{ m, b int }

// A layout is a spec with its tables.
type layout struct {
	spec
	tabs  []table
	masks []uint32 // every b-bit mask of weight <= 3, by weight; masks[:volume(b, r)] are those of weight <= r
}

const (
	// maxBits is the longest substring: 2^24 buckets per table, for indexes of about 16M hashes.
	maxBits = 24
	// minTableSize is the smallest target size that gets tables; below it a scan is as fast.
	minTableSize = 4096
	// budgetBytes is what the layout may cost per hash at the low end of its size range, hash storage
	// included (see bytesPerHash).
	budgetBytes = 100
	// cachedWeight is the largest mask weight kept in layout.masks.
	cachedWeight = 3
)

func newLayout(s spec) *layout {
	l := &layout{spec: s}
	if s.m == 0 {
		return l
	}
	l.tabs = make([]table, s.m)
	for t := range l.tabs {
		l.tabs[t] = newTable(t*s.b, s.b)
	}
	l.masks = appendMasks(nil, s.b, cachedWeight)
	return l
}

// tableRadius returns the radius table t is searched at for a search of radius r: with r = m*r' + a, the
// first a+1 tables at r' and the rest at r'-1 (Norouzi, Punjani and Fleet's refined pigeonhole: a hash
// within r of the query agrees within that radius on at least one of them). -1 means "skip the table".
func tableRadius(m, t, r int) int {
	rp, a := r/m, r%m
	if t > a {
		return rp - 1
	}
	return rp
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

// probes returns how many buckets a search of radius r reads in layout s.
func (s spec) probes(r int) float64 {
	p := 0.0
	for t := range s.m {
		p += volume(s.b, tableRadius(s.m, t, r))
	}
	return p
}

// cost returns the expected number of random memory reads of a search of radius r over n uniformly
// distributed hashes: one per bucket read and one per candidate (n/2^b per bucket). Measured on the
// benchmark corpus (docs/BENCHMARKS-match.md), the two cost about the same.
func (s spec) cost(n, r int) float64 {
	p := s.probes(r)
	return p + p*float64(n)/math.Exp2(float64(s.b))
}

// bytesPerHash is the memory model of a layout holding n hashes: 32 bytes of hash, and per table 4 bytes
// of id (plus 8% for block slack and allocation rounding) and 64/62 + 24/248 bytes per bucket of records
// and block headers.
func (s spec) bytesPerHash(n float64) float64 {
	perBucket := float64(recSize)/groupBuckets + 24.0/blockBuckets
	return 32 + float64(s.m)*(4*1.08+perBucket*math.Exp2(float64(s.b))/n)
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

// chooseSpec returns the layout for level l tuned for searches of radius r: the one with the lowest cost
// at the level's size whose memory at the low end of the level's range (a factor sqrt 2 down) stays
// within budgetBytes.
func chooseSpec(l, r int) spec {
	n := levelSize(l)
	if n < minTableSize {
		return spec{}
	}
	low := float64(n) / math.Sqrt2
	best, bestCost := spec{}, math.Inf(1)
	for m := 1; m <= 32; m++ {
		for b := 1; b <= maxBits && m*b <= 256; b++ {
			s := spec{m, b}
			if s.bytesPerHash(low) > budgetBytes {
				continue
			}
			if c := s.cost(n, r); c < bestCost {
				best, bestCost = s, c
			}
		}
	}
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
