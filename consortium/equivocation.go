package consortium

import (
	"fmt"
	"maps"
	"slices"

	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"google.golang.org/protobuf/proto"
)

// MaxEvidenceSize bounds an encoded equivocation proof: two checkpoints, the prefix proof and the
// resolution's four proofs (at most 128 hashes each) and roots.
const MaxEvidenceSize = 2*MaxCheckpointSize + 24<<10

// maxProofHashes bounds each consistency proof in evidence (a proof between trees of up to 2^64
// entries has at most 128 hashes).
const maxProofHashes = 128

// Evidence is verified proof that a member signed two checkpoints of its log that cannot both be
// true: the same size with different roots, or a smaller tree that is not a prefix of the larger.
// Anyone holding the member's public key can check it offline.
type Evidence struct {
	Member string
	// A and B are the two checkpoints, A.Size <= B.Size.
	A, B *Checkpoint
	// PrefixRoot is B's tree at A.Size (when A.Size < B.Size), proven by Proof; it differs from A.Root.
	PrefixRoot Hash
	Proof      []Hash
	// Agreement, when not nil, resolves the equivocation: it proves where the two trees part. Only
	// resolved evidence sets a cutoff (see [Cutoffs]).
	Agreement *Agreement
}

// Agreement proves the agreed size of two incompatible checkpoints A and B of one log: the largest
// size at which both trees have the same root. Size < min(A.Size, B.Size) always holds, because the
// trees differ at the smaller size.
type Agreement struct {
	// Size is the agreed size n; Root is both trees' root at n (the empty root when n = 0), proven
	// by ProofA (from (n, Root) to A) and ProofB (to B).
	Size           uint64
	Root           Hash
	ProofA, ProofB []Hash
	// NextA and NextB are A's and B's roots at n+1, which differ, proven by NextProofA (from
	// (n+1, NextA) to A) and NextProofB (from (n+1, NextB) to B); a proof is empty when n+1 is that
	// checkpoint's size (the root is then the checkpoint's).
	NextA, NextB           Hash
	NextProofA, NextProofB []Hash
}

// Resolved reports whether the evidence carries a proven agreed size.
func (e *Evidence) Resolved() bool { return e != nil && e.Agreement != nil }

// AgreedSize returns the proven agreed size and true for resolved evidence, and 0, false otherwise
// (also for nil).
func (e *Evidence) AgreedSize() (uint64, bool) {
	if e == nil || e.Agreement == nil {
		return 0, false
	}
	return e.Agreement.Size, true
}

// Supersedes reports whether e should replace old as the evidence a node keeps against a member:
// resolved evidence replaces unresolved evidence, and resolved evidence with a smaller agreed size
// replaces resolved evidence with a larger one. Nodes that keep the superseding evidence converge
// on the smallest agreed size any of them has proven.
func (e *Evidence) Supersedes(old *Evidence) bool {
	if old == nil {
		return true
	}
	n, ok := e.AgreedSize()
	if !ok {
		return false
	}
	o, ok := old.AgreedSize()
	return !ok || n < o
}

// Cutoffs returns, for every member with evidence against it, the cutoff F(M): the smallest
// agreed size over the resolved evidence against M, or 0 when none of that evidence is resolved
// (the trees' agreed size is not proven, and nothing else in the evidence bounds it from below, so
// none of M's entries is known to be in every node's copy). The state applies only the first F(M)
// entries of M's log (PROTOCOL.md sections 5.2 and 7). The result depends only on the set of
// evidence, not its order; resolved evidence arriving after unresolved evidence raises the
// cutoff from 0, and only resolved evidence with a smaller agreed size lowers it after that.
func Cutoffs(evidence []*Evidence) map[string]uint64 {
	out := map[string]uint64{}
	resolved := map[string]bool{}
	for _, e := range evidence {
		n, ok := e.AgreedSize()
		if !ok {
			if _, have := out[e.Member]; !have {
				out[e.Member] = 0
			}
			continue
		}
		if f, have := out[e.Member]; !resolved[e.Member] || !have || n < f {
			out[e.Member] = n
			resolved[e.Member] = true
		}
	}
	return out
}

