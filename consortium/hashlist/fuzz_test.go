package hashlist

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// fuzzRead checks the property every reader must have: what it accepts, written back in the same
// format, reads back as the same records with no bad line.
func fuzzRead(f *testing.F, format Format, glob string) {
	files, _ := filepath.Glob(filepath.Join("testdata", glob))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		recs, _, err := Read(bytes.NewReader(in), format, nil)
		if err != nil {
			return
		}
		var buf bytes.Buffer
		w, _ := NewWriter(&buf, format)
		for _, r := range recs {
			if err := w.Write(r); err != nil {
				t.Fatalf("accepted record %+v does not write: %v", r, err)
			}
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		again, bad, err := Read(bytes.NewReader(buf.Bytes()), format, nil)
		if err != nil || len(bad) != 0 {
			t.Fatalf("written records do not read back: bad %v, err %v\n%q", bad, err, buf.Bytes())
		}
		if !reflect.DeepEqual(withoutLines(again), withoutLines(recs)) {
			t.Fatalf("got %+v, want %+v\n%q", again, recs, buf.Bytes())
		}
	})
}

func FuzzReadTE(f *testing.F)    { fuzzRead(f, TE, "*.te") }
func FuzzReadCSV(f *testing.F)   { fuzzRead(f, CSV, "*.csv") }
func FuzzReadJSONL(f *testing.F) { fuzzRead(f, JSONL, "*.jsonl") }
