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

// lumaFunc fills dst (one float32 per column) with the luma of row y of an image, y counted from
// the top of its bounds.
type lumaFunc func(y int, dst []float32)

// lumaRows returns the lumaFunc for img. Every case gives exactly the values of the generic case:
// each pixel converted with [color.NRGBAModel], alpha dropped, then [luma8]. The concrete types
// that decoders return read their pixel arrays directly; the tests check each against the generic
// case.
func lumaRows(img image.Image) lumaFunc {
	b := img.Bounds()
	x0, y0, w := b.Min.X, b.Min.Y, b.Dx()
	switch m := img.(type) {
	case *image.YCbCr:
		return ycbcrRows(m)
	case *image.NRGBA:
		return func(y int, dst []float32) {
			p := m.Pix[m.PixOffset(x0, y0+y):]
			p = p[:4*w]
			for x := range dst[:w] {
				q := p[4*x : 4*x+3 : 4*x+3]
				dst[x] = luma8(q[0], q[1], q[2])
			}
		}
	case *image.RGBA:
		return func(y int, dst []float32) {
			p := m.Pix[m.PixOffset(x0, y0+y):]
			p = p[:4*w]
			for x := range dst[:w] {
				q := p[4*x : 4*x+4 : 4*x+4]
				if a := q[3]; a == 0xff {
					dst[x] = luma8(q[0], q[1], q[2])
				} else {
					dst[x] = luma8(unpremul8(q[0], a), unpremul8(q[1], a), unpremul8(q[2], a))
				}
			}
		}
	case *image.Gray:
		return func(y int, dst []float32) {
			p := m.Pix[m.PixOffset(x0, y0+y):]
			p = p[:w]
			for x, v := range p {
				dst[x] = lumGray[v]
			}
		}
	case *image.Gray16:
		return func(y int, dst []float32) {
			p := m.Pix[m.PixOffset(x0, y0+y):]
			p = p[:2*w]
			for x := range dst[:w] {
				dst[x] = lumGray[p[2*x]] // the high byte: v>>8
			}
		}
	case *image.Paletted:
		var pal [256]float32
		for i, c := range m.Palette {
			if i == len(pal) {
				break
			}
			n := color.NRGBAModel.Convert(c).(color.NRGBA)
			pal[i] = luma8(n.R, n.G, n.B)
		}
		// An index past the end of the palette (which image.Paletted.At would panic on) reads
		// as black, luma 0.
		return func(y int, dst []float32) {
			p := m.Pix[m.PixOffset(x0, y0+y):]
			p = p[:w]
			for x, v := range p {
				dst[x] = pal[v]
			}
		}
	case *image.NYCbCrA:
		return func(y int, dst []float32) {
			for x := range dst[:w] {
				dst[x] = lumaRGBA64(m.NYCbCrAAt(x0+x, y0+y).RGBA())
			}
		}
	case *image.RGBA64:
		return func(y int, dst []float32) {
			for x := range dst[:w] {
				dst[x] = lumaRGBA64(m.RGBA64At(x0+x, y0+y).RGBA())
			}
		}
	case *image.NRGBA64:
		return func(y int, dst []float32) {
			for x := range dst[:w] {
				dst[x] = lumaRGBA64(m.NRGBA64At(x0+x, y0+y).RGBA())
			}
		}
	case *image.CMYK:
		return func(y int, dst []float32) {
			for x := range dst[:w] {
				dst[x] = lumaRGBA64(m.CMYKAt(x0+x, y0+y).RGBA())
			}
		}
	}
	return func(y int, dst []float32) {
		for x := range dst[:w] {
			n := color.NRGBAModel.Convert(img.At(x0+x, y0+y)).(color.NRGBA)
			dst[x] = luma8(n.R, n.G, n.B)
		}
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

// ycbcrToRGB converts one JFIF YCbCr pixel to 8-bit RGB with the same fixed-point arithmetic as
// [color.YCbCrToRGB] (and so as [color.NRGBAModel] applied to a [color.YCbCr]). A test checks it
// against color.YCbCrToRGB for every input. The row loops below split it in two: the chroma terms
// (ycbcrChroma), computed once per chroma sample, and their sums with the luma term.
func ycbcrToRGB(y, cb, cr uint8) (uint8, uint8, uint8) {
	rc, gc, bc := ycbcrChroma(cb, cr)
	yy := int32(y) * 0x10101
	return clamp16(yy + rc), clamp16(yy + gc), clamp16(yy + bc)
}

// ycbcrChroma returns the chroma terms of R, G and B in 16.16 fixed point.
func ycbcrChroma(cb, cr uint8) (r, g, b int32) {
	cb1 := int32(cb) - 128
	cr1 := int32(cr) - 128
	return 91881 * cr1, -22554*cb1 - 46802*cr1, 116130 * cb1
}

// clamp16 turns a 16.16 fixed-point value into 0..255, saturating.
func clamp16(v int32) uint8 {
	if uint32(v)&0xff000000 == 0 {
		return uint8(v >> 16)
	}
	return uint8(^(v >> 31))
}

// ycbcrLuma is the luma of the pixel with luma sample y and chroma terms rc, gc, bc.
func ycbcrLuma(y uint8, rc, gc, bc int32) float32 {
	yy := int32(y) * 0x10101
	return luma8(clamp16(yy+rc), clamp16(yy+gc), clamp16(yy+bc))
}

// ycbcrRows reads an [image.YCbCr] plane by plane. For 4:4:4, 4:2:2 and 4:2:0 with an even left
// edge (every image a decoder returns) each chroma sample serves one or two adjacent pixels of the
// row; anything else finds each pixel's chroma sample with [image.YCbCr.COffset].
func ycbcrRows(m *image.YCbCr) lumaFunc {
	b := m.Rect
	x0, y0, w := b.Min.X, b.Min.Y, b.Dx()
	ratio := m.SubsampleRatio
	pairs := (ratio == image.YCbCrSubsampleRatio422 || ratio == image.YCbCrSubsampleRatio420) && x0%2 == 0
	return func(y int, dst []float32) {
		yy := y0 + y
		yrow := m.Y[m.YOffset(x0, yy):]
		yrow = yrow[:w]
		dst = dst[:w]
		switch {
		case ratio == image.YCbCrSubsampleRatio444:
			ci := m.COffset(x0, yy)
			cb := m.Cb[ci : ci+w]
			cr := m.Cr[ci : ci+w]
			for x, lv := range yrow {
				rc, gc, bc := ycbcrChroma(cb[x], cr[x])
				dst[x] = ycbcrLuma(lv, rc, gc, bc)
			}
		case pairs:
			ci := m.COffset(x0, yy)
			n := (w + 1) / 2
			cb := m.Cb[ci : ci+n]
			cr := m.Cr[ci : ci+n]
			x := 0
			for c := range w / 2 {
				rc, gc, bc := ycbcrChroma(cb[c], cr[c])
				d := dst[x : x+2 : x+2]
				l := yrow[x : x+2 : x+2]
				d[0] = ycbcrLuma(l[0], rc, gc, bc)
				d[1] = ycbcrLuma(l[1], rc, gc, bc)
				x += 2
			}
			if x < w {
				rc, gc, bc := ycbcrChroma(cb[n-1], cr[n-1])
				dst[x] = ycbcrLuma(yrow[x], rc, gc, bc)
			}
		default:
			for x, lv := range yrow {
				ci := m.COffset(x0+x, yy)
				rc, gc, bc := ycbcrChroma(m.Cb[ci], m.Cr[ci])
				dst[x] = ycbcrLuma(lv, rc, gc, bc)
			}
		}
	}
}
