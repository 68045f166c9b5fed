package pdqindex

import (
	"errors"
	"math/bits"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestDistance(t *testing.T) {
	var zero, ones Hash
	for i := range ones {
		ones[i] = 0xff
	}
	oneBit := Hash{31: 1}
	highBit := Hash{0: 0x80}
	tests := []struct {
		name string
		a, b Hash
		want int
	}{
		{"equal", zero, zero, 0},
		{"all bits", zero, ones, 256},
		{"last bit", zero, oneBit, 1},
		{"first bit", zero, highBit, 1},
		{"two bits", oneBit, highBit, 2},
	}
	for _, tc := range tests {
		if got := Distance(tc.a, tc.b); got != tc.want {
			t.Errorf("%s: Distance = %d, want %d", tc.name, got, tc.want)
		}
		if got := Distance(tc.b, tc.a); got != tc.want {
			t.Errorf("%s: Distance reversed = %d, want %d", tc.name, got, tc.want)
		}
	}
	// The word form the index computes with agrees with Distance.
	r := rand.New(rand.NewPCG(12, 12))
	for range 100 {
		a, b := randHash(r), randHash(r)
		wa, wb := words(&a), words(&b)
		if got, want := dist(&wa, &wb), Distance(a, b); got != want {
			t.Fatalf("dist of words = %d, want Distance %d", got, want)
		}
	}
}

func TestParseHash(t *testing.T) {
	const s = "a6685f3b62d57bfc4935263140bae87fcd48088975c238c1c8455fa2c716659d"
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"lowercase", s, true},
		{"uppercase", strings.ToUpper(s), true},
		{"short", s[:63], false},
		{"long", s + "0", false},
		{"not hex", "g" + s[1:], false},
		{"empty", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := ParseHash(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("ParseHash(%q): got error %v, want ok=%v", tc.in, err, tc.ok)
			}
			if err != nil {
				if !errors.Is(err, ErrBadHash) {
					t.Errorf("got error %v, want one wrapping ErrBadHash", err)
				}
				return
			}
			if got := h.String(); got != s {
				t.Errorf("String: got %s, want %s", got, s)
			}
			if h[0] != 0xa6 || h[31] != 0x9d {
				t.Errorf("bytes: got %x...%x, want a6...9d", h[0], h[31])
			}
		})
	}
}

// dist is the Hamming distance of two hashes held as words.
func dist(a, b *[4]uint64) int {
	return bits.OnesCount64(a[0]^b[0]) + bits.OnesCount64(a[1]^b[1]) +
		bits.OnesCount64(a[2]^b[2]) + bits.OnesCount64(a[3]^b[3])
}

func FuzzParseHash(f *testing.F) {
	f.Add("a6685f3b62d57bfc4935263140bae87fcd48088975c238c1c8455fa2c716659d")
	f.Add("")
	f.Add("zz")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseHash(s)
		if err != nil {
			return
		}
		if got := h.String(); !strings.EqualFold(got, s) {
			t.Fatalf("ParseHash(%q).String() = %q, want the same digits", s, got)
		}
	})
}
