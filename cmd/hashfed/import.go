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
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/consortium/hashlist"
	"github.com/hashfed/hashfed/internal/memberclient"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// importLimit is the most entries one import sends as a single transaction (all or nothing).
const importLimit = 100_000

func runImport(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "import", "FILE [--format te|csv|pytx-csv|jsonl] [--label L]...")
	var nf nodeFlags
	nf.register(fs, e)
	format := fs.String("format", "", "te (python-threatexchange local_file: TYPE VALUE per line; pytx or hashfed type names), csv (header: type,value[,labels,content_id,note,expires,quality,members], or pytx's signal_type,signal_str,collab,category,tags), pytx-csv (the same) or jsonl; default from the file name")
	var labels listFlag
	fs.Var(&labels, "label", "a label for every line (repeat)")
	expires := fs.String("expires", "", "expiry for every line without one: 90d, 12h or RFC 3339")
	dryRun := fs.Bool("dry-run", false, "check the file and report, without sending anything")
	valueType := fs.String("type", "", "every line is one value of this type (pytx's local_file with a signal_type: video_md5, pdq, ...)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("import needs one file (- for standard input)")
	}
	var r io.Reader = e.stdin
	name := "standard input"
	if pos[0] != "-" {
		f, err := os.Open(pos[0])
		if err != nil {
			return err
		}
		defer f.Close()
		r, name = f, pos[0]
	}
	f := hashlist.FormatOf(pos[0])
	if *format != "" {
		if f, err = hashlist.ParseFormat(*format); err != nil {
			return usageErr("%v", err)
		}
	}
	bar := newProgress(e, "reading "+name)
	var recs []hashlist.Record
	var bad []*hashlist.LineError
	if *valueType != "" {
		recs, err = hashlist.ReadValues(r, *valueType, bar.tick)
	} else {
		recs, bad, err = hashlist.Read(r, f, bar.tick)
	}
	bar.done()
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	now := time.Now()
	defExp, err := parseExpiry(*expires, now)
	if err != nil {
		return err
	}
	var entries []*pb.Entry
	var what []string
	var entryLines []int
	seen := map[consortium.Signal]int{}
	for _, rec := range recs {
		line := rec.Line
		en, sig, err := recordEntry(rec, labels, defExp, now)
		if err != nil {
			bad = append(bad, &hashlist.LineError{Line: line, Err: err})
			continue
		}
		if prev, dup := seen[sig]; dup {
			bad = append(bad, &hashlist.LineError{Line: line, Err: fmt.Errorf("duplicate of line %d", prev)})
			continue
		}
		seen[sig] = line
		entries = append(entries, en)
		entryLines = append(entryLines, line)
		what = append(what, sig.String())
	}
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
	if len(entries) > importLimit {
		report()
		return fmt.Errorf("%s has %d entries; one import sends at most %d, as a single transaction: split the file", name, len(entries), importLimit)
	}
	if *dryRun || len(entries) == 0 {
		report()
		fmt.Fprintf(e.stdout, "%d lines valid, %d refused; nothing sent\n", len(entries), len(bad))
		if len(bad) > 0 {
			return errSilent
		}
		return nil
	}
	sp := newProgress(e, fmt.Sprintf("sending %d entries", len(entries)))
	results, err := send(ctx, &nf, entries, max(nf.timeout, 5*time.Minute))
	sp.done()
	if err != nil {
		report()
		return fmt.Errorf("nothing was imported: %w", err)
	}
	added := 0
	for i, res := range results {
		if res.Error != "" {
			bad = append(bad, &hashlist.LineError{Line: entryLines[i], Err: fmt.Errorf("%s refused by the node: %s", what[i], res.Error)})
			continue
		}
		added++
	}
	report()
	fmt.Fprintf(e.stdout, "imported %d entries from %s (one transaction); %d lines refused\n", added, name, len(bad))
	if len(bad) > 0 {
		return errSilent
	}
	return nil
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

// progress draws a progress line on a terminal and nothing otherwise.
type progress struct {
	w     io.Writer
	on    bool
	label string
	last  time.Time
}

func newProgress(e *env, label string) *progress {
	p := &progress{w: e.stderr, label: label}
	if f, ok := e.stderr.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.on = true
			fmt.Fprintf(p.w, "\r%s…", label)
		}
	}
	return p
}

func (p *progress) tick(n int) {
	if !p.on || time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	fmt.Fprintf(p.w, "\r%s… %d lines", p.label, n)
}

func (p *progress) done() {
	if p.on {
		fmt.Fprintf(p.w, "\r%s… done\x1b[K\n", p.label)
	}
}
