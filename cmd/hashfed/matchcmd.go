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

// match runs `hashfed match` and reports whether anything matched: it reads the query, asks the
// node (again, with --wait, until something matches), and prints the answer.
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
		// Any file: an image by its PDQ, a video by its frames (answered here), and both by MD5
		// and SHA-256.
		qs, video, err = matchFile(ctx, e, &nf, &vf, &mf, pos[0], *radius, *hidden, *asJSON)
	} else {
		qs, err = matchQueries(*image, pos)
	}
	if err != nil {
		return false, err
	}
	c, err := nf.dial()
	if err != nil {
		return false, err
	}
	defer c.Close()
	resps, err := matchWaiting(ctx, c, qs, *radius, *hidden, nf.timeout, *wait)
	if err != nil {
		return false, err
	}
	if *asJSON {
		return printMatchesJSON(e, video, resps), nil
	}
	return printMatches(e, video, resps), nil
}

// matchQueries returns the signals to match for --image FILE, or for TYPE VALUE.
func matchQueries(image string, pos []string) ([]memberclient.ImageSignal, error) {
	if image == "" {
		sig, err := signalArgs(pos)
		if err != nil {
			return nil, err
		}
		return []memberclient.ImageSignal{{Signal: sig, Quality: -1}}, nil
	}
	if len(pos) > 0 {
		return nil, usageErr("give either TYPE VALUE or --image, not both")
	}
	h, err := memberclient.HashImageFile(image)
	if err != nil {
		return nil, err
	}
	return h.Signals()
}

// matchWaiting asks the node to match each of qs, one response each, in order. When nothing
// matches it asks again, every 100 ms, until something does or wait has passed.
func matchWaiting(ctx context.Context, c *memberclient.Client, qs []memberclient.ImageSignal, radius int, hidden bool, timeout, wait time.Duration) ([]*pb.MatchResponse, error) {
	deadline := time.Now().Add(wait)
	for {
		var resps []*pb.MatchResponse
		matched := false
		for _, q := range qs {
			resp, err := c.MatchResponse(ctx, memberclient.MatchRequest(q.Signal, q.Quality, radius, hidden), timeout)
			if err != nil {
				return nil, err
			}
			matched = matched || len(resp.Matches)+len(resp.Local) > 0
			resps = append(resps, resp)
		}
		if matched || !time.Now().Before(deadline) {
			return resps, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(min(100*time.Millisecond, time.Until(deadline))):
		}
	}
}

// matchesOf returns the matches of every response, in order, and the matches in the node's local
// banks.
func matchesOf(resps []*pb.MatchResponse) ([]*pb.MatchResult, []*pb.LocalMatch) {
	var all []*pb.MatchResult
	var local []*pb.LocalMatch
	for _, r := range resps {
		all = append(all, r.Matches...)
		local = append(local, r.Local...)
	}
	return all, local
}

// printMatchesJSON prints the answer as JSON, with a video's matches when the query was a video,
// and reports whether anything matched.
func printMatchesJSON(e *env, video *pb.MatchVideoResponse, resps []*pb.MatchResponse) bool {
	all, local := matchesOf(resps)
	if video != nil {
		printVideoJSON(e, video, resps)
		return len(video.Videos)+len(video.Images)+len(all)+len(local) > 0
	}
	b, _ := json.MarshalIndent(node.NewMatchResponseJSON(resps...), "", "  ")
	fmt.Fprintln(e.stdout, string(b))
	return len(all)+len(local) > 0
}

// printMatches prints the answer for people, a video's matches first when the query was a
// video, and reports whether anything matched. The count of matches the node's policy hides
// comes last (not after a video's matches alone).
func printMatches(e *env, video *pb.MatchVideoResponse, resps []*pb.MatchResponse) bool {
	all, local := matchesOf(resps)
	if video != nil {
		printVideoMatches(e, video)
	}
	videoMatched := video != nil && len(video.Videos)+len(video.Images) > 0
	if len(all)+len(local) == 0 && !videoMatched {
		fmt.Fprintln(e.stdout, "no match")
	}
	for _, m := range all {
		printMatch(e, m)
	}
	for _, l := range local {
		printLocalMatch(e, l)
	}
	if res := node.NewMatchResponseJSON(resps...); res.HiddenCount > 0 {
		fmt.Fprintf(e.stdout, "%d hidden by this node's policy (--include-hidden shows them): %s\n", res.HiddenCount, strings.Join(res.HiddenReasons, "; "))
	}
	return videoMatched || len(all)+len(local) > 0
}

// printLocalMatch prints a match in one of the node's local banks: never shared, so it is marked.
func printLocalMatch(e *env, l *pb.LocalMatch) {
	sig, _ := consortium.SignalFromProto(l.Signal)
	fmt.Fprintf(e.stdout, "LOCAL MATCH %s distance %d in this node's local bank %s (not shared)\n", sig, l.Distance, l.Bank)
	extra := ""
	if l.ContentId != "" {
		extra = " content " + l.ContentId
	}
	fmt.Fprintf(e.stdout, "  added %s: %s%s\n", time.UnixMilli(l.AddedUnixMs).UTC().Format(time.RFC3339), strings.Join(l.Labels, " "), extra)
	if l.Note != "" {
		fmt.Fprintf(e.stdout, "    note: %s\n", l.Note)
	}
}

// printMatch prints one match: the signal, why it is hidden or protected, its listings and the
// members' opinions.
func printMatch(e *env, m *pb.MatchResult) {
	sig, _ := consortium.SignalFromProto(m.Signal)
	fmt.Fprintf(e.stdout, "MATCH %s distance %d\n", sig, m.Distance)
	if m.Hidden != "" {
		fmt.Fprintf(e.stdout, "  hidden by local policy: %s\n", m.Hidden)
	}
	printProtections(e, "  ", m.Protected)
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

// printProtections prints the certifications that protect a match, and what that means.
func printProtections(e *env, indent string, ps []*pb.Protection) {
	for _, p := range ps {
		printProtection(e, indent, p)
	}
	if len(ps) > 0 {
		fmt.Fprintf(e.stdout, "%s→ review before any removal: the match is certified as protected\n", indent)
	}
}
