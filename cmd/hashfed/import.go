package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/consortium/hashlist"
	"github.com/hashfed/hashfed/internal/memberclient"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// importBatch is how many entries an import sends in one Submit call by default: each batch is
// committed on its own, so an import of any size streams, and one stopped part-way is finished by
// running it again (what is stored already comes back unchanged, see docs/API.md).
const importBatch = 10_000

// importInFlight is how many batches an import has at the node at once.
const importInFlight = 4

// importTally counts what an import did with each line.
type importTally struct {
	lines                              int // the last line read
	sent, added, updated, unchanged    int
	refused                            []*hashlist.LineError
	committedThrough, uncommittedFirst int
}

func runImport(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "import", "FILE [--format te|csv|jsonl] [--label L]...")
	var nf nodeFlags
	nf.register(fs, e)
	format := fs.String("format", "", "te (python-threatexchange local_file: TYPE VALUE per line), csv (header: type,value[,labels,content_id,note,expires,quality,members]) or jsonl; default from the file name")
	var labels listFlag
	fs.Var(&labels, "label", "a label for every line (repeat)")
	expires := fs.String("expires", "", "expiry for every line without one: 90d, 12h or RFC 3339 (relative expiries change every run, so each run updates every listing)")
	dryRun := fs.Bool("dry-run", false, "check the file and report, without sending anything")
	batch := fs.Int("batch", importBatch, "entries per call to the node (each call is committed on its own)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("import needs one file (- for standard input)")
	}
	if *batch < 1 || *batch > 100_000 {
		return usageErr("--batch %d: want 1 to 100000", *batch)
	}
	var r io.Reader = e.stdin
	name := "standard input"
	var total int64
	if pos[0] != "-" {
		f, err := os.Open(pos[0])
		if err != nil {
			return err
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			total = fi.Size()
		}
		r, name = f, pos[0]
	}
	f := hashlist.FormatOf(pos[0])
	if *format != "" {
		if f, err = hashlist.ParseFormat(*format); err != nil {
			return usageErr("%v", err)
		}
	}
	now := time.Now()
	defExp, err := parseExpiry(*expires, now)
	if err != nil {
		return err
	}
	cr := &countingReader{r: r}
	bar := newProgress(e, "import "+name, total)
	t := &importTally{}
	var mu sync.Mutex // guards t against the senders
	var c *memberclient.Client
	if !*dryRun {
		if c, err = nf.dial(); err != nil {
			return err
		}
		defer c.Close()
	}
	snd := newSender(ctx, c, max(nf.timeout, 5*time.Minute), t, &mu)
	seen := map[consortium.Signal]int{}
	var cur []*pb.Entry
	var curLines []int
	var curWhat []string
	flush := func() error {
		if len(cur) == 0 {
			return nil
		}
		mu.Lock()
		t.sent += len(cur)
		mu.Unlock()
		if *dryRun {
			cur, curLines, curWhat = nil, nil, nil
			return nil
		}
		err := snd.send(cur, curLines, curWhat)
		cur, curLines, curWhat = nil, nil, nil
		return err
	}
	scanErr := hashlist.Scan(cr, f, func(rec hashlist.Record, le *hashlist.LineError) error {
		line := rec.Line
		if le != nil {
			line = le.Line
		}
		mu.Lock()
		t.lines = max(t.lines, line)
		if le != nil {
			t.refused = append(t.refused, le)
			mu.Unlock()
			return nil
		}
		mu.Unlock()
		bar.update(t, &mu, cr.n.Load())
		en, sig, err := recordEntry(rec, labels, defExp, now)
		if err == nil {
			if prev, dup := seen[sig]; dup {
				err = fmt.Errorf("duplicate of line %d", prev)
			}
		}
		if err != nil {
			mu.Lock()
			t.refused = append(t.refused, &hashlist.LineError{Line: line, Err: err})
			mu.Unlock()
			return nil
		}
		seen[sig] = line
		cur = append(cur, en)
		curLines = append(curLines, line)
		curWhat = append(curWhat, sig.String())
		if len(cur) >= *batch {
			return flush()
		}
		return nil
	})
	if scanErr == nil {
		scanErr = flush()
	}
	sendErr := snd.wait()
	bar.done()
	report := func() {
		if len(t.refused) == 0 {
			return
		}
		bad := t.refused
		fmt.Fprintf(e.stderr, "refused %d lines:\n", len(bad))
		reasons := map[string]int{}
		for _, b := range bad {
			reasons[reasonOf(b.Err)]++
		}
		keys := make([]string, 0, len(reasons))
		for k := range reasons {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			return reasons[keys[i]] > reasons[keys[j]] || reasons[keys[i]] == reasons[keys[j]] && keys[i] < keys[j]
		})
		for _, k := range keys {
			fmt.Fprintf(e.stderr, "  %6d  %s\n", reasons[k], k)
		}
		sort.SliceStable(bad, func(i, j int) bool { return bad[i].Line < bad[j].Line })
		for i, b := range bad {
			if i == 20 {
				fmt.Fprintf(e.stderr, "  ... and %d more\n", len(bad)-20)
				break
			}
			fmt.Fprintf(e.stderr, "  %v\n", b)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if scanErr != nil && !errors.Is(scanErr, errSendFailed) {
		report()
		return fmt.Errorf("%s: %w%s", name, scanErr, t.resumeHint(name))
	}
	if sendErr != nil {
		report()
		return fmt.Errorf("%w%s", sendErr, t.resumeHint(name))
	}
	report()
	if *dryRun {
		fmt.Fprintf(e.stdout, "%d lines valid, %d refused; nothing sent\n", t.sent, len(t.refused))
	} else {
		fmt.Fprintf(e.stdout, "imported %s: %d added, %d updated, %d unchanged, %d refused\n", name, t.added, t.updated, t.unchanged, len(t.refused))
	}
	if len(t.refused) > 0 {
		return errSilent
	}
	return nil
}

