package pdq

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"testing"
)

// This file holds a second, deliberately plain implementation of the reference's downsampling:
// the whole image in two float32 buffers, each box-filter pass over all of it in turn, then the
// 64×64 samples. The production code streams the same arithmetic a band of rows at a time and
// skips outputs nobody samples; these tests check that the two agree to the bit on images of
// every awkward shape.

// modelLuma is the luma of every pixel through the generic conversion (color.NRGBAModel).
func modelLuma(img image.Image) ([]float32, int, int) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	l := make([]float32, w*h)
	for y := range h {
		for x := range w {
			n := color.NRGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
			l[y*w+x] = luma8(n.R, n.G, n.B)
		}
	}
	return l, w, h
}

// modelBox is the reference's 1D box filter over n values at in[0], in[stride], ….
func modelBox(in, out []float32, n, stride, full int) {
	half := (full + 2) / 2
	var sum float32
	cnt := 0
	oi := 0
	for ri := range n + half - 1 {
		// Entering: input ri, if there is one. Leaving: input ri-full, once the window is full.
		if ri < n {
			sum += in[ri*stride]
			if ri-full < 0 {
				cnt++
			}
		}
		if li := ri - full; li >= 0 {
			sum -= in[li*stride]
			if ri >= n {
				cnt--
			}
		}
		if ri >= half-1 {
			out[oi*stride] = sum / float32(cnt)
			oi++
		}
	}
}

// modelDownsample is the reference's 64×64 downsample of a w×h luma buffer, computed plainly.
func modelDownsample(luma []float32, w, h int) *[64][64]float32 {
	buf1 := append([]float32(nil), luma...)
	buf2 := make([]float32, len(luma))
	rowWin, colWin := jaroszWindow(w), jaroszWindow(h)
	for range 2 {
		for y := range h {
			modelBox(buf1[y*w:], buf2[y*w:], w, 1, rowWin)
		}
		for x := range w {
			modelBox(buf2[x:], buf1[x:], h, w, colWin)
		}
	}
	var out [64][64]float32
	for i := range 64 {
		y := int((float64(i) + 0.5) * float64(h) / 64)
		for j := range 64 {
			x := int((float64(j) + 0.5) * float64(w) / 64)
			out[i][j] = buf1[y*w+x]
		}
	}
	return &out
}

// randomImage returns a w×h NRGBA image of smooth gradients plus noise, so that its downsample
// has structure and its hash bits are not all decided by noise.
func randomImage(r *rand.Rand, w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	fx, fy := r.Float64()*10, r.Float64()*10
	for y := range h {
		for x := range w {
			base := 127 + 100*math.Sin(fx*float64(x)/float64(w)+fy*float64(y)/float64(h))
			i := img.PixOffset(x, y)
			img.Pix[i] = uint8(max(0, min(255, base+float64(r.IntN(40))-20)))
			img.Pix[i+1] = uint8(r.IntN(256))
			img.Pix[i+2] = uint8(max(0, min(255, 255-base+float64(r.IntN(20)))))
			img.Pix[i+3] = 0xff
		}
	}
	return img
}

func TestModelBoxMatchesDiagram(t *testing.T) {
	// The reference's own worked examples: inputs 0..15, windows 7 and 8, listed as sums.
	in := make([]float32, 16)
	for i := range in {
		in[i] = float32(i)
	}
	tests := []struct {
		full int
		sums []float32
		cnts []float32
	}{
		{7, []float32{6, 10, 15, 21, 28, 35, 42, 49, 56, 63, 70, 77, 84, 75, 65, 54}, []float32{4, 5, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 5, 4}},
		{8, []float32{10, 15, 21, 28, 36, 44, 52, 60, 68, 76, 84, 92, 84, 75, 65, 54}, []float32{5, 6, 7, 8, 8, 8, 8, 8, 8, 8, 8, 8, 7, 6, 5, 4}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.full), func(t *testing.T) {
			got := make([]float32, 16)
			modelBox(in, got, 16, 1, tc.full)
			prod := make([]float32, 16)
			boxRow1(in, prod, tc.full)
			for i := range got {
				if want := tc.sums[i] / tc.cnts[i]; got[i] != want || prod[i] != want {
					t.Errorf("output %d: got model %v, boxRow1 %v, want %v", i, got[i], prod[i], want)
				}
			}
		})
	}
}

func TestStreamingMatchesModel(t *testing.T) {
	sizes := [][2]int{
		{5, 5}, {5, 6}, {6, 5}, {7, 9}, {5, 400}, {400, 5}, {1000, 7}, {9, 700},
		{63, 63}, {63, 65}, {64, 64}, {65, 64}, {127, 129}, {128, 128}, {129, 130},
		{255, 257}, {256, 256}, {300, 211}, {513, 334}, {640, 480}, {1203, 901},
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 6 {
		sizes = append(sizes, [2]int{5 + r.IntN(700), 5 + r.IntN(700)})
	}
	for _, sz := range sizes {
		w, h := sz[0], sz[1]
		t.Run(fmt.Sprintf("%dx%d", w, h), func(t *testing.T) {
			t.Parallel()
			img := randomImage(rand.New(rand.NewPCG(uint64(w), uint64(h))), w, h)
			luma, _, _ := modelLuma(img)
			want := modelDownsample(luma, w, h)
			wk := new(work)
			if !wk.downsample(img, false) {
				t.Fatal("downsample refused the image")
			}
			for i := range 64 {
				for j := range 64 {
					if got := wk.buf64[i][j]; math.Float32bits(got) != math.Float32bits(want[i][j]) {
						t.Fatalf("downsample[%d][%d]: got %v, want %v", i, j, got, want[i][j])
					}
				}
			}
			// The pooled path must give the same as a fresh one, whatever size it last ran at.
			h1, q1 := HashImage(img)
			wk.dct()
			var h2 Hash
			wk.bits(&wk.b16, &h2)
			if w != 64 || h != 64 {
				if h1 != h2 || q1 != wk.quality {
					t.Errorf("HashImage: got %v quality %d, want %v quality %d", h1, q1, h2, wk.quality)
				}
			}
		})
	}
}
