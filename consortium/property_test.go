package consortium_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// randomLogs writes n random entries across the logs of a small consortium, valid and invalid
// alike: adds from a small pool of signals (so members overlap), revokes by signal and by index
// (some of others' adds), opinions, proposals to admit or remove, endorsements (some double), and
// now and then a time that goes backwards.
func randomLogs(r *rand.Rand, n int) (*consortium.Genesis, consortium.Logs) {
	g := fixture.Genesis(2, fixture.Founder{ID: "alpha"}, fixture.Founder{ID: "bravo"}, fixture.Founder{ID: "charlie"}, fixture.Founder{ID: "oscar", Observer: true})
	authors := []string{"alpha", "bravo", "charlie", "oscar", "delta", "echo"}
	logs := consortium.Logs{}
	var proposals [][]byte
	clock := int64(0)
	for i := 0; i < n; i++ {
		who := authors[r.IntN(len(authors))]
		clock += int64(r.IntN(3000))
		t := fixture.At(clock)
		if r.IntN(25) == 0 {
			t -= 5000
		}
		sig := fixture.PDQ(r.IntN(12))
		if r.IntN(3) == 0 {
			sig = fixture.MD5(r.IntN(6))
		}
		var e *pb.Entry
		switch k := r.IntN(100); {
		case k < 45:
			e = fixture.Add(t, sig, "behaviour:threat-incitement")
			if r.IntN(5) == 0 {
				e.GetAdd().ExpiresUnixMs = t + int64(r.IntN(100000)) + 1
			}
		case k < 60:
			e = fixture.RevokeSignal(t, sig)
		case k < 70:
			if len(logs[who]) == 0 {
				continue
			}
			e = fixture.RevokeIndex(t, uint64(r.IntN(len(logs[who]))))
		case k < 82:
			e = fixture.Opinion(t, sig, pb.Stance(1+r.IntN(5)))
		case k < 88:
			epoch := uint64(r.IntN(3))
			switch r.IntN(3) {
			case 0:
				e = fixture.Admit(t, epoch, []string{"delta", "echo"}[r.IntN(2)])
			case 1:
				e = fixture.Remove(t, epoch, authors[r.IntN(len(authors))])
			default:
				e = fixture.Propose(t, epoch, &pb.RosterChange{Change: &pb.RosterChange_SetRole{SetRole: &pb.SetRole{Member: "oscar", Role: pb.Role_ROLE_MEMBER}}})
			}
		default:
			if len(proposals) == 0 {
				continue
			}
			p := proposals[r.IntN(len(proposals))]
			pe, _ := consortium.ParseEntry(p)
			e = fixture.Endorse(t, pe.GetPropose().Epoch, p)
		}
		raw, err := consortium.MarshalEntry(e)
		if err != nil {
			continue
		}
		if e.GetPropose() != nil {
			proposals = append(proposals, raw)
		}
		logs[who] = append(logs[who], raw)
	}
	return g, logs
}

// interleave applies the first sizes[m] entries of every log in a random interleaving and checks
// that the reported changes add up to the final listings.
func interleave(t *testing.T, r *rand.Rand, g *consortium.Genesis, logs consortium.Logs, sizes map[string]uint64) *consortium.State {
	t.Helper()
	s := consortium.NewState(g, logs.Reader())
	listed := map[string]bool{}
	s.OnChange(func(c consortium.Change) {
		key := c.Signal.String() + "/" + c.Member
		switch c.Kind {
		case consortium.Listed:
			listed[key] = true
		case consortium.Unlisted:
			delete(listed, key)
		}
	})
	next := map[string]uint64{}
	var pending []string
	for m := range logs {
		if sizes[m] > 0 {
			pending = append(pending, m)
		}
	}
	slices.Sort(pending)
	for len(pending) > 0 {
		i := r.IntN(len(pending))
		m := pending[i]
		if err := s.Apply(m, next[m], logs[m][next[m]]); err != nil {
			t.Fatal(err)
		}
		next[m]++
		if next[m] == sizes[m] {
			pending = slices.Delete(pending, i, i+1)
		}
	}
	want := map[string]bool{}
	for _, sig := range allSignals() {
		for _, l := range s.Listed(sig) {
			want[sig.String()+"/"+l.Member] = true
		}
	}
	if fmt.Sprint(want) != fmt.Sprint(listed) {
		t.Fatalf("changes reported do not add up to the state:\n changes %v\n   state %v", listed, want)
	}
	return s
}

