package ffmpeg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashfed/hashfed/consortium/vpdq"
)

func write(t *testing.T, name string, data []byte, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestHostileInputs feeds files a hostile uploader could send and checks each gives the named
// error, in bounded time.
func TestHostileInputs(t *testing.T) {
	needFFmpeg(t)
	good, err := os.ReadFile(sample(t, "doorknob-hd-no-bar.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	corrupt := append([]byte(nil), good...)
	for i := len(corrupt) / 3; i < len(corrupt)*2/3; i += 97 {
		corrupt[i] ^= 0x5a
	}
	small := DefaultConfig()
	small.MaxPixels = 100 * 100
	few := DefaultConfig()
	few.MaxFrames = 10
	short := DefaultConfig()
	short.MaxDuration = time.Second
	tests := []struct {
		name string
		path string
		cfg  Config
		opts vpdq.HashOptions
		want error
	}{
		{"text file", write(t, "a.mp4", []byte("hello, world\n"), 0o644), DefaultConfig(), vpdq.HashOptions{}, ErrNotVideo},
		{"empty file", write(t, "e.mp4", nil, 0o644), DefaultConfig(), vpdq.HashOptions{}, ErrNotVideo},
		// The moov atom is at the end of these files, so the first half has no index at all.
		// Frames scaled to 64×64 so that hashing stays quick under -race on a loaded machine.
		{"truncated", write(t, "t.mp4", good[:len(good)/2], 0o644), DefaultConfig(), vpdq.HashOptions{Downsample: 64}, ErrDecode},
		{"corrupt", write(t, "x.mp4", corrupt, 0o644), DefaultConfig(), vpdq.HashOptions{Downsample: 64}, ErrDecode},
		{"truncated header", write(t, "h.mp4", good[:40], 0o644), DefaultConfig(), vpdq.HashOptions{}, ErrNotVideo},
		// A playlist would make ffmpeg open a URL (here a closed loopback port): refused by the
		// demuxer allow-list before anything is opened.
		{"playlist", write(t, "p.m3u8", []byte("#EXTM3U\n#EXTINF:1,\nhttp://127.0.0.1:1/x.ts\n"), 0o644), DefaultConfig(), vpdq.HashOptions{}, ErrNotVideo},
		{"concat list", write(t, "c.txt", []byte("ffconcat version 1.0\nfile /etc/passwd\n"), 0o644), DefaultConfig(), vpdq.HashOptions{}, ErrNotVideo},
		// A 16000×16000 stream declared by a 60-byte header: refused on the probe, before any frame
		// buffer exists.
		{"16k x 16k", write(t, "huge.y4m", []byte("YUV4MPEG2 W16000 H16000 F30:1 Ip A1:1 C420jpeg\nFRAME\n"), 0o644), DefaultConfig(), vpdq.HashOptions{}, ErrTooLarge},
		{"over max pixels", sample(t, "doorknob-hd-no-bar.mp4"), small, vpdq.HashOptions{}, ErrTooLarge},
		{"downsample over max pixels", sample(t, "doorknob-hd-no-bar.mp4"), small, vpdq.HashOptions{Downsample: 128}, ErrTooLarge},
		{"too many frame hashes", sample(t, "doorknob-hd-no-bar.mp4"), few, vpdq.HashOptions{}, ErrTooLong},
		{"too long", sample(t, "doorknob-hd-no-bar.mp4"), short, vpdq.HashOptions{}, ErrTooLong},
		// A stream that declares no duration (as a live capture or a lying header would) is cut off
		// while it streams, at MaxFrames.
		{"endless stream", write(t, "long.y4m", y4m(16, 16, 50), 0o644), few, vpdq.HashOptions{}, ErrTooLong},
		{"bad options", sample(t, "doorknob-hd-no-bar.mp4"), DefaultConfig(), vpdq.HashOptions{Downsample: 3}, vpdq.ErrBadOptions},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			_, _, err := tc.cfg.Hash(ctx, tc.path, tc.opts)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got error %v, want %v", err, tc.want)
			}
			t.Log(err)
		})
	}
}

