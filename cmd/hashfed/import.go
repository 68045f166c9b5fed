package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hashfed/hashfed/consortium"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// importLimit is the most entries one import sends as a single transaction (all or nothing).
const importLimit = 100_000

// record is one line of an import file.
type record struct {
	Type      string   `json:"type"`
	Value     string   `json:"value"`
	Labels    []string `json:"labels"`
	ContentID string   `json:"content_id"`
	Note      string   `json:"note"`
	Expires   string   `json:"expires"`
	Quality   *int     `json:"quality"`
}

func runImport(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "import", "FILE [--format te|csv|jsonl] [--label L]...")
	var nf nodeFlags
	nf.register(fs, e)
	format := fs.String("format", "", "te (python-threatexchange local_file: TYPE VALUE per line), csv (header: type,value[,labels,content_id,note,expires,quality]) or jsonl; default from the file name")
	var labels listFlag
	fs.Var(&labels, "label", "a label for every line (repeat)")
	expires := fs.String("expires", "", "expiry for every line without one: 90d, 12h or RFC 3339")
	dryRun := fs.Bool("dry-run", false, "check the file and report, without sending anything")
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
	if *format == "" {
		switch strings.ToLower(filepath.Ext(pos[0])) {
		case ".csv":
			*format = "csv"
		case ".jsonl", ".ndjson", ".json":
			*format = "jsonl"
		default:
			*format = "te"
		}
	}
	bar := newProgress(e, "reading "+name)
	recs, lineNos, bad, err := readRecords(r, *format, bar)
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
	for i, rec := range recs {
		line := lineNos[i]
		en, sig, err := recordEntry(rec, labels, defExp, now)
		if err != nil {
			bad = append(bad, lineErr{line, err})
			continue
		}
		if prev, dup := seen[sig]; dup {
			bad = append(bad, lineErr{line, fmt.Errorf("duplicate of line %d", prev)})
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
			reasons[reasonOf(b.err)]++
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
		sort.SliceStable(bad, func(i, j int) bool { return bad[i].line < bad[j].line })
		for i, b := range bad {
			if i == 20 {
				fmt.Fprintf(e.stderr, "  ... and %d more\n", len(bad)-20)
				break
			}
			fmt.Fprintf(e.stderr, "  line %d: %v\n", b.line, b.err)
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
	c, err := nf.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	cctx, cancel := c.ctx(ctx, max(nf.timeout, 5*time.Minute))
	defer cancel()
	sp := newProgress(e, fmt.Sprintf("sending %d entries", len(entries)))
	resp, err := c.Submit(cctx, &pb.SubmitRequest{Entries: entries})
	sp.done()
	if err != nil {
		report()
		return fmt.Errorf("nothing was imported: %w", c.callErr(err))
	}
	added := 0
	for i, res := range resp.Results {
		if res.Error != "" {
			bad = append(bad, lineErr{entryLines[i], fmt.Errorf("%s refused by the node: %s", what[i], res.Error)})
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

type lineErr struct {
	line int
	err  error
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

// readRecords parses an import file; lines it cannot parse are returned as refusals, and an I/O
// error stops it.
func readRecords(r io.Reader, format string, bar *progress) (recs []record, lines []int, bad []lineErr, err error) {
	switch format {
	case "te", "jsonl":
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		n := 0
		for sc.Scan() {
			n++
			bar.tick(n)
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			var rec record
			if format == "te" {
				f := strings.Fields(line)
				if len(f) != 2 {
					bad = append(bad, lineErr{n, fmt.Errorf("want TYPE VALUE, got %d fields", len(f))})
					continue
				}
				rec = record{Type: f[0], Value: f[1]}
			} else {
				dec := json.NewDecoder(strings.NewReader(line))
				dec.DisallowUnknownFields()
				if err := dec.Decode(&rec); err != nil {
					bad = append(bad, lineErr{n, fmt.Errorf("not a JSON object of type, value, labels, content_id, note, expires, quality: %v", err)})
					continue
				}
			}
			recs, lines = append(recs, rec), append(lines, n)
		}
		if err := sc.Err(); err != nil {
			return nil, nil, nil, fmt.Errorf("line %d: %w", n+1, err)
		}
	case "csv":
		cr := csv.NewReader(r)
		cr.FieldsPerRecord = -1
		cr.Comment = '#'
		header, err := cr.Read()
		if err != nil {
			return nil, nil, nil, fmt.Errorf("csv header: %w", err)
		}
		col := map[string]int{}
		for i, h := range header {
			col[strings.ToLower(strings.TrimSpace(h))] = i
		}
		for _, need := range []string{"type", "value"} {
			if _, ok := col[need]; !ok {
				return nil, nil, nil, fmt.Errorf("csv header has no %q column (want type,value[,labels,content_id,note,expires,quality])", need)
			}
		}
		for h := range col {
			if !slices.Contains([]string{"type", "value", "labels", "content_id", "note", "expires", "quality"}, h) {
				return nil, nil, nil, fmt.Errorf("csv header has an unknown column %q", h)
			}
		}
		for n := 2; ; n++ {
			row, err := cr.Read()
			if err == io.EOF {
				break
			}
			bar.tick(n)
			line, _ := cr.FieldPos(0)
			if err != nil {
				var pe *csv.ParseError
				if errors.As(err, &pe) {
					bad = append(bad, lineErr{pe.Line, err})
					continue
				}
				return nil, nil, nil, err
			}
			get := func(k string) string {
				if i, ok := col[k]; ok && i < len(row) {
					return strings.TrimSpace(row[i])
				}
				return ""
			}
			rec := record{Type: get("type"), Value: get("value"), ContentID: get("content_id"), Note: get("note"), Expires: get("expires")}
			if l := get("labels"); l != "" {
				rec.Labels = strings.FieldsFunc(l, func(r rune) bool { return r == ';' || r == ' ' })
			}
			if q := get("quality"); q != "" {
				var v int
				if _, err := fmt.Sscanf(q, "%d", &v); err != nil {
					bad = append(bad, lineErr{line, fmt.Errorf("quality %q is not a number", q)})
					continue
				}
				rec.Quality = &v
			}
			recs, lines = append(recs, rec), append(lines, line)
		}
	default:
		return nil, nil, nil, usageErr("unknown format %q: want te, csv or jsonl", format)
	}
	return recs, lines, bad, nil
}

// recordEntry turns one record into an add entry.
func recordEntry(rec record, extra []string, defExp int64, now time.Time) (*pb.Entry, consortium.Signal, error) {
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
	en, err := newAdd(sig, append(slices.Clone(rec.Labels), extra...), rec.ContentID, rec.Note, exp, q)
	if err != nil {
		return nil, sig, err
	}
	en.TimeUnixMs = now.UnixMilli()
	if _, err := consortium.MarshalEntry(en); err != nil {
		return nil, sig, err
	}
	en.TimeUnixMs = 0 // the node stamps it
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
