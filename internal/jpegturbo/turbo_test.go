package jpegturbo

import (
	"bytes"
	"encoding/binary"
	"encoding/csv"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/hashfed/hashfed/consortium/pdq"
)

// testdataDir is the repository's copy of the PDQ conformance vectors.
const testdataDir = "../../testdata/pdq"

func needTurbo(t testing.TB) {
	t.Helper()
	if !Available {
		t.Skip("built without libjpeg-turbo (CGO_ENABLED=0 or -tags nojpegturbo)")
	}
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testdataDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// randomImage is a w×h image of smooth colour gradients with noise, so that JPEG keeps detail.
func randomImage(r *rand.Rand, w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetNRGBA(x, y, color.NRGBA{uint8(x*7 + r.IntN(20)), uint8(y*5 + r.IntN(20)), uint8((x + y) * 3), 255})
		}
	}
	return img
}

func encodeJPEG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// smallJPEG is a 37×23 colour JPEG (4:2:0, odd sizes) and grey is a 19×11 grey one.
func smallJPEG(t testing.TB) (colour, grey []byte) {
	src := randomImage(rand.New(rand.NewPCG(1, 2)), 37, 23)
	g := image.NewGray(image.Rect(0, 0, 19, 11))
	for i := range g.Pix {
		g.Pix[i] = uint8(i * 13)
	}
	return encodeJPEG(t, src), encodeJPEG(t, g)
}

// segment returns the offset of the first marker m (0xff, m) among the segments of a JPEG, and
// the length of that segment including its marker.
func segment(t testing.TB, data []byte, m byte) (int, int) {
	t.Helper()
	for i := 2; i+4 <= len(data); {
		if data[i] != 0xff {
			t.Fatalf("no marker at %d", i)
		}
		n := 2 + int(binary.BigEndian.Uint16(data[i+2:]))
		if data[i+1] == m {
			return i, n
		}
		i += n
	}
	t.Fatalf("marker 0x%02x not found", m)
	return 0, 0
}

// withFourComponents declares a fourth component in a baseline file's frame header, which makes it
// CMYK to libjpeg.
func withFourComponents(t testing.TB, data []byte) []byte {
	t.Helper()
	i, n := segment(t, data, 0xc0)
	sof := bytes.Clone(data[i : i+n])
	binary.BigEndian.PutUint16(sof[2:], uint16(n-2+3))
	sof[9] = 4
	sof = append(sof, 4, 0x11, 0)
	return append(append(append([]byte{}, data[:i]...), sof...), data[i+n:]...)
}

// withJunkBeforeDQT puts bytes that are no marker between two segments: libjpeg warns about
// them ("extraneous bytes before marker"), Go's decoder skips them.
func withJunkBeforeDQT(t testing.TB, data []byte) []byte {
	t.Helper()
	i, _ := segment(t, data, 0xdb)
	return append(append(append([]byte{}, data[:i]...), 1, 2, 3), data[i:]...)
}

// jpegHeader is the start of a grey baseline JPEG declaring width×height, up to its frame header.
func jpegHeader(width, height uint16) []byte {
	b := []byte{0xff, 0xd8, 0xff, 0xc0, 0, 11, 8}
	b = binary.BigEndian.AppendUint16(b, height)
	b = binary.BigEndian.AppendUint16(b, width)
	b = append(b, 1, 1, 0x11, 0)
	// A quantization table and a scan header, so that libjpeg reads the whole header.
	b = append(b, 0xff, 0xdb, 0, 67, 0)
	b = append(b, bytes.Repeat([]byte{1}, 64)...)
	b = append(b, 0xff, 0xc4, 0, 20, 0, 0, 1) // DC table 0: one code of two bits
	b = append(b, make([]byte, 14)...)
	b = append(b, 0)
	return append(b, 0xff, 0xda, 0, 8, 1, 1, 0, 0, 63, 0)
}

