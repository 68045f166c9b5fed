package memberclient

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/hashfed/hashfed/consortium/pdq"
	"github.com/hashfed/hashfed/consortium/vpdq"
	"github.com/hashfed/hashfed/internal/ffmpeg"
)

// FileHashes are the hashes of any file: MD5 and SHA-256 always, PDQ when it is an image, vPDQ
// when it is a video.
type FileHashes struct {
	Path string `json:"file"`
	// Kind is "image", "video" or "file".
	Kind   string `json:"kind"`
	MD5    string `json:"md5"`
	SHA256 string `json:"sha256"`
	// PDQ and Quality are set for an image.
	PDQ     string `json:"pdq,omitempty"`
	Quality *int   `json:"quality,omitempty"`
	// Video is set for a video.
	Video *VideoHashes `json:"video,omitempty"`
	// Note says why a file was hashed only by its bytes when it might have been a video.
	Note string `json:"note,omitempty"`
}

// VideoHashes are a video's vPDQ frame hashes and what they were computed from.
type VideoHashes struct {
	Width          int          `json:"width"`
	Height         int          `json:"height"`
	FPS            float64      `json:"fps"`
	Seconds        float64      `json:"seconds"`
	SecondsPerHash float64      `json:"seconds_per_hash"`
	Downsample     int          `json:"downsample,omitempty"`
	Frames         []VideoFrame `json:"frames"`
	// Decoded holds the frames in vpdq form (not in JSON).
	Decoded []vpdq.Frame `json:"-"`
}

// VideoFrame is one frame hash as JSON shows it.
type VideoFrame struct {
	Frame   int64   `json:"frame"`
	Quality int     `json:"quality"`
	PDQ     string  `json:"pdq"`
	Seconds float64 `json:"timestamp"`
}

// VideoOptions configure how videos are decoded and hashed.
type VideoOptions struct {
	FFmpeg ffmpeg.Config
	Hash   vpdq.HashOptions
}

// HashFile hashes any file. The MD5 and SHA-256 are of its bytes, read as a stream. A file in an
// image format gets its PDQ hash (a corrupt or oversized image is an error); any other file is
// probed with ffprobe, and a video gets its vPDQ frame hashes (a video that fails to decode is an
// error). A file ffprobe does not read as a video is hashed by its bytes only, with a note saying
// why, and so is every non-image file when ffmpeg is not installed.
func HashFile(ctx context.Context, path string, o VideoOptions) (FileHashes, error) {
	f, err := os.Open(path)
	if err != nil {
		return FileHashes{}, err
	}
	defer f.Close()
	m, s := md5.New(), sha256.New()
	if _, err := io.Copy(io.MultiWriter(m, s), f); err != nil {
		return FileHashes{}, fmt.Errorf("%s: %w", path, err)
	}
	out := FileHashes{Path: path, Kind: "file", MD5: hex.EncodeToString(m.Sum(nil)), SHA256: hex.EncodeToString(s.Sum(nil))}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return FileHashes{}, err
	}
	h, q, _, err := pdq.HashFile(f, pdq.DefaultDecodeOptions())
	switch {
	case err == nil:
		out.Kind, out.PDQ, out.Quality = "image", h.String(), &q
		return out, nil
	case !errors.Is(err, pdq.ErrUnsupportedFormat):
		return FileHashes{}, fmt.Errorf("%s: %w", path, err)
	}
	info, frames, err := o.FFmpeg.Hash(ctx, path, o.Hash)
	switch {
	case errors.Is(err, ffmpeg.ErrNotVideo):
		out.Note = err.Error()
		return out, nil
	case errors.Is(err, ffmpeg.ErrNoFFmpeg):
		out.Note = "not probed as a video: " + err.Error()
		return out, nil
	case err != nil:
		return FileHashes{}, err
	}
	v := &VideoHashes{Width: info.Width, Height: info.Height, FPS: info.FPS, Seconds: info.Duration.Seconds(),
		SecondsPerHash: o.Hash.SecondsPerHash, Downsample: o.Hash.Downsample, Decoded: frames}
	for _, fr := range frames {
		v.Frames = append(v.Frames, VideoFrame{fr.Number, fr.Quality, fr.Hash.String(), fr.Seconds()})
	}
	out.Kind, out.Video = "video", v
	return out, nil
}
