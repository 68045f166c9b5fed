package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/memberclient"
	"github.com/hashfed/hashfed/node"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

func runMatch(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "match", "TYPE VALUE | --image FILE [--radius R] [--json]")
	var nf nodeFlags
	nf.register(fs, e)
	image := fs.String("image", "", "an image file to hash and match (its PDQ, MD5 and SHA-256)")
	radius := fs.Int("radius", 31, "PDQ Hamming radius, 0 to 63")
	hidden := fs.Bool("include-hidden", false, "also show matches the node's policy hides")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if *radius < 0 || *radius > 63 {
		return usageErr("--radius %d: want 0 to 63", *radius)
	}
	var qs []memberclient.ImageSignal
	if *image != "" {
		if len(pos) > 0 {
			return usageErr("give either TYPE VALUE or --image, not both")
		}
		h, err := memberclient.HashImageFile(*image)
		if err != nil {
			return err
		}
		if qs, err = h.Signals(); err != nil {
			return err
		}
	} else {
		sig, err := signalArgs(pos)
		if err != nil {
			return err
		}
		qs = append(qs, memberclient.ImageSignal{Signal: sig, Quality: -1})
	}
	c, err := nf.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	var all []*pb.MatchResult
	var resps []*pb.MatchResponse
	for _, q := range qs {
		resp, err := c.MatchResponse(ctx, memberclient.MatchRequest(q.Signal, q.Quality, *radius, *hidden), nf.timeout)
		if err != nil {
			return err
		}
		all = append(all, resp.Matches...)
		resps = append(resps, resp)
	}
	res := node.NewMatchResponseJSON(resps...)
	if *asJSON {
		b, _ := json.MarshalIndent(res, "", "  ")
		fmt.Fprintln(e.stdout, string(b))
		return nil
	}
	if res.HiddenCount > 0 {
		defer fmt.Fprintf(e.stdout, "%d hidden by this node's policy (--include-hidden shows them): %s\n", res.HiddenCount, strings.Join(res.HiddenReasons, "; "))
	}
	if len(all) == 0 {
		fmt.Fprintln(e.stdout, "no match")
		return nil
	}
	for _, m := range all {
		sig, _ := consortium.SignalFromProto(m.Signal)
		fmt.Fprintf(e.stdout, "MATCH %s distance %d\n", sig, m.Distance)
		if m.Hidden != "" {
			fmt.Fprintf(e.stdout, "  hidden by local policy: %s\n", m.Hidden)
		}
		for _, l := range m.Listings {
			extra := ""
			if l.ContentId != "" {
				extra += " content " + l.ContentId
			}
			if l.ExpiresUnixMs != 0 {
				extra += " expires " + time.UnixMilli(l.ExpiresUnixMs).UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(e.stdout, "  listed by %s (entry %d, %s): %s%s\n", l.Member, l.Index, time.UnixMilli(l.TimeUnixMs).UTC().Format(time.RFC3339), strings.Join(l.Labels, " "), extra)
			if l.Note != "" {
				fmt.Fprintf(e.stdout, "    note: %s\n", l.Note)
			}
		}
		for _, o := range m.Opinions {
			fmt.Fprintf(e.stdout, "  opinion of %s: %s %s\n", o.Author, consortium.StanceName(o.Stance), o.Text)
		}
	}
	return nil
}
