package node

import (
	"strings"
	"testing"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// TestSubmitRefusesFutureTime: an entry's time is its author's clock, and a log's times may not go
// backwards (an entry before the log's last one is refused, and one written anyway has no effect).
// One entry a client stamps far ahead (milliseconds mistaken for microseconds, a clock set to the
// wrong year) would be signed for good: every later entry of the member then carries that time,
// and an add that expires before it is refused as expired, for ever. The node refuses it, entry by
// entry, naming the problem; the other entries of the submission are taken.
func TestSubmitRefusesFutureTime(t *testing.T) {
	n := startTestNode(t, "alpha", nil)
	c := dialMember(t, n)
	now := time.Now()
	ahead := fixture.Add(now.Add(48*time.Hour).UnixMilli(), fixture.PDQ(1))
	micro := fixture.Add(now.UnixMicro(), fixture.PDQ(2))
	fine := fixture.Add(now.Add(-time.Minute).UnixMilli(), fixture.PDQ(3))
	skew := fixture.Add(now.Add(time.Minute).UnixMilli(), fixture.PDQ(4)) // a client's clock a little ahead
	resp, err := c.Submit(testCtx(t), &pb.SubmitRequest{Entries: []*pb.Entry{ahead, micro, fine}})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"ahead of this node's clock", "ahead of this node's clock", ""} {
		got := resp.Results[i].GetError()
		if want == "" && got != "" || want != "" && !strings.Contains(got, want) {
			t.Errorf("entry %d: got error %q, want %q", i, got, want)
		}
	}
	if got := n.store.Size("alpha"); got != 1 {
		t.Fatalf("got %d entries in the log, want 1 (the entry stamped a minute ago)", got)
	}
	for i, e := range []*pb.Entry{skew, fixture.Add(0, fixture.PDQ(5))} {
		resp, err = c.Submit(testCtx(t), &pb.SubmitRequest{Entries: []*pb.Entry{e}})
		if err != nil {
			t.Fatal(err)
		}
		if r := resp.Results[0]; r.GetError() != "" {
			t.Fatalf("entry %d: got %q, want it taken", i, r.GetError())
		}
	}
	// The entry the node stamped carries the node's time, not a time far ahead.
	raw, err := n.store.Entries("alpha", 2, 3, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	e, err := consortium.ParseEntry(raw[0])
	if err != nil {
		t.Fatal(err)
	}
	if got := time.UnixMilli(e.TimeUnixMs); got.After(time.Now().Add(2 * time.Minute)) {
		t.Errorf("the node stamped its entry %v, want about now", got)
	}
}
