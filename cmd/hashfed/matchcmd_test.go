package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// TestPrintMatchesLocal: matches in the node's local banks are printed, marked as not shared, and
// count as a match for the exit status, with or without consortium matches.
func TestPrintMatchesLocal(t *testing.T) {
	added := time.Date(2026, 11, 30, 15, 0, 0, 0, time.UTC).UnixMilli()
	local := &pb.LocalMatch{Bank: "ncmec", Signal: fixture.MD5(1).Proto(), Labels: []string{"ncmec-classification:B1"}, ContentId: "ncmec:7-img-1", Note: "n", AddedUnixMs: added}
	shared := &pb.MatchResult{Signal: fixture.MD5(1).Proto(), Listings: []*pb.Listing{{Member: "alpha", TimeUnixMs: added}}}
	cases := []struct {
		name     string
		resps    []*pb.MatchResponse
		matched  bool
		want     []string
		wantNone bool
	}{
		{"local only", []*pb.MatchResponse{{Local: []*pb.LocalMatch{local}}}, true,
			[]string{"LOCAL MATCH md5 " + fixture.MD5(1).Text() + " distance 0 in this node's local bank ncmec (not shared)", "  added 2026-11-30T15:00:00Z: ncmec-classification:B1 content ncmec:7-img-1", "    note: n"}, false},
		{"both", []*pb.MatchResponse{{Matches: []*pb.MatchResult{shared}}, {Local: []*pb.LocalMatch{local}}}, true,
			[]string{"MATCH md5 " + fixture.MD5(1).Text() + " distance 0", "  listed by alpha", "LOCAL MATCH md5"}, false},
		{"neither", []*pb.MatchResponse{{}}, false, []string{"no match"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			e := &env{stdout: &out, stderr: &out}
			if got := printMatches(e, nil, tc.resps); got != tc.matched {
				t.Errorf("matched: got %v, want %v", got, tc.matched)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output %q: want a line with %q", out.String(), w)
				}
			}
			if strings.Contains(out.String(), "no match") != tc.wantNone {
				t.Errorf("output %q: 'no match' shown %v, want %v", out.String(), !tc.wantNone, tc.wantNone)
			}
			out.Reset()
			if got := printMatchesJSON(e, nil, tc.resps); got != tc.matched {
				t.Errorf("JSON matched: got %v, want %v", got, tc.matched)
			}
			if tc.matched && !strings.Contains(out.String(), `"bank": "ncmec"`) {
				t.Errorf("JSON %s: want the local match", out.String())
			}
		})
	}
}

// TestPrintVideoMatchesLocal: for a video, the matches of its MD5 and SHA-256 in the node's local
// banks are printed and counted for the exit status, in text and in JSON, beside the video's own
// matches or alone.
func TestPrintVideoMatchesLocal(t *testing.T) {
	local := &pb.LocalMatch{Bank: "ncmec", Signal: fixture.MD5(1).Proto(), Labels: []string{"ncmec-classification:B1"}}
	video := &pb.MatchVideoResponse{Videos: []*pb.VideoMatch{{Member: "alpha", ContentId: "doorknob", QueryPercent: 100, ComparedPercent: 100, QueryFrames: 3, ComparedFrames: 3}}}
	cases := []struct {
		name    string
		video   *pb.MatchVideoResponse
		resps   []*pb.MatchResponse
		matched bool
		want    []string // in the text output
		json    []string // in the JSON output
	}{
		{"local only", &pb.MatchVideoResponse{}, []*pb.MatchResponse{{Local: []*pb.LocalMatch{local}}, {}}, true,
			[]string{"LOCAL MATCH md5 " + fixture.MD5(1).Text()}, []string{`"bank": "ncmec"`, `"local": true`, `"videos": []`}},
		{"video and local", video, []*pb.MatchResponse{{Local: []*pb.LocalMatch{local}}, {}}, true,
			[]string{"VIDEO MATCH alpha content doorknob", "LOCAL MATCH md5 " + fixture.MD5(1).Text()}, []string{`"bank": "ncmec"`, `"content_id": "doorknob"`}},
		{"video only", video, []*pb.MatchResponse{{}, {HiddenCount: 1, HiddenReasons: []string{"suppressed"}}}, true,
			[]string{"VIDEO MATCH alpha content doorknob", "1 hidden by this node's policy"}, []string{`"hidden_count": 1`, `"matches": []`}},
		{"nothing", &pb.MatchVideoResponse{}, []*pb.MatchResponse{{}, {}}, false, []string{"no match"}, []string{`"videos": []`, `"matches": []`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			e := &env{stdout: &out, stderr: &out}
			if got := printMatches(e, tc.video, tc.resps); got != tc.matched {
				t.Errorf("matched: got %v, want %v", got, tc.matched)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output %q: want a line with %q", out.String(), w)
				}
			}
			if strings.Contains(out.String(), "no match") == tc.matched {
				t.Errorf("output %q: 'no match' shown %v, want %v", out.String(), !tc.matched, !tc.matched)
			}
			out.Reset()
			if got := printMatchesJSON(e, tc.video, tc.resps); got != tc.matched {
				t.Errorf("JSON matched: got %v, want %v", got, tc.matched)
			}
			for _, w := range tc.json {
				if !strings.Contains(out.String(), w) {
					t.Errorf("JSON %s: want %s", out.String(), w)
				}
			}
		})
	}
}
