package store

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashfed/hashfed/consortium"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"github.com/hashfed/hashfed/store/pdqindex"
	bolt "go.etcd.io/bbolt"
)

// MaxRadius is the largest PDQ match radius a query may ask for.
const MaxRadius = 63

// Query says how to match.
type Query struct {
	// Radius is the PDQ Hamming radius, 0 to [MaxRadius]; ignored for exact signal types.
	Radius int
	// Quality is the query hash's PDQ quality when the caller knows it, or -1. A known quality below
	// the store's gate is refused.
	Quality int
	// IncludeHidden returns matches that the local policy hides, with the reason, instead of
	// leaving them out.
	IncludeHidden bool
}

// DefaultQuery is a PDQ query at the consortium's default radius (31) of unknown quality.
func DefaultQuery() Query { return Query{Radius: pdqindex.DefaultRadius, Quality: -1} }

// Match is a stored signal that matches a query, with everything the consortium says about it.
type Match struct {
	Signal consortium.Signal
	// Distance is the Hamming distance to the query (0 for exact types).
	Distance int
	// Listings are the members listing the signal now (expired listings left out), by member id.
	Listings []ListingInfo
	// Opinions are the current opinions of roster members, by author.
	Opinions []OpinionInfo
	// Hidden, when not empty, is the local policy that hides this match and why; only returned
	// when the query includes hidden matches.
	Hidden string
}

// ListingInfo is one member's listing, read from its add entry.
type ListingInfo struct {
	Member    string
	Index     uint64
	Time      time.Time
	Labels    []string
	ContentID string
	Note      string
	// Expires is zero for a listing that does not expire.
	Expires time.Time
	// Quality is the PDQ quality the author reported, or -1.
	Quality int
}

// OpinionInfo is one member's opinion on a signal, read from its opinion entry.
type OpinionInfo struct {
	Author string
	Index  uint64
	Time   time.Time
	Stance pb.Stance
	Text   string
}

// candidate is a signal id with its distance and the state's records, gathered under the lock.
type candidate struct {
	id       uint32
	sig      consortium.Signal
	dist     int
	listings []consortium.Listing
	opinions []consortium.OpinionRecord
}

// MatchPDQ returns the listed PDQ signals within q.Radius of h, nearest first.
func (s *Store) MatchPDQ(h [32]byte, q Query) ([]Match, error) {
	if q.Radius < 0 || q.Radius > MaxRadius {
		return nil, fmt.Errorf("radius %d out of range 0 to %d", q.Radius, MaxRadius)
	}
	if q.Quality >= 0 && q.Quality < s.opts.QualityGate {
		return nil, fmt.Errorf("%w: query quality %d is below the quality gate %d", ErrLowQuality, q.Quality, s.opts.QualityGate)
	}
	// The index and the state are read as a pair: an equivocation cutoff may swap in a rebuilt
	// pair (store/fork.go), whose signal ids differ; a search that straddles the swap is redone.
	s.mu.RLock()
	index, state := s.pdq, s.state
	s.mu.RUnlock()
	hits := index.Search(pdqindex.Hash(h), q.Radius, nil)
	if len(hits) == 0 {
		return nil, nil
	}
	s.mu.RLock()
	if s.state != state {
		s.mu.RUnlock()
		return s.MatchPDQ(h, q)
	}
	cands := make([]candidate, 0, len(hits))
	for _, hit := range hits {
		sig, ok := s.state.SignalByID(hit.ID)
		if !ok {
			continue
		}
		cands = append(cands, s.candidateLocked(hit.ID, sig, hit.Distance))
	}
	s.mu.RUnlock()
	return s.finish(cands, q, false)
}

// MatchSignal matches a signal: by Hamming distance for pdq, exactly for the other types.
func (s *Store) MatchSignal(sig consortium.Signal, q Query) ([]Match, error) {
	if sig.Type == consortium.PDQ {
		return s.MatchPDQ(sig.Value, q)
	}
	s.mu.RLock()
	id, ok := s.state.SignalID(sig)
	var cands []candidate
	if ok {
		cands = append(cands, s.candidateLocked(id, sig, 0))
	}
	s.mu.RUnlock()
	return s.finish(cands, q, false)
}

// Lookup returns what the consortium says of exactly this signal: current listings and opinions,
// whether or not a policy hides it. ok is false when no member lists it now (opinions on it, if
// any, are still returned in m).
func (s *Store) Lookup(sig consortium.Signal) (m Match, ok bool, err error) {
	s.mu.RLock()
	c := candidate{sig: sig, opinions: s.state.Opinions(sig)}
	if id, found := s.state.SignalID(sig); found {
		c = s.candidateLocked(id, sig, 0)
	}
	s.mu.RUnlock()
	ms, err := s.finish([]candidate{c}, Query{Radius: 0, Quality: -1, IncludeHidden: true}, true)
	if err != nil || len(ms) == 0 {
		return Match{Signal: sig}, false, err
	}
	return ms[0], len(ms[0].Listings) > 0, nil
}

