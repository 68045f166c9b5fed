package consortium

import (
	"fmt"

	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"google.golang.org/protobuf/proto"
)

// Check reports whether member may append entry raw to its log now, given this state: the rules of
// [ValidateEntry], plus the author is on the roster, only members add or vote, a proposal names
// member as its author ([ErrWrongAuthor] otherwise), a revoke names a signal the author lists, votes
// are for the current epoch and one per epoch, time does not go backwards, and the rules of the
// roles (certifications, referrals and answers: PROTOCOL.md sections 15 and 15). A node runs it on
// its own submissions before appending them.
func (s *State) Check(member string, raw []byte) error {
	return s.CheckBatch(member, [][]byte{raw})[0]
}

// CheckBatch checks entries that member would append in order, each against the state as it would
// be after the accepted ones before it (see [State.Check]); a refused entry is left out and does not
// affect the others. It returns one error (or nil) per entry. It changes nothing.
func (s *State) CheckBatch(member string, raws [][]byte) []error {
	return s.CheckBatchDecoded(member, raws, nil)
}

// CheckBatchDecoded is [State.CheckBatch] of entries already decoded: decs[i] is [Decode] of
// raws[i] (as [EncodeEntry] returns it), so they are not decoded again. A nil decs decodes them.
func (s *State) CheckBatchDecoded(member string, raws [][]byte, decs []Decoded) []error {
	errs := make([]error, len(raws))
	r := s.Roster()
	m, ok := r.Member(member)
	if !ok {
		for i := range errs {
			errs[i] = fmt.Errorf("%w: %q is not on the roster of epoch %d", ErrUnknownMember, member, r.Epoch)
		}
		return errs
	}
	mi := s.memberIdx[member]
	ov := batchOverlay{
		lastTime: s.logs[mi].lastTime,
		first:    s.logs[mi].size,
		next:     s.logs[mi].size,
		raws:     make([][]byte, 0, len(raws)),
		votes:    map[uint64]Hash{},
		mine:     map[Hash]bool{},
	}
	for i, raw := range raws {
		var d Decoded
		if decs != nil {
			d = decs[i]
		} else {
			d = Decode(raw)
		}
		if d.err != nil {
			errs[i] = d.err
			continue
		}
		if errs[i] = s.check(member, mi, m, raw, d.v, &ov); errs[i] == nil {
			ov.raws = append(ov.raws, raw)
			ov.next++
		}
	}
	return errs
}

// batchOverlay is what a batch of not yet applied entries of one author changes for checking the
// next: its time, its listings, its votes and the entries themselves (for revokes by index).
type batchOverlay struct {
	lastTime int64
	// first is the log's size before the batch; raws are the batch's accepted entries, entry
	// first+i being raws[i], and next the index the next one would have.
	first, next uint64
	// listed is what the batch's accepted adds and revokes so far did to the author's listings.
	// Only a revoke reads it, and most batches have none: until the first revoke it is nil, and
	// the accepted adds are only noted in added (see addsListed).
	listed map[Signal]bool
	added  []Signal
	raws   [][]byte
	votes  map[uint64]Hash
	// mine are the certifications (true) and answered referrals of the batch (roles.go).
	mine map[Hash]bool
}

// addsListed makes listed, when it is nil, from the adds noted in added.
func (ov *batchOverlay) addsListed() {
	if ov.listed != nil {
		return
	}
	ov.listed = make(map[Signal]bool, len(ov.added))
	for _, sig := range ov.added {
		ov.listed[sig] = true
	}
	ov.added = nil
}

