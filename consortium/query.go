package consortium

import (
	"slices"
	"strings"
)

// Counts returns the number of signals listed by at least one member and the number of listings.
// Both are kept as listings change: Counts does not scan the set.
func (s *State) Counts() (signals, listings int) {
	return s.visibleSigs, s.listed
}

// NumSignalIDs returns one more than the largest signal id handed out.
func (s *State) NumSignalIDs() int { return len(s.sigs) }

// SignalByID returns the signal with the given id.
func (s *State) SignalByID(id uint32) (Signal, bool) {
	if int(id) >= len(s.sigs) {
		return Signal{}, false
	}
	return s.sigs[id].sig, true
}

// NextSignalID returns the id the next signal to appear in an add for the first time will get.
// Signal ids are given in the order signals first appear in applied adds (valid ones, whether or
// not their author may add), counting up from 0, and never change: a caller that knows which adds
// it is about to apply knows their ids before it applies them.
func (s *State) NextSignalID() uint32 { return uint32(len(s.sigs)) }

// SignalID returns the id of a signal that has appeared in an add.
func (s *State) SignalID(sig Signal) (uint32, bool) {
	id, ok := s.sigIndex.lookup(sig, s.sigs)
	return id, ok
}

// Listed returns the members listing a signal, ordered by member id (expiry not applied).
func (s *State) Listed(sig Signal) []Listing {
	id, ok := s.sigIndex.lookup(sig, s.sigs)
	if !ok {
		return nil
	}
	return s.ListedByID(id)
}

// ListedByID is [State.Listed] by signal id.
func (s *State) ListedByID(id uint32) []Listing {
	if int(id) >= len(s.sigs) || s.sigs[id].visible == 0 {
		return nil
	}
	var out []Listing
	s.eachListing(id, func(l listing) {
		if s.canAdd[l.member] {
			out = append(out, Listing{Member: s.memberIDs[l.member], Index: l.index, Expires: l.expires})
		}
	})
	slices.SortFunc(out, func(a, b Listing) int { return strings.Compare(a.Member, b.Member) })
	return out
}

// Opinions returns the current opinions on a signal by members on the roster, ordered by author.
func (s *State) Opinions(sig Signal) []OpinionRecord {
	var out []OpinionRecord
	for i, id := range s.memberIDs {
		if !s.onRoster[i] {
			continue
		}
		if o, ok := s.opinions[opinionKey{sig, uint16(i)}]; ok {
			m, _ := s.Roster().Member(id)
			out = append(out, OpinionRecord{Author: id, Stance: o.stance, Index: o.index, Role: m.Role})
		}
	}
	slices.SortFunc(out, func(a, b OpinionRecord) int { return strings.Compare(a.Author, b.Author) })
	return out
}

// ForEachListed calls fn for every signal listed by at least one member, in signal id order.
func (s *State) ForEachListed(fn func(id uint32, sig Signal) bool) {
	for i := range s.sigs {
		if s.sigs[i].visible > 0 && !fn(uint32(i), s.sigs[i].sig) {
			return
		}
	}
}

func (s *State) eachListing(id uint32, fn func(listing)) {
	r := &s.sigs[id]
	if r.n == 0 {
		return
	}
	fn(r.first)
	for _, l := range s.extra[id] {
		fn(l)
	}
}

// ListingInForce returns member's listing of sig when it is in force: the member lists the signal
// and may list (its role allows adds). Expiry is not applied. A node uses it to tell a re-listing
// that changes nothing from one that updates the listing.
func (s *State) ListingInForce(member string, sig Signal) (Listing, bool) {
	l, ok, _ := s.LookupListing(member, sig)
	return l, ok
}

// LookupListing is [State.ListingInForce] that also reports whether sig has appeared in an add
// (has a signal id, [State.SignalID]), with one lookup of the signal.
func (s *State) LookupListing(member string, sig Signal) (l Listing, inForce, known bool) {
	id, known := s.sigIndex.lookup(sig, s.sigs)
	mi, ok := s.memberIdx[member]
	if !known || !ok || !s.canAdd[mi] {
		return Listing{}, false, known
	}
	s.eachListing(id, func(x listing) {
		if x.member == mi {
			l, inForce = Listing{Member: member, Index: x.index, Expires: x.expires}, true
		}
	})
	return l, inForce, true
}
