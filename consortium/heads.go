package consortium

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// A heads note is a member's signed statement of every log it holds: for each, the size, root and
// author's signature of its latest verified checkpoint (section 4.5 of PROTOCOL.md). Checkpoints
// say what a log contains; heads notes say which logs exist and how far they had grown, so that an
// audit bundle from which a log was removed, or rolled back to an older checkpoint, is caught. Since
// each head carries its author's signature, a member cannot make up a head another never signed.

// MaxHeadsNoteSize bounds a heads note with its signatures, and MaxHeadsLogs the logs it names (as
// many as a peer's head vector may).
const (
	MaxHeadsNoteSize = 1 << 20
	MaxHeadsLogs     = 4 * MaxMembers
)

// headsFirstLine is the first line of every heads note's text.
const headsFirstLine = "hashfed heads v1"

// LogHead is one log's checkpoint as a heads note states it: size, root, and the author's
// signature of that checkpoint (the base64 of its signature line, as in the checkpoint note).
type LogHead struct {
	Member    string
	Size      uint64
	Root      Hash
	Signature string
}

// HeadOf returns the head of a verified checkpoint: its size, root and author's signature.
func HeadOf(cp *Checkpoint) (LogHead, error) {
	_, sigs, ok := bytes.Cut(cp.Note, []byte("\n\n"))
	first, _, _ := bytes.Cut(sigs, []byte("\n"))
	rest, ok2 := bytes.CutPrefix(first, []byte("— "))
	name, b64, ok3 := strings.Cut(string(rest), " ")
	if !ok || !ok2 || !ok3 || !strings.HasSuffix(name, "/"+cp.Member) {
		return LogHead{}, fmt.Errorf("%w: checkpoint of %q does not start with its author's signature", ErrMalformed, cp.Member)
	}
	return LogHead{Member: cp.Member, Size: cp.Size, Root: cp.Root, Signature: b64}, nil
}

// checkpoint returns the checkpoint note the head stands for: the checkpoint text signed by its
// author only.
func (h LogHead) checkpoint(cid ID) []byte {
	return []byte(CheckpointText(cid, h.Member, h.Size, h.Root) + "\n— " + Origin(cid, h.Member) + " " + h.Signature + "\n")
}

// HeadsNote is a verified heads note.
type HeadsNote struct {
	Signer string
	// Time is the signer's clock when it signed, to the millisecond.
	Time time.Time
	// Heads is sorted by member id, one per log, every size at least 1.
	Heads []LogHead
	// Note is the signed note as given.
	Note []byte
}

// HeadsKeyName returns the key name of a member's heads-note signatures:
// "hashfed/<consortium id>/<member id>/heads".
func HeadsKeyName(cid ID, member string) string { return Origin(cid, member) + "/heads" }

