package node

import (
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
	hidden := 0
	for _, r := range reqs {
		got, err := stream.Recv()
		if err != nil {
			t.Fatalf("recv answer %s: %v", r.Id, err)
		}
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
