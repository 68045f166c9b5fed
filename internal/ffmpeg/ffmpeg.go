package ffmpeg

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Errors of this package; each wraps the detail.
var (
	// ErrNoFFmpeg reports that ffmpeg or ffprobe could not be started.
	ErrNoFFmpeg = errors.New("ffmpeg not available (install Debian's ffmpeg package, or set the path to ffmpeg and ffprobe)")
	// ErrNotVideo reports a file ffprobe cannot read, or one without a video stream.
	ErrNotVideo = errors.New("not a video ffmpeg can read")
	// ErrTooLarge reports frames over [Config.MaxPixels].
	ErrTooLarge = errors.New("video frames too large")
	// ErrTooLong reports a video over [Config.MaxDuration] or one that would give more than
	// [Config.MaxFrames] frame hashes.
	ErrTooLong = errors.New("video too long")
	// ErrDecode reports that ffmpeg failed while decoding.
	ErrDecode = errors.New("decoding failed")
	// ErrTimeout reports that the context ended before decoding finished.
	ErrTimeout = errors.New("video decoding stopped")
)

// Config bounds and locates the decoder.
type Config struct {
	// FFmpeg and FFprobe are the programs to run (a name looked up in PATH, or a path).
	FFmpeg, FFprobe string
	// MaxPixels bounds width × height of the frames ffmpeg decodes and of the frames hashed.
	MaxPixels int64
	// MaxFrames bounds the number of frame hashes of one video.
	MaxFrames int64
	// MaxDuration bounds the duration the container declares.
	MaxDuration time.Duration
	// Threads is ffmpeg's decoding thread count (1: one core).
	Threads int
	// AllowDecodeErrors keeps the frames of a file the decoder reported errors in (a truncated
	// or corrupt file); by default such a file is refused with [ErrDecode], since its hashes
	// would describe only the part that decoded.
	AllowDecodeErrors bool
}

// DefaultConfig returns the defaults: ffmpeg and ffprobe from PATH; frames up to 4096×4096;
// 200,000 frame hashes (nearly two hours at every frame of 30 frames a second, or 55 hours at
// one a second); 24 hours; one decoding thread.
func DefaultConfig() Config {
	return Config{FFmpeg: "ffmpeg", FFprobe: "ffprobe", MaxPixels: 4096 * 4096, MaxFrames: 200_000, MaxDuration: 24 * time.Hour, Threads: 1}
}

func (c Config) validate() error {
	if c.FFmpeg == "" || c.FFprobe == "" || c.MaxPixels <= 0 || c.MaxFrames <= 0 || c.MaxDuration <= 0 || c.Threads < 0 {
		return fmt.Errorf("ffmpeg: invalid config %+v", c)
	}
	return nil
}

// Info is what ffprobe says of a video's first video stream.
type Info struct {
	Width, Height int
	// FPS is the average frame rate (the reference's choice), or the stream's base rate when the
	// average is unknown.
	FPS float64
	// Duration is the container's duration, 0 when unknown.
	Duration time.Duration
	// Codec is the codec name.
	Codec string
}

type probeOut struct {
	Streams []struct {
		CodecName    string `json:"codec_name"`
		Width        int    `json:"width"`
		Height       int    `json:"height"`
		AvgFrameRate string `json:"avg_frame_rate"`
		RFrameRate   string `json:"r_frame_rate"`
		Duration     string `json:"duration"`
	} `json:"streams"`
	Format struct {
		Duration string `json:"duration"`
	} `json:"format"`
}

// Probe runs ffprobe on path and checks the result against the config.
func (c Config) Probe(ctx context.Context, path string) (Info, error) {
	if err := c.validate(); err != nil {
		return Info{}, err
	}
	if _, err := os.Stat(path); err != nil {
		return Info{}, err
	}
	args := append([]string{"-v", "error"}, inputArgs()...)
	args = append(args, "-select_streams", "v:0",
		"-show_entries", "stream=codec_name,width,height,avg_frame_rate,r_frame_rate,duration:format=duration",
		"-of", "json", "file:"+path)
	cmd := exec.CommandContext(ctx, c.FFprobe, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &limitWriter{w: &stdout, n: 1 << 20}
	cmd.Stderr = &limitWriter{w: &stderr, n: 4096}
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return Info{}, fmt.Errorf("%w: probing %s: %v", ErrTimeout, path, context.Cause(ctx))
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return Info{}, fmt.Errorf("%w: %v", ErrNoFFmpeg, err)
		}
		return Info{}, fmt.Errorf("%s: %w: %s", path, ErrNotVideo, firstLine(stderr.String(), "ffprobe failed"))
	}
	var p probeOut
	if err := json.Unmarshal(stdout.Bytes(), &p); err != nil {
		return Info{}, fmt.Errorf("%s: %w: unreadable ffprobe output: %v", path, ErrNotVideo, err)
	}
	if len(p.Streams) == 0 {
		return Info{}, fmt.Errorf("%s: %w: no video stream", path, ErrNotVideo)
	}
	s := p.Streams[0]
	info := Info{Width: s.Width, Height: s.Height, Codec: s.CodecName}
	if info.Width <= 0 || info.Height <= 0 {
		return Info{}, fmt.Errorf("%s: %w: video stream without a frame size", path, ErrNotVideo)
	}
	if px := int64(info.Width) * int64(info.Height); px > c.MaxPixels {
		return Info{}, fmt.Errorf("%s: %w: %d×%d is %d pixels a frame, at most %d", path, ErrTooLarge, info.Width, info.Height, px, c.MaxPixels)
	}
	info.FPS = rate(s.AvgFrameRate)
	if info.FPS == 0 {
		info.FPS = rate(s.RFrameRate)
	}
	if !(info.FPS > 0 && info.FPS < 10000) {
		return Info{}, fmt.Errorf("%s: %w: no usable frame rate (avg %q, base %q)", path, ErrNotVideo, s.AvgFrameRate, s.RFrameRate)
	}
	d := seconds(p.Format.Duration)
	if d == 0 {
		d = seconds(s.Duration)
	}
	if d*float64(time.Second) > float64(c.MaxDuration) {
		return Info{}, fmt.Errorf("%s: %w: %s long, at most %s", path, ErrTooLong, fmtSeconds(d), c.MaxDuration)
	}
	info.Duration = time.Duration(d * float64(time.Second))
	return info, nil
}

// rate parses ffprobe's "num/den"; 0 when absent or invalid.
func rate(s string) float64 {
	num, den, ok := strings.Cut(s, "/")
	if !ok {
		return 0
	}
	n, err1 := strconv.ParseFloat(num, 64)
	d, err2 := strconv.ParseFloat(den, 64)
	if err1 != nil || err2 != nil || d == 0 || n <= 0 || math.IsInf(n/d, 0) {
		return 0
	}
	return n / d
}

// seconds parses ffprobe's duration; 0 when absent or invalid.
func seconds(s string) float64 {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || !(v > 0) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

func fmtSeconds(s float64) string {
	if s > 1e9 {
		return fmt.Sprintf("%.3g s", s)
	}
	return time.Duration(s * float64(time.Second)).Round(time.Second).String()
}

func firstLine(s, otherwise string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return otherwise
	}
	line, _, _ := strings.Cut(s, "\n")
	if len(line) > 300 {
		line = line[:300] + "…"
	}
	return line
}

// limitWriter keeps the first n bytes written and drops the rest.
type limitWriter struct {
	w io.Writer
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}
