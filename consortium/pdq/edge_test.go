package pdq

import (
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

func TestTooSmall(t *testing.T) {
	sizes := [][2]int{{0, 0}, {1, 1}, {4, 4}, {4, 5}, {5, 4}, {4, 1000}, {1000, 4}, {0, 100}}
	for _, sz := range sizes {
		t.Run(fmt.Sprintf("%dx%d", sz[0], sz[1]), func(t *testing.T) {
			img := randomImage(rand.New(rand.NewPCG(7, 8)), sz[0], sz[1])
			if h, q := HashImage(img); h != (Hash{}) || q != 0 {
				t.Errorf("HashImage: got %v quality %d, want the zero hash, quality 0", h, q)
			}
			d, q := HashImageDihedral(img)
			if d != (Dihedral{}) || q != 0 {
				t.Errorf("HashImageDihedral: got %v quality %d, want zero hashes, quality 0", d, q)
			}
		})
	}
	// The smallest hashable size gives a real hash.
	if h, _ := HashImage(randomImage(rand.New(rand.NewPCG(7, 8)), 5, 5)); h == (Hash{}) {
		t.Error("5x5: got the zero hash, want a hash")
	}
}

// TestExact64 checks the reference's two treatments of a 64×64 image: HashImage takes the luma as
// the downsample itself; HashImageDihedral filters it like any other size.
func TestExact64(t *testing.T) {
	img := randomImage(rand.New(rand.NewPCG(9, 10)), 64, 64)
	luma, _, _ := modelLuma(img)
	w := new(work)
	if !w.downsample(img, true) {
		t.Fatal("downsample refused 64x64")
	}
	for i := range 64 {
		for j := range 64 {
			if got, want := w.buf64[i][j], luma[64*i+j]; math.Float32bits(got) != math.Float32bits(want) {
				t.Fatalf("shortcut downsample[%d][%d]: got %v, want the luma %v", i, j, got, want)
			}
		}
	}
	want := modelDownsample(luma, 64, 64)
	if !w.downsample(img, false) {
		t.Fatal("downsample refused 64x64")
	}
	if w.buf64 != *want {
		t.Error("filtered downsample differs from the model")
	}
	h, q := HashImage(img)
	d, dq := HashImageDihedral(img)
	// Window 1 is the identity but for float rounding, so the two agree on this image.
	if h != d[Original] || q != dq {
		t.Errorf("got HashImage %v quality %d, HashImageDihedral %v quality %d, want equal", h, q, d[Original], dq)
	}
}

// TestStrips checks images far from square against the model, including windows of hundreds of
// pixels along one side and 1 along the other.
func TestStrips(t *testing.T) {
	for _, sz := range [][2]int{{5, 3000}, {3000, 5}, {20000, 6}, {6, 20000}, {64, 5}, {2, 3000}} {
		t.Run(fmt.Sprintf("%dx%d", sz[0], sz[1]), func(t *testing.T) {
			t.Parallel()
			img := randomImage(rand.New(rand.NewPCG(uint64(sz[0]), uint64(sz[1]))), sz[0], sz[1])
			h, q := HashImage(img)
			if sz[0] < minDim || sz[1] < minDim {
				if h != (Hash{}) || q != 0 {
					t.Errorf("got %v quality %d, want the zero hash, quality 0", h, q)
				}
				return
			}
			luma, w, ht := modelLuma(img)
			var want Hash
			wk := new(work)
			wk.buf64 = *modelDownsample(luma, w, ht)
			wk.dct()
			wk.bits(&wk.b16, &want)
			if wantQ := quality(&wk.buf64); h != want || q != wantQ {
				t.Errorf("got %v quality %d, want %v quality %d", h, q, want, wantQ)
			}
		})
	}
}

// TestLargeImage hashes a 14-megapixel image made in memory: a 1600×1004 photo with each pixel
// repeated 3 times along each axis. Nothing may resize it first (its hash stays near the photo's,
// not equal, since box windows of 38 pixels are not windows of 13 repeated), and hashing must not
// need memory in proportion to its size: the work buffers are a band of rows.
func TestLargeImage(t *testing.T) {
	photo := hashFile(t, "images/pdq/data/reg-test-input/dih/bridge-1-original.jpg", false).img
	small := image.NewGray(photo.Bounds())
	for y := range small.Rect.Dy() {
		for x := range small.Rect.Dx() {
			small.Set(x, y, photo.At(x, y))
		}
	}
	const factor = 3
	big := image.NewGray(image.Rect(0, 0, small.Rect.Dx()*factor, small.Rect.Dy()*factor))
	for y := range big.Rect.Dy() {
		row := big.Pix[y*big.Stride : y*big.Stride+big.Rect.Dx()]
		srow := small.Pix[(y/factor)*small.Stride:]
		for x := range row {
			row[x] = srow[x/factor]
		}
	}
	want, _ := HashImage(small)

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	got, q := HashImage(big)
	runtime.ReadMemStats(&after)
	if d := Distance(got, want); d > 16 {
		t.Errorf("distance to the hash of the image before upscaling: got %d, want at most 16", d)
	}
	if q != 100 {
		t.Errorf("quality: got %d, want 100", q)
	}
	// Buffers: about (window 24 + 12 rows) × 4800 float32s ≈ 0.7 MB; the image is 14 MB.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Errorf("HashImage allocated %d bytes for a %d-byte image, want under 4 MiB", alloc, len(big.Pix))
	}
}
