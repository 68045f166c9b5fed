package ffmpeg

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"time"

	"github.com/hashfed/hashfed/consortium/pdq"
	"github.com/hashfed/hashfed/consortium/vpdq"
)

// formats is the demuxer allow-list given to ffmpeg and ffprobe: the containers videos are shared
// in. Playlists and concatenation lists (hls, concat, ...) are left out, since they make ffmpeg
// open other files or URLs that the file names; only the file protocol is allowed at all.
const formats = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,flv,mpegts,mpeg,mpegvideo,ogg,asf,gif,h264,hevc,m4v,yuv4mpegpipe,ivf,nut"

// inputArgs are the options that restrict what ffmpeg and ffprobe may open.
func inputArgs() []string {
	return []string{"-protocol_whitelist", "file", "-format_whitelist", formats}
}

// Frames decodes every step-th frame of the video's first video stream (frames 0, step,
// 2·step, ... in decoding order), scaled to width×height RGB24 with the area filter, and calls fn
// with each frame's number and pixels. The image passed to fn is reused for the next frame.
// Frames stops at the first error fn returns, after MaxFrames frames, or when ctx ends, and
// kills ffmpeg.
func (c Config) Frames(ctx context.Context, path string, step int64, width, height int, fn func(n int64, img *pdq.RGB24) error) error {
	if err := c.validate(); err != nil {
		return err
	}
	if step < 1 || width < 1 || height < 1 || int64(width)*int64(height) > c.MaxPixels {
		return fmt.Errorf("%w: %d×%d output frames, step %d", ErrTooLarge, width, height, step)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	vf := ""
	if step > 1 {
		vf = "select=not(mod(n\\," + strconv.FormatInt(step, 10) + ")),"
	}
	vf += fmt.Sprintf("scale=%d:%d:flags=area", width, height)
	args := []string{"-nostdin", "-hide_banner", "-loglevel", "error", "-noautorotate",
		"-threads", strconv.Itoa(c.Threads), "-max_pixels", strconv.FormatInt(c.MaxPixels, 10)}
	args = append(args, inputArgs()...)
	args = append(args, "-i", "file:"+path, "-map", "0:v:0", "-an", "-sn", "-dn",
		"-vf", vf, "-fps_mode", "passthrough", "-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:1")
	cmd := exec.CommandContext(ctx, c.FFmpeg, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &limitWriter{w: &stderr, n: 4096}
	cmd.WaitDelay = time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%w: %v", ErrNoFFmpeg, err)
	}
	size := 3 * width * height
	buf := make([]byte, size)
	img := pdq.NewRGB24(buf, width, height)
	r := bufio.NewReaderSize(out, 1<<16)
	var k int64
	var fnErr error
	for {
		_, err := io.ReadFull(r, buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) && ctx.Err() == nil {
				fnErr = fmt.Errorf("%s: %w: ffmpeg wrote a partial frame", path, ErrDecode)
			}
			break
		}
		if k == c.MaxFrames {
			fnErr = fmt.Errorf("%s: %w: more than %d frame hashes (hash fewer frames: a larger seconds-per-hash)", path, ErrTooLong, c.MaxFrames)
			break
		}
		if fnErr = fn(k*step, img); fnErr != nil {
			break
		}
		k++
	}
	if fnErr != nil {
		cancel()
	}
	waitErr := cmd.Wait()
	switch {
	case fnErr != nil:
		return fnErr
	case ctx.Err() != nil:
		return fmt.Errorf("%s: %w after %d frames: %v", path, ErrTimeout, k, context.Cause(ctx))
	case waitErr != nil:
		return fmt.Errorf("%s: %w: %s", path, ErrDecode, firstLine(stderr.String(), waitErr.Error()))
	case k == 0:
		return fmt.Errorf("%s: %w: no frame decoded", path, ErrDecode)
	case stderr.Len() > 0 && !c.AllowDecodeErrors:
		return fmt.Errorf("%s: %w after %d frames (a truncated or corrupt file): %s", path, ErrDecode, k, firstLine(stderr.String(), ""))
	}
	return nil
}

// Hash decodes a video and hashes its frames with vPDQ. It returns what ffprobe said of the
// video and the frame hashes in frame order.
func (c Config) Hash(ctx context.Context, path string, o vpdq.HashOptions) (Info, []vpdq.Frame, error) {
	if err := o.Validate(); err != nil {
		return Info{}, nil, err
	}
	info, err := c.Probe(ctx, path)
	if err != nil {
		return Info{}, nil, err
	}
	step, err := o.FrameStep(info.FPS)
	if err != nil {
		return Info{}, nil, err
	}
	if want := info.Duration.Seconds() * info.FPS / float64(step); want > float64(c.MaxFrames)+1 {
		return Info{}, nil, fmt.Errorf("%s: %w: %s at %.4g frames a second gives about %.0f frame hashes, at most %d (hash fewer frames: a larger seconds-per-hash)", path, ErrTooLong, info.Duration.Round(time.Second), info.FPS, want, c.MaxFrames)
	}
	w, h := info.Width, info.Height
	if o.Downsample > 0 {
		w, h = o.Downsample, o.Downsample
	}
	var frames []vpdq.Frame
	err = c.Frames(ctx, path, step, w, h, func(n int64, img *pdq.RGB24) error {
		f, err := vpdq.HashFrame(img, n, info.FPS)
		if err != nil {
			return err
		}
		frames = append(frames, f)
		return nil
	})
	if err != nil {
		return Info{}, nil, err
	}
	return info, frames, nil
}