func TestDecodeKinds(t *testing.T) {
	needTurbo(t)
	colour, grey := smallJPEG(t)
	tests := []struct {
		name          string
		data          []byte
		w, h, ch      int
		pdqType       string
		goType        string
		scale, sw, sh int
	}{
		{"colour", colour, 37, 23, 3, "*pdq.RGB24", "*image.YCbCr", 2, 19, 12},
		{"grey", grey, 19, 11, 1, "*image.Gray", "*image.Gray", 4, 5, 3},
		{"progressive 4:4:4", readTestdata(t, "images/pdq/data/reg-test-input/dih/bridge-3-rotate-180.jpg"), 1600, 1004, 3, "*pdq.RGB24", "*image.YCbCr", 8, 200, 126},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Decode(tc.data, Options{MaxPixels: 1 << 24})
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if m.Width != tc.w || m.Height != tc.h || m.Channels != tc.ch || len(m.Pix) != tc.w*tc.h*tc.ch {
				t.Fatalf("got %d×%d×%d (%d bytes), want %d×%d×%d", m.Width, m.Height, m.Channels, len(m.Pix), tc.w, tc.h, tc.ch)
			}
			// libjpeg's pixels are close to Go's: the two differ in rounding and upsampling only.
			goImg, err := jpeg.Decode(bytes.NewReader(tc.data))
			if err != nil {
				t.Fatal(err)
			}
			var sum, n float64
			for y := range tc.h {
				for x := range tc.w {
					c := color.NRGBAModel.Convert(goImg.At(x, y)).(color.NRGBA)
					want := []uint8{c.R, c.G, c.B}
					for k := range tc.ch {
						d := float64(m.Pix[(y*tc.w+x)*tc.ch+k]) - float64(want[k])
						sum += max(d, -d)
						n++
					}
				}
			}
			if mean := sum / n; mean > 4 {
				t.Errorf("mean difference from Go's pixels: got %.2f, want at most 4", mean)
			}
			img, format, err := pdq.Decode(bytes.NewReader(tc.data), pdq.DecodeOptions{})
			if err != nil || format != "jpeg" {
				t.Fatalf("pdq.Decode: got %q, %v", format, err)
			}
			if got := typeName(img); got != tc.pdqType {
				t.Errorf("pdq.Decode: got %s, want %s", got, tc.pdqType)
			}
			img, _, err = pdq.Decode(bytes.NewReader(tc.data), pdq.DecodeOptions{GoJPEG: true})
			if err != nil {
				t.Fatal(err)
			}
			if got := typeName(img); got != tc.goType {
				t.Errorf("pdq.Decode with GoJPEG: got %s, want %s", got, tc.goType)
			}
			s, err := Decode(tc.data, Options{MaxPixels: 1 << 24, ScaleDenom: tc.scale})
			if err != nil {
				t.Fatal(err)
			}
			if s.Width != tc.sw || s.Height != tc.sh || len(s.Pix) != tc.sw*tc.sh*tc.ch {
				t.Errorf("scale 1/%d: got %d×%d, want %d×%d", tc.scale, s.Width, s.Height, tc.sw, tc.sh)
			}
		})
	}
}

func typeName(img image.Image) string {
	switch img.(type) {
	case *pdq.RGB24:
		return "*pdq.RGB24"
	case *image.Gray:
		return "*image.Gray"
	case *image.YCbCr:
		return "*image.YCbCr"
	}
	return "other"
}

func TestRegistered(t *testing.T) {
	want := "Go image/jpeg"
	if Available {
		want = Version()
		if !strings.HasPrefix(want, "libjpeg") {
			t.Errorf("Version: got %q, want it to name libjpeg", want)
		}
	}
	if got := pdq.JPEGDecoderName(); got != want {
		t.Errorf("pdq.JPEGDecoderName: got %q, want %q", got, want)
	}
}

