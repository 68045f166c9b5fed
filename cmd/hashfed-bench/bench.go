package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"github.com/hashfed/hashfed/store"
)

func runBench(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usageErr("bench needs a benchmark: match, hash, ingest, replay, open, propagation, bootstrap, catchup, import, video, feed or replica")
	}
	rest := args[1:]
	switch args[0] {
	case "match":
		return runBenchMatch(ctx, rest, e.stdout)
	case "hash":
		return runBenchHash(ctx, rest, e.stdout)
	case "ingest":
		return benchIngest(ctx, e, rest)
	case "replay":
		return benchReplay(ctx, e, rest)
	case "open":
		return benchOpen(ctx, e, rest)
	case "propagation":
		return benchPropagation(ctx, e, rest)
	case "bootstrap":
		return benchBootstrap(ctx, e, rest)
	case "catchup":
		return benchCatchup(ctx, e, rest)
	case "import":
		return benchImport(ctx, e, rest)
	case "video":
		return benchVideo(ctx, e, rest)
	case "feed":
		return benchFeed(ctx, e, rest)
	case "replica":
		return benchReplica(ctx, e, rest)
	}
	return usageErr("unknown benchmark %q: want match, hash, ingest, replay, open, propagation, bootstrap, catchup, import, video, feed or replica", args[0])
}

// profile writes a CPU profile of the timed part of a benchmark (bench open: the open; bench
// ingest: the submit phase) to the file named by HASHFED_CPUPROFILE, if set, and returns the
// function that stops it. With HASHFED_MEMPROFILE also set, stopping it writes the allocation
// profile (of the whole run) there.
func profile() (stop func()) {
	name := os.Getenv("HASHFED_CPUPROFILE")
	if name == "" {
		return func() {}
	}
	f, err := os.Create(name)
	if err != nil {
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		if m := os.Getenv("HASHFED_MEMPROFILE"); m != "" {
			if f, err := os.Create(m); err == nil {
				pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}
	}
}

// peakRSS returns the process's peak resident set size in MB (VmHWM), or 0 if unknown.
func peakRSS() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

// benchEntries builds n add entries of one member's log (PDQ signals from the benchmark corpus's
// hash function, with labels), already encoded.
func benchEntries(member string, n, offset int) [][]byte {
	out := make([][]byte, n)
	t := fixture.At(0)
	for i := range n {
		sum := sha256.Sum256(fmt.Appendf(nil, "%s:%d", member, offset+i))
		sig, err := consortium.SignalFromBytes(consortium.PDQ, sum[:])
		if err != nil {
			sig = fixture.MD5(offset + i)
		}
		out[i] = fixture.Marshal(fixture.Add(t+int64(i), sig, "behaviour:glorification-of-terrorist-acts"))
	}
	return out
}

// signedLog returns a signed checkpoint over entries of member's log.
func signedLog(g *consortium.Genesis, member string, entries [][]byte) *consortium.Checkpoint {
	l := fixture.NewLog(g.ID, fixture.Key(member))
	for _, e := range entries {
		l.AppendRaw(e)
	}
	cp, err := consortium.OpenCheckpoint(g.ID, g, l.Checkpoint())
	if err != nil {
		panic(err)
	}
	return cp
}

func benchIngest(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "ingest")
	n := fs.Int("n", 1_000_000, "entries to append")
	batch := fs.Int("batch", 10_000, "entries per transaction")
	dir := fs.String("dir", "", "directory for the store (default a temporary one; its disk is what is measured)")
	ranges := fs.Bool("ranges", true, "also measure verified ranges (set false to measure own submissions alone)")
	hold := fs.Bool("hold", false, "parse every entry before the clock starts and hold them all for the whole run (the harness of rounds one to three), instead of parsing each batch just before it is submitted")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	tmp, done, err := workDir(*dir, "ingest")
	if err != nil {
		return err
	}
	defer done()
	g := fixture.Genesis(2, fixture.Members("alpha", "bravo", "charlie")...)
	fmt.Fprintf(e.stdout, "building %d entries...\n", *n)
	entries := benchEntries("bravo", *n, 0)

	// 1. Verified ranges, as replication and bootstrap store them: fsync per transaction.
	var rangeDur time.Duration
	if *ranges {
		var err error
		if rangeDur, err = benchRanges(tmp, g, entries, *batch); err != nil {
			return err
		}
	}

	// 2. The node's own submissions, group-committed: entries/s through Submit. A node holds only
	// the submissions in flight, so the encoded entries wait in one buffer with no pointers for the
	// collector to scan, and each batch is parsed just before it is submitted, off the clock (with
	// -hold, all are parsed first and held, as the harness of rounds one to three did).
	flat, offs := packEntries(entries)
	entries = nil
	st, err := store.Open(filepath.Join(tmp, "submit.db"), g, store.DefaultOptions())
	if err != nil {
		return err
	}
	parse := func(lo, hi int, dst []*pb.Entry) []*pb.Entry {
		dst = dst[:0]
		for i := lo; i < hi; i++ {
			p, _ := consortium.ParseEntry(flat[offs[i]:offs[i+1]])
			p.TimeUnixMs = 0
			dst = append(dst, p)
		}
		return dst
	}
	var all, pes []*pb.Entry
	if *hold {
		all = parse(0, *n, nil)
	}
	stop := profile()
	var subDur, subCPU time.Duration
	for i := 0; i < *n; i += *batch {
		hi := min(i+*batch, *n)
		if *hold {
			pes = all[i:hi]
		} else {
			pes = parse(i, hi, pes)
		}
		start, cpu0 := time.Now(), cpuTime()
		out, err := st.Submit(ctx, "alpha", pes)
		subDur, subCPU = subDur+time.Since(start), subCPU+cpuTime()-cpu0
		if err != nil {
			return err
		}
		for _, a := range out {
			if a.Err != nil {
				return a.Err
			}
		}
	}
	stop()
	st.Close()
	rangeRate := float64(*n) / rangeDur.Seconds()
	subRate := float64(*n) / subDur.Seconds()
	if *ranges {
		fmt.Fprintf(e.stdout, "verified ranges: %d entries in %v (%.0f entries/s), fsync per %d-entry transaction\n", *n, rangeDur.Round(time.Millisecond), rangeRate, *batch)
	} else {
		rangeRate = 0
	}
	fmt.Fprintf(e.stdout, "own submissions: %d entries in %v (%.0f entries/s), checked, group-committed, fsynced; %v of CPU (%.2f µs an entry)\n", *n, subDur.Round(time.Millisecond), subRate, subCPU.Round(time.Millisecond), float64(subCPU.Microseconds())/float64(*n))
	held := ""
	if *hold {
		held = " hold=true"
	}
	fmt.Fprintf(e.stdout, "n=%d batch=%d range_per_s=%.0f submit_per_s=%.0f submit_cpu_us=%.2f fsync=on rss_mb=%.0f%s\n", *n, *batch, rangeRate, subRate, float64(subCPU.Microseconds())/float64(*n), peakRSS(), held)
	return nil
}

