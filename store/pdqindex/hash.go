package pdqindex

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
)

// Hash is a 256-bit PDQ hash: the 32 bytes of its 64-digit hex form, in order.
type Hash [32]byte

// ErrBadHash is returned by [ParseHash] for text that is not 64 hex digits.
var ErrBadHash = errors.New("pdqindex: a PDQ hash is 64 hex digits")

// ParseHash parses the 64-hex-digit form of a PDQ hash (either case).
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 2*len(h) {
		return h, fmt.Errorf("%w: got %d characters", ErrBadHash, len(s))
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return Hash{}, fmt.Errorf("%w: %v", ErrBadHash, err)
	}
	return h, nil
}

// String returns the hash as 64 lowercase hex digits.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// Distance returns the Hamming distance between two hashes: the number of bits in which they differ.
func Distance(a, b Hash) int {
	d := 0
	for i := 0; i < len(a); i += 8 {
		d += bits.OnesCount64(binary.LittleEndian.Uint64(a[i:]) ^ binary.LittleEndian.Uint64(b[i:]))
	}
	return d
}

// words returns h as four little-endian uint64 words: bit i of the hash (as the index numbers bits) is
// bit i%64 of word i/64, and byte j of h is the (j%8)-th lowest byte of word j/8.
func words(h *Hash) [4]uint64 {
	return [4]uint64{
		binary.LittleEndian.Uint64(h[0:8]),
		binary.LittleEndian.Uint64(h[8:16]),
		binary.LittleEndian.Uint64(h[16:24]),
		binary.LittleEndian.Uint64(h[24:32]),
	}
}
