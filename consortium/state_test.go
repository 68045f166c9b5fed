package consortium_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// world is a consortium under test: a genesis and each member's log.
type world struct {
	t    *testing.T
	g    *consortium.Genesis
	logs consortium.Logs
	now  int64
}

func newWorld(t *testing.T, quorum int, founders ...fixture.Founder) *world {
	return &world{t: t, g: fixture.Genesis(quorum, founders...), logs: consortium.Logs{}}
}

func (w *world) tick() int64 { w.now += 1000; return fixture.At(w.now) }

// append appends an encoded entry to member's log and returns its index and bytes.
func (w *world) append(member string, e *pb.Entry) (uint64, []byte) {
	raw := fixture.Marshal(e)
	w.logs[member] = append(w.logs[member], raw)
	return uint64(len(w.logs[member]) - 1), raw
}

// submit checks an entry against the current state as a node would, then appends it.
func (w *world) submit(member string, e *pb.Entry) error {
	w.t.Helper()
	raw := fixture.Marshal(e)
	if err := w.state().Check(member, raw); err != nil {
		return err
	}
	w.append(member, e)
	return nil
}

// submitRaw checks entry bytes against the current state as a node would, then appends them.
func (w *world) submitRaw(member string, raw []byte) error {
	w.t.Helper()
	if err := w.state().Check(member, raw); err != nil {
		return err
	}
	w.logs[member] = append(w.logs[member], raw)
	return nil
}

