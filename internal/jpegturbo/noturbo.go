//go:build !cgo || nojpegturbo

package jpegturbo

import "fmt"

// Available reports whether this build decodes with libjpeg-turbo: false, it was built without
// cgo or with the nojpegturbo tag.
const Available = false

// Version returns "" in a build without libjpeg-turbo.
func Version() string { return "" }

// Decode returns [ErrUnavailable] in a build without libjpeg-turbo.
func Decode(data []byte, opts Options) (*Image, error) {
	return DecodeInto(data, opts, nil)
}

// DecodeInto returns [ErrUnavailable] in a build without libjpeg-turbo.
func DecodeInto(data []byte, opts Options, buf []byte) (*Image, error) {
	if _, err := opts.check(); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("jpegturbo: %w", ErrUnavailable)
}

func cHeapInUse() int64 { return -1 }
