package store_test

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"sync"
	"testing"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"github.com/hashfed/hashfed/store"
)

// forkOf is charlie's history that shares the first common entries of l and then differs.
func forkOf(g *consortium.Genesis, l *fixture.Log, common, size int) *fixture.Log {
	f := fixture.NewLog(g.ID, fixture.Key("charlie"))
	for _, e := range l.Entries[:common] {
		f.AppendRaw(e)
	}
	for i := common; i < size; i++ {
		f.Append(fixture.Add(fixture.At(int64(100+i)), fixture.PDQ(1000*common+i)))
	}
	return f
}

// resolvedEvidence is evidence that charlie signed both l (stored) and its fork f, resolved.
func resolvedEvidence(t *testing.T, g *consortium.Genesis, l, f *fixture.Log) *consortium.Evidence {
	t.Helper()
	a, b := openCP(t, g, l.Checkpoint()), openCP(t, g, f.Checkpoint())
	ha, hb := fixture.StoredHashes(t, l.Entries), fixture.StoredHashes(t, f.Entries)
	if a.Size > b.Size {
		a, b, ha, hb = b, a, hb, ha
	}
	var ev *consortium.Evidence
	var err error
	if a.Size == b.Size {
		ev, err = consortium.SameSizeEvidence(a, b)
	} else {
		prefix, _ := consortium.TreeHash(hb, a.Size)
		proof, _ := consortium.ProveConsistency(hb, a.Size, b.Size)
		ev, err = consortium.ForkEvidence(a, b, prefix, proof)
	}
	if err != nil {
		t.Fatal(err)
	}
	agreement, err := consortium.AgreementOf(a, b, ha, hb)
	if err != nil {
		t.Fatal(err)
	}
	if ev, err = ev.Resolve(agreement); err != nil {
		t.Fatal(err)
	}
	return ev
}

