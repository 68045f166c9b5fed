package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// TestCommitFailKeepsLazyCosignatures cosigns a stored head of another member's log (a cosignature
// kept in memory, written with the next write), then fails the commit of a verified range of that
// same log, which had made a newer checkpoint the head in memory: the reload must give back the
// head as it was, cosignature included, and a later write must store it.
func TestCommitFailKeepsLazyCosignatures(t *testing.T) {
	g := fixture.Genesis(2, fixture.Members("alpha", "bravo", "charlie")...)
	path := filepath.Join(t.TempDir(), "hashfed.db")
	o := DefaultOptions()
	o.NoSync = true
	s, err := Open(path, g, o)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if s != nil {
			s.Close()
		}
	}()
	bravo, cp2 := cosignedThenLonger(t, s, g)
	failed := errors.New("disk full")
	s.testCommit = func() error { return failed }
	err = s.AppendRange(cp2, 100, bravo.Entries[100:], nil)
	s.testCommit = nil
	if !errors.Is(err, failed) {
		t.Fatalf("range with a failing commit: got %v, want %v", err, failed)
	}
	if h, _ := s.Head("bravo"); h == nil || h.Size != 100 || !h.HasCosigner("alpha") {
		t.Fatalf("head of bravo after the failed commit: %v, want size 100 cosigned by alpha", headOf(h))
	}
	if err := s.FlushHeads(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(path, g, o); err != nil {
		t.Fatal(err)
	}
	if h, _ := s.Head("bravo"); h == nil || !h.HasCosigner("alpha") {
		t.Fatalf("reopened: head of bravo %v, want alpha's cosignature", headOf(h))
	}
}

// TestCommitAndReloadFailNoSignature fails a commit of the node's own entries after they were
// applied, and the reload that follows too (the file is gone): the store closes, and must then not
// sign (nor hand out to publish) a checkpoint of its own log, whose tree in memory holds entries
// that were never stored. After a restart those indices get other entries: a checkpoint signed now
// would be a fork of the member's own log. Close must still close the file.
func TestCommitAndReloadFailNoSignature(t *testing.T) {
	g := fixture.Genesis(2, fixture.Members("alpha", "bravo", "charlie")...)
	path := filepath.Join(t.TempDir(), "hashfed.db")
	o := DefaultOptions()
	o.NoSync = true
	s, err := Open(path, g, o)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if s != nil {
			s.Close()
		}
	}()
	key := fixture.Key("alpha")
	first, _ := pdqAdds(0, 10)
	if _, err := s.Submit(t.Context(), "alpha", first); err != nil {
		t.Fatal(err)
	}
	if cp, err := s.SignHead(key); err != nil || cp == nil || cp.Size != 10 {
		t.Fatalf("sign the head: %+v, %v", cp, err)
	}
	failed := errors.New("disk gone")
	s.testCommit = func() error {
		if err := os.Rename(path, path+".away"); err != nil {
			t.Error(err)
		}
		return failed
	}
	more, _ := pdqAdds(100, 10)
	_, err = s.Submit(t.Context(), "alpha", more)
	s.testCommit = nil
	if !errors.Is(err, failed) {
		t.Fatalf("submit with a failing commit: got %v, want %v", err, failed)
	}
	published := 0
	cp, err := s.SignHeadPublish(key, func(*consortium.Checkpoint) { published++ })
	if published > 0 || cp != nil && cp.Size > 10 {
		t.Fatalf("after a failed commit and reload: signed %v (published %d times), err %v; want no checkpoint beyond the stored 10 entries", headOf(cp), published, err)
	}
	if !errors.Is(err, ErrClosed) {
		t.Errorf("sign after a failed reload: got %v, want ErrClosed", err)
	}
	// Close must still release the file, so that the node can open it again and carry on from
	// what is stored.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".away", path); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(path, g, o); err != nil {
		t.Fatalf("reopen after closing: %v", err)
	}
	if got := s.Size("alpha"); got != 10 {
		t.Fatalf("reopened: alpha's log has %d entries, want the 10 stored", got)
	}
}