// resumeHint tells what was stored before an import stopped, and how to finish it.
func (t *importTally) resumeHint(name string) string {
	done := t.added + t.updated + t.unchanged
	if done == 0 {
		return "\nnothing was imported; run the same import again"
	}
	return fmt.Sprintf("\n%d entries are stored (%d added, %d updated, %d unchanged); run the same import again to finish: what is stored comes back unchanged and is not appended again", done, t.added, t.updated, t.unchanged)
}

// errSendFailed stops reading the file once a batch failed (the sender holds the error).
var errSendFailed = errors.New("a batch failed")

// sender sends an import's batches, up to importInFlight at a time, and tallies the results.
type sender struct {
	ctx     context.Context
	c       *memberclient.Client
	timeout time.Duration
	t       *importTally
	mu      *sync.Mutex
	slots   chan struct{}
	wg      sync.WaitGroup
	err     error // the first batch error, under mu
}

func newSender(ctx context.Context, c *memberclient.Client, timeout time.Duration, t *importTally, mu *sync.Mutex) *sender {
	return &sender{ctx: ctx, c: c, timeout: timeout, t: t, mu: mu, slots: make(chan struct{}, importInFlight)}
}

// send queues one batch; it returns errSendFailed once any batch failed.
func (s *sender) send(entries []*pb.Entry, lines []int, what []string) error {
	select {
	case s.slots <- struct{}{}:
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
	s.mu.Lock()
	failed := s.err != nil
	s.mu.Unlock()
	if failed {
		<-s.slots
		return errSendFailed
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() { <-s.slots }()
		results, err := s.c.Submit(s.ctx, entries, s.timeout)
		if err == nil && len(results) != len(entries) {
			err = fmt.Errorf("node answered %d results for %d entries", len(results), len(entries))
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if err != nil {
			if s.err == nil {
				s.err = fmt.Errorf("batch of lines %d to %d: %w", lines[0], lines[len(lines)-1], err)
			}
			return
		}
		for i, res := range results {
			switch {
			case res.Error != "":
				s.t.refused = append(s.t.refused, &hashlist.LineError{Line: lines[i], Err: fmt.Errorf("%s refused by the node: %s", what[i], res.Error)})
			case res.Unchanged:
				s.t.unchanged++
			case res.Updated:
				s.t.updated++
			default:
				s.t.added++
			}
		}
	}()
	return nil
}

// wait waits for the batches in flight and returns the first error.
func (s *sender) wait() error {
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// countingReader counts the bytes read through it, for the progress's ETA.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// reasonOf reduces an error to its kind, for the summary.
func reasonOf(err error) string {
	for _, s := range []error{consortium.ErrUnknownSignalType, consortium.ErrInvalidSignal, consortium.ErrInvalidLabel, consortium.ErrExpired, consortium.ErrInvalidEntry, errUsage} {
		if errors.Is(err, s) {
			return s.Error()
		}
	}
	msg := err.Error()
	if i := strings.IndexAny(msg, ":("); i > 0 {
		msg = msg[:i]
	}
	return strings.TrimSpace(msg)
}

// recordEntry turns one record into an add entry.
func recordEntry(rec hashlist.Record, extra []string, defExp int64, now time.Time) (*pb.Entry, consortium.Signal, error) {
	sig, err := consortium.ParseSignal(rec.Type, rec.Value)
	if err != nil {
		return nil, sig, err
	}
	exp := defExp
	if rec.Expires != "" {
		if exp, err = parseExpiry(rec.Expires, now); err != nil {
			return nil, sig, err
		}
	}
	q := -1
	if rec.Quality != nil {
		if *rec.Quality < 0 || *rec.Quality > 100 {
			return nil, sig, fmt.Errorf("%w: quality %d, want 0 to 100", consortium.ErrInvalidEntry, *rec.Quality)
		}
		q = *rec.Quality
	}
	// Checked at now, so an expiry already past is refused with its line; the node stamps the time.
	en, err := consortium.NewAdd(now.UnixMilli(), sig, append(slices.Clone(rec.Labels), extra...),
		consortium.AddOptions{ContentID: rec.ContentID, Note: rec.Note, ExpiresUnixMs: exp, Quality: memberclient.QualityOf(q)})
	if err != nil {
		return nil, sig, err
	}
	en.TimeUnixMs = 0
	return en, sig, nil
}

// progress reports an import as it goes, on standard error: on a terminal one line redrawn
// (lines read, the rate, and the time left when the file's size is known); otherwise a plain line
// every 5 s, so a log of a long import shows it moving and a short one shows nothing.
type progress struct {
	w       io.Writer
	tty     bool
	label   string
	total   int64
	start   time.Time
	last    time.Time
	every   time.Duration
	printed bool
}

func newProgress(e *env, label string, total int64) *progress {
	p := &progress{w: e.stderr, label: label, total: total, start: time.Now(), every: 5 * time.Second}
	if f, ok := e.stderr.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty, p.every = true, 200*time.Millisecond
		}
	}
	p.last = p.start
	return p
}

// update reports the tally, at most once per interval; read is the bytes read so far.
func (p *progress) update(t *importTally, mu *sync.Mutex, read int64) {
	now := time.Now()
	if now.Sub(p.last) < p.every {
		return
	}
	p.last = now
	mu.Lock()
	lines, stored := t.lines, t.added+t.updated+t.unchanged
	mu.Unlock()
	el := now.Sub(p.start)
	rate := float64(lines) / el.Seconds()
	msg := fmt.Sprintf("%s: %d lines read, %d stored, %.0f lines/s", p.label, lines, stored, rate)
	if p.total > 0 && read > 0 {
		frac := float64(read) / float64(p.total)
		left := time.Duration(float64(el) * (1 - frac) / frac).Round(time.Second)
		msg += fmt.Sprintf(", %.0f%%, about %v left", 100*frac, left)
	}
	if p.tty {
		fmt.Fprintf(p.w, "\r%s\x1b[K", msg)
	} else {
		fmt.Fprintln(p.w, msg)
	}
	p.printed = true
}

func (p *progress) done() {
	if p.tty && p.printed {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
}
