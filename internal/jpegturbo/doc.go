// Package jpegturbo decodes JPEG files with libjpeg-turbo through cgo, for hashing: the same
// pixels a program built on libjpeg-turbo (Pillow, the C++ PDQ tools, most image servers) gets,
// three to four times faster than Go's image/jpeg.
//
// The C code is kept to one small function with its error handling, in this package alone, so
// that the rest of the module (consortium and its pdq package in particular) stays pure Go. The
// package registers its decoder with [github.com/hashfed/hashfed/consortium/pdq] when it is
// linked in, so a program opts in with a blank import:
//
//	import _ "github.com/hashfed/hashfed/internal/jpegturbo"
//
// which cmd/hashfed and cmd/hashfed-bench do. A build without cgo (CGO_ENABLED=0), or with the
// build tag nojpegturbo, compiles the stub instead: [Available] is false, [Decode] returns
// [ErrUnavailable], nothing is registered, and pdq decodes JPEGs with Go's image/jpeg.
//
// # Hostile input
//
// Every file is treated as hostile. libjpeg's default error handler would print and call exit();
// this package installs handlers that print nothing and return to Go with the library's message.
// The header is read first and an image declaring more than [Options.MaxPixels] pixels is refused
// before anything the size of the image is allocated (by Go or by libjpeg). A libjpeg warning
// (corrupt entropy data, a truncated file, extraneous bytes) stops the decode as an error, as Go's
// decoder does, rather than returning partly invented pixels. A progressive file with more than
// [Options.MaxScans] scans is refused, since each scan can cost a pass over the whole image. libjpeg
// frees everything it allocated on every path (jpeg_destroy_decompress); the pixels are written
// into a buffer Go allocates, so no C memory outlives a call.
package jpegturbo

import (
	"errors"
	"fmt"
)

// Sentinel errors; the messages wrapping them carry libjpeg's own text.
var (
	// ErrUnavailable means this build has no libjpeg-turbo (built without cgo or with the
	// nojpegturbo tag).
	ErrUnavailable = errors.New("libjpeg-turbo is not linked into this build")

	// ErrTooLarge means the file declares more pixels than Options.MaxPixels.
	ErrTooLarge = errors.New("JPEG image too large")

	// ErrTooManyScans means a progressive file has more scans than Options.MaxScans.
	ErrTooManyScans = errors.New("JPEG file has too many scans")

	// ErrUnsupported means a valid file this package does not decode: a colour space other than
	// grey, YCbCr or RGB (CMYK, YCCK), or a scale it does not offer.
	ErrUnsupported = errors.New("JPEG file not supported by this decoder")

	// ErrCorrupt means libjpeg refused the file or warned that its data is corrupt or truncated.
	ErrCorrupt = errors.New("corrupt or truncated JPEG")
)

// DefaultMaxScans is the default limit on the scans of a progressive file. Encoders write about
// ten; libjpeg-turbo's own tools suggest a limit of a few hundred to stop files crafted to cost a
// pass over the whole image per scan.
const DefaultMaxScans = 500

// Options limits and shapes a decode.
type Options struct {
	// MaxPixels is the largest declared width × height accepted (required, positive).
	MaxPixels int64

	// MaxScans is the largest number of scans accepted; 0 means DefaultMaxScans.
	MaxScans int

	// ScaleDenom, when 2, 4 or 8, decodes at 1/ScaleDenom of the size in the DCT domain (each
	// side rounded up), which is faster and gives different pixels from a full decode followed by
	// a resize. 0 or 1 means the full size.
	ScaleDenom int
}

// Image is a decoded image: Height rows of Width × Channels bytes, packed. Channels is 1 (grey)
// or 3 (R, G, B).
type Image struct {
	Pix                     []byte
	Width, Height, Channels int
}

func (o Options) check() (Options, error) {
	if o.MaxPixels <= 0 {
		return o, fmt.Errorf("jpegturbo: Options.MaxPixels is %d; want a positive limit", o.MaxPixels)
	}
	if o.MaxScans < 0 {
		return o, fmt.Errorf("jpegturbo: Options.MaxScans is negative (%d)", o.MaxScans)
	}
	if o.MaxScans == 0 {
		o.MaxScans = DefaultMaxScans
	}
	switch o.ScaleDenom {
	case 0:
		o.ScaleDenom = 1
	case 1, 2, 4, 8:
	default:
		return o, fmt.Errorf("%w: scale 1/%d (want 1/1, 1/2, 1/4 or 1/8)", ErrUnsupported, o.ScaleDenom)
	}
	return o, nil
}

// checkSize refuses a declared width × height over maxPixels, without overflowing.
func checkSize(width, height int, maxPixels int64) error {
	if width > 0 && int64(height) > maxPixels/int64(width) {
		return fmt.Errorf("%w: image declares %d×%d pixels, more than the limit of %d", ErrTooLarge, width, height, maxPixels)
	}
	return nil
}
