package store

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

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
