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
	switch f {
	case TE, JSONL:
		return readLines(r, f, progress)
	case CSV, PytxCSV:
		return readCSV(r, progress)
	}
	_, err = ParseFormat(string(f))
	return nil, nil, err
}

func readLines(r io.Reader, f Format, progress func(int)) (recs []Record, bad []*LineError, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	n := 0
	for sc.Scan() {
		n++
		if progress != nil {
			progress(n)
		}
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var rec Record
		if f == TE {
			rec, err = parseTE(line)
		} else {
			rec, err = parseJSON(line)
		}
		if err != nil {
			bad = append(bad, &LineError{n, err})
			continue
		}
		rec.Line = n
		recs = append(recs, rec)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, &LineError{n + 1, err}
	}
	return recs, bad, nil
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
		return Record{}, fmt.Errorf("not a JSON object of type, value, labels, content_id, note, expires, quality, members: %v", err)
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

func readCSV(r io.Reader, progress func(int)) (recs []Record, bad []*LineError, err error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.Comment = '#'
	header, err := cr.Read()
	if err != nil {
		return nil, nil, fmt.Errorf("csv header: %w", err)
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(h))
		if _, dup := col[h]; dup {
			return nil, nil, fmt.Errorf("csv header names the column %q twice", h)
		}
		col[h] = i
	}
	pytx := isPytxHeader(col)
	known, need := columns, []string{"type", "value"}
	if pytx {
		known, need = pytxColumns, pytxColumns[:2]
	}
	for _, need := range need {
		if _, ok := col[need]; !ok {
			return nil, nil, fmt.Errorf("csv header has no %q column (want type,value[,%s], or pytx's %s)", need, strings.Join(columns[2:], ","), strings.Join(pytxColumns, ","))
		}
	}
	for h := range col {
		if !slices.Contains(known, h) {
			return nil, nil, fmt.Errorf("csv header has an unknown column %q", h)
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
				bad = append(bad, &LineError{pe.Line, pe.Err})
				continue
			}
			return nil, nil, err
		}
		line, _ := cr.FieldPos(0) // only valid after a row read without error
		if progress != nil {
			progress(line)
		}
		var rec Record
		if pytx {
			rec, err = pytxRow(row, col)
		} else {
			rec, err = csvRecord(row, col)
		}
		if err != nil {
			bad = append(bad, &LineError{line, err})
			continue
		}
		rec.Line = line
		recs = append(recs, rec)
	}
	if pytx {
		recs = mergePytx(recs)
	}
	return recs, bad, nil
}

func csvRecord(row []string, col map[string]int) (Record, error) {
	get := func(k string) string {
		if i, ok := col[k]; ok && i < len(row) {
			return strings.TrimSpace(row[i])
		}
		return ""
	}
	rec := Record{Type: get("type"), Value: get("value"), ContentID: get("content_id"), Note: get("note"), Expires: get("expires"),
		Labels: splitList(get("labels")), Members: splitList(get("members"))}
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
