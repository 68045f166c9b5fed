package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// TestCommitBatchRefusedInMiddle commits one group of two members' submissions in which entries in
// the middle are refused (one that does not encode, one the state refuses, a revoke by index of an
// entry of the same batch, and one of an index not before it). The accepted entries get
// consecutive indices; the refused leave no trace; and the state the commit built from the
// entries decoded once while checking is the state replayed from the stored logs, before and after
// a reopen (an entry matched with another's decoding would make them differ).
func TestCommitBatchRefusedInMiddle(t *testing.T) {
	g := fixture.Genesis(2, fixture.Members("alpha", "bravo", "charlie")...)
	path := filepath.Join(t.TempDir(), "hashfed.db")
	o := DefaultOptions()
	o.NoSync = true
	s, err := Open(path, g, o)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	if out, err := s.Submit(t.Context(), "alpha", []*pb.Entry{add(fixture.PDQ(100))}); err != nil || out[0].Err != nil {
		t.Fatalf("first add: %v %+v", err, out)
	}
	revokeIndex := func(i uint64) *pb.Entry {
		return &pb.Entry{Op: &pb.Entry_Revoke{Revoke: &pb.Revoke{Reason: pb.RevokeReason_REVOKE_REASON_OTHER, Target: &pb.Revoke_Index{Index: i}}}}
	}
	badSignal := &pb.Entry{Op: &pb.Entry_Add{Add: &pb.Add{Signal: &pb.Signal{Type: "pdq", Value: []byte{1, 2, 3}}}}}
	alpha := &submission{member: "alpha", done: make(chan struct{}), entries: []*pb.Entry{
		add(fixture.PDQ(1)),
		badSignal, // does not encode
		&pb.Entry{Op: &pb.Entry_Revoke{Revoke: &pb.Revoke{Reason: pb.RevokeReason_REVOKE_REASON_OTHER, Target: &pb.Revoke_Signal{Signal: fixture.PDQ(9).Proto()}}}}, // not listed
		add(fixture.PDQ(2)),
		revokeIndex(1), // PDQ(1), earlier in this batch
		add(fixture.PDQ(3)),
	}}
	bravo := &submission{member: "bravo", done: make(chan struct{}), entries: []*pb.Entry{
		add(fixture.MD5(4)),
		revokeIndex(5), // not before it
		add(fixture.PDQ(5)),
	}}
	s.commitBatch([]*submission{alpha, bravo})
	for _, c := range []struct {
		sub  *submission
		want []int64 // index, or -1 for refused
	}{
		{alpha, []int64{1, -1, -1, 2, 3, 4}},
		{bravo, []int64{0, -1, 1}},
	} {
		if c.sub.err != nil {
			t.Fatalf("%s: %v", c.sub.member, c.sub.err)
		}
		for i, a := range c.sub.out {
			switch {
			case c.want[i] < 0 && a.Err == nil:
				t.Errorf("%s entry %d: appended at %d, want refused", c.sub.member, i, a.Index)
			case c.want[i] >= 0 && a.Err != nil:
				t.Errorf("%s entry %d: refused (%v), want appended at %d", c.sub.member, i, a.Err, c.want[i])
			case c.want[i] >= 0 && a.Index != uint64(c.want[i]):
				t.Errorf("%s entry %d: got index %d, want %d", c.sub.member, i, a.Index, c.want[i])
			case c.want[i] >= 0:
				if got, err := s.Entry(c.sub.member, a.Index); err != nil || !bytes.Equal(got, a.Entry) {
					t.Errorf("%s entry %d: stored %x (%v), want %x", c.sub.member, a.Index, got, err, a.Entry)
				}
			}
		}
	}
	if err := bravo.out[1].Err; !errors.Is(err, consortium.ErrInvalidEntry) {
		t.Errorf("revoke of an index not before it: got %v, want ErrInvalidEntry", err)
	}
	if got := s.Sizes(); got["alpha"] != 5 || got["bravo"] != 2 {
		t.Fatalf("sizes: got %v, want alpha 5, bravo 2", got)
	}
	want := replayed(t, s)
	if got := s.Digest(); got != want {
		t.Fatalf("digest after the commit %x, want %x (replayed from the stored logs)", got, want)
	}
	s.Close()
	if s, err = Open(path, g, o); err != nil {
		t.Fatal(err)
	}
	if got := s.Digest(); got != want {
		t.Fatalf("digest after reopening %x, want %x", got, want)
	}
}