// packEntries copies entries into one buffer: entry i is flat[offs[i]:offs[i+1]].
func packEntries(entries [][]byte) (flat []byte, offs []int) {
	size := 0
	for _, e := range entries {
		size += len(e)
	}
	flat = make([]byte, 0, size)
	offs = make([]int, 0, len(entries)+1)
	for _, e := range entries {
		offs = append(offs, len(flat))
		flat = append(flat, e...)
	}
	return flat, append(offs, len(flat))
}

// benchRanges stores entries of bravo's log as verified ranges of batch entries, each with a
// checkpoint at its end, and returns how long the appends took.
func benchRanges(tmp string, g *consortium.Genesis, entries [][]byte, batch int) (time.Duration, error) {
	st, err := store.Open(filepath.Join(tmp, "range.db"), g, store.DefaultOptions())
	if err != nil {
		return 0, err
	}
	// Each chunk arrives with a checkpoint at its end, as when the author signed as it wrote; the
	// checkpoints are signed before the clock starts.
	var cps []*consortium.Checkpoint
	l := fixture.NewLog(g.ID, fixture.Key("bravo"))
	for i := 0; i < len(entries); i += batch {
		for _, x := range entries[i:min(i+batch, len(entries))] {
			l.AppendRaw(x)
		}
		c, err := consortium.OpenCheckpoint(g.ID, g, l.Checkpoint())
		if err != nil {
			return 0, err
		}
		cps = append(cps, c)
	}
	start := time.Now()
	for k, i := 0, 0; i < len(entries); k, i = k+1, i+batch {
		if err := st.AppendRange(cps[k], uint64(i), entries[i:min(i+batch, len(entries))], nil); err != nil {
			return 0, err
		}
	}
	d := time.Since(start)
	return d, st.Close()
}

