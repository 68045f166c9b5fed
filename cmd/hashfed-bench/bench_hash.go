package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashfed/hashfed/consortium/pdq"
)

// The C++ reference's speed on the same task, given (not measured here) for comparison: about
// 550 hashes/s of 512×512 images on one core of a desktop faster than a typical server core.
const cppAnchorHashesPerSecond512 = 550

// runBenchHash implements `hashfed-bench hash`: it times PDQ hashing on one goroutine with
// GOMAXPROCS=1, of decoded 512×512 images and of 1600×1004 JPEG files (decoding included),
// prints a few lines for a person and then one last line of key=value figures:
//
//	hashes_per_s_512=… us_per_hash_512=… jpeg_per_s_1600x1004=… us_per_jpeg=… cores=1 files=… repeat=… files_per_s_1core=… files_per_s_allcores=… cores_all=… files_per_cpu_s_1core=…
//
// The images are the 512×512 images and 1600×1004 JPEGs found under -images (by default the
// repository's PDQ test images); when there are none, it makes deterministic ones. The files_ figures
// are end to end, as `hashfed hash` does it for many files (pdq.HashFile): each JPEG of 1600×1004 or 1004×1600 (the
// conformance set's eleven bridge photos under ../shared/pdq/images) read from memory, decoded and
// hashed -repeat times, first on one core (one goroutine, GOMAXPROCS=1) and then on every core (one
// goroutine per CPU taking the next file, as hashfed hash does).
func runBenchHash(ctx context.Context, args []string, stdout io.Writer) error {
	flags := flag.NewFlagSet("hashfed-bench hash", flag.ContinueOnError)
	flags.SetOutput(stdout)
	seconds := flags.Float64("seconds", 3, "how long to time each of the two measurements, in seconds")
	dir := flags.String("images", filepath.Join("testdata", "pdq"), "directory searched for 512×512 images and 1600×1004 JPEGs")
	repeat := flags.Int("repeat", 20, "times each 1600×1004 or 1004×1600 JPEG is hashed in the files_ figures")
	distances := flags.String("distances", "", "instead of timing, report the hash distances between JPEG decoders over the conformance set in this directory (e.g. ../shared/pdq)")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("bench hash: unexpected arguments %q", flags.Args())
	}
	if *distances != "" {
		return runHashDistances(*distances, stdout)
	}
	if *repeat < 1 {
		return fmt.Errorf("bench hash: -repeat is %d, want at least 1", *repeat)
	}
	if !(*seconds > 0) || math.IsInf(*seconds, 0) {
		return fmt.Errorf("bench hash: -seconds is %v, want a positive number", *seconds)
	}
	budget := time.Duration(*seconds * float64(time.Second))
	if err := ctx.Err(); err != nil {
		return err
	}

	in, err := findBenchImages(*dir)
	if err != nil {
		return err
	}
	if len(in.decoded512) == 0 || len(in.jpegs) == 0 {
		if err := in.synthesize(); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "PDQ hashing on one goroutine, GOMAXPROCS=1, %s/%s, %s, JPEG decoder %s\n", runtime.GOOS, runtime.GOARCH, runtime.Version(), pdq.JPEGDecoderName())
	fmt.Fprintf(stdout, "inputs: %s\n", in.source)

	cpus := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))

	i := 0
	n512, t512, err := timeLoop(ctx, budget, func() error {
		pdq.HashImage(in.decoded512[i%len(in.decoded512)])
		i++
		return nil
	})
	if err != nil {
		return err
	}
	j := 0
	nJPEG, tJPEG, err := timeLoop(ctx, budget, func() error {
		data := in.jpegs[j%len(in.jpegs)]
		j++
		_, _, _, err := pdq.HashFile(bytes.NewReader(data), pdq.DecodeOptions{})
		return err
	})
	if err != nil {
		return err
	}

	perSec512 := float64(n512) / t512.Seconds()
	us512 := t512.Seconds() * 1e6 / float64(n512)
	perSecJPEG := float64(nJPEG) / tJPEG.Seconds()
	usJPEG := tJPEG.Seconds() * 1e6 / float64(nJPEG)
	fmt.Fprintf(stdout, "decoded 512×512: %d hashes in %.2f s: %.0f hashes/s, %.0f µs each\n", n512, t512.Seconds(), perSec512, us512)
	fmt.Fprintf(stdout, "1600×1004 JPEG, decode and hash: %d in %.2f s: %.1f/s, %.0f µs each\n", nJPEG, tJPEG.Seconds(), perSecJPEG, usJPEG)
	fmt.Fprintf(stdout, "anchor (given, not measured here): the C++ reference does about %d hashes/s of 512×512 on one faster desktop core\n", cppAnchorHashesPerSecond512)

	files := in.files
	if len(files) == 0 {
		files = in.jpegs
	}
	cpu0 := cpuTime()
	one, err := timeFiles(ctx, files, *repeat, 1)
	if err != nil {
		return err
	}
	cpuOne := cpuTime() - cpu0
	runtime.GOMAXPROCS(cpus)
	all, err := timeFiles(ctx, files, *repeat, cpus)
	runtime.GOMAXPROCS(1)
	if err != nil {
		return err
	}
	n := len(files) * *repeat
	fmt.Fprintf(stdout, "%d JPEG files × %d, read from memory, decoded and hashed: %.1f files/s on one core, %.1f files/s on %d cores\n",
		len(files), *repeat, float64(n)/one.Seconds(), float64(n)/all.Seconds(), cpus)
	// On a loaded machine the wall clock counts the time other processes held the core; the
	// process's CPU time over the one-core run does not, so files per CPU second is the steadier
	// figure there (on a quiet machine the two agree).
	perCPU := 0.0
	if cpuOne > 0 {
		perCPU = float64(n) / cpuOne.Seconds()
		fmt.Fprintf(stdout, "one-core run: %.2f s of CPU for %.2f s of wall clock: %.1f files per CPU second\n", cpuOne.Seconds(), one.Seconds(), perCPU)
	}
	fmt.Fprintf(stdout, "hashes_per_s_512=%.0f us_per_hash_512=%.1f jpeg_per_s_1600x1004=%.1f us_per_jpeg=%.0f cores=1 files=%d repeat=%d files_per_s_1core=%.1f files_per_s_allcores=%.1f cores_all=%d files_per_cpu_s_1core=%.1f\n",
		perSec512, us512, perSecJPEG, usJPEG, len(files), *repeat, float64(n)/one.Seconds(), float64(n)/all.Seconds(), cpus, perCPU)
	return nil
}

