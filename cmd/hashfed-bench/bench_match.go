package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/bits"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashfed/hashfed/internal/corpus"
	"github.com/hashfed/hashfed/store/pdqindex"
)

// runBenchMatch implements `hashfed-bench match`: PDQ matching on the shared benchmark corpus
// (shared/anchors/CORPUS.md). It builds a store/pdqindex index of -n corpus hashes, times -q range
// searches on one core (GOMAXPROCS=1 for the timed loop), checks that every query finds its planted
// match and that the first -sample queries return exactly what a brute-force scan returns (an error if
// not), and prints a few lines for a person and then one last line of key=value figures:
//
//	n=… queries=… radius=… qps=… us_per_query=… build_s=… rss_mb=… recall=… bytes_per_hash=… batch_qps=…
//
// batch_qps times the same queries through SearchBatch, -batch at a time (the node's batch and streaming
// match), also on one core, and the command fails unless every query's results equal Search's.
// With -anchor (the path of faiss_pdq_bench.py) it then runs the faiss anchor on the same corpus as a
// subprocess and adds faiss_qps=… speedup=… batch_speedup=… to that line. build_s excludes generating the corpus; rss_mb
// is this process's peak resident memory (VmHWM) and bytes_per_hash the index's own accounting.
func runBenchMatch(ctx context.Context, args []string, stdout io.Writer) error {
	flags := flag.NewFlagSet("hashfed-bench match", flag.ContinueOnError)
	flags.SetOutput(stdout)
	n := flags.Int("n", 1_000_000, "number of corpus hashes to index")
	nq := flags.Int("q", 2000, "number of queries to time")
	radius := flags.Int("radius", pdqindex.DefaultRadius, "search radius (Hamming distance), 0..255")
	flip := flags.Int("flip", 16, "bits each query flips in its planted hash, 0..256")
	seed := flags.Int("seed", 1, "corpus seed")
	sample := flags.Int("sample", 1000, "queries checked against a brute-force scan (at most -q)")
	batch := flags.Int("batch", 64, "queries per SearchBatch call in the batch measurement (0: skip it)")
	anchor := flags.String("anchor", "", "path of faiss_pdq_bench.py: run it on the same corpus after our measurement")
	if err := flags.Parse(args); err != nil {
		return err
	}
	switch {
	case flags.NArg() > 0:
		return fmt.Errorf("bench match: unexpected arguments %q", flags.Args())
	case *n < 1 || *n > 1<<31:
		return fmt.Errorf("bench match: -n is %d, want 1..%d", *n, 1<<31)
	case *nq < 1:
		return fmt.Errorf("bench match: -q is %d, want at least 1", *nq)
	case *radius < 0 || *radius > 255:
		return fmt.Errorf("bench match: -radius is %d, want 0..255", *radius)
	case *flip < 0 || *flip > corpus.MaxFlip:
		return fmt.Errorf("bench match: -flip is %d, want 0..%d", *flip, corpus.MaxFlip)
	case *batch < 0:
		return fmt.Errorf("bench match: -batch is %d, want 0 or more", *batch)
	case *sample < 0 || *sample > *nq:
		return fmt.Errorf("bench match: -sample is %d, want 0..%d (-q)", *sample, *nq)
	}
	fmt.Fprintf(stdout, "PDQ match: n=%d queries=%d radius=%d flip=%d seed=%d, %s/%s, %s, %d CPUs\n",
		*n, *nq, *radius, *flip, *seed, runtime.GOOS, runtime.GOARCH, runtime.Version(), runtime.NumCPU())

	opts := pdqindex.DefaultOptions()
	if *radius >= 1 && *radius <= 63 {
		opts.Radius = *radius
	}
	x, err := pdqindex.New(opts)
	if err != nil {
		return err
	}
	var genTime time.Duration
	start := time.Now()
	x.BulkLoad(func(yield func(uint32, pdqindex.Hash) bool) {
		forCorpusChunks(*seed, *n, &genTime, func(first int, hs [][32]byte) bool {
			for k, h := range hs {
				if !yield(uint32(first+k), h) {
					return false
				}
			}
			return true
		})
	})
	build := time.Since(start) - genTime
	if err := ctx.Err(); err != nil {
		return err
	}
	st := x.Stats()
	fmt.Fprintf(stdout, "index: %d hashes in %.2f s (corpus generation excluded), layout %s, %.1f bytes/hash\n",
		st.Len, build.Seconds(), st.Layout, float64(st.Bytes)/float64(st.Len))

	qs := make([]pdqindex.Hash, *nq)
	planted := make([]int, *nq)
	for j := range qs {
		qs[j], planted[j] = corpus.Query(*seed, *n, j, *flip)
	}
	results := make([][]pdqindex.Match, *nq)
	runtime.GC()
	prev := runtime.GOMAXPROCS(1)
	stop := profile()
	start = time.Now()
	for j, q := range qs {
		results[j] = x.Search(q, *radius, nil)
	}
	elapsed := time.Since(start)
	stop()
	runtime.GOMAXPROCS(prev)
	qps := float64(*nq) / elapsed.Seconds()
	usPerQuery := elapsed.Seconds() * 1e6 / float64(*nq)

	// The same queries through SearchBatch, -batch at a time: the node's batch and streaming match.
	batchQPS := 0.0
	if *batch > 0 {
		bres := make([][]pdqindex.Match, *nq)
		runtime.GC()
		prev := runtime.GOMAXPROCS(1)
		start = time.Now()
		for j := 0; j < *nq; j += *batch {
			k := min(*batch, *nq-j)
			x.SearchBatch(qs[j:j+k], *radius, bres[j:j+k])
		}
		belapsed := time.Since(start)
		runtime.GOMAXPROCS(prev)
		batchQPS = float64(*nq) / belapsed.Seconds()
		for j := range bres {
			if !slices.Equal(bres[j], results[j]) {
				return fmt.Errorf("bench match: query %d: SearchBatch found %v, Search %v", j, firstMatches(bres[j]), firstMatches(results[j]))
			}
		}
		fmt.Fprintf(stdout, "batch search: %d queries, %d per SearchBatch, in %.3f s on one core: %.0f queries/s, %.1f µs each, same results as Search\n",
			*nq, *batch, belapsed.Seconds(), batchQPS, belapsed.Seconds()*1e6/float64(*nq))
	}

	found, matches := 0, 0
	for j, res := range results {
		matches += len(res)
		if slices.ContainsFunc(res, func(m pdqindex.Match) bool { return int(m.ID) == planted[j] }) {
			found++
		}
	}
	recall := float64(found) / float64(*nq)
	fmt.Fprintf(stdout, "search: %d queries in %.3f s on one core: %.0f queries/s, %.1f µs each, %d matches, planted recall %.4f\n",
		*nq, elapsed.Seconds(), qps, usPerQuery, matches, recall)
	if *flip <= *radius && found != *nq {
		return fmt.Errorf("bench match: %d of %d queries missed their planted match (at distance %d <= radius %d)", *nq-found, *nq, *flip, *radius)
	}

	start = time.Now()
	if err := checkBruteForce(ctx, *seed, *n, *radius, qs[:*sample], results[:*sample]); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "brute-force check: the first %d queries' results equal a full scan's (%.1f s)\n", *sample, time.Since(start).Seconds())

	rss, err := peakRSSMB()
	if err != nil {
		fmt.Fprintf(stdout, "peak RSS unavailable: %v\n", err)
	}
	if huge, err := hugePagesMB(); err == nil {
		fmt.Fprintf(stdout, "transparent huge pages: %.0f MB of this process's memory (AnonHugePages)\n", huge)
	}
	line := fmt.Sprintf("n=%d queries=%d radius=%d qps=%.0f us_per_query=%.1f build_s=%.2f rss_mb=%.0f recall=%.4f bytes_per_hash=%.1f",
		*n, *nq, *radius, qps, usPerQuery, build.Seconds(), rss, recall, float64(st.Bytes)/float64(st.Len))
	if *batch > 0 {
		line += fmt.Sprintf(" batch_qps=%.0f", batchQPS)
	}
	if *anchor != "" {
		last, err := runMatchAnchor(ctx, *anchor, *n, *nq, *radius, *flip, *seed, stdout)
		if err != nil {
			return err
		}
		fq, err := keyValue(last, "qps")
		if err != nil {
			return fmt.Errorf("bench match: anchor's last line %q: %w", last, err)
		}
		line += fmt.Sprintf(" faiss_qps=%.0f speedup=%.1f", fq, qps/fq)
		if *batch > 0 {
			line += fmt.Sprintf(" batch_speedup=%.1f", batchQPS/fq)
		}
	}
	runtime.KeepAlive(x)
	fmt.Fprintln(stdout, line)
	return nil
}

