package pdq

import (
	"image"
	"image/color"
)

// The reference's luma coefficients, as float32 constants.
const (
	lumaR float32 = 0.299
	lumaG float32 = 0.587
	lumaB float32 = 0.114
)

// lumR, lumG and lumB hold each coefficient times each 8-bit value, rounded to float32: the
// products the reference computes before adding. lumGray is the luma of grey v (R=G=B=v).
var lumR, lumG, lumB, lumGray [256]float32

func init() {
	for v := range 256 {
		// The explicit float32 conversions round each product, as the reference does.
		lumR[v] = float32(lumaR * float32(v))
		lumG[v] = float32(lumaG * float32(v))
		lumB[v] = float32(lumaB * float32(v))
		lumGray[v] = luma8(uint8(v), uint8(v), uint8(v))
	}
}

// luma8 is the reference's luma of one straight 8-bit RGB pixel: (0.299 R + 0.587 G) + 0.114 B,
// each product and each sum rounded to float32.
func luma8(r, g, b uint8) float32 {
	return (lumR[r] + lumG[g]) + lumB[b]
}

// rowReader fills dst (one float32 per column) with the luma of row y of an image, y counted
// from the top of its bounds.
type rowReader interface {
	row(y int, dst []float32)
}

// area is the part of an image's pixel array that its bounds cover.
type area struct {
	x0, y0, w int
}

func areaOf(img image.Image) area {
	b := img.Bounds()
	return area{b.Min.X, b.Min.Y, b.Dx()}
}

// lumaReader returns the rowReader for img. Every reader gives exactly what genericReader gives:
// each pixel converted with [color.NRGBAModel], alpha dropped, then [luma8]. The concrete types
// that decoders return have readers that read their pixel arrays directly; the tests check each
// against genericReader.
func lumaReader(img image.Image) rowReader {
	a := areaOf(img)
	switch m := img.(type) {
	case *image.YCbCr:
		return ycbcrReader{m, a}
	case *image.NRGBA:
		return nrgbaReader{m, a}
	case *image.RGBA:
		return rgbaReader{m, a}
	case *image.Gray:
		return grayReader{m, a}
	case *image.Gray16:
		return gray16Reader{m, a}
	case *image.Paletted:
		return newPalettedReader(m, a)
	case *image.NYCbCrA:
		return nycbcraReader{m, a}
	case *image.RGBA64:
		return rgba64Reader{m, a}
	case *image.NRGBA64:
		return nrgba64Reader{m, a}
	case *image.CMYK:
		return cmykReader{m, a}
	case *RGB24:
		return rgb24Reader{m, a}
	}
	return genericReader{img, a}
}

type genericReader struct {
	img image.Image
	area
}

func (r genericReader) row(y int, dst []float32) {
	for x := range dst[:r.w] {
		n := color.NRGBAModel.Convert(r.img.At(r.x0+x, r.y0+y)).(color.NRGBA)
		dst[x] = luma8(n.R, n.G, n.B)
	}
}

type nrgbaReader struct {
	m *image.NRGBA
	area
}

func (r nrgbaReader) row(y int, dst []float32) {
	p := r.m.Pix[r.m.PixOffset(r.x0, r.y0+y):]
	p = p[:4*r.w]
	for x := range dst[:r.w] {
		q := p[4*x : 4*x+3 : 4*x+3]
		dst[x] = luma8(q[0], q[1], q[2])
	}
}

type rgbaReader struct {
	m *image.RGBA
	area
}

func (r rgbaReader) row(y int, dst []float32) {
	p := r.m.Pix[r.m.PixOffset(r.x0, r.y0+y):]
	p = p[:4*r.w]
	for x := range dst[:r.w] {
		q := p[4*x : 4*x+4 : 4*x+4]
		if a := q[3]; a == 0xff {
			dst[x] = luma8(q[0], q[1], q[2])
		} else {
			dst[x] = luma8(unpremul8(q[0], a), unpremul8(q[1], a), unpremul8(q[2], a))
		}
	}
}

type grayReader struct {
	m *image.Gray
	area
}

