package pdq

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestHashBitLayout(t *testing.T) {
	// Bit k is bit k&15 of word w[k>>4], and the hex prints w[15] first, 4 digits a word.
	tests := []struct {
		bit  int
		want string
	}{
		{0, strings.Repeat("0", 63) + "1"},
		{3, strings.Repeat("0", 63) + "8"},
		{7, strings.Repeat("0", 62) + "80"},
		{8, strings.Repeat("0", 61) + "100"},
		{15, strings.Repeat("0", 60) + "8000"},
		{16, strings.Repeat("0", 59) + "10000"},
		{16*14 + 5, "0000" + "0020" + strings.Repeat("0", 56)},
		{255, "8" + strings.Repeat("0", 63)},
	}
	for _, tc := range tests {
		var h Hash
		h.setBit(tc.bit)
		if got := h.String(); got != tc.want {
			t.Errorf("bit %d: got %s, want %s", tc.bit, got, tc.want)
		}
		for k := range 256 {
			if got, want := h[byteOf(k)]&(1<<(k&7)) != 0, k == tc.bit; got != want {
				t.Errorf("bit %d set: bit %d got %v, want %v", tc.bit, k, got, want)
			}
		}
	}
}

func TestParseHash(t *testing.T) {
	const valid = "f8f8f0cee0f4a84f06370a22028f67f0b36e2ed596621e1d33e6b39c4e9c9b22"
	tests := []struct {
		name    string
		in      string
		want    string // the String() of the result, when no error
		wantErr string // a substring of the error, when one is wanted
	}{
		{"lowercase", valid, valid, ""},
		{"uppercase", strings.ToUpper(valid), valid, ""},
		{"zero", strings.Repeat("0", 64), strings.Repeat("0", 64), ""},
		{"empty", "", "", "got 0 characters, want 64"},
		{"short", valid[:63], "", "got 63 characters, want 64"},
		{"long", valid + "0", "", "got 65 characters, want 64"},
		{"spaces", " " + valid[1:], "", `character ' ' at position 0`},
		{"letter g", valid[:10] + "g" + valid[11:], "", `character 'g' at position 10`},
		{"last", valid[:63] + "x", "", `character 'x' at position 63`},
		{"odd position", valid[:1] + "-" + valid[2:], "", `character '-' at position 1`},
		{"non-ASCII", "é" + valid[2:], "", "position 0"},
		{"0x prefix", "0x" + valid[2:], "", `character 'x' at position 1`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := ParseHash(tc.in)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("got %v, nil error; want an error containing %q", h, tc.wantErr)
				}
				if !errors.Is(err, ErrInvalidHash) {
					t.Errorf("got error %v, want one wrapping ErrInvalidHash", err)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("got error %q, want it to contain %q", err, tc.wantErr)
				}
				if h != (Hash{}) {
					t.Errorf("got %v with the error, want the zero Hash", h)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if got := h.String(); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestDistance(t *testing.T) {
	a := mustParse(t, "f8f8f0cee0f4a84f06370a22028f67f0b36e2ed596621e1d33e6b39c4e9c9b22")
	b := mustParse(t, "f8f8f0cee0f4a84f06370a2a038f63f0b36e26d596621e1d33e6b39c4e9c9b22")
	var ones Hash
	for i := range ones {
		ones[i] = 0xff
	}
	var lastBit, firstBit Hash
	lastBit.setBit(255)
	firstBit.setBit(0)
	tests := []struct {
		name string
		a, b Hash
		want int
	}{
		{"same", a, a, 0},
		{"zero to ones", Hash{}, ones, 256},
		{"one bit at each end", lastBit, firstBit, 2},
		// aaa-orig.jpg and blur-a-little.jpg: 0a22→0a2a (1), 028f→038f (1), 67f0→63f0 (1), 2ed5→26d5 (1).
		{"bridge edits", a, b, 4},
	}
	for _, tc := range tests {
		if got := Distance(tc.a, tc.b); got != tc.want {
			t.Errorf("%s: got %d, want %d", tc.name, got, tc.want)
		}
		if got := Distance(tc.b, tc.a); got != tc.want {
			t.Errorf("%s (swapped): got %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestHashText(t *testing.T) {
	h := mustParse(t, "30a10efd71c83f429013d48d0ffffc52e34e0e17ada952a9d29685211ea9e5af")
	js, err := json.Marshal(map[string]Hash{"pdq": h})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(js), `{"pdq":"30a10efd71c83f429013d48d0ffffc52e34e0e17ada952a9d29685211ea9e5af"}`; got != want {
		t.Errorf("json.Marshal: got %s, want %s", got, want)
	}
	var back map[string]Hash
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	if back["pdq"] != h {
		t.Errorf("round trip: got %v, want %v", back["pdq"], h)
	}
	err = json.Unmarshal([]byte(`{"pdq":"abc"}`), &back)
	if !errors.Is(err, ErrInvalidHash) {
		t.Errorf("json.Unmarshal of a short hash: got error %v, want one wrapping ErrInvalidHash", err)
	}
}

func TestOrientationString(t *testing.T) {
	want := []string{"original", "rotate90", "rotate180", "rotate270", "flipx", "flipy", "flipplus1", "flipminus1"}
	for o, w := range want {
		if got := Orientation(o).String(); got != w {
			t.Errorf("Orientation(%d): got %q, want %q", o, got, w)
		}
	}
	if got := Orientation(8).String(); got != "Orientation(8)" {
		t.Errorf("Orientation(8): got %q, want %q", got, "Orientation(8)")
	}
}

// FuzzParseHash checks that what ParseHash accepts prints back as the same digits (in lowercase).
func FuzzParseHash(f *testing.F) {
	f.Add("a6685f3b62d57bfc4935263140bae87fcd48088975c238c1c8455fa2c716659d")
	f.Add("")
	f.Add("zz")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseHash(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidHash) {
				t.Fatalf("ParseHash(%q): got %v, want an error wrapping ErrInvalidHash", s, err)
			}
			return
		}
		if got := h.String(); !strings.EqualFold(got, s) {
			t.Fatalf("ParseHash(%q).String() = %q, want the same digits", s, got)
		}
	})
}
