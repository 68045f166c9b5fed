package hashlist

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
)

// Writer writes records in one format. Call [Writer.Flush] at the end.
type Writer struct {
	f      Format
	w      io.Writer
	cw     *csv.Writer
	header bool
}

// NewWriter returns a writer of format f to w. A CSV writer writes the header (every column of
// [Record]) before the first record, or at Flush if there is none.
func NewWriter(w io.Writer, f Format) (*Writer, error) {
	if _, err := ParseFormat(string(f)); err != nil {
		return nil, err
	}
	wr := &Writer{f: f, w: w}
	if f == CSV || f == PytxCSV {
		wr.cw = csv.NewWriter(w)
	}
	return wr, nil
}

// Write writes one record. te holds only the type and the value, and drops the rest. A record the
// format cannot hold so that it reads back the same is refused with an error: a type that is not a
// name, an empty value, a te value with white space, a CSV label or member with ";" or white space.
func (w *Writer) Write(rec Record) error {
	if err := checkName(rec.Type); err != nil {
		return err
	}
	if rec.Value == "" {
		return errors.New("no value")
	}
	switch w.f {
	case TE:
		if strings.IndexFunc(rec.Value, unicode.IsSpace) >= 0 {
			return fmt.Errorf("te cannot hold the value %q: it has white space", rec.Value)
		}
		t, v := PytxType(rec.Type, rec.Value)
		_, err := fmt.Fprintf(w.w, "%s %s\n", t, v)
		return err
	case PytxCSV:
		rows, err := pytxRows(rec)
		if err != nil {
			return err
		}
		if err := w.writeHeader(); err != nil {
			return err
		}
		for _, row := range rows {
			if err := w.cw.Write(row); err != nil {
				return err
			}
		}
		return nil
	case CSV:
		if err := w.writeHeader(); err != nil {
			return err
		}
		labels, err := joinList("label", rec.Labels)
		if err != nil {
			return err
		}
		members, err := joinList("member", rec.Members)
		if err != nil {
			return err
		}
		protected, err := joinList("protection", rec.Protected)
		if err != nil {
			return err
		}
		q := ""
		if rec.Quality != nil {
			q = strconv.Itoa(*rec.Quality)
		}
		for _, s := range []string{rec.Value, rec.ContentID, rec.Note, rec.Expires} {
			if s != strings.TrimSpace(s) {
				return fmt.Errorf("csv cannot hold %q: it starts or ends with white space", s)
			}
		}
		return w.cw.Write([]string{rec.Type, rec.Value, labels, rec.ContentID, rec.Note, rec.Expires, q, members, protected})
	default:
		b, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		_, err = w.w.Write(append(b, '\n'))
		return err
	}
}

func (w *Writer) writeHeader() error {
	if w.header {
		return nil
	}
	w.header = true
	if w.f == PytxCSV {
		return w.cw.Write(pytxColumns)
	}
	return w.cw.Write(columns)
}

// joinList joins labels or members into one CSV cell.
func joinList(what string, l []string) (string, error) {
	for _, s := range l {
		if s == "" || strings.IndexFunc(s, func(r rune) bool { return r == ';' || unicode.IsSpace(r) }) >= 0 {
			return "", fmt.Errorf("csv cannot hold the %s %q: empty, or with ; or white space", what, s)
		}
	}
	return strings.Join(l, ";"), nil
}

// Flush writes what is buffered (and a CSV header if no record was written) and reports the
// first error of any write.
func (w *Writer) Flush() error {
	if w.cw == nil {
		return nil
	}
	if err := w.writeHeader(); err != nil {
		return err
	}
	w.cw.Flush()
	return w.cw.Error()
}