func (r grayReader) row(y int, dst []float32) {
	p := r.m.Pix[r.m.PixOffset(r.x0, r.y0+y):]
	p = p[:r.w]
	for x, v := range p {
		dst[x] = lumGray[v]
	}
}

type gray16Reader struct {
	m *image.Gray16
	area
}

func (r gray16Reader) row(y int, dst []float32) {
	p := r.m.Pix[r.m.PixOffset(r.x0, r.y0+y):]
	p = p[:2*r.w]
	for x := range dst[:r.w] {
		dst[x] = lumGray[p[2*x]] // the high byte: v>>8
	}
}

type palettedReader struct {
	m   *image.Paletted
	pal *[256]float32
	area
}

func newPalettedReader(m *image.Paletted, a area) palettedReader {
	// An index past the end of the palette (which image.Paletted.At would panic on) reads as
	// black, luma 0.
	pal := new([256]float32)
	for i, c := range m.Palette[:min(len(m.Palette), len(pal))] {
		n := color.NRGBAModel.Convert(c).(color.NRGBA)
		pal[i] = luma8(n.R, n.G, n.B)
	}
	return palettedReader{m, pal, a}
}

func (r palettedReader) row(y int, dst []float32) {
	p := r.m.Pix[r.m.PixOffset(r.x0, r.y0+y):]
	p = p[:r.w]
	for x, v := range p {
		dst[x] = r.pal[v]
	}
}

// The remaining types are rare as decoder output; their readers skip only the interface
// conversion of the generic path, computing each pixel's RGBA() as the generic path does.

type nycbcraReader struct {
	m *image.NYCbCrA
	area
}

func (r nycbcraReader) row(y int, dst []float32) {
	for x := range dst[:r.w] {
		dst[x] = lumaRGBA64(r.m.NYCbCrAAt(r.x0+x, r.y0+y).RGBA())
	}
}

type rgba64Reader struct {
	m *image.RGBA64
	area
}

func (r rgba64Reader) row(y int, dst []float32) {
	for x := range dst[:r.w] {
		dst[x] = lumaRGBA64(r.m.RGBA64At(r.x0+x, r.y0+y).RGBA())
	}
}

type nrgba64Reader struct {
	m *image.NRGBA64
	area
}

func (r nrgba64Reader) row(y int, dst []float32) {
	for x := range dst[:r.w] {
		dst[x] = lumaRGBA64(r.m.NRGBA64At(r.x0+x, r.y0+y).RGBA())
	}
}

type cmykReader struct {
	m *image.CMYK
	area
}

func (r cmykReader) row(y int, dst []float32) {
	for x := range dst[:r.w] {
		dst[x] = lumaRGBA64(r.m.CMYKAt(r.x0+x, r.y0+y).RGBA())
	}
}

// unpremul8 is what [color.NRGBAModel] makes of one 8-bit premultiplied channel c with alpha a.
func unpremul8(c, a uint8) uint8 {
	switch a {
	case 0xff:
		return c
	case 0:
		return 0
	}
	return uint8((uint32(c) * 0x101 * 0xffff / (uint32(a) * 0x101)) >> 8)
}

// lumaRGBA64 is the luma of a colour given by its premultiplied 16-bit RGBA() values, converted as
// [color.NRGBAModel] converts any colour that is not already a [color.NRGBA].
func lumaRGBA64(r, g, b, a uint32) float32 {
	switch a {
	case 0xffff:
	case 0:
		r, g, b = 0, 0, 0
	default:
		r = r * 0xffff / a
		g = g * 0xffff / a
		b = b * 0xffff / a
	}
	return luma8(uint8(r>>8), uint8(g>>8), uint8(b>>8))
}

// YCbCr pixels convert to RGB with the fixed-point arithmetic of [color.YCbCrToRGB] (which is
// what [color.NRGBAModel] gives for a [color.YCbCr]): each channel is Y·0x10101 plus a chroma term,
// in 16.16 fixed point, clamped to 0..255. The clamp and the luma product are folded into one
// table per channel indexed by the fixed-point value's integer part (v>>16), which over all inputs
// lies in -227..481; a test checks the result against color.YCbCrToRGB for every input.
const (
	ycbcrTabOffset = 256  // table index of integer part 0
	ycbcrTabMask   = 1023 // the tables' size minus one; every index is already in range
)

