package pdq

import (
	"encoding/csv"
	"errors"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// testdataDir is the repository's copy of the conformance vectors (see its README).
const testdataDir = "../../testdata/pdq"

// readCSV reads a CSV file of testdataDir with a header row into one map per row.
func readCSV(t testing.TB, name string) []map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(testdataDir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(recs) < 2 {
		t.Fatalf("%s: got %d records, want a header and rows", name, len(recs))
	}
	var rows []map[string]string
	for _, rec := range recs[1:] {
		row := make(map[string]string, len(rec))
		for i, h := range recs[0] {
			row[h] = rec[i]
		}
		rows = append(rows, row)
	}
	return rows
}

// decodeFile decodes a file of testdataDir with Decode.
func decodeFile(t testing.TB, name string) image.Image {
	t.Helper()
	img, err := decodeFileErr(name)
	if err != nil {
		t.Fatalf("Decode(%s): %v", name, err)
	}
	return img
}

func decodeFileErr(name string) (image.Image, error) {
	f, err := os.Open(filepath.Join(testdataDir, name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, _, err := Decode(f, DecodeOptions{})
	return img, err
}

func mustParse(t testing.TB, s string) Hash {
	t.Helper()
	h, err := ParseHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// clipGray16 converts 16-bit grey to 8-bit by min(v, 255), as Pillow's convert("RGB") does: the
// way a caller reproduces hashes that python-threatexchange computed from 16-bit grey images.
func clipGray16(g *image.Gray16) *image.Gray {
	out := image.NewGray(g.Bounds())
	for y := g.Rect.Min.Y; y < g.Rect.Max.Y; y++ {
		for x := g.Rect.Min.X; x < g.Rect.Max.X; x++ {
			out.SetGray(x, y, colorGray(min(g.Gray16At(x, y).Y, 255)))
		}
	}
	return out
}

// hashed is a test file's decoded image and hashes, computed once for all the tests that need
// them (decoding the large JPEGs dominates the run time under the race detector).
type hashed struct {
	img      image.Image
	hash     Hash
	quality  int
	dihedral Dihedral
	dquality int
}

var (
	decodedCache sync.Map // file name → func() (image.Image, error) (a sync.OnceValues)
	hashedCache  sync.Map // hashedKey → func() hashed (a sync.OnceValue)
)

type hashedKey struct {
	file string
	clip bool // 16-bit grey clipped to 255 as Pillow does
}

// hashFile returns the decoded image and hashes of a file of testdataDir. With clip set, a
// 16-bit grey image is clipped to 8 bits as Pillow does; other images are unaffected.
func hashFile(t testing.TB, file string, clip bool) hashed {
	t.Helper()
	dec, _ := decodedCache.LoadOrStore(file, sync.OnceValues(func() (image.Image, error) { return decodeFileErr(file) }))
	img, err := dec.(func() (image.Image, error))()
	if err != nil {
		t.Fatalf("Decode(%s): %v", file, err)
	}
	g, isGray16 := img.(*image.Gray16)
	clip = clip && isGray16
	h, _ := hashedCache.LoadOrStore(hashedKey{file, clip}, sync.OnceValue(func() hashed {
		r := hashed{img: img}
		if clip {
			r.img = clipGray16(g)
		}
		r.hash, r.quality = HashImage(r.img)
		r.dihedral, r.dquality = HashImageDihedral(r.img)
		return r
	}))
	return h.(func() hashed)()
}

var dihedralColumns = [8]string{"dih_original", "dih_rotate90", "dih_rotate180", "dih_rotate270", "dih_flipx", "dih_flipy", "dih_flipplus1", "dih_flipminus1"}

// TestConformanceCore checks every row of expected_cpp_core.csv: the C++ reference core's hash,
// quality and eight dihedral hashes of the pixels Go's decoders give, bit for bit.
func TestConformanceCore(t *testing.T) {
	rows := readCSV(t, "expected_cpp_core.csv")
	for _, row := range rows {
		name := row["file"]
		clip := strings.HasPrefix(row["pixel_decoding"], "16-bit gray clipped")
		if clip {
			name += " (clipped)"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := hashFile(t, row["file"], clip)
			if _, ok := r.img.(*image.Gray); clip && !ok {
				t.Fatalf("got %T, want the *image.Gray of a clipped *image.Gray16", r.img)
			}
			b := r.img.Bounds()
			if w, h := strconv.Itoa(b.Dx()), strconv.Itoa(b.Dy()); w != row["width"] || h != row["height"] {
				t.Fatalf("got %s×%s, want %s×%s", w, h, row["width"], row["height"])
			}
			wantQ, err := strconv.Atoi(row["quality"])
			if err != nil {
				t.Fatal(err)
			}
			want := mustParse(t, row["pdq_hex"])
			if got, q := r.hash, r.quality; got != want || q != wantQ {
				t.Errorf("HashImage: got %v quality %d, want %v quality %d (distance %d)", got, q, want, wantQ, Distance(got, want))
			}
			d, dq := r.dihedral, r.dquality
			if dq != wantQ {
				t.Errorf("HashImageDihedral quality: got %d, want %d", dq, wantQ)
			}
			for o, col := range dihedralColumns {
				want := mustParse(t, row[col])
				if d[o] != want {
					t.Errorf("%v: got %v, want %v (distance %d)", Orientation(o), d[o], want, Distance(d[o], want))
				}
			}
		})
	}
}

// TestPublished checks our hashes against every PDQ value the reference repository publishes,
// within the tolerance each row allows. Those values come from other implementations and other
// decoders, so the rules (testdata README) are: a PNG row whose source states an exact match was
// made from the same pixels by a float32 implementation and must match bit for bit with the same
// quality; a row with a stated "hamming<=N" allows N bits; every other row (JPEG decoders, CImg's
// resize to 512×512) allows 16 bits, the spread the README gives for decoder differences. Each
// row also records its distance to the C++ core on Go's pixels, which ours must reproduce.
func TestPublished(t *testing.T) {
	rows := readCSV(t, "expected_published.csv")
	for i, row := range rows {
		path, impl, tolerance := row["image_path"], row["implementation_and_decoder"], row["tolerance_in_source"]
		t.Run(fmt.Sprintf("%02d-%s", i, filepath.Base(path)), func(t *testing.T) {
			t.Parallel()
			// Pillow clips 16-bit grey where Go shifts.
			r := hashFile(t, filepath.Join("images", path), strings.Contains(impl, "PIL"))
			got, q := r.hash, r.quality
			want := mustParse(t, row["expected_hash_hex"])
			d := Distance(got, want)

			exact := strings.HasSuffix(path, ".png") && (strings.HasPrefix(tolerance, "exact") || tolerance == "assertEquals")
			allowed := 16
			if exact {
				allowed = 0
			} else if n, ok := strings.CutPrefix(tolerance, "hamming<="); ok {
				var err error
				if allowed, err = strconv.Atoi(n); err != nil {
					t.Fatalf("tolerance %q: %v", tolerance, err)
				}
			}
			if d > allowed {
				t.Errorf("%s: got %v, want %v within %d bits (%s), distance %d", impl, got, want, allowed, tolerance, d)
			}
			if recorded, err := strconv.Atoi(row["hamming_to_cpp_core_on_go_decode"]); err != nil {
				t.Fatal(err)
			} else if d != recorded {
				t.Errorf("distance to the published value: got %d, want %d (the C++ core's on the same pixels)", d, recorded)
			}
			if qs := row["expected_quality"]; qs != "" {
				wantQ, err := strconv.Atoi(qs)
				if err != nil {
					t.Fatal(err)
				}
				if exact && q != wantQ {
					t.Errorf("quality: got %d, want %d", q, wantQ)
				}
				if !exact && (q < wantQ-10 || q > wantQ+10) {
					t.Errorf("quality: got %d, want %d ± 10", q, wantQ)
				}
			}
		})
	}
}

// readHashes reads a file of testdataDir with one hash per line.
func readHashes(t *testing.T, name string) []Hash {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testdataDir, name))
	if err != nil {
		t.Fatal(err)
	}
	var hs []Hash
	for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		h, err := ParseHash(strings.TrimSpace(line))
		if err != nil {
			t.Fatalf("%s line %d: %v", name, i+1, err)
		}
		hs = append(hs, h)
	}
	return hs
}