func (w *world) state() *consortium.State {
	w.t.Helper()
	s, err := consortium.Replay(w.g, w.logs, consortium.ReplayOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	return s
}

func listers(s *consortium.State, sig consortium.Signal) string {
	var ids []string
	for _, l := range s.Listed(sig) {
		ids = append(ids, l.Member)
	}
	return strings.Join(ids, ",")
}

func mustRejection(t *testing.T, s *consortium.State, member string, index uint64, want error) {
	t.Helper()
	rs, _ := s.Rejections()
	for _, r := range rs {
		if r.Member == member && r.Index == index {
			if !errors.Is(r.Err, want) {
				t.Errorf("rejection of %s/%d: got %v, want %v", member, index, r.Err, want)
			}
			return
		}
	}
	t.Errorf("entry %s/%d was not rejected (want %v); rejections: %v", member, index, want, rs)
}

func TestAddRevokeOpinion(t *testing.T) {
	w := newWorld(t, 2, fixture.Members("alpha", "bravo", "charlie")...)
	a, b := fixture.PDQ(1), fixture.MD5(2)
	w.append("alpha", fixture.Add(w.tick(), a, "behaviour:threat-incitement"))
	w.append("alpha", fixture.Add(w.tick(), b))
	w.append("bravo", fixture.Add(w.tick(), a))
	w.append("charlie", fixture.Opinion(w.tick(), a, pb.Stance_STANCE_FALSE_POSITIVE))
	s := w.state()
	if got := listers(s, a); got != "alpha,bravo" {
		t.Errorf("listers of a: got %q, want alpha,bravo", got)
	}
	if ops := s.Opinions(a); len(ops) != 1 || ops[0].Author != "charlie" || ops[0].Stance != pb.Stance_STANCE_FALSE_POSITIVE {
		t.Errorf("opinions: got %+v", ops)
	}
	if sigs, ls := s.Counts(); sigs != 2 || ls != 3 {
		t.Errorf("counts: got %d signals %d listings, want 2 and 3", sigs, ls)
	}
	// alpha revokes a by signal and b by index.
	w.append("alpha", fixture.RevokeSignal(w.tick(), a))
	w.append("alpha", fixture.RevokeIndex(w.tick(), 1))
	w.append("charlie", fixture.Opinion(w.tick(), a, pb.Stance_STANCE_WITHDRAWN))
	s = w.state()
	if got := listers(s, a); got != "bravo" {
		t.Errorf("after revoke: listers of a: got %q, want bravo", got)
	}
	if got := listers(s, b); got != "" {
		t.Errorf("after revoke by index: listers of b: got %q, want none", got)
	}
	if ops := s.Opinions(a); len(ops) != 0 {
		t.Errorf("withdrawn opinion still there: %+v", ops)
	}
	// Re-adding replaces the listing: the newest add is in force.
	idx, _ := w.append("bravo", fixture.Add(w.tick(), a, "lang:en"))
	if l := w.state().Listed(a); len(l) != 1 || l[0].Index != idx {
		t.Errorf("re-add: got %+v, want bravo at %d", l, idx)
	}
	// The listing in force: bravo's newest add of a; none for alpha (revoked) or an unknown signal.
	s = w.state()
	if l, ok := s.ListingInForce("bravo", a); !ok || l.Index != idx || l.Member != "bravo" {
		t.Errorf("ListingInForce(bravo, a): got %+v %v, want bravo at %d", l, ok, idx)
	}
	for _, tc := range []struct {
		member string
		sig    consortium.Signal
	}{{"alpha", a}, {"alpha", b}, {"bravo", fixture.MD5(9)}, {"zulu", a}} {
		if l, ok := s.ListingInForce(tc.member, tc.sig); ok {
			t.Errorf("ListingInForce(%s, %s): got %+v, want none", tc.member, tc.sig, l)
		}
	}
}

func TestRules(t *testing.T) {
	tests := []struct {
		name string
		run  func(w *world) error
		want error
		msg  string
	}{
		{"revoke of another member's signal", func(w *world) error {
			w.append("alpha", fixture.Add(w.tick(), fixture.PDQ(1)))
			return w.submit("bravo", fixture.RevokeSignal(w.tick(), fixture.PDQ(1)))
		}, consortium.ErrNotPermitted, "revokes only its own adds"},
		{"revoke by index of another member's add", func(w *world) error {
			w.append("alpha", fixture.Add(w.tick(), fixture.PDQ(1)))
			w.append("bravo", fixture.Opinion(w.tick(), fixture.PDQ(1), pb.Stance_STANCE_AGREE))
			return w.submit("bravo", fixture.RevokeIndex(w.tick(), 0)) // bravo's own entry 0 is an opinion
		}, consortium.ErrInvalidEntry, "not a valid add"},
		{"revoke of a later index", func(w *world) error {
			return w.submit("alpha", fixture.RevokeIndex(w.tick(), 5))
		}, consortium.ErrInvalidEntry, "not before it"},
		{"revoke twice", func(w *world) error {
			w.append("alpha", fixture.Add(w.tick(), fixture.PDQ(1)))
			w.append("alpha", fixture.RevokeSignal(w.tick(), fixture.PDQ(1)))
			return w.submit("alpha", fixture.RevokeIndex(w.tick(), 0))
		}, consortium.ErrNotPermitted, "does not list"},
		{"entry by a non-member", func(w *world) error {
			return w.submit("mallory", fixture.Add(w.tick(), fixture.PDQ(1)))
		}, consortium.ErrUnknownMember, "mallory"},
		{"add by an observer", func(w *world) error {
			return w.submit("oscar", fixture.Add(w.tick(), fixture.PDQ(1)))
		}, consortium.ErrNotPermitted, "observers cannot add"},
		{"opinion by an observer is fine", func(w *world) error {
			return w.submit("oscar", fixture.Opinion(w.tick(), fixture.PDQ(1), pb.Stance_STANCE_OUTDATED))
		}, nil, ""},
		{"expired add", func(w *world) error {
			e := fixture.Add(w.tick(), fixture.PDQ(1))
			e.GetAdd().ExpiresUnixMs = e.TimeUnixMs - 1
			_, err := consortium.MarshalEntry(e)
			return err
		}, consortium.ErrExpired, "not after its own time"},
		{"time going backwards", func(w *world) error {
			w.append("alpha", fixture.Add(fixture.At(5000), fixture.PDQ(1)))
			return w.submit("alpha", fixture.Add(fixture.At(4000), fixture.PDQ(2)))
		}, consortium.ErrOutOfOrder, "before the log's last entry"},
		{"endorsing two proposals in one epoch", func(w *world) error {
			_, p1 := w.append("alpha", fixture.Admit(w.tick(), "alpha", 0, "delta"))
			_, p2 := w.append("bravo", fixture.Admit(w.tick(), "bravo", 0, "echo"))
			w.append("charlie", fixture.Endorse(w.tick(), 0, p1))
			_ = p2
			return w.submit("charlie", fixture.Endorse(w.tick(), 0, p2))
		}, consortium.ErrDoubleEndorse, "already voted in epoch 0"},
		{"proposer endorsing another proposal", func(w *world) error {
			w.append("alpha", fixture.Admit(w.tick(), "alpha", 0, "delta"))
			_, p2 := w.append("bravo", fixture.Admit(w.tick(), "bravo", 0, "echo"))
			return w.submit("alpha", fixture.Endorse(w.tick(), 0, p2))
		}, consortium.ErrDoubleEndorse, "already voted"},
		{"vote for a past epoch", func(w *world) error {
			return w.submit("alpha", fixture.Admit(w.tick(), "alpha", 3, "delta"))
		}, consortium.ErrInvalidEntry, "roster is at epoch 0"},
		{"proposal by an observer", func(w *world) error {
			return w.submit("oscar", fixture.Admit(w.tick(), "oscar", 0, "delta"))
		}, consortium.ErrNotPermitted, "only members propose"},
		{"admit an existing member", func(w *world) error {
			return w.submit("alpha", fixture.Admit(w.tick(), "alpha", 0, "bravo"))
		}, consortium.ErrNotPermitted, "ids are never reused"},
		{"remove the last voter", func(w *world) error {
			return w.submit("alpha", fixture.Propose(w.tick(), "alpha", 0,
				&pb.RosterChange{Change: &pb.RosterChange_Remove{Remove: "alpha"}},
				&pb.RosterChange{Change: &pb.RosterChange_Remove{Remove: "bravo"}},
				&pb.RosterChange{Change: &pb.RosterChange_Remove{Remove: "charlie"}}))
		}, consortium.ErrNotPermitted, "no member with role member"},
		{"proposal naming another author", func(w *world) error {
			return w.submit("alpha", fixture.Admit(w.tick(), "bravo", 0, "delta"))
		}, consortium.ErrWrongAuthor, `names "bravo" as its author, but it would be written in "alpha"'s log`},
		{"copy of another member's proposal", func(w *world) error {
			_, p := w.append("alpha", fixture.Admit(w.tick(), "alpha", 0, "delta"))
			return w.submitRaw("charlie", p)
		}, consortium.ErrWrongAuthor, "endorse it instead"},
		{"copy of another member's proposal by an observer", func(w *world) error {
			_, p := w.append("alpha", fixture.Admit(w.tick(), "alpha", 0, "delta"))
			return w.submitRaw("oscar", p)
		}, consortium.ErrWrongAuthor, `names "alpha" as its author`},
		{"endorse a proposal of another epoch", func(w *world) error {
			_, p := w.append("alpha", fixture.Admit(w.tick(), "alpha", 0, "delta"))
			return w.submit("bravo", fixture.Endorse(w.tick(), 1, p))
		}, consortium.ErrInvalidEntry, "endorsement for epoch 1 of a proposal for epoch 0"},
		{"endorse an unknown proposal", func(w *world) error {
			return w.submit("alpha", fixture.Endorse(w.tick(), 0, []byte("nothing")))
		}, consortium.ErrInvalidEntry, "unknown proposal"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Quorum 3 of 3 voters, so that single votes never move the roster here.
			w := newWorld(t, 3, fixture.Founder{ID: "alpha"}, fixture.Founder{ID: "bravo"}, fixture.Founder{ID: "charlie"}, fixture.Founder{ID: "oscar", Observer: true})
			err := tc.run(w)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want %v mentioning %q", err, tc.want, tc.msg)
			}
		})
	}
}

