package pdq

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"sync"
	"sync/atomic"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
	"golang.org/x/image/webp"
)

// DefaultMaxPixels is the default limit on an image's declared width × height: 50 megapixels,
// above the 12 to 48 megapixels of most cameras' and phones' photos, small enough that decoding
// one does not exhaust a server (about 200 MB for 8-bit RGBA pixels, plus the decoder's own
// buffers).
const DefaultMaxPixels = 50_000_000

// DefaultMaxBytes is the default limit on the length of an image file: 128 MiB.
const DefaultMaxBytes = 128 << 20

// DecodeOptions limits what [Decode] accepts. The zero value of a field means its default.
type DecodeOptions struct {
	// MaxPixels is the largest width × height accepted, checked against the size the file
	// declares before its pixels are decoded. 0 means [DefaultMaxPixels].
	MaxPixels int64

	// MaxBytes is the longest file accepted; Decode reads at most one byte more than this.
	// 0 means [DefaultMaxBytes].
	MaxBytes int64

	// GoJPEG decodes JPEGs with Go's image/jpeg even when a faster decoder is registered (see
	// [RegisterJPEGDecoder]): the pixels the conformance vectors of the C++ core were computed
	// from, and what every build gave before libjpeg-turbo was linked in.
	GoJPEG bool
}

// JPEGDecoder is a JPEG decoder that [Decode] tries before Go's image/jpeg (see
// [RegisterJPEGDecoder]).
type JPEGDecoder struct {
	// Name names the decoder and its version, for `hashfed version` and error messages.
	Name string

	// Decode decodes a whole JPEG file. It must refuse a file declaring more than maxPixels
	// pixels before allocating them, with an error wrapping [ErrTooLarge]. It may write the
	// pixels into buf (which may be nil) when buf has room for them, and must not keep buf after
	// it returns. An error wrapping [ErrTooLarge] or [ErrCorrupt] is final; any other error (a
	// feature or colour space the decoder does not handle, data it finds corrupt) makes Decode
	// try Go's decoder instead, so a file Go's decoder accepts is never refused because a faster
	// decoder is registered.
	Decode func(data []byte, maxPixels int64, buf []byte) (image.Image, error)
}

var jpegDecoder atomic.Pointer[JPEGDecoder]

// RegisterJPEGDecoder makes [Decode] try d first for JPEG files, unless [DecodeOptions.GoJPEG] is
// set. It is meant to be called from an init function (internal/jpegturbo registers
// libjpeg-turbo when cgo is on); the last registration wins.
func RegisterJPEGDecoder(d JPEGDecoder) {
	jpegDecoder.Store(&d)
}

// JPEGDecoderName names the decoder [Decode] uses for JPEG files by default: the registered one,
// or "Go image/jpeg".
func JPEGDecoderName() string {
	if d := jpegDecoder.Load(); d != nil {
		return d.Name
	}
	return goJPEGName
}

const goJPEGName = "Go image/jpeg"

// DefaultDecodeOptions returns the options [Decode] uses when given the zero DecodeOptions.
func DefaultDecodeOptions() DecodeOptions {
	return DecodeOptions{MaxPixels: DefaultMaxPixels, MaxBytes: DefaultMaxBytes}
}

