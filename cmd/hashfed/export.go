package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/consortium/hashlist"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

func runExport(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "export", "[--at TIME] [--format te|csv|pytx-csv|jsonl] [--out FILE]")
	var nf nodeFlags
	nf.register(fs, e)
	at := fs.String("at", "", "export the set as it was at this time: a time ago (1h, 7d), a date (2026-01-31) or RFC 3339; default now")
	format := fs.String("format", "te", "te (python-threatexchange local_file: TYPE VALUE per line, pytx type names), csv or jsonl (with labels, members and protections), pytx-csv (threatexchange dataset --csv; protections as protected:<category>:<author> tags)")
	out := fs.String("out", "", "write to this file instead of standard output")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	req := &pb.ExportRequest{}
	if *at != "" {
		t, err := parseAt(*at, time.Now())
		if err != nil {
			return err
		}
		req.AtUnixMs = t.UnixMilli()
	}
	f, err := hashlist.ParseFormat(*format)
	if err != nil {
		return usageErr("--format: %v", err)
	}
	c, err := nf.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	cctx, cancel := c.Ctx(ctx, 0)
	defer cancel()
	stream, err := c.Export(cctx, req)
	if err != nil {
		return c.Err(err)
	}
	var w io.Writer = e.stdout
	var tmp *os.File
	if *out != "" {
		if tmp, err = os.CreateTemp(".", ".hashfed-export-*"); err != nil {
			return err
		}
		defer os.Remove(tmp.Name())
		w = tmp
	}
	hw, err := hashlist.NewWriter(w, f)
	if err != nil {
		return err
	}
	n, hashedURLs, protected := 0, 0, 0
	for {
		rec, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return c.Err(err)
		}
		sig, err := consortium.SignalFromProto(rec.Signal)
		if err != nil {
			return fmt.Errorf("node sent a bad signal: %w", err)
		}
		n++
		if sig.Type == consortium.URL {
			hashedURLs++
		}
		out := hashlist.Record{Type: sig.Type.String(), Value: sig.Text()}
		for _, l := range rec.Listings {
			out.Labels = append(out.Labels, l.Labels...)
			out.Members = append(out.Members, l.Member)
		}
		out.Labels = dedupe(out.Labels)
		for _, p := range rec.Protected {
			out.Protected = append(out.Protected, consortium.CategoryName(p.Category)+":"+p.Author)
		}
		out.Protected = dedupe(out.Protected)
		if len(out.Protected) > 0 {
			protected++
		}
		if err := hw.Write(out); err != nil {
			return fmt.Errorf("%s %s: %w", out.Type, out.Value, err)
		}
	}
	if err := hw.Flush(); err != nil {
		return err
	}
	if hashedURLs > 0 && (f == hashlist.TE || f == hashlist.PytxCSV) {
		fmt.Fprintf(e.stderr, "%d url signals written as %s: pytx and HMA have no type for a hashed URL and skip them\n", hashedURLs, hashlist.HashedURLType)
	}
	if protected > 0 && f == hashlist.TE {
		fmt.Fprintf(e.stderr, "%d signals are certified as protected (review before any removal): te has no room to say so; --format jsonl, csv or pytx-csv carries it\n", protected)
	}
	if tmp != nil {
		if err := tmp.Close(); err != nil {
			return err
		}
		if err := os.Rename(tmp.Name(), *out); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "wrote %d signals to %s\n", n, *out)
	}
	return nil
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
