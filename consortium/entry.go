package consortium

import (
	"crypto/sha256"
	"fmt"
	"strings"

	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/protobuf/proto"
)

// Limits on entries. An entry over a limit is invalid wherever it appears.
const (
	// MaxEntrySize bounds the encoded size of one entry.
	MaxEntrySize = 64 << 10
	// MaxTextSize bounds a free-text field (note, reason text, opinion text, proposal text).
	MaxTextSize = 4096
	// MaxContentIDSize bounds an add's content id.
	MaxContentIDSize = 256
	// MaxRosterChanges bounds the changes in one proposal.
	MaxRosterChanges = 64
)

// Op names the operation of an entry.
type Op uint8

// The entry operations.
const (
	OpInvalid Op = iota
	OpAdd
	OpRevoke
	OpOpinion
	OpPropose
	OpEndorse
	OpCertify
	OpUncertify
	OpRefer
	OpAnswer
)

var opNames = [...]string{"invalid", "add", "revoke", "opinion", "propose", "endorse", "certify", "uncertify", "refer", "answer"}

// String returns the operation's name as the protocol spells it.
func (o Op) String() string {
	if int(o) < len(opNames) {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// OpOf returns the operation of an entry.
func OpOf(e *pb.Entry) Op {
	switch e.GetOp().(type) {
	case *pb.Entry_Add:
		return OpAdd
	case *pb.Entry_Revoke:
		return OpRevoke
	case *pb.Entry_Opinion:
		return OpOpinion
	case *pb.Entry_Propose:
		return OpPropose
	case *pb.Entry_Endorse:
		return OpEndorse
	case *pb.Entry_Certify:
		return OpCertify
	case *pb.Entry_Uncertify:
		return OpUncertify
	case *pb.Entry_Refer:
		return OpRefer
	case *pb.Entry_Answer:
		return OpAnswer
	}
	return OpInvalid
}

// LeafHash is the RFC 6962 leaf hash of an entry: SHA-256(0x00 || entry bytes).
func LeafHash(entry []byte) Hash {
	// Small entries (nearly all) are hashed from a stack buffer, which allocates nothing.
	var buf [512]byte
	if len(entry) < len(buf) {
		buf[0] = 0
		n := copy(buf[1:], entry)
		return sha256.Sum256(buf[:1+n])
	}
	return tlog.RecordHash(entry)
}

// ParseEntry decodes entry bytes and checks every rule that needs no other entry (see
// [ValidateEntry]), including the canonical encoding.
func ParseEntry(raw []byte) (*pb.Entry, error) {
	var v entryView
	if err := decodeEntry(raw, &v); err != nil {
		return nil, err
	}
	e := new(pb.Entry)
	if err := proto.Unmarshal(raw, e); err != nil {
		return nil, fmt.Errorf("%w: entry: %v", ErrMalformed, err)
	}
	return e, nil
}

// MarshalEntry validates an entry and encodes it canonically. The bytes it returns are what a member
// appends to its log; they are never re-encoded afterwards.
func MarshalEntry(e *pb.Entry) ([]byte, error) {
	raw, _, err := EncodeEntry(e)
	return raw, err
}

// EncodeEntry is [MarshalEntry] that also returns the entry as [Decode] decodes its bytes, for
// [State.CheckBatchDecoded] and [State.ApplyDecoded], so that a node appending its own entries
// decodes each once.
func EncodeEntry(e *pb.Entry) ([]byte, Decoded, error) {
	raw, ok := appendAdd(nil, e)
	if ok {
		// An add appendAdd encoded is nearly always valid, and then its view is read from e
		// rather than decoded from raw; anything addView is unsure of is decoded below.
		var d Decoded
		if addView(e, raw, &d.v) {
			return raw, d, nil
		}
	} else {
		var err error
		if raw, err = (proto.MarshalOptions{Deterministic: true}).Marshal(e); err != nil {
			return nil, Decoded{}, fmt.Errorf("%w: encode entry: %v", ErrInvalidEntry, err)
		}
	}
	d := Decode(raw)
	if d.err != nil {
		return nil, Decoded{}, d.err
	}
	return raw, d, nil
}

// ValidateEntry checks the rules of an entry that need no other entry: a known operation, a
// positive time, canonical signals and labels (sorted, no repeats), known reasons and stances,
// bounded text, an expiry after the entry's time, quality only on pdq adds, and well-formed roster
// changes.
func ValidateEntry(e *pb.Entry) error {
	_, err := MarshalEntry(e)
	return err
}

// RevokeReasons lists the revocation reasons as the CLI spells them.
func RevokeReasons() []string {
	return []string{"false_positive", "order_overturned", "complaint_upheld", "out_of_taxonomy", "duplicate", "expired", "other"}
}

// ParseRevokeReason parses a revocation reason as the CLI spells it (e.g. "false_positive").
func ParseRevokeReason(s string) (pb.RevokeReason, error) {
	v, ok := pb.RevokeReason_value["REVOKE_REASON_"+strings.ToUpper(s)]
	if !ok || v == 0 {
		return 0, fmt.Errorf("%w: revoke reason %q is not one of %s", ErrInvalidEntry, truncate(s, 40), strings.Join(RevokeReasons(), ", "))
	}
	return pb.RevokeReason(v), nil
}

// ReasonName returns the CLI spelling of a revocation reason.
func ReasonName(r pb.RevokeReason) string {
	return strings.ToLower(strings.TrimPrefix(r.String(), "REVOKE_REASON_"))
}

// Stances lists the opinion stances as the CLI spells them.
func Stances() []string {
	return []string{"agree", "disagree_with_labels", "false_positive", "outdated", "withdrawn", "dispute"}
}

// ParseStance parses an opinion stance as the CLI spells it (e.g. "false_positive").
func ParseStance(s string) (pb.Stance, error) {
	v, ok := pb.Stance_value["STANCE_"+strings.ToUpper(s)]
	if !ok || v == 0 {
		return 0, fmt.Errorf("%w: stance %q is not one of %s", ErrInvalidEntry, truncate(s, 40), strings.Join(Stances(), ", "))
	}
	return pb.Stance(v), nil
}

// StanceName returns the CLI spelling of a stance.
func StanceName(s pb.Stance) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "STANCE_"))
}
