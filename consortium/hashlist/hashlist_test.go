package hashlist

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func intp(v int) *int { return &v }

// sample is a list every format can hold whole, but te, which holds type and value only.
var sample = []Record{
	{Type: "md5", Value: "92eb5ffee6ae2fec3ad71c777531578f", Labels: []string{"behaviour:recruitment-instruction", "lang:en"}, ContentID: "c9", Note: "a note, with a comma \"quoted\"", Expires: "90d", Members: []string{"alpha", "beta"}},
	{Type: "pdq", Value: "f8f8f0cee0f4a84f06370a22028f67f0b36e2ed596621e1d33e6b39c4e9c9b22", Expires: "2030-01-01T00:00:00Z", Quality: intp(87), Protected: []string{"news:ngo"}},
	{Type: "url", Value: "https://example.org/manifesto.pdf", Quality: intp(0), Protected: []string{"parody:ngo", "research:alpha"}},
}

func write(t *testing.T, f Format, recs []Record) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, f)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := w.Write(r); err != nil {
			t.Fatalf("Write(%+v): %v", r, err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// withoutLines returns recs with Line cleared, to compare records read from different files.
func withoutLines(recs []Record) []Record {
	out := make([]Record, len(recs))
	for i, r := range recs {
		r.Line = 0
		out[i] = r
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	for _, f := range []Format{TE, CSV, JSONL} {
		t.Run(string(f), func(t *testing.T) {
			want := sample
			if f == TE {
				want = nil
				for _, r := range sample {
					want = append(want, Record{Type: r.Type, Value: r.Value})
				}
			}
			b := write(t, f, sample)
			got, bad, err := Read(bytes.NewReader(b), f, nil)
			if err != nil || len(bad) != 0 {
				t.Fatalf("Read: bad %v, err %v\n%s", bad, err, b)
			}
			if !reflect.DeepEqual(withoutLines(got), want) {
				t.Errorf("got %+v, want %+v\nfile:\n%s", got, want, b)
			}
		})
	}
}

func TestReadFiles(t *testing.T) {
	tests := []struct {
		file      string
		wantN     int
		wantLines []int
	}{
		{"mixed.te", 3, []int{2, 3, 5}},
		{"full.csv", 2, []int{2, 3}},
		{"short.csv", 2, []int{2, 3}},
		{"full.jsonl", 2, []int{1, 3}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			recs, bad, err := Read(bytes.NewReader(b), FormatOf(tc.file), nil)
			if err != nil || len(bad) != 0 {
				t.Fatalf("bad %v, err %v", bad, err)
			}
			var lines []int
			for _, r := range recs {
				lines = append(lines, r.Line)
			}
			if !reflect.DeepEqual(lines, tc.wantLines) {
				t.Errorf("got lines %v, want %v", lines, tc.wantLines)
			}
		})
	}
}

func TestReadCSVFields(t *testing.T) {
	b, _ := os.ReadFile("testdata/full.csv")
	recs, _, err := Read(bytes.NewReader(b), CSV, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []Record{
		{Type: "md5", Value: "92eb5ffee6ae2fec3ad71c777531578f", Labels: []string{"behaviour:recruitment-instruction", "lang:en"}, ContentID: "c9", Note: "a note, with a comma", Expires: "90d", Members: []string{"alpha", "beta"}, Line: 2},
		{Type: "pdq", Value: "f8f8f0cee0f4a84f06370a22028f67f0b36e2ed596621e1d33e6b39c4e9c9b22", Expires: "2030-01-01T00:00:00Z", Quality: intp(87), Line: 3},
	}
	if !reflect.DeepEqual(recs, want) {
		t.Errorf("got %+v, want %+v", recs, want)
	}
}

func TestBadLines(t *testing.T) {
	tests := []struct {
		name, in string
		f        Format
		want     []string
	}{
		{"te fields", "md5 a\npdq 0000 extra\nmd5\n", TE, []string{"line 2: want TYPE VALUE, got 3 fields", "line 3: want TYPE VALUE, got 1 fields"}},
		{"te type", "md5 a\nm;d5 b\n", TE, []string{`line 2: type "m;d5" is not a signal type name`}},
		{"jsonl syntax", "{\"type\":\"md5\",\"value\":\"a\"}\n{\"type\":\n", JSONL, []string{"line 2: not a JSON object"}},
		{"jsonl unknown field", "\n{\"type\":\"md5\",\"value\":\"a\",\"colour\":1}\n", JSONL, []string{`line 2: not a JSON object of type, value, labels, content_id, note, expires, quality, members, listings, protected: json: unknown field "colour"`}},
		{"jsonl two values", "{\"type\":\"md5\",\"value\":\"a\"} {}\n", JSONL, []string{"line 1: more than one JSON value on the line"}},
		{"jsonl no value", "{\"type\":\"md5\"}\nnull\n", JSONL, []string{"line 1: no value", "line 2: no type"}},
		{"csv quality", "type,value,quality\nmd5,a,12x\nmd5,b,\n", CSV, []string{`line 2: quality "12x" is not a number`}},
		{"csv no type", "value,type\na,\n", CSV, []string{"line 2: no type"}},
		{"csv quote", "type,value\nmd5,\"a\"b\nmd5,c\n", CSV, []string{`line 2: extraneous or missing " in quoted-field`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, bad, err := Read(strings.NewReader(tc.in), tc.f, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(bad) != len(tc.want) {
				t.Fatalf("got %d bad lines %v, want %d", len(bad), bad, len(tc.want))
			}
			for i, b := range bad {
				if !strings.HasPrefix(b.Error(), tc.want[i]) {
					t.Errorf("got %q, want it to start %q", b.Error(), tc.want[i])
				}
			}
		})
	}
}

func TestCSVHeader(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "csv header: EOF"},
		{"type,labels\n", `csv header has no "value" column`},
		{"type,value,colour\n", `csv header has an unknown column "colour"`},
		{"type,value,Type\n", `csv header names the column "type" twice`},
	}
	for _, tc := range tests {
		_, _, err := Read(strings.NewReader(tc.in), CSV, nil)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("header %q: got %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestFormats(t *testing.T) {
	if _, err := ParseFormat("xml"); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("ParseFormat(xml): got %v, want ErrUnknownFormat", err)
	}
	if _, _, err := Read(strings.NewReader(""), "xml", nil); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("Read(xml): got %v, want ErrUnknownFormat", err)
	}
	for name, want := range map[string]Format{"a.CSV": CSV, "a.ndjson": JSONL, "a.jsonl": JSONL, "a.txt": TE, "-": TE} {
		if got := FormatOf(name); got != want {
			t.Errorf("FormatOf(%q): got %s, want %s", name, got, want)
		}
	}
}

func TestWriteRefuses(t *testing.T) {
	tests := []struct {
		f   Format
		rec Record
	}{
		{TE, Record{Type: "md5", Value: "a b"}},
		{TE, Record{Type: "#md5", Value: "a"}},
		{JSONL, Record{Type: "md5"}},
		{CSV, Record{Type: "md5", Value: "a", Labels: []string{"x;y"}}},
		{CSV, Record{Type: "md5", Value: "a", Members: []string{""}}},
		{CSV, Record{Type: "md5", Value: "a", Protected: []string{"parody:a;b"}}},
		{CSV, Record{Type: "md5", Value: " a"}},
	}
	for _, tc := range tests {
		w, _ := NewWriter(&bytes.Buffer{}, tc.f)
		if err := w.Write(tc.rec); err == nil {
			t.Errorf("%s Write(%+v): got no error, want one", tc.f, tc.rec)
		}
	}
}

func TestLongLine(t *testing.T) {
	in := "md5 " + strings.Repeat("a", maxLine) + "\n"
	_, _, err := Read(strings.NewReader("md5 a\n"+in), TE, nil)
	var le *LineError
	if !errors.As(err, &le) || le.Line != 2 {
		t.Errorf("got %v, want a line 2 error", err)
	}
}

func TestProgress(t *testing.T) {
	var last int
	Read(strings.NewReader("md5 a\n\nmd5 b\n"), TE, func(n int) { last = n })
	if last != 3 {
		t.Errorf("got last line %d, want 3", last)
	}
}

// TestListingsIgnored: a JSON line with the listings a node's JSON gives reads as a record (the
// listings kept raw, for nothing but reading), so a file of such lines imports.
func TestListingsIgnored(t *testing.T) {
	in := `{"type":"md5","value":"92eb5ffee6ae2fec3ad71c777531578f","labels":["lang:en"],"listings":[{"member":"alpha","index":3,"labels":["lang:en"]}]}` + "\n"
	recs, bad, err := Read(strings.NewReader(in), JSONL, nil)
	if err != nil || len(bad) != 0 || len(recs) != 1 {
		t.Fatalf("got %d records, bad %v, err %v; want 1 record", len(recs), bad, err)
	}
	if recs[0].Value != "92eb5ffee6ae2fec3ad71c777531578f" || !strings.Contains(string(recs[0].Listings), `"alpha"`) {
		t.Errorf("got %+v", recs[0])
	}
}

// TestScanStops: an error from Scan's callback stops it and is returned.
func TestScanStops(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	err := Scan(strings.NewReader("md5 a\nmd5 b\nmd5 c\n"), TE, func(Record, *LineError) error {
		n++
		if n == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 2 {
		t.Errorf("got err %v after %d records, want stop after 2", err, n)
	}
}