// TestForkCutoff: unresolved evidence makes the state apply none of the forking member's log;
// resolved evidence then raises the cutoff to the smallest agreed size known, and smaller agreed
// sizes lower it, rebuilding the state each time; evidence with a larger agreed size does not move
// the cutoff back; reopening applies the stored cutoff. A feed consumer and an OnChange listener
// that followed the store from before the first evidence learn of every listing each cutoff
// retracts or reinstates, so their view is the state's after every step.
func TestForkCutoff(t *testing.T) {
	g := fixture.Genesis(2, founders...)
	path := filepath.Join(t.TempDir(), "db")
	o := testOptions()
	var mu sync.Mutex
	heard := map[uint64]bool{} // charlie's adds in force, as OnChange told
	o.OnChange = func(c consortium.Change) {
		mu.Lock()
		defer mu.Unlock()
		switch c.Kind {
		case consortium.Listed:
			heard[c.Index] = true
		case consortium.Unlisted:
			delete(heard, c.Index)
		}
	}
	s := openStore(t, path, g, o)
	var cursor uint64
	fed := map[uint64]bool{} // charlie's adds in force, as the feed told
	follow := func(name string) {
		t.Helper()
		evs, next, err := s.Feed(cursor, 1000)
		if err != nil {
			t.Fatalf("%s: feed: %v", name, err)
		}
		cursor = next
		for _, ev := range evs {
			switch ev.Cutoff {
			case 0:
				fed[ev.Index] = true // every entry of peerLog is an add
			case store.CutoffUnlisted:
				delete(fed, ev.Index)
			case store.CutoffListed:
				fed[ev.Index] = true
			default:
				t.Errorf("%s: feed event %d has effect %d, want a listing change", name, ev.Seq, ev.Cutoff)
			}
		}
	}
	agree := func(name string, cutoff int) {
		t.Helper()
		follow(name)
		want := map[uint64]bool{}
		for i := range cutoff {
			want[uint64(i)] = true
		}
		mu.Lock()
		defer mu.Unlock()
		if !maps.Equal(fed, want) {
			t.Errorf("%s: the feed consumer holds listings %v, want %v", name, fed, want)
		}
		if !maps.Equal(heard, want) {
			t.Errorf("%s: the OnChange listener holds listings %v, want %v", name, heard, want)
		}
		var n int
		s.View(func(st *consortium.State) { _, n = st.Counts() })
		if n != len(want) {
			t.Errorf("%s: the state has %d listings, want %d", name, n, len(want))
		}
	}
	l := peerLog(g, "charlie", 8, 0)
	if err := s.AppendRange(openCP(t, g, l.Checkpoint()), 0, l.Entries, nil); err != nil {
		t.Fatal(err)
	}
	prefixDigest := func(n int) consortium.Hash {
		st, err := consortium.Replay(g, consortium.Logs{"charlie": l.Entries[:n]}, consortium.ReplayOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return st.Digest()
	}
	listed := func(s *store.Store, i int) bool {
		ms, err := s.MatchSignal(fixture.PDQ(i), store.DefaultQuery())
		if err != nil {
			t.Fatal(err)
		}
		return len(ms) > 0
	}
	agree("before any evidence", 8)
	// Unresolved evidence (a same-size fork) freezes the log and cuts it at 0: where the two
	// histories part is not proven, so no entry of charlie's is known to be in every node's copy.
	same := forkOf(g, l, 6, 8)
	unresolved, err := consortium.SameSizeEvidence(openCP(t, g, l.Checkpoint()), openCP(t, g, same.Checkpoint()))
	if err != nil {
		t.Fatal(err)
	}
	if stored, err := s.RecordEvidence(unresolved); err != nil || !stored {
		t.Fatalf("unresolved evidence: got %v, %v", stored, err)
	}
	if got, ok := s.Cutoffs()["charlie"]; !ok || got != 0 || digest(s) != prefixDigest(0) {
		t.Fatalf("unresolved evidence: cutoff %d (%v), want 0 and the state without charlie's log", got, ok)
	}
	if listed(s, 1) {
		t.Error("unresolved evidence: a signal charlie listed still matches")
	}
	agree("unresolved evidence", 0)
	steps := []struct {
		name       string
		ev         *consortium.Evidence
		wantStored bool
		wantCutoff int
	}{
		{"resolved at 6 raises the cutoff from 0", resolvedEvidence(t, g, l, same), true, 6},
		{"resolved at 4", resolvedEvidence(t, g, l, forkOf(g, l, 4, 9)), true, 4},
		{"resolved at 5 does not move the cutoff back", resolvedEvidence(t, g, l, forkOf(g, l, 5, 7)), false, 4},
		{"unresolved does not replace resolved", unresolved, false, 4},
		{"resolved at 2, fork shorter than the stored log", resolvedEvidence(t, g, l, forkOf(g, l, 2, 3)), true, 2},
	}
	// Matching goes on while the state is rebuilt (answering from the old state until the swap).
	stop := make(chan struct{})
	matched := make(chan int)
	running := make(chan struct{})
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				matched <- n
				return
			default:
			}
			if _, err := s.MatchSignal(fixture.PDQ(7), store.DefaultQuery()); err == nil {
				if n++; n == 1 {
					close(running)
				}
			}
		}
	}()
	<-running // the rebuilds start once matching runs (on a busy machine it may start late)
	for _, st := range steps {
		stored, err := s.RecordEvidence(st.ev)
		if err != nil || stored != st.wantStored {
			t.Fatalf("%s: got stored %v, %v, want %v", st.name, stored, err, st.wantStored)
		}
		if got := s.Cutoffs()["charlie"]; got != uint64(st.wantCutoff) {
			t.Errorf("%s: got cutoff %d, want %d", st.name, got, st.wantCutoff)
		}
		if digest(s) != prefixDigest(st.wantCutoff) {
			t.Errorf("%s: digest is not the state of charlie's first %d entries", st.name, st.wantCutoff)
		}
		for i := 0; i < 8; i++ {
			if got, want := listed(s, i), i < st.wantCutoff; got != want {
				t.Errorf("%s: entry %d's signal matched %v, want %v", st.name, i, got, want)
			}
		}
		agree(st.name, st.wantCutoff)
	}
	close(stop)
	if n := <-matched; n == 0 {
		t.Error("no match answered while the state was rebuilt")
	}
	if got := s.Size("charlie"); got != 8 {
		t.Errorf("stored %d entries of charlie, want 8: signed history is kept", got)
	}
	s.Close()
	// The feed's cutoff events survive a restart, and a restart adds none.
	s2 := openStore(t, path, g, testOptions())
	if got := s2.FeedEnd(); got != cursor {
		t.Errorf("reopened: feed ends at %d, want %d", got, cursor)
	}
	if evs, _, err := s2.Feed(8, 1); err != nil || len(evs) != 1 || evs[0].Cutoff != store.CutoffUnlisted || evs[0].Member != "charlie" {
		t.Errorf("reopened: feed event 8 is %+v (%v), want charlie's first retraction", evs, err)
	}
	if got := s2.Cutoffs()["charlie"]; got != 2 {
		t.Errorf("reopened: cutoff %d, want 2", got)
	}
	if digest(s2) != prefixDigest(2) || listed(s2, 3) || !listed(s2, 1) {
		t.Error("reopened: the cutoff is not applied")
	}
}

