package pdq

import (
	"encoding/csv"
	"image"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
	f, err := os.Open(filepath.Join(testdataDir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, _, err := Decode(f, DecodeOptions{})
	if err != nil {
		t.Fatalf("Decode(%s): %v", name, err)
	}
	return img
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
			img := decodeFile(t, row["file"])
			if clip {
				g, ok := img.(*image.Gray16)
				if !ok {
					t.Fatalf("got %T, want *image.Gray16 for a clipped row", img)
				}
				img = clipGray16(g)
			}
			b := img.Bounds()
			if w, h := strconv.Itoa(b.Dx()), strconv.Itoa(b.Dy()); w != row["width"] || h != row["height"] {
				t.Fatalf("got %s×%s, want %s×%s", w, h, row["width"], row["height"])
			}
			wantQ, err := strconv.Atoi(row["quality"])
			if err != nil {
				t.Fatal(err)
			}
			want := mustParse(t, row["pdq_hex"])
			got, q := HashImage(img)
			if got != want || q != wantQ {
				t.Errorf("HashImage: got %v quality %d, want %v quality %d (distance %d)", got, q, want, wantQ, Distance(got, want))
			}
			d, dq := HashImageDihedral(img)
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
