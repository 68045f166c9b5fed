package consortium

import (
	"bytes"
	"fmt"
	"strings"

	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"google.golang.org/protobuf/encoding/protowire"
)

// This file decodes the entries of the civil-society and authority roles (certify, uncertify,
// refer) and the members' answers to referrals, in the one pass of decode.go and under its
// canonical-encoding rules.

// Limits on the entries of the roles.
const (
	// MaxListSignals bounds the signals of one certification or referral.
	MaxListSignals = 64
	// MaxReferralTo bounds the members one referral names.
	MaxReferralTo = 64
	// MaxSubjectSize bounds a certification's subject and a referral's order reference.
	MaxSubjectSize = 512
)

// decodeRoleOp decodes the operation in entry field num (7 to 10).
func decodeRoleOp(num protowire.Number, b []byte, v *entryView) error {
	switch num {
	case 7:
		v.op = OpCertify
		return decodeCertify(b, v)
	case 8:
		v.op = OpUncertify
		return decodeUncertify(b, v)
	case 9:
		v.op = OpRefer
		return decodeRefer(b, v)
	}
	v.op = OpAnswer
	return decodeAnswer(b, v)
}

// compareSignals orders signals by type name, then value bytes: the order of a certification's or
// referral's signals and of the state digest.
func compareSignals(a, b Signal) int {
	if c := strings.Compare(a.Type.String(), b.Type.String()); c != 0 {
		return c
	}
	return bytes.Compare(a.Bytes(), b.Bytes())
}

// SortSignals sorts signals into the order certifications and referrals carry them in.
func SortSignals(sigs []Signal) {
	for i := 1; i < len(sigs); i++ {
		for j := i; j > 0 && compareSignals(sigs[j-1], sigs[j]) > 0; j-- {
			sigs[j-1], sigs[j] = sigs[j], sigs[j-1]
		}
	}
}

// signalList decodes one element of a sorted signal list (field rep of r) after prev.
func signalList(r *fieldReader, num protowire.Number, typ protowire.Type, what string, n *int, prev *Signal) error {
	b, err := r.bytes(num, typ)
	if err != nil {
		return err
	}
	if *n++; *n > MaxListSignals {
		return fmt.Errorf("%w: %s has more than %d signals", ErrInvalidEntry, what, MaxListSignals)
	}
	s, err := decodeSignal(b, what)
	if err != nil {
		return err
	}
	if *n > 1 && compareSignals(*prev, s) >= 0 {
		return fmt.Errorf("%w: %s signals must be sorted by type then value, no repeats (%s after %s)", ErrInvalidEntry, what, s, *prev)
	}
	*prev = s
	return nil
}

// authorField decodes an author field (a member id).
func authorField(r *fieldReader, num protowire.Number, typ protowire.Type, what string) ([]byte, error) {
	a, err := r.nonempty(num, typ)
	if err != nil {
		return nil, err
	}
	if err := ValidateMemberID(str(a)); err != nil {
		return nil, fmt.Errorf("%w: %s author: %w", ErrInvalidEntry, what, err)
	}
	return a, nil
}

func textField(r *fieldReader, num protowire.Number, typ protowire.Type, field string, max int, multiline bool) error {
	t, err := r.nonempty(num, typ)
	if err != nil {
		return err
	}
	return validateText(field, str(t), max, multiline)
}

func hashField(r *fieldReader, num protowire.Number, typ protowire.Type, what string, h *Hash) error {
	b, err := r.nonempty(num, typ)
	if err != nil {
		return err
	}
	if len(b) != HashSize {
		return fmt.Errorf("%w: %s names a hash of %d bytes, want %d", ErrInvalidEntry, what, len(b), HashSize)
	}
	copy(h[:], b)
	return nil
}

func decodeCertify(b []byte, v *entryView) error {
	r := fieldReader{b: b, msg: "certify"}
	n := 0
	var prev Signal
	hasReason := false
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
			if v.author, err = authorField(&r, num, typ, "certify"); err != nil {
				return err
			}
		case 2:
			if err := signalList(&r, num, typ, "certify", &n, &prev); err != nil {
				return err
			}
		case 3:
			c, err := r.nonzero(num, typ)
			if err != nil {
				return err
			}
			if _, ok := pb.Category_name[int32(c)]; !ok || c > 1<<31 {
				return fmt.Errorf("%w: certify category %d is not one of %s", ErrInvalidEntry, c, strings.Join(Categories(), ", "))
			}
			v.category = pb.Category(c)
		case 4:
			if err := textField(&r, num, typ, "certify reason", MaxTextSize, true); err != nil {
				return err
			}
			hasReason = true
		case 5:
			if err := textField(&r, num, typ, "certify subject", MaxSubjectSize, false); err != nil {
				return err
			}
		case 6:
			e, err := r.nonzero(num, typ)
			if err != nil {
				return err
			}
			if v.expires = int64(e); v.expires < 0 {
				return fmt.Errorf("%w: certify: negative expiry", ErrInvalidEntry)
			}
		default:
			return r.unknown(num)
		}
	}
	switch {
	case v.author == nil:
		return fmt.Errorf("%w: certification names no author (the id of the participant whose log it is written in)", ErrInvalidEntry)
	case n == 0:
		return fmt.Errorf("%w: certification has no signals, want 1 to %d", ErrInvalidEntry, MaxListSignals)
	case v.category == pb.Category_CATEGORY_UNSPECIFIED:
		return fmt.Errorf("%w: certification category missing, want one of %s", ErrInvalidEntry, strings.Join(Categories(), ", "))
	case !hasReason:
		return fmt.Errorf("%w: certification gives no reason", ErrInvalidEntry)
	}
	return nil
}