// TestAppendAgreed: a store that fell behind before the log froze may fetch the entries both
// forks share, up to the cutoff, and nothing else.
func TestAppendAgreed(t *testing.T) {
	g := fixture.Genesis(2, founders...)
	s := openStore(t, filepath.Join(t.TempDir(), "db"), g, testOptions())
	l := peerLog(g, "charlie", 8, 0)
	behind := fixture.NewLog(g.ID, fixture.Key("charlie"))
	for _, e := range l.Entries[:2] {
		behind.AppendRaw(e)
	}
	if err := s.AppendRange(openCP(t, g, behind.Checkpoint()), 0, behind.Entries, nil); err != nil {
		t.Fatal(err)
	}
	fork := forkOf(g, l, 5, 7)
	ev := resolvedEvidence(t, g, l, fork)
	cpL, cpFork := openCP(t, g, l.Checkpoint()), openCP(t, g, fork.Checkpoint())
	proveL := func(from, to uint64) []consortium.Hash {
		p, err := consortium.ProveConsistency(fixture.StoredHashes(t, l.Entries), from, to)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if err := s.AppendAgreed(cpL, proveL(5, 8), 2, l.Entries[2:4], proveL(4, 8)); !errors.Is(err, store.ErrForked) {
		t.Errorf("before any evidence: got %v, want ErrForked", err)
	}
	if _, err := s.RecordEvidence(ev); err != nil {
		t.Fatal(err)
	}
	// A third history of charlie's that parts at 3: its entries are not the agreed ones.
	third := forkOf(g, l, 3, 8)
	cpThird := openCP(t, g, third.Checkpoint())
	proveThird := func(from, to uint64) []consortium.Hash {
		p, _ := consortium.ProveConsistency(fixture.StoredHashes(t, third.Entries), from, to)
		return p
	}
	for _, tc := range []struct {
		name    string
		cp      *consortium.Checkpoint
		link    []consortium.Hash
		entries [][]byte
		proof   []consortium.Hash
	}{
		{"beyond the cutoff", cpL, proveL(5, 8), l.Entries[2:6], proveL(6, 8)},
		{"the fork's entries past the cutoff", cpFork, nil, fork.Entries[2:7], nil},
		{"another history up to the cutoff", cpThird, proveThird(5, 8), third.Entries[2:5], nil},
		{"another history's checkpoint", cpThird, proveThird(5, 8), third.Entries[2:4], proveThird(4, 8)},
		{"a link that does not verify", cpL, proveL(4, 8), l.Entries[2:4], proveL(4, 8)},
		{"not at the stored size", cpL, proveL(5, 8), l.Entries[3:5], nil},
	} {
		if err := s.AppendAgreed(tc.cp, tc.link, 2, tc.entries, tc.proof); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	if got := s.Size("charlie"); got != 2 {
		t.Fatalf("refused ranges stored: size %d, want 2", got)
	}
	// The agreed entries, in two steps: against a checkpoint linked to the agreed tree, then
	// against the agreed root.
	if err := s.AppendAgreed(cpL, proveL(5, 8), 2, l.Entries[2:4], proveL(4, 8)); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAgreed(cpFork, nil, 4, l.Entries[4:5], nil); err != nil {
		t.Fatal(err)
	}
	st, _ := consortium.Replay(g, consortium.Logs{"charlie": l.Entries[:5]}, consortium.ReplayOptions{})
	if s.Size("charlie") != 5 || digest(s) != st.Digest() {
		t.Errorf("got size %d, want 5 and the state of the agreed entries", s.Size("charlie"))
	}
	if h, _ := s.Head("charlie"); h.Size != 2 {
		t.Errorf("head moved to %d, want it kept at 2", h.Size)
	}
}

// TestCutoffRetractsAVote: charlie's endorsement admitted delta; charlie then forks before it, so
// the cutoff retracts the vote and delta is no longer on the roster. The store must still open:
// delta's stored checkpoint and the evidence were verified with every key the logs ever gave.
func TestCutoffRetractsAVote(t *testing.T) {
	g := fixture.Genesis(2, founders...)
	path := filepath.Join(t.TempDir(), "db")
	s := openStore(t, path, g, testOptions())
	add := func(l *fixture.Log) {
		t.Helper()
		cp, err := consortium.OpenCheckpoint(g.ID, stateKeys(s), l.Checkpoint())
		if err != nil {
			t.Fatal(err)
		}
		if err := s.AppendRange(cp, s.Size(cp.Member), l.Entries[s.Size(cp.Member):], nil); err != nil {
			t.Fatal(err)
		}
	}
	alpha := fixture.NewLog(g.ID, fixture.Key("alpha"))
	alpha.Append(fixture.Admit(fixture.At(1), "alpha", 0, "delta"))
	charlie := fixture.NewLog(g.ID, fixture.Key("charlie"))
	charlie.Append(fixture.Add(fixture.At(1), fixture.PDQ(1)))
	charlie.Append(fixture.Endorse(fixture.At(2), 0, alpha.Entries[0]))
	add(alpha)
	add(charlie)
	onRoster := func(s *store.Store, id string) bool {
		var ok bool
		s.View(func(st *consortium.State) { _, ok = st.Roster().Member(id) })
		return ok
	}
	if !onRoster(s, "delta") {
		t.Fatal("delta not admitted")
	}
	delta := fixture.NewLog(g.ID, fixture.Key("delta"))
	delta.Append(fixture.Add(fixture.At(3), fixture.PDQ(40)))
	add(delta)
	// charlie's other history parts after its first entry, before the vote.
	other := forkOf(g, charlie, 1, 3)
	if _, err := s.RecordEvidence(resolvedEvidence(t, g, charlie, other)); err != nil {
		t.Fatal(err)
	}
	if onRoster(s, "delta") {
		t.Error("delta still on the roster once the vote that admitted it is cut")
	}
	want := digest(s)
	s.Close()
	s2, err := store.Open(path, g, testOptions())
	if err != nil {
		t.Fatalf("reopen with a cutoff that retracts a vote: %v", err)
	}
	defer s2.Close()
	if digest(s2) != want || onRoster(s2, "delta") {
		t.Error("reopened: a different state than before closing")
	}
	// An auditor given what the store holds verifies delta's log (admitted in the signed history)
	// and computes the same state: delta's entries count for nothing once the vote is cut.
	in := consortium.AuditInput{Genesis: g.Marshal(), Logs: consortium.Logs{}, Checkpoints: map[string][][]byte{}}
	for m, n := range s2.Sizes() {
		es, err := s2.Entries(m, 0, n, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		in.Logs[m] = es
	}
	for m, cp := range s2.Heads() {
		in.Checkpoints[m] = [][]byte{cp.Note}
	}
	for _, ev := range s2.Evidence() {
		in.Evidence = append(in.Evidence, ev.Marshal())
	}
	if r := consortium.Audit(in, consortium.AuditOptions{}); !r.OK || r.Digest != fmt.Sprintf("%x", want[:]) {
		t.Errorf("audit: ok %v, digest %s, want the store's %x:\n%s", r.OK, r.Digest, want[:], r)
	}
}

func stateKeys(s *store.Store) consortium.Keyring {
	var k consortium.Keyring
	s.View(func(st *consortium.State) { k = st })
	return k
}

// TestOwnLogForked is what an operator who restored a backup copy of its store (or whose key was
// used elsewhere) meets: its member signed a history that contradicts one the peers hold, and the
// evidence reaches its own node. The log is frozen everywhere, so nothing appended to it can ever
// take effect: the node must refuse its own submissions with ErrForked (not accept entries that
// are silently never applied), and must not sign more checkpoints of the forked log.
func TestOwnLogForked(t *testing.T) {
	g := fixture.Genesis(2, founders...)
	path := filepath.Join(t.TempDir(), "db")
	s := openStore(t, path, g, testOptions())
	for i := 1; i <= 3; i++ {
		submit(t, s, "alpha", fixture.Add(fixture.At(int64(i)), fixture.PDQ(i)))
	}
	key := fixture.Key("alpha")
	head, err := s.SignHead(key)
	if err != nil || head == nil {
		t.Fatalf("sign head: %v, %v", head, err)
	}
	// The other copy: the first two entries, then a different third one.
	own, err := s.Entries("alpha", 0, 3, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	other := fixture.NewLog(g.ID, key)
	other.AppendRaw(own[0])
	other.AppendRaw(own[1])
	other.Append(fixture.Add(fixture.At(3), fixture.PDQ(33)))
	obs, ev, err := s.ObserveCheckpoint(openCP(t, g, other.Checkpoint()))
	if err != nil || obs != store.Equivocated || ev == nil {
		t.Fatalf("evidence against the own member: got %v, %v, %v", obs, ev, err)
	}
	before := digest(s)
	out, err := s.Submit(t.Context(), "alpha", []*pb.Entry{fixture.Add(fixture.At(4), fixture.PDQ(4))})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(out[0].Err, store.ErrForked) {
		t.Errorf("submission to the own forked log: got %v, want ErrForked", out[0].Err)
	}
	if got := s.Size("alpha"); got != 3 {
		t.Errorf("own forked log holds %d entries, want 3 (nothing appended)", got)
	}
	if digest(s) != before {
		t.Error("the state changed")
	}
	if cp, err := s.SignHead(key); !errors.Is(err, store.ErrForked) || cp != nil {
		t.Errorf("signing a checkpoint of the own forked log: got %v, %v, want ErrForked", cp, err)
	}
	// Other members' submissions are not affected.
	submit(t, s, "bravo", fixture.Add(fixture.At(5), fixture.PDQ(5)))
}
