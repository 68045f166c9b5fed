package pdq

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
)

// bitWriter writes bits least significant first, as WebP lossless streams are read.
type bitWriter struct {
	buf   []byte
	nbits uint
}

func (w *bitWriter) write(v uint32, n uint) {
	for i := range n {
		if w.nbits%8 == 0 {
			w.buf = append(w.buf, 0)
		}
		w.buf[len(w.buf)-1] |= byte((v>>i)&1) << (w.nbits % 8)
		w.nbits++
	}
}

// webpLossless returns a WebP lossless (VP8L) file of a width×height image of one colour: no
// transforms and five prefix codes of one symbol each, so every pixel takes no bits at all.
func webpLossless(width, height int, c color.NRGBA) []byte {
	var w bitWriter
	w.write(0x2f, 8) // signature
	w.write(uint32(width-1), 14)
	w.write(uint32(height-1), 14)
	w.write(1, 1)                                        // alpha is used
	w.write(0, 3)                                        // version
	w.write(0, 1)                                        // no transform
	w.write(0, 1)                                        // no colour cache
	w.write(0, 1)                                        // no meta prefix codes
	for _, sym := range []uint8{c.G, c.R, c.B, c.A, 0} { // green, red, blue, alpha, distance
		w.write(1, 1) // simple code
		w.write(0, 1) // one symbol
		w.write(1, 1) // of 8 bits
		w.write(uint32(sym), 8)
	}
	chunk := w.buf
	if len(chunk)%2 == 1 {
		chunk = append(chunk, 0)
	}
	var out bytes.Buffer
	out.WriteString("RIFF")
	binary.Write(&out, binary.LittleEndian, uint32(4+8+len(chunk)))
	out.WriteString("WEBPVP8L")
	binary.Write(&out, binary.LittleEndian, uint32(len(w.buf)))
	out.Write(chunk)
	return out.Bytes()
}

// pngHeader returns the start of a PNG file declaring a width×height 8-bit RGB image: signature
// and a valid IHDR chunk, no pixel data.
func pngHeader(width, height uint32) []byte {
	var ihdr [13]byte
	binary.BigEndian.PutUint32(ihdr[0:], width)
	binary.BigEndian.PutUint32(ihdr[4:], height)
	ihdr[8], ihdr[9] = 8, 2 // bit depth 8, colour type RGB
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	binary.Write(&b, binary.BigEndian, uint32(len(ihdr)))
	crc := crc32.NewIEEE()
	io.MultiWriter(&b, crc).Write(append([]byte("IHDR"), ihdr[:]...))
	binary.Write(&b, binary.BigEndian, crc.Sum32())
	return b.Bytes()
}

// gifHeader returns a GIF header and logical screen descriptor declaring width×height, with a
// two-colour global palette and nothing after it.
func gifHeader(width, height uint16) []byte {
	b := []byte("GIF89a")
	b = binary.LittleEndian.AppendUint16(b, width)
	b = binary.LittleEndian.AppendUint16(b, height)
	b = append(b, 0x80, 0, 0)             // global colour table of 2 entries
	b = append(b, 0, 0, 0, 255, 255, 255) // black, white
	return b
}

// bmpHeader returns the headers of a 24-bit BMP declaring width×height, without pixels.
func bmpHeader(width, height int32) []byte {
	b := []byte("BM")
	b = binary.LittleEndian.AppendUint32(b, 54) // file size (not checked)
	b = binary.LittleEndian.AppendUint32(b, 0)  // reserved
	b = binary.LittleEndian.AppendUint32(b, 54) // pixel data offset
	b = binary.LittleEndian.AppendUint32(b, 40) // BITMAPINFOHEADER
	b = binary.LittleEndian.AppendUint32(b, uint32(width))
	b = binary.LittleEndian.AppendUint32(b, uint32(height))
	b = binary.LittleEndian.AppendUint16(b, 1)  // planes
	b = binary.LittleEndian.AppendUint16(b, 24) // bits per pixel
	return append(b, make([]byte, 24)...)       // no compression, sizes and palette 0
}

