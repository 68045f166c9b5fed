package consortium

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
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
)

var opNames = [...]string{"invalid", "add", "revoke", "opinion", "propose", "endorse"}

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
	}
	return OpInvalid
}

// LeafHash is the RFC 6962 leaf hash of an entry: SHA-256(0x00 || entry bytes).
func LeafHash(entry []byte) Hash {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(entry)
	var out Hash
	h.Sum(out[:0])
	return out
}

// ParseEntry decodes entry bytes and checks every rule that needs no other entry (see
// [ValidateEntry]).
func ParseEntry(raw []byte) (*pb.Entry, error) {
	if len(raw) > MaxEntrySize {
		return nil, fmt.Errorf("%w: entry is %d bytes, at most %d", ErrInvalidEntry, len(raw), MaxEntrySize)
	}
	e := new(pb.Entry)
	if err := proto.Unmarshal(raw, e); err != nil {
		return nil, fmt.Errorf("%w: entry: %v", ErrMalformed, err)
	}
	if hasUnknown(e) {
		return nil, fmt.Errorf("%w: entry has fields this version does not know", ErrMalformed)
	}
	if err := ValidateEntry(e); err != nil {
		return nil, err
	}
	return e, nil
}

// MarshalEntry validates an entry and encodes it. The bytes it returns are what a member appends
// to its log; they are never re-encoded afterwards.
func MarshalEntry(e *pb.Entry) ([]byte, error) {
	if err := ValidateEntry(e); err != nil {
		return nil, err
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("%w: encode entry: %v", ErrInvalidEntry, err)
	}
	if len(raw) > MaxEntrySize {
		return nil, fmt.Errorf("%w: entry is %d bytes, at most %d", ErrInvalidEntry, len(raw), MaxEntrySize)
	}
	return raw, nil
}

// ValidateEntry checks the rules of an entry that need no other entry: a known operation, a
// positive time, canonical signals and labels, known reasons and stances, bounded text, an expiry
// after the entry's time, and well-formed roster changes.
func ValidateEntry(e *pb.Entry) error {
	if e.GetTimeUnixMs() <= 0 {
		return fmt.Errorf("%w: time missing", ErrInvalidEntry)
	}
	switch op := e.GetOp().(type) {
	case *pb.Entry_Add:
		return validateAdd(e.TimeUnixMs, op.Add)
	case *pb.Entry_Revoke:
		return validateRevoke(op.Revoke)
	case *pb.Entry_Opinion:
		return validateOpinion(op.Opinion)
	case *pb.Entry_Propose:
		return validatePropose(op.Propose)
	case *pb.Entry_Endorse:
		return validateEndorse(op.Endorse)
	}
	return fmt.Errorf("%w: no operation (want add, revoke, opinion, propose or endorse)", ErrInvalidEntry)
}

func validateAdd(t int64, a *pb.Add) error {
	if a == nil {
		return fmt.Errorf("%w: add is empty", ErrInvalidEntry)
	}
	s, err := SignalFromProto(a.Signal)
	if err != nil {
		return fmt.Errorf("%w: add: %w", ErrInvalidEntry, err)
	}
	if err := validateLabels(a.Labels); err != nil {
		return fmt.Errorf("%w: add: %w", ErrInvalidEntry, err)
	}
	if err := validateText("content id", a.ContentId, MaxContentIDSize, false); err != nil {
		return err
	}
	if err := validateText("note", a.Note, MaxTextSize, true); err != nil {
		return err
	}
	if a.ExpiresUnixMs < 0 {
		return fmt.Errorf("%w: add: negative expiry", ErrInvalidEntry)
	}
	if a.ExpiresUnixMs != 0 && a.ExpiresUnixMs <= t {
		return fmt.Errorf("%w: add of %s expires at %d ms, not after its own time %d ms", ErrExpired, s, a.ExpiresUnixMs, t)
	}
	if a.Quality != nil {
		if s.Type != PDQ {
			return fmt.Errorf("%w: add: quality is only for pdq signals, not %s", ErrInvalidEntry, s.Type)
		}
		if *a.Quality > 100 {
			return fmt.Errorf("%w: add: pdq quality %d, want 0 to 100", ErrInvalidEntry, *a.Quality)
		}
	}
	return nil
}

