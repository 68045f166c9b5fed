package ffmpeg

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashfed/hashfed/consortium/pdq"
	"github.com/hashfed/hashfed/consortium/vpdq"
)

// conformanceSets lists (video, reference hashes, downsample) to check: the two sample videos
// kept in testdata (under -race the 128×128 set only), or all 14 when HASHFED_VPDQ_SAMPLES names a directory with the reference's
// videos/ and sample-hashes/.
func conformanceSets(t testing.TB) []conformanceSet {
	t.Helper()
	var sets []conformanceSet
	if dir := os.Getenv("HASHFED_VPDQ_SAMPLES"); dir != "" {
		videos, _ := filepath.Glob(filepath.Join(dir, "videos", "*.mp4"))
		if len(videos) == 0 {
			t.Fatalf("HASHFED_VPDQ_SAMPLES=%s: no videos/*.mp4", dir)
		}
		for _, v := range videos {
			name := strings.TrimSuffix(filepath.Base(v), ".mp4")
			sets = append(sets,
				conformanceSet{name, v, filepath.Join(dir, "sample-hashes", name+".txt"), 0},
				conformanceSet{name, v, filepath.Join(dir, "sample-hashes", name+"-128x128.txt"), 128})
		}
		return sets
	}
	ref := filepath.Join("..", "..", "consortium", "vpdq", "testdata", "sample-hashes")
	if raceEnabled {
		return []conformanceSet{{"doorknob-hd-no-bar", filepath.Join("testdata", "doorknob-hd-no-bar.mp4"), filepath.Join(ref, "doorknob-hd-no-bar-128x128.txt"), 128}}
	}
	return []conformanceSet{
		{"doorknob-hd-no-bar", filepath.Join("testdata", "doorknob-hd-no-bar.mp4"), filepath.Join(ref, "doorknob-hd-no-bar.txt"), 0},
		{"doorknob-hd-no-bar", filepath.Join("testdata", "doorknob-hd-no-bar.mp4"), filepath.Join(ref, "doorknob-hd-no-bar-128x128.txt"), 128},
		{"test-padded-dimensions", filepath.Join("testdata", "test-padded-dimensions.mp4"), filepath.Join(ref, "test-padded-dimensions.txt"), 0},
	}
}

type conformanceSet struct {
	name, video, ref string
	downsample       int
}

// sample returns the path of a sample video kept in testdata.
func sample(t *testing.T, name string) string {
	t.Helper()
	return filepath.Join("testdata", name)
}

// needFFmpeg skips a test when ffmpeg is not installed.
func needFFmpeg(t testing.TB) {
	t.Helper()
	for _, p := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("%s not installed: %v", p, err)
		}
	}
}

// distStats summarizes distances between our frame hashes and the reference's.
type distStats struct {
	frames, compared, within int
	median, p95, max         int
	qualityDiffers, missing  int
}

func (s distStats) share() float64 { return 100 * float64(s.within) / float64(max(1, s.compared)) }

// compareToReference pairs frames by number and measures distances over the frames whose two
// qualities are at least 50 (the reference's regression rule).
func compareToReference(got, want []vpdq.Frame) distStats {
	byNum := make(map[int64]vpdq.Frame, len(got))
	for _, f := range got {
		byNum[f.Number] = f
	}
	var s distStats
	var ds []int
	s.frames = len(want)
	for _, w := range want {
		g, ok := byNum[w.Number]
		if !ok {
			s.missing++
			continue
		}
		if g.Quality < 50 || w.Quality < 50 {
			s.qualityDiffers++
			continue
		}
		d := pdq.Distance(g.Hash, w.Hash)
		ds = append(ds, d)
		if d <= 31 {
			s.within++
		}
	}
	s.compared = len(ds)
	if len(ds) > 0 {
		slices.Sort(ds)
		s.median = ds[len(ds)/2]
		s.p95 = ds[(len(ds)*95)/100]
		s.max = ds[len(ds)-1]
	}
	return s
}

// TestConformance hashes every sample video (at its own size and at 128×128) and requires that
// at least 95 % of the frames the reference hashed at quality ≥ 50 are within distance 31 of the
// reference's hash, with the same frame numbers and timestamps. It logs the distribution that
// docs/BENCHMARKS.md records (go test -run TestConformance -v ./internal/ffmpeg/).
func TestConformance(t *testing.T) {
	needFFmpeg(t)
	var table []string
	for _, cs := range conformanceSets(t) {
		f, err := os.Open(cs.ref)
		if err != nil {
			t.Logf("skipping %s: %v", cs.name, err)
			continue
		}
		want, err := vpdq.ParseText(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", cs.ref, err)
		}
		t.Run(fmt.Sprintf("%s/%d", cs.name, cs.downsample), func(t *testing.T) {
			_, got, err := DefaultConfig().Hash(t.Context(), cs.video, vpdq.HashOptions{Downsample: cs.downsample})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Errorf("got %d frames, reference lists %d", len(got), len(want))
			}
			for i := range min(len(got), len(want)) {
				if got[i].Number != want[i].Number || got[i].MS != want[i].MS {
					t.Fatalf("frame %d: got number %d at %d ms, want %d at %d ms", i, got[i].Number, got[i].MS, want[i].Number, want[i].MS)
				}
			}
			s := compareToReference(got, want)
			table = append(table, fmt.Sprintf("| %s | %d | %d | %d | %d | %d | %d | %.1f %% |", cs.name, cs.downsample, s.frames, s.compared, s.median, s.p95, s.max, s.share()))
			if s.share() < 95 {
				t.Errorf("%.1f %% of %d frames within distance 31 of the reference (median %d, p95 %d, max %d), want at least 95 %%", s.share(), s.compared, s.median, s.p95, s.max)
			}
		})
	}
	t.Log("| video | downsample | reference frames | compared (both quality ≥ 50) | median | p95 | max | within 31 |\n" + strings.Join(table, "\n"))
}
