package consortium

import (
	"fmt"
)

// This file decodes the roster operations of an entry, proposals (with their changes) and
// endorsements, in the one pass of decode.go and under its canonical-encoding rules.

func decodePropose(b []byte, v *entryView) error {
	r := fieldReader{b: b, msg: "proposal"}
	n := 0
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
			if v.epoch, err = r.nonzero(num, typ); err != nil {
				return err
			}
		case 2:
			c, err := r.bytes(num, typ)
			if err != nil {
				return err
			}
			if n++; n > MaxRosterChanges {
				return fmt.Errorf("%w: proposal has more than %d changes", ErrInvalidEntry, MaxRosterChanges)
			}
			if err := decodeChange(c); err != nil {
				return fmt.Errorf("%w: proposal change %d: %w", ErrInvalidEntry, n-1, err)
			}
		case 3:
			t, err := r.nonempty(num, typ)
			if err != nil {
				return err
			}
			if err := validateText("proposal text", str(t), MaxTextSize, true); err != nil {
				return err
			}
		case 4:
			a, err := r.nonempty(num, typ)
			if err != nil {
				return err
			}
			if err := ValidateMemberID(str(a)); err != nil {
				return fmt.Errorf("%w: proposal author: %w", ErrInvalidEntry, err)
			}
			v.author = a
		default:
			return r.unknown(num)
		}
	}
	if n == 0 {
		return fmt.Errorf("%w: proposal has 0 changes, want 1 to %d", ErrInvalidEntry, MaxRosterChanges)
	}
	if v.author == nil {
		return fmt.Errorf("%w: proposal names no author (the id of the member whose log it is written in)", ErrInvalidEntry)
	}
	return nil
}

func decodeChange(b []byte) error {
	r := fieldReader{b: b, msg: "roster change"}
	kinds := 0
	for {
		num, typ, ok, err := r.next(0)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		kinds++
		if kinds > 1 {
			return fmt.Errorf("%w: roster change has two kinds", ErrMalformed)
		}
		switch num {
		case 1:
			m, err := r.bytes(num, typ)
			if err != nil {
				return err
			}
			if err := decodeMember(m); err != nil {
				return err
			}
		case 2:
			id, err := r.bytes(num, typ)
			if err != nil {
				return err
			}
			if err := ValidateMemberID(str(id)); err != nil {
				return err
			}
		case 3:
			q, err := r.varint(num, typ)
			if err != nil {
				return err
			}
			if q < 1 || q > MaxMembers {
				return fmt.Errorf("%w: quorum %d, want 1 to %d", ErrMalformed, q, MaxMembers)
			}
		case 4:
			s, err := r.bytes(num, typ)
			if err != nil {
				return err
			}
			if err := decodeSetRole(s); err != nil {
				return err
			}
		default:
			return r.unknown(num)
		}
	}
	if kinds == 0 {
		return fmt.Errorf("%w: empty roster change", ErrMalformed)
	}
	return nil
}

func decodeMember(b []byte) error {
	r := fieldReader{b: b, msg: "member"}
	var id, key []byte
	var role uint64
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
			id, err = r.nonempty(num, typ)
		case 2:
			key, err = r.nonempty(num, typ)
		case 3:
			role, err = r.nonzero(num, typ)
		default:
			return r.unknown(num)
		}
		if err != nil {
			return err
		}
	}
	if err := ValidateMemberID(str(id)); err != nil {
		return err
	}
	if len(key) != 32 {
		return fmt.Errorf("%w: key of %q is %d bytes, want 32", ErrInvalidKey, string(id), len(key))
	}
	if !validRole(role) {
		return fmt.Errorf("%w: role of %q is %d, want member, observer, civil-society or authority", ErrMalformed, string(id), role)
	}
	return nil
}

func decodeSetRole(b []byte) error {
	r := fieldReader{b: b, msg: "set_role"}
	var id []byte
	var role uint64
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
			id, err = r.nonempty(num, typ)
		case 2:
			role, err = r.nonzero(num, typ)
		default:
			return r.unknown(num)
		}
		if err != nil {
			return err
		}
	}
	if err := ValidateMemberID(str(id)); err != nil {
		return err
	}
	if !validRole(role) {
		return fmt.Errorf("%w: role %d, want member, observer, civil-society or authority", ErrMalformed, role)
	}
	return nil
}

func decodeEndorse(b []byte, v *entryView) error {
	r := fieldReader{b: b, msg: "endorsement"}
	var h []byte
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
			v.epoch, err = r.nonzero(num, typ)
		case 2:
			h, err = r.nonempty(num, typ)
		default:
			return r.unknown(num)
		}
		if err != nil {
			return err
		}
	}
	if len(h) != HashSize {
		return fmt.Errorf("%w: endorsement names a proposal hash of %d bytes, want %d", ErrInvalidEntry, len(h), HashSize)
	}
	copy(v.proposal[:], h)
	return nil
}
