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

func runImport(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "import", "FILE [--format te|csv|pytx-csv|jsonl] [--label L]...")
	var nf nodeFlags
	nf.register(fs, e)
	format := fs.String("format", "", "te (python-threatexchange local_file: TYPE VALUE per line; pytx or hashfed type names), csv (header: type,value[,labels,content_id,note,expires,quality,members,protected], or pytx's signal_type,signal_str,collab,category,tags), pytx-csv (the same) or jsonl; default from the file name")
	var labels listFlag
	fs.Var(&labels, "label", "a label for every line (repeat)")
	expires := fs.String("expires", "", "expiry for every line without one: 90d, 12h or RFC 3339 (relative expiries change every run, so each run updates every listing)")
	dryRun := fs.Bool("dry-run", false, "check the file and report, without sending anything")
	valueType := fs.String("type", "", "every line is one value of this type (pytx's local_file with a signal_type: video_md5, pdq, ...)")
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
	var im *memberclient.Importer
	if !*dryRun {
		c, err := nf.dial()
		if err != nil {
			return err
		}
		defer c.Close()
		im = c.NewImporter(ctx, *batch, importInFlight, max(nf.timeout, 5*time.Minute))
	}
	var bad []*hashlist.LineError
	valid, lines := 0, 0
	seen := map[consortium.Signal]int{}
	type scanFunc = func(rec hashlist.Record, le *hashlist.LineError) error
	scan := func(fn scanFunc) error { return hashlist.Scan(cr, f, fn) }
	if *valueType != "" { // pytx's local_file read with a signal_type: a value per line
		scan = func(fn scanFunc) error {
			recs, err := hashlist.ReadValues(cr, *valueType, nil)
			if err != nil {
				return err
			}
			for _, rec := range recs {
				if err := fn(rec, nil); err != nil {
					return err
				}
			}
			return nil
		}
	}
	scanErr := scan(func(rec hashlist.Record, le *hashlist.LineError) error {
		if le != nil {
			bad = append(bad, le)
			lines = max(lines, le.Line)
			return nil
		}
		line := rec.Line
		lines = max(lines, line)
		if im != nil {
			bar.update(lines, im.Tally, cr.n.Load())
		}
		en, sig, err := recordEntry(rec, labels, defExp, now)
		if err == nil {
			if prev, dup := seen[sig]; dup {
				err = fmt.Errorf("duplicate of line %d", prev)
			}
		}
		if err != nil {
			bad = append(bad, &hashlist.LineError{Line: line, Err: err})
			return nil
		}
		seen[sig] = line
		valid++
		if im == nil {
			return nil
		}
		return im.Add(en, line, sig.String())
	})
	var sendErr error
	var t memberclient.Tally
	if im != nil {
		sendErr = im.Close()
		t = im.Tally()
		for _, r := range t.Refused {
			bad = append(bad, &hashlist.LineError{Line: r.Tag, Err: fmt.Errorf("%s refused by the node: %s", r.What, r.Reason)})
		}
	}
	bar.done()
	report := func() {
		if len(bad) == 0 {
			return
		}
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
	report()
	switch {
	case sendErr != nil:
		return fmt.Errorf("%w%s", sendErr, resumeHint(t))
	case scanErr != nil:
		err := fmt.Errorf("%s: %w", name, scanErr)
		if im != nil {
			err = fmt.Errorf("%w%s", err, resumeHint(t))
		}
		return err
	case im == nil:
		fmt.Fprintf(e.stdout, "%d lines valid, %d refused; nothing sent\n", valid, len(bad))
	default:
		fmt.Fprintf(e.stdout, "imported %s: %d added, %d updated, %d unchanged, %d refused\n", name, t.Added, t.Updated, t.Unchanged, len(bad))
	}
	if len(bad) > 0 {
		return errSilent
	}
	return nil
}

// resumeHint tells what was stored before an import stopped, and how to finish it.
func resumeHint(t memberclient.Tally) string {
	if t.Stored() == 0 {
		return "\nnothing was imported; run the same import again"
	}
	return fmt.Sprintf("\n%d entries are stored (%d added, %d updated, %d unchanged); run the same import again to finish: what is stored comes back unchanged and is not appended again", t.Stored(), t.Added, t.Updated, t.Unchanged)
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

// update reports the lines read and the entries stored (from tally), at most once per interval;
// read is the bytes read so far.
func (p *progress) update(lines int, tally func() memberclient.Tally, read int64) {
	now := time.Now()
	if now.Sub(p.last) < p.every {
		return
	}
	p.last = now
	stored := tally().Stored()
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
