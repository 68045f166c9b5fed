package vpdq

import (
	"errors"
	"fmt"
	"image"
	"math"

	"github.com/hashfed/hashfed/consortium/pdq"
)

// MaxQuality is the highest frame quality PDQ gives.
const MaxQuality = 100

// Errors of this package.
var (
	// ErrFrameTooSmall reports a frame less than 5 pixels on a side, which PDQ cannot hash.
	ErrFrameTooSmall = errors.New("vpdq: frame too small to hash (PDQ needs at least 5×5 pixels)")
	// ErrBadFrameRate reports a frame rate that is not a positive finite number.
	ErrBadFrameRate = errors.New("vpdq: frame rate must be a positive number")
	// ErrBadOptions reports hashing or matching options out of range.
	ErrBadOptions = errors.New("vpdq: invalid options")
)

// Frame is the hash of one video frame.
type Frame struct {
	// Number is the frame's position in decoding order, from 0.
	Number int64
	// Quality is PDQ's quality of the frame, 0 to 100.
	Quality int
	// Hash is the frame's PDQ hash.
	Hash pdq.Hash
	// MS is the frame's timestamp in milliseconds from the start of the video.
	MS int64
}

// Seconds returns the frame's timestamp in seconds.
func (f Frame) Seconds() float64 { return float64(f.MS) / 1000 }

// HashOptions are the reference's hashing options.
type HashOptions struct {
	// SecondsPerHash is the time between hashed frames; 0 hashes every frame (as the reference's
	// sample hashes do). 1 is a useful setting for long videos.
	SecondsPerHash float64
	// Downsample, when positive, scales every frame to Downsample×Downsample pixels before
	// hashing (the reference's --downsampleFrameDimension); 0 hashes frames at their own size.
	Downsample int
}

// Validate reports options out of range.
func (o HashOptions) Validate() error {
	if math.IsNaN(o.SecondsPerHash) || o.SecondsPerHash < 0 || o.SecondsPerHash > 3600 {
		return fmt.Errorf("%w: seconds per hash %v, want 0 (every frame) to 3600", ErrBadOptions, o.SecondsPerHash)
	}
	if o.Downsample < 0 || o.Downsample > 0 && o.Downsample < 5 || o.Downsample > 4096 {
		return fmt.Errorf("%w: downsample dimension %d, want 0 (own size) or 5 to 4096", ErrBadOptions, o.Downsample)
	}
	return nil
}

// FrameStep returns the distance between hashed frames for a video of fps frames a second:
// ⌊SecondsPerHash × fps⌋, at least 1.
func (o HashOptions) FrameStep(fps float64) (int64, error) {
	if !(fps > 0) || math.IsInf(fps, 0) {
		return 0, fmt.Errorf("%w: got %v", ErrBadFrameRate, fps)
	}
	step := int64(o.SecondsPerHash * fps)
	if step < 1 {
		step = 1
	}
	return step, nil
}

// Timestamp returns the timestamp in milliseconds of frame n of a video of fps frames a second.
func Timestamp(n int64, fps float64) int64 {
	return int64(math.Round(float64(n) * 1000 / fps))
}

// HashFrame hashes frame n of a video of fps frames a second.
func HashFrame(img image.Image, n int64, fps float64) (Frame, error) {
	b := img.Bounds()
	if b.Dx() < 5 || b.Dy() < 5 {
		return Frame{}, fmt.Errorf("%w: frame %d is %d×%d", ErrFrameTooSmall, n, b.Dx(), b.Dy())
	}
	h, q := pdq.HashImage(img)
	return Frame{Number: n, Quality: q, Hash: h, MS: Timestamp(n, fps)}, nil
}
