package node

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"google.golang.org/protobuf/proto"
)

// FuzzMatchVideo feeds hostile video queries to the gRPC handler (which=0, raw a
// MatchVideoRequest) and to POST /v1/match/video (which=1, raw the JSON body). No input may panic
// or hang; a refusal is an error, never a partial answer.
func FuzzMatchVideo(f *testing.F) {
	n := fuzzTarget(f)
	d := uint32(31)
	h := fixture.PDQ(4).Value
	b, _ := proto.Marshal(&pb.MatchVideoRequest{Frames: []*pb.VideoFrame{{Pdq: h[:], Quality: 90, TimeMs: 1000}}, Distance: &d})
	f.Add(byte(0), b)
	f.Add(byte(1), []byte(`{"frames":[{"pdq":"`+fixture.PDQ(4).Text()+`","quality":90,"timestamp":1.5}],"distance":31}`))
	f.Add(byte(1), []byte(`{"frames":[{"pdq":"00","timestamp":-1}],"compared_percent":1e308}`))
	srv := &memberServer{n: n}
	f.Fuzz(func(t *testing.T, which byte, raw []byte) {
		if which%2 == 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			var req pb.MatchVideoRequest
			if proto.Unmarshal(raw, &req) == nil {
				if resp, err := srv.MatchVideo(ctx, &req); err != nil && resp != nil {
					t.Fatalf("an error with an answer: %v", err)
				}
			}
			return
		}
		r := httptest.NewRequest(http.MethodPost, "/v1/match/video", strings.NewReader(string(raw)))
		w := httptest.NewRecorder()
		n.handleMatchVideo(w, r)
		if w.Code != http.StatusOK && w.Code != http.StatusBadRequest && w.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("got status %d: %s", w.Code, w.Body)
		}
	})
}
