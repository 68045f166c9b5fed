package consortium_test

import (
	"fmt"
	"maps"
	"testing"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// TestDiff: applying Diff(old, cur) to old's listings and opinions, as a listener that followed
// old would, gives exactly cur's, for every pair of prefixes of a log that adds, re-adds, revokes
// and opines; and a state compared with itself gives no change.
func TestDiff(t *testing.T) {
	g := fixture.Genesis(1, fixture.Members("alpha", "bravo")...)
	var alpha [][]byte
	for _, e := range []*pb.Entry{
		fixture.Add(fixture.At(1), fixture.PDQ(1)),
		fixture.Add(fixture.At(2), fixture.PDQ(2)),
		fixture.Opinion(fixture.At(3), fixture.PDQ(2), pb.Stance_STANCE_FALSE_POSITIVE),
		fixture.RevokeSignal(fixture.At(4), fixture.PDQ(1)),
		fixture.Add(fixture.At(5), fixture.PDQ(2)), // a re-add: another index
		fixture.Opinion(fixture.At(6), fixture.PDQ(2), pb.Stance_STANCE_WITHDRAWN),
		fixture.Opinion(fixture.At(7), fixture.PDQ(9), pb.Stance_STANCE_AGREE),
		fixture.Add(fixture.At(8), fixture.PDQ(3)),
	} {
		alpha = append(alpha, fixture.Marshal(e))
	}
	bravo := [][]byte{fixture.Marshal(fixture.Add(fixture.At(1), fixture.PDQ(2)))}
	state := func(n int) *consortium.State {
		st, err := consortium.Replay(g, consortium.Logs{"alpha": alpha[:n], "bravo": bravo}, consortium.ReplayOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	type view struct{ listings, opinions map[string]uint64 }
	viewOf := func(st *consortium.State) view {
		v := view{map[string]uint64{}, map[string]uint64{}}
		for i := range 10 {
			for _, l := range st.Listed(fixture.PDQ(i)) {
				v.listings[fmt.Sprintf("%d %s", i, l.Member)] = l.Index
			}
			for _, o := range st.Opinions(fixture.PDQ(i)) {
				v.opinions[fmt.Sprintf("%d %s", i, o.Author)] = o.Index
			}
		}
		return v
	}
	nameOf := func(c consortium.Change) string {
		for i := range 10 {
			if fixture.PDQ(i) == c.Signal {
				return fmt.Sprintf("%d %s", i, c.Member)
			}
		}
		t.Fatalf("change about an unknown signal: %+v", c)
		return ""
	}
	for from := 0; from <= len(alpha); from++ {
		for to := 0; to <= len(alpha); to++ {
			old, cur := state(from), state(to)
			v, want := viewOf(old), viewOf(cur)
			changes := consortium.Diff(old, cur)
			if from == to && len(changes) != 0 {
				t.Errorf("%d to %d: got changes %+v, want none", from, to, changes)
			}
			for _, c := range changes {
				switch k := nameOf(c); c.Kind {
				case consortium.Listed:
					v.listings[k] = c.Index
				case consortium.Unlisted:
					delete(v.listings, k)
				case consortium.OpinionChanged:
					if c.Stance == pb.Stance_STANCE_WITHDRAWN {
						delete(v.opinions, k)
					} else {
						v.opinions[k] = c.Index
					}
				}
				if id, ok := cur.SignalID(c.Signal); ok && (c.SignalID != id || c.Listers != len(cur.ListedByID(id))) {
					t.Errorf("%d to %d: change %+v does not carry cur's signal id %d and listers", from, to, c, id)
				}
			}
			if !maps.Equal(v.listings, want.listings) || !maps.Equal(v.opinions, want.opinions) {
				t.Errorf("%d to %d: after the changes got %v, want %v (changes %+v)", from, to, v, want, changes)
			}
		}
	}
}
