package consortium_test

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"google.golang.org/protobuf/proto"
)

// forkPair is a member's two histories: they share the first common entries, then differ.
type forkPair struct {
	g      *consortium.Genesis
	ea, eb [][]byte
	a, b   *consortium.Checkpoint
}

func newForkPair(t *testing.T, common, sizeA, sizeB int) *forkPair {
	t.Helper()
	g := fixture.Genesis(1, fixture.Members("alpha", "bravo")...)
	la := testLog(t, g, "alpha", common)
	lb := testLog(t, g, "alpha", common)
	for i := common; i < sizeA; i++ {
		la.Append(fixture.Add(fixture.At(int64(100+i)), fixture.PDQ(100+i)))
	}
	for i := common; i < sizeB; i++ {
		lb.Append(fixture.Add(fixture.At(int64(100+i)), fixture.PDQ(200+i)))
	}
	return &forkPair{g: g, ea: la.Entries, eb: lb.Entries, a: open(t, g, la.Checkpoint()), b: open(t, g, lb.Checkpoint())}
}

// agreement computes, from both forks' entries, the claimed agreement at size n (true or not).
func (f *forkPair) agreement(t testing.TB, n uint64) *consortium.Agreement {
	t.Helper()
	ha, hb := fixture.StoredHashes(t, f.ea), fixture.StoredHashes(t, f.eb)
	root := func(h fixture.Hashes, k uint64) consortium.Hash {
		r, err := consortium.TreeHash(h, k)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	prove := func(h fixture.Hashes, k, size uint64) []consortium.Hash {
		p, err := consortium.ProveConsistency(h, k, size)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	return &consortium.Agreement{
		Size: n, Root: root(ha, n),
		ProofA: prove(ha, n, f.a.Size), ProofB: prove(hb, n, f.b.Size),
		NextA: root(ha, n+1), NextB: root(hb, n+1),
		NextProofA: prove(ha, n+1, f.a.Size), NextProofB: prove(hb, n+1, f.b.Size),
	}
}

// evidence returns the unresolved evidence of the pair (a.Size <= b.Size).
func (f *forkPair) evidence(t testing.TB) *consortium.Evidence {
	t.Helper()
	if f.a.Size == f.b.Size {
		ev, err := consortium.SameSizeEvidence(f.a, f.b)
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	hb := fixture.StoredHashes(t, f.eb)
	prefix, _ := consortium.TreeHash(hb, f.a.Size)
	proof, _ := consortium.ProveConsistency(hb, f.a.Size, f.b.Size)
	ev, err := consortium.ForkEvidence(f.a, f.b, prefix, proof)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestResolvedEvidence(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		common, sizeA, sizeB int
	}{
		{"fork after 5, sizes 9 and 13", 5, 9, 13},
		{"same size", 6, 11, 11},
		{"fork at the first entry", 0, 3, 7},
		{"fork at the smaller head's last entry", 8, 9, 20},
		{"one entry each", 0, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newForkPair(t, tc.common, tc.sizeA, tc.sizeB)
			n := uint64(tc.common)
			ev, err := f.evidence(t).Resolve(f.agreement(t, n))
			if err != nil {
				t.Fatalf("true agreement at %d refused: %v", n, err)
			}
			back, err := consortium.ParseEvidence(f.g.ID, f.g, ev.Marshal())
			if err != nil {
				t.Fatalf("resolved evidence does not verify offline: %v", err)
			}
			if got, ok := back.AgreedSize(); !ok || got != n {
				t.Errorf("got agreed size %d (resolved %v), want %d", got, ok, n)
			}
			// Found from both trees by binary search, the same agreement.
			g, err := consortium.AgreementOf(f.a, f.b, fixture.StoredHashes(t, f.ea), fixture.StoredHashes(t, f.eb))
			if err != nil || g.Size != n || g.Root != ev.Agreement.Root || g.NextB != ev.Agreement.NextB {
				t.Errorf("AgreementOf: got %+v, %v, want agreed size %d", g, err, n)
			}
		})
	}
}

// TestForgedAgreement: a member (or anyone relaying its evidence) claims another agreed size to
// cut the log elsewhere; every such claim is refused.
func TestForgedAgreement(t *testing.T) {
	f := newForkPair(t, 5, 9, 13)
	base := f.evidence(t)
	flip := func(h consortium.Hash) consortium.Hash { h[0] ^= 1; return h }
	for _, tc := range []struct {
		name  string
		forge func() *consortium.Agreement
	}{
		{"too small", func() *consortium.Agreement { return f.agreement(t, 4) }},
		{"much too small", func() *consortium.Agreement { return f.agreement(t, 0) }},
		{"too large", func() *consortium.Agreement { return f.agreement(t, 6) }},
		{"too large, a's roots for both", func() *consortium.Agreement {
			g := f.agreement(t, 7)
			g.ProofB = g.ProofA
			return g
		}},
		{"at the smaller size", func() *consortium.Agreement {
			g := f.agreement(t, 8)
			g.NextA, g.NextProofA = f.a.Root, nil
			return g
		}},
		{"beyond both", func() *consortium.Agreement { g := f.agreement(t, 5); g.Size = 20; return g }},
		{"wrong agreed root", func() *consortium.Agreement { g := f.agreement(t, 5); g.Root = flip(g.Root); return g }},
		{"wrong next root", func() *consortium.Agreement { g := f.agreement(t, 5); g.NextB = flip(g.NextB); return g }},
		{"equal next roots", func() *consortium.Agreement { g := f.agreement(t, 5); g.NextB = g.NextA; return g }},
		{"swapped agreed proofs", func() *consortium.Agreement {
			g := f.agreement(t, 5)
			g.ProofA, g.ProofB = g.ProofB, g.ProofA
			return g
		}},
		{"swapped next proofs", func() *consortium.Agreement {
			g := f.agreement(t, 5)
			g.NextProofA, g.NextProofB = g.NextProofB, g.NextProofA
			return g
		}},
		{"swapped next roots", func() *consortium.Agreement {
			g := f.agreement(t, 5)
			g.NextA, g.NextB = g.NextB, g.NextA
			return g
		}},
		{"size 0 with a proof", func() *consortium.Agreement {
			g := f.agreement(t, 0)
			g.ProofA = []consortium.Hash{g.Root}
			return g
		}},
		{"no proofs", func() *consortium.Agreement {
			g := f.agreement(t, 5)
			g.ProofA, g.ProofB, g.NextProofA, g.NextProofB = nil, nil, nil, nil
			return g
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := tc.forge()
			if _, err := base.Resolve(g); !errors.Is(err, consortium.ErrMalformed) {
				t.Errorf("Resolve: got %v, want ErrMalformed", err)
			}
			// The same forgery on the wire.
			wire := *base
			wire.Agreement = g
			if _, err := consortium.ParseEvidence(f.g.ID, f.g, wire.Marshal()); !errors.Is(err, consortium.ErrMalformed) {
				t.Errorf("ParseEvidence: got %v, want ErrMalformed", err)
			}
		})
	}
	t.Run("partial resolution on the wire", func(t *testing.T) {
		p := base.Proto()
		p.AgreedRoot = make([]byte, consortium.HashSize)
		if _, err := consortium.EvidenceFromProto(f.g.ID, f.g, p); !errors.Is(err, consortium.ErrMalformed) {
			t.Errorf("got %v, want ErrMalformed", err)
		}
		ev, _ := base.Resolve(f.agreement(t, 5))
		p = ev.Proto()
		p.NextRootB = p.NextRootB[:5]
		if _, err := consortium.EvidenceFromProto(f.g.ID, f.g, p); !errors.Is(err, consortium.ErrMalformed) {
			t.Errorf("short next root: got %v, want ErrMalformed", err)
		}
	})
	t.Run("old form still proves misbehaviour", func(t *testing.T) {
		back, err := consortium.ParseEvidence(f.g.ID, f.g, base.Marshal())
		if err != nil {
			t.Fatal(err)
		}
		if back.Resolved() {
			t.Error("evidence without an agreed size reads as resolved")
		}
	})
}

func TestSearchAgreedSize(t *testing.T) {
	for _, limit := range []uint64{1, 2, 3, 7, 8, 100, 1 << 20} {
		for _, n := range []uint64{0, 1, limit / 2, limit - 1} {
			if n >= limit {
				continue
			}
			calls := 0
			got, err := consortium.SearchAgreedSize(limit, func(k uint64) (bool, error) {
				calls++
				if k == 0 || k >= limit {
					t.Fatalf("asked about size %d, outside (0, %d)", k, limit)
				}
				return k <= n, nil
			})
			if err != nil || got != n {
				t.Errorf("limit %d: got %d, %v, want %d", limit, got, err, n)
			}
			if max := 64 - countLeadingZeros(limit) + 1; calls > max {
				t.Errorf("limit %d: %d calls, want at most %d", limit, calls, max)
			}
		}
	}
}

func countLeadingZeros(x uint64) int {
	n := 0
	for i := 63; i >= 0 && x&(1<<i) == 0; i-- {
		n++
	}
	return n
}

// TestCutoffs: the cutoff is a total function of the set of evidence. Resolved evidence cuts at
// the smallest agreed size; unresolved evidence alone cuts at 0 (the member's log has no effect
// until where its histories part is proven). A node keeps, per member, only the evidence that
// supersedes what it holds: in every order of arrival it ends with the cutoff of the whole set.
func TestCutoffs(t *testing.T) {
	f := newForkPair(t, 5, 9, 13)
	unresolved := f.evidence(t)
	at := func(n uint64) *consortium.Evidence {
		// Another pair of alpha's forks that parts at n.
		g := newForkPair(t, int(n), int(n)+2, int(n)+4)
		ev, err := g.evidence(t).Resolve(g.agreement(t, n))
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	e5, e3, e7 := at(5), at(3), at(7)
	all := []*consortium.Evidence{e5, unresolved, e3, e7}
	for _, p := range orders(len(all)) {
		var evs []*consortium.Evidence
		var held *consortium.Evidence // what a node keeps, receiving the evidence in this order
		for _, i := range p {
			evs = append(evs, all[i])
			if all[i].Supersedes(held) {
				held = all[i]
			}
			// After each arrival, the kept evidence gives the cutoff of everything received so far.
			got, want := consortium.Cutoffs([]*consortium.Evidence{held}), consortium.Cutoffs(evs)
			if !maps.Equal(got, want) {
				t.Errorf("order %v, after %d: kept evidence gives %v, all received gives %v", p, len(evs), got, want)
			}
		}
		if got := consortium.Cutoffs(evs); len(got) != 1 || got["alpha"] != 3 {
			t.Errorf("order %v: got %v, want alpha: 3", p, got)
		}
	}
	for _, tc := range []struct {
		name string
		evs  []*consortium.Evidence
		want map[string]uint64
	}{
		{"none", nil, map[string]uint64{}},
		{"unresolved alone cuts at 0", []*consortium.Evidence{unresolved}, map[string]uint64{"alpha": 0}},
		{"unresolved twice", []*consortium.Evidence{unresolved, unresolved}, map[string]uint64{"alpha": 0}},
		{"resolved raises the cutoff from 0", []*consortium.Evidence{unresolved, e7}, map[string]uint64{"alpha": 7}},
		{"resolved first", []*consortium.Evidence{e7, unresolved}, map[string]uint64{"alpha": 7}},
	} {
		if got := consortium.Cutoffs(tc.evs); !maps.Equal(got, tc.want) {
			t.Errorf("%s: got cutoffs %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := consortium.Unresolved([]*consortium.Evidence{unresolved}); len(got) != 1 || got[0] != "alpha" {
		t.Errorf("got unresolved %v, want [alpha]", got)
	}
	if got := consortium.Unresolved(all); len(got) != 0 {
		t.Errorf("got unresolved %v, want none once resolved evidence is known", got)
	}
	// Which evidence a node keeps: a smaller agreed size supersedes; nothing supersedes it back.
	for _, tc := range []struct {
		name     string
		new, old *consortium.Evidence
		want     bool
	}{
		{"resolved over none", e5, nil, true},
		{"resolved over unresolved", e5, unresolved, true},
		{"unresolved over resolved", unresolved, e5, false},
		{"smaller over larger", e3, e5, true},
		{"larger over smaller", e7, e3, false},
		{"equal", e5, e5, false},
	} {
		if got := tc.new.Supersedes(tc.old); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestAuditAppliesCutoffs: an auditor holding either fork and the resolved evidence computes the
// state the nodes compute (the forking log up to the agreed size); with unresolved evidence alone
// it computes what every node holding only that evidence computes, the forking log cut at 0, and
// warns that the equivocation is not resolved.
func TestAuditAppliesCutoffs(t *testing.T) {
	f := newForkPair(t, 5, 9, 13)
	unresolved := f.evidence(t)
	resolved, err := unresolved.Resolve(f.agreement(t, 5))
	if err != nil {
		t.Fatal(err)
	}
	digestOf := func(n int) string {
		st, err := consortium.Replay(f.g, consortium.Logs{"alpha": f.ea[:n]}, consortium.ReplayOptions{})
		if err != nil {
			t.Fatal(err)
		}
		d := st.Digest()
		return fmt.Sprintf("%x", d[:])
	}
	bundle := func(entries [][]byte, cp *consortium.Checkpoint, evidence ...*consortium.Evidence) consortium.AuditInput {
		in := consortium.AuditInput{
			Genesis:     f.g.Marshal(),
			Logs:        consortium.Logs{"alpha": entries},
			Checkpoints: map[string][][]byte{"alpha": {cp.Note}},
		}
		for _, ev := range evidence {
			in.Evidence = append(in.Evidence, ev.Marshal())
		}
		return in
	}
	for _, tc := range []struct {
		name       string
		in         consortium.AuditInput
		wantDigest string
		wantWarn   string
	}{
		{"fork a, resolved", bundle(f.ea, f.a, resolved), digestOf(5), "first 5 entries"},
		{"fork b, resolved", bundle(f.eb, f.b, resolved), digestOf(5), "first 5 entries"},
		{"fork b, both forms", bundle(f.eb, f.b, unresolved, resolved), digestOf(5), "first 5 entries"},
		{"fork a, unresolved only", bundle(f.ea, f.a, unresolved), digestOf(0), "not resolved"},
		{"fork b, unresolved only", bundle(f.eb, f.b, unresolved), digestOf(0), "not resolved"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := consortium.Audit(tc.in, consortium.AuditOptions{})
			if !r.OK {
				t.Fatalf("got ok false, want true:\n%s", r)
			}
			if len(r.Equivocations) == 0 {
				t.Error("the equivocation is not reported")
			}
			if !strings.Contains(strings.Join(r.Warnings, "\n"), tc.wantWarn) {
				t.Errorf("warnings %q do not say %q", r.Warnings, tc.wantWarn)
			}
			if r.Digest != tc.wantDigest {
				t.Errorf("got digest %s, want %s", r.Digest, tc.wantDigest)
			}
		})
	}
}

// TestEvidenceReplayed: evidence is only ever about the checkpoints it carries, signed by the
// member it names in the consortium it is checked in. Replayed from another consortium, relabelled
// with another member, made of one checkpoint twice, with its checkpoints swapped, padded past the
// size bound, or naming a member the verifier's roster never admitted, it is refused.
func TestEvidenceReplayed(t *testing.T) {
	f := newForkPair(t, 5, 9, 13)
	ev, err := f.evidence(t).Resolve(f.agreement(t, 5))
	if err != nil {
		t.Fatal(err)
	}
	// The same member keys in another consortium (another genesis name, so another id).
	other := fixture.Genesis(2, fixture.Members("alpha", "bravo")...)
	if other.ID == f.g.ID {
		t.Fatal("test setup: both consortiums have one id")
	}
	// A verifier whose roster never had alpha: a consortium founded by bravo alone.
	noAlpha := fixture.Genesis(1, fixture.Members("bravo")...)
	for _, tc := range []struct {
		name string
		g    *consortium.Genesis
		edit func(p *pb.Equivocation)
		want error
	}{
		{"another consortium", other, nil, consortium.ErrMalformed},
		{"a member the roster never had", noAlpha, nil, consortium.ErrMalformed},
		{"relabelled with another member", f.g, func(p *pb.Equivocation) { p.Member = "bravo" }, consortium.ErrMalformed},
		{"one checkpoint twice", f.g, func(p *pb.Equivocation) {
			p.CheckpointA = p.CheckpointB
			p.PrefixRoot, p.ConsistencyProof = nil, nil
		}, consortium.ErrMalformed},
		{"checkpoints swapped", f.g, func(p *pb.Equivocation) { p.CheckpointA, p.CheckpointB = p.CheckpointB, p.CheckpointA }, consortium.ErrMalformed},
		{"oversized", f.g, func(p *pb.Equivocation) {
			for range 600 {
				p.NextProofA = append(p.NextProofA, make([]byte, consortium.HashSize))
			}
		}, consortium.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := ev.Proto()
			if tc.edit != nil {
				tc.edit(p)
			}
			raw, err := proto.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := consortium.ParseEvidence(tc.g.ID, tc.g, raw); err == nil {
				t.Errorf("accepted")
			} else if !errors.Is(err, tc.want) && !errors.Is(err, consortium.ErrUnknownMember) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := consortium.ParseEvidence(f.g.ID, f.g, ev.Marshal()); err != nil {
		t.Fatalf("the evidence itself: %v", err)
	}
}

// orders returns every order of 0..n-1.
func orders(n int) [][]int {
	if n == 0 {
		return [][]int{{}}
	}
	var out [][]int
	for _, p := range orders(n - 1) {
		for i := 0; i <= len(p); i++ {
			q := append(append(append([]int{}, p[:i]...), n-1), p[i:]...)
			out = append(out, q)
		}
	}
	return out
}
