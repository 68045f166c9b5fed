package main

import (
	"github.com/hashfed/hashfed/internal/jpegturbo"

	"bytes"
	"context"
	"errors"
	"flag"
	"strconv"
	"strings"
	"testing"
)

// lastLineFigures parses the last line of the output into its key=value pairs.
func lastLineFigures(t *testing.T, out string) map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	figures := map[string]string{}
	for _, kv := range strings.Fields(lines[len(lines)-1]) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			t.Fatalf("last line %q: field %q is not key=value", lines[len(lines)-1], kv)
		}
		figures[k] = v
	}
	return figures
}

func TestRunBenchHash(t *testing.T) {
	tests := []struct {
		name       string
		dir        string
		wantSource string
	}{
		{"repository images", "../../testdata/pdq", "3 images of 512×512 and 9 JPEGs of 1600×1004 under ../../testdata/pdq"},
		{"synthetic", t.TempDir(), "made one 512×512 and one 1600×1004 JPEG (synthetic)"},
		{"missing directory", "no/such/dir", "made one 512×512 and one 1600×1004 JPEG (synthetic)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := runBenchHash(t.Context(), []string{"-seconds", "0.05", "-repeat", "1", "-images", tc.dir}, &out); err != nil {
				t.Fatalf("got error %v, want none; output:\n%s", err, out.String())
			}
			if !strings.Contains(out.String(), tc.wantSource) {
				t.Errorf("got output\n%s\nwant it to say %q", out.String(), tc.wantSource)
			}
			figures := lastLineFigures(t, out.String())
			for _, key := range []string{"hashes_per_s_512", "us_per_hash_512", "jpeg_per_s_1600x1004", "us_per_jpeg", "files_per_s_1core", "files_per_s_allcores", "files", "cores_all", "files_per_cpu_s_1core"} {
				v, err := strconv.ParseFloat(figures[key], 64)
				if err != nil || !(v > 0) {
					t.Errorf("%s: got %q, want a positive number", key, figures[key])
				}
			}
			if figures["cores"] != "1" {
				t.Errorf("cores: got %q, want 1", figures["cores"])
			}
			if figures["repeat"] != "1" {
				t.Errorf("repeat: got %q, want 1", figures["repeat"])
			}
			if len(figures) != 11 {
				t.Errorf("got %d figures %v, want 11", len(figures), figures)
			}
		})
	}
}

func TestRunBenchHashErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"-frobnicate"}, "flag provided but not defined"},
		{"zero seconds", []string{"-seconds", "0"}, "-seconds is 0"},
		{"negative seconds", []string{"-seconds", "-1"}, "-seconds is -1"},
		{"extra argument", []string{"-seconds", "1", "photo.jpg"}, "unexpected arguments"},
		{"zero repeat", []string{"-repeat", "0"}, "-repeat is 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := runBenchHash(t.Context(), tc.args, &out)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
	var out bytes.Buffer
	if err := runBenchHash(t.Context(), []string{"-h"}, &out); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: got error %v, want flag.ErrHelp", err)
	}
	if !strings.Contains(out.String(), "-seconds") {
		t.Errorf("-h: got output %q, want the flags described", out.String())
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := runBenchHash(ctx, []string{"-seconds", "5", "-images", t.TempDir()}, &out); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: got error %v, want context.Canceled", err)
	}
}

// TestRunHashDistances runs the decoder comparison over the repository's conformance vectors.
func TestRunHashDistances(t *testing.T) {
	var out bytes.Buffer
	err := runBenchHash(t.Context(), []string{"-distances", "../../testdata/pdq"}, &out)
	if !jpegturbo.Available {
		if err == nil || !strings.Contains(err.Error(), "no libjpeg-turbo") {
			t.Errorf("without libjpeg-turbo: got error %v, want one saying so", err)
		}
		return
	}
	if err != nil {
		t.Fatalf("got error %v, want none; output:\n%s", err, out.String())
	}
	for _, want := range []string{
		"bridge-mods/aaa-orig.jpg",
		"JPEG, Go decoder vs C++ core on Go pixels (must be 0)                     23      0    0  23 / 0 / 0 / 0 / 0 / 0",
		"png and decoded-png: ours vs C++ core (must be 0)",
		"published pytx (C++ core + Pillow decode): libjpeg-turbo                  15      0    0  15 / 0 / 0 / 0 / 0 / 0",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("got output\n%s\nwant it to contain %q", out.String(), want)
		}
	}
	if err := runBenchHash(t.Context(), []string{"-distances", t.TempDir()}, &out); err == nil {
		t.Errorf("a directory without the vectors: got no error")
	}
}
