package consortium

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// HashSize is the size of a Merkle tree hash.
const HashSize = 32

// Hash is an RFC 6962 Merkle tree hash (SHA-256).
type Hash = tlog.Hash

// MaxCheckpointSize bounds a checkpoint note with its cosignatures.
const MaxCheckpointSize = 64 << 10

// Origin returns the checkpoint origin line of a member's log: "hashfed/<consortium id>/<member id>".
// It is also the key name of the member's checkpoint signatures.
func Origin(cid ID, member string) string { return "hashfed/" + cid.String() + "/" + member }

// CosignerName returns the key name under which a member cosigns other members' checkpoints:
// "hashfed/<consortium id>/<member id>/cosigner".
func CosignerName(cid ID, member string) string { return Origin(cid, member) + "/cosigner" }

// Keyring gives the public key of any member that was ever on the roster, so that old log
// signatures stay verifiable after a member leaves.
type Keyring interface {
	MemberKey(id string) (ed25519.PublicKey, bool)
}

// MemberKey implements [Keyring] for the founding roster.
func (g *Genesis) MemberKey(id string) (ed25519.PublicKey, bool) {
	m, ok := g.Member(id)
	return m.Key, ok
}

// Tree is the compact state of a log's Merkle tree: its size and the roots of its perfect subtrees,
// largest first (at most 64 hashes). It computes RFC 6962 roots as leaves are appended, without
// keeping the leaves; the hashing is tlog's (golang.org/x/mod/sumdb/tlog.NodeHash).
type Tree struct {
	size  uint64
	peaks []Hash
}

// NewTree returns the tree of an empty log.
func NewTree() *Tree { return &Tree{} }

// TreeFromRange returns the tree of a log of the given size from the roots of its perfect subtrees,
// largest first: one hash per bit set in size, the subtree of 2^k leaves for each bit k, from the
// highest bit down.
func TreeFromRange(size uint64, hashes []Hash) (*Tree, error) {
	if bits.OnesCount64(size) != len(hashes) {
		return nil, fmt.Errorf("%w: a tree of size %d has %d perfect subtrees, got %d hashes", ErrMalformed, size, bits.OnesCount64(size), len(hashes))
	}
	return &Tree{size: size, peaks: slices.Clone(hashes)}, nil
}

// Size returns the number of leaves.
func (t *Tree) Size() uint64 { return t.size }

// Peaks returns the roots of the perfect subtrees, largest first (see [TreeFromRange]).
func (t *Tree) Peaks() []Hash { return slices.Clone(t.peaks) }

// Append adds a leaf hash.
func (t *Tree) Append(leaf Hash) { t.appendLeaf(leaf, nil) }

// AppendStored adds a leaf hash and appends to dst the hashes that
// golang.org/x/mod/sumdb/tlog.StoredHashes stores for this record: the leaf hash, then the root of
// every subtree this leaf completes, lowest first. A store that keeps them can serve proofs and
// tree hashes of any size.
func (t *Tree) AppendStored(leaf Hash, dst []Hash) []Hash {
	return t.appendLeaf(leaf, append(dst, leaf))
}

func (t *Tree) appendLeaf(leaf Hash, stored []Hash) []Hash {
	t.peaks = append(t.peaks, leaf)
	// Each trailing one bit of the old size is a perfect subtree of the new leaf's size to merge with.
	for n := t.size; n&1 == 1; n >>= 1 {
		k := len(t.peaks)
		t.peaks[k-2] = tlog.NodeHash(t.peaks[k-2], t.peaks[k-1])
		t.peaks = t.peaks[:k-1]
		if stored != nil {
			stored = append(stored, t.peaks[k-2])
		}
	}
	t.size++
	return stored
}

// AppendEntry adds an entry, hashing it as a leaf, and returns the leaf hash.
func (t *Tree) AppendEntry(entry []byte) Hash {
	h := LeafHash(entry)
	t.Append(h)
	return h
}

// Root returns the RFC 6962 root hash; the empty tree's root is SHA-256 of nothing.
func (t *Tree) Root() Hash {
	if len(t.peaks) == 0 {
		return emptyRoot
	}
	h := t.peaks[len(t.peaks)-1]
	for i := len(t.peaks) - 2; i >= 0; i-- {
		h = tlog.NodeHash(t.peaks[i], h)
	}
	return h
}

