package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/hashfed/hashfed/consortium/vpdq"
	"github.com/hashfed/hashfed/internal/ffmpeg"
	"github.com/hashfed/hashfed/internal/memberclient"
)

// videoFlags are the video hashing options of hash and match.
type videoFlags struct {
	secondsPerHash float64
	downsample     int
	timeout        time.Duration
	ffmpeg         string
	ffprobe        string
}

func (v *videoFlags) register(fs interface {
	Float64Var(*float64, string, float64, string)
	IntVar(*int, string, int, string)
	DurationVar(*time.Duration, string, time.Duration, string)
	StringVar(*string, string, string, string)
}) {
	fs.Float64Var(&v.secondsPerHash, "seconds-per-hash", 0, "video: seconds between hashed frames (0: every frame; 1 suits long videos)")
	fs.IntVar(&v.downsample, "downsample", 0, "video: scale frames to N×N before hashing (0: own size)")
	fs.DurationVar(&v.timeout, "video-timeout", 10*time.Minute, "video: give up decoding after this long")
	fs.StringVar(&v.ffmpeg, "ffmpeg", "ffmpeg", "video: the ffmpeg program")
	fs.StringVar(&v.ffprobe, "ffprobe", "ffprobe", "video: the ffprobe program")
}

func (v *videoFlags) options() (memberclient.VideoOptions, error) {
	cfg := ffmpeg.DefaultConfig()
	cfg.FFmpeg, cfg.FFprobe = v.ffmpeg, v.ffprobe
	o := vpdq.HashOptions{SecondsPerHash: v.secondsPerHash, Downsample: v.downsample}
	if err := o.Validate(); err != nil {
		return memberclient.VideoOptions{}, usageErr("%v", err)
	}
	if v.timeout <= 0 {
		return memberclient.VideoOptions{}, usageErr("--video-timeout %v: want a positive duration", v.timeout)
	}
	return memberclient.VideoOptions{FFmpeg: cfg, Hash: o}, nil
}

// hashFile hashes one file within the video timeout.
func (v *videoFlags) hashFile(ctx context.Context, path string, o memberclient.VideoOptions) (memberclient.FileHashes, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, v.timeout, fmt.Errorf("--video-timeout %v reached", v.timeout))
	defer cancel()
	return memberclient.HashFile(ctx, path, o)
}

func runHash(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "hash", "FILE... [--json] [--seconds-per-hash S] [--downsample N]")
	asJSON := fs.Bool("json", false, "print JSON Lines")
	var vf videoFlags
	vf.register(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usageErr("hash needs files (any file: MD5 and SHA-256; PDQ for images, vPDQ for videos)")
	}
	o, err := vf.options()
	if err != nil {
		return err
	}
	failed := 0
	// Files are hashed on every core; the output keeps the order of the command line.
	hash := func(path string) (memberclient.FileHashes, error) { return vf.hashFile(ctx, path, o) }
	hashAll(pos, hash, func(path string, h memberclient.FileHashes, err error) {
		if err != nil {
			fmt.Fprintf(e.stderr, "hashfed: %v\n", err)
			failed++
			return
		}
		if *asJSON {
			b, _ := json.Marshal(h)
			fmt.Fprintln(e.stdout, string(b))
			return
		}
		fmt.Fprintf(e.stdout, "%s (%s)\n", path, h.Kind)
		if h.PDQ != "" {
			low := ""
			if *h.Quality < 50 {
				low = " (below the default quality gate of 50: too little detail to match reliably)"
			}
			fmt.Fprintf(e.stdout, "  pdq    %s quality %d%s\n", h.PDQ, *h.Quality, low)
		}
		fmt.Fprintf(e.stdout, "  md5    %s\n  sha256 %s\n", h.MD5, h.SHA256)
		if h.Note != "" {
			fmt.Fprintf(e.stdout, "  note   %s\n", h.Note)
		}
		if v := h.Video; v != nil {
			every := "every frame"
			if v.SecondsPerHash > 0 {
				every = fmt.Sprintf("every %g s", v.SecondsPerHash)
			}
			size := ""
			if v.Downsample > 0 {
				size = fmt.Sprintf(", scaled to %d×%d", v.Downsample, v.Downsample)
			}
			fmt.Fprintf(e.stdout, "  vpdq   %d frames (%s of %d×%d at %.4g fps%s, %.1f s); frame,quality,pdq,seconds:\n",
				len(v.Frames), every, v.Width, v.Height, v.FPS, size, v.Seconds)
			var b strings.Builder
			vpdq.WriteText(&b, v.Decoded)
			for _, line := range strings.SplitAfter(strings.TrimSuffix(b.String(), "\n"), "\n") {
				fmt.Fprintf(e.stdout, "    %s", line)
			}
			fmt.Fprintln(e.stdout)
		}
	})
	if failed > 0 {
		return fmt.Errorf("%d of %d files could not be hashed", failed, len(pos))
	}
	return nil
}
