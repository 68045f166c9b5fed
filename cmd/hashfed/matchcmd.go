package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/memberclient"
	"github.com/hashfed/hashfed/node"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// runMatch exits like grep: 0 when something matched, 1 when nothing did, 2 on an error.
func runMatch(ctx context.Context, e *env, args []string) error {
	matched, err := match(ctx, e, args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return err
	case err != nil:
		return &exitError{code: 2, err: err}
	case !matched:
		return &exitError{code: 1}
	}
	return nil
}

func match(ctx context.Context, e *env, args []string) (bool, error) {
	fs := flagSet(e, "match", "TYPE VALUE | FILE | --image FILE [--radius R] [--json] [--wait D]\n\n"+
		"Exit status: 0 when something matched, 1 when nothing did, 2 on an error (like grep).")
	var nf nodeFlags
	nf.register(fs, e)
	image := fs.String("image", "", "an image file to hash and match (its PDQ, MD5 and SHA-256)")
	radius := fs.Int("radius", 31, "PDQ Hamming radius, 0 to 63")
	hidden := fs.Bool("include-hidden", false, "also show matches the node's policy hides")
	asJSON := fs.Bool("json", false, "print JSON")
	wait := fs.Duration("wait", 0, "when nothing matches, ask again until something does or this long has passed (an entry just added elsewhere takes a moment to reach this node)")
	var vf videoFlags
	vf.register(fs)
	var mf matchFlags
	mf.register(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return false, err
	}
	if *radius < 0 || *radius > 63 {
		return false, usageErr("--radius %d: want 0 to 63", *radius)
	}
	if *wait < 0 {
		return false, usageErr("--wait %v: want a duration like 10s", *wait)
	}
	var qs []memberclient.ImageSignal
	var video *pb.MatchVideoResponse
	if *image == "" && len(pos) == 1 && isFile(pos[0]) {
		// Any file: an image by its PDQ, a video by its frames, and both by MD5 and SHA-256.
		if qs, video, err = matchFile(ctx, e, &nf, &vf, &mf, pos[0], *radius, *hidden, *asJSON); err != nil {
			return false, err
		}
	} else if *image != "" {
		if len(pos) > 0 {
			return false, usageErr("give either TYPE VALUE or --image, not both")
		}
		h, err := memberclient.HashImageFile(*image)
		if err != nil {
			return false, err
		}
		if qs, err = h.Signals(); err != nil {
			return false, err
		}
	} else {
		sig, err := signalArgs(pos)
		if err != nil {
			return false, err
		}
		qs = append(qs, memberclient.ImageSignal{Signal: sig, Quality: -1})
	}
	c, err := nf.dial()
	if err != nil {
		return false, err
	}
	defer c.Close()
	var all []*pb.MatchResult
	var resps []*pb.MatchResponse
	deadline := time.Now().Add(*wait)
	for {
		resps = resps[:0]
		for _, q := range qs {
			resp, err := c.MatchResponse(ctx, memberclient.MatchRequest(q.Signal, q.Quality, *radius, *hidden), nf.timeout)
			if err != nil {
				return false, err
			}
			all = append(all, resp.Matches...)
			resps = append(resps, resp)
		}
		if len(all) > 0 || !time.Now().Before(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(min(100*time.Millisecond, time.Until(deadline))):
		}
	}
	if video != nil && *asJSON {
		printVideoJSON(e, video, all)
		return len(video.Videos)+len(video.Images)+len(all) > 0, nil
	}
	res := node.NewMatchResponseJSON(resps...)
	if *asJSON {
		b, _ := json.MarshalIndent(res, "", "  ")
		fmt.Fprintln(e.stdout, string(b))
		return len(all) > 0, nil
	}
	if video != nil {
		printVideoMatches(e, video)
		if len(video.Videos)+len(video.Images) > 0 && len(all) == 0 {
			return true, nil
		}
	}
	if res.HiddenCount > 0 {
		defer fmt.Fprintf(e.stdout, "%d hidden by this node's policy (--include-hidden shows them): %s\n", res.HiddenCount, strings.Join(res.HiddenReasons, "; "))
	}
	if len(all) == 0 {
		fmt.Fprintln(e.stdout, "no match")
		return false, nil
	}
	for _, m := range all {
		sig, _ := consortium.SignalFromProto(m.Signal)
		fmt.Fprintf(e.stdout, "MATCH %s distance %d\n", sig, m.Distance)
		if m.Hidden != "" {
			fmt.Fprintf(e.stdout, "  hidden by local policy: %s\n", m.Hidden)
		}
		for _, p := range m.Protected {
			printProtection(e, "  ", p)
		}
		if len(m.Protected) > 0 {
			fmt.Fprintln(e.stdout, "  → review before any removal: the match is certified as protected")
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
	return true, nil
}