// Clone returns an independent copy.
func (t *Tree) Clone() *Tree { return &Tree{size: t.size, peaks: slices.Clone(t.peaks)} }

var emptyRoot = Hash(sha256.Sum256(nil))

// EmptyRoot is the root hash of a log with no entries.
func EmptyRoot() Hash { return emptyRoot }

// Checkpoint is a verified, signed tree head of one member's log.
type Checkpoint struct {
	Member string
	Size   uint64
	Root   Hash
	// Note is the signed note with every signature that verified (the author's first, then
	// cosignatures in the order they arrived); unverifiable signatures are dropped.
	Note []byte
	// Cosigners are the members whose cosignatures on this checkpoint verified.
	Cosigners []Cosignature
}

// Cosignature is one verified C2SP tlog-cosignature/v1 on a checkpoint.
type Cosignature struct {
	Member string
	Time   time.Time
}

// CheckpointText returns the body of a checkpoint note: origin, size and base64 root, one per line.
func CheckpointText(cid ID, member string, size uint64, root Hash) string {
	return string(log.Checkpoint{Origin: Origin(cid, member), Size: size, Hash: root[:]}.Marshal())
}

// SignCheckpoint signs a checkpoint of key's member log.
func SignCheckpoint(cid ID, key *PrivateKey, size uint64, root Hash) ([]byte, error) {
	n := &note.Note{Text: CheckpointText(cid, key.ID(), size, root)}
	return note.Sign(n, key.signerNamed(Origin(cid, key.ID())))
}

// checkpointVerifiers resolves the keys of one log's checkpoints: the author's log key under its
// origin and every known member's cosigner key.
type checkpointVerifiers struct {
	cid    ID
	keys   Keyring
	author string
}

func (v *checkpointVerifiers) Verifier(name string, hash uint32) (note.Verifier, error) {
	prefix := "hashfed/" + v.cid.String() + "/"
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return nil, &note.UnknownVerifierError{Name: name, KeyHash: hash}
	}
	member, cosigner := strings.CutSuffix(rest, "/cosigner")
	if cosigner == (member == v.author) {
		// Only the author signs under the origin, and the author never cosigns its own log
		// (section 4.3): such a line is treated as a signature by an unknown key and dropped.
		return nil, &note.UnknownVerifierError{Name: name, KeyHash: hash}
	}
	pub, ok := v.keys.MemberKey(member)
	if !ok {
		return nil, &note.UnknownVerifierError{Name: name, KeyHash: hash}
	}
	var ver note.Verifier
	var err error
	if cosigner {
		ver, err = cosignatureVerifier(name, pub)
	} else {
		ver, err = verifierNamed(name, pub)
	}
	if err != nil {
		return nil, err
	}
	if ver.KeyHash() != hash {
		return nil, &note.UnknownVerifierError{Name: name, KeyHash: hash}
	}
	return ver, nil
}

func cosignatureVerifier(name string, pub ed25519.PublicKey) (note.Verifier, error) {
	vkey, err := note.NewEd25519VerifierKey(name, pub)
	if err != nil {
		return nil, err
	}
	return fnote.NewVerifierForCosignatureV1(vkey)
}

// OpenCheckpoint verifies a checkpoint note of one of the consortium's logs: the origin names a
// member known to keys, the member's signature verifies, and the body is exactly origin, size and
// root. Cosignatures by known members other than the author are verified and kept; signatures by
// unknown keys, and a cosignature by the author of its own log, are dropped. A signature by a known
// key that does not verify is an error.
func OpenCheckpoint(cid ID, keys Keyring, msg []byte) (*Checkpoint, error) {
	return openCheckpoint(cid, keys, msg, nil)
}