// TestReplayIgnoresInvalidEntries checks that entries a misbehaving node appended anyway are
// recorded as rejections with no effect, the same on every replay.
func TestReplayIgnoresInvalidEntries(t *testing.T) {
	w := newWorld(t, 2, fixture.Founder{ID: "alpha"}, fixture.Founder{ID: "bravo"}, fixture.Founder{ID: "charlie"}, fixture.Founder{ID: "oscar", Observer: true})
	sig := fixture.PDQ(1)
	w.append("alpha", fixture.Add(w.tick(), sig))
	w.append("bravo", fixture.RevokeSignal(w.tick(), sig))                   // bravo 0: revoke of alpha's add
	w.append("oscar", fixture.Add(w.tick(), fixture.PDQ(2)))                 // observer add: kept, never listed
	w.logs["bravo"] = append(w.logs["bravo"], []byte("garbage"))             // bravo 1: undecodable
	_, p1 := w.append("alpha", fixture.Admit(w.tick(), "alpha", 0, "delta")) // alpha 1
	_, p2 := w.append("bravo", fixture.Admit(w.tick(), "bravo", 0, "echo"))  // bravo 2
	w.append("charlie", fixture.Endorse(w.tick(), 0, p2))                    // charlie 0: votes echo
	w.append("charlie", fixture.Endorse(w.tick(), 0, p1))                    // charlie 1: second vote, ignored
	w.append("alpha", fixture.Add(fixture.At(1), fixture.PDQ(3)))            // alpha 2: time goes backwards
	s := w.state()
	mustRejection(t, s, "bravo", 0, consortium.ErrNotPermitted)
	mustRejection(t, s, "bravo", 1, consortium.ErrMalformed)
	mustRejection(t, s, "charlie", 1, consortium.ErrDoubleEndorse)
	mustRejection(t, s, "alpha", 2, consortium.ErrOutOfOrder)
	if got := listers(s, sig); got != "alpha" {
		t.Errorf("listers: got %q, want alpha", got)
	}
	if got := listers(s, fixture.PDQ(2)); got != "" {
		t.Errorf("observer's add listed by %q", got)
	}
	// bravo + charlie voted for echo: 2 of 3 is the quorum.
	r := s.Roster()
	if _, ok := r.Member("echo"); !ok || r.Epoch != 1 {
		t.Errorf("roster: got epoch %d %+v, want echo admitted in epoch 1", r.Epoch, r.Members)
	}
	if _, ok := r.Member("delta"); ok {
		t.Error("delta admitted with one vote")
	}
}