var ycbcrLumR, ycbcrLumG, ycbcrLumB [ycbcrTabMask + 1]float32

func init() {
	for i := range ycbcrTabMask + 1 {
		v := uint8(min(max(i-ycbcrTabOffset, 0), 255))
		ycbcrLumR[i], ycbcrLumG[i], ycbcrLumB[i] = lumR[v], lumG[v], lumB[v]
	}
}

// ycbcrChroma returns the chroma terms of R, G and B in 16.16 fixed point.
func ycbcrChroma(cb, cr uint8) (r, g, b int32) {
	cb1 := int32(cb) - 128
	cr1 := int32(cr) - 128
	return 91881 * cr1, -22554*cb1 - 46802*cr1, 116130 * cb1
}

// ycbcrLuma is the luma of the pixel with luma sample y and chroma terms rc, gc, bc.
func ycbcrLuma(y uint8, rc, gc, bc int32) float32 {
	yy := int32(y) * 0x10101
	return (ycbcrLumR[((yy+rc)>>16+ycbcrTabOffset)&ycbcrTabMask] +
		ycbcrLumG[((yy+gc)>>16+ycbcrTabOffset)&ycbcrTabMask]) +
		ycbcrLumB[((yy+bc)>>16+ycbcrTabOffset)&ycbcrTabMask]
}

// ycbcrReader reads an [image.YCbCr] plane by plane. For 4:4:4, and for 4:2:2 and 4:2:0 with an
// even, non-negative left edge (every image a decoder returns), each chroma sample serves one or
// two adjacent pixels of the row; anything else finds each pixel's chroma sample with
// [image.YCbCr.COffset] (whose integer division rounds towards zero at negative coordinates).
type ycbcrReader struct {
	m *image.YCbCr
	area
}

func (r ycbcrReader) row(y int, dst []float32) {
	m, x0, w := r.m, r.x0, r.w
	yy := r.y0 + y
	yrow := m.Y[m.YOffset(x0, yy):]
	yrow = yrow[:w]
	dst = dst[:w]
	switch ratio := m.SubsampleRatio; {
	case ratio == image.YCbCrSubsampleRatio444:
		ci := m.COffset(x0, yy)
		cb := m.Cb[ci : ci+w]
		cr := m.Cr[ci : ci+w]
		for x, lv := range yrow {
			rc, gc, bc := ycbcrChroma(cb[x], cr[x])
			dst[x] = ycbcrLuma(lv, rc, gc, bc)
		}
	case (ratio == image.YCbCrSubsampleRatio422 || ratio == image.YCbCrSubsampleRatio420) && x0 >= 0 && x0%2 == 0:
		// Pixel x's chroma column is x/2: with x0 even and not negative, (x0+x)/2 - x0/2 = x/2.
		ci := m.COffset(x0, yy)
		n := (w + 1) / 2
		cb := m.Cb[ci : ci+n]
		cr := m.Cr[ci : ci+n]
		for c := range w / 2 {
			rc, gc, bc := ycbcrChroma(cb[c], cr[c])
			d := dst[2*c : 2*c+2 : 2*c+2]
			l := yrow[2*c : 2*c+2 : 2*c+2]
			d[0] = ycbcrLuma(l[0], rc, gc, bc)
			d[1] = ycbcrLuma(l[1], rc, gc, bc)
		}
		if w%2 == 1 {
			rc, gc, bc := ycbcrChroma(cb[n-1], cr[n-1])
			dst[w-1] = ycbcrLuma(yrow[w-1], rc, gc, bc)
		}
	default:
		for x, lv := range yrow {
			ci := m.COffset(x0+x, yy)
			rc, gc, bc := ycbcrChroma(m.Cb[ci], m.Cr[ci])
			dst[x] = ycbcrLuma(lv, rc, gc, bc)
		}
	}
}