// SearchAgreedSize finds the agreed size of two incompatible trees by binary search: same(n)
// reports whether both trees have the same root at size n, which holds up to the agreed size and
// not after; limit is a size at which they differ (the smaller checkpoint's size). It returns the
// largest n < limit with same(n), calling same O(log limit) times, never with 0 or limit.
func SearchAgreedSize(limit uint64, same func(n uint64) (bool, error)) (uint64, error) {
	if limit == 0 {
		return 0, fmt.Errorf("%w: trees of size 0 cannot differ", ErrMalformed)
	}
	lo, hi := uint64(0), limit // same at lo, different at hi
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		ok, err := same(mid)
		if err != nil {
			return 0, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// AgreementOf computes the agreement of two incompatible checkpoints of one log from both trees'
// stored hashes (ra holds a's tree, rb b's, each at least up to its checkpoint's size), for an
// auditor or a node that holds both forks. It checks the result.
func AgreementOf(a, b *Checkpoint, ra, rb HashReader) (*Agreement, error) {
	roots := func(r HashReader, k, size uint64) (Hash, []Hash, error) {
		root, err := TreeHash(r, k)
		if err != nil {
			return Hash{}, nil, err
		}
		proof, err := ProveConsistency(r, k, size)
		return root, proof, err
	}
	n, err := SearchAgreedSize(min(a.Size, b.Size), func(k uint64) (bool, error) {
		x, err := TreeHash(ra, k)
		if err != nil {
			return false, err
		}
		y, err := TreeHash(rb, k)
		return x == y, err
	})
	if err != nil {
		return nil, err
	}
	g := &Agreement{Size: n}
	var errs [4]error
	g.Root, g.ProofA, errs[0] = roots(ra, n, a.Size)
	_, g.ProofB, errs[1] = roots(rb, n, b.Size)
	g.NextA, g.NextProofA, errs[2] = roots(ra, n+1, a.Size)
	g.NextB, g.NextProofB, errs[3] = roots(rb, n+1, b.Size)
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	e := &Evidence{Member: a.Member, A: a, B: b, Agreement: g}
	if a.Size > b.Size {
		return nil, fmt.Errorf("%w: checkpoint a (size %d) is larger than b (size %d)", ErrMalformed, a.Size, b.Size)
	}
	if a.Size < b.Size {
		if e.PrefixRoot, e.Proof, err = roots(rb, a.Size, b.Size); err != nil {
			return nil, err
		}
	}
	if err := e.check(); err != nil {
		return nil, err
	}
	return g, nil
}

// Unresolved returns, sorted, the members with evidence against them none of which is resolved
// (their cutoff is 0, see [Cutoffs]).
func Unresolved(evidence []*Evidence) []string {
	resolved := map[string]bool{}
	for _, e := range evidence {
		if e.Resolved() {
			resolved[e.Member] = true
		}
	}
	seen := map[string]bool{}
	for _, e := range evidence {
		if !resolved[e.Member] {
			seen[e.Member] = true
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// Proto returns the wire form of the evidence.
func (e *Evidence) Proto() *pb.Equivocation {
	p := &pb.Equivocation{Member: e.Member, CheckpointA: e.A.Note, CheckpointB: e.B.Note}
	if e.A.Size < e.B.Size {
		p.PrefixRoot = append([]byte(nil), e.PrefixRoot[:]...)
		for _, h := range e.Proof {
			p.ConsistencyProof = append(p.ConsistencyProof, append([]byte(nil), h[:]...))
		}
	}
	if g := e.Agreement; g != nil {
		n := g.Size
		p.AgreedSize = &n
		p.AgreedRoot = append([]byte(nil), g.Root[:]...)
		p.AgreedProofA = hashesToBytes(g.ProofA)
		p.AgreedProofB = hashesToBytes(g.ProofB)
		p.NextRootA = append([]byte(nil), g.NextA[:]...)
		p.NextRootB = append([]byte(nil), g.NextB[:]...)
		p.NextProofA = hashesToBytes(g.NextProofA)
		p.NextProofB = hashesToBytes(g.NextProofB)
	}
	return p
}

func hashesToBytes(hs []Hash) [][]byte {
	var out [][]byte
	for _, h := range hs {
		out = append(out, append([]byte(nil), h[:]...))
	}
	return out
}

// bytesToHashes converts a wire proof; what names the field in errors.
func bytesToHashes(what string, bs [][]byte) ([]Hash, error) {
	if len(bs) > maxProofHashes {
		return nil, fmt.Errorf("%w: evidence %s has %d hashes, at most %d", ErrMalformed, what, len(bs), maxProofHashes)
	}
	var out []Hash
	for i, b := range bs {
		if len(b) != HashSize {
			return nil, fmt.Errorf("%w: evidence %s hash %d is %d bytes", ErrMalformed, what, i, len(b))
		}
		out = append(out, Hash(b))
	}
	return out, nil
}

func bytesToHash(what string, b []byte) (Hash, error) {
	if len(b) != HashSize {
		return Hash{}, fmt.Errorf("%w: evidence %s is %d bytes, want %d", ErrMalformed, what, len(b), HashSize)
	}
	return Hash(b), nil
}

// Marshal encodes the evidence.
func (e *Evidence) Marshal() []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(e.Proto())
	if err != nil {
		panic(err)
	}
	return b
}

// String describes the equivocation for a report.
func (e *Evidence) String() string {
	var s string
	if e.A.Size == e.B.Size {
		s = fmt.Sprintf("%s signed two roots for size %d: %s and %s", e.Member, e.A.Size, shortHash(e.A.Root), shortHash(e.B.Root))
	} else {
		s = fmt.Sprintf("%s signed size %d with root %s, but its tree of size %d has %s there", e.Member, e.A.Size, shortHash(e.A.Root), e.B.Size, shortHash(e.PrefixRoot))
	}
	if g := e.Agreement; g != nil {
		s += fmt.Sprintf("; the two trees agree on the first %d entries and part at entry %d", g.Size, g.Size)
	} else {
		s += "; where the two trees part is not proven (unresolved), so none of the log applies until it is"
	}
	return s
}

// Resolve returns a copy of e (unresolved or not) with the agreement g, after checking g proves
// the agreed size of e's checkpoints.
func (e *Evidence) Resolve(g *Agreement) (*Evidence, error) {
	r := *e
	r.Agreement = g
	if err := r.check(); err != nil {
		return nil, err
	}
	return &r, nil
}

// SameSizeEvidence returns evidence from two checkpoints of one log with the same size and
// different roots; it returns an error if they are not that.
func SameSizeEvidence(a, b *Checkpoint) (*Evidence, error) {
	if a.Member != b.Member || a.Size != b.Size || a.Root == b.Root {
		return nil, fmt.Errorf("%w: checkpoints are not one size with two roots", ErrMalformed)
	}
	return &Evidence{Member: a.Member, A: a, B: b}, nil
}

// ForkEvidence returns evidence that a (smaller) is not a prefix of b: prefixRoot is b's tree at
// a.Size, proven by a consistency proof to b's root. It checks the evidence before returning it.
func ForkEvidence(a, b *Checkpoint, prefixRoot Hash, proof []Hash) (*Evidence, error) {
	e := &Evidence{Member: a.Member, A: a, B: b, PrefixRoot: prefixRoot, Proof: proof}
	if err := e.check(); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *Evidence) check() error {
	a, b := e.A, e.B
	if a.Member != e.Member || b.Member != e.Member {
		return fmt.Errorf("%w: evidence checkpoints are not both of %q", ErrMalformed, e.Member)
	}
	switch {
	case a.Size > b.Size:
		return fmt.Errorf("%w: evidence checkpoint a (size %d) is larger than b (size %d)", ErrMalformed, a.Size, b.Size)
	case a.Size == b.Size:
		if a.Root == b.Root {
			return fmt.Errorf("%w: the two checkpoints of %q agree", ErrMalformed, e.Member)
		}
		return nil
	}
	if e.PrefixRoot == a.Root {
		return fmt.Errorf("%w: prefix root equals checkpoint a's root: no fork shown", ErrMalformed)
	}
	if a.Size == 0 {
		if e.PrefixRoot != emptyRoot {
			return fmt.Errorf("%w: prefix root of the empty tree must be the empty root", ErrMalformed)
		}
		return e.checkAgreement()
	}
	if err := VerifyConsistency(e.Proof, a.Size, e.PrefixRoot, b.Size, b.Root); err != nil {
		return fmt.Errorf("%w: evidence proof: %w", ErrMalformed, err)
	}
	return e.checkAgreement()
}

// checkAgreement verifies the resolution, if any: both trees have Root at Size and differ at
// Size+1, which makes Size their agreed size.
func (e *Evidence) checkAgreement() error {
	g := e.Agreement
	if g == nil {
		return nil
	}
	a, b := e.A, e.B
	if g.Size >= a.Size {
		// The trees differ at a.Size (checked before), so they part before it.
		return fmt.Errorf("%w: agreed size %d is not below the smaller checkpoint's size %d", ErrMalformed, g.Size, a.Size)
	}
	if g.Size == 0 {
		if g.Root != emptyRoot || len(g.ProofA) != 0 || len(g.ProofB) != 0 {
			return fmt.Errorf("%w: agreed size 0 needs the empty root and no proofs", ErrMalformed)
		}
	} else {
		if err := VerifyConsistency(g.ProofA, g.Size, g.Root, a.Size, a.Root); err != nil {
			return fmt.Errorf("%w: agreed root at %d is not checkpoint a's: %w", ErrMalformed, g.Size, err)
		}
		if err := VerifyConsistency(g.ProofB, g.Size, g.Root, b.Size, b.Root); err != nil {
			return fmt.Errorf("%w: agreed root at %d is not checkpoint b's: %w", ErrMalformed, g.Size, err)
		}
	}
	if g.NextA == g.NextB {
		return fmt.Errorf("%w: the roots at %d are equal, so the trees agree beyond the claimed agreed size %d", ErrMalformed, g.Size+1, g.Size)
	}
	if err := VerifyConsistency(g.NextProofA, g.Size+1, g.NextA, a.Size, a.Root); err != nil {
		return fmt.Errorf("%w: root at %d is not checkpoint a's: %w", ErrMalformed, g.Size+1, err)
	}
	if err := VerifyConsistency(g.NextProofB, g.Size+1, g.NextB, b.Size, b.Root); err != nil {
		return fmt.Errorf("%w: root at %d is not checkpoint b's: %w", ErrMalformed, g.Size+1, err)
	}
	return nil
}

// ParseEvidence decodes and verifies equivocation evidence: both checkpoints carry valid signatures
// of the member's key (from keys, e.g. the genesis), and they cannot both be true.
func ParseEvidence(cid ID, keys Keyring, raw []byte) (*Evidence, error) {
	if len(raw) > MaxEvidenceSize {
		return nil, fmt.Errorf("%w: evidence is %d bytes, at most %d", ErrMalformed, len(raw), MaxEvidenceSize)
	}
	var p pb.Equivocation
	if err := proto.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("%w: evidence: %v", ErrMalformed, err)
	}
	if hasUnknown(&p) {
		return nil, fmt.Errorf("%w: evidence has unknown fields", ErrMalformed)
	}
	return EvidenceFromProto(cid, keys, &p)
}

// EvidenceFromProto verifies wire evidence (see [ParseEvidence]).
func EvidenceFromProto(cid ID, keys Keyring, p *pb.Equivocation) (*Evidence, error) {
	a, err := OpenCheckpoint(cid, keys, p.CheckpointA)
	if err != nil {
		return nil, fmt.Errorf("evidence checkpoint a: %w", err)
	}
	b, err := OpenCheckpoint(cid, keys, p.CheckpointB)
	if err != nil {
		return nil, fmt.Errorf("evidence checkpoint b: %w", err)
	}
	e := &Evidence{Member: p.Member, A: a, B: b}
	if a.Size < b.Size {
		if len(p.PrefixRoot) != HashSize {
			return nil, fmt.Errorf("%w: evidence prefix root is %d bytes", ErrMalformed, len(p.PrefixRoot))
		}
		copy(e.PrefixRoot[:], p.PrefixRoot)
		if len(p.ConsistencyProof) > 128 {
			return nil, fmt.Errorf("%w: evidence proof has %d hashes", ErrMalformed, len(p.ConsistencyProof))
		}
		for i, h := range p.ConsistencyProof {
			if len(h) != HashSize {
				return nil, fmt.Errorf("%w: evidence proof hash %d is %d bytes", ErrMalformed, i, len(h))
			}
			e.Proof = append(e.Proof, Hash(h))
		}
	} else if len(p.PrefixRoot) != 0 || len(p.ConsistencyProof) != 0 {
		return nil, fmt.Errorf("%w: same-size evidence carries a proof", ErrMalformed)
	}
	if p.AgreedSize != nil {
		g := &Agreement{Size: *p.AgreedSize}
		var errs [7]error
		g.Root, errs[0] = bytesToHash("agreed root", p.AgreedRoot)
		g.ProofA, errs[1] = bytesToHashes("agreed proof a", p.AgreedProofA)
		g.ProofB, errs[2] = bytesToHashes("agreed proof b", p.AgreedProofB)
		g.NextA, errs[3] = bytesToHash("next root a", p.NextRootA)
		g.NextB, errs[4] = bytesToHash("next root b", p.NextRootB)
		g.NextProofA, errs[5] = bytesToHashes("next proof a", p.NextProofA)
		g.NextProofB, errs[6] = bytesToHashes("next proof b", p.NextProofB)
		for _, err := range errs {
			if err != nil {
				return nil, err
			}
		}
		e.Agreement = g
	} else if len(p.AgreedRoot)+len(p.AgreedProofA)+len(p.AgreedProofB)+len(p.NextRootA)+len(p.NextRootB)+len(p.NextProofA)+len(p.NextProofB) != 0 {
		return nil, fmt.Errorf("%w: evidence carries parts of a resolution without an agreed size", ErrMalformed)
	}
	if err := e.check(); err != nil {
		return nil, err
	}
	return e, nil
}