// OpenCheckpointKnown is [OpenCheckpoint] for a note some of whose signature lines were verified
// before: known returns, for the log the note names, a checkpoint opened earlier (or nil), and a
// signature line byte-identical to one of its lines, over the same note text, by a key with the
// same name and key hash under keys, is taken as verified without checking it again. Every other
// line is verified as OpenCheckpoint does. A cosigned head heard again and again (gossip, pushes,
// head exchanges) then costs one verification per new cosignature, not one per line each time.
func OpenCheckpointKnown(cid ID, keys Keyring, msg []byte, known func(member string) *Checkpoint) (*Checkpoint, error) {
	return openCheckpoint(cid, keys, msg, func(m string) []*Checkpoint { return []*Checkpoint{known(m)} })
}

// verifiedLines are signature lines of a note text verified before, by signature name.
type verifiedLines struct {
	text string
	sigs map[string]string // name -> base64 of hash and signature
}

func newVerifiedLines(cps ...*Checkpoint) *verifiedLines {
	var v *verifiedLines
	for _, cp := range cps {
		if cp == nil {
			continue
		}
		n, err := note.Open(cp.Note, note.VerifierList())
		var unv *note.UnverifiedNoteError
		if errors.As(err, &unv) {
			n, err = unv.Note, nil
		}
		if err != nil || n == nil {
			continue
		}
		if v == nil {
			v = &verifiedLines{text: n.Text, sigs: map[string]string{}}
		}
		if n.Text != v.text {
			continue
		}
		for _, s := range n.UnverifiedSigs {
			v.sigs[s.Name] = s.Base64
		}
	}
	return v
}

// knownVerifier is a verifier that accepts a signature line verified before without verifying it
// again, and verifies any other.
type knownVerifier struct {
	note.Verifier
	text string
	line string // base64 of the key hash and signature verified before
}

func (k *knownVerifier) Verify(msg, sig []byte) bool {
	if k.line != "" && string(msg) == k.text {
		var h [4]byte
		binary.BigEndian.PutUint32(h[:], k.KeyHash())
		if base64.StdEncoding.EncodeToString(append(h[:], sig...)) == k.line {
			return true
		}
	}
	return k.Verifier.Verify(msg, sig)
}

// knownVerifiers looks up verifiers as checkpointVerifiers does, with the lines in seen taken as
// verified.
type knownVerifiers struct {
	*checkpointVerifiers
	seen *verifiedLines
}

func (v *knownVerifiers) Verifier(name string, hash uint32) (note.Verifier, error) {
	ver, err := v.checkpointVerifiers.Verifier(name, hash)
	if err != nil || v.seen == nil {
		return ver, err
	}
	return &knownVerifier{Verifier: ver, text: v.seen.text, line: v.seen.sigs[name]}, nil
}

// verifiers returns the note verifiers of author's checkpoints, with the lines of known taken as
// verified.
func verifiers(cid ID, keys Keyring, author string, known ...*Checkpoint) note.Verifiers {
	cv := &checkpointVerifiers{cid: cid, keys: keys, author: author}
	seen := newVerifiedLines(known...)
	if seen == nil {
		return cv
	}
	return &knownVerifiers{checkpointVerifiers: cv, seen: seen}
}

