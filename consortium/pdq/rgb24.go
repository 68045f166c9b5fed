package pdq

import (
	"image"
	"image/color"
)

// RGB24 is an image of packed 8-bit RGB pixels, three bytes a pixel, the layout video decoders
// write (ffmpeg's rgb24). It lets a decoded video frame be hashed in place, without copying it
// into a four-byte-a-pixel [image.NRGBA]; its luma is read exactly as that of an opaque NRGBA
// pixel with the same R, G and B.
type RGB24 struct {
	// Pix holds the pixels: row y (from Rect.Min.Y) starts at (y-Rect.Min.Y)*Stride.
	Pix    []uint8
	Stride int
	Rect   image.Rectangle
}

// NewRGB24 returns a width×height RGB24 image at the origin over pix, which must hold at least
// 3 × width × height bytes.
func NewRGB24(pix []uint8, width, height int) *RGB24 {
	return &RGB24{Pix: pix[:3*width*height], Stride: 3 * width, Rect: image.Rect(0, 0, width, height)}
}

// ColorModel returns [color.NRGBAModel].
func (m *RGB24) ColorModel() color.Model { return color.NRGBAModel }

// Bounds returns the image's rectangle.
func (m *RGB24) Bounds() image.Rectangle { return m.Rect }

// At returns the pixel at (x, y) as an opaque [color.NRGBA].
func (m *RGB24) At(x, y int) color.Color {
	if !(image.Point{x, y}.In(m.Rect)) {
		return color.NRGBA{}
	}
	i := m.PixOffset(x, y)
	return color.NRGBA{m.Pix[i], m.Pix[i+1], m.Pix[i+2], 0xff}
}

// PixOffset returns the index of the first byte of pixel (x, y) in Pix.
func (m *RGB24) PixOffset(x, y int) int {
	return (y-m.Rect.Min.Y)*m.Stride + (x-m.Rect.Min.X)*3
}

type rgb24Reader struct {
	m *RGB24
	area
}

func (r rgb24Reader) row(y int, dst []float32) {
	p := r.m.Pix[r.m.PixOffset(r.x0, r.y0+y):]
	p = p[:3*r.w]
	dst = dst[:r.w]
	// Four pixels (twelve bytes) a step, so the bounds are checked once for all of them.
	x := 0
	for ; x+4 <= len(dst); x += 4 {
		q := p[3*x : 3*x+12 : 3*x+12]
		d := dst[x : x+4 : x+4]
		d[0] = (lumR[q[0]] + lumG[q[1]]) + lumB[q[2]]
		d[1] = (lumR[q[3]] + lumG[q[4]]) + lumB[q[5]]
		d[2] = (lumR[q[6]] + lumG[q[7]]) + lumB[q[8]]
		d[3] = (lumR[q[9]] + lumG[q[10]]) + lumB[q[11]]
	}
	for ; x < len(dst); x++ {
		q := p[3*x : 3*x+3 : 3*x+3]
		dst[x] = luma8(q[0], q[1], q[2])
	}
}
