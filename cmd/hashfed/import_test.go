package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashfed/hashfed/internal/fixture"
	"github.com/hashfed/hashfed/internal/localnet"
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

// TestImportResumesAfterInterrupt: an import stopped part-way (its context cancelled while batches
// are in flight, as a kill would) says how to finish; running it again finishes it, and the log
// holds every line exactly once.
func TestImportResumesAfterInterrupt(t *testing.T) {
	dir := t.TempDir()
	g := fixture.Genesis(1, fixture.Members("alpha")...)
	n, err := localnet.Node(g, fixture.Key("alpha"), dir, nil, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	const lines = 30_000
	var b strings.Builder
	for i := range lines {
		fmt.Fprintf(&b, "md5 %032x\n", i+1)
	}
	file := filepath.Join(dir, "list.txt")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(ctx context.Context) (string, error) {
		var out, errOut bytes.Buffer
		e := &env{stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }}
		err := runImport(ctx, e, []string{file, "--node", n.MemberAddr(), "--batch", "500"})
		return out.String() + errOut.String(), err
	}

	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		for n.Store().Size("alpha") < 3000 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	_, err = run(ctx)
	if err == nil || !strings.Contains(err.Error(), "run the same import again") {
		t.Fatalf("interrupted import: got %v, want an error saying to run it again", err)
	}
	stored := n.Store().Size("alpha")
	if stored == 0 || stored >= lines {
		t.Fatalf("interrupted import stored %d entries, want some but not all of %d", stored, lines)
	}

	out, err := run(t.Context())
	if err != nil {
		t.Fatalf("second run: %v\n%s", err, out)
	}
	var added, updated, unchanged, refused int
	if _, err := fmt.Sscanf(out[strings.Index(out, ": ")+2:], "%d added, %d updated, %d unchanged, %d refused", &added, &updated, &unchanged, &refused); err != nil {
		t.Fatalf("summary %q: %v", out, err)
	}
	// Batches in flight when the first run stopped may have committed after it returned: at least
	// what was stored then comes back unchanged.
	if added+unchanged != lines || updated != 0 || refused != 0 || uint64(unchanged) < stored {
		t.Errorf("second run: got %d added, %d updated, %d unchanged, %d refused; want at least %d unchanged (stored before) and the rest of %d added", added, updated, unchanged, refused, stored, lines)
	}
	if got := n.Store().Size("alpha"); got != lines {
		t.Errorf("log size after finishing: got %d, want %d (every line once)", got, lines)
	}
}
