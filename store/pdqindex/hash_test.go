package pdqindex

import (
	"math/bits"
	"math/rand/v2"
	"testing"

	"github.com/hashfed/hashfed/consortium/pdq"
)

// TestWordsDistance checks that the word form the index computes with gives pdq.Distance.
func TestWordsDistance(t *testing.T) {
	var ones Hash
	for i := range ones {
		ones[i] = 0xff
	}
	pairs := [][2]Hash{{{}, {}}, {{}, ones}, {{}, {31: 1}}, {{}, {0: 0x80}}, {{31: 1}, {0: 0x80}}}
	r := rand.New(rand.NewPCG(12, 12))
	for range 100 {
		pairs = append(pairs, [2]Hash{randHash(r), randHash(r)})
	}
	for _, p := range pairs {
		wa, wb := words(&p[0]), words(&p[1])
		if got, want := dist(&wa, &wb), pdq.Distance(p[0], p[1]); got != want {
			t.Fatalf("dist of words of %s and %s: got %d, want pdq.Distance %d", p[0], p[1], got, want)
		}
	}
}

// dist is the Hamming distance of two hashes held as words.
func dist(a, b *[4]uint64) int {
	return bits.OnesCount64(a[0]^b[0]) + bits.OnesCount64(a[1]^b[1]) +
		bits.OnesCount64(a[2]^b[2]) + bits.OnesCount64(a[3]^b[3])
}
