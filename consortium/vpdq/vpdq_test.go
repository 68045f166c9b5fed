package vpdq

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashfed/hashfed/consortium/pdq"
)

func loadSample(t testing.TB, name string) []Frame {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "sample-hashes", name+".txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	frames, err := ParseText(f)
	if err != nil {
		t.Fatal(err)
	}
	return frames
}

func sampleNames(t testing.TB) []string {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join("testdata", "sample-hashes", "*.txt"))
	var names []string
	for _, p := range paths {
		n := strings.TrimSuffix(filepath.Base(p), ".txt")
		if strings.HasSuffix(n, "x128") || n == "test-padded-dimensions" {
			continue
		}
		names = append(names, n)
	}
	if len(names) != 13 {
		t.Fatalf("got %d sample hash files, want 13", len(names))
	}
	return names
}

// family is a sample's source footage: chair, pattern or doorknob.
func family(name string) string { f, _, _ := strings.Cut(name, "-"); return f }

// frameLimit names why vPDQ, a frame-by-frame PDQ comparison, cannot match two variants of one
// footage that a whole-video hash such as TMK matches ("" when it should): a large logo changes
// every frame's PDQ beyond distance 31, and a letterboxed ("bar") re-encode of a film shown
// without bars changes the frames' proportions.
func frameLimit(q, c string) string {
	switch {
	case strings.Contains(q, "large-logo") || strings.Contains(c, "large-logo"):
		return "large logo over every frame"
	case strings.HasSuffix(q, "-no-bar") != strings.HasSuffix(c, "-no-bar"):
		return "letterboxed against not letterboxed"
	}
	return ""
}

// TestSampleOutcomes applies the default rule (distance 31, quality 50, 80 % of the compared
// video) to every ordered pair of the reference's own sample hashes. Nothing matches across
// footage (chair, pattern, doorknob). Within a footage every variant matches every other except
// where [frameLimit] names a reason; those pairs must not match either, so that the list of
// exceptions stays exact. (The sample set's README expects every variant to match: that holds
// for TMK, the whole-video hash the videos were made for, not for vPDQ.)
func TestSampleOutcomes(t *testing.T) {
	names := sampleNames(t)
	frames := map[string][]Frame{}
	for _, n := range names {
		frames[n] = loadSample(t, n)
	}
	o := DefaultMatchOptions()
	matches, exceptions := 0, 0
	for i, q := range names {
		for _, c := range names[i+1:] {
			r := Compare(frames[q], frames[c], o)
			// The other direction swaps the two percentages.
			back := Result{QueryPercent: r.ComparedPercent, ComparedPercent: r.QueryPercent, QueryFrames: r.ComparedFrames, ComparedFrames: r.QueryFrames}
			back.Match = o.Holds(back.QueryPercent, back.ComparedPercent, back.QueryFrames, back.ComparedFrames)
			for _, x := range []struct {
				q, c string
				r    Result
			}{{q, c, r}, {c, q, back}} {
				checkOutcome(t, x.q, x.c, x.r, &matches, &exceptions)
			}
		}
	}
	t.Logf("%d ordered pairs match; %d same-footage pairs do not, as frameLimit says", matches, exceptions)
}

// checkOutcome checks one ordered pair's result against the expected outcome.
func checkOutcome(t *testing.T, q, c string, r Result, matches, exceptions *int) {
	t.Helper()
	want := family(q) == family(c)
	why := ""
	if want {
		if why = frameLimit(q, c); why != "" {
			want = false
			*exceptions++
		}
	}
	if r.Match != want {
		t.Errorf("%s against %s: got match %v (query %.1f %%, compared %.1f %%), want %v %s", q, c, r.Match, r.QueryPercent, r.ComparedPercent, want, why)
	}
	if r.Match {
		*matches++
	}
}

