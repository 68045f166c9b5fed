package consortium

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

type memTree []tlog.Hash

func (m memTree) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = m[x]
	}
	return out, nil
}

func treeOf(t *testing.T, entries [][]byte) memTree {
	t.Helper()
	var m memTree
	for i, e := range entries {
		hs, err := tlog.StoredHashes(int64(i), e, m)
		if err != nil {
			t.Fatal(err)
		}
		m = append(m, hs...)
	}
	return m
}

// TestAuditThirdFork: a bundle collected from a node that holds a third history of a forking
// member (it parts from the evidence's two before their agreed size) must not be cut at the
// evidence's cutoff as if it were the agreed tree: that state is no node's. The audit says so.
func TestAuditThirdFork(t *testing.T) {
	seed := sha256.Sum256([]byte("alpha"))
	key, _ := NewPrivateKey("alpha", seed[:])
	g := &Genesis{Members: []Member{{ID: "alpha", Key: key.Public().Key, Role: 1}}}
	// The tree is all that matters here: entries need not be valid.
	entry := func(_, v int) []byte { return fmt.Appendf(nil, "entry %d", v) }
	var ea, eb, ec [][]byte
	for i := range 6 {
		ea = append(ea, entry(i+1, i))
		switch {
		case i < 4:
			eb = append(eb, entry(i+1, i))
		default:
			eb = append(eb, entry(i+1, 100+i))
		}
		if i < 2 {
			ec = append(ec, entry(i+1, i))
		} else {
			ec = append(ec, entry(i+1, 200+i))
		}
	}
	cp := func(es [][]byte) *Checkpoint {
		tr := NewTree()
		for _, e := range es {
			tr.AppendEntry(e)
		}
		note, err := SignCheckpoint(g.ID, key, tr.Size(), tr.Root())
		if err != nil {
			t.Fatal(err)
		}
		c, err := OpenCheckpoint(g.ID, g, note)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b := cp(ea), cp(eb)
	agreement, err := AgreementOf(a, b, treeOf(t, ea), treeOf(t, eb))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := SameSizeEvidence(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if ev, err = ev.Resolve(agreement); err != nil {
		t.Fatal(err)
	}
	evs := []*Evidence{ev}
	sizes, _ := auditCutoffs(evs)
	if sizes["alpha"] != 4 {
		t.Fatalf("cutoffs %v; want alpha cut at 4", sizes)
	}
	for _, tc := range []struct {
		name string
		log  [][]byte
		fail bool
	}{
		{"history a", ea, false},
		{"history b", eb, false},
		{"shorter than the cutoff", ea[:3], false},
		{"third history", ec, true},
	} {
		ms, got := auditThirdForks(sizes, evs, Logs{"alpha": tc.log})
		if (len(got) != 0) != tc.fail || tc.fail && (!strings.Contains(got[0], "third history") || ms[0] != "alpha") {
			t.Errorf("%s: got failures %q, want failure %v", tc.name, got, tc.fail)
		}
	}
}
