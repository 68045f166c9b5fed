package node

import (
	"testing"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
)

// putHeadsNote stores signer's heads note naming heads, as a Heads exchange would.
func putHeadsNote(t *testing.T, n *Node, signer string, heads ...*consortium.Checkpoint) {
	t.Helper()
	var hs []consortium.LogHead
	for _, cp := range heads {
		h, err := consortium.HeadOf(cp)
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	raw, err := consortium.SignHeads(n.g.ID, fixture.Key(signer), time.Now(), hs)
	if err != nil {
		t.Fatal(err)
	}
	n.takeHeadsNote(signer, raw)
	if held, _ := n.store.HeadsNotes(); held[signer] == nil {
		t.Fatalf("%s's heads note was not stored", signer)
	}
}

// TestExportKeepsNotesOfLogsWithoutCheckpoint: the audit bundle keeps every heads note that names a
// log the node holds no checkpoint of. A note naming a log the node holds none of (it knows of the
// log only through the note) is the only signed word in the bundle that the log exists: left out,
// the bundle would pass its audit without the log, so it is kept and the audit fails, naming the
// log (omitted). A note naming a forked log the node holds only the agreed entries of (verified by
// the resolved evidence, PROTOCOL.md section 11) beyond its cutoff has no effect there: kept, the
// audit warns and passes.
func TestExportKeepsNotesOfLogsWithoutCheckpoint(t *testing.T) {
	t.Run("log known only through a heads note", func(t *testing.T) {
		n := startTestNode(t, "alpha", nil)
		bl := fixture.NewLog(n.g.ID, fixture.Key("beta"))
		bl.Append(fixture.Add(fixture.At(0), fixture.MD5(1)))
		cp, err := n.openCheckpoint(bl.Checkpoint())
		if err != nil {
			t.Fatal(err)
		}
		putHeadsNote(t, n, "obs", cp) // alpha holds nothing of beta's log
		in, err := n.AuditInput(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if in.Heads["obs"] == nil {
			t.Fatalf("got heads notes of %v in the bundle, want obs's, which names beta's log", keysOf(in.Heads))
		}
		r := consortium.Audit(in, consortium.AuditOptions{})
		if r.OK || len(r.Failures) != 1 || r.Failures[0].Rule != consortium.RuleOmitted || r.Failures[0].Log != "beta" {
			t.Errorf("audit of the bundle: got failures %q, want beta omitted", r.FailureText())
		}
	})
	t.Run("agreed entries of a forked log", func(t *testing.T) {
		n := startTestNode(t, "alpha", nil)
		la, lb := fixture.NewLog(n.g.ID, fixture.Key("beta")), fixture.NewLog(n.g.ID, fixture.Key("beta"))
		for i := range 3 {
			e := fixture.Add(fixture.At(int64(i)), fixture.MD5(i))
			la.Append(e)
			lb.Append(e)
		}
		for i := 3; i < 5; i++ {
			la.Append(fixture.Add(fixture.At(int64(i)), fixture.MD5(100+i)))
		}
		for i := 3; i < 7; i++ {
			lb.Append(fixture.Add(fixture.At(int64(i)), fixture.MD5(200+i)))
		}
		a, err := n.openCheckpoint(la.Checkpoint())
		if err != nil {
			t.Fatal(err)
		}
		b, err := n.openCheckpoint(lb.Checkpoint())
		if err != nil {
			t.Fatal(err)
		}
		hb := fixture.StoredHashes(t, lb.Entries)
		prefix, _ := consortium.TreeHash(hb, a.Size)
		proof, _ := consortium.ProveConsistency(hb, a.Size, b.Size)
		ev, err := consortium.ForkEvidence(a, b, prefix, proof)
		if err != nil {
			t.Fatal(err)
		}
		agreement, err := consortium.AgreementOf(a, b, fixture.StoredHashes(t, la.Entries), hb)
		if err != nil {
			t.Fatal(err)
		}
		if ev, err = ev.Resolve(agreement); err != nil {
			t.Fatal(err)
		}
		if _, err := n.store.RecordEvidence(ev); err != nil {
			t.Fatal(err)
		}
		if err := n.store.AppendAgreed(a, nil, 0, la.Entries[:3], nil); err != nil {
			t.Fatal(err)
		}
		putHeadsNote(t, n, "obs", b) // beyond the cutoff 3: the other history, no effect
		in, err := n.AuditInput(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if in.Heads["obs"] == nil {
			t.Errorf("got heads notes of %v in the bundle, want obs's, which names beta's forked log", keysOf(in.Heads))
		}
		if got := len(in.Logs["beta"]); got != 3 {
			t.Errorf("got %d of beta's entries in the bundle, want the 3 agreed ones", got)
		}
		if r := consortium.Audit(in, consortium.AuditOptions{RequireHeads: 2}); !r.OK {
			t.Errorf("audit of the bundle with 2 heads notes required: got failures, want ok:\n%s", r)
		}
	})
}

func keysOf[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
