package consortium

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
	"unsafe"

	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"google.golang.org/protobuf/encoding/protowire"
)

// This file decodes and validates entry bytes in one pass, without building protobuf messages. It
// is the single authority on whether entry bytes are valid: [ParseEntry], [MarshalEntry] and
// [State.Apply] all go through it. Besides the field rules it requires the canonical encoding
// (docs/PROTOCOL.md, "Canonical encoding"): fields in increasing number order, each once (repeated
// fields in one run), minimal varints, no field set to its default unless it has presence, and no
// unknown fields. Canonical encoding gives each entry exactly one byte form.

// entryView is a decoded entry: the fields replay needs, pointing into the entry bytes.
type entryView struct {
	time     int64
	op       Op
	sig      Signal // add, revoke by signal, opinion
	byIndex  bool   // revoke by index
	index    uint64 // revoke target
	expires  int64  // add and certify: expiry; refer: deadline
	stance   pb.Stance
	epoch    uint64
	proposal Hash   // endorse: the proposal; uncertify: the certification; answer: the referral
	author   []byte // propose, certify, refer: the author id it names
	category pb.Category
	outcome  pb.Outcome
	// sigHash is sigHash(&sig) for a valid add, computed by the decoder so that applying the add
	// (one entry after another) need not.
	sigHash uint64
}

// fieldReader walks the fields of one message in canonical order.
type fieldReader struct {
	b    []byte
	last protowire.Number
	msg  string
}

// next returns the next field, enforcing increasing field numbers (equal only for repeated fields,
// which the caller names in rep).
func (r *fieldReader) next(rep protowire.Number) (num protowire.Number, typ protowire.Type, ok bool, err error) {
	if len(r.b) == 0 {
		return 0, 0, false, nil
	}
	num, typ, n := protowire.ConsumeTag(r.b)
	if n < 0 {
		return 0, 0, false, fmt.Errorf("%w: %s: bad field tag", ErrMalformed, r.msg)
	}
	if n != protowire.SizeTag(num) {
		return 0, 0, false, fmt.Errorf("%w: %s: non-minimal field tag", ErrMalformed, r.msg)
	}
	if num < r.last || num == r.last && num != rep {
		return 0, 0, false, fmt.Errorf("%w: %s: field %d after field %d (not canonical encoding)", ErrMalformed, r.msg, num, r.last)
	}
	r.last = num
	r.b = r.b[n:]
	return num, typ, true, nil
}

func (r *fieldReader) varint(num protowire.Number, typ protowire.Type) (uint64, error) {
	if typ != protowire.VarintType {
		return 0, fmt.Errorf("%w: %s: field %d has wire type %d, want varint", ErrMalformed, r.msg, num, typ)
	}
	v, n := protowire.ConsumeVarint(r.b)
	if n < 0 {
		return 0, fmt.Errorf("%w: %s: field %d: truncated varint", ErrMalformed, r.msg, num)
	}
	if n != protowire.SizeVarint(v) {
		return 0, fmt.Errorf("%w: %s: field %d: non-minimal varint", ErrMalformed, r.msg, num)
	}
	r.b = r.b[n:]
	return v, nil
}

// nonzero reads a varint field without presence, which canonical encoding omits when zero.
func (r *fieldReader) nonzero(num protowire.Number, typ protowire.Type) (uint64, error) {
	v, err := r.varint(num, typ)
	if err == nil && v == 0 {
		err = fmt.Errorf("%w: %s: field %d encodes its default value (not canonical encoding)", ErrMalformed, r.msg, num)
	}
	return v, err
}

func (r *fieldReader) bytes(num protowire.Number, typ protowire.Type) ([]byte, error) {
	if typ != protowire.BytesType {
		return nil, fmt.Errorf("%w: %s: field %d has wire type %d, want bytes", ErrMalformed, r.msg, num, typ)
	}
	v, n := protowire.ConsumeBytes(r.b)
	if n < 0 {
		return nil, fmt.Errorf("%w: %s: field %d: truncated", ErrMalformed, r.msg, num)
	}
	if n != protowire.SizeBytes(len(v)) {
		return nil, fmt.Errorf("%w: %s: field %d: non-minimal length", ErrMalformed, r.msg, num)
	}
	r.b = r.b[n:]
	return v, nil
}