// jpegHeader returns the start of a baseline JFIF JPEG declaring width×height, up to its frame
// header.
func jpegHeader(width, height uint16) []byte {
	b := []byte{0xff, 0xd8}
	b = append(b, 0xff, 0xe0, 0, 16) // APP0, JFIF 1.1, no units, density 1:1, no thumbnail
	b = append(b, "JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"...)
	b = append(b, 0xff, 0xc0, 0, 11, 8) // SOF0, 8 bits
	b = binary.BigEndian.AppendUint16(b, height)
	b = binary.BigEndian.AppendUint16(b, width)
	return append(b, 1, 1, 0x11, 0) // one component, 1×1 sampling, table 0
}

// tiffHeader returns a little-endian TIFF whose one IFD declares a width×height 8-bit grey image
// with one strip of no bytes.
func tiffHeader(width, height uint32) []byte {
	type entry struct {
		tag, typ uint16
		val      uint32
	}
	entries := []entry{
		{256, 4, width},  // ImageWidth
		{257, 4, height}, // ImageLength
		{258, 3, 8},      // BitsPerSample
		{259, 3, 1},      // Compression: none
		{262, 3, 1},      // PhotometricInterpretation: black is zero
		{273, 4, 0},      // StripOffsets
		{277, 3, 1},      // SamplesPerPixel
		{278, 4, height}, // RowsPerStrip
		{279, 4, 0},      // StripByteCounts
	}
	b := []byte("II*\x00")
	b = binary.LittleEndian.AppendUint32(b, 8)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(entries)))
	for _, e := range entries {
		b = binary.LittleEndian.AppendUint16(b, e.tag)
		b = binary.LittleEndian.AppendUint16(b, e.typ)
		b = binary.LittleEndian.AppendUint32(b, 1)
		b = binary.LittleEndian.AppendUint32(b, e.val)
	}
	return binary.LittleEndian.AppendUint32(b, 0)
}

// sampleImage is a small image with structure, for encoding in every format.
func sampleImage() *image.NRGBA {
	return randomImage(rand.New(rand.NewPCG(5, 6)), 40, 30)
}

// encoded returns sampleImage encoded in each format with an encoder, keyed by format name.
func encoded(t testing.TB) map[string][]byte {
	t.Helper()
	return encode(t, sampleImage())
}

// encode returns img encoded in each format (WebP: a lossless image of its size and one colour),
// keyed by format name.
func encode(t testing.TB, img *image.NRGBA) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	encoders := map[string]func(io.Writer, image.Image) error{
		"png":  png.Encode,
		"jpeg": func(w io.Writer, m image.Image) error { return jpeg.Encode(w, m, &jpeg.Options{Quality: 90}) },
		"gif":  func(w io.Writer, m image.Image) error { return gif.Encode(w, m, nil) },
		"bmp":  bmp.Encode,
		"tiff": func(w io.Writer, m image.Image) error { return tiff.Encode(w, m, nil) },
	}
	for name, enc := range encoders {
		var b bytes.Buffer
		if err := enc(&b, img); err != nil {
			t.Fatalf("encoding %s: %v", name, err)
		}
		out[name] = b.Bytes()
	}
	b := img.Bounds()
	out["webp"] = webpLossless(b.Dx(), b.Dy(), color.NRGBA{200, 100, 50, 255})
	return out
}

func TestDecodeFormats(t *testing.T) {
	src := sampleImage()
	srcHash, srcQ := HashImage(src)
	for name, data := range encoded(t) {
		t.Run(name, func(t *testing.T) {
			img, format, err := Decode(bytes.NewReader(data), DecodeOptions{})
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if format != name {
				t.Errorf("format: got %q, want %q", format, name)
			}
			if got, want := img.Bounds(), image.Rect(0, 0, 40, 30); got != want {
				t.Errorf("bounds: got %v, want %v", got, want)
			}
			h, q := HashImage(img)
			switch name {
			case "png", "bmp", "tiff": // lossless: the same pixels, so the same hash
				if h != srcHash || q != srcQ {
					t.Errorf("hash: got %v quality %d, want %v quality %d", h, q, srcHash, srcQ)
				}
			case "webp": // one colour
				if c := color.NRGBAModel.Convert(img.At(17, 9)); c != (color.NRGBA{200, 100, 50, 255}) {
					t.Errorf("pixel: got %v, want {200 100 50 255}", c)
				}
			}
		})
	}
}

