package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/consortium/vpdq"
	"github.com/hashfed/hashfed/internal/memberclient"
	"github.com/hashfed/hashfed/node"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// videoAdds hashes a video file into its adds: the vpdq parts (frames of quality at least 50,
// repeats left out, 1,500 a part) and the file's MD5 and SHA-256, all under one content id
// (default "sha256:" and the first 16 hex digits of the file's SHA-256).
func videoAdds(ctx context.Context, vf *videoFlags, path string, labels []string, o consortium.AddOptions) ([]*pb.Entry, []string, error) {
	vo, err := vf.options()
	if err != nil {
		return nil, nil, err
	}
	h, err := vf.hashFile(ctx, path, vo)
	if err != nil {
		return nil, nil, err
	}
	if h.Kind != "video" {
		return nil, nil, fmt.Errorf("%s is not a video (%s)", path, strings.TrimSpace(h.Kind+" "+h.Note))
	}
	if o.ContentID == "" {
		o.ContentID = "sha256:" + h.SHA256[:16]
	}
	parts, err := consortium.VideoParts(h.Video.Decoded, vpdq.DefaultQuality)
	if err != nil {
		return nil, nil, err
	}
	if len(parts) == 0 {
		return nil, nil, fmt.Errorf("%s: no frame of quality 50 or more to list", path)
	}
	var entries []*pb.Entry
	var what []string
	for i, p := range parts {
		en, err := consortium.NewVideoAdd(0, p, labels, o)
		if err != nil {
			return nil, nil, err
		}
		entries = append(entries, en)
		what = append(what, fmt.Sprintf("vpdq %s (%s, part %d of %d, %d frames)", consortium.VideoSignal(p).Text(), path, i+1, len(parts), len(p)/consortium.FrameRecordSize))
	}
	for _, s := range []struct{ typ, v string }{{"md5", h.MD5}, {"sha256", h.SHA256}} {
		sig, err := consortium.ParseSignal(s.typ, s.v)
		if err != nil {
			return nil, nil, err
		}
		en, err := consortium.NewAdd(0, sig, labels, o)
		if err != nil {
			return nil, nil, err
		}
		entries = append(entries, en)
		what = append(what, fmt.Sprintf("%s (%s)", sig, path))
	}
	return entries, what, nil
}

// matchFlags are match's video rule flags.
type matchFlags struct {
	quality                       int
	queryPercent, comparedPercent float64
}

func (m *matchFlags) register(fs interface {
	IntVar(*int, string, int, string)
	Float64Var(*float64, string, float64, string)
}) {
	fs.IntVar(&m.quality, "frame-quality", vpdq.DefaultQuality, "video: the lowest frame quality that takes part in matching")
	fs.Float64Var(&m.queryPercent, "query-percent", vpdq.DefaultQueryPercent, "video: the share of the query's frames that must match")
	fs.Float64Var(&m.comparedPercent, "compared-percent", vpdq.DefaultComparedPercent, "video: the share of the listed video's frames that must match")
}

// isFile reports whether path names a regular file (match FILE).
func isFile(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// matchFile hashes any file and matches it: an image by its PDQ, MD5 and SHA-256 (returned as
// queries for the caller), a video by its frames (answered here) and its MD5 and SHA-256, any
// other file by its MD5 and SHA-256.
func matchFile(ctx context.Context, e *env, nf *nodeFlags, vf *videoFlags, mf *matchFlags, path string, radius int, hidden, asJSON bool) (qs []memberclient.ImageSignal, video *pb.MatchVideoResponse, err error) {
	vo, err := vf.options()
	if err != nil {
		return nil, nil, err
	}
	o := vpdq.MatchOptions{Distance: radius, Quality: mf.quality, QueryPercent: mf.queryPercent, ComparedPercent: mf.comparedPercent}
	if err := o.Validate(); err != nil {
		return nil, nil, usageErr("%v", err)
	}
	h, err := vf.hashFile(ctx, path, vo)
	if err != nil {
		return nil, nil, err
	}
	add := func(typ, v string, q int) error {
		sig, err := consortium.ParseSignal(typ, v)
		if err == nil {
			qs = append(qs, memberclient.ImageSignal{Signal: sig, Quality: q})
		}
		return err
	}
	if h.Kind == "image" {
		if err := add("pdq", h.PDQ, *h.Quality); err != nil {
			return nil, nil, err
		}
	}
	if err := add("md5", h.MD5, -1); err != nil {
		return nil, nil, err
	}
	if err := add("sha256", h.SHA256, -1); err != nil {
		return nil, nil, err
	}
	if h.Kind != "video" {
		return qs, nil, nil
	}
	c, err := nf.dial()
	if err != nil {
		return nil, nil, err
	}
	defer c.Close()
	resp, err := c.MatchVideo(ctx, memberclient.VideoRequest(h.Video.Decoded, o, hidden), nf.timeout)
	if err != nil {
		return nil, nil, err
	}
	return qs, resp, nil
}

// printVideoMatches prints the answer to a video query.
func printVideoMatches(e *env, r *pb.MatchVideoResponse) {
	for _, v := range r.GetVideos() {
		fmt.Fprintf(e.stdout, "VIDEO MATCH %s content %s: %.1f %% of the query's %d frames, %.1f %% of the listed video's %d frames\n",
			v.Member, v.ContentId, v.QueryPercent, v.QueryFrames, v.ComparedPercent, v.ComparedFrames)
		for _, p := range v.GetParts() {
			sig, _ := consortium.SignalFromProto(p.Signal)
			for _, l := range p.Listings {
				fmt.Fprintf(e.stdout, "  part %s listed by %s (entry %d, %s): %s\n", sig.Text(), l.Member, l.Index, time.UnixMilli(l.TimeUnixMs).UTC().Format(time.RFC3339), strings.Join(l.Labels, " "))
			}
			if p.Hidden != "" {
				fmt.Fprintf(e.stdout, "  hidden by local policy: %s\n", p.Hidden)
			}
			printProtections(e, "  ", p.Protected)
		}
		const shown = 10
		for i, f := range v.GetFrames() {
			if i == shown {
				fmt.Fprintf(e.stdout, "  ... and %d more matching frames (--json lists all)\n", len(v.Frames)-shown)
				break
			}
			fmt.Fprintf(e.stdout, "  frame at %.3f s matches the listed frame at %.3f s (distance %d)\n", float64(f.QueryMs)/1000, float64(f.ListedMs)/1000, f.Distance)
		}
	}
	for _, im := range r.GetImages() {
		sig, _ := consortium.SignalFromProto(im.Match.Signal)
		fmt.Fprintf(e.stdout, "IMAGE MATCH %s distance %d, frame at %.3f s\n", sig, im.Match.Distance, float64(im.QueryMs)/1000)
		for _, l := range im.Match.Listings {
			fmt.Fprintf(e.stdout, "  listed by %s (entry %d): %s\n", l.Member, l.Index, strings.Join(l.Labels, " "))
		}
		printProtections(e, "  ", im.Match.Protected)
	}
}

// videoJSON is what match --json prints for a video: the video answer, and the answer to the
// file's exact hashes (MD5 and SHA-256): their matches, hidden count and matches in the node's
// local banks, in the shape of an image's answer.
type videoJSON struct {
	node.VideoMatchesJSON
	node.MatchesJSON
}

func printVideoJSON(e *env, r *pb.MatchVideoResponse, exact []*pb.MatchResponse) {
	b, _ := json.MarshalIndent(videoJSON{node.NewVideoMatchesJSON(r), node.NewMatchResponseJSON(exact...)}, "", "  ")
	fmt.Fprintln(e.stdout, string(b))
}
