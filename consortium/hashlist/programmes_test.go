package hashlist

import (
	"bytes"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestReadNCMEC(t *testing.T) {
	b, err := os.ReadFile("testdata/entries.ncmec.xml")
	if err != nil {
		t.Fatal(err)
	}
	got, _, skipped, err := ReadChanges(bytes.NewReader(b), NCMEC)
	if err != nil {
		t.Fatal(err)
	}
	lab := []string{"ncmec-classification:B1"}
	want := []Change{
		{Delete: true, ContentID: "ncmec:7-img-1"},
		{Record: Record{Type: "md5", Value: "0cc175b9c0f1b6a831c399e269772661", Labels: lab, ContentID: "ncmec:7-img-1"}},
		{Record: Record{Type: "pdq", Value: "f8f8f0cee0f4a84f06370a22028f67f0b36e2ed596621e1d33e6b39c4e9c9b22", Labels: lab, ContentID: "ncmec:7-img-1"}},
		{Delete: true, ContentID: "ncmec:7-img-0"},
		{Delete: true, ContentID: "ncmec:9-vid-1"},
		{Record: Record{Type: "md5", Value: "92eb5ffee6ae2fec3ad71c777531578f", ContentID: "ncmec:9-vid-1"}},
	}
	if !reflect.DeepEqual(got, want) || skipped != 1 {
		t.Errorf("got %+v (skipped %d)\nwant %+v (skipped 1: the sha1)", got, skipped, want)
	}
	for _, bad := range []string{"", "<queryResult><images><video><member id=\"1\"/><id>x</id></video></images></queryResult>", "<queryResult><images><image><id>x</id></image></images></queryResult>"} {
		if _, _, _, err := ReadChanges(strings.NewReader(bad), NCMEC); !errors.Is(err, ErrFormat) {
			t.Errorf("%q: got %v, want ErrFormat", bad, err)
		}
	}
}

func TestReadStopNCII(t *testing.T) {
	b, err := os.ReadFile("testdata/fetch.stopncii.json")
	if err != nil {
		t.Fatal(err)
	}
	got, _, skipped, err := ReadChanges(bytes.NewReader(b), StopNCII)
	if err != nil {
		t.Fatal(err)
	}
	want := []Change{
		{Record: Record{Type: "pdq", Value: "f8f8f0cee0f4a84f06370a22028f67f0b36e2ed596621e1d33e6b39c4e9c9b22"}},
		{Delete: true, Record: Record{Type: "md5", Value: "92eb5ffee6ae2fec3ad71c777531578f"}},
	}
	if !reflect.DeepEqual(got, want) || skipped != 1 {
		t.Errorf("got %+v (skipped %d)\nwant %+v (skipped 1: the TMK)", got, skipped, want)
	}
	for _, bad := range []string{"", "[]", `{"count":0}`} {
		if _, _, _, err := ReadChanges(strings.NewReader(bad), StopNCII); !errors.Is(err, ErrFormat) {
			t.Errorf("%q: got %v, want ErrFormat", bad, err)
		}
	}
}

// fuzzChanges checks what every programme reader must hold: each change is a delete of a content id
// or of a typed signal, or an add of a typed, non-empty value.
func fuzzChanges(f *testing.F, format Format, glob string) {
	seeds, _ := os.ReadDir("testdata")
	for _, e := range seeds {
		if strings.HasSuffix(e.Name(), glob) {
			b, _ := os.ReadFile("testdata/" + e.Name())
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		cs, _, _, err := ReadChanges(bytes.NewReader(in), format)
		if err != nil {
			return
		}
		for _, c := range cs {
			if c.Delete && c.ContentID != "" && c.Record.Type == "" {
				continue
			}
			if c.Record.Type == "" || c.Record.Value == "" {
				t.Fatalf("change %+v has no signal", c)
			}
		}
	})
}

func FuzzReadNCMEC(f *testing.F)    { fuzzChanges(f, NCMEC, ".ncmec.xml") }
func FuzzReadStopNCII(f *testing.F) { fuzzChanges(f, StopNCII, ".stopncii.json") }