func TestDecodeLimits(t *testing.T) {
	data := encoded(t)["png"] // 40×30 = 1200 pixels
	tests := []struct {
		name    string
		opts    DecodeOptions
		wantErr error
	}{
		{"defaults", DecodeOptions{}, nil},
		{"pixels at limit", DecodeOptions{MaxPixels: 1200}, nil},
		{"pixels over limit", DecodeOptions{MaxPixels: 1199}, ErrTooLarge},
		{"bytes at limit", DecodeOptions{MaxBytes: int64(len(data))}, nil},
		{"bytes over limit", DecodeOptions{MaxBytes: int64(len(data)) - 1}, ErrTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img, _, err := Decode(bytes.NewReader(data), tc.opts)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("got error %v, want %v", err, tc.wantErr)
			}
			if (img == nil) != (tc.wantErr != nil) {
				t.Errorf("got image %v with error %v", img != nil, err)
			}
		})
	}
	for _, opts := range []DecodeOptions{{MaxPixels: -1}, {MaxBytes: -1}} {
		if _, _, err := Decode(bytes.NewReader(data), opts); err == nil || !strings.Contains(err.Error(), "negative") {
			t.Errorf("Decode with %+v: got error %v, want one saying the option is negative", opts, err)
		}
	}
	if got := DefaultDecodeOptions(); got.MaxPixels != DefaultMaxPixels || got.MaxBytes != DefaultMaxBytes {
		t.Errorf("DefaultDecodeOptions: got %+v, want MaxPixels %d, MaxBytes %d", got, DefaultMaxPixels, DefaultMaxBytes)
	}
}

// TestDecompressionBombs feeds headers declaring huge images. Each must be refused with
// ErrTooLarge before its pixels are allocated: the whole call may allocate only a little.
func TestDecompressionBombs(t *testing.T) {
	tests := []struct {
		name string
		data []byte
	}{
		{"png 100000x100000", pngHeader(100000, 100000)},
		{"png 10^6 square", pngHeader(1000000, 1000000)},
		{"gif 65535x65535", gifHeader(65535, 65535)},
		{"bmp 100000x100000", bmpHeader(100000, 100000)},
		{"jpeg 65535x65535", jpegHeader(65535, 65535)},
		{"tiff 100000x100000", tiffHeader(100000, 100000)},
		{"webp 16384x16384", webpLossless(16384, 16384, color.NRGBA{1, 2, 3, 255})},
		{"png 50001x1000 just over the default", pngHeader(50001, 1000)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, _, err := Decode(bytes.NewReader(tc.data), DecodeOptions{})
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("got error %v, want ErrTooLarge", err)
			}
			if !strings.Contains(err.Error(), "declares") {
				t.Errorf("got error %q, want it to say what the header declares", err)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
				t.Errorf("allocated %d bytes refusing it, want under 1 MiB", alloc)
			}
		})
	}
}