// TestCommitAndReloadFailReopens fails the commit of a verified range of bravo's log, and the
// reload after it (the file is gone), while bravo's stored head carries a cosignature not written
// yet: the head in memory is then the range's checkpoint, of entries never stored. Closing the store
// must not write it as bravo's head, which would leave a file that no longer opens.
func TestCommitAndReloadFailReopens(t *testing.T) {
	g := fixture.Genesis(2, fixture.Members("alpha", "bravo", "charlie")...)
	path := filepath.Join(t.TempDir(), "hashfed.db")
	o := DefaultOptions()
	o.NoSync = true
	s, err := Open(path, g, o)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if s != nil {
			s.Close()
		}
	}()
	bravo, cp2 := cosignedThenLonger(t, s, g)
	failed := errors.New("disk gone")
	s.testCommit = func() error {
		if err := os.Rename(path, path+".away"); err != nil {
			t.Error(err)
		}
		return failed
	}
	err = s.AppendRange(cp2, 100, bravo.Entries[100:], nil)
	s.testCommit = nil
	if !errors.Is(err, failed) {
		t.Fatalf("range with a failing commit: got %v, want %v", err, failed)
	}
	if err := s.Close(); err != nil {
		t.Logf("close: %v", err)
	}
	if err := os.Rename(path+".away", path); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(path, g, o); err != nil {
		t.Fatalf("reopen after closing: %v", err)
	}
	if h, _ := s.Head("bravo"); s.Size("bravo") != 100 || h == nil || h.Size != 100 {
		t.Fatalf("reopened: bravo's log has %d entries, head %v; want the 100 stored and their head", s.Size("bravo"), headOf(h))
	}
}

// TestCommitFailsWithCutoff fails the commit of the node's own entries while the store holds
// equivocation evidence against charlie (unresolved: none of charlie's log applies). The reload
// after the failed commit replays the stored logs in full; it must apply the stored cutoff again,
// so that readers see what they saw before (charlie's listings still out), and the next commit
// and a reopened store agree.
func TestCommitFailsWithCutoff(t *testing.T) {
	g := fixture.Genesis(2, fixture.Members("alpha", "bravo", "charlie")...)
	path := filepath.Join(t.TempDir(), "hashfed.db")
	o := DefaultOptions()
	o.NoSync = true
	s, err := Open(path, g, o)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if s != nil {
			s.Close()
		}
	}()
	const label = "behaviour:glorification-of-terrorist-acts"
	charlie, fork := fixture.NewLog(g.ID, fixture.Key("charlie")), fixture.NewLog(g.ID, fixture.Key("charlie"))
	var charlieSigs []consortium.Signal
	for i := range 8 {
		charlieSigs = append(charlieSigs, fixture.PDQ(30_000+i))
		charlie.Append(fixture.Add(fixture.At(int64(i)), charlieSigs[i], label))
		fork.Append(fixture.Add(fixture.At(int64(i)), fixture.PDQ(40_000+i), label))
	}
	cp, err := consortium.OpenCheckpoint(g.ID, g, charlie.Checkpoint())
	if err != nil {
		t.Fatal(err)
	}
	fcp, err := consortium.OpenCheckpoint(g.ID, g, fork.Checkpoint())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AppendRange(cp, 0, charlie.Entries, nil); err != nil {
		t.Fatal(err)
	}
	matchesOnly(t, s, charlieSigs, true)
	ev, err := consortium.SameSizeEvidence(cp, fcp)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := s.RecordEvidence(ev); !ok || err != nil {
		t.Fatalf("record evidence: %v, %v", ok, err)
	}
	matchesOnly(t, s, charlieSigs, false)
	es, sigs := pdqAdds(0, 300)
	all := append(slices.Clone(charlieSigs), sigs...)
	before, cutBefore := viewOf(t, s, all), s.Cutoffs()
	failed := errors.New("disk full")
	s.testCommit = func() error { return failed }
	_, err = s.Submit(t.Context(), "alpha", es)
	s.testCommit = nil
	if !errors.Is(err, failed) {
		t.Fatalf("submit with a failing commit: got %v, want %v", err, failed)
	}
	if got := viewOf(t, s, all); !got.equal(before) {
		t.Fatalf("after the failed commit readers see %+v, want %+v", got, before)
	}
	if got := s.Cutoffs(); !maps.Equal(got, cutBefore) {
		t.Fatalf("cutoffs after the failed commit: got %v, want %v", got, cutBefore)
	}
	if _, err := s.Submit(t.Context(), "alpha", es); err != nil {
		t.Fatal(err)
	}
	matchesOnly(t, s, charlieSigs, false)
	matchesOnly(t, s, sigs, true)
	want := viewOf(t, s, all)
	s.Close()
	if s, err = Open(path, g, o); err != nil {
		t.Fatal(err)
	}
	if got := viewOf(t, s, all); !got.equal(want) {
		t.Fatalf("reopened: %+v, want %+v", got, want)
	}
}

