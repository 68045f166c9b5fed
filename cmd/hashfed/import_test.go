package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/hashfed/hashfed/internal/memberclient"
)

// TestProgressPlainLines: off a terminal, progress is plain lines (no carriage returns or escape
// codes) with the lines read, the entries stored, the rate and, for a file of known size, the
// share done and the time left; at most one per interval.
func TestProgressPlainLines(t *testing.T) {
	var out bytes.Buffer
	e := &env{stderr: &out}
	p := newProgress(e, "import list.txt", 1000)
	if p.tty {
		t.Fatal("a bytes.Buffer taken for a terminal")
	}
	tally := func() memberclient.Tally { return memberclient.Tally{Added: 30, Unchanged: 10} }
	p.start = time.Now().Add(-10 * time.Second)
	p.last = p.start
	p.update(50, tally, 250)
	p.update(60, tally, 300) // within the interval: nothing
	p.done()
	got := out.String()
	if strings.Count(got, "\n") != 1 || strings.ContainsAny(got, "\r\x1b") {
		t.Fatalf("got %q, want one plain line", got)
	}
	for _, want := range []string{"import list.txt: 50 lines read, 40 stored, 5 lines/s", "25%", "30s left"} {
		if !strings.Contains(got, want) {
			t.Errorf("got %q, want it to contain %q", got, want)
		}
	}
}