// corpusChunk is how many corpus hashes are generated at a time.
const corpusChunk = 1 << 16

// forCorpusChunks generates corpus hashes 0..n-1 of seed a chunk at a time, on every CPU, and calls f with
// each chunk and the index of its first hash until f returns false. It adds the time spent generating to
// *gen.
func forCorpusChunks(seed, n int, gen *time.Duration, f func(first int, hs [][32]byte) bool) {
	buf := make([][32]byte, corpusChunk)
	workers := runtime.GOMAXPROCS(0)
	for first := 0; first < n; first += corpusChunk {
		start := time.Now()
		hs := buf[:min(corpusChunk, n-first)]
		var wg sync.WaitGroup
		per := (len(hs) + workers - 1) / workers
		for lo := 0; lo < len(hs); lo += per {
			wg.Go(func() { corpus.Fill(seed, first+lo, hs[lo:min(lo+per, len(hs))]) })
		}
		wg.Wait()
		*gen += time.Since(start)
		if !f(first, hs) {
			return
		}
	}
}

// checkBruteForce compares results[j], the index's answer to qs[j], with a scan of the whole corpus, and
// returns an error naming the first query whose results differ.
func checkBruteForce(ctx context.Context, seed, n, radius int, qs []pdqindex.Hash, results [][]pdqindex.Match) error {
	if len(qs) == 0 {
		return nil
	}
	want := make([][]pdqindex.Match, len(qs))
	qw := make([][4]uint64, len(qs))
	for j := range qs {
		qw[j] = hashWords(qs[j])
	}
	hw := make([][4]uint64, corpusChunk)
	var gen time.Duration
	workers := runtime.GOMAXPROCS(0)
	forCorpusChunks(seed, n, &gen, func(first int, hs [][32]byte) bool {
		for k, h := range hs {
			hw[k] = hashWords(h)
		}
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for j := w; j < len(qs); j += workers {
					q := &qw[j]
					for k := range hs {
						h := &hw[k]
						// The first half of the hash rules out almost every pair; the sum is the distance.
						d := bits.OnesCount64(q[0]^h[0]) + bits.OnesCount64(q[1]^h[1])
						if d > radius {
							continue
						}
						if d += bits.OnesCount64(q[2]^h[2]) + bits.OnesCount64(q[3]^h[3]); d <= radius {
							want[j] = append(want[j], pdqindex.Match{ID: uint32(first + k), Distance: d})
						}
					}
				}
			})
		}
		wg.Wait()
		return ctx.Err() == nil
	})
	if err := ctx.Err(); err != nil {
		return err
	}
	for j := range qs {
		slices.SortFunc(want[j], func(a, b pdqindex.Match) int {
			if a.Distance != b.Distance {
				return a.Distance - b.Distance
			}
			return int(a.ID) - int(b.ID)
		})
		if !slices.Equal(results[j], want[j]) {
			return fmt.Errorf("bench match: query %d: the index returned %d matches %v, a brute-force scan %d matches %v",
				j, len(results[j]), firstMatches(results[j]), len(want[j]), firstMatches(want[j]))
		}
	}
	return nil
}

