// Package corpus builds the deterministic PDQ benchmark corpus that hashfed and the faiss anchor
// (shared/anchors/faiss_pdq_bench.py) are both timed on, bit for bit.
//
// For a seed s, hash i is SHA-256 of the ASCII text "s:i", read as the 32 bytes of a PDQ hash. Query j
// starts from hash k, where k is the first 8 bytes of SHA-256("s:q:j") as a big-endian integer mod n,
// and flips `flip` distinct bit positions taken in order from the bytes of SHA-256("s:f:j"), skipping
// repeats and continuing with SHA-256 of the previous digest when more are needed; position p is bit
// 0x80>>(p%8) of byte p/8. Hash k is the query's planted match.
//
// The package only generates data: it must not be used for anything but benchmarks and tests.
package corpus

import (
	"crypto/sha256"
	"encoding/binary"
	"strconv"
)

// MaxFlip is the largest number of distinct bit positions a query can flip (a PDQ hash has 256 bits).
const MaxFlip = 256

// Hash returns hash i of the corpus with the given seed: SHA-256 of "seed:i".
func Hash(seed, i int) [32]byte {
	var buf [48]byte
	b := strconv.AppendInt(buf[:0], int64(seed), 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, int64(i), 10)
	return sha256.Sum256(b)
}

// Fill writes hashes first, first+1, ... of the corpus with the given seed into dst.
func Fill(seed, first int, dst [][32]byte) {
	for k := range dst {
		dst[k] = Hash(seed, first+k)
	}
}

// Planted returns k, the index of the corpus hash that query j starts from, in a corpus of n hashes:
// the first 8 bytes of SHA-256("seed:q:j") as a big-endian integer, mod n. It returns -1 when n < 1.
func Planted(seed, n, j int) int {
	if n < 1 {
		return -1
	}
	d := sha256.Sum256(label(seed, "q", j))
	return int(binary.BigEndian.Uint64(d[:8]) % uint64(n))
}

// Flips returns the flip distinct bit positions (0..255) that query j flips, in order: the bytes of
// SHA-256("seed:f:j"), then of SHA-256 of that digest, and so on, skipping positions already taken.
// flip is clamped to [0, MaxFlip].
func Flips(seed, j, flip int) []int {
	flip = min(max(flip, 0), MaxFlip)
	out := make([]int, 0, flip)
	var seen [MaxFlip]bool
	d := sha256.Sum256(label(seed, "f", j))
	for len(out) < flip {
		for _, p := range d {
			if !seen[p] {
				seen[p] = true
				out = append(out, int(p))
				if len(out) == flip {
					break
				}
			}
		}
		d = sha256.Sum256(d[:])
	}
	return out
}

// Query returns query j of a corpus of n hashes with the given seed and the index of its planted match:
// hash Planted(seed, n, j) with the bit positions Flips(seed, j, flip) flipped. It returns a zero hash
// and -1 when n < 1.
func Query(seed, n, j, flip int) (q [32]byte, planted int) {
	k := Planted(seed, n, j)
	if k < 0 {
		return q, -1
	}
	q = Hash(seed, k)
	for _, p := range Flips(seed, j, flip) {
		q[p/8] ^= 0x80 >> (p % 8)
	}
	return q, k
}

func label(seed int, kind string, j int) []byte {
	b := strconv.AppendInt(make([]byte, 0, 48), int64(seed), 10)
	b = append(b, ':')
	b = append(b, kind...)
	b = append(b, ':')
	return strconv.AppendInt(b, int64(j), 10)
}
