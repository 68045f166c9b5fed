package pdqindex

import (
	"math"
	"math/bits"
	"testing"
)

func TestAllocate(t *testing.T) {
	specs := []spec{uniform(1, 8), uniform(4, 6), uniform(11, 23), uniform(16, 16), {5, 2, 9, 7}, {11, 3, 24, 23}, {13, 0, 19, 19}}
	for _, s := range specs {
		total := 0
		for i := range s.m {
			total += s.bits(i)
		}
		for r := 0; r <= maxTableRadius; r++ {
			radii, cost := s.allocate(r, 1e6)
			if r+1 > total+s.m {
				if radii != nil || !math.IsInf(cost, 1) {
					t.Errorf("%v radius %d: got %v, want no allocation (only %d bits)", s, r, radii, total)
				}
				continue
			}
			sum := 0
			for i, rt := range radii {
				if int(rt) < -1 || int(rt) > s.bits(i) {
					t.Fatalf("%v radius %d: table %d radius %d out of range", s, r, i, rt)
				}
				sum += int(rt) + 1
			}
			if sum != r+1 {
				t.Errorf("%v radius %d: got sum(r_t+1) = %d, want %d (radii %v)", s, r, sum, r+1, radii)
			}
		}
	}
	// For equal substrings the cheapest allocation is the refined pigeonhole: r = m*r' + a gives a+1
	// tables r' and the rest r'-1.
	s := uniform(11, 23)
	radii, _ := s.allocate(31, 1e7)
	count := map[int8]int{}
	for _, rt := range radii {
		count[rt]++
	}
	if count[2] != 10 || count[1] != 1 {
		t.Errorf("11x23 at radius 31: got radii %v, want ten 2s and one 1", radii)
	}
}

func TestAppendMasks(t *testing.T) {
	for _, b := range []int{1, 3, 8, 19} {
		for r := 0; r <= 4; r++ {
			ms := appendMasks(nil, b, r)
			if got, want := len(ms), int(volume(b, r)); got != want {
				t.Errorf("b=%d r=%d: got %d masks, want %d", b, r, got, want)
			}
			seen := map[uint32]bool{}
			prev := 0
			for _, m := range ms {
				w := bits.OnesCount32(m)
				if seen[m] || w > r || m >= 1<<b || w < prev {
					t.Fatalf("b=%d r=%d: mask %b is repeated, too heavy, too wide or out of order", b, r, m)
				}
				seen[m], prev = true, w
			}
		}
	}
}

func TestChooseSpec(t *testing.T) {
	for l := 0; l <= 52; l++ {
		n := levelSize(l)
		s := chooseSpec(l, DefaultRadius)
		if n < minTableSize {
			if s.m != 0 {
				t.Errorf("level %d (%d hashes): got %v, want no tables", l, n, s)
			}
			continue
		}
		if s.m == 0 {
			t.Fatalf("level %d (%d hashes): got no tables, want some", l, n)
		}
		used := s.nlong*s.long + (s.m-s.nlong)*s.short
		if used > 256 {
			t.Errorf("level %d: %v uses %d bits, want at most 256", l, s, used)
		}
		if got := s.bytesPerHash(float64(n) / math.Sqrt2); got > budgetBytes {
			t.Errorf("level %d: %v costs %.1f bytes per hash at the low end, want at most %d", l, s, got, budgetBytes)
		}
		if lay := newLayout(s, n); math.IsInf(lay.cost[DefaultRadius], 1) {
			t.Errorf("level %d: %v cannot answer radius %d", l, s, DefaultRadius)
		}
	}
}