func TestDecodeErrors(t *testing.T) {
	needTurbo(t)
	colour, _ := smallJPEG(t)
	small := readTestdata(t, "images/pdq/data/misc-images/small.jpg")
	progressive := readTestdata(t, "images/pdq/data/reg-test-input/dih/bridge-3-rotate-180.jpg")
	flipped := bytes.Clone(small)
	for i := len(flipped) / 2; i < len(flipped)/2+40; i++ {
		flipped[i] ^= 0x5a
	}
	tests := []struct {
		name     string
		data     []byte
		opts     Options
		want     error
		contains string
	}{
		{"empty", nil, Options{}, ErrCorrupt, "empty"},
		{"not a jpeg", []byte("hello, world"), Options{}, ErrCorrupt, "Not a JPEG file"},
		{"start of image only", []byte{0xff, 0xd8}, Options{}, ErrCorrupt, "libjpeg-turbo"},
		{"header only", jpegHeader(100, 100), Options{}, ErrCorrupt, "libjpeg-turbo"},
		{"cut in half", small[:len(small)/2], Options{}, ErrCorrupt, "Premature end"},
		{"cut before the end marker", colour[:len(colour)-2], Options{}, ErrCorrupt, "Premature end"},
		{"corrupt entropy data", flipped, Options{}, ErrCorrupt, "libjpeg-turbo"},
		{"junk before a marker", withJunkBeforeDQT(t, colour), Options{}, ErrCorrupt, "extraneous bytes"},
		{"cmyk", withFourComponents(t, colour), Options{}, ErrUnsupported, "4 components"},
		{"65000×65000", jpegHeader(65000, 65000), Options{}, ErrTooLarge, "declares 65000×65000"},
		{"over the limit by one", colour, Options{MaxPixels: 37*23 - 1}, ErrTooLarge, "more than the limit of 850"},
		{"too many scans", progressive, Options{MaxScans: 2}, ErrTooManyScans, "more than 2 scans"},
		{"bad scale", colour, Options{ScaleDenom: 3}, ErrUnsupported, "scale 1/3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			if opts.MaxPixels == 0 {
				opts.MaxPixels = 1 << 24
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			m, err := Decode(tc.data, opts)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got error %v, want %v", err, tc.want)
			}
			if m != nil {
				t.Errorf("got an image with error %v", err)
			}
			if !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("got error %q, want it to contain %q", err, tc.contains)
			}
			if tc.want == ErrTooLarge {
				if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<16 {
					t.Errorf("allocated %d bytes refusing it, want under 64 KiB", alloc)
				}
			}
		})
	}
	if _, err := Decode(colour, Options{}); err == nil || !strings.Contains(err.Error(), "MaxPixels") {
		t.Errorf("no MaxPixels: got error %v, want one naming MaxPixels", err)
	}
}

// TestPDQFallback checks how pdq.Decode uses the registered decoder: a file libjpeg declines but
// Go's decoder reads is decoded by Go; a file both refuse names both errors; limits are final.
func TestPDQFallback(t *testing.T) {
	needTurbo(t)
	colour, _ := smallJPEG(t)
	img, _, err := pdq.Decode(bytes.NewReader(withJunkBeforeDQT(t, colour)), pdq.DecodeOptions{})
	if err != nil {
		t.Fatalf("junk before a marker: got error %v, want Go's decoder to read it", err)
	}
	if _, ok := img.(*image.YCbCr); !ok {
		t.Errorf("junk before a marker: got %T, want Go's *image.YCbCr", img)
	}
	_, _, err = pdq.Decode(bytes.NewReader(colour[:len(colour)/2]), pdq.DecodeOptions{})
	if !errors.Is(err, pdq.ErrCorrupt) || !strings.Contains(err.Error(), "libjpeg-turbo") || !strings.Contains(err.Error(), "unexpected EOF") {
		t.Errorf("truncated: got error %v, want ErrCorrupt naming Go's and libjpeg-turbo's errors", err)
	}
	for _, side := range []uint16{65000, 65535} { // libjpeg refuses sides over 65500 itself; Go then does
		_, _, err = pdq.Decode(bytes.NewReader(jpegHeader(side, side)), pdq.DecodeOptions{})
		if !errors.Is(err, pdq.ErrTooLarge) || !strings.Contains(err.Error(), "declares") {
			t.Errorf("%d×%d: got error %v, want pdq.ErrTooLarge saying what the header declares", side, side, err)
		}
	}
}

// TestTruncatedEverywhere cuts files at many lengths: each cut gives an error wrapping ErrCorrupt
// (libjpeg warns about a premature end) and never a crash.
func TestTruncatedEverywhere(t *testing.T) {
	needTurbo(t)
	colour, grey := smallJPEG(t)
	for name, data := range map[string][]byte{"colour": colour, "grey": grey, "small.jpg": readTestdata(t, "images/pdq/data/misc-images/small.jpg")} {
		t.Run(name, func(t *testing.T) {
			for n := range len(data) - 1 {
				if _, err := Decode(data[:n], Options{MaxPixels: 1 << 20}); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("cut at %d of %d bytes: got error %v, want ErrCorrupt", n, len(data), err)
				}
			}
		})
	}
}