func openCheckpoint(cid ID, keys Keyring, msg []byte, known func(member string) []*Checkpoint) (*Checkpoint, error) {
	if len(msg) > MaxCheckpointSize {
		return nil, fmt.Errorf("%w: checkpoint is %d bytes, at most %d", ErrMalformed, len(msg), MaxCheckpointSize)
	}
	text, _, ok := bytes.Cut(msg, []byte("\n\n"))
	if !ok {
		return nil, fmt.Errorf("%w: checkpoint is not a signed note", ErrMalformed)
	}
	originLine, _, _ := bytes.Cut(text, []byte("\n"))
	prefix := "hashfed/" + cid.String() + "/"
	member, ok := strings.CutPrefix(string(originLine), prefix)
	if !ok {
		return nil, fmt.Errorf("%w: checkpoint origin %q is not a log of consortium %s", ErrMalformed, truncate(string(originLine), 100), cid)
	}
	if err := ValidateMemberID(member); err != nil {
		return nil, fmt.Errorf("%w: checkpoint origin: %w", ErrMalformed, err)
	}
	if _, ok := keys.MemberKey(member); !ok {
		return nil, fmt.Errorf("%w: checkpoint of %q", ErrUnknownMember, member)
	}
	var prior []*Checkpoint
	if known != nil {
		prior = known(member)
	}
	n, err := note.Open(msg, verifiers(cid, keys, member, prior...))
	if err != nil {
		var inv *note.InvalidSignatureError
		var unv *note.UnverifiedNoteError
		switch {
		case errors.As(err, &inv):
			return nil, fmt.Errorf("%w: checkpoint of %q: signature by %s does not verify", ErrBadSignature, member, inv.Name)
		case errors.As(err, &unv):
			return nil, fmt.Errorf("%w: checkpoint of %q carries no signature by its key", ErrBadSignature, member)
		}
		return nil, fmt.Errorf("%w: checkpoint of %q: %v", ErrMalformed, member, err)
	}
	origin := Origin(cid, member)
	var author *note.Signature
	cp := &Checkpoint{Member: member}
	var sigs []note.Signature
	for i := range n.Sigs {
		s := n.Sigs[i]
		if s.Name == origin {
			if author == nil {
				author = &s
			}
			continue
		}
		m := strings.TrimSuffix(strings.TrimPrefix(s.Name, prefix), "/cosigner")
		ts, err := fnote.CoSigV1Timestamp(s)
		if err != nil {
			return nil, fmt.Errorf("%w: cosignature by %s: %v", ErrMalformed, m, err)
		}
		cp.Cosigners = append(cp.Cosigners, Cosignature{Member: m, Time: ts.UTC()})
		sigs = append(sigs, s)
	}
	if author == nil {
		return nil, fmt.Errorf("%w: checkpoint of %q carries no signature by its key", ErrBadSignature, member)
	}
	var body log.Checkpoint
	rest, err := body.Unmarshal([]byte(n.Text))
	if err != nil {
		return nil, fmt.Errorf("%w: checkpoint of %q: %v", ErrMalformed, member, err)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: checkpoint of %q has extension lines, which hashfed does not use", ErrMalformed, member)
	}
	if len(body.Hash) != HashSize {
		return nil, fmt.Errorf("%w: checkpoint of %q has a %d-byte root", ErrMalformed, member, len(body.Hash))
	}
	cp.Size = body.Size
	copy(cp.Root[:], body.Hash)
	if n.Text != CheckpointText(cid, member, cp.Size, cp.Root) {
		return nil, fmt.Errorf("%w: checkpoint of %q is not in canonical form", ErrMalformed, member)
	}
	slices.SortStableFunc(sigs, func(a, b note.Signature) int { return strings.Compare(a.Name, b.Name) })
	cp.Note, err = note.Sign(&note.Note{Text: n.Text, Sigs: append([]note.Signature{*author}, sigs...)})
	if err != nil {
		return nil, fmt.Errorf("%w: re-encode checkpoint: %v", ErrMalformed, err)
	}
	slices.SortFunc(cp.Cosigners, func(a, b Cosignature) int { return strings.Compare(a.Member, b.Member) })
	return cp, nil
}

// PeekCheckpoint reads the log, size and root a checkpoint note claims, verifying nothing: for a
// receiver to tell, before any signature check, a note about a tree head it already holds (see
// [Checkpoint.Covers]) from one it must open.
func PeekCheckpoint(cid ID, msg []byte) (member string, size uint64, root Hash, ok bool) {
	text, _, found := bytes.Cut(msg, []byte("\n\n"))
	if !found {
		return "", 0, root, false
	}
	var body log.Checkpoint
	if _, err := body.Unmarshal(append(text, '\n')); err != nil || len(body.Hash) != HashSize {
		return "", 0, root, false
	}
	member, found = strings.CutPrefix(body.Origin, "hashfed/"+cid.String()+"/")
	if !found {
		return "", 0, root, false
	}
	copy(root[:], body.Hash)
	return member, body.Size, root, true
}