// HeadsText returns the text of a heads note. heads must be sorted by member id without
// duplicates, each size at least 1, each with a signature of base64 characters.
func HeadsText(cid ID, signer string, t time.Time, heads []LogHead) (string, error) {
	if err := ValidateMemberID(signer); err != nil {
		return "", fmt.Errorf("%w: heads note signer: %w", ErrMalformed, err)
	}
	if t.UnixMilli() <= 0 {
		return "", fmt.Errorf("%w: heads note time %v is not after 1970", ErrMalformed, t)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s\nconsortium %s\nsigner %s\ntime %d\n", headsFirstLine, cid, signer, t.UnixMilli())
	for i, h := range heads {
		if err := ValidateMemberID(h.Member); err != nil {
			return "", fmt.Errorf("%w: heads note: %w", ErrMalformed, err)
		}
		if i > 0 && heads[i-1].Member >= h.Member {
			return "", fmt.Errorf("%w: heads note: logs not sorted by member id, or %q twice", ErrMalformed, h.Member)
		}
		if h.Size == 0 {
			return "", fmt.Errorf("%w: heads note: log %q of size 0 (empty logs are left out)", ErrMalformed, h.Member)
		}
		if h.Signature == "" || strings.ContainsFunc(h.Signature, func(r rune) bool { return !isBase64Char(r) }) {
			return "", fmt.Errorf("%w: heads note: log %q: signature is not base64", ErrMalformed, h.Member)
		}
		fmt.Fprintf(&b, "log %s %d %s %s\n", h.Member, h.Size, base64.StdEncoding.EncodeToString(h.Root[:]), h.Signature)
	}
	return b.String(), nil
}

// SignHeads signs a heads note with key's member key, under [HeadsKeyName].
func SignHeads(cid ID, key *PrivateKey, t time.Time, heads []LogHead) ([]byte, error) {
	text, err := HeadsText(cid, key.ID(), t, heads)
	if err != nil {
		return nil, err
	}
	return note.Sign(&note.Note{Text: text}, key.signerNamed(HeadsKeyName(cid, key.ID())))
}

// headsVerifier knows one key: the signer's heads key.
type headsVerifier struct {
	name string
	v    note.Verifier
}

func (h *headsVerifier) Verifier(name string, hash uint32) (note.Verifier, error) {
	if name != h.name || hash != h.v.KeyHash() {
		return nil, &note.UnknownVerifierError{Name: name, KeyHash: hash}
	}
	return h.v, nil
}

func isBase64Char(r rune) bool {
	return r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '+' || r == '/' || r == '='
}

// OpenHeads verifies a heads note of consortium cid: its text is in the canonical form of
// [HeadsText]; it carries a valid signature by its signer's key (a member ever on the roster,
// known to keys), signature lines by other keys being ignored; and every head's signature is a
// valid checkpoint signature by that log's author (also known to keys).
func OpenHeads(cid ID, keys Keyring, msg []byte) (*HeadsNote, error) {
	if len(msg) > MaxHeadsNoteSize {
		return nil, fmt.Errorf("%w: heads note is %d bytes, at most %d", ErrMalformed, len(msg), MaxHeadsNoteSize)
	}
	text, _, ok := bytes.Cut(msg, []byte("\n\n"))
	if !ok {
		return nil, fmt.Errorf("%w: heads note is not a signed note", ErrMalformed)
	}
	h, err := parseHeadsText(cid, string(text)+"\n")
	if err != nil {
		return nil, err
	}
	pub, ok := keys.MemberKey(h.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: heads note signed by %q", ErrUnknownMember, h.Signer)
	}
	name := HeadsKeyName(cid, h.Signer)
	v, err := verifierNamed(name, pub)
	if err != nil {
		return nil, err
	}
	n, err := note.Open(msg, &headsVerifier{name: name, v: v})
	if err != nil {
		var inv *note.InvalidSignatureError
		var unv *note.UnverifiedNoteError
		switch {
		case errors.As(err, &inv):
			return nil, fmt.Errorf("%w: heads note of %q: its signature does not verify", ErrBadSignature, h.Signer)
		case errors.As(err, &unv):
			return nil, fmt.Errorf("%w: heads note of %q carries no signature by its key", ErrBadSignature, h.Signer)
		}
		return nil, fmt.Errorf("%w: heads note of %q: %v", ErrMalformed, h.Signer, err)
	}
	if n.Text != string(text)+"\n" {
		return nil, fmt.Errorf("%w: heads note of %q: text changed while verifying", ErrMalformed, h.Signer)
	}
	for _, hd := range h.Heads {
		if _, err := OpenCheckpoint(cid, keys, hd.checkpoint(cid)); err != nil {
			return nil, fmt.Errorf("heads note of %q: log %q at size %d: %w", h.Signer, hd.Member, hd.Size, err)
		}
	}
	h.Note = msg
	return h, nil
}

// parseHeadsText parses the text of a heads note and checks it is canonical.
func parseHeadsText(cid ID, text string) (*HeadsNote, error) {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 4 || lines[0] != headsFirstLine {
		return nil, fmt.Errorf("%w: not a heads note (its first line is not %q)", ErrMalformed, headsFirstLine)
	}
	c, ok := strings.CutPrefix(lines[1], "consortium ")
	if !ok || c != cid.String() {
		return nil, fmt.Errorf("%w: heads note of another consortium (line 2 is %q)", ErrMalformed, truncate(lines[1], 100))
	}
	signer, ok := strings.CutPrefix(lines[2], "signer ")
	if !ok {
		return nil, fmt.Errorf("%w: heads note line 3 is not \"signer <member id>\"", ErrMalformed)
	}
	ts, ok := strings.CutPrefix(lines[3], "time ")
	ms, err := strconv.ParseInt(ts, 10, 64)
	if !ok || err != nil || ms <= 0 {
		return nil, fmt.Errorf("%w: heads note line 4 is not \"time <unix ms>\"", ErrMalformed)
	}
	h := &HeadsNote{Signer: signer, Time: time.UnixMilli(ms).UTC()}
	if n := len(lines) - 4; n > MaxHeadsLogs {
		return nil, fmt.Errorf("%w: heads note names %d logs, at most %d", ErrMalformed, n, MaxHeadsLogs)
	}
	for i, l := range lines[4:] {
		f := strings.Split(l, " ")
		if len(f) != 5 || f[0] != "log" {
			return nil, fmt.Errorf("%w: heads note line %d is not \"log <member> <size> <root> <signature>\"", ErrMalformed, i+5)
		}
		size, err := strconv.ParseUint(f[2], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: heads note line %d: size %q", ErrMalformed, i+5, truncate(f[2], 30))
		}
		root, err := base64.StdEncoding.DecodeString(f[3])
		if err != nil || len(root) != HashSize {
			return nil, fmt.Errorf("%w: heads note line %d: root is not 32 bytes of base64", ErrMalformed, i+5)
		}
		h.Heads = append(h.Heads, LogHead{Member: f[1], Size: size, Root: Hash(root), Signature: f[4]})
	}
	canon, err := HeadsText(cid, h.Signer, h.Time, h.Heads)
	if err != nil {
		return nil, err
	}
	if canon != text {
		return nil, fmt.Errorf("%w: heads note of %q is not in canonical form", ErrMalformed, truncate(h.Signer, 40))
	}
	return h, nil
}

// Head returns the head the note states for member's log.
func (h *HeadsNote) Head(member string) (LogHead, bool) {
	i, ok := slices.BinarySearchFunc(h.Heads, member, func(x LogHead, m string) int { return strings.Compare(x.Member, m) })
	if !ok {
		return LogHead{}, false
	}
	return h.Heads[i], true
}