// timeFiles decodes and hashes every file repeat times on the given number of goroutines, each taking
// the next file (as hashfed hash does with many files), and returns how long that took.
func timeFiles(ctx context.Context, files [][]byte, repeat, workers int) (time.Duration, error) {
	var next atomic.Int64
	errs := make([]error, workers)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(files)*repeat || ctx.Err() != nil {
					return
				}
				if _, _, _, err := pdq.HashFile(bytes.NewReader(files[i%len(files)]), pdq.DecodeOptions{}); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	d := time.Since(start)
	if err := ctx.Err(); err != nil {
		return d, err
	}
	return d, errors.Join(errs...)
}

// timeLoop runs f at least once and until budget has passed, and returns how many times it ran
// and for how long.
func timeLoop(ctx context.Context, budget time.Duration, f func() error) (int, time.Duration, error) {
	start := time.Now()
	n := 0
	for {
		if err := ctx.Err(); err != nil {
			return n, time.Since(start), err
		}
		if err := f(); err != nil {
			return n, time.Since(start), err
		}
		n++
		if d := time.Since(start); d >= budget {
			return n, d, nil
		}
	}
}

// benchImages are the inputs of runBenchHash.
type benchImages struct {
	decoded512 []image.Image // decoded 512×512 images
	jpegs      [][]byte      // 1600×1004 JPEG files
	files      [][]byte      // 1600×1004 and 1004×1600 JPEG files
	source     string        // where they came from, for the report
}

// findBenchImages walks dir for image files: 512×512 images of any format are decoded, and
// 1600×1004 JPEGs kept as bytes. A missing dir finds nothing; other errors are returned.
func findBenchImages(dir string) (*benchImages, error) {
	in := &benchImages{}
	var names512, namesJPEG []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path == dir {
				return fs.SkipAll
			}
			return err
		}
		ext := strings.ToLower(filepath.Ext(path))
		if d.IsDir() || !slices.Contains([]string{".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp"}, ext) {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
		if err != nil {
			return nil // not an image this binary decodes; not an input
		}
		switch {
		case cfg.Width == 512 && cfg.Height == 512:
			img, _, err := pdq.Decode(bytes.NewReader(data), pdq.DecodeOptions{})
			if err != nil {
				return fmt.Errorf("bench hash: %s: %w", path, err)
			}
			in.decoded512 = append(in.decoded512, img)
			names512 = append(names512, path)
		case format == "jpeg" && cfg.Width == 1600 && cfg.Height == 1004:
			in.jpegs = append(in.jpegs, data)
			in.files = append(in.files, data)
			namesJPEG = append(namesJPEG, path)
		case format == "jpeg" && cfg.Width == 1004 && cfg.Height == 1600:
			in.files = append(in.files, data)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bench hash: reading images: %w", err)
	}
	in.source = fmt.Sprintf("%d images of 512×512 and %d JPEGs of 1600×1004 under %s (%d of 1004×1600)", len(names512), len(namesJPEG), dir, len(in.files)-len(in.jpegs))
	return in, nil
}

// synthesize fills in whichever inputs are missing with deterministic images: smooth patterns
// with fine detail, passed through the JPEG encoder at quality 90 like a typical upload, so the
// 512×512 image is an *image.YCbCr as decoded photos are.
func (in *benchImages) synthesize() error {
	made := []string{}
	if len(in.decoded512) == 0 {
		data, err := patternJPEG(512, 512)
		if err != nil {
			return err
		}
		img, _, err := pdq.Decode(bytes.NewReader(data), pdq.DecodeOptions{})
		if err != nil {
			return fmt.Errorf("bench hash: decoding a synthetic image: %w", err)
		}
		in.decoded512 = append(in.decoded512, img)
		made = append(made, "one 512×512")
	}
	if len(in.jpegs) == 0 {
		data, err := patternJPEG(1600, 1004)
		if err != nil {
			return err
		}
		in.jpegs = append(in.jpegs, data)
		made = append(made, "one 1600×1004 JPEG")
	}
	in.source += "; made " + strings.Join(made, " and ") + " (synthetic)"
	return nil
}

// patternJPEG encodes a deterministic width×height test pattern as a JPEG.
func patternJPEG(width, height int) ([]byte, error) {
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	for y := range height {
		for x := range width {
			fx, fy := float64(x)/float64(width), float64(y)/float64(height)
			i := img.PixOffset(x, y)
			img.Pix[i] = uint8(127 + 120*math.Sin(9*fx+4*fy))
			img.Pix[i+1] = uint8(127 + 120*math.Cos(13*fx*fy+3*fy))
			img.Pix[i+2] = uint8((x*7 ^ y*13) & 0xff)
			img.Pix[i+3] = 0xff
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}); err != nil {
		return nil, fmt.Errorf("bench hash: encoding a synthetic image: %w", err)
	}
	return b.Bytes(), nil
}
