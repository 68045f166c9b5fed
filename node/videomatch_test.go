package node

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/consortium/vpdq"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"google.golang.org/grpc/codes"
)

func sampleVideo(t *testing.T, name string) []vpdq.Frame {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "consortium", "vpdq", "testdata", "sample-hashes", name+".txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fs, err := vpdq.ParseText(f)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// TestMatchVideoEdges lists a sample video and a still from it, and matches another variant of
// the video over gRPC and HTTP, and the still as an image query.
func TestMatchVideoEdges(t *testing.T) {
	n := startTestNode(t, "alpha", nil)
	c := dialMember(t, n)
	ctx := testCtx(t)
	listed := sampleVideo(t, "chair-19-sd-bar")
	parts, err := consortium.VideoParts(listed, 50)
	if err != nil {
		t.Fatal(err)
	}
	add, err := consortium.NewVideoAdd(0, parts[0], []string{"behaviour:glorification-of-terrorist-acts"}, consortium.AddOptions{ContentID: "video-1"})
	if err != nil {
		t.Fatal(err)
	}
	still := consortium.Signal{Type: consortium.PDQ, Value: listed[100].Hash}
	submit(t, ctx, c, add, addEntry(still))

	query := sampleVideo(t, "chair-20-sd-bar")
	req := &pb.MatchVideoRequest{}
	var body strings.Builder
	body.WriteString(`{"frames":[`)
	for i, f := range query {
		req.Frames = append(req.Frames, &pb.VideoFrame{Pdq: f.Hash[:], Quality: uint32(f.Quality), TimeMs: f.MS})
		if i > 0 {
			body.WriteString(",")
		}
		fmt.Fprintf(&body, `{"pdq":"%s","quality":%d,"timestamp":%.3f}`, f.Hash, f.Quality, f.Seconds())
	}
	body.WriteString(`]}`)
	resp, err := c.MatchVideo(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Videos) != 1 || resp.Videos[0].Member != "alpha" || resp.Videos[0].ContentId != "video-1" || resp.Videos[0].ComparedPercent < 80 || len(resp.Videos[0].Frames) == 0 {
		t.Fatalf("gRPC: got videos %v, want alpha's video-1", resp.Videos)
	}
	if len(resp.Images) != 1 {
		t.Fatalf("gRPC: got %d images, want the still", len(resp.Images))
	}

	code, _, b := httpDo(t, n, http.MethodPost, "/v1/match/video", body.String(), "")
	if code != http.StatusOK {
		t.Fatalf("HTTP: got %d %s", code, b)
	}
	var got VideoMatchesJSON
	if err := json.Unmarshal([]byte(b), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Videos) != 1 || got.Videos[0].ContentID != "video-1" || got.Videos[0].QueryPercent != resp.Videos[0].QueryPercent || len(got.Images) != 1 {
		t.Fatalf("HTTP: got %+v", got)
	}

	// The still as an image query finds the still and the frame of the video it came from.
	ms, err := c.Match(ctx, &pb.MatchRequest{Signal: still.Proto()})
	if err != nil {
		t.Fatal(err)
	}
	frames := 0
	for _, m := range ms.Matches {
		if m.Signal.Type == "vpdq" {
			frames++
			if m.FrameMs == nil || *m.FrameMs != listed[100].MS {
				t.Errorf("frame match: got frame_ms %v, want %d", m.FrameMs, listed[100].MS)
			}
		}
	}
	if len(ms.Matches) != 2 || frames != 1 {
		t.Fatalf("image query: got %v, want the still and one frame", ms.Matches)
	}
	code, _, b = httpDo(t, n, http.MethodGet, "/v1/match?type=pdq&value="+still.Text(), "", "")
	if code != http.StatusOK || !strings.Contains(b, `"frame_seconds":3.333`) {
		t.Fatalf("HTTP image query: got %d %s, want a frame at 3.333 s", code, b)
	}

	// Bad requests.
	bad := []*pb.MatchVideoRequest{
		{Frames: []*pb.VideoFrame{{Pdq: []byte{1, 2}}}},
		{Frames: []*pb.VideoFrame{{Pdq: query[0].Hash[:], Quality: 101}}},
		{Distance: radius(64)},
		{ComparedPercent: new(float64(101))},
	}
	for _, r := range bad {
		_, err := c.MatchVideo(ctx, r)
		wantCode(t, err, codes.InvalidArgument)
	}
	for _, body := range []string{`{"frames":[{"pdq":"xyz"}]}`, `{"frames":[],"distance":99}`, `{"frames":[],"bogus":1}`, `{"frames":[{"pdq":"` + query[0].Hash.String() + `","timestamp":-1}]}`} {
		if code, _, b := httpDo(t, n, http.MethodPost, "/v1/match/video", body, ""); code != http.StatusBadRequest {
			t.Errorf("%s: got %d %s, want 400", body, code, b)
		}
	}
}