// TestNoCLeak decodes files that fail at every stage, and good ones, many times, and checks that
// the C heap does not grow: every path frees what libjpeg allocated.
func TestNoCLeak(t *testing.T) {
	needTurbo(t)
	if cHeapInUse() < 0 {
		t.Skip("the C heap's size is not known outside glibc")
	}
	colour, grey := smallJPEG(t)
	small := readTestdata(t, "images/pdq/data/misc-images/small.jpg")
	inputs := []struct {
		data []byte
		opts Options
	}{
		{colour, Options{}},
		{grey, Options{ScaleDenom: 2}},
		{[]byte("not a jpeg"), Options{}},
		{jpegHeader(65535, 65535), Options{}},
		{small[:len(small)/2], Options{}},
		{small[:len(small)-2], Options{}},
		{withFourComponents(t, colour), Options{}},
		{withJunkBeforeDQT(t, colour), Options{}},
		{colour, Options{MaxScans: 1}},
	}
	run := func(n int) {
		for range n {
			for _, in := range inputs {
				opts := in.opts
				opts.MaxPixels = 1 << 20
				Decode(in.data, opts)
			}
		}
	}
	run(20) // warm up the allocator
	before := cHeapInUse()
	run(500)
	if grew := cHeapInUse() - before; grew > 64<<10 {
		t.Errorf("the C heap grew by %d bytes over %d decodes, want under 64 KiB", grew, 500*len(inputs))
	}
}

// readCSV reads a CSV file of testdataDir with a header row into one map per row.
func readCSV(t testing.TB, name string) []map[string]string {
	t.Helper()
	recs, err := csv.NewReader(bytes.NewReader(readTestdata(t, name))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var rows []map[string]string
	for _, rec := range recs[1:] {
		row := map[string]string{}
		for i, h := range recs[0] {
			row[h] = rec[i]
		}
		rows = append(rows, row)
	}
	return rows
}

func isJPEG(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	return ext == ".jpg" || ext == ".jpeg"
}

// hashed caches hashTestdata's results: the 1600×1004 files appear in many rows.
var hashed sync.Map // file name → func() (hashQ, error)

type hashQ struct {
	hash    pdq.Hash
	quality int
}

func hashTestdata(t testing.TB, name string) (pdq.Hash, int) {
	t.Helper()
	f, _ := hashed.LoadOrStore(name, sync.OnceValues(func() (hq hashQ, err error) {
		data, err := os.ReadFile(filepath.Join(testdataDir, name))
		if err != nil {
			return hq, err
		}
		img, _, err := pdq.Decode(bytes.NewReader(data), pdq.DecodeOptions{})
		if err != nil {
			return hq, err
		}
		h, q := pdq.HashImage(img)
		return hashQ{h, q}, nil
	}))
	hq, err := f.(func() (hashQ, error))()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return hq.hash, hq.quality
}

// jpegTolerance is the repository's rule for the same JPEG decoded by different decoders: at
// most 10 bits apart for quality 80 and up; below that the README's spread of decoders, 16 bits.
func jpegTolerance(quality int) int {
	if quality >= 80 {
		return 10
	}
	return 16
}

// TestConformanceCore hashes the files of expected_cpp_core.csv decoded by libjpeg-turbo. PNGs
// (including the lossless PNGs of Go's pixels) must match bit for bit: the registered decoder
// takes no part. The JPEG rows were computed from Go's pixels; libjpeg-turbo's are slightly
// different, so they are held to the repository's tolerance for another decoder.
func TestConformanceCore(t *testing.T) {
	needTurbo(t)
	for _, row := range readCSV(t, "expected_cpp_core.csv") {
		name := row["file"]
		if strings.HasPrefix(row["pixel_decoding"], "16-bit gray clipped") {
			continue // the clipped variant is pdq's own test
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			want, err := pdq.ParseHash(row["pdq_hex"])
			if err != nil {
				t.Fatal(err)
			}
			wantQ, err := strconv.Atoi(row["quality"])
			if err != nil {
				t.Fatal(err)
			}
			got, q := hashTestdata(t, name)
			d := pdq.Distance(got, want)
			if !isJPEG(name) {
				if got != want || q != wantQ {
					t.Errorf("got %v quality %d, want %v quality %d (distance %d)", got, q, want, wantQ, d)
				}
				return
			}
			if tol := jpegTolerance(wantQ); d > tol {
				t.Errorf("got %v, want %v within %d bits, distance %d", got, want, tol, d)
			}
			if q < wantQ-10 || q > wantQ+10 {
				t.Errorf("quality: got %d, want %d ± 10", q, wantQ)
			}
		})
	}
}