// withDefaults fills in zero fields and rejects negative ones.
func (o DecodeOptions) withDefaults() (DecodeOptions, error) {
	if o.MaxPixels < 0 {
		return o, fmt.Errorf("pdq: DecodeOptions.MaxPixels is negative (%d); want 0 for the default or a positive limit", o.MaxPixels)
	}
	if o.MaxBytes < 0 {
		return o, fmt.Errorf("pdq: DecodeOptions.MaxBytes is negative (%d); want 0 for the default or a positive limit", o.MaxBytes)
	}
	if o.MaxPixels == 0 {
		o.MaxPixels = DefaultMaxPixels
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	return o, nil
}

// format is one image format Decode accepts, recognised by its first bytes. The table is this
// package's own, not the image package's registry, so what Decode accepts does not depend on what
// other packages in the program register.
type format struct {
	name   string
	magic  string // '?' matches any byte
	config func(io.Reader) (image.Config, error)
	decode func(io.Reader) (image.Image, error)
}

var formats = []format{
	{"jpeg", "\xff\xd8", jpeg.DecodeConfig, jpeg.Decode},
	{"png", "\x89PNG\r\n\x1a\n", png.DecodeConfig, png.Decode},
	{"gif", "GIF87a", gif.DecodeConfig, gif.Decode},
	{"gif", "GIF89a", gif.DecodeConfig, gif.Decode},
	{"bmp", "BM????\x00\x00\x00\x00", bmp.DecodeConfig, bmp.Decode},
	{"tiff", "II*\x00", tiff.DecodeConfig, tiff.Decode},
	{"tiff", "MM\x00*", tiff.DecodeConfig, tiff.Decode},
	{"webp", "RIFF????WEBPVP8", webp.DecodeConfig, webp.Decode},
}

func sniff(data []byte) *format {
	for i := range formats {
		f := &formats[i]
		if len(data) < len(f.magic) {
			continue
		}
		ok := true
		for j := range len(f.magic) {
			if f.magic[j] != '?' && f.magic[j] != data[j] {
				ok = false
				break
			}
		}
		if ok {
			return f
		}
	}
	return nil
}

// Decode reads an image file from r and decodes it, returning the image and the name of its
// format ("jpeg", "png", "gif", "bmp", "tiff" or "webp"). A GIF gives its first frame as
// [image/gif.Decode] does, with the frame's own bounds; where that frame covers less than the
// GIF's logical screen, Pillow (and so python-threatexchange) would instead give the whole screen,
// and the hashes differ.
//
// Decode reads all of r, up to opts.MaxBytes, and decodes the image's header before its pixels:
// an image declaring more than opts.MaxPixels pixels is refused with an error wrapping
// [ErrTooLarge] before any pixel buffer is allocated. Bytes in no accepted format give
// [ErrUnsupportedFormat]; a corrupt or truncated file gives [ErrCorrupt] wrapping the decoder's
// error. A panic inside a decoder (a bug in it, met with hostile input) is also returned as
// [ErrCorrupt] rather than crashing the caller.
//
// JPEG files go first to the decoder registered with [RegisterJPEGDecoder], if any (libjpeg-turbo
// in the hashfed binaries built with cgo), which returns an [*RGB24] or [*image.Gray]; Go's
// image/jpeg decodes them when none is registered, when opts.GoJPEG is set, and when the
// registered decoder declines a file. The two decoders' pixels differ slightly (their IDCT and
// chroma upsampling differ), which moves a PDQ hash by a few bits.
//
// EXIF orientation and colour profiles are ignored: the pixels are returned as stored.
func Decode(r io.Reader, opts DecodeOptions) (img image.Image, formatName string, err error) {
	opts, data, err := readImage(r, opts)
	if err != nil {
		return nil, "", err
	}
	return decode(data, opts, nil)
}

// HashFile decodes an image file as [Decode] does and returns the [HashImage] of it, and its
// format. It reuses its pixel buffers from one call to the next where it can (JPEG files decoded
// by a registered decoder), which saves allocating and clearing the pixels of every file when
// hashing many.
func HashFile(r io.Reader, opts DecodeOptions) (h Hash, quality int, formatName string, err error) {
	opts, data, err := readImage(r, opts)
	if err != nil {
		return Hash{}, 0, "", err
	}
	bp := pixPool.Get().(*[]byte)
	img, formatName, err := decode(data, opts, *bp)
	if err != nil {
		pixPool.Put(bp)
		return Hash{}, 0, formatName, err
	}
	h, quality = HashImage(img)
	// Keep the decoder's buffer for the next file, unless it is very large.
	var pix []byte
	switch m := img.(type) {
	case *RGB24:
		pix = m.Pix
	case *image.Gray:
		pix = m.Pix
	}
	if cap(pix) > cap(*bp) && cap(pix) <= maxPooledPix {
		*bp = pix[:0]
	}
	pixPool.Put(bp)
	return h, quality, formatName, nil
}

// maxPooledPix bounds the pixel buffers HashFile keeps: 64 MiB, a 21-megapixel RGB image.
const maxPooledPix = 64 << 20

var pixPool = sync.Pool{New: func() any { return new([]byte) }}

// readImage applies the defaults of opts and reads the file, up to opts.MaxBytes.
func readImage(r io.Reader, opts DecodeOptions) (DecodeOptions, []byte, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return opts, nil, err
	}
	data, err := io.ReadAll(io.LimitReader(r, opts.MaxBytes+1))
	if err != nil {
		return opts, nil, fmt.Errorf("pdq: reading image: %w", err)
	}
	if int64(len(data)) > opts.MaxBytes {
		return opts, nil, fmt.Errorf("%w: file is longer than the limit of %d bytes", ErrTooLarge, opts.MaxBytes)
	}
	return opts, data, nil
}

