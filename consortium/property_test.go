package consortium_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// randomLogs writes n random entries across the logs of a small consortium, valid and invalid
// alike: adds from a small pool of signals (so members overlap), revokes by signal and by index
// (some of others' adds), opinions, proposals to admit or remove, endorsements (some double), and
// now and then a time that goes backwards; and the entries of the roles: certifications (some in
// another's name), withdrawals, referrals, answers (some to referrals no log holds), admissions as
// civil society or authority.
func randomLogs(r *rand.Rand, n int) (*consortium.Genesis, consortium.Logs) {
	g := fixture.Genesis(2, fixture.Founder{ID: "alpha"}, fixture.Founder{ID: "bravo"}, fixture.Founder{ID: "charlie"}, fixture.Founder{ID: "oscar", Observer: true})
	authors := []string{"alpha", "bravo", "charlie", "oscar", "delta", "echo"}
	logs := consortium.Logs{}
	var proposals, certs, refs [][]byte
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
		if r.IntN(8) == 0 {
			author := who
			if r.IntN(4) == 0 {
				author = authors[r.IntN(len(authors))]
			}
			switch r.IntN(5) {
			case 0:
				e = fixture.Certify(t, author, pb.Category(1+r.IntN(4)), sig)
			case 1:
				if len(certs) == 0 {
					continue
				}
				e = fixture.Uncertify(t, certs[r.IntN(len(certs))])
			case 2:
				var to []string
				if r.IntN(2) == 0 {
					to = []string{"alpha", "charlie"}
				}
				e = fixture.Refer(t, author, to, sig)
			case 3:
				ref := fixture.Marshal(fixture.Refer(t, "delta", nil, sig))
				if len(refs) > 0 && r.IntN(4) != 0 {
					ref = refs[r.IntN(len(refs))]
				}
				e = fixture.Answer(t, ref, pb.Outcome(1+r.IntN(2)))
			default:
				role := []pb.Role{pb.Role_ROLE_CIVIL_SOCIETY, pb.Role_ROLE_AUTHORITY}[r.IntN(2)]
				e = fixture.AdmitAs(t, who, uint64(r.IntN(3)), []string{"delta", "echo"}[r.IntN(2)], role)
			}
			raw, err := consortium.MarshalEntry(e)
			if err != nil {
				continue
			}
			switch {
			case e.GetCertify() != nil:
				certs = append(certs, raw)
			case e.GetRefer() != nil:
				refs = append(refs, raw)
			case e.GetPropose() != nil:
				proposals = append(proposals, raw)
			}
			logs[who] = append(logs[who], raw)
			continue
		}
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
				e = fixture.Admit(t, who, epoch, []string{"delta", "echo"}[r.IntN(2)])
			case 1:
				e = fixture.Remove(t, who, epoch, authors[r.IntN(len(authors))])
			default:
				e = fixture.Propose(t, who, epoch, &pb.RosterChange{Change: &pb.RosterChange_SetRole{SetRole: &pb.SetRole{Member: "oscar", Role: pb.Role_ROLE_MEMBER}}})
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
	wantSigs := 0
	for _, sig := range allSignals() {
		for _, l := range s.Listed(sig) {
			want[sig.String()+"/"+l.Member] = true
		}
		if len(s.Listed(sig)) > 0 {
			wantSigs++
		}
	}
	if fmt.Sprint(want) != fmt.Sprint(listed) {
		t.Fatalf("changes reported do not add up to the state:\n changes %v\n   state %v", listed, want)
	}
	// The counters kept as listings change agree with a scan.
	if sigs, ls := s.Counts(); sigs != wantSigs || ls != len(want) {
		t.Fatalf("Counts() = %d signals, %d listings; a scan finds %d, %d", sigs, ls, wantSigs, len(want))
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

// adversarialRosterLogs writes n entries across the logs of a small consortium aimed at the roster
// rules, the way hostile or careless members would: proposals for random epochs (some naming another
// author), copies of proposals and endorsements written into other logs, duplicate entries in one
// log, endorsements that name a proposal of another epoch, endorsements written before the proposal
// they name (a proposal dated later and appended when its time comes), and observers and outsiders
// voting. Adds and opinions make listing visibility depend on the roster.
func adversarialRosterLogs(r *rand.Rand, n int) (*consortium.Genesis, consortium.Logs) {
	g := fixture.Genesis(2, fixture.Founder{ID: "alpha"}, fixture.Founder{ID: "bravo"}, fixture.Founder{ID: "charlie"}, fixture.Founder{ID: "oscar", Observer: true})
	authors := []string{"alpha", "bravo", "charlie", "oscar", "delta", "echo"}
	pick := func() string { return authors[r.IntN(len(authors))] }
	logs := consortium.Logs{}
	type dated struct {
		author string
		time   int64
		raw    []byte
	}
	var proposals [][]byte // every proposal written or still to be written
	var later []dated      // proposals dated in the future, appended to their author's log in time
	clock := int64(0)
	appendTo := func(who string, raw []byte) { logs[who] = append(logs[who], raw) }
	for range n {
		clock += int64(1 + r.IntN(2000))
		t := fixture.At(clock)
		for len(later) > 0 && later[0].time <= t {
			appendTo(later[0].author, later[0].raw)
			later = later[1:]
		}
		who := pick()
		switch k := r.IntN(100); {
		case k < 20:
			appendTo(who, fixture.Marshal(fixture.Add(t, fixture.PDQ(r.IntN(6)))))
		case k < 27:
			appendTo(who, fixture.Marshal(fixture.Opinion(t, fixture.PDQ(r.IntN(6)), pb.Stance(1+r.IntN(4)))))
		case k < 45:
			author := who
			if r.IntN(8) == 0 {
				author = pick() // names another member as author: a forgery, rejected unless equal
			}
			epoch := uint64(r.IntN(3))
			var e *pb.Entry
			switch r.IntN(4) {
			case 0, 1:
				e = fixture.Admit(t, author, epoch, []string{"delta", "echo"}[r.IntN(2)])
			case 2:
				e = fixture.Remove(t, author, epoch, authors[r.IntN(len(authors))])
			default:
				e = fixture.Propose(t, author, epoch, &pb.RosterChange{Change: &pb.RosterChange_SetRole{SetRole: &pb.SetRole{Member: "oscar", Role: pb.Role_ROLE_MEMBER}}})
			}
			if r.IntN(5) == 0 {
				// Dated later: endorsements may name it before it is in its author's log.
				e.TimeUnixMs = t + int64(1+r.IntN(8000))
				raw := fixture.Marshal(e)
				proposals = append(proposals, raw)
				later = append(later, dated{who, e.TimeUnixMs, raw})
				slices.SortStableFunc(later, func(a, b dated) int { return int(a.time - b.time) })
				continue
			}
			raw := fixture.Marshal(e)
			proposals = append(proposals, raw)
			appendTo(who, raw)
			// Copies of the same bytes in other logs, written at once so that their time is valid.
			for r.IntN(3) == 0 {
				appendTo(pick(), raw)
			}
		case k < 85:
			if len(proposals) == 0 {
				continue
			}
			p := proposals[r.IntN(len(proposals))]
			pe, _ := consortium.ParseEntry(p)
			epoch := pe.GetPropose().GetEpoch()
			if r.IntN(5) == 0 {
				epoch = uint64(r.IntN(3)) // possibly not the proposal's epoch
			}
			raw := fixture.Marshal(fixture.Endorse(t, epoch, p))
			appendTo(who, raw)
			if r.IntN(6) == 0 {
				appendTo(pick(), raw) // a copied endorsement is the copier's own vote
			}
		default:
			// A duplicate: the log's last entry again, same bytes.
			if l := logs[who]; len(l) > 0 {
				appendTo(who, l[len(l)-1])
			}
		}
	}
	return g, logs
}

// TestRosterOrderIndependenceUnderAttack checks the roster rules against copied, duplicated,
// misdated and misdirected votes: every interleaving of the same logs, and of the same log
// prefixes, gives one digest, and so does a fresh replay (a restart). It also checks the worlds are
// not vacuous: copies are rejected as such and rosters do change.
func TestRosterOrderIndependenceUnderAttack(t *testing.T) {
	worlds, orders := 40, 8
	if testing.Short() {
		worlds = 10
	}
	copiesRejected, rostersMoved := 0, 0
	for w := range worlds {
		r := rand.New(rand.NewPCG(uint64(w), 10))
		g, logs := adversarialRosterLogs(r, 60+r.IntN(80))
		ref, err := consortium.Replay(g, logs, consortium.ReplayOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := ref.Digest()
		if ref.Roster().Epoch > 0 {
			rostersMoved++
		}
		rs, _ := ref.Rejections()
		for _, rj := range rs {
			if errors.Is(rj.Err, consortium.ErrWrongAuthor) {
				copiesRejected++
			}
		}
		for o := range orders {
			s := interleave(t, r, g, logs, fullSizes(logs))
			if got := s.Digest(); got != want {
				t.Fatalf("world %d order %d: digest %x (epoch %d), want %x (epoch %d)", w, o, got[:6], s.Roster().Epoch, want[:6], ref.Roster().Epoch)
			}
			if got, want := describeChain(s), describeChain(ref); got != want {
				t.Fatalf("world %d order %d: roster chain\n got %s\nwant %s", w, o, got, want)
			}
		}
		for p := range 4 {
			sizes := map[string]uint64{}
			for m, l := range logs {
				sizes[m] = uint64(r.IntN(len(l) + 1))
			}
			pref, err := consortium.Replay(g, logs, consortium.ReplayOptions{Sizes: sizes})
			if err != nil {
				t.Fatal(err)
			}
			for o := range 3 {
				if got := interleave(t, r, g, logs, sizes).Digest(); got != pref.Digest() {
					t.Fatalf("world %d prefix %d order %d: digests differ", w, p, o)
				}
			}
		}
	}
	if copiesRejected == 0 || rostersMoved == 0 {
		t.Errorf("vacuous worlds: %d copies rejected, %d worlds with a roster change; want some of each", copiesRejected, rostersMoved)
	}
	t.Logf("%d worlds: %d copied proposals rejected, %d rosters moved", worlds, copiesRejected, rostersMoved)
}

// describeChain renders every roster of a state's chain: epoch, quorum, members and the proposal
// that made it, with its author.
func describeChain(s *consortium.State) string {
	var b strings.Builder
	for _, r := range s.Chain() {
		fmt.Fprintf(&b, "epoch %d quorum %d proposal %x by %q:", r.Epoch, r.Quorum, r.Proposal[:4], r.Proposer)
		for _, m := range r.Members {
			fmt.Fprintf(&b, " %s/%s", m.ID, consortium.RoleName(m.Role))
		}
		b.WriteString("\n")
	}
	return b.String()
}
