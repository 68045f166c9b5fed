package consortium_test

import (
	"errors"
	"testing"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
)

func open(t *testing.T, g *consortium.Genesis, msg []byte) *consortium.Checkpoint {
	t.Helper()
	cp, err := consortium.OpenCheckpoint(g.ID, g, msg)
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

func TestEquivocationEvidence(t *testing.T) {
	g := fixture.Genesis(1, fixture.Members("alpha", "bravo")...)
	// alpha shows two histories: both start with the same 3 entries, then differ.
	honest := testLog(t, g, "alpha", 3)
	fork := testLog(t, g, "alpha", 3)
	for i := 0; i < 4; i++ {
		honest.Append(fixture.Add(fixture.At(int64(100+i)), fixture.PDQ(100+i)))
		fork.Append(fixture.Add(fixture.At(int64(100+i)), fixture.PDQ(200+i)))
	}
	a5 := func() []byte { // honest at size 5
		l := testLog(t, g, "alpha", 3)
		for _, e := range honest.Entries[3:5] {
			l.AppendRaw(e)
		}
		return l.Checkpoint()
	}()
	cpA5 := open(t, g, a5)
	cpHonest7 := open(t, g, honest.Checkpoint())
	cpFork7 := open(t, g, fork.Checkpoint())

	t.Run("same size, two roots", func(t *testing.T) {
		ev, err := consortium.SameSizeEvidence(cpHonest7, cpFork7)
		if err != nil {
			t.Fatal(err)
		}
		back, err := consortium.ParseEvidence(g.ID, g, ev.Marshal())
		if err != nil {
			t.Fatalf("evidence does not verify offline: %v", err)
		}
		if back.Member != "alpha" || back.A.Size != 7 {
			t.Errorf("got %+v", back)
		}
	})
	t.Run("smaller tree not a prefix", func(t *testing.T) {
		hs := fixture.StoredHashes(t, fork.Entries)
		prefix, _ := consortium.TreeHash(hs, 5)
		proof, _ := consortium.ProveConsistency(hs, 5, 7)
		ev, err := consortium.ForkEvidence(cpA5, cpFork7, prefix, proof)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := consortium.ParseEvidence(g.ID, g, ev.Marshal()); err != nil {
			t.Fatalf("evidence does not verify offline: %v", err)
		}
		// Evidence against an honest pair is impossible: the honest prefix root equals A's root.
		hh := fixture.StoredHashes(t, honest.Entries)
		hp, _ := consortium.TreeHash(hh, 5)
		hproof, _ := consortium.ProveConsistency(hh, 5, 7)
		if _, err := consortium.ForkEvidence(cpA5, cpHonest7, hp, hproof); !errors.Is(err, consortium.ErrMalformed) {
			t.Errorf("honest pair accepted as evidence: %v", err)
		}
		// A made-up prefix root does not pass the consistency proof.
		if _, err := consortium.ForkEvidence(cpA5, cpHonest7, consortium.LeafHash([]byte("x")), hproof); !errors.Is(err, consortium.ErrMalformed) {
			t.Errorf("forged prefix root accepted: %v", err)
		}
	})
	t.Run("checkpoint by another key", func(t *testing.T) {
		ev, _ := consortium.SameSizeEvidence(cpHonest7, cpFork7)
		p := ev.Proto()
		p.CheckpointB, _ = consortium.SignCheckpoint(g.ID, fixture.Key("bravo"), 7, cpFork7.Root)
		if _, err := consortium.EvidenceFromProto(g.ID, g, p); err == nil {
			t.Error("evidence mixing two members' checkpoints accepted")
		}
	})
}