// Covers reports whether note says nothing c does not: its text is c's and each of its signature
// lines is one of c's note. Opening such a note could only give c or a checkpoint with fewer
// signatures; a receiver that holds c verified skips it without verifying anything.
func (c *Checkpoint) Covers(note []byte) bool {
	text, sigs, ok := bytes.Cut(note, []byte("\n\n"))
	ctext, csigs, cok := bytes.Cut(c.Note, []byte("\n\n"))
	if !ok || !cok || !bytes.Equal(text, ctext) || len(sigs) == 0 {
		return false
	}
	for len(sigs) > 0 {
		line, rest, found := bytes.Cut(sigs, []byte("\n"))
		if !found || !containsLine(csigs, line) {
			return false
		}
		sigs = rest
	}
	return true
}

// containsLine reports whether line is one of the newline-terminated lines of lines.
func containsLine(lines, line []byte) bool {
	for len(lines) > 0 {
		l, rest, _ := bytes.Cut(lines, []byte("\n"))
		if bytes.Equal(l, line) {
			return true
		}
		lines = rest
	}
	return false
}

// HasCosigner reports whether member cosigned the checkpoint.
func (c *Checkpoint) HasCosigner(member string) bool {
	for _, s := range c.Cosigners {
		if s.Member == member {
			return true
		}
	}
	return false
}

// Same reports whether two checkpoints are the same tree head of the same log.
func (c *Checkpoint) Same(o *Checkpoint) bool {
	return c.Member == o.Member && c.Size == o.Size && c.Root == o.Root
}

// cosigner signs C2SP tlog-cosignature/v1 with a fixed clock, so that test vectors are repeatable.
type cosigner struct {
	name string
	hash uint32
	key  *PrivateKey
	now  func() time.Time
}

func (c *cosigner) Name() string    { return c.name }
func (c *cosigner) KeyHash() uint32 { return c.hash }
func (c *cosigner) Sign(msg []byte) ([]byte, error) {
	t := uint64(c.now().Unix())
	signed := []byte("cosignature/v1\ntime " + strconv.FormatUint(t, 10) + "\n" + string(msg))
	sig := binary.BigEndian.AppendUint64(nil, t)
	return append(sig, c.key.Sign(signed)...), nil
}

// Cosign adds key's C2SP tlog-cosignature/v1, timestamped t, to a verified checkpoint and returns
// the checkpoint with the new signature in its note. A member's cosignature asserts that it verified
// the log up to the checkpoint's size and saw no fork. A member does not cosign its own log.
func Cosign(cid ID, keys Keyring, cp *Checkpoint, key *PrivateKey, t time.Time) (*Checkpoint, error) {
	if cp.Member == key.ID() {
		return nil, fmt.Errorf("%w: %q cannot cosign its own log", ErrNotPermitted, key.ID())
	}
	// cp was opened (verified): its lines are not verified again, only the new cosignature.
	n, err := note.Open(cp.Note, verifiers(cid, keys, cp.Member, cp))
	if err != nil {
		return nil, fmt.Errorf("%w: reopen checkpoint: %v", ErrMalformed, err)
	}
	name := CosignerName(cid, key.ID())
	c := &cosigner{name: name, hash: keyHash(name, algCosignatureV1, key.Public().Key), key: key, now: func() time.Time { return t }}
	msg, err := note.Sign(n, c)
	if err != nil {
		return nil, fmt.Errorf("cosign: %w", err)
	}
	return openCheckpoint(cid, keys, msg, func(string) []*Checkpoint { return []*Checkpoint{cp} })
}

// MergeCheckpoints returns the checkpoint carrying every signature of a and b, which must be the
// same tree head.
func MergeCheckpoints(cid ID, keys Keyring, a, b *Checkpoint) (*Checkpoint, error) {
	if !a.Same(b) {
		return nil, fmt.Errorf("%w: merge of different tree heads of %q", ErrMalformed, a.Member)
	}
	// a and b were opened (verified): their lines are not verified again.
	ver := verifiers(cid, keys, a.Member, a, b)
	na, err := note.Open(a.Note, ver)
	if err != nil {
		return nil, err
	}
	nb, err := note.Open(b.Note, ver)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, s := range na.Sigs {
		seen[s.Name] = true
	}
	for _, s := range nb.Sigs {
		if !seen[s.Name] {
			na.Sigs = append(na.Sigs, s)
			seen[s.Name] = true
		}
	}
	msg, err := note.Sign(na)
	if err != nil {
		return nil, err
	}
	return openCheckpoint(cid, keys, msg, func(string) []*Checkpoint { return []*Checkpoint{a, b} })
}