func TestRosterChanges(t *testing.T) {
	w := newWorld(t, 2, fixture.Members("alpha", "bravo", "charlie")...)
	sig := fixture.PDQ(7)
	w.append("charlie", fixture.Add(w.tick(), sig))

	// Admission: proposal + one endorsement reach the quorum of 2.
	_, p := w.append("alpha", fixture.Admit(w.tick(), "alpha", 0, "delta"))
	if s := w.state(); s.Roster().Epoch != 0 {
		t.Fatalf("one vote moved the roster")
	}
	if err := w.submit("bravo", fixture.Endorse(w.tick(), 0, p)); err != nil {
		t.Fatal(err)
	}
	s := w.state()
	if r := s.Roster(); r.Epoch != 1 || r.Proposer != "alpha" || !r.CanAdd("delta") {
		t.Fatalf("after admission: got epoch %d, %+v", r.Epoch, r.Members)
	}
	// The new member can add at once.
	if err := w.submit("delta", fixture.Add(w.tick(), sig)); err != nil {
		t.Fatalf("delta add: %v", err)
	}
	if got := listers(w.state(), sig); got != "charlie,delta" {
		t.Errorf("listers: got %q", got)
	}
	// Removal of charlie in epoch 1: 4 voters, effective quorum 3 (configured 2 is not over half).
	if q := w.state().Roster().EffectiveQuorum(); q != 3 {
		t.Errorf("effective quorum: got %d, want 3", q)
	}
	_, p = w.append("alpha", fixture.Remove(w.tick(), "alpha", 1, "charlie"))
	w.append("bravo", fixture.Endorse(w.tick(), 1, p))
	if s := w.state(); s.Roster().Epoch != 1 {
		t.Fatalf("2 of 4 votes removed charlie")
	}
	w.append("delta", fixture.Endorse(w.tick(), 1, p))
	s = w.state()
	if r := s.Roster(); r.Epoch != 2 {
		t.Fatalf("removal did not win: epoch %d", r.Epoch)
	}
	if got := listers(s, sig); got != "delta" {
		t.Errorf("removed member's listing still counts: %q", got)
	}
	if err := s.Check("charlie", fixture.Marshal(fixture.Add(w.tick(), fixture.PDQ(8)))); !errors.Is(err, consortium.ErrUnknownMember) {
		t.Errorf("removed member's add: got %v, want ErrUnknownMember", err)
	}
	// Keys of past members stay known, so their old checkpoints still verify.
	if _, ok := s.MemberKey("charlie"); !ok {
		t.Error("charlie's key forgotten")
	}
	if len(s.Chain()) != 3 {
		t.Errorf("chain: got %d rosters, want 3", len(s.Chain()))
	}
}