// TestDecodeBad checks that input that is not an image, or is a damaged one, gives the right
// sentinel and a message naming the format, and never a panic.
func TestDecodeBad(t *testing.T) {
	enc := encoded(t)
	jpg, err := os.ReadFile(filepath.Join(testdataDir, "images/pdq/data/misc-images/small.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	badCRC := bytes.Clone(enc["png"])
	badCRC[len(badCRC)/2] ^= 0xff
	tests := []struct {
		name     string
		data     []byte
		want     error
		contains string
	}{
		{"empty", nil, ErrUnsupportedFormat, "empty"},
		{"text", []byte("hello, world"), ErrUnsupportedFormat, `"hello, world"`},
		{"pdf", []byte("%PDF-1.7\n"), ErrUnsupportedFormat, "not JPEG"},
		{"riff wave", []byte("RIFF\x24\x00\x00\x00WAVEfmt "), ErrUnsupportedFormat, "not JPEG"},
		{"png signature only", enc["png"][:8], ErrCorrupt, "png header"},
		{"png half", enc["png"][:len(enc["png"])/2], ErrCorrupt, "png"},
		{"png bad checksum", badCRC, ErrCorrupt, "png"},
		{"jpeg half", jpg[:len(jpg)/2], ErrCorrupt, "jpeg"},
		{"jpeg garbage", append([]byte{0xff, 0xd8}, bytes.Repeat([]byte{0x42}, 100)...), ErrCorrupt, "jpeg header"},
		{"gif half", enc["gif"][:len(enc["gif"])/2], ErrCorrupt, "gif"},
		{"gif header only", gifHeader(10, 10), ErrCorrupt, "gif"},
		{"bmp half", enc["bmp"][:len(enc["bmp"])/2], ErrCorrupt, "bmp"},
		{"bmp header only", bmpHeader(10, 10), ErrCorrupt, "bmp"},
		{"tiff half", enc["tiff"][:len(enc["tiff"])/2], ErrCorrupt, "tiff"},
		{"tiff garbage", append([]byte("II*\x00"), bytes.Repeat([]byte{0xee}, 64)...), ErrCorrupt, "tiff"},
		{"webp half", enc["webp"][:len(enc["webp"])/2], ErrCorrupt, "webp"},
		{"png zero size", pngHeader(0, 0), ErrCorrupt, "png header"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img, _, err := Decode(bytes.NewReader(tc.data), DecodeOptions{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("got error %v, want %v", err, tc.want)
			}
			if img != nil {
				t.Errorf("got an image with error %v", err)
			}
			if !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("got error %q, want it to contain %q", err, tc.contains)
			}
		})
	}

	// The decoder's own error stays reachable.
	_, _, err = Decode(bytes.NewReader(badCRC), DecodeOptions{})
	var fe png.FormatError
	if !errors.As(err, &fe) {
		t.Errorf("bad checksum: got error %v, want one wrapping a png.FormatError", err)
	}
	_, _, err = Decode(bytes.NewReader(jpg[:len(jpg)/2]), DecodeOptions{})
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated JPEG: got error %v, want one wrapping io.ErrUnexpectedEOF", err)
	}
}

// TestDecodeTruncatedEverywhere cuts each encoded sample at every length and checks that Decode
// returns an image or an error wrapping a sentinel, never panicking.
func TestDecodeTruncatedEverywhere(t *testing.T) {
	for name, data := range encoded(t) {
		t.Run(name, func(t *testing.T) {
			step := max(1, len(data)/300)
			for n := 0; n < len(data); n += step {
				img, _, err := Decode(bytes.NewReader(data[:n]), DecodeOptions{})
				switch {
				case err == nil:
					HashImage(img) // a decoder may accept a file missing only its trailer
				case !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnsupportedFormat):
					t.Fatalf("cut at %d of %d bytes: got error %v, want ErrCorrupt or ErrUnsupportedFormat", n, len(data), err)
				}
			}
		})
	}
}

type failingReader struct{ n int }

var errDisk = errors.New("disk on fire")

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, errDisk
	}
	k := min(len(p), r.n)
	clear(p[:k])
	r.n -= k
	return k, nil
}

func TestDecodeReadError(t *testing.T) {
	_, _, err := Decode(&failingReader{n: 100}, DecodeOptions{})
	if !errors.Is(err, errDisk) {
		t.Errorf("got error %v, want one wrapping %v", err, errDisk)
	}
}

