package consortium

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/bits"
	"strings"

	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// SignalType is a kind of shareable hash. Its wire name (String) is spelled as python-threatexchange
// spells it.
type SignalType uint8

// The signal types of protocol version 1. The list is open: a new type gets a new constant, a wire
// name and a value size of at most 32 bytes.
const (
	// PDQ is Meta's 256-bit perceptual image hash, matched by Hamming distance.
	PDQ SignalType = 1 + iota
	// MD5 is the MD5 digest of a file's bytes, matched exactly.
	MD5
	// SHA256 is the SHA-256 digest of a file's bytes, matched exactly.
	SHA256
	// URL is a URL, stored as the SHA-256 of its canonical form so that the set leaks no URLs;
	// matched exactly.
	URL
	// VPDQ is one part of a video's vPDQ hash: the value is the SHA-256 of the part's frame records,
	// which the add carries (see video.go); matched frame by frame.
	VPDQ
)

var signalTypes = [...]struct {
	name string
	size int
}{
	PDQ:    {"pdq", 32},
	MD5:    {"md5", 16},
	SHA256: {"sha256", 32},
	URL:    {"url", 32},
	VPDQ:   {"vpdq", 32},
}

// SignalTypes lists every known signal type.
func SignalTypes() []SignalType { return []SignalType{PDQ, MD5, SHA256, URL, VPDQ} }

// String returns the wire name of the type.
func (t SignalType) String() string {
	if t.Known() {
		return signalTypes[t].name
	}
	return fmt.Sprintf("signaltype(%d)", uint8(t))
}

// Known reports whether t is a signal type of this version.
func (t SignalType) Known() bool { return t > 0 && int(t) < len(signalTypes) }

// Size returns the length of the type's canonical binary value.
func (t SignalType) Size() int {
	if !t.Known() {
		return 0
	}
	return signalTypes[t].size
}

// ParseSignalType returns the type with the given wire name.
func ParseSignalType(name string) (SignalType, error) {
	for t := PDQ; t.Known(); t++ {
		if signalTypes[t].name == name {
			return t, nil
		}
	}
	return 0, fmt.Errorf("%w: %q (known: pdq, md5, sha256, url, vpdq)", ErrUnknownSignalType, truncate(name, 40))
}

// Signal is one shareable hash in canonical binary form. It is comparable, so it serves as a map key.
type Signal struct {
	Type SignalType
	// Value holds the canonical value in its first Type.Size() bytes; the rest are zero.
	Value [32]byte
}

// Bytes returns the canonical binary value.
func (s Signal) Bytes() []byte { return s.Value[:s.Type.Size()] }

// Text returns the value as users write it: lowercase hex, or "sha256:<hex>" for a URL (the URL itself
// is not kept).
func (s Signal) Text() string {
	h := hex.EncodeToString(s.Bytes())
	if s.Type == URL {
		return "sha256:" + h
	}
	return h
}

// String returns "<type> <text>", the line format of python-threatexchange's local_file.
func (s Signal) String() string { return s.Type.String() + " " + s.Text() }

// Proto returns the wire form.
func (s Signal) Proto() *pb.Signal {
	return &pb.Signal{Type: s.Type.String(), Value: append([]byte(nil), s.Bytes()...)}
}

// SignalFromBytes makes a signal from a type and its canonical binary value.
func SignalFromBytes(t SignalType, value []byte) (Signal, error) {
	if !t.Known() {
		return Signal{}, fmt.Errorf("%w: %v", ErrUnknownSignalType, t)
	}
	if len(value) != t.Size() {
		return Signal{}, fmt.Errorf("%w: %s value is %d bytes, want %d", ErrInvalidSignal, t, len(value), t.Size())
	}
	s := Signal{Type: t}
	copy(s.Value[:], value)
	if t == PDQ && isDegeneratePDQ(s.Value) {
		return Signal{}, fmt.Errorf("%w: pdq hash has %d bits set; a real PDQ hash sets about half its 256 bits (an all-zero hash comes from an image too small to hash)", ErrInvalidSignal, pdqOnes(s.Value))
	}
	return s, nil
}

// SignalFromProto validates and converts a wire signal.
func SignalFromProto(p *pb.Signal) (Signal, error) {
	if p == nil {
		return Signal{}, fmt.Errorf("%w: signal missing", ErrInvalidSignal)
	}
	t, err := ParseSignalType(p.Type)
	if err != nil {
		return Signal{}, err
	}
	return SignalFromBytes(t, p.Value)
}

// ParseSignal parses a signal from its type name and the value as a user writes it, and
// canonicalizes it: hex digits of either case for pdq, md5 and sha256; for url, a URL (canonicalized
// by [CanonicalURL] and hashed) or "sha256:<64 hex>" for an already hashed one.
func ParseSignal(typeName, text string) (Signal, error) {
	t, err := ParseSignalType(strings.ToLower(strings.TrimSpace(typeName)))
	if err != nil {
		return Signal{}, err
	}
	text = strings.TrimSpace(text)
	if t == URL {
		if h, ok := strings.CutPrefix(text, "sha256:"); ok {
			b, err := parseHex(t, h, 32)
			if err != nil {
				return Signal{}, err
			}
			return SignalFromBytes(t, b)
		}
		c, err := CanonicalURL(text)
		if err != nil {
			return Signal{}, err
		}
		sum := sha256.Sum256([]byte(c))
		return SignalFromBytes(t, sum[:])
	}
	b, err := parseHex(t, text, t.Size())
	if err != nil {
		return Signal{}, err
	}
	return SignalFromBytes(t, b)
}

// parseHex decodes exactly n bytes of hex digits, naming the first problem it finds.
func parseHex(t SignalType, s string, n int) ([]byte, error) {
	if len(s) != 2*n {
		return nil, fmt.Errorf("%w: %s value %q has %d characters, want %d hex digits", ErrInvalidSignal, t, truncate(s, 80), len(s), 2*n)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return nil, fmt.Errorf("%w: %s value has %q at position %d, want a hex digit", ErrInvalidSignal, t, c, i)
		}
	}
	b, _ := hex.DecodeString(s)
	return b, nil
}

// pdqOnes counts the bits set in a PDQ hash.
func pdqOnes(v [32]byte) int {
	return bits.OnesCount64(binary.LittleEndian.Uint64(v[0:])) + bits.OnesCount64(binary.LittleEndian.Uint64(v[8:])) +
		bits.OnesCount64(binary.LittleEndian.Uint64(v[16:])) + bits.OnesCount64(binary.LittleEndian.Uint64(v[24:]))
}

// isDegeneratePDQ reports hashes no PDQ hasher produces from a real image: PDQ thresholds at the
// median of 256 coefficients, so a hash sets close to 128 bits; all-zero (too small an image) and
// near-constant hashes would match each other and nothing meaningful.
func isDegeneratePDQ(v [32]byte) bool {
	n := pdqOnes(v)
	return n < 32 || n > 224
}