// TestPublished checks the JPEG rows of expected_published.csv (other implementations, other
// decoders) within the 16 bits pdq's own test allows them, and the rows python-threatexchange
// made (the C++ core on Pillow's pixels, and Pillow decodes with libjpeg-turbo) bit for bit.
func TestPublished(t *testing.T) {
	needTurbo(t)
	for i, row := range readCSV(t, "expected_published.csv") {
		path := row["image_path"]
		if !isJPEG(path) {
			continue
		}
		t.Run(strconv.Itoa(i)+"-"+filepath.Base(path), func(t *testing.T) {
			t.Parallel()
			want, err := pdq.ParseHash(row["expected_hash_hex"])
			if err != nil {
				t.Fatal(err)
			}
			got, _ := hashTestdata(t, filepath.Join("images", path))
			impl := row["implementation_and_decoder"]
			allowed := 16
			if strings.HasPrefix(impl, "pytx") {
				allowed = 0
			}
			if d := pdq.Distance(got, want); d > allowed {
				t.Errorf("%s: got %v, want %v within %d bits, distance %d", impl, got, want, allowed, d)
			}
		})
	}
}

// FuzzDecode feeds hostile bytes to Decode and to pdq.HashFile: nothing may crash, every error
// must wrap a sentinel, and an image must be the size its buffer says and within the limit.
func FuzzDecode(f *testing.F) {
	colour, grey := smallJPEG(f)
	f.Add(colour)
	f.Add(grey)
	f.Add(readTestdata(f, "images/pdq/data/misc-images/small.jpg"))
	f.Add(jpegHeader(300, 300))
	f.Add(withFourComponents(f, colour))
	const limit = 1 << 16
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, scale := range []int{1, 4} {
			m, err := Decode(data, Options{MaxPixels: limit, ScaleDenom: scale, MaxScans: 50})
			if err != nil {
				if !Available {
					return
				}
				if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrTooManyScans) {
					t.Fatalf("got error %v, want one wrapping a sentinel", err)
				}
				continue
			}
			if m.Width <= 0 || m.Height <= 0 || int64(m.Width)*int64(m.Height) > limit || len(m.Pix) != m.Width*m.Height*m.Channels {
				t.Fatalf("got %d×%d×%d with %d bytes", m.Width, m.Height, m.Channels, len(m.Pix))
			}
			pdq.HashImage(ToImage(m))
		}
		// Through pdq: libjpeg-turbo first, Go's decoder for what it declines, buffers reused.
		if _, _, _, err := pdq.HashFile(bytes.NewReader(data), pdq.DecodeOptions{MaxPixels: limit}); err != nil &&
			!errors.Is(err, pdq.ErrCorrupt) && !errors.Is(err, pdq.ErrUnsupportedFormat) && !errors.Is(err, pdq.ErrTooLarge) {
			t.Fatalf("pdq.HashFile: got error %v, want one wrapping a sentinel", err)
		}
	})
}

// TestHashFileReusesBuffers hashes files of different sizes in turn with pdq.HashFile, which
// reuses the pixel buffer of one file for the next: every hash must equal that of a fresh decode.
func TestHashFileReusesBuffers(t *testing.T) {
	needTurbo(t)
	colour, grey := smallJPEG(t)
	files := [][]byte{
		readTestdata(t, "images/pdq/data/bridge-mods/square-512x512.jpg"),
		colour,
		readTestdata(t, "images/pdq/data/bridge-mods/square-128x128.jpg"),
		grey,
		readTestdata(t, "images/pdq/data/reg-test-input/labelme-subset/q0291.jpg"),
		withJunkBeforeDQT(t, colour), // decoded by Go
	}
	for round := range 3 {
		for i, data := range files {
			img, _, err := pdq.Decode(bytes.NewReader(data), pdq.DecodeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			wantH, wantQ := pdq.HashImage(img)
			h, q, format, err := pdq.HashFile(bytes.NewReader(data), pdq.DecodeOptions{})
			if err != nil || h != wantH || q != wantQ || format != "jpeg" {
				t.Errorf("round %d, file %d: got %v quality %d %q error %v, want %v quality %d", round, i, h, q, format, err, wantH, wantQ)
			}
		}
	}
	if _, _, _, err := pdq.HashFile(bytes.NewReader(colour[:len(colour)/2]), pdq.DecodeOptions{}); !errors.Is(err, pdq.ErrCorrupt) {
		t.Errorf("truncated: got error %v, want ErrCorrupt", err)
	}
}
