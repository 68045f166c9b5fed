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
	fs := flagSet(e, "match", "TYPE VALUE | FILE | --image FILE [--radius R] [--json]")
	var nf nodeFlags
	nf.register(fs, e)
	image := fs.String("image", "", "an image file to hash and match (its PDQ, MD5 and SHA-256)")
	radius := fs.Int("radius", 31, "PDQ Hamming radius, 0 to 63")
	hidden := fs.Bool("include-hidden", false, "also show matches the node's policy hides")
	asJSON := fs.Bool("json", false, "print JSON")
	var vf videoFlags
	vf.register(fs)
	var mf matchFlags
	mf.register(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if *radius < 0 || *radius > 63 {
		return usageErr("--radius %d: want 0 to 63", *radius)
	}
	var qs []memberclient.ImageSignal
	var video *pb.MatchVideoResponse
	if *image == "" && len(pos) == 1 && isFile(pos[0]) {
		// Any file: an image by its PDQ, a video by its frames, and both by MD5 and SHA-256.
		if qs, video, err = matchFile(ctx, e, &nf, &vf, &mf, pos[0], *radius, *hidden, *asJSON); err != nil {
			return err
		}
	} else if *image != "" {
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
	for _, q := range qs {
		ms, err := c.Match(ctx, memberclient.MatchRequest(q.Signal, q.Quality, *radius, *hidden), nf.timeout)
		if err != nil {
			return err
		}
		all = append(all, ms...)
	}
	if video != nil && *asJSON {
		printVideoJSON(e, video, all)
		return nil
	}
	if *asJSON {
		b, _ := json.MarshalIndent(node.NewMatchesJSON(all), "", "  ")
		fmt.Fprintln(e.stdout, string(b))
		return nil
	}
	if video != nil {
		printVideoMatches(e, video)
		if len(video.Videos)+len(video.Images) > 0 && len(all) == 0 {
			return nil
		}
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