// TestHashlistMatches finds, by brute force, every needle/haystack pair within distance 31 and
// checks the result is exactly the expected list: no pair missing, none extra, same distances.
func TestHashlistMatches(t *testing.T) {
	needles := readHashes(t, "hashlists/needles.txt")
	haystack := readHashes(t, "hashlists/haystack.txt")
	type pair struct{ needle, hay int }
	want := map[pair]int{}
	for _, row := range readCSV(t, "hashlists/expected_matches_d31.csv") {
		n, err1 := strconv.Atoi(row["needle_index"])
		h, err2 := strconv.Atoi(row["haystack_index"])
		d, err3 := strconv.Atoi(row["distance"])
		if err := errors.Join(err1, err2, err3); err != nil {
			t.Fatal(err)
		}
		if got := needles[n].String(); got != row["needle_hash"] {
			t.Fatalf("needle %d: got %s, want %s", n, got, row["needle_hash"])
		}
		if got := haystack[h].String(); got != row["haystack_hash"] {
			t.Fatalf("haystack %d: got %s, want %s", h, got, row["haystack_hash"])
		}
		want[pair{n, h}] = d
	}
	got := map[pair]int{}
	for i, n := range needles {
		for j, h := range haystack {
			if d := Distance(n, h); d <= 31 {
				got[pair{i, j}] = d
			}
		}
	}
	if len(want) != 250 {
		t.Errorf("expected matches: got %d rows, want 250", len(want))
	}
	for p, d := range want {
		if gd, ok := got[p]; !ok {
			t.Errorf("needle %d, haystack %d: not found, want distance %d", p.needle, p.hay, d)
		} else if gd != d {
			t.Errorf("needle %d, haystack %d: got distance %d, want %d", p.needle, p.hay, gd, d)
		}
	}
	for p, d := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("needle %d, haystack %d: found at distance %d, want no match", p.needle, p.hay, d)
		}
	}
}

