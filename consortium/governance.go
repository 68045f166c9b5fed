package consortium

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"maps"
	"slices"
	"strings"

	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// vote records member's vote (a proposal or an endorsement) for epoch; a second vote in one epoch
// is refused.
func (s *State) vote(mi uint16, epoch uint64, h Hash) error {
	k := voteKey{mi, epoch}
	if prev, ok := s.votes[k]; ok {
		return fmt.Errorf("%w: %q already voted in epoch %d for proposal %s", ErrDoubleEndorse, s.memberIDs[mi], epoch, proposalHex(prev))
	}
	s.votes[k] = h
	return nil
}

// votedFor reports whether member's vote in epoch (its first propose or endorse of that epoch in its
// own log) is for the proposal with leaf hash h.
func (s *State) votedFor(member string, epoch uint64, h Hash) bool {
	mi, ok := s.memberIdx[member]
	if !ok {
		return false
	}
	v, ok := s.votes[voteKey{mi, epoch}]
	return ok && v == h
}

// recomputeRosterFor recomputes the roster after a vote or proposal of epoch: only when the chain
// reaches that epoch. A vote in a later epoch cannot change the chain yet (the chain stops at the
// current epoch, whose candidates and votes are unchanged), and is counted by the recompute that
// reaches its epoch. Skipping it keeps replay linear when a log holds many votes for future
// epochs (each recompute sorts every proposal: 20,000 of them took over ten minutes).
func (s *State) recomputeRosterFor(epoch uint64) {
	if epoch > s.Roster().Epoch {
		return
	}
	s.recomputeRoster()
}

// recomputeRoster rebuilds the chain of rosters from genesis and the recorded proposals and votes,
// then brings listing visibility in line with the new current roster.
func (s *State) recomputeRoster() {
	old := s.Roster()
	chain := []*Roster{GenesisRoster(s.g)}
	ever := map[string]ed25519.PublicKey{}
	for _, m := range chain[0].Members {
		ever[m.ID] = m.Key
	}
	// Everything below iterates in a fixed order (proposals by leaf hash, members by id), so the
	// result and the invalid reasons do not depend on map iteration or on the order of Apply calls.
	byEpoch := map[uint64][]*proposal{}
	for _, h := range slices.SortedFunc(maps.Keys(s.proposals), func(a, b Hash) int { return bytes.Compare(a[:], b[:]) }) {
		p := s.proposals[h]
		byEpoch[p.epoch] = append(byEpoch[p.epoch], p)
	}
	clear(s.invalid)
	for {
		r := chain[len(chain)-1]
		cands := byEpoch[r.Epoch]
		slices.SortFunc(cands, func(a, b *proposal) int { return bytes.Compare(a.hash[:], b.hash[:]) })
		var best *proposal
		var bestNext *Roster
		bestVotes := 0
		for _, p := range cands {
			if !r.CanAdd(p.author) {
				s.invalid[p.hash] = fmt.Sprintf("%s is not a voting member in epoch %d", p.author, r.Epoch)
				continue
			}
			next, err := r.apply(p.changes, ever)
			if err != nil {
				s.invalid[p.hash] = err.Error()
				continue
			}
			n := 0
			for _, m := range r.Members {
				if !m.CanAdd() {
					continue
				}
				if s.votedFor(m.ID, r.Epoch, p.hash) {
					n++
				}
			}
			if n >= r.EffectiveQuorum() && n > bestVotes {
				best, bestNext, bestVotes = p, next, n
			}
		}
		if best == nil {
			break
		}
		bestNext.Proposal, bestNext.Proposer = best.hash, best.author
		chain = append(chain, bestNext)
		for _, m := range bestNext.Members {
			if _, ok := ever[m.ID]; !ok {
				ever[m.ID] = m.Key
			}
		}
	}
	s.chain = chain
	s.ever = ever
	for _, id := range slices.Sorted(maps.Keys(ever)) {
		s.intern(id) //nolint:errcheck // ids from validated roster changes
	}
	cur := s.Roster()
	if cur.Epoch == old.Epoch && cur.Proposal == old.Proposal {
		return
	}
	s.refreshRoles()
	s.emit(Change{Kind: RosterChanged, Roster: cur})
}