// VerifyRange checks received entries against a signed checkpoint: appending the entries to tree
// (the verified prefix of the log, of size start) must give exactly the checkpoint's size and root.
// On success it returns the extended tree and the entries' leaf hashes; tree itself is unchanged.
func VerifyRange(tree *Tree, entries [][]byte, cp *Checkpoint) (*Tree, []Hash, error) {
	start := tree.Size()
	if end := start + uint64(len(entries)); end != cp.Size {
		return nil, nil, fmt.Errorf("%w: log %q entries [%d, %d) do not end at the checkpoint's size %d", ErrRootMismatch, cp.Member, start, end, cp.Size)
	}
	t := tree.Clone()
	leaves := make([]Hash, len(entries))
	for i, e := range entries {
		leaves[i] = t.AppendEntry(e)
	}
	if got := t.Root(); got != cp.Root {
		return nil, nil, fmt.Errorf("%w: log %q entries [%d, %d): computed root %s, checkpoint says %s", ErrRootMismatch, cp.Member, start, cp.Size, shortHash(got), shortHash(cp.Root))
	}
	return t, leaves, nil
}

func shortHash(h Hash) string { return base64.StdEncoding.EncodeToString(h[:])[:12] + "…" }

// proposalHex is a proposal's hash in messages: in full lowercase hex, as users see proposals
// (hashfed roster show) and type them (hashfed roster endorse).
func proposalHex(h Hash) string { return hex.EncodeToString(h[:]) }

// VerifyInclusion checks an RFC 6962 inclusion proof of leaf index in a tree of the given size and
// root.
func VerifyInclusion(proof []Hash, index, size uint64, root, leaf Hash) error {
	if index >= size {
		return fmt.Errorf("%w: index %d is not below size %d", ErrInconsistent, index, size)
	}
	if err := tlog.CheckRecord(tlog.RecordProof(proof), int64(size), root, int64(index), leaf); err != nil {
		return fmt.Errorf("%w: inclusion of leaf %d in tree of size %d: %v", ErrInconsistent, index, size, err)
	}
	return nil
}

// VerifyConsistency checks an RFC 6962 consistency proof that the tree (oldSize, oldRoot) is a
// prefix of (newSize, newRoot).
func VerifyConsistency(proof []Hash, oldSize uint64, oldRoot Hash, newSize uint64, newRoot Hash) error {
	if oldSize > newSize {
		return fmt.Errorf("%w: old size %d is above new size %d", ErrInconsistent, oldSize, newSize)
	}
	if oldSize == 0 {
		if len(proof) != 0 {
			return fmt.Errorf("%w: proof from the empty tree must be empty", ErrInconsistent)
		}
		return nil
	}
	if err := tlog.CheckTree(tlog.TreeProof(proof), int64(newSize), newRoot, int64(oldSize), oldRoot); err != nil {
		return fmt.Errorf("%w: tree of size %d is not a prefix of tree of size %d: %v", ErrInconsistent, oldSize, newSize, err)
	}
	return nil
}

// HashReader gives tlog's stored hashes of a log (see golang.org/x/mod/sumdb/tlog.StoredHashes).
type HashReader = tlog.HashReader

// ProveInclusion makes an inclusion proof of leaf index in the tree of the given size.
func ProveInclusion(r HashReader, index, size uint64) ([]Hash, error) {
	p, err := tlog.ProveRecord(int64(size), int64(index), r)
	return p, err
}

// ProveConsistency makes a consistency proof from oldSize to newSize.
func ProveConsistency(r HashReader, oldSize, newSize uint64) ([]Hash, error) {
	if oldSize == 0 {
		return nil, nil
	}
	p, err := tlog.ProveTree(int64(newSize), int64(oldSize), r)
	return p, err
}

// TreeHash computes the root of the tree of the given size from stored hashes.
func TreeHash(r HashReader, size uint64) (Hash, error) {
	if size == 0 {
		return emptyRoot, nil
	}
	return tlog.TreeHash(int64(size), r)
}
