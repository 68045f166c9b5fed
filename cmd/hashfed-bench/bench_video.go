package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/consortium/pdq"
	"github.com/hashfed/hashfed/consortium/vpdq"
	"github.com/hashfed/hashfed/internal/ffmpeg"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"github.com/hashfed/hashfed/store"
	"github.com/hashfed/hashfed/store/pdqindex"
)

// The vPDQ reference's published figures (vpdq/benchmark/README.MD, not measured here): hashing
// 7,069 frames at their own size took 4.86 ms a frame in C++ on an Apple M1 Pro, 1.45 ms scaled to
// 360×360; its FAISS flat index over 2,000 videos of 500 frames (1,000,000 frames) answered a query
// in 0.25 ms on an Apple M2 (several cores).
const (
	refMSPerFrameNative = 4.86
	refMSPerFrameIndex  = 0.25
)

// benchVideo implements `hashfed-bench video`: vPDQ hashing speed of a generated 480p video
// (ffmpeg decoding with one thread, hashing on one goroutine with GOMAXPROCS=1), and a 600-frame
// video query (a 10-minute video at one frame a second) against -frames listed frames in a store,
// on one core. The last line is
//
//	frames=… frames_per_s=… frames_per_cpu_s=… cpu_s_per_min_480p=… wall_s_per_min_480p=… listed_frames=… videos=…
//	query_frames=600 query_cpu_ms_p50=… anchor_cpu_ms_p50=… query_ms_p50=… query_ms_max=… matched=… rss_mb=…
//
// The anchor is the same 600 frame searches in a bare pdqindex bulk-loaded with the same frames,
// timed in the same run, so that the figures can be compared on a loaded machine.
func benchVideo(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "video")
	seconds := fs.Float64("seconds", 20, "length of the generated 480p video to hash, in seconds")
	listed := fs.Int("frames", 1_000_000, "frames listed in the store for the match measurement")
	queries := fs.Int("queries", 5, "video queries to time")
	dir := fs.String("dir", "", "directory for the generated video and the store (default: a temporary one)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *seconds <= 0 || *listed < 600 || *queries < 1 {
		return usageErr("video: want -seconds > 0, -frames ≥ 600 and -queries ≥ 1")
	}
	work, cleanup, err := workDir(*dir, "video")
	if err != nil {
		return err
	}
	defer cleanup()

	// Hashing.
	video := filepath.Join(work, "480p.mp4")
	gen := exec.CommandContext(ctx, "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
		"-i", fmt.Sprintf("testsrc2=size=854x480:rate=30:duration=%g", *seconds), "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", video)
	if out, err := gen.CombinedOutput(); err != nil {
		return fmt.Errorf("video: generate the 480p test video with ffmpeg: %v: %s", err, out)
	}
	prev := runtime.GOMAXPROCS(1)
	cpu0 := cpuSeconds()
	start := time.Now()
	_, frames, err := ffmpeg.DefaultConfig().Hash(ctx, video, vpdq.HashOptions{})
	wall := time.Since(start).Seconds()
	cpu := cpuSeconds() - cpu0
	runtime.GOMAXPROCS(prev)
	if err != nil {
		return err
	}
	fps := float64(len(frames)) / wall
	fmt.Fprintf(e.stdout, "hashing: %d frames of 854×480 in %.2f s wall, %.2f s CPU (ffmpeg with one thread + hashing on one core): %.0f frames/s, %.2f ms/frame (reference C++: %.2f ms/frame on an Apple M1 Pro, native size)\n",
		len(frames), wall, cpu, fps, 1000*wall/float64(len(frames)), refMSPerFrameNative)

	// Matching: -frames listed frames in videos of 500 frames (a 500-second video at one frame a
	// second each), and queries of 600 frames: one listed video's frames, slightly changed, then
	// frames of nothing listed.
	_, g := majority(1, "m%d")
	st, err := store.Open(filepath.Join(work, "hashfed.db"), g, store.Options{QualityGate: 50, MaxBatch: 10_000, MaxQueued: 1_000_000, NoSync: true})
	if err != nil {
		return err
	}
	defer st.Close()
	const perVideo = 500
	rng := rand.New(rand.NewPCG(1, 2))
	randomHash := func() pdq.Hash {
		var h pdq.Hash
		for i := 0; i < 32; i += 8 {
			binary.LittleEndian.PutUint64(h[i:], rng.Uint64())
		}
		return h
	}
	var plant, all []pdq.Hash
	nVideos := (*listed + perVideo - 1) / perVideo
	buildStart := time.Now()
	var batch []*pb.Entry
	for v := range nVideos {
		n := min(perVideo, *listed-v*perVideo)
		fr := make([]vpdq.Frame, n)
		for i := range fr {
			fr[i] = vpdq.Frame{Number: int64(i), Quality: 100, Hash: randomHash(), MS: int64(1000 * i)}
		}
		for _, f := range fr {
			all = append(all, f.Hash)
		}
		if v == nVideos/2 {
			for _, f := range fr {
				plant = append(plant, f.Hash)
			}
		}
		parts, err := consortium.VideoParts(fr, 50)
		if err != nil {
			return err
		}
		for _, p := range parts {
			en, err := consortium.NewVideoAdd(0, p, nil, consortium.AddOptions{ContentID: fmt.Sprintf("video-%d", v)})
			if err != nil {
				return err
			}
			batch = append(batch, en)
		}
		if len(batch) >= 100 || v == nVideos-1 {
			res, err := st.Submit(ctx, "m0", batch)
			if err != nil {
				return err
			}
			for _, r := range res {
				if r.Err != nil {
					return r.Err
				}
			}
			batch = batch[:0]
		}
	}
	// Let the index finish a background re-layout, as it would long before a query in service.
	for (st.VideoIndexStats().Relayouting || st.VideoSketchStats().Relayouting) && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	build := time.Since(buildStart).Seconds()
	stats, sketch := st.VideoIndexStats(), st.VideoSketchStats()
	fmt.Fprintf(e.stdout, "frame index: %d frames, layout %s, %.0f bytes a frame; sketch: %d frames, layout %s, %.0f bytes a frame\n",
		stats.Len, stats.Layout, float64(stats.Bytes)/float64(max(1, stats.Len)), sketch.Len, sketch.Layout, float64(sketch.Bytes)/float64(max(1, sketch.Len)))
	// The anchor, in the same run: the same frames bulk-loaded into a bare pdqindex, and the
	// query's 600 frames searched one by one: the cost of the frame searches alone.
	anchor, err := pdqindex.New(pdqindex.DefaultOptions())
	if err != nil {
		return err
	}
	anchor.BulkLoad(func(yield func(uint32, pdqindex.Hash) bool) {
		for i, h := range all {
			if !yield(uint32(i), h) {
				return
			}
		}
	})
	var lat, cpuLat, anchorLat []float64
	matched := 0
	runtime.GOMAXPROCS(1)
	stop := profile()
	for q := range *queries {
		query := make([]vpdq.Frame, 600)
		for i := range query {
			h := randomHash()
			if i < len(plant) {
				h = plant[i]
				for k := range 1 + q%8 {
					h[(i+7*k)%32] ^= 1 << (k % 8)
				}
			}
			query[i] = vpdq.Frame{Number: int64(i), Quality: 100, Hash: h, MS: int64(1000 * i)}
		}
		c0 := selfCPU()
		var hits []pdqindex.Match
		for _, f := range query {
			hits = anchor.Search(f.Hash, 31, hits[:0])
		}
		anchorLat = append(anchorLat, 1000*(selfCPU()-c0))
		c0, t0 := selfCPU(), time.Now()
		res, err := st.MatchVideo(query, store.DefaultVideoQuery())
		lat = append(lat, float64(time.Since(t0).Microseconds())/1000)
		cpuLat = append(cpuLat, 1000*(selfCPU()-c0))
		if err != nil {
			runtime.GOMAXPROCS(prev)
			return err
		}
		if len(res.Videos) == 1 && res.Videos[0].ContentID == fmt.Sprintf("video-%d", nVideos/2) {
			matched++
		}
	}
	stop()
	runtime.GOMAXPROCS(prev)
	slices.Sort(lat)
	slices.Sort(cpuLat)
	slices.Sort(anchorLat)
	fmt.Fprintf(e.stdout, "matching: %d listed frames in %d videos (stored and indexed in %.1f s); 600-frame query on one core: CPU median %.1f ms (anchor: its 600 frame searches alone in a bulk-loaded pdqindex, %.1f ms), wall median %.1f ms, max %.1f ms; %d of %d found the planted video (reference FAISS flat index: %.2f ms per frame query on an Apple M2, so about %.0f ms for 600 frames)\n",
		*listed, nVideos, build, cpuLat[len(cpuLat)/2], anchorLat[len(anchorLat)/2], lat[len(lat)/2], lat[len(lat)-1], matched, *queries, refMSPerFrameIndex, 600*refMSPerFrameIndex)
	fmt.Fprintf(e.stdout, "frames=%d frames_per_s=%.0f frames_per_cpu_s=%.0f cpu_s_per_min_480p=%.1f wall_s_per_min_480p=%.1f listed_frames=%d videos=%d query_frames=600 query_cpu_ms_p50=%.1f anchor_cpu_ms_p50=%.1f query_ms_p50=%.1f query_ms_max=%.1f matched=%d/%d rss_mb=%.0f\n",
		len(frames), fps, float64(len(frames))/cpu, cpu*60 / *seconds, wall*60 / *seconds, *listed, nVideos, cpuLat[len(cpuLat)/2], anchorLat[len(anchorLat)/2], lat[len(lat)/2], lat[len(lat)-1], matched, *queries, peakRSS())
	return nil
}

// selfCPU returns the user and system CPU time of this process.
func selfCPU() float64 {
	var self syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	return float64(self.Utime.Sec) + float64(self.Utime.Usec)/1e6 + float64(self.Stime.Sec) + float64(self.Stime.Usec)/1e6
}

// cpuSeconds returns the user and system CPU time of this process and its waited-for children.
func cpuSeconds() float64 {
	var self, kids syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(self.Utime) + tv(self.Stime) + tv(kids.Utime) + tv(kids.Stime)
}
