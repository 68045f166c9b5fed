package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// matchFigures parses the last line of bench match's output into its key=value pairs.
func matchFigures(t *testing.T, out string) map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := lines[len(lines)-1]
	figures := map[string]string{}
	for _, kv := range strings.Fields(last) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			t.Fatalf("last line %q: field %q is not key=value", last, kv)
		}
		figures[k] = v
	}
	return figures
}

func TestRunBenchMatch(t *testing.T) {
	var out bytes.Buffer
	args := []string{"-n", "20000", "-q", "200", "-sample", "100"}
	if err := runBenchMatch(t.Context(), args, &out); err != nil {
		t.Fatalf("got error %v, want none; output:\n%s", err, out.String())
	}
	figures := matchFigures(t, out.String())
	want := map[string]string{"n": "20000", "queries": "200", "radius": "31", "recall": "1.0000"}
	for k, v := range want {
		if figures[k] != v {
			t.Errorf("%s: got %q, want %q", k, figures[k], v)
		}
	}
	for _, key := range []string{"qps", "us_per_query", "build_s", "rss_mb", "bytes_per_hash", "batch_qps"} {
		v, err := strconv.ParseFloat(figures[key], 64)
		if err != nil || v < 0 || (key != "build_s" && v == 0) {
			t.Errorf("%s: got %q, want a positive number", key, figures[key])
		}
	}
	if bph, _ := strconv.ParseFloat(figures["bytes_per_hash"], 64); bph < 32 || bph > 1000 {
		t.Errorf("bytes_per_hash: got %v, want 32..1000 (32 bytes of hash, tables sized for the level)", bph)
	}
	if len(figures) != 10 {
		t.Errorf("got %d figures %v, want 10", len(figures), figures)
	}
	if !strings.Contains(out.String(), "same results as Search") {
		t.Errorf("got output\n%s\nwant the batch search reported", out.String())
	}
	if !strings.Contains(out.String(), "brute-force check: the first 100 queries' results equal a full scan's") {
		t.Errorf("got output\n%s\nwant the brute-force check reported", out.String())
	}
}

// TestRunBenchMatchAnchor stands a small script in for the faiss anchor: the runner must pass it the
// corpus parameters, print its output and compute the speedup from its last line.
func TestRunBenchMatchAnchor(t *testing.T) {
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("no /usr/bin/python3 to run an anchor script with")
	}
	script := filepath.Join(t.TempDir(), "anchor.py")
	src := "import sys\nprint('args', ' '.join(sys.argv[1:]))\nprint('faiss index=multihash qps=2.5 us_per_query=400000.0')\n"
	if err := os.WriteFile(script, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	args := []string{"-n", "5000", "-q", "50", "-sample", "10", "-seed", "3", "-flip", "12", "-anchor", script}
	if err := runBenchMatch(t.Context(), args, &out); err != nil {
		t.Fatalf("got error %v, want none; output:\n%s", err, out.String())
	}
	if want := "anchor: args -n 5000 -q 50 --radius 31 --flip 12 --seed 3"; !strings.Contains(out.String(), want) {
		t.Errorf("got output\n%s\nwant it to contain %q", out.String(), want)
	}
	figures := matchFigures(t, out.String())
	if figures["faiss_qps"] != "2" && figures["faiss_qps"] != "3" {
		t.Errorf("faiss_qps: got %q, want 2.5 rounded", figures["faiss_qps"])
	}
	qps, _ := strconv.ParseFloat(figures["qps"], 64)
	speedup, err := strconv.ParseFloat(figures["speedup"], 64)
	if err != nil || speedup <= 0 || speedup < qps/2.5*0.9 || speedup > qps/2.5*1.1 {
		t.Errorf("speedup: got %q, want qps/2.5 = %.1f", figures["speedup"], qps/2.5)
	}

	// An anchor whose last line has no qps is an error.
	bad := filepath.Join(t.TempDir(), "bad.py")
	if err := os.WriteFile(bad, []byte("print('nothing useful')\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = runBenchMatch(t.Context(), []string{"-n", "1000", "-q", "10", "-sample", "0", "-anchor", bad}, &out)
	if err == nil || !strings.Contains(err.Error(), "no qps= field") {
		t.Errorf("got error %v, want one about the missing qps= field", err)
	}
}

func TestRunBenchMatchErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"-frobnicate"}, "flag provided but not defined"},
		{"zero n", []string{"-n", "0"}, "-n is 0"},
		{"zero queries", []string{"-q", "0"}, "-q is 0"},
		{"negative radius", []string{"-radius", "-1"}, "-radius is -1"},
		{"flip too large", []string{"-flip", "257"}, "-flip is 257"},
		{"sample above queries", []string{"-q", "10", "-sample", "11"}, "-sample is 11"},
		{"extra argument", []string{"-n", "10", "more"}, "unexpected arguments"},
		{"missing anchor script", []string{"-n", "100", "-q", "5", "-sample", "0", "-anchor", "/no/such/anchor.py"}, "anchor /no/such/anchor.py"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := runBenchMatch(t.Context(), tc.args, &out)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