// decode decodes the image file data; a registered JPEG decoder may write its pixels into buf.
func decode(data []byte, opts DecodeOptions, buf []byte) (img image.Image, formatName string, err error) {
	f := sniff(data)
	if f == nil {
		if len(data) == 0 {
			return nil, "", fmt.Errorf("%w: empty input", ErrUnsupportedFormat)
		}
		return nil, "", fmt.Errorf("%w: first bytes %q are not JPEG, PNG, GIF, BMP, TIFF or WebP", ErrUnsupportedFormat, data[:min(len(data), 12)])
	}
	defer func() {
		if p := recover(); p != nil {
			img, err = nil, fmt.Errorf("%w: %s decoder panicked: %v", ErrCorrupt, f.name, p)
		}
	}()
	var declined error // why the registered JPEG decoder declined the file
	if d := jpegDecoder.Load(); d != nil && f.name == "jpeg" && !opts.GoJPEG {
		img, err := d.Decode(data, opts.MaxPixels, buf)
		switch {
		case err == nil:
			b := img.Bounds()
			if err := checkSize(b.Dx(), b.Dy(), opts.MaxPixels, "decoded to"); err != nil {
				return nil, f.name, err
			}
			return img, f.name, nil
		case errors.Is(err, ErrTooLarge) || errors.Is(err, ErrCorrupt):
			return nil, f.name, err
		}
		declined = fmt.Errorf("%s: %w", d.Name, err)
	}
	cfg, err := f.config(bytes.NewReader(data))
	if err != nil {
		if declined != nil {
			return nil, f.name, fmt.Errorf("%w: %s header: %w (and %w)", ErrCorrupt, f.name, err, declined)
		}
		return nil, f.name, fmt.Errorf("%w: %s header: %w", ErrCorrupt, f.name, err)
	}
	if err := checkSize(cfg.Width, cfg.Height, opts.MaxPixels, "declares"); err != nil {
		return nil, f.name, err
	}
	img, err = f.decode(bytes.NewReader(data))
	if err != nil {
		if declined != nil {
			return nil, f.name, fmt.Errorf("%w: %s: %w (and %w)", ErrCorrupt, f.name, err, declined)
		}
		return nil, f.name, fmt.Errorf("%w: %s: %w", ErrCorrupt, f.name, err)
	}
	// The decoders allocate what the header declares, but check what came out all the same.
	b := img.Bounds()
	if err := checkSize(b.Dx(), b.Dy(), opts.MaxPixels, "decoded to"); err != nil {
		return nil, f.name, err
	}
	return img, f.name, nil
}

// checkSize refuses a width×height over maxPixels, without overflowing.
func checkSize(width, height int, maxPixels int64, verb string) error {
	if width < 0 || height < 0 {
		return fmt.Errorf("%w: image %s negative size %d×%d", ErrCorrupt, verb, width, height)
	}
	if width > 0 && int64(height) > maxPixels/int64(width) {
		return fmt.Errorf("%w: image %s %d×%d pixels, more than the limit of %d", ErrTooLarge, verb, width, height, maxPixels)
	}
	return nil
}