// refreshRoles recomputes who may list and who is on the roster, and reports every listing and
// opinion whose visibility changed.
func (s *State) refreshRoles() {
	r := s.Roster()
	var gained, lost []uint16
	var joined, left []uint16
	for i, id := range s.memberIDs {
		m, on := r.Member(id)
		can := on && m.CanAdd()
		flip(uint16(i), can, &s.canAdd[i], &gained, &lost)
		flip(uint16(i), on, &s.onRoster[i], &joined, &left)
	}
	if len(gained)+len(lost) > 0 {
		for id := range s.sigs {
			s.eachListing(uint32(id), func(l listing) {
				r := &s.sigs[id]
				switch {
				case slices.Contains(gained, l.member):
					s.seen(r, +1)
					s.emit(Change{Kind: Listed, Signal: r.sig, SignalID: uint32(id), Member: s.memberIDs[l.member], Index: l.index, Expires: l.expires, Listers: int(r.visible)})
				case slices.Contains(lost, l.member):
					s.seen(r, -1)
					s.emit(Change{Kind: Unlisted, Signal: r.sig, SignalID: uint32(id), Member: s.memberIDs[l.member], Index: l.index, Listers: int(r.visible)})
				}
			})
		}
	}
	if len(joined)+len(left) > 0 {
		// Reported in a fixed order (by signal, then author id), not the map's.
		var keys []opinionKey
		for k := range s.opinions {
			if slices.Contains(joined, k.author) || slices.Contains(left, k.author) {
				keys = append(keys, k)
			}
		}
		slices.SortFunc(keys, func(a, b opinionKey) int {
			if c := strings.Compare(a.sig.Type.String(), b.sig.Type.String()); c != 0 {
				return c
			}
			if c := bytes.Compare(a.sig.Bytes(), b.sig.Bytes()); c != 0 {
				return c
			}
			return strings.Compare(s.memberIDs[a.author], s.memberIDs[b.author])
		})
		for _, k := range keys {
			o := s.opinions[k]
			if slices.Contains(joined, k.author) {
				s.emitOpinion(k.sig, k.author, o.index, o.stance)
			} else {
				s.emitOpinion(k.sig, k.author, o.index, pb.Stance_STANCE_WITHDRAWN)
			}
		}
	}
}

// flip sets *was to now; when that changes it, member i goes to up (now true) or down.
func flip(i uint16, now bool, was *bool, up, down *[]uint16) {
	if now == *was {
		return
	}
	if now {
		*up = append(*up, i)
	} else {
		*down = append(*down, i)
	}
	*was = now
}

// Proposals returns the pending proposals of the current epoch with their vote counts.
func (s *State) Proposals() []ProposalStatus {
	r := s.Roster()
	var out []ProposalStatus
	for _, p := range s.proposals {
		if p.epoch != r.Epoch {
			continue
		}
		ps := ProposalStatus{Hash: p.hash, Author: p.author, Index: p.index, Epoch: p.epoch, Changes: p.changes, Needed: r.EffectiveQuorum(), Invalid: s.invalid[p.hash]}
		for _, m := range r.Members {
			if m.CanAdd() && s.votedFor(m.ID, p.epoch, p.hash) {
				ps.Votes = append(ps.Votes, m.ID)
			}
		}
		out = append(out, ps)
	}
	slices.SortFunc(out, func(a, b ProposalStatus) int { return bytes.Compare(a.Hash[:], b.Hash[:]) })
	return out
}

// ProposalStatus describes a pending roster proposal.
type ProposalStatus struct {
	Hash    Hash
	Author  string
	Index   uint64
	Epoch   uint64
	Changes []*pb.RosterChange
	// Votes are the voting members of the epoch that voted for it; Needed is the effective quorum.
	Votes  []string
	Needed int
	// Invalid, when not empty, says why the proposal cannot win.
	Invalid string
}