func hashOf(t testing.TB, s string) pdq.Hash {
	t.Helper()
	h, err := pdq.ParseHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// flip returns h with its first n bits inverted.
func flip(h pdq.Hash, n int) pdq.Hash {
	for i := range n {
		h[i/8] ^= 1 << (i % 8)
	}
	return h
}

func TestCompareRule(t *testing.T) {
	a := hashOf(t, "e271017837246aaccddea259648fb7d62f435c89d9e99b2497763e216c8d055c")
	b := hashOf(t, "4de4be27bac5c7946af3ac061dea8798275e6abcd1428b8491e4c34ecb5362e8")
	fr := func(n int64, q int, h pdq.Hash) Frame { return Frame{Number: n, Quality: q, Hash: h, MS: n * 33} }
	tests := []struct {
		name          string
		query, listed []Frame
		opts          MatchOptions
		wantQ, wantC  float64
		wantM         bool
		wantPairs     int
	}{
		{"same video", []Frame{fr(0, 100, a), fr(1, 100, b)}, []Frame{fr(0, 100, a), fr(1, 100, b)}, DefaultMatchOptions(), 100, 100, true, 2},
		{"distance 31 matches (inclusive)", []Frame{fr(0, 100, flip(a, 31))}, []Frame{fr(0, 100, a)}, DefaultMatchOptions(), 100, 100, true, 1},
		{"distance 32 does not", []Frame{fr(0, 100, flip(a, 32))}, []Frame{fr(0, 100, a)}, DefaultMatchOptions(), 0, 0, false, 0},
		{"query inside a longer listed video: 50 % of the listed frames", []Frame{fr(0, 100, a)}, []Frame{fr(0, 100, a), fr(1, 100, b)}, DefaultMatchOptions(), 100, 50, false, 1},
		{"listed inside a longer query", []Frame{fr(0, 100, a), fr(1, 100, b)}, []Frame{fr(5, 100, a)}, DefaultMatchOptions(), 50, 100, true, 1},
		{"low quality frames are left out", []Frame{fr(0, 100, a), fr(1, 10, b)}, []Frame{fr(0, 100, a), fr(1, 49, b)}, DefaultMatchOptions(), 100, 100, true, 1},
		{"only low quality: no match", []Frame{fr(0, 10, a)}, []Frame{fr(0, 10, a)}, DefaultMatchOptions(), 0, 0, false, 0},
		{"repeated frames count once", []Frame{fr(0, 100, a), fr(1, 100, a), fr(2, 100, a), fr(3, 100, b)}, []Frame{fr(0, 100, a), fr(9, 100, flip(b, 100))}, DefaultMatchOptions(), 50, 50, false, 1},
		{"query threshold", []Frame{fr(0, 100, a), fr(1, 100, b)}, []Frame{fr(0, 100, a)}, MatchOptions{Distance: 31, Quality: 50, QueryPercent: 60, ComparedPercent: 0}, 50, 100, false, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Compare(tc.query, tc.listed, tc.opts)
			if r.QueryPercent != tc.wantQ || r.ComparedPercent != tc.wantC || r.Match != tc.wantM || len(r.Pairs) != tc.wantPairs {
				t.Fatalf("got query %v %%, compared %v %%, match %v, %d pairs; want %v, %v, %v, %d", r.QueryPercent, r.ComparedPercent, r.Match, len(r.Pairs), tc.wantQ, tc.wantC, tc.wantM, tc.wantPairs)
			}
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []HashOptions{{SecondsPerHash: -1}, {SecondsPerHash: 4000}, {Downsample: 4}, {Downsample: 5000}} {
		if err := o.Validate(); !errors.Is(err, ErrBadOptions) {
			t.Errorf("%+v: got %v, want %v", o, err, ErrBadOptions)
		}
	}
	for _, o := range []MatchOptions{{Distance: -1}, {Distance: 300}, {Quality: 101}, {QueryPercent: 101}, {ComparedPercent: -1}} {
		if err := o.Validate(); !errors.Is(err, ErrBadOptions) {
			t.Errorf("%+v: got %v, want %v", o, err, ErrBadOptions)
		}
	}
	if err := DefaultMatchOptions().Validate(); err != nil {
		t.Error(err)
	}
	if _, err := (HashOptions{}).FrameStep(0); !errors.Is(err, ErrBadFrameRate) {
		t.Errorf("fps 0: got %v, want %v", err, ErrBadFrameRate)
	}
	for _, tc := range []struct {
		s, fps float64
		want   int64
	}{{0, 30, 1}, {1, 30, 30}, {1, 29.97, 29}, {1, 0.5, 1}, {0.5, 25, 12}} {
		if got, _ := (HashOptions{SecondsPerHash: tc.s}).FrameStep(tc.fps); got != tc.want {
			t.Errorf("%v s at %v fps: got step %d, want %d", tc.s, tc.fps, got, tc.want)
		}
	}
}

func TestParseText(t *testing.T) {
	good := "0,100,e271017837246aaccddea259648fb7d62f435c89d9e99b2497763e216c8d055c,0.000\n2,68,E271017837246aaccddea259648fb7d62f435c89d9e99b2497763e216c8d055c,0.067\n"
	frames, err := ParseText(strings.NewReader(good))
	if err != nil || len(frames) != 2 || frames[1].MS != 67 || frames[1].Quality != 68 {
		t.Fatalf("got %+v, %v", frames, err)
	}
	var buf bytes.Buffer
	WriteText(&buf, frames)
	if got, want := buf.String(), strings.ToLower(good); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	for _, bad := range []string{
		"0,100,e271,0.0",
		"0,101,e271017837246aaccddea259648fb7d62f435c89d9e99b2497763e216c8d055c,0.0",
		"-1,100,e271017837246aaccddea259648fb7d62f435c89d9e99b2497763e216c8d055c,0.0",
		"0,100,e271017837246aaccddea259648fb7d62f435c89d9e99b2497763e216c8d055c,-1",
		"0,100,e271017837246aaccddea259648fb7d62f435c89d9e99b2497763e216c8d055c,NaN",
		"0,100,e271017837246aaccddea259648fb7d62f435c89d9e99b2497763e216c8d055c",
		"1,100,e271017837246aaccddea259648fb7d62f435c89d9e99b2497763e216c8d055c,0\n1,100,e271017837246aaccddea259648fb7d62f435c89d9e99b2497763e216c8d055c,0",
	} {
		if _, err := ParseText(strings.NewReader(bad)); !errors.Is(err, ErrBadText) {
			t.Errorf("%q: got %v, want %v", bad, err, ErrBadText)
		}
	}
}

// FuzzParseText checks that whatever ParseText accepts writes back and reads again to the same
// frames.
func FuzzParseText(f *testing.F) {
	data, _ := os.ReadFile(filepath.Join("testdata", "sample-hashes", "doorknob-hd-no-bar.txt"))
	f.Add(string(data[:400]))
	f.Add("0,100,e271017837246aaccddea259648fb7d62f435c89d9e99b2497763e216c8d055c,0.0005\n")
	f.Fuzz(func(t *testing.T, s string) {
		frames, err := ParseText(strings.NewReader(s))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		WriteText(&buf, frames)
		again, err := ParseText(&buf)
		if err != nil {
			t.Fatalf("rewritten text does not parse: %v", err)
		}
		if len(again) != len(frames) {
			t.Fatalf("got %d frames, want %d", len(again), len(frames))
		}
		for i := range frames {
			if again[i] != frames[i] {
				t.Fatalf("frame %d: got %+v, want %+v", i, again[i], frames[i])
			}
		}
	})
}
