package pdq

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"testing"
)

// randomFill gives every byte of p a random value.
func randomFill(r *rand.Rand, p []byte) {
	for i := range p {
		p[i] = uint8(r.Uint32())
	}
}

// premultiply makes 8-bit premultiplied pixels valid (channel ≤ alpha) for most pixels, keeping
// some opaque and some fully transparent, and leaves a few invalid ones (channel > alpha), which
// decoders never produce but the conversion must still treat as the generic path does.
func premultiply(r *rand.Rand, pix []byte) {
	for i := 0; i+3 < len(pix); i += 4 {
		switch r.IntN(8) {
		case 0:
			pix[i+3] = 0xff
		case 1:
			pix[i+3] = 0
		case 2:
			// Leave as is: possibly channel > alpha.
		default:
			a := pix[i+3]
			for k := range 3 {
				pix[i+k] = uint8(uint32(pix[i+k]) * uint32(a) / 255)
			}
		}
	}
}

// typedImages returns one image of each type with a reader of its own, random pixels, bounds
// that do not start at the origin, and (through SubImage) a stride wider than the bounds.
func typedImages(r *rand.Rand) []image.Image {
	rect := image.Rect(3, -2, 3+37, -2+23)
	outer := image.Rect(1, -5, 50, 30)
	sub := func(img interface {
		image.Image
		SubImage(image.Rectangle) image.Image
	}) image.Image {
		return img.SubImage(rect)
	}
	var imgs []image.Image

	nrgba := image.NewNRGBA(outer)
	randomFill(r, nrgba.Pix)
	imgs = append(imgs, sub(nrgba))

	rgba := image.NewRGBA(outer)
	randomFill(r, rgba.Pix)
	premultiply(r, rgba.Pix)
	imgs = append(imgs, sub(rgba))

	gray := image.NewGray(outer)
	randomFill(r, gray.Pix)
	imgs = append(imgs, sub(gray))

	gray16 := image.NewGray16(outer)
	randomFill(r, gray16.Pix)
	imgs = append(imgs, sub(gray16))

	pal := make(color.Palette, 200)
	for i := range pal {
		pal[i] = color.NRGBA{uint8(r.Uint32()), uint8(r.Uint32()), uint8(r.Uint32()), uint8(r.Uint32())}
	}
	pal[7] = color.RGBA{10, 20, 30, 40}
	pal[8] = color.Gray16{Y: 0xabcd}
	paletted := image.NewPaletted(outer, pal)
	for i := range paletted.Pix {
		paletted.Pix[i] = uint8(r.IntN(len(pal)))
	}
	imgs = append(imgs, sub(paletted))

	for _, ratio := range []image.YCbCrSubsampleRatio{
		image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio420,
		image.YCbCrSubsampleRatio440, image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410,
	} {
		for _, b := range []image.Rectangle{image.Rect(0, 0, 37, 23), image.Rect(-3, 1, 34, 24), image.Rect(-4, -3, 33, 20), outer} {
			m := image.NewYCbCr(b, ratio)
			randomFill(r, m.Y)
			randomFill(r, m.Cb)
			randomFill(r, m.Cr)
			imgs = append(imgs, m)
		}
		m := image.NewYCbCr(outer, ratio)
		randomFill(r, m.Y)
		randomFill(r, m.Cb)
		randomFill(r, m.Cr)
		imgs = append(imgs, sub(m), m.SubImage(image.Rect(4, -2, 4+36, -2+23)))
	}

	nycbcra := image.NewNYCbCrA(outer, image.YCbCrSubsampleRatio420)
	randomFill(r, nycbcra.Y)
	randomFill(r, nycbcra.Cb)
	randomFill(r, nycbcra.Cr)
	randomFill(r, nycbcra.A)
	imgs = append(imgs, sub(nycbcra))

	rgba64 := image.NewRGBA64(outer)
	randomFill(r, rgba64.Pix)
	imgs = append(imgs, sub(rgba64))

	nrgba64 := image.NewNRGBA64(outer)
	randomFill(r, nrgba64.Pix)
	imgs = append(imgs, sub(nrgba64))

	cmyk := image.NewCMYK(outer)
	randomFill(r, cmyk.Pix)
	imgs = append(imgs, sub(cmyk))

	rgb24 := &RGB24{Pix: make([]uint8, 3*outer.Dx()*outer.Dy()), Stride: 3 * outer.Dx(), Rect: outer}
	randomFill(r, rgb24.Pix)
	imgs = append(imgs, rgb24, &RGB24{Pix: rgb24.Pix[rgb24.PixOffset(rect.Min.X, rect.Min.Y):], Stride: rgb24.Stride, Rect: rect})

	alpha := image.NewAlpha(outer) // no reader of its own: the generic path itself
	randomFill(r, alpha.Pix)
	imgs = append(imgs, sub(alpha))
	return imgs
}