func decodeUncertify(b []byte, v *entryView) error {
	r := fieldReader{b: b, msg: "uncertify"}
	has := false
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
			if err := hashField(&r, num, typ, "uncertify", &v.proposal); err != nil {
				return err
			}
			has = true
		case 2:
			if err := textField(&r, num, typ, "uncertify reason", MaxTextSize, true); err != nil {
				return err
			}
		default:
			return r.unknown(num)
		}
	}
	if !has {
		return fmt.Errorf("%w: uncertify names no certification", ErrInvalidEntry)
	}
	return nil
}

func decodeRefer(b []byte, v *entryView) error {
	r := fieldReader{b: b, msg: "refer"}
	n, nTo := 0, 0
	var prev Signal
	var prevTo []byte
	hasBasis := false
	for {
		// Fields 2 (signals) and 6 (to) repeat.
		rep := protowire.Number(2)
		if r.last >= 6 {
			rep = 6
		}
		num, typ, ok, err := r.next(rep)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		switch num {
		case 1:
			if v.author, err = authorField(&r, num, typ, "refer"); err != nil {
				return err
			}
		case 2:
			if err := signalList(&r, num, typ, "refer", &n, &prev); err != nil {
				return err
			}
		case 3:
			if err := textField(&r, num, typ, "refer legal basis", MaxTextSize, true); err != nil {
				return err
			}
			hasBasis = true
		case 4:
			if err := textField(&r, num, typ, "refer order reference", MaxSubjectSize, false); err != nil {
				return err
			}
		case 5:
			d, err := r.nonzero(num, typ)
			if err != nil {
				return err
			}
			v.expires = int64(d)
		case 6:
			id, err := r.bytes(num, typ)
			if err != nil {
				return err
			}
			if nTo++; nTo > MaxReferralTo {
				return fmt.Errorf("%w: referral names more than %d members", ErrInvalidEntry, MaxReferralTo)
			}
			if err := ValidateMemberID(str(id)); err != nil {
				return fmt.Errorf("%w: referral to: %w", ErrInvalidEntry, err)
			}
			if prevTo != nil && bytes.Compare(prevTo, id) >= 0 {
				return fmt.Errorf("%w: referral members must be sorted, no repeats (%q after %q)", ErrInvalidEntry, string(id), string(prevTo))
			}
			prevTo = id
		case 7:
			if err := textField(&r, num, typ, "refer note", MaxTextSize, true); err != nil {
				return err
			}
		default:
			return r.unknown(num)
		}
	}
	switch {
	case v.author == nil:
		return fmt.Errorf("%w: referral names no author (the id of the authority whose log it is written in)", ErrInvalidEntry)
	case n == 0:
		return fmt.Errorf("%w: referral has no signals, want 1 to %d", ErrInvalidEntry, MaxListSignals)
	case !hasBasis:
		return fmt.Errorf("%w: referral gives no legal basis", ErrInvalidEntry)
	case v.expires <= 0:
		return fmt.Errorf("%w: referral has no deadline", ErrInvalidEntry)
	}
	return nil
}

func decodeAnswer(b []byte, v *entryView) error {
	r := fieldReader{b: b, msg: "answer"}
	has, hasReason := false, false
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
			if err := hashField(&r, num, typ, "answer", &v.proposal); err != nil {
				return err
			}
			has = true
		case 2:
			o, err := r.nonzero(num, typ)
			if err != nil {
				return err
			}
			if _, ok := pb.Outcome_name[int32(o)]; !ok || o > 1<<31 {
				return fmt.Errorf("%w: answer outcome %d is not listed or declined", ErrInvalidEntry, o)
			}
			v.outcome = pb.Outcome(o)
		case 3:
			if err := textField(&r, num, typ, "answer reason", MaxTextSize, true); err != nil {
				return err
			}
			hasReason = true
		default:
			return r.unknown(num)
		}
	}
	switch {
	case !has:
		return fmt.Errorf("%w: answer names no referral", ErrInvalidEntry)
	case v.outcome == pb.Outcome_OUTCOME_UNSPECIFIED:
		return fmt.Errorf("%w: answer outcome missing, want listed or declined", ErrInvalidEntry)
	case v.outcome == pb.Outcome_OUTCOME_DECLINED && !hasReason:
		return fmt.Errorf("%w: a declined answer gives no reason", ErrInvalidEntry)
	}
	return nil
}

// Categories lists the certification categories as the CLI spells them.
func Categories() []string { return []string{"counter_speech", "parody", "news", "research"} }

// ParseCategory parses a certification category as the CLI spells it (e.g. "parody").
func ParseCategory(s string) (pb.Category, error) {
	v, ok := pb.Category_value["CATEGORY_"+strings.ToUpper(s)]
	if !ok || v == 0 {
		return 0, fmt.Errorf("%w: category %q is not one of %s", ErrInvalidEntry, truncate(s, 40), strings.Join(Categories(), ", "))
	}
	return pb.Category(v), nil
}

// CategoryName returns the CLI spelling of a category.
func CategoryName(c pb.Category) string {
	return strings.ToLower(strings.TrimPrefix(c.String(), "CATEGORY_"))
}

// ParseOutcome parses an answer outcome, "listed" or "declined".
func ParseOutcome(s string) (pb.Outcome, error) {
	v, ok := pb.Outcome_value["OUTCOME_"+strings.ToUpper(s)]
	if !ok || v == 0 {
		return 0, fmt.Errorf("%w: outcome %q is not listed or declined", ErrInvalidEntry, truncate(s, 40))
	}
	return pb.Outcome(v), nil
}

// OutcomeName returns the CLI spelling of an outcome.
func OutcomeName(o pb.Outcome) string {
	return strings.ToLower(strings.TrimPrefix(o.String(), "OUTCOME_"))
}
