package pdq

import "errors"

// Sentinel errors. Functions in this package wrap them with the detail that names the problem
// (which character, which size, which decoder said what), so callers test with [errors.Is] and
// show the message.
var (
	// ErrInvalidHash means a string is not a PDQ hash: 64 hexadecimal characters.
	ErrInvalidHash = errors.New("invalid PDQ hash")

	// ErrTooLarge means an image declares more pixels than [DecodeOptions.MaxPixels] allows, or
	// its file is longer than [DecodeOptions.MaxBytes]. It is reported before the pixels are
	// decoded.
	ErrTooLarge = errors.New("image too large")

	// ErrUnsupportedFormat means the bytes are not in one of the formats [Decode] accepts (JPEG,
	// PNG, GIF, BMP, TIFF, WebP).
	ErrUnsupportedFormat = errors.New("unsupported image format")

	// ErrCorrupt means the bytes start like a supported format but could not be decoded: the file
	// is truncated, corrupt, or uses a feature of the format that the decoder does not support.
	ErrCorrupt = errors.New("corrupt or truncated image")
)
