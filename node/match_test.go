package node

import (
	"context"
	"fmt"
	"testing"

	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"google.golang.org/protobuf/proto"
)

// TestMatchStreamAnswersAsMatch: every answer of a MatchStream, where queued PDQ queries are
// answered together, is exactly the unary Match's, hidden counts and reasons included, on a node
// whose policy hides a disputed signal.
func TestMatchStreamAnswersAsMatch(t *testing.T) {
	n := startTestNode(t, "alpha", func(c *Config) { c.Store.DisputeThreshold = 1 })
	c := dialMember(t, n)
	ctx := testCtx(t)
	disputed, kept := fixture.PDQ(1), fixture.PDQ(2)
	submit(t, ctx, c, addEntry(disputed), addEntry(kept))
	submit(t, ctx, c, fixture.Opinion(0, disputed, pb.Stance_STANCE_FALSE_POSITIVE))
	var reqs []*pb.MatchRequest
	for i := range 24 {
		sig := disputed
		if i%3 == 0 {
			sig = kept
		}
		r := &pb.MatchRequest{Id: fmt.Sprint(i), Signal: flipBits(sig, i).Proto()}
		if i >= 20 {
			r.IncludeHidden = true
		}
		reqs = append(reqs, r)
	}
	answers := matchStreamAll(t, ctx, c, reqs)
	hidden := 0
	for i, r := range reqs {
		got := answers[i]
		want, err := c.Match(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		hidden += int(want.HiddenCount)
		if !proto.Equal(got, want) {
			t.Errorf("query %s: got %v, want %v", r.Id, got, want)
		}
	}
	if hidden == 0 {
		t.Error("no answer counted a hidden match: the test checks nothing")
	}
}

// matchStreamAll sends reqs on one MatchStream, ends it, and returns the answers, in order (queries
// sent at once are answered together: see matchRequests).
func matchStreamAll(t *testing.T, ctx context.Context, c pb.MemberServiceClient, reqs []*pb.MatchRequest) []*pb.MatchResponse {
	t.Helper()
	stream, err := c.MatchStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reqs {
		if err := stream.Send(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	out := make([]*pb.MatchResponse, len(reqs))
	for i, r := range reqs {
		if out[i], err = stream.Recv(); err != nil {
			t.Fatalf("recv answer %s: %v", r.Id, err)
		}
	}
	return out
}
