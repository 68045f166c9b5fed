package pdq

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// HashSize is the length of a PDQ hash in bytes (256 bits).
const HashSize = 32

// Hash is a 256-bit PDQ hash. Its bytes are those of the 64-character hexadecimal form in order:
// the reference stores the hash as sixteen 16-bit words w[0..15] and prints w[15] first, so
// Hash[0] is the high byte of w[15] and Hash[31] the low byte of w[0]. DCT coefficient (i, j)
// (row i, column j, both 0..15) is bit k = 16i+j, which is bit k&15 of word w[k>>4].
//
// The zero Hash is what images too small to hash (under 5 pixels on a side) give.
type Hash [HashSize]byte

// setBit sets bit k (0..255, in the reference's numbering).
func (h *Hash) setBit(k int) {
	h[byteOf(k)] |= 1 << (k & 7)
}

// byteOf gives the index in a Hash of the byte that holds bit k: word w[k>>4] is bytes
// 2*(15-(k>>4)) (high) and 2*(15-(k>>4))+1 (low).
func byteOf(k int) int {
	b := 2 * (15 - k>>4)
	if k&15 < 8 {
		b++
	}
	return b
}

const hexDigits = "0123456789abcdef"

// String returns the hash as 64 lowercase hexadecimal characters, the form every PDQ
// implementation reads and writes.
func (h Hash) String() string {
	var buf [2 * HashSize]byte
	for i, b := range h {
		buf[2*i] = hexDigits[b>>4]
		buf[2*i+1] = hexDigits[b&15]
	}
	return string(buf[:])
}

// MarshalText implements [encoding.TextMarshaler] with the form of [Hash.String].
func (h Hash) MarshalText() ([]byte, error) {
	return []byte(h.String()), nil
}

// UnmarshalText implements [encoding.TextUnmarshaler] with the rules of [ParseHash].
func (h *Hash) UnmarshalText(text []byte) error {
	p, err := parseHash(text)
	if err != nil {
		return err
	}
	*h = p
	return nil
}

// ParseHash parses 64 hexadecimal characters (either case) into a Hash. The error wraps
// [ErrInvalidHash] and names the problem: the length, or the first character that is not a
// hexadecimal digit and its position (0-based).
func ParseHash(s string) (Hash, error) {
	return parseHash([]byte(s))
}

func parseHash(s []byte) (Hash, error) {
	var h Hash
	if len(s) != 2*HashSize {
		return h, fmt.Errorf("%w: got %d characters, want %d", ErrInvalidHash, len(s), 2*HashSize)
	}
	for i := 0; i < len(s); i += 2 {
		hi, ok := unhex(s[i])
		if !ok {
			return Hash{}, fmt.Errorf("%w: character %q at position %d is not a hexadecimal digit", ErrInvalidHash, rune(s[i]), i)
		}
		lo, ok := unhex(s[i+1])
		if !ok {
			return Hash{}, fmt.Errorf("%w: character %q at position %d is not a hexadecimal digit", ErrInvalidHash, rune(s[i+1]), i+1)
		}
		h[i/2] = hi<<4 | lo
	}
	return h, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// Distance returns the Hamming distance between two hashes: the number of bits in which they
// differ, 0 to 256. The consortium's usual match threshold is 31.
func Distance(a, b Hash) int {
	d := 0
	for i := 0; i < HashSize; i += 8 {
		d += bits.OnesCount64(binary.LittleEndian.Uint64(a[i:]) ^ binary.LittleEndian.Uint64(b[i:]))
	}
	return d
}

// Orientation names one of the eight dihedral transformations of an image (the rotations and
// reflections of a square), in the order the reference computes their hashes.
type Orientation int

// The eight orientations, indexes into [Dihedral].
const (
	Original   Orientation = iota // the image as stored
	Rotate90                      // rotated 90° anticlockwise
	Rotate180                     // rotated 180°
	Rotate270                     // rotated 270° anticlockwise (90° clockwise)
	FlipX                         // mirrored top to bottom (about the horizontal axis)
	FlipY                         // mirrored left to right (about the vertical axis)
	FlipPlus1                     // transposed (mirrored about the main diagonal)
	FlipMinus1                    // mirrored about the anti-diagonal
)

var orientationNames = [...]string{"original", "rotate90", "rotate180", "rotate270", "flipx", "flipy", "flipplus1", "flipminus1"}

// String returns the reference's name for the orientation ("original", "rotate90", …,
// "flipminus1").
func (o Orientation) String() string {
	if o < 0 || int(o) >= len(orientationNames) {
		return fmt.Sprintf("Orientation(%d)", int(o))
	}
	return orientationNames[o]
}

// Dihedral holds the hashes of an image in all eight orientations, indexed by [Orientation].
// Dihedral[Original] equals the hash [HashImage] gives, except possibly for images of exactly
// 64×64 pixels (see [HashImageDihedral]).
type Dihedral [8]Hash