func add(sig consortium.Signal) *pb.Entry {
	return &pb.Entry{Op: &pb.Entry_Add{Add: &pb.Add{Signal: sig.Proto(), Labels: []string{"behaviour:glorification-of-terrorist-acts"}}}}
}

// replayed replays the store's logs from scratch with the consortium package alone.
func replayed(t *testing.T, s *Store) consortium.Hash {
	t.Helper()
	logs := consortium.Logs{}
	for m, n := range s.Sizes() {
		es, err := s.Entries(m, 0, n, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		logs[m] = es
	}
	st, err := consortium.Replay(s.Genesis(), logs, consortium.ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return st.Digest()
}

// pdqAdds returns n adds of distinct PDQ signals, from fixture.PDQ(from) on.
func pdqAdds(from, n int) ([]*pb.Entry, []consortium.Signal) {
	es := make([]*pb.Entry, n)
	sigs := make([]consortium.Signal, n)
	for i := range n {
		sigs[i] = fixture.PDQ(from + i)
		es[i] = add(sigs[i])
	}
	return es, sigs
}

// matchesOnly checks that each hash of sigs matches exactly itself (nil want: nothing at all).
func matchesOnly(t *testing.T, s *Store, sigs []consortium.Signal, want bool) {
	t.Helper()
	for i, sig := range sigs {
		ms, err := s.MatchPDQ(sig.Value, Query{Radius: 0, Quality: -1})
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case !want && len(ms) > 0:
			t.Fatalf("signal %d: got %d matches (first %s), want none", i, len(ms), ms[0].Signal)
		case want && (len(ms) != 1 || ms[0].Signal != sig):
			t.Fatalf("signal %d: got %v, want exactly itself", i, ms)
		}
	}
}

// openCommitStore opens a store of three founders, without fsync, closed when t ends.
func openCommitStore(t *testing.T) *Store {
	t.Helper()
	o := DefaultOptions()
	o.NoSync = true
	s, err := Open(filepath.Join(t.TempDir(), "hashfed.db"), fixture.Genesis(2, fixture.Members("alpha", "bravo", "charlie")...), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestCommitFailedWriteLeavesIndex fails the write of a large batch of new PDQ signals (whose
// index inserts run while it is written) and checks that nothing of it can be matched nor is left
// in the index, and that the next batch, whose new signals get the same ids, matches as itself.
func TestCommitFailedWriteLeavesIndex(t *testing.T) {
	s := openCommitStore(t)
	first, firstSigs := pdqAdds(0, 100)
	if _, err := s.Submit(t.Context(), "alpha", first); err != nil {
		t.Fatal(err)
	}
	failed := errors.New("disk on fire")
	s.testBeforeCommit = func() error { return failed }
	es, sigs := pdqAdds(1000, 3000)
	if _, err := s.Submit(t.Context(), "alpha", es); !errors.Is(err, failed) {
		t.Fatalf("submit with a failing write: got %v, want %v", err, failed)
	}
	s.testBeforeCommit = nil
	if got := s.IndexStats().Len; got != 100 {
		t.Errorf("index after the failed write: got %d hashes, want 100", got)
	}
	matchesOnly(t, s, sigs, false)
	next, nextSigs := pdqAdds(5000, 2000)
	out, err := s.Submit(t.Context(), "alpha", next)
	if err != nil {
		t.Fatal(err)
	}
	if out[0].Index != 100 {
		t.Errorf("first entry after the failed write: got index %d, want 100", out[0].Index)
	}
	if got := s.IndexStats().Len; got != 2100 {
		t.Errorf("index: got %d hashes, want 2100", got)
	}
	matchesOnly(t, s, sigs, false)
	matchesOnly(t, s, nextSigs, true)
	matchesOnly(t, s, firstSigs, true)
	if got, want := s.Digest(), replayed(t, s); got != want {
		t.Fatalf("digest %x, want %x (replayed from the stored logs)", got, want)
	}
}

// TestCommitNotMatchableBeforeCommit matches a batch's signals while its transaction is being
// written (after its index inserts had time to run): none may match before the commit, every one
// once Submit returns. A batch that lists again a signal another member lists is included.
func TestCommitNotMatchableBeforeCommit(t *testing.T) {
	s := openCommitStore(t)
	bravo, bravoSigs := pdqAdds(0, 10)
	if _, err := s.Submit(t.Context(), "bravo", bravo); err != nil {
		t.Fatal(err)
	}
	es, sigs := pdqAdds(100, 3000)
	es = append(es, add(bravoSigs[0]))
	calls := 0
	s.testBeforeCommit = func() error {
		calls++
		time.Sleep(200 * time.Millisecond) // the index inserts run meanwhile
		matchesOnly(t, s, sigs, false)
		return nil
	}
	out, err := s.Submit(t.Context(), "alpha", es)
	s.testBeforeCommit = nil
	if err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Fatalf("write hook: got %d calls, want 1", calls)
	}
	for i, a := range out {
		if a.Err != nil {
			t.Fatalf("entry %d: %v", i, a.Err)
		}
	}
	matchesOnly(t, s, sigs, true)
	ms, err := s.MatchPDQ(bravoSigs[0].Value, Query{Quality: -1})
	if err != nil || len(ms) != 1 || len(ms[0].Listings) != 2 {
		t.Fatalf("signal listed by two members: got %+v (%v), want one match with two listings", ms, err)
	}
	if got := s.IndexStats().Len; got != 3010 {
		t.Errorf("index: got %d hashes, want 3010", got)
	}
}

// TestCommitRevokedInSameBatch commits a large batch of new PDQ signals in which one is revoked
// (by signal) after its add, and another is added, revoked and added again: the first must not
// match nor stay in the index, the second must match.
func TestCommitRevokedInSameBatch(t *testing.T) {
	s := openCommitStore(t)
	es, sigs := pdqAdds(0, 500)
	revoke := func(sig consortium.Signal) *pb.Entry {
		return &pb.Entry{Op: &pb.Entry_Revoke{Revoke: &pb.Revoke{Reason: pb.RevokeReason_REVOKE_REASON_OTHER, Target: &pb.Revoke_Signal{Signal: sig.Proto()}}}}
	}
	es = append(es, revoke(sigs[7]), revoke(sigs[9]), add(sigs[9]))
	out, err := s.Submit(t.Context(), "alpha", es)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range out {
		if a.Err != nil {
			t.Fatalf("entry %d: %v", i, a.Err)
		}
	}
	matchesOnly(t, s, sigs[7:8], false)
	matchesOnly(t, s, append(sigs[:7:7], sigs[8:]...), true)
	if got := s.IndexStats().Len; got != 499 {
		t.Errorf("index: got %d hashes, want 499", got)
	}
	if got, want := s.Digest(), replayed(t, s); got != want {
		t.Fatalf("digest %x, want %x (replayed from the stored logs)", got, want)
	}
}

func TestSigSet(t *testing.T) {
	var sigs []consortium.Signal
	for i := range 1000 {
		sigs = append(sigs, fixture.PDQ(i%300), fixture.MD5(i%7))
	}
	set := newSigSet(len(sigs))
	seen := map[consortium.Signal]bool{}
	for i, sig := range sigs {
		if got, want := set.add(sigs, int32(i)), !seen[sig]; got != want {
			t.Fatalf("add %d (%s): got %v, want %v", i, sig, got, want)
		}
		seen[sig] = true
	}
}

// snapshotOf is what readers of a store see: digest, sizes, feed, index size, and which of sigs
// match.
type storeView struct {
	digest  consortium.Hash
	sizes   map[string]uint64
	feed    int
	index   int
	matched int
}

func viewOf(t *testing.T, s *Store, sigs []consortium.Signal) storeView {
	t.Helper()
	v, err := readView(s, sigs)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func readView(s *Store, sigs []consortium.Signal) (storeView, error) {
	v := storeView{digest: s.Digest(), sizes: s.Sizes(), index: s.IndexStats().Len}
	evs, _, err := s.Feed(0, 1<<30)
	if err != nil {
		return v, fmt.Errorf("feed: %w", err)
	}
	v.feed = len(evs)
	for _, sig := range sigs {
		ms, err := s.MatchPDQ(sig.Value, Query{Radius: 0, Quality: -1})
		if err != nil {
			return v, fmt.Errorf("match: %w", err)
		}
		v.matched += len(ms)
	}
	return v, nil
}

func (v storeView) equal(w storeView) bool {
	return v.digest == w.digest && maps.Equal(v.sizes, w.sizes) && v.feed == w.feed && v.index == w.index && v.matched == w.matched
}

// TestCommitFailsAfterApply fails the commit of writes that were already applied in memory (the
// apply runs while the transaction commits): own submissions, a verified range of another log, and
// a batch that revokes by index an entry of the same batch. Readers must then see exactly what
// they saw before (the state is reloaded from the file), listeners must not hear of the changes,
// the next writes must take the same indices, and a reopened store must agree.
func TestCommitFailsAfterApply(t *testing.T) {
	g := fixture.Genesis(2, fixture.Members("alpha", "bravo", "charlie")...)
	path := filepath.Join(t.TempDir(), "hashfed.db")
	o := DefaultOptions()
	o.NoSync = true
	var heard atomic.Int64
	o.OnChange = func(consortium.Change) { heard.Add(1) }
	s, err := Open(path, g, o)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	first, firstSigs := pdqAdds(0, 200)
	if _, err := s.Submit(t.Context(), "alpha", first); err != nil {
		t.Fatal(err)
	}
	bravo := fixture.NewLog(g.ID, fixture.Key("bravo"))
	for i := range 300 {
		bravo.Append(fixture.Add(fixture.At(int64(i)), fixture.PDQ(10_000+i), "behaviour:glorification-of-terrorist-acts"))
	}
	cp, err := consortium.OpenCheckpoint(g.ID, g, bravo.Checkpoint())
	if err != nil {
		t.Fatal(err)
	}
	es, sigs := pdqAdds(1000, 3000)
	es = append(es, &pb.Entry{Op: &pb.Entry_Revoke{Revoke: &pb.Revoke{Reason: pb.RevokeReason_REVOKE_REASON_OTHER, Target: &pb.Revoke_Index{Index: 200 + 5}}}})
	all := append(append(slices.Clone(firstSigs), sigs...), fixture.PDQ(10_000), fixture.PDQ(10_299))
	failed := errors.New("disk full")
	for _, c := range []struct {
		name  string
		write func() error
	}{
		{"own entries", func() error { _, err := s.Submit(t.Context(), "alpha", es); return err }},
		{"verified range", func() error { return s.AppendRange(cp, 0, bravo.Entries, nil) }},
	} {
		before := viewOf(t, s, all)
		heardBefore := heard.Load()
		applied := false
		s.testCommit = func() error {
			applied = true
			return failed
		}
		err := c.write()
		s.testCommit = nil
		if !errors.Is(err, failed) || !applied {
			t.Fatalf("%s: got %v (commit reached: %v), want %v", c.name, err, applied, failed)
		}
		if got := viewOf(t, s, all); !got.equal(before) {
			t.Fatalf("%s: after the failed commit readers see %+v, want %+v", c.name, got, before)
		}
		if got := heard.Load(); got != heardBefore {
			t.Fatalf("%s: listeners heard %d changes of a failed commit", c.name, got-heardBefore)
		}
		if got, want := s.Digest(), replayed(t, s); got != want {
			t.Fatalf("%s: digest %x, want %x (replayed)", c.name, got, want)
		}
	}
	out, err := s.Submit(t.Context(), "alpha", es)
	if err != nil {
		t.Fatal(err)
	}
	if out[0].Index != 200 || out[len(out)-1].Err != nil {
		t.Fatalf("after the failed commits: first index %d (want 200), last entry %v", out[0].Index, out[len(out)-1].Err)
	}
	if err := s.AppendRange(cp, 0, bravo.Entries, nil); err != nil {
		t.Fatal(err)
	}
	matchesOnly(t, s, sigs[:5], true)
	matchesOnly(t, s, sigs[5:6], false) // revoked by index in its own batch
	matchesOnly(t, s, []consortium.Signal{fixture.PDQ(10_000), fixture.PDQ(10_299)}, true)
	want := viewOf(t, s, all)
	if got := replayed(t, s); got != want.digest {
		t.Fatalf("digest %x, want %x (replayed)", want.digest, got)
	}
	s.Close()
	if s, err = Open(path, g, o); err != nil {
		t.Fatal(err)
	}
	if got := viewOf(t, s, all); !got.equal(want) {
		t.Fatalf("reopened: %+v, want %+v", got, want)
	}
}

// TestCommitVisibleOnlyWhenDurable holds a commit open while its writes are applied: readers that
// ask meanwhile (matches, sizes, the feed, the digest) and listeners must not learn of the writes
// before the commit ends, and must see all of them once it has.
func TestCommitVisibleOnlyWhenDurable(t *testing.T) {
	g := fixture.Genesis(2, fixture.Members("alpha", "bravo", "charlie")...)
	o := DefaultOptions()
	o.NoSync = true
	var heard atomic.Int64
	o.OnChange = func(consortium.Change) { heard.Add(1) }
	s, err := Open(filepath.Join(t.TempDir(), "hashfed.db"), g, o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	es, sigs := pdqAdds(0, 2000)
	var committed atomic.Bool
	type seen struct {
		view storeView
		err  error
		late bool // answered after the commit ended
	}
	answers := make(chan seen, 1)
	s.testCommit = func() error {
		go func() {
			// Ask again and again: report the first answer, asked and given before the commit
			// ended, that shows anything of the write, or the first asked after it ended. (An
			// answer asked before and given after may show part of it.)
			for {
				asked := committed.Load()
				v, err := readView(s, sigs[:20])
				given := committed.Load()
				switch {
				case err != nil, asked:
					answers <- seen{v, err, true}
					return
				case !given && (v.sizes["alpha"] != 0 || v.matched != 0 || v.feed != 0):
					answers <- seen{v, err, false}
					return
				}
			}
		}()
		time.Sleep(100 * time.Millisecond) // the reader asks meanwhile
		if n := heard.Load(); n != 0 {
			t.Errorf("listeners heard %d changes before the commit", n)
		}
		committed.Store(true)
		return nil
	}
	if _, err := s.Submit(t.Context(), "alpha", es); err != nil {
		t.Fatal(err)
	}
	s.testCommit = nil
	a := <-answers
	switch {
	case a.err != nil:
		t.Fatalf("a reader during the commit: %v", a.err)
	case !a.late && (a.view.sizes["alpha"] != 0 || a.view.matched != 0 || a.view.feed != 0):
		t.Fatalf("a reader saw the write before its commit ended: %+v", a.view)
	case a.late && (a.view.sizes["alpha"] != 2000 || a.view.matched != 20 || a.view.feed != 2000):
		t.Fatalf("a reader after the commit saw %+v, want all 2000 entries", a.view)
	}
	if got := heard.Load(); got < 2000 {
		t.Fatalf("listeners heard %d changes, want at least 2000", got)
	}
}

// TestCommitReadersDuringGrowth runs readers of every kind while large writes grow the file (and
// so remap it during their commits, which runs beside the apply): nothing may deadlock.
func TestCommitReadersDuringGrowth(t *testing.T) {
	s := openCommitStore(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	probe := fixture.PDQ(3)
	for r := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				switch (r + i) % 4 {
				case 0:
					s.MatchPDQ(probe.Value, Query{Quality: -1})
				case 1:
					s.Feed(uint64(i), 100)
				case 2:
					s.Entries("alpha", 0, 10, 1<<20)
				case 3:
					s.Digest()
				}
			}
		})
	}
	for b := range 8 {
		es, _ := pdqAdds(b*5000, 5000)
		if _, err := s.Submit(ctx, "alpha", es); err != nil {
			close(stop)
			t.Fatalf("batch %d: %v (a deadlock times out)", b, err)
		}
	}
	close(stop)
	wg.Wait()
}