// orient returns src transformed to orientation o, pixel by pixel: the image whose hash
// Dihedral[o] of src predicts.
func orient(src image.Image, o Orientation) *image.NRGBA {
	b := src.Bounds()
	w, h := b.Dx(), b.Dy()
	ow, oh := w, h
	if o == Rotate90 || o == Rotate270 || o == FlipPlus1 || o == FlipMinus1 {
		ow, oh = h, w
	}
	out := image.NewNRGBA(image.Rect(0, 0, ow, oh))
	for y := range oh {
		for x := range ow {
			var sx, sy int
			switch o {
			case Original:
				sx, sy = x, y
			case Rotate90: // anticlockwise
				sx, sy = w-1-y, x
			case Rotate180:
				sx, sy = w-1-x, h-1-y
			case Rotate270: // clockwise
				sx, sy = y, h-1-x
			case FlipX: // top to bottom
				sx, sy = x, h-1-y
			case FlipY: // left to right
				sx, sy = w-1-x, y
			case FlipPlus1: // transpose
				sx, sy = y, x
			case FlipMinus1: // anti-transpose
				sx, sy = w-1-y, h-1-x
			}
			out.Set(x, y, src.At(b.Min.X+sx, b.Min.Y+sy))
		}
	}
	return out
}

// TestDihedralMeaning checks that each dihedral hash is (nearly: the box filters and the sample
// points are not exactly symmetric) the hash of the image transformed as its Orientation's
// documentation says, and far from the other seven.
func TestDihedralMeaning(t *testing.T) {
	// A 640×640 crop: box windows of 5 pixels, centred on their output, so the transforms change
	// few bits. (Even windows, as at 256 or 512 pixels, are one pixel off centre and move more.)
	img := hashFile(t, "images/pdq/data/reg-test-input/dih/bridge-1-original.jpg", false).img.(*image.YCbCr).SubImage(image.Rect(480, 200, 1120, 840))
	d, _ := HashImageDihedral(img)
	for o := range Orientation(8) {
		t.Run(o.String(), func(t *testing.T) {
			t.Parallel()
			h, _ := HashImage(orient(img, o))
			for other := range Orientation(8) {
				dist := Distance(h, d[other])
				if other == o && dist > 10 {
					t.Errorf("distance to Dihedral[%v]: got %d, want at most 10", other, dist)
				}
				if other != o && dist < 64 {
					t.Errorf("distance to Dihedral[%v]: got %d, want at least 64", other, dist)
				}
			}
		})
	}
}
