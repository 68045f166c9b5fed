package node

import (
	"fmt"
	"time"

	"github.com/hashfed/hashfed/consortium"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"github.com/hashfed/hashfed/store"
)

// matchToProto converts a match of the store to its wire form.
func matchToProto(m store.Match) *pb.MatchResult {
	r := &pb.MatchResult{
		Signal:   m.Signal.Proto(),
		Distance: uint32(m.Distance),
		Hidden:   m.Hidden,
	}
	r.Protected = protectionsToProto(m.Protected)
	if m.Signal.Type == consortium.VPDQ {
		r.FrameMs = &m.FrameMS
	}
	r.Listings = make([]*pb.Listing, len(m.Listings))
	for i, l := range m.Listings {
		r.Listings[i] = listingToProto(l)
	}
	if len(m.Opinions) > 0 {
		r.Opinions = make([]*pb.OpinionView, len(m.Opinions))
		for i, o := range m.Opinions {
			r.Opinions[i] = opinionToProto(o)
		}
	}
	return r
}

// matchesToProto converts a list of matches.
func matchesToProto(ms []store.Match) []*pb.MatchResult {
	if len(ms) == 0 {
		return nil
	}
	out := make([]*pb.MatchResult, len(ms))
	for i, m := range ms {
		out[i] = matchToProto(m)
	}
	return out
}

// listingToProto converts one listing; a zero expiry stays 0 and an unknown quality stays unset.
func listingToProto(l store.ListingInfo) *pb.Listing {
	p := &pb.Listing{
		Member:     l.Member,
		Index:      l.Index,
		TimeUnixMs: l.Time.UnixMilli(),
		Labels:     l.Labels,
		ContentId:  l.ContentID,
		Note:       l.Note,
	}
	if !l.Expires.IsZero() {
		p.ExpiresUnixMs = l.Expires.UnixMilli()
	}
	if l.Quality >= 0 {
		q := uint32(l.Quality)
		p.Quality = &q
	}
	return p
}

// opinionToProto converts one opinion.
func opinionToProto(o store.OpinionInfo) *pb.OpinionView {
	return &pb.OpinionView{Author: o.Author, Index: o.Index, TimeUnixMs: o.Time.UnixMilli(), Stance: o.Stance, Text: o.Text}
}

// listingFromEntry reads a listing's details from the add entry in force (entry index of member's
// log), for exports of a replayed state, where the store's match details are not at hand.
func listingFromEntry(member string, index uint64, raw []byte) (*pb.Listing, error) {
	e, err := consortium.ParseEntry(raw)
	if err != nil {
		return nil, fmt.Errorf("entry %d of %q: %w", index, member, err)
	}
	a := e.GetAdd()
	if a == nil {
		return nil, fmt.Errorf("%w: entry %d of %q is listed but is not an add", consortium.ErrInvalidEntry, index, member)
	}
	return &pb.Listing{
		Member:        member,
		Index:         index,
		TimeUnixMs:    e.TimeUnixMs,
		Labels:        a.Labels,
		ContentId:     a.ContentId,
		Note:          a.Note,
		ExpiresUnixMs: a.ExpiresUnixMs,
		Quality:       a.Quality,
	}, nil
}

// entrySignal returns the signal an entry is about: an add's, an opinion's, or a revoke's (by
// signal, or for a revoke by index the signal of the add it names, read with read). ok is false for
// roster entries and when the target cannot be resolved.
func entrySignal(e *pb.Entry, read func(index uint64) ([]byte, error)) (sig consortium.Signal, ok bool) {
	var p *pb.Signal
	switch op := e.GetOp().(type) {
	case *pb.Entry_Add:
		p = op.Add.GetSignal()
	case *pb.Entry_Opinion:
		p = op.Opinion.GetSignal()
	case *pb.Entry_Revoke:
		switch t := op.Revoke.GetTarget().(type) {
		case *pb.Revoke_Signal:
			p = t.Signal
		case *pb.Revoke_Index:
			raw, err := read(t.Index)
			if err != nil {
				return sig, false
			}
			target, err := consortium.ParseEntry(raw)
			if err != nil || target.GetAdd() == nil {
				return sig, false
			}
			p = target.GetAdd().GetSignal()
		}
	}
	if p == nil {
		return sig, false
	}
	sig, err := consortium.SignalFromProto(p)
	return sig, err == nil
}

// rfc3339 formats a time for the JSON API ("" for the zero time).
func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