// candidateLocked gathers the state's records of a signal. Caller holds mu.
func (s *Store) candidateLocked(id uint32, sig consortium.Signal, dist int) candidate {
	return candidate{id: id, sig: sig, dist: dist, listings: s.state.ListedByID(id), opinions: s.state.Opinions(sig)}
}

// finish drops expired listings, applies the local policy, and reads the details of each listing
// and opinion from its entry. Signals no member lists (any more) are left out unless keepUnlisted.
func (s *Store) finish(cands []candidate, q Query, keepUnlisted bool) ([]Match, error) {
	now := s.opts.Now().UnixMilli()
	var out []Match
	err := s.db.View(func(tx *bolt.Tx) error {
		for _, c := range cands {
			m := Match{Signal: c.sig, Distance: c.dist}
			for _, l := range c.listings {
				if l.Expires != 0 && l.Expires <= now {
					continue
				}
				li, err := listingInfo(tx, l)
				if err != nil {
					return err
				}
				m.Listings = append(m.Listings, li)
			}
			for _, o := range c.opinions {
				oi, err := opinionInfo(tx, c.sig, o)
				if err != nil {
					return err
				}
				m.Opinions = append(m.Opinions, oi)
			}
			if len(m.Listings) == 0 && (!keepUnlisted || len(m.Opinions) == 0) {
				continue
			}
			m.Hidden = s.policy(m)
			if m.Hidden != "" && !q.IncludeHidden {
				continue
			}
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store %s: read match details: %w", s.path, err)
	}
	slices.SortStableFunc(out, func(a, b Match) int {
		if a.Distance != b.Distance {
			return a.Distance - b.Distance
		}
		return strings.Compare(a.Signal.Text(), b.Signal.Text())
	})
	return out, nil
}

// policy returns why the local policy hides a match, or "".
func (s *Store) policy(m Match) string {
	if s.opts.DisputeThreshold <= 0 {
		return ""
	}
	n := 0
	for _, o := range m.Opinions {
		if o.Stance == pb.Stance_STANCE_FALSE_POSITIVE {
			n++
		}
	}
	if n >= s.opts.DisputeThreshold {
		return fmt.Sprintf("disputed: %d members call it a false positive (local policy hides signals disputed by %d or more)", n, s.opts.DisputeThreshold)
	}
	return ""
}

// parsedEntry reads and decodes entry index of member's stored log.
func parsedEntry(tx *bolt.Tx, member string, index uint64) (*pb.Entry, error) {
	raw, err := readEntry(tx, member, index)
	if err != nil {
		return nil, err
	}
	e, err := consortium.ParseEntry(raw)
	if err != nil {
		return nil, fmt.Errorf("entry %d of %q: %w", index, member, err)
	}
	return e, nil
}

func listingInfo(tx *bolt.Tx, l consortium.Listing) (ListingInfo, error) {
	e, err := parsedEntry(tx, l.Member, l.Index)
	if err != nil {
		return ListingInfo{}, err
	}
	a := e.GetAdd()
	li := ListingInfo{
		Member:    l.Member,
		Index:     l.Index,
		Time:      time.UnixMilli(e.TimeUnixMs).UTC(),
		Labels:    a.GetLabels(),
		ContentID: a.GetContentId(),
		Note:      a.GetNote(),
		Quality:   -1,
	}
	if a.GetExpiresUnixMs() != 0 {
		li.Expires = time.UnixMilli(a.ExpiresUnixMs).UTC()
	}
	if a.Quality != nil {
		li.Quality = int(*a.Quality)
	}
	return li, nil
}

func opinionInfo(tx *bolt.Tx, sig consortium.Signal, o consortium.OpinionRecord) (OpinionInfo, error) {
	e, err := parsedEntry(tx, o.Author, o.Index)
	if err != nil {
		return OpinionInfo{}, err
	}
	return OpinionInfo{Author: o.Author, Index: o.Index, Time: time.UnixMilli(e.TimeUnixMs).UTC(), Stance: o.Stance, Text: e.GetOpinion().GetText()}, nil
}

// View calls fn with the derived state under the store's read lock. fn must not keep the state or
// call into the store.
func (s *Store) View(fn func(*consortium.State)) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	fn(s.state)
}

// IndexStats returns the PDQ index's statistics.
func (s *Store) IndexStats() pdqindex.Stats {
	s.mu.RLock()
	index := s.pdq
	s.mu.RUnlock()
	return index.Stats()
}
