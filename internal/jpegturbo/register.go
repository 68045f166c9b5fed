package jpegturbo

import (
	"errors"
	"fmt"
	"image"

	"github.com/hashfed/hashfed/consortium/pdq"
)

func init() {
	if Available {
		pdq.RegisterJPEGDecoder(pdq.JPEGDecoder{Name: Version(), Decode: decodeForPDQ})
	}
}

// decodeForPDQ is the decoder registered with pdq: an RGB file gives a [pdq.RGB24], a grey one
// an [image.Gray]. A file too large, or with too many scans, is refused for good (ErrTooLarge,
// ErrCorrupt); anything else libjpeg declines goes on to Go's decoder.
func decodeForPDQ(data []byte, maxPixels int64, buf []byte) (image.Image, error) {
	m, err := DecodeInto(data, Options{MaxPixels: maxPixels}, buf)
	switch {
	case errors.Is(err, ErrTooLarge):
		return nil, fmt.Errorf("%w: jpeg: %w", pdq.ErrTooLarge, err)
	case errors.Is(err, ErrTooManyScans):
		return nil, fmt.Errorf("%w: jpeg: %w", pdq.ErrCorrupt, err)
	case err != nil:
		return nil, err
	}
	return ToImage(m), nil
}

// ToImage wraps m's pixels, without copying them, in the image type pdq reads fastest: a
// [pdq.RGB24] for three channels, an [image.Gray] for one.
func ToImage(m *Image) image.Image {
	if m.Channels == 1 {
		return &image.Gray{Pix: m.Pix, Stride: m.Width, Rect: image.Rect(0, 0, m.Width, m.Height)}
	}
	return pdq.NewRGB24(m.Pix, m.Width, m.Height)
}