// nonempty reads a string or bytes field without presence, which canonical encoding omits when empty.
func (r *fieldReader) nonempty(num protowire.Number, typ protowire.Type) ([]byte, error) {
	v, err := r.bytes(num, typ)
	if err == nil && len(v) == 0 {
		err = fmt.Errorf("%w: %s: field %d encodes its default value (not canonical encoding)", ErrMalformed, r.msg, num)
	}
	return v, err
}

func (r *fieldReader) unknown(num protowire.Number) error {
	return fmt.Errorf("%w: %s: field %d is not one this version knows", ErrMalformed, r.msg, num)
}

// str views bytes as a string without copying, for validation only: the result must not outlive
// the entry bytes or escape the decoder.
func str(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// decodeEntry decodes and validates entry bytes into v. It checks everything [ValidateEntry]
// documents and the canonical encoding.
func decodeEntry(raw []byte, v *entryView) error {
	*v = entryView{}
	if len(raw) > MaxEntrySize {
		return fmt.Errorf("%w: entry is %d bytes, at most %d", ErrInvalidEntry, len(raw), MaxEntrySize)
	}
	r := fieldReader{b: raw, msg: "entry"}
	for {
		num, typ, ok, err := r.next(0)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if num >= 2 && num <= 10 && v.op != OpInvalid {
			return fmt.Errorf("%w: entry has two operations", ErrMalformed)
		}
		// The five operations are spelled out rather than looked up in a table of decoders: the
		// direct calls are about 15 % of BenchmarkVerifyReplay's speed (measured 2026-11-24).
		switch num {
		case 1:
			t, err := r.nonzero(num, typ)
			if err != nil {
				return err
			}
			v.time = int64(t)
		case 2:
			b, err := r.bytes(num, typ)
			if err != nil {
				return err
			}
			v.op = OpAdd
			if err := decodeAdd(b, v); err != nil {
				return err
			}
		case 3:
			b, err := r.bytes(num, typ)
			if err != nil {
				return err
			}
			v.op = OpRevoke
			if err := decodeRevoke(b, v); err != nil {
				return err
			}
		case 4:
			b, err := r.bytes(num, typ)
			if err != nil {
				return err
			}
			v.op = OpOpinion
			if err := decodeOpinion(b, v); err != nil {
				return err
			}
		case 5:
			b, err := r.bytes(num, typ)
			if err != nil {
				return err
			}
			v.op = OpPropose
			if err := decodePropose(b, v); err != nil {
				return err
			}
		case 6:
			b, err := r.bytes(num, typ)
			if err != nil {
				return err
			}
			v.op = OpEndorse
			if err := decodeEndorse(b, v); err != nil {
				return err
			}
		case 7, 8, 9, 10:
			b, err := r.bytes(num, typ)
			if err != nil {
				return err
			}
			if err := decodeRoleOp(num, b, v); err != nil {
				return err
			}
		default:
			return r.unknown(num)
		}
	}
	if v.time <= 0 {
		return fmt.Errorf("%w: time missing", ErrInvalidEntry)
	}
	if v.op == OpInvalid {
		return fmt.Errorf("%w: no operation (want add, revoke, opinion, propose, endorse, certify, uncertify, refer or answer)", ErrInvalidEntry)
	}
	if v.op == OpAdd && v.expires != 0 && v.expires <= v.time {
		return fmt.Errorf("%w: add of %s expires at %d ms, not after its own time %d ms", ErrExpired, v.sig, v.expires, v.time)
	}
	if v.op == OpCertify && v.expires != 0 && v.expires <= v.time {
		return fmt.Errorf("%w: certification expires at %d ms, not after its own time %d ms", ErrExpired, v.expires, v.time)
	}
	if v.op == OpRefer && v.expires <= v.time {
		return fmt.Errorf("%w: referral deadline %d ms is not after its own time %d ms", ErrInvalidEntry, v.expires, v.time)
	}
	if v.op == OpAdd {
		v.sigHash = sigHash(&v.sig)
	}
	return nil
}

// decodeSignal decodes a Signal message; what names the enclosing operation for errors.
func decodeSignal(b []byte, what string) (Signal, error) {
	r := fieldReader{b: b, msg: what}
	var typ, val []byte
	for {
		num, wt, ok, err := r.next(0)
		if err != nil {
			return Signal{}, err
		}
		if !ok {
			break
		}
		switch num {
		case 1:
			if typ, err = r.nonempty(num, wt); err != nil {
				return Signal{}, err
			}
		case 2:
			if val, err = r.nonempty(num, wt); err != nil {
				return Signal{}, err
			}
		default:
			return Signal{}, r.unknown(num)
		}
	}
	t, err := ParseSignalType(str(typ))
	if err != nil {
		return Signal{}, fmt.Errorf("%w: %s signal: %w", ErrInvalidEntry, what, err)
	}
	s, err := SignalFromBytes(t, val)
	if err != nil {
		return Signal{}, fmt.Errorf("%w: %s signal: %w", ErrInvalidEntry, what, err)
	}
	return s, nil
}

func decodeAdd(b []byte, v *entryView) error {
	r := fieldReader{b: b, msg: "add"}
	var prevLabel []byte
	nLabels := 0
	hasSignal, hasQuality, hasContentID := false, false, false
	var frames []byte
	for {
		num, typ, ok, err := r.next(2)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		switch num {
		case 1:
			s, err := r.bytes(num, typ)
			if err != nil {
				return err
			}
			if v.sig, err = decodeSignal(s, "add"); err != nil {
				return err
			}
			hasSignal = true
		case 2:
			l, err := r.bytes(num, typ)
			if err != nil {
				return err
			}
			if nLabels++; nLabels > MaxLabels {
				return fmt.Errorf("%w: add: %w: more than %d labels", ErrInvalidEntry, ErrInvalidLabel, MaxLabels)
			}
			if err := validateLabel(str(l), str(prevLabel), nLabels == 1); err != nil {
				return fmt.Errorf("%w: add: %w", ErrInvalidEntry, err)
			}
			prevLabel = l
		case 3:
			c, err := r.nonempty(num, typ)
			if err != nil {
				return err
			}
			if err := validateText("content id", str(c), MaxContentIDSize, false); err != nil {
				return err
			}
			hasContentID = true
		case 4:
			e, err := r.nonzero(num, typ)
			if err != nil {
				return err
			}
			v.expires = int64(e)
			if v.expires < 0 {
				return fmt.Errorf("%w: add: negative expiry", ErrInvalidEntry)
			}
		case 5:
			n, err := r.nonempty(num, typ)
			if err != nil {
				return err
			}
			if err := validateText("note", str(n), MaxTextSize, true); err != nil {
				return err
			}
		case 6:
			q, err := r.varint(num, typ)
			if err != nil {
				return err
			}
			if q > 100 {
				return fmt.Errorf("%w: add: pdq quality %d, want 0 to 100", ErrInvalidEntry, q)
			}
			hasQuality = true
		case 7:
			if frames, err = r.nonempty(num, typ); err != nil {
				return err
			}
		default:
			return r.unknown(num)
		}
	}
	if !hasSignal {
		return fmt.Errorf("%w: add: %w: signal missing", ErrInvalidEntry, ErrInvalidSignal)
	}
	if err := checkVideoAdd(v.sig, frames, hasContentID); err != nil {
		return err
	}
	if hasQuality && v.sig.Type != PDQ {
		return fmt.Errorf("%w: add: quality is only for pdq signals, not %s", ErrInvalidEntry, v.sig.Type)
	}
	return nil
}

// validateLabel checks one wire label: canonical, and after prev (sorted, no repeats) unless it is
// the first.
func validateLabel(l, prev string, first bool) error {
	// A behaviour label as written on the wire, by far the most common, is one CanonicalLabel
	// returns unchanged (TestBehaviourLabelsAreCanonical): only other labels need it.
	if name, ok := strings.CutPrefix(l, "behaviour:"); !ok || !slices.Contains(Behaviours, name) {
		c, err := CanonicalLabel(l)
		if err != nil {
			return err
		}
		if c != l {
			return fmt.Errorf("%w: %q is not in canonical form %q", ErrInvalidLabel, truncate(strings.Clone(l), 60), c)
		}
	}
	if !first && l <= prev {
		return fmt.Errorf("%w: labels must be sorted with no repeats (%q after %q)", ErrInvalidLabel, truncate(strings.Clone(l), 60), truncate(strings.Clone(prev), 60))
	}
	return nil
}

func decodeRevoke(b []byte, v *entryView) error {
	r := fieldReader{b: b, msg: "revoke"}
	hasTarget := false
	var reason uint64
	for {
		num, typ, ok, err := r.next(0)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		switch num {
		case 1:
			if reason, err = r.nonzero(num, typ); err != nil {
				return err
			}
			if _, ok := pb.RevokeReason_name[int32(reason)]; !ok || reason > 1<<31 {
				return fmt.Errorf("%w: revoke reason %d is not one of %s", ErrInvalidEntry, reason, strings.Join(RevokeReasons(), ", "))
			}
		case 2:
			t, err := r.nonempty(num, typ)
			if err != nil {
				return err
			}
			if err := validateText("revoke text", str(t), MaxTextSize, true); err != nil {
				return err
			}
		case 3:
			if v.index, err = r.varint(num, typ); err != nil {
				return err
			}
			v.byIndex, hasTarget = true, true
		case 4:
			if hasTarget {
				return fmt.Errorf("%w: revoke names two targets", ErrMalformed)
			}
			s, err := r.bytes(num, typ)
			if err != nil {
				return err
			}
			if v.sig, err = decodeSignal(s, "revoke"); err != nil {
				return err
			}
			hasTarget = true
		default:
			return r.unknown(num)
		}
	}
	if reason == 0 {
		return fmt.Errorf("%w: revoke reason 0 is not one of %s", ErrInvalidEntry, strings.Join(RevokeReasons(), ", "))
	}
	if !hasTarget {
		return fmt.Errorf("%w: revoke names no target (an entry index or a signal)", ErrInvalidEntry)
	}
	return nil
}

func decodeOpinion(b []byte, v *entryView) error {
	r := fieldReader{b: b, msg: "opinion"}
	hasSignal := false
	for {
		num, typ, ok, err := r.next(0)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		switch num {
		case 1:
			s, err := r.bytes(num, typ)
			if err != nil {
				return err
			}
			if v.sig, err = decodeSignal(s, "opinion"); err != nil {
				return err
			}
			hasSignal = true
		case 2:
			st, err := r.nonzero(num, typ)
			if err != nil {
				return err
			}
			if _, ok := pb.Stance_name[int32(st)]; !ok || st > 1<<31 {
				return fmt.Errorf("%w: opinion stance %d is not one of %s", ErrInvalidEntry, st, strings.Join(Stances(), ", "))
			}
			v.stance = pb.Stance(st)
		case 3:
			t, err := r.nonempty(num, typ)
			if err != nil {
				return err
			}
			if err := validateText("opinion text", str(t), MaxTextSize, true); err != nil {
				return err
			}
		default:
			return r.unknown(num)
		}
	}
	if !hasSignal {
		return fmt.Errorf("%w: opinion: %w: signal missing", ErrInvalidEntry, ErrInvalidSignal)
	}
	if v.stance == pb.Stance_STANCE_UNSPECIFIED {
		return fmt.Errorf("%w: opinion stance 0 is not one of %s", ErrInvalidEntry, strings.Join(Stances(), ", "))
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
