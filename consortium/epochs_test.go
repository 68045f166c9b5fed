package consortium_test

import (
	"math/rand/v2"
	"testing"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
)

// TestVotesForFutureEpochs: votes written before their epoch exists count once the roster reaches
// it, in every apply order; and a log full of proposals for epochs the roster never reaches (a
// member flooding its log) replays in linear time. Each such proposal used to recompute the whole
// roster, sorting every proposal so far: 20,000 of them took over ten minutes to replay, so one
// member could stall every node's start and every audit.
func TestVotesForFutureEpochs(t *testing.T) {
	g := fixture.Genesis(2, fixture.Members("alpha", "bravo", "charlie")...)
	logs := consortium.Logs{}
	var entries = map[string][][]byte{}
	write := func(member string, es ...[]byte) { entries[member] = append(entries[member], es...) }
	raw := func(e []byte, err error) []byte {
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	// Epoch 1 does not exist yet: alpha proposes for it, bravo and charlie endorse that early
	// (epoch 1 will have four voting members, so three votes are needed).
	p1 := raw(consortium.MarshalEntry(fixture.Admit(fixture.At(1), "alpha", 1, "delta")))
	write("alpha", p1)
	write("charlie", raw(consortium.MarshalEntry(fixture.Endorse(fixture.At(2), 1, p1))))
	write("bravo", raw(consortium.MarshalEntry(fixture.Endorse(fixture.At(2), 1, p1))))
	// Epoch 0: bravo proposes echo, alpha endorses; that makes epoch 1, where alpha's early
	// proposal and the early endorsements then win.
	p0 := raw(consortium.MarshalEntry(fixture.Admit(fixture.At(3), "bravo", 0, "echo")))
	write("bravo", p0)
	write("alpha", raw(consortium.MarshalEntry(fixture.Endorse(fixture.At(4), 0, p0))))
	// alpha floods its log with proposals for epochs the roster never reaches.
	const flood = 20000
	for i := range flood {
		write("alpha", raw(consortium.MarshalEntry(fixture.Admit(fixture.At(int64(10+i)), "alpha", uint64(100+i), "foxtrot"))))
	}
	for m, es := range entries {
		logs[m] = es
	}
	ref, err := consortium.Replay(g, logs, consortium.ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := ref.Roster().Epoch; got != 2 {
		t.Fatalf("got epoch %d, want 2 (echo admitted in epoch 0, delta by the early votes of epoch 1)", got)
	}
	for _, id := range []string{"delta", "echo"} {
		if _, ok := ref.Roster().Member(id); !ok {
			t.Errorf("%s not on the roster", id)
		}
	}
	if _, ok := ref.Roster().Member("foxtrot"); ok {
		t.Error("foxtrot admitted by a proposal of an epoch the roster never reached")
	}
	r := rand.New(rand.NewPCG(7, 7))
	for o := range 6 {
		s := interleave(t, r, g, logs, fullSizes(logs))
		if s.Digest() != ref.Digest() || describeChain(s) != describeChain(ref) {
			t.Fatalf("order %d: chain\n%s\nwant\n%s", o, describeChain(s), describeChain(ref))
		}
	}
}