// hashWords returns h as four uint64 words, for fast Hamming distances.
func hashWords(h [32]byte) [4]uint64 {
	return [4]uint64{binary.LittleEndian.Uint64(h[0:]), binary.LittleEndian.Uint64(h[8:]),
		binary.LittleEndian.Uint64(h[16:]), binary.LittleEndian.Uint64(h[24:])}
}

func firstMatches(ms []pdqindex.Match) []pdqindex.Match { return ms[:min(len(ms), 5)] }

// runMatchAnchor runs the faiss anchor script on the same corpus, copies its output to stdout with an
// "anchor: " prefix, and returns its last line.
func runMatchAnchor(ctx context.Context, script string, n, nq, radius, flip, seed int, stdout io.Writer) (string, error) {
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", script, "-n", strconv.Itoa(n), "-q", strconv.Itoa(nq),
		"--radius", strconv.Itoa(radius), "--flip", strconv.Itoa(flip), "--seed", strconv.Itoa(seed))
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("bench match: anchor %s: %w: %s", script, err, strings.TrimSpace(errOut.String()))
	}
	last := ""
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			fmt.Fprintf(stdout, "anchor: %s\n", l)
			last = l
		}
	}
	if last == "" {
		return "", fmt.Errorf("bench match: anchor %s printed nothing", script)
	}
	return last, nil
}

// keyValue returns the number after "key=" in a line of space-separated key=value fields.
func keyValue(line, key string) (float64, error) {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			x, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, fmt.Errorf("%s=%q is not a number", key, v)
			}
			if x <= 0 {
				return 0, fmt.Errorf("%s=%v, want a positive number", key, x)
			}
			return x, nil
		}
	}
	return 0, fmt.Errorf("no %s= field", key)
}

// hugePagesMB returns how much of this process's memory is backed by transparent huge pages
// (AnonHugePages in /proc/self/smaps_rollup), in MB.
func hugePagesMB() (float64, error) {
	b, err := os.ReadFile("/proc/self/smaps_rollup")
	if err != nil {
		return 0, err
	}
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(l, "AnonHugePages:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				return 0, fmt.Errorf("AnonHugePages %q: %w", strings.TrimSpace(v), err)
			}
			return kb / 1024, nil
		}
	}
	return 0, errors.New("no AnonHugePages in /proc/self/smaps_rollup")
}

// peakRSSMB returns this process's peak resident set size (VmHWM in /proc/self/status) in MB.
func peakRSSMB() (float64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				return 0, fmt.Errorf("VmHWM %q: %w", strings.TrimSpace(v), err)
			}
			return kb / 1024, nil
		}
	}
	return 0, errors.New("no VmHWM in /proc/self/status")
}