func TestChangesReported(t *testing.T) {
	w := newWorld(t, 1, fixture.Members("alpha", "bravo")...)
	var got []string
	s := consortium.NewState(w.g, w.logs.Reader())
	s.OnChange(func(c consortium.Change) {
		got = append(got, c.Kind.String()+":"+c.Member)
	})
	apply := func(member string, e *pb.Entry) {
		i, raw := w.append(member, e)
		if err := s.Apply(member, i, raw); err != nil {
			t.Fatal(err)
		}
	}
	apply("alpha", fixture.Add(w.tick(), fixture.PDQ(1)))
	apply("bravo", fixture.Opinion(w.tick(), fixture.PDQ(1), pb.Stance_STANCE_AGREE))
	apply("alpha", fixture.RevokeIndex(w.tick(), 0))
	apply("bravo", fixture.Add(w.tick(), fixture.PDQ(2)))
	_, p := w.append("alpha", fixture.Remove(w.tick(), "alpha", 0, "bravo"))
	if err := s.Apply("alpha", 2, p); err != nil {
		t.Fatal(err)
	}
	apply("bravo", fixture.Endorse(w.tick(), 0, p))
	want := "listed:alpha opinion:bravo unlisted:alpha listed:bravo unlisted:bravo opinion:bravo roster:"
	if g := strings.Join(got, " "); g != want {
		t.Errorf("changes:\n got %s\nwant %s", g, want)
	}
	if err := s.Apply("alpha", 7, nil); !errors.Is(err, consortium.ErrOutOfOrder) {
		t.Errorf("out-of-order apply: got %v", err)
	}
}

func TestCheckBatch(t *testing.T) {
	w := newWorld(t, 3, fixture.Members("alpha", "bravo", "charlie")...)
	w.append("alpha", fixture.Add(w.tick(), fixture.PDQ(1)))
	_, p := w.append("bravo", fixture.Admit(w.tick(), "bravo", 0, "delta"))
	s := w.state()
	batch := []*pb.Entry{
		fixture.Add(w.tick(), fixture.PDQ(2)),          // 1: ok
		fixture.RevokeSignal(w.tick(), fixture.PDQ(2)), // 2: ok, revokes the add in this batch
		fixture.RevokeSignal(w.tick(), fixture.PDQ(2)), // refused: already revoked in this batch
		fixture.RevokeIndex(w.tick(), 0),               // 3: ok, entry 0 is stored
		fixture.RevokeIndex(w.tick(), 0),               // refused: nothing listed any more
		fixture.Add(w.tick(), fixture.PDQ(3)),          // 4: ok
		fixture.RevokeIndex(w.tick(), 4),               // 5: ok, index 4 is the add just above
		fixture.Endorse(w.tick(), 0, p),                // 6: ok
		fixture.Admit(w.tick(), "alpha", 0, "echo"),    // refused: second vote in epoch 0
		fixture.Admit(w.tick(), "bravo", 0, "echo"),    // refused: names another author
		fixture.Add(fixture.At(1), fixture.PDQ(4)),     // refused: time goes back
		fixture.RevokeIndex(w.tick(), 9),               // refused: not before it
	}
	var raws [][]byte
	for _, e := range batch {
		raws = append(raws, fixture.Marshal(e))
	}
	errs := s.CheckBatch("alpha", raws)
	wantErr := []error{nil, nil, consortium.ErrNotPermitted, nil, consortium.ErrNotPermitted, nil, nil, nil, consortium.ErrDoubleEndorse, consortium.ErrWrongAuthor, consortium.ErrOutOfOrder, consortium.ErrInvalidEntry}
	for i := range batch {
		if (wantErr[i] == nil) != (errs[i] == nil) || wantErr[i] != nil && !errors.Is(errs[i], wantErr[i]) {
			t.Errorf("entry %d: got %v, want %v", i, errs[i], wantErr[i])
		}
	}
	// Appending exactly the accepted entries replays without a single rejection.
	for i, e := range batch {
		if errs[i] == nil {
			w.append("alpha", e)
		}
	}
	if rs, n := w.state().Rejections(); n != 0 {
		t.Errorf("accepted batch had rejections on replay: %v", rs)
	}
	if errs := s.CheckBatch("mallory", raws[:1]); !errors.Is(errs[0], consortium.ErrUnknownMember) {
		t.Errorf("non-member batch: got %v", errs[0])
	}
}