func validateRevoke(r *pb.Revoke) error {
	if r == nil {
		return fmt.Errorf("%w: revoke is empty", ErrInvalidEntry)
	}
	switch t := r.Target.(type) {
	case *pb.Revoke_Index:
	case *pb.Revoke_Signal:
		if _, err := SignalFromProto(t.Signal); err != nil {
			return fmt.Errorf("%w: revoke: %w", ErrInvalidEntry, err)
		}
	default:
		return fmt.Errorf("%w: revoke names no target (an entry index or a signal)", ErrInvalidEntry)
	}
	if _, ok := pb.RevokeReason_name[int32(r.Reason)]; !ok || r.Reason == pb.RevokeReason_REVOKE_REASON_UNSPECIFIED {
		return fmt.Errorf("%w: revoke reason %d is not one of %s", ErrInvalidEntry, r.Reason, strings.Join(RevokeReasons(), ", "))
	}
	return validateText("revoke text", r.Text, MaxTextSize, true)
}

func validateOpinion(o *pb.Opinion) error {
	if o == nil {
		return fmt.Errorf("%w: opinion is empty", ErrInvalidEntry)
	}
	if _, err := SignalFromProto(o.Signal); err != nil {
		return fmt.Errorf("%w: opinion: %w", ErrInvalidEntry, err)
	}
	if _, ok := pb.Stance_name[int32(o.Stance)]; !ok || o.Stance == pb.Stance_STANCE_UNSPECIFIED {
		return fmt.Errorf("%w: opinion stance %d is not one of %s", ErrInvalidEntry, o.Stance, strings.Join(Stances(), ", "))
	}
	return validateText("opinion text", o.Text, MaxTextSize, true)
}

func validatePropose(p *pb.Propose) error {
	if p == nil {
		return fmt.Errorf("%w: proposal is empty", ErrInvalidEntry)
	}
	if len(p.Changes) == 0 || len(p.Changes) > MaxRosterChanges {
		return fmt.Errorf("%w: proposal has %d changes, want 1 to %d", ErrInvalidEntry, len(p.Changes), MaxRosterChanges)
	}
	for i, c := range p.Changes {
		if err := validateChange(c); err != nil {
			return fmt.Errorf("%w: proposal change %d: %w", ErrInvalidEntry, i, err)
		}
	}
	return validateText("proposal text", p.Text, MaxTextSize, true)
}

func validateChange(c *pb.RosterChange) error {
	switch ch := c.GetChange().(type) {
	case *pb.RosterChange_Admit:
		_, err := memberFromProto(ch.Admit)
		return err
	case *pb.RosterChange_Remove:
		return ValidateMemberID(ch.Remove)
	case *pb.RosterChange_SetQuorum:
		if ch.SetQuorum < 1 || ch.SetQuorum > MaxMembers {
			return fmt.Errorf("%w: quorum %d, want 1 to %d", ErrMalformed, ch.SetQuorum, MaxMembers)
		}
		return nil
	case *pb.RosterChange_SetRole:
		if ch.SetRole == nil {
			return fmt.Errorf("%w: set_role is empty", ErrMalformed)
		}
		if err := ValidateMemberID(ch.SetRole.Member); err != nil {
			return err
		}
		if r := ch.SetRole.Role; r != pb.Role_ROLE_MEMBER && r != pb.Role_ROLE_OBSERVER {
			return fmt.Errorf("%w: role %d, want member or observer", ErrMalformed, r)
		}
		return nil
	}
	return fmt.Errorf("%w: empty roster change", ErrMalformed)
}

func validateEndorse(e *pb.Endorse) error {
	if e == nil {
		return fmt.Errorf("%w: endorsement is empty", ErrInvalidEntry)
	}
	if len(e.Proposal) != HashSize {
		return fmt.Errorf("%w: endorsement names a proposal hash of %d bytes, want %d", ErrInvalidEntry, len(e.Proposal), HashSize)
	}
	return nil
}

// validateText checks a free-text field: valid UTF-8, bounded, and (unless multiline) without
// control characters.
func validateText(field, s string, max int, multiline bool) error {
	if len(s) > max {
		return fmt.Errorf("%w: %s is %d bytes, at most %d", ErrInvalidEntry, field, len(s), max)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidEntry, field)
	}
	if !multiline && strings.ContainsFunc(s, unicode.IsControl) {
		return fmt.Errorf("%w: %s has control characters", ErrInvalidEntry, field)
	}
	return nil
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
	return []string{"agree", "disagree_with_labels", "false_positive", "outdated", "withdrawn"}
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