// TestReadersMatchGeneric checks each type's reader against the generic conversion, pixel by
// pixel, to the bit.
func TestReadersMatchGeneric(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i, img := range typedImages(r) {
		name := fmt.Sprintf("%d-%T", i, img)
		if m, ok := img.(*image.YCbCr); ok {
			name += "-" + m.SubsampleRatio.String()
		}
		t.Run(name, func(t *testing.T) {
			a := areaOf(img)
			fast := lumaReader(img)
			generic := genericReader{img, a}
			got := make([]float32, a.w)
			want := make([]float32, a.w)
			for y := range img.Bounds().Dy() {
				fast.row(y, got)
				generic.row(y, want)
				for x := range got {
					if math.Float32bits(got[x]) != math.Float32bits(want[x]) {
						p := image.Pt(a.x0+x, a.y0+y)
						t.Fatalf("pixel %v (%v): got luma %v, want %v", p, img.At(p.X, p.Y), got[x], want[x])
					}
				}
			}
		})
	}
}

// TestYCbCrLumaAllInputs checks the table-driven YCbCr conversion against color.YCbCrToRGB for
// every one of the 2^24 inputs.
func TestYCbCrLumaAllInputs(t *testing.T) {
	for cb := range 256 {
		for cr := range 256 {
			rc, gc, bc := ycbcrChroma(uint8(cb), uint8(cr))
			for y := range 256 {
				r, g, b := color.YCbCrToRGB(uint8(y), uint8(cb), uint8(cr))
				want := luma8(r, g, b)
				if got := ycbcrLuma(uint8(y), rc, gc, bc); math.Float32bits(got) != math.Float32bits(want) {
					t.Fatalf("Y=%d Cb=%d Cr=%d: got luma %v, want %v (RGB %d,%d,%d)", y, cb, cr, got, want, r, g, b)
				}
			}
		}
	}
}

// TestLumaProducts checks the luma tables against the reference's arithmetic written out with
// explicit float32 rounding, and that grey is converted as RGB (not as the grey value itself,
// which differs for some values).
func TestLumaProducts(t *testing.T) {
	differ := 0
	for v := range 256 {
		f := float32(v)
		want := (float32(float32(0.299)*f) + float32(float32(0.587)*f)) + float32(float32(0.114)*f)
		if got := luma8(uint8(v), uint8(v), uint8(v)); got != want {
			t.Errorf("luma8(%d, %d, %d): got %v, want %v", v, v, v, got, want)
		}
		if lumGray[v] != want {
			t.Errorf("lumGray[%d]: got %v, want %v", v, lumGray[v], want)
		}
		if want != f {
			differ++
		}
	}
	if differ == 0 {
		t.Error("got the luma of every grey equal to its value; the test no longer checks the grey path")
	}
	if got, want := luma8(255, 0, 0), float32(0.299)*255; got != want {
		t.Errorf("luma8(255, 0, 0): got %v, want %v", got, want)
	}
}