// TestCheckBatchRevokesAfterAdds checks revokes that come after a run of adds in one batch: the
// adds accepted before the first revoke count as listed, a refused one does not, and a revoke's
// effect holds for the revokes after it.
func TestCheckBatchRevokesAfterAdds(t *testing.T) {
	w := newWorld(t, 3, fixture.Members("alpha", "bravo", "charlie")...)
	w.append("alpha", fixture.Add(w.tick(), fixture.PDQ(1)))
	s := w.state()
	batch := []*pb.Entry{
		fixture.Add(w.tick(), fixture.PDQ(2)),          // ok
		fixture.Add(w.tick(), fixture.MD5(3)),          // ok
		fixture.Add(fixture.At(1), fixture.PDQ(4)),     // refused: time goes back
		fixture.RevokeSignal(w.tick(), fixture.PDQ(4)), // refused: the add of it was refused
		fixture.RevokeSignal(w.tick(), fixture.MD5(3)), // ok: added in this batch
		fixture.RevokeSignal(w.tick(), fixture.PDQ(1)), // ok: stored
		fixture.Add(w.tick(), fixture.PDQ(5)),          // ok
		fixture.RevokeSignal(w.tick(), fixture.PDQ(2)), // ok: added before the first revoke
		fixture.RevokeSignal(w.tick(), fixture.MD5(3)), // refused: revoked above
		fixture.RevokeSignal(w.tick(), fixture.PDQ(5)), // ok: added after the first revoke
		fixture.Add(w.tick(), fixture.MD5(3)),          // ok: listed again
		fixture.RevokeSignal(w.tick(), fixture.MD5(3)), // ok
	}
	var raws [][]byte
	for _, e := range batch {
		raws = append(raws, fixture.Marshal(e))
	}
	errs := s.CheckBatch("alpha", raws)
	wantErr := []error{nil, nil, consortium.ErrOutOfOrder, consortium.ErrNotPermitted, nil, nil, nil, nil, consortium.ErrNotPermitted, nil, nil, nil}
	for i := range batch {
		if (wantErr[i] == nil) != (errs[i] == nil) || wantErr[i] != nil && !errors.Is(errs[i], wantErr[i]) {
			t.Errorf("entry %d: got %v, want %v", i, errs[i], wantErr[i])
		}
	}
}

// TestNextSignalIDPredictsIDs predicts, before applying each entry, the id its add's signal will
// get from [consortium.State.NextSignalID], [consortium.State.SignalID] and
// [consortium.Decoded.Added] alone, as the store does to index a batch while it is written, and
// checks the prediction against the id the Listed change reports: for new signals, signals listed
// again, signals of other types, and entries that are not adds. LookupListing must agree with
// SignalID on which signals are known.
func TestNextSignalIDPredictsIDs(t *testing.T) {
	w := newWorld(t, 1, fixture.Members("alpha", "bravo")...)
	s := consortium.NewState(w.g, w.logs.Reader())
	var got []uint32
	s.OnChange(func(c consortium.Change) {
		if c.Kind == consortium.Listed {
			got = append(got, c.SignalID)
		}
	})
	var want []uint32
	apply := func(member string, e *pb.Entry) {
		t.Helper()
		i, raw := w.append(member, e)
		d := consortium.Decode(raw)
		if sig, ok := d.Added(); ok {
			id, known := s.SignalID(sig)
			if _, _, k := s.LookupListing(member, sig); k != known {
				t.Fatalf("LookupListing of %s: got known %v, want %v (SignalID)", sig, k, known)
			}
			if !known {
				id = s.NextSignalID()
			}
			want = append(want, id)
		}
		if err := s.ApplyDecoded(member, i, raw, d); err != nil {
			t.Fatal(err)
		}
	}
	apply("alpha", fixture.Add(w.tick(), fixture.PDQ(1)))
	apply("alpha", fixture.Add(w.tick(), fixture.MD5(2)))
	apply("bravo", fixture.Opinion(w.tick(), fixture.PDQ(3), pb.Stance_STANCE_AGREE))
	apply("bravo", fixture.Add(w.tick(), fixture.PDQ(1)))
	apply("alpha", fixture.RevokeIndex(w.tick(), 0))
	apply("alpha", fixture.Add(w.tick(), fixture.PDQ(1)))
	apply("bravo", fixture.Add(w.tick(), fixture.PDQ(3)))
	if !slices.Equal(got, want) {
		t.Fatalf("signal ids of the Listed changes: got %v, want %v (predicted)", got, want)
	}
	if want := []uint32{0, 1, 0, 0, 2}; !slices.Equal(got, want) {
		t.Fatalf("signal ids: got %v, want %v", got, want)
	}
	if _, ok := consortium.Decode(fixture.Marshal(fixture.RevokeIndex(w.tick(), 0))).Added(); ok {
		t.Error("Added of a revoke: got true, want false")
	}
}
