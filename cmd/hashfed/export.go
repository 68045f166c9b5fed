package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/hashfed/hashfed/consortium"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

func runExport(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "export", "[--at TIME] [--format te|csv|jsonl] [--out FILE]")
	var nf nodeFlags
	nf.register(fs, e)
	at := fs.String("at", "", "export the set as it was at this time (RFC 3339); default now")
	format := fs.String("format", "te", "te (TYPE VALUE per line, python-threatexchange local_file), csv or jsonl (with listings)")
	out := fs.String("out", "", "write to this file instead of standard output")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	req := &pb.ExportRequest{}
	if *at != "" {
		t, err := time.Parse(time.RFC3339, *at)
		if err != nil {
			return usageErr("--at: %v", err)
		}
		req.AtUnixMs = t.UnixMilli()
	}
	if *format != "te" && *format != "csv" && *format != "jsonl" {
		return usageErr("--format %q: want te, csv or jsonl", *format)
	}
	c, err := nf.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	cctx, cancel := c.ctx(ctx, 0)
	defer cancel()
	stream, err := c.Export(cctx, req)
	if err != nil {
		return c.callErr(err)
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
	cw := csv.NewWriter(w)
	if *format == "csv" {
		cw.Write([]string{"type", "value", "labels", "members"})
	}
	n := 0
	for {
		rec, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return c.callErr(err)
		}
		sig, err := consortium.SignalFromProto(rec.Signal)
		if err != nil {
			return fmt.Errorf("node sent a bad signal: %w", err)
		}
		n++
		switch *format {
		case "te":
			fmt.Fprintf(w, "%s %s\n", sig.Type, sig.Text())
		case "csv":
			var labels, members []string
			for _, l := range rec.Listings {
				labels = append(labels, l.Labels...)
				members = append(members, l.Member)
			}
			cw.Write([]string{sig.Type.String(), sig.Text(), strings.Join(dedupe(labels), ";"), strings.Join(members, ";")})
		case "jsonl":
			b, _ := json.Marshal(struct {
				Type     string        `json:"type"`
				Value    string        `json:"value"`
				Listings []listingJSON `json:"listings"`
			}{sig.Type.String(), sig.Text(), listingsJSON(rec.Listings)})
			fmt.Fprintln(w, string(b))
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
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
