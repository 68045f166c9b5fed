package hashlist

import (
	"bytes"
	"os"
	"reflect"
	"strings"
	"testing"
)

// TestPytxTE checks that te is written with pytx's type names and read back into hashfed's, so a
// list exported for HMA imports into hashfed unchanged.
func TestPytxTE(t *testing.T) {
	recs := []Record{
		{Type: "md5", Value: "92eb5ffee6ae2fec3ad71c777531578f"},
		{Type: "sha256", Value: "3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d"},
		{Type: "pdq", Value: "f8f8f0cee0f4a84f06370a22028f67f0b36e2ed596621e1d33e6b39c4e9c9b22"},
		{Type: "url", Value: "sha256:3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d"},
		{Type: "url", Value: "https://example.org/manifesto.pdf"},
	}
	got := string(write(t, TE, recs))
	want := `video_md5 92eb5ffee6ae2fec3ad71c777531578f
video_sha256 3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d
pdq f8f8f0cee0f4a84f06370a22028f67f0b36e2ed596621e1d33e6b39c4e9c9b22
hashfed_url_sha256 3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d
url https://example.org/manifesto.pdf
`
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	back, bad, err := Read(strings.NewReader(got), TE, nil)
	if err != nil || len(bad) != 0 {
		t.Fatalf("Read: bad %v, err %v", bad, err)
	}
	if !reflect.DeepEqual(withoutLines(back), recs) {
		t.Errorf("got %+v, want %+v", back, recs)
	}
	// hashfed's own names and any case still read.
	old, _, _ := Read(strings.NewReader("MD5 a\nsha256 b\nVideo_MD5 c\n"), TE, nil)
	if got, want := withoutLines(old), []Record{{Type: "md5", Value: "a"}, {Type: "sha256", Value: "b"}, {Type: "md5", Value: "c"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

// TestReadPytxCSV reads what `threatexchange dataset -P --csv` writes: a row per collaboration
// merged into one record, tags into labels, rows that are not listings refused with the reason.
func TestReadPytxCSV(t *testing.T) {
	b, err := os.ReadFile("testdata/dataset-pytx.csv")
	if err != nil {
		t.Fatal(err)
	}
	recs, bad, err := Read(bytes.NewReader(b), CSV, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []Record{
		{Type: "pdq", Value: "f8f8f0cee0f4a84f06370a22028f67f0b36e2ed596621e1d33e6b39c4e9c9b22", Labels: []string{"tag:terrorism", "tag:media_type_photo", "lang:en"}, Line: 2},
		{Type: "md5", Value: "92eb5ffee6ae2fec3ad71c777531578f", Line: 3},
	}
	if !reflect.DeepEqual(recs, want) {
		t.Errorf("got %+v, want %+v", recs, want)
	}
	wantBad := []string{`line 5: category "NEGATIVE_CLASS" is not a listing`, `line 6: category "DISPUTED" is not a listing`}
	if len(bad) != len(wantBad) {
		t.Fatalf("got bad %v, want %v", bad, wantBad)
	}
	for i, e := range bad {
		if !strings.HasPrefix(e.Error(), wantBad[i]) {
			t.Errorf("got %q, want it to start %q", e, wantBad[i])
		}
	}
}

func TestWritePytxCSV(t *testing.T) {
	recs := []Record{
		{Type: "md5", Value: "92eb5ffee6ae2fec3ad71c777531578f", Labels: []string{"tag:terrorism", "lang:en"}, Members: []string{"alpha", "bravo"}},
		{Type: "url", Value: "sha256:3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d"},
		// Protections are tags (protected:<category>:<author>) on every row, read back as such.
		{Type: "pdq", Value: "f8f8f0cee0f4a84f06370a22028f67f0b36e2ed596621e1d33e6b39c4e9c9b22", Labels: []string{"lang:ar"}, Members: []string{"alpha", "bravo"},
			Protected: []string{"parody:ngo", "news:bravo"}},
	}
	got := string(write(t, PytxCSV, recs))
	want := `signal_type,signal_str,collab,category,tags
video_md5,92eb5ffee6ae2fec3ad71c777531578f,alpha,POSITIVE_CLASS,terrorism lang:en
video_md5,92eb5ffee6ae2fec3ad71c777531578f,bravo,POSITIVE_CLASS,terrorism lang:en
hashfed_url_sha256,3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d,,POSITIVE_CLASS,
pdq,f8f8f0cee0f4a84f06370a22028f67f0b36e2ed596621e1d33e6b39c4e9c9b22,alpha,POSITIVE_CLASS,lang:ar protected:parody:ngo protected:news:bravo
pdq,f8f8f0cee0f4a84f06370a22028f67f0b36e2ed596621e1d33e6b39c4e9c9b22,bravo,POSITIVE_CLASS,lang:ar protected:parody:ngo protected:news:bravo
`
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	back, bad, err := Read(strings.NewReader(got), PytxCSV, nil)
	if err != nil || len(bad) != 0 {
		t.Fatalf("Read: bad %v, err %v", bad, err)
	}
	for i := range recs {
		recs[i].Members = nil // the collab is not read back
	}
	if !reflect.DeepEqual(withoutLines(back), recs) {
		t.Errorf("got %+v, want %+v", back, recs)
	}
	w, _ := NewWriter(&bytes.Buffer{}, PytxCSV)
	if err := w.Write(Record{Type: "md5", Value: "a", Labels: []string{"a b"}}); err == nil {
		t.Error("a label with a space: got no error, want one")
	}
	if err := w.Write(Record{Type: "md5", Value: "a", Protected: []string{"parody:a b"}}); err == nil {
		t.Error("a protection with a space: got no error, want one")
	}
}

func FuzzReadPytxCSV(f *testing.F) { fuzzRead(f, PytxCSV, "*pytx*.csv") }

func TestReadValues(t *testing.T) {
	got, err := ReadValues(strings.NewReader("# one video hash a line\n0cc175b9c0f1b6a831c399e269772661\n\n92eb5ffee6ae2fec3ad71c777531578f\n"), "video_md5", nil)
	want := []Record{{Type: "md5", Value: "0cc175b9c0f1b6a831c399e269772661", Line: 2}, {Type: "md5", Value: "92eb5ffee6ae2fec3ad71c777531578f", Line: 4}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, %v; want %+v", got, err, want)
	}
	if _, err := ReadValues(strings.NewReader("a\n"), "bad type", nil); err == nil {
		t.Error("a bad type: got no error")
	}
}
