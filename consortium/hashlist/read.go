package hashlist

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// maxLine is the longest line the te and JSON Lines readers accept.
const maxLine = 1 << 20

// Read reads every record of r in format f. A line that is not a record comes back in bad as a
// [*LineError] naming the line and the problem, and reading goes on; an I/O error, a line over
// 1 MiB or a CSV header that does not fit stops it and comes back as err. Blank lines and lines
// starting with # are skipped. progress, if not nil, is called with each line number read.
func Read(r io.Reader, f Format, progress func(line int)) (recs []Record, bad []*LineError, err error) {
	err = Scan(r, f, func(rec Record, le *LineError) error {
		if le != nil {
			bad = append(bad, le)
		} else {
			recs = append(recs, rec)
		}
		if progress != nil {
			progress(max(rec.Line, lineOf(le)))
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return recs, bad, nil
}

func lineOf(le *LineError) int {
	if le == nil {
		return 0
	}
	return le.Line
}

// Scan reads r in format f one record at a time, in file order, holding no more than one line:
// for a file of any size. It calls fn with each record, or with the [*LineError] of a line that
// is not one (and a zero record). Blank lines and lines starting with # are skipped. An I/O
// error, a line over 1 MiB, a CSV header that does not fit or an error from fn stops it and is
// returned.
func Scan(r io.Reader, f Format, fn func(rec Record, bad *LineError) error) error {
	switch f {
	case TE, JSONL:
		return scanLines(r, f, fn)
	case CSV, PytxCSV:
		return scanCSV(r, fn)
	}
	_, err := ParseFormat(string(f))
	return err
}

func scanLines(r io.Reader, f Format, fn func(Record, *LineError) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var rec Record
		var err error
		if f == TE {
			rec, err = parseTE(line)
		} else {
			rec, err = parseJSON(line)
		}
		if err != nil {
			err = fn(Record{}, &LineError{n, err})
		} else {
			rec.Line = n
			err = fn(rec, nil)
		}
		if err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return &LineError{n + 1, err}
	}
	return nil
}

func parseTE(line string) (Record, error) {
	f := strings.Fields(line)
	if len(f) != 2 {
		return Record{}, fmt.Errorf("want TYPE VALUE, got %d fields", len(f))
	}
	if err := checkName(f[0]); err != nil {
		return Record{}, err
	}
	t, v := NormalType(f[0], f[1])
	return Record{Type: t, Value: v}, nil
}

func parseJSON(line string) (Record, error) {
	var rec Record
	dec := json.NewDecoder(strings.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		return Record{}, fmt.Errorf("not a JSON object of type, value, labels, content_id, note, expires, quality, members, listings, protected: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Record{}, errors.New("more than one JSON value on the line")
	}
	if err := checkName(rec.Type); err != nil {
		return Record{}, err
	}
	if rec.Value == "" {
		return Record{}, errors.New("no value")
	}
	rec.Type, rec.Value = NormalType(rec.Type, rec.Value)
	if len(rec.Labels) == 0 {
		rec.Labels = nil
	}
	if len(rec.Members) == 0 {
		rec.Members = nil
	}
	if len(rec.Protected) == 0 {
		rec.Protected = nil
	}
	return rec, nil
}

// splitList splits a CSV cell of labels or members at ";" and white space.
func splitList(s string) []string {
	l := strings.FieldsFunc(s, func(r rune) bool { return r == ';' || unicode.IsSpace(r) })
	if len(l) == 0 {
		return nil
	}
	return l
}

func scanCSV(r io.Reader, fn func(Record, *LineError) error) error {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.Comment = '#'
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return fmt.Errorf("csv header: %w", err)
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(h))
		if _, dup := col[h]; dup {
			return fmt.Errorf("csv header names the column %q twice", h)
		}
		col[h] = i
	}
	pytx := isPytxHeader(col)
	var held []Record // pytx rows, merged at the end
	known, need := columns, []string{"type", "value"}
	if pytx {
		known, need = pytxColumns, pytxColumns[:2]
	}
	for _, need := range need {
		if _, ok := col[need]; !ok {
			return fmt.Errorf("csv header has no %q column (want type,value[,%s], or pytx's %s)", need, strings.Join(columns[2:], ","), strings.Join(pytxColumns, ","))
		}
	}
	for h := range col {
		if !slices.Contains(known, h) {
			return fmt.Errorf("csv header has an unknown column %q", h)
		}
	}
	for {
		row, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				if err := fn(Record{}, &LineError{pe.Line, pe.Err}); err != nil {
					return err
				}
				continue
			}
			return err
		}
		line, _ := cr.FieldPos(0) // only valid after a row read without error
		var rec Record
		if pytx {
			rec, err = pytxRow(row, col)
		} else {
			rec, err = csvRecord(row, col)
		}
		if err == nil && pytx {
			// pytx writes one row per signal and collaboration: rows of one signal are merged
			// (their tags become one listing's labels), so they are held until the end.
			rec.Line = line
			held = append(held, rec)
			continue
		}
		if err != nil {
			err = fn(Record{}, &LineError{line, err})
		} else {
			rec.Line = line
			err = fn(rec, nil)
		}
		if err != nil {
			return err
		}
	}
	for _, rec := range mergePytx(held) {
		if err := fn(rec, nil); err != nil {
			return err
		}
	}
	return nil
}

func csvRecord(row []string, col map[string]int) (Record, error) {
	get := func(k string) string {
		if i, ok := col[k]; ok && i < len(row) {
			return strings.TrimSpace(row[i])
		}
		return ""
	}
	rec := Record{Type: get("type"), Value: get("value"), ContentID: get("content_id"), Note: get("note"), Expires: get("expires"),
		Labels: splitList(get("labels")), Members: splitList(get("members")), Protected: splitList(get("protected"))}
	if err := checkName(rec.Type); err != nil {
		return Record{}, err
	}
	if rec.Value == "" {
		return Record{}, errors.New("no value")
	}
	rec.Type, rec.Value = NormalType(rec.Type, rec.Value)
	if q := get("quality"); q != "" {
		v, err := strconv.Atoi(q)
		if err != nil {
			return Record{}, fmt.Errorf("quality %q is not a number", q)
		}
		rec.Quality = &v
	}
	return rec, nil
}
