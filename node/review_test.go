package node

import (
	"strings"
	"testing"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"github.com/hashfed/hashfed/store"
)

// A reviewer's verdict, published in one action, reaches every node as an opinion; the verdict
// and the reviewer's name stay local.
func TestReviewPublishesOpinion(t *testing.T) {
	c := newCluster(t, 2, "alpha", "bravo", "charlie")
	a, b, ch := c.start("alpha"), c.start("bravo"), c.start("charlie")
	good, bad := fixture.PDQ(1), fixture.PDQ(2)
	submitOK(t, a, fixture.Add(fixture.At(0), good), fixture.Add(fixture.At(0), bad))
	waitFor(t, 10*time.Second, "bravo holds alpha's adds", func() bool { return len(matches(b, bad)) == 1 })
	if _, err := b.Review(t.Context(), good, "rev@bravo", store.Confirm, "the listed video", true); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Review(t.Context(), bad, "rev@bravo", store.Deconfirm, "a news report", true); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Review(t.Context(), bad, "", store.Deconfirm, "", true); err == nil {
		t.Error("a review without a reviewer was accepted")
	}
	want := []struct {
		sig    consortium.Signal
		stance pb.Stance
		text   string
	}{
		{good, pb.Stance_STANCE_AGREE, "confirmed in review: the listed video"},
		{bad, pb.Stance_STANCE_FALSE_POSITIVE, "deconfirmed in review: a news report"},
	}
	for _, n := range []*Node{a, ch} {
		for _, w := range want {
			waitFor(t, 10*time.Second, n.id+" sees bravo's opinion on "+w.sig.String(), func() bool {
				m, ok, err := n.store.Lookup(w.sig)
				return err == nil && ok && len(m.Opinions) == 1 && m.Opinions[0].Author == "bravo" &&
					m.Opinions[0].Stance == w.stance && m.Opinions[0].Text == w.text
			})
		}
		// The verdict is bravo's local policy: the other nodes still match the deconfirmed signal.
		if len(matches(n, bad)) != 1 {
			t.Errorf("%s: the deconfirmed signal no longer matches there", n.id)
		}
	}
	if len(matches(b, bad)) != 0 {
		t.Error("bravo still matches the signal its reviewer deconfirmed")
	}
	ms, _ := b.store.MatchSignal(bad, store.Query{Radius: 0, Quality: -1, IncludeHidden: true})
	if len(ms) != 1 || !strings.Contains(ms[0].Hidden, "suppressed by rev@bravo") {
		t.Errorf("bravo's hidden match: got %+v, want the suppression explained", ms)
	}
	for _, n := range c.nodes {
		if n != b && len(n.store.Policy().Reviews) != 0 {
			t.Errorf("%s holds bravo's reviews", n.id)
		}
	}
}
