package consortium

import (
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// The constructors below build the entries a member writes, each checked with [ValidateEntry]
// before it is returned, so a caller learns of a bad label or text before anything is sent.
//
// t is the entry's time in Unix milliseconds. A node stamps the time of what a client submits, so
// a client passes 0: the entry is then checked as if written at the earliest time, which every rule
// but the expiry's accepts (the node checks the expiry against its own clock).

// AddOptions are the optional fields of an add.
type AddOptions struct {
	// ContentID groups several signals of one piece of content.
	ContentID string
	// Note is free text for other members' reviewers.
	Note string
	// ExpiresUnixMs is when the listing lapses (0: never).
	ExpiresUnixMs int64
	// Quality is the PDQ quality (0-100) the hasher reported; it is kept for pdq signals only and
	// dropped for others, so one value can serve every signal of an image.
	Quality *uint32
}

// NewAdd returns an add of sig with the labels in canonical form.
func NewAdd(t int64, sig Signal, labels []string, o AddOptions) (*pb.Entry, error) {
	ls, err := CanonicalLabels(labels)
	if err != nil {
		return nil, err
	}
	a := &pb.Add{Signal: sig.Proto(), Labels: ls, ContentId: o.ContentID, Note: o.Note, ExpiresUnixMs: o.ExpiresUnixMs}
	if o.Quality != nil && sig.Type == PDQ {
		q := *o.Quality
		a.Quality = &q
	}
	return checked(&pb.Entry{TimeUnixMs: t, Op: &pb.Entry_Add{Add: a}})
}

// NewRevokeSignal returns a revoke of the author's listing of sig.
func NewRevokeSignal(t int64, sig Signal, reason pb.RevokeReason, text string) (*pb.Entry, error) {
	return checked(&pb.Entry{TimeUnixMs: t, Op: &pb.Entry_Revoke{Revoke: &pb.Revoke{
		Target: &pb.Revoke_Signal{Signal: sig.Proto()}, Reason: reason, Text: text}}})
}

// NewRevokeIndex returns a revoke of the add at index in the author's log.
func NewRevokeIndex(t int64, index uint64, reason pb.RevokeReason, text string) (*pb.Entry, error) {
	return checked(&pb.Entry{TimeUnixMs: t, Op: &pb.Entry_Revoke{Revoke: &pb.Revoke{
		Target: &pb.Revoke_Index{Index: index}, Reason: reason, Text: text}}})
}

// NewOpinion returns the author's opinion on sig.
func NewOpinion(t int64, sig Signal, stance pb.Stance, text string) (*pb.Entry, error) {
	return checked(&pb.Entry{TimeUnixMs: t, Op: &pb.Entry_Opinion{Opinion: &pb.Opinion{Signal: sig.Proto(), Stance: stance, Text: text}}})
}

// NewPropose returns author's proposal of roster changes for epoch; author must be the member
// whose log the proposal is written in.
func NewPropose(t int64, author string, epoch uint64, text string, changes ...*pb.RosterChange) (*pb.Entry, error) {
	return checked(&pb.Entry{TimeUnixMs: t, Op: &pb.Entry_Propose{Propose: &pb.Propose{Epoch: epoch, Changes: changes, Text: text, Author: author}}})
}

// NewEndorse returns an endorsement, for epoch, of the proposal whose leaf hash is proposal.
func NewEndorse(t int64, epoch uint64, proposal Hash) (*pb.Entry, error) {
	return checked(&pb.Entry{TimeUnixMs: t, Op: &pb.Entry_Endorse{Endorse: &pb.Endorse{Epoch: epoch, Proposal: proposal[:]}}})
}

// AdmitChange is the roster change admitting the member with key k in role.
func AdmitChange(k PublicKey, role pb.Role) *pb.RosterChange {
	return &pb.RosterChange{Change: &pb.RosterChange_Admit{Admit: &pb.Member{Id: k.ID, PublicKey: k.Key, Role: role}}}
}

// RemoveChange is the roster change removing member id.
func RemoveChange(id string) *pb.RosterChange {
	return &pb.RosterChange{Change: &pb.RosterChange_Remove{Remove: id}}
}

// QuorumChange is the roster change setting the configured quorum.
func QuorumChange(q uint32) *pb.RosterChange {
	return &pb.RosterChange{Change: &pb.RosterChange_SetQuorum{SetQuorum: q}}
}

// checked validates e; an e without a time is validated at time 1 and returned without one.
func checked(e *pb.Entry) (*pb.Entry, error) {
	if e.TimeUnixMs != 0 {
		if err := ValidateEntry(e); err != nil {
			return nil, err
		}
		return e, nil
	}
	e.TimeUnixMs = 1
	err := ValidateEntry(e)
	e.TimeUnixMs = 0
	if err != nil {
		return nil, err
	}
	return e, nil
}