// check checks raw, decoded as v, against the state and the batch before it (ov).
func (s *State) check(member string, mi uint16, m Member, raw []byte, v entryView, ov *batchOverlay) error {
	r := s.Roster()
	if v.time < ov.lastTime {
		return fmt.Errorf("%w: time %d ms is before the log's last entry at %d ms", ErrOutOfOrder, v.time, ov.lastTime)
	}
	switch v.op {
	case OpAdd:
		if !m.CanAdd() {
			return fmt.Errorf("%w: %q is %s; %s cannot add", ErrNotPermitted, member, roleNoun(m.Role, false), roleNoun(m.Role, true))
		}
		if ov.listed != nil {
			ov.listed[v.sig] = true
		} else {
			ov.added = append(ov.added, v.sig)
		}
	case OpRevoke:
		ov.addsListed()
		sig := v.sig
		if v.byIndex {
			if v.index >= ov.next {
				return fmt.Errorf("%w: revoke names entry %d, which is not before it", ErrInvalidEntry, v.index)
			}
			var perr, err error
			if v.index >= ov.first {
				raw := ov.raws[v.index-ov.first]
				var t entryView
				if decodeEntry(raw, &t) != nil || t.op != OpAdd {
					perr = fmt.Errorf("%w: revoke names entry %d, which is not a valid add", ErrInvalidEntry, v.index)
				}
				sig = t.sig
			} else {
				sig, perr, err = s.revokeTarget(member, ov.next, v.index)
			}
			if err != nil {
				return err
			}
			if perr != nil {
				return perr
			}
		}
		listed, inBatch := ov.listed[sig]
		if !inBatch {
			id, ok := s.sigIndex.lookup(sig, s.sigs)
			listed = ok && s.hasListing(id, mi)
		}
		if !listed {
			return fmt.Errorf("%w: %q does not list %s, so cannot revoke it (a member revokes only its own adds)", ErrNotPermitted, member, sig)
		}
		ov.listed[sig] = false
	case OpPropose, OpEndorse:
		if v.op == OpPropose && string(v.author) != member {
			return fmt.Errorf("%w: the proposal names %q as its author, but it would be written in %q's log; a member proposes only in its own log, with its own id as author (a copy of another member's proposal has no effect: endorse it instead)",
				ErrWrongAuthor, v.author, member)
		}
		if !m.CanAdd() {
			return fmt.Errorf("%w: %q is %s; only members propose and endorse", ErrNotPermitted, member, roleNoun(m.Role, false))
		}
		var vote Hash
		if v.op == OpPropose {
			var e pb.Entry
			if err := proto.Unmarshal(raw, &e); err != nil {
				return fmt.Errorf("%w: proposal: %v", ErrMalformed, err)
			}
			if _, err := r.apply(e.GetPropose().GetChanges(), s.ever); err != nil {
				return fmt.Errorf("%w: proposal: %w", ErrInvalidEntry, err)
			}
			vote = LeafHash(raw)
		} else {
			p, ok := s.proposals[v.proposal]
			if !ok {
				return fmt.Errorf("%w: endorsement of unknown proposal %s", ErrInvalidEntry, proposalHex(v.proposal))
			}
			if p.epoch != v.epoch {
				return fmt.Errorf("%w: endorsement for epoch %d of a proposal for epoch %d", ErrInvalidEntry, v.epoch, p.epoch)
			}
			vote = v.proposal
		}
		if v.epoch != r.Epoch {
			return fmt.Errorf("%w: vote for epoch %d, but the roster is at epoch %d", ErrInvalidEntry, v.epoch, r.Epoch)
		}
		prev, ok := s.votes[voteKey{mi, v.epoch}]
		if !ok {
			prev, ok = ov.votes[v.epoch]
		}
		if ok {
			return fmt.Errorf("%w: %q already voted in epoch %d for proposal %s", ErrDoubleEndorse, member, v.epoch, proposalHex(prev))
		}
		ov.votes[v.epoch] = vote
	case OpCertify, OpUncertify, OpRefer, OpAnswer:
		if err := s.checkRoleOp(member, mi, m, raw, &v, ov); err != nil {
			return err
		}
	}
	ov.lastTime = v.time
	return nil
}
