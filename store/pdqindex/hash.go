package pdqindex

import (
	"encoding/binary"

	"github.com/hashfed/hashfed/consortium/pdq"
)

// Hash is a 256-bit PDQ hash: [pdq.Hash], the one hash type of hashfed, whose ParseHash, String
// and Distance the index's callers use. The index computes distances on the words of [words].
type Hash = pdq.Hash

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