func allSignals() []consortium.Signal {
	var out []consortium.Signal
	for i := 0; i < 12; i++ {
		out = append(out, fixture.PDQ(i))
	}
	for i := 0; i < 6; i++ {
		out = append(out, fixture.MD5(i))
	}
	return out
}

func fullSizes(logs consortium.Logs) map[string]uint64 {
	out := map[string]uint64{}
	for m, l := range logs {
		out[m] = uint64(len(l))
	}
	return out
}

// TestReplayOrderIndependence is the property that makes the federation work: any interleaving of
// the same logs, and of the same log prefixes, gives the identical state digest.
func TestReplayOrderIndependence(t *testing.T) {
	worlds, orders := 30, 12
	if testing.Short() {
		worlds = 8
	}
	for w := 0; w < worlds; w++ {
		r := rand.New(rand.NewPCG(uint64(w), 7))
		g, logs := randomLogs(r, 150+r.IntN(150))
		ref, err := consortium.Replay(g, logs, consortium.ReplayOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := ref.Digest()
		for o := 0; o < orders; o++ {
			if got := interleave(t, r, g, logs, fullSizes(logs)).Digest(); got != want {
				t.Fatalf("world %d order %d: digest %x, want %x", w, o, got, want)
			}
		}
		// Prefixes: a random set of log sizes replays to one digest in any order too.
		for p := 0; p < 4; p++ {
			sizes := map[string]uint64{}
			for m, l := range logs {
				sizes[m] = uint64(r.IntN(len(l) + 1))
			}
			pref, err := consortium.Replay(g, logs, consortium.ReplayOptions{Sizes: sizes})
			if err != nil {
				t.Fatal(err)
			}
			for o := 0; o < 3; o++ {
				if got := interleave(t, r, g, logs, sizes).Digest(); got != pref.Digest() {
					t.Fatalf("world %d prefix %d order %d: digests differ", w, p, o)
				}
			}
		}
	}
}

func TestPointInTime(t *testing.T) {
	w := newWorld(t, 2, fixture.Members("alpha", "bravo", "charlie")...)
	sig := fixture.PDQ(3)
	w.append("alpha", fixture.Add(fixture.At(1000), sig))
	w.append("bravo", fixture.Add(fixture.At(2000), sig))
	w.append("alpha", fixture.RevokeSignal(fixture.At(3000), sig))
	w.append("charlie", fixture.Add(fixture.At(4000), fixture.PDQ(4)))
	at := func(ms int64) *consortium.State {
		s, err := consortium.Replay(w.g, w.logs, consortium.ReplayOptions{Until: fixture.Epoch.Add(time.Duration(ms) * time.Millisecond)})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	tests := []struct {
		ms   int64
		want string
	}{{500, ""}, {1000, "alpha"}, {2500, "alpha,bravo"}, {3000, "bravo"}, {9999, "bravo"}}
	for _, tc := range tests {
		if got := listers(at(tc.ms), sig); got != tc.want {
			t.Errorf("at %d ms: got %q, want %q", tc.ms, got, tc.want)
		}
	}
	// The state at a time equals the state over the prefixes that time selects.
	byTime := at(2500)
	byPrefix, _ := consortium.Replay(w.g, w.logs, consortium.ReplayOptions{Sizes: map[string]uint64{"alpha": 1, "bravo": 1, "charlie": 0}})
	if byTime.Digest() != byPrefix.Digest() {
		t.Error("state by time differs from the state over the same prefixes")
	}
	if at(9999).Digest() != w.state().Digest() {
		t.Error("state at the end differs from the current state")
	}
}