// TestDecodePanicRecovered checks that a decoder panicking on hostile input becomes ErrCorrupt.
// It swaps a format of the package's table, so it must not run in parallel with other tests.
func TestDecodePanicRecovered(t *testing.T) {
	saved := formats
	t.Cleanup(func() { formats = saved })
	formats = []format{{
		name:   "boom",
		magic:  "BOOM",
		config: func(io.Reader) (image.Config, error) { return image.Config{Width: 1, Height: 1}, nil },
		decode: func(io.Reader) (image.Image, error) { panic("index out of range") },
	}}
	_, _, err := Decode(strings.NewReader("BOOM!"), DecodeOptions{})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "index out of range") {
		t.Errorf("got error %v, want ErrCorrupt naming the panic", err)
	}
}

// FuzzDecode feeds hostile bytes to Decode and hashes whatever decodes: nothing may panic, an
// error must wrap one of the sentinels, and no image over the pixel limit may come back. The
// seeds are small (the fuzzer minimises every input that finds new code, and a short run must
// have time to finish that): a 9×7 image in every format, the smallest test images, and headers
// of images too large.
func FuzzDecode(f *testing.F) {
	for _, data := range encode(f, randomImage(rand.New(rand.NewPCG(5, 6)), 9, 7)) {
		f.Add(data)
	}
	for _, name := range []string{
		"images/synthetic/tiny-4x4.png",
		"images/synthetic/min-5x5.png",
		"images/pdq/data/misc-images/small.jpg",
		"images/python-threatexchange/threatexchange/tests/hashing/RANDOM_IMAGE_BASE64.png",
	} {
		data, err := os.ReadFile(filepath.Join(testdataDir, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add(pngHeader(100000, 100000))
	f.Add(gifHeader(300, 300))
	f.Add(tiffHeader(50, 50))
	f.Add(bmpHeader(20, 20))
	const limit = 1 << 16
	f.Fuzz(func(t *testing.T, data []byte) {
		img, _, err := Decode(bytes.NewReader(data), DecodeOptions{MaxPixels: limit})
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnsupportedFormat) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("got error %v, want one wrapping a sentinel", err)
			}
			return
		}
		b := img.Bounds()
		if n := int64(b.Dx()) * int64(b.Dy()); n > limit {
			t.Fatalf("got a %v image (%d pixels), over the limit of %d", b, n, limit)
		}
		h, q := HashImage(img)
		d, dq := HashImageDihedral(img)
		if q != dq || (b.Dx() != 64 || b.Dy() != 64) && h != d[Original] {
			t.Fatalf("HashImage gave %v quality %d, HashImageDihedral %v quality %d", h, q, d[Original], dq)
		}
	})
}

func ExampleDecode() {
	f, err := os.Open("../../testdata/pdq/images/pdq/data/bridge-mods/aaa-orig.jpg")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer f.Close()
	img, format, err := Decode(f, DecodeOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	h, quality := HashImage(img)
	fmt.Println(format, h, quality)
	// Output: jpeg f8f8f0cee0f4a84f06370a22028f67f0b36e2ed596621e1d33e6b39c4e9c9b22 100
}

// TestHashFile checks that HashFile gives what HashImage gives of Decode's image, and the same
// errors.
func TestHashFile(t *testing.T) {
	for name, data := range encoded(t) {
		img, format, err := Decode(bytes.NewReader(data), DecodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		wantH, wantQ := HashImage(img)
		for range 2 {
			h, q, f, err := HashFile(bytes.NewReader(data), DecodeOptions{})
			if err != nil || h != wantH || q != wantQ || f != format {
				t.Errorf("%s: got %v quality %d format %q error %v, want %v quality %d format %q", name, h, q, f, err, wantH, wantQ, format)
			}
		}
	}
	if _, _, _, err := HashFile(bytes.NewReader(pngHeader(100000, 100000)), DecodeOptions{}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("bomb: got error %v, want ErrTooLarge", err)
	}
	if _, _, _, err := HashFile(strings.NewReader("hello"), DecodeOptions{}); !errors.Is(err, ErrUnsupportedFormat) {
		t.Errorf("text: got error %v, want ErrUnsupportedFormat", err)
	}
	if _, _, _, err := HashFile(strings.NewReader("hello"), DecodeOptions{MaxBytes: -1}); err == nil {
		t.Errorf("negative MaxBytes: got no error")
	}
}
