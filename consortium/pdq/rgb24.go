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
	for x := range dst[:r.w] {
		q := p[3*x : 3*x+3 : 3*x+3]
		dst[x] = luma8(q[0], q[1], q[2])
	}
}