func benchReplay(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "replay")
	members := fs.Int("members", 10, "member logs")
	per := fs.Int("per", 100_000, "entries per log")
	ck := fs.Int("checkpoint-every", 10_000, "entries between signed checkpoints")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	ids, g := majority(*members, "member-%02d")
	fmt.Fprintf(e.stdout, "building %d logs of %d entries...\n", *members, *per)
	logs := consortium.Logs{}
	cps := map[string][][]byte{}
	for k, id := range ids {
		entries := benchEntries(id, *per, k**per)
		l := fixture.NewLog(g.ID, fixture.Key(id))
		for i, en := range entries {
			l.AppendRaw(en)
			if (i+1)%*ck == 0 || i == len(entries)-1 {
				cps[id] = append(cps[id], l.Checkpoint())
			}
		}
		logs[id] = entries
	}
	total := *members * *per
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	start := time.Now()
	s := consortium.NewState(g, logs.Reader())
	s.Grow(total)
	for _, id := range ids {
		tree := consortium.NewTree()
		for _, note := range cps[id] {
			cp, err := consortium.OpenCheckpoint(g.ID, s, note)
			if err != nil {
				return err
			}
			from := tree.Size()
			next, _, err := consortium.VerifyRange(tree, logs[id][from:cp.Size], cp)
			if err != nil {
				return err
			}
			for i := from; i < cp.Size; i++ {
				if err := s.Apply(id, i, logs[id][i]); err != nil {
					return err
				}
			}
			tree = next
		}
	}
	d := time.Since(start)
	sig, lst := s.Counts()
	rate := float64(total) / d.Seconds()
	fmt.Fprintf(e.stdout, "verified %d checkpoints and replayed %d entries on one core in %v: %d signals, %d listings\n", len(cps)*len(cps[ids[0]]), total, d.Round(time.Millisecond), sig, lst)
	fmt.Fprintf(e.stdout, "entries=%d members=%d entries_per_s=%.0f seconds=%.3f cores=1\n", total, *members, rate, d.Seconds())
	return nil
}

func benchOpen(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "open")
	n := fs.Int("n", 10_000_000, "entries in the store")
	dir := fs.String("dir", "", "directory for the store (default a temporary one)")
	logs := fs.Int("logs", 10, "member logs the entries are spread over")
	reuse := fs.Bool("reuse", false, "reuse a store a previous run left in -dir (same -n and -logs) instead of building one")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	tmp, done, err := workDir(*dir, "open")
	if err != nil {
		return err
	}
	defer done()
	ids, g := majority(*logs, "member-%02d")
	path := filepath.Join(tmp, "open.db")
	per := *n / *logs
	var probe [32]byte
	if p, _ := consortium.ParseEntry(benchEntries(ids[0], 1, per/2)[0]); p != nil {
		copy(probe[:], p.GetAdd().GetSignal().GetValue())
	}
	if _, err := os.Stat(path); err == nil && *reuse {
		return timeOpen(e, path, g, probe, *n)
	}
	o := store.DefaultOptions()
	o.NoSync = true // building the store is not what is measured
	st, err := store.Open(path, g, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "building a store of %d entries over %d logs...\n", *n, *logs)
	for k, id := range ids {
		const chunk = 250_000
		all := benchEntries(id, per, k*per)
		cp := signedLog(g, id, all)
		l := fixture.NewLog(g.ID, fixture.Key(id))
		for i := 0; i < per; i += chunk {
			end := min(i+chunk, per)
			for _, en := range all[i:end] {
				l.AppendRaw(en)
			}
			c := cp
			if end < per {
				c, _ = consortium.OpenCheckpoint(g.ID, g, l.Checkpoint())
			}
			if err := st.AppendRange(c, uint64(i), all[i:end], nil); err != nil {
				return err
			}
		}
	}
	if err := st.Close(); err != nil {
		return err
	}
	runtime.GC()
	return timeOpen(e, path, g, probe, *n)
}

// timeOpen opens the store at path and answers one match, timing both.
func timeOpen(e *env, path string, g *consortium.Genesis, probe [32]byte, n int) error {
	fi, _ := os.Stat(path)
	start := time.Now()
	oo := store.DefaultOptions()
	oo.Logger = slog.New(slog.NewTextHandler(e.stdout, nil))
	defer profile()()
	st, err := store.Open(path, g, oo)
	if err != nil {
		return err
	}
	opened := time.Since(start)
	ms, err := st.MatchPDQ(probe, store.DefaultQuery())
	first := time.Since(start)
	if err != nil {
		return err
	}
	if len(ms) != 1 {
		return fmt.Errorf("first match found %d signals, want 1", len(ms))
	}
	st.Close()
	fmt.Fprintf(e.stdout, "opened a %d MB store of %d entries in %v; first match answered %v after open began\n", fi.Size()>>20, n, opened.Round(time.Millisecond), first.Round(time.Millisecond))
	fmt.Fprintf(e.stdout, "n=%d open_s=%.2f first_match_s=%.2f db_mb=%d rss_mb=%.0f\n", n, opened.Seconds(), first.Seconds(), fi.Size()>>20, peakRSS())
	return nil
}

// workDir returns dir, or when it is "" a new temporary directory named after the benchmark; done
// removes what workDir made.
func workDir(dir, name string) (string, func(), error) {
	if dir != "" {
		return dir, func() {}, nil
	}
	tmp, err := os.MkdirTemp("", "hashfed-bench-"+name+"-")
	if err != nil {
		return "", nil, err
	}
	return tmp, func() { os.RemoveAll(tmp) }, nil
}

// majority returns n member ids spelled by format (from a number) and a test genesis of them with a
// majority quorum.
func majority(n int, format string) ([]string, *consortium.Genesis) {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf(format, i)
	}
	return ids, fixture.Genesis(n/2+1, fixture.Members(ids...)...)
}