// TestCorruptStreamAllowed flips bytes in the middle of a video and allows decoding errors:
// ffmpeg conceals what it can, so the result is frames, never a hang or a crash.
func TestCorruptStreamAllowed(t *testing.T) {
	needFFmpeg(t)
	good, err := os.ReadFile(sample(t, "doorknob-hd-no-bar.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	for i := len(good) / 3; i < len(good)*2/3; i += 97 {
		good[i] ^= 0x5a
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cfg := DefaultConfig()
	cfg.AllowDecodeErrors = true
	_, frames, err := cfg.Hash(ctx, write(t, "x.mp4", good, 0o644), vpdq.HashOptions{Downsample: 64})
	if err != nil || len(frames) == 0 {
		t.Fatalf("got %d frames and error %v, want frames", len(frames), err)
	}
}

// TestMissingOrHangingFFmpeg runs a missing program and programs that never answer.
func TestMissingOrHangingFFmpeg(t *testing.T) {
	needFFmpeg(t)
	video := sample(t, "doorknob-hd-no-bar.mp4")
	hang := write(t, "hang.sh", []byte("#!/bin/sh\nexec sleep 600\n"), 0o755)
	missing := DefaultConfig()
	missing.FFprobe = filepath.Join(t.TempDir(), "no-such-ffprobe")
	hangProbe := DefaultConfig()
	hangProbe.FFprobe = hang
	hangDecode := DefaultConfig()
	hangDecode.FFmpeg = hang
	missingDecode := DefaultConfig()
	missingDecode.FFmpeg = filepath.Join(t.TempDir(), "no-such-ffmpeg")
	for _, tc := range []struct {
		name string
		cfg  Config
		want error
	}{
		{"missing ffprobe", missing, ErrNoFFmpeg},
		{"missing ffmpeg", missingDecode, ErrNoFFmpeg},
		{"hanging ffprobe", hangProbe, ErrTimeout},
		{"hanging ffmpeg", hangDecode, ErrTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			defer cancel()
			start := time.Now()
			_, _, err := tc.cfg.Hash(ctx, video, vpdq.HashOptions{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("got error %v, want %v", err, tc.want)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Fatalf("took %v after a 2 s deadline", d)
			}
		})
	}
}

// TestSampling checks seconds per hash: one frame a second of a 30 fps video is frames 0, 30,
// 60, ... at whole seconds.
func TestSampling(t *testing.T) {
	needFFmpeg(t)
	info, frames, err := DefaultConfig().Hash(t.Context(), sample(t, "doorknob-hd-no-bar.mp4"), vpdq.HashOptions{SecondsPerHash: 1, Downsample: 64})
	if err != nil {
		t.Fatal(err)
	}
	if info.FPS != 30 || len(frames) != 4 {
		t.Fatalf("got %v fps and %d frames, want 30 and 4 (120 frames)", info.FPS, len(frames))
	}
	for i, f := range frames {
		if f.Number != int64(30*i) || f.MS != int64(1000*i) {
			t.Errorf("frame %d: got number %d at %d ms, want %d at %d ms", i, f.Number, f.MS, 30*i, 1000*i)
		}
	}
}

// y4m returns an uncompressed YUV4MPEG2 stream of n grey w×h frames at 30 frames a second, a
// format without a declared duration.
func y4m(w, h, n int) []byte {
	b := []byte(fmt.Sprintf("YUV4MPEG2 W%d H%d F30:1 Ip A1:1 C420jpeg\n", w, h))
	frame := make([]byte, w*h*3/2)
	for i := range n {
		b = append(b, "FRAME\n"...)
		for k := range frame {
			frame[k] = byte(i*7 + k)
		}
		b = append(b, frame...)
	}
	return b
}
