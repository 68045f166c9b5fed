package consortium

import (
	"fmt"

	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"google.golang.org/protobuf/proto"
)

// MaxEvidenceSize bounds an encoded equivocation proof.
const MaxEvidenceSize = 2*MaxCheckpointSize + 8<<10

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
	return p
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
	if e.A.Size == e.B.Size {
		return fmt.Sprintf("%s signed two roots for size %d: %s and %s", e.Member, e.A.Size, shortHash(e.A.Root), shortHash(e.B.Root))
	}
	return fmt.Sprintf("%s signed size %d with root %s, but its tree of size %d has %s there", e.Member, e.A.Size, shortHash(e.A.Root), e.B.Size, shortHash(e.PrefixRoot))
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
		return nil
	}
	if err := VerifyConsistency(e.Proof, a.Size, e.PrefixRoot, b.Size, b.Root); err != nil {
		return fmt.Errorf("%w: evidence proof: %w", ErrMalformed, err)
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
	if err := e.check(); err != nil {
		return nil, err
	}
	return e, nil
}