// TestCommitRevokeByIndexDuringGrowth commits large batches that grow the file (so that their
// commits remap it, waiting for every open read transaction) and each revoke by index an entry of
// the batch before: the apply, which runs beside the commit under the exclusive lock, reads that
// entry in a read transaction of its own. Readers of every kind, video frames and lookups
// included, run meanwhile. Nothing may deadlock, and the revoked entries must not match.
func TestCommitRevokeByIndexDuringGrowth(t *testing.T) {
	s := openCommitStore(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	probe := fixture.PDQ(3)
	for r := range 3 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				switch (r + i) % 6 {
				case 0:
					s.MatchPDQ(probe.Value, Query{Quality: -1})
				case 1:
					s.MatchPDQFrames(probe.Value, Query{Quality: -1})
				case 2:
					s.Lookup(probe)
				case 3:
					s.Feed(uint64(i), 50)
				case 4:
					if n := s.Size("alpha"); n > 0 {
						s.ProveInclusion("alpha", 0, n)
					}
				case 5:
					s.View(func(*consortium.State) {})
				}
			}
		})
	}
	const per = 5000
	var revoked []consortium.Signal
	prev := uint64(0) // where the batch before starts in the log
	for b := range 6 {
		es, _ := pdqAdds(b*per, per)
		if b > 0 {
			es = append(es, &pb.Entry{Op: &pb.Entry_Revoke{Revoke: &pb.Revoke{Reason: pb.RevokeReason_REVOKE_REASON_OTHER, Target: &pb.Revoke_Index{Index: prev + 7}}}})
			revoked = append(revoked, fixture.PDQ((b-1)*per+7))
		}
		prev = s.Size("alpha")
		out, err := s.Submit(ctx, "alpha", es)
		if err != nil {
			close(stop)
			t.Fatalf("batch %d: %v (a deadlock times out)", b, err)
		}
		if a := out[len(out)-1]; a.Err != nil {
			close(stop)
			t.Fatalf("batch %d: last entry refused: %v", b, a.Err)
		}
	}
	close(stop)
	wg.Wait()
	matchesOnly(t, s, revoked, false)
	if got, want := s.Digest(), replayed(t, s); got != want {
		t.Fatalf("digest %x, want %x (replayed)", got, want)
	}
}

// headOf describes a checkpoint by its size and cosigners.
func headOf(cp *consortium.Checkpoint) string {
	if cp == nil {
		return "none"
	}
	return fmt.Sprintf("size %d cosigned by %v", cp.Size, cp.Cosigners)
}

// cosignedThenLonger stores 100 entries of bravo's log with their checkpoint, cosigns it as alpha
// (a cosignature held in memory, written with the next write), and returns bravo's log grown by 10
// more entries and its checkpoint, not stored.
func cosignedThenLonger(t *testing.T, s *Store, g *consortium.Genesis) (*fixture.Log, *consortium.Checkpoint) {
	t.Helper()
	bravo := fixture.NewLog(g.ID, fixture.Key("bravo"))
	for i := range 100 {
		bravo.Append(fixture.Add(fixture.At(int64(i)), fixture.PDQ(10_000+i), "behaviour:glorification-of-terrorist-acts"))
	}
	cp1, err := consortium.OpenCheckpoint(g.ID, g, bravo.Checkpoint())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AppendRange(cp1, 0, bravo.Entries, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Cosign("bravo", fixture.Key("alpha"), fixture.Epoch); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		bravo.Append(fixture.Add(fixture.At(int64(200+i)), fixture.PDQ(20_000+i), "behaviour:glorification-of-terrorist-acts"))
	}
	cp2, err := consortium.OpenCheckpoint(g.ID, g, bravo.Checkpoint())
	if err != nil {
		t.Fatal(err)
	}
	return bravo, cp2
}
