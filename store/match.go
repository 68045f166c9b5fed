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
	// Inspect marks a reviewer's look rather than an upload: it is not counted towards flood
	// quarantine.
	Inspect bool
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
	// Protected are the certifications in force, not expired, that protect the query's signal or
	// this one (PROTOCOL.md section 14): the match belongs in review, not automated removal.
	Protected []consortium.Protection
	// FrameMS, for a vpdq signal that an image query matched (a frame of a listed video), is the
	// frame's timestamp in milliseconds; see [Store.MatchPDQFrames].
	FrameMS int64
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
	// Role is the author's role in the current roster.
	Role pb.Role
}

// candidate is a signal id with its distance and the state's records, gathered under the lock.
type candidate struct {
	id       uint32
	sig      consortium.Signal
	dist     int
	listings []consortium.Listing
	opinions []consortium.OpinionRecord
	// protected are the certifications of the signal and of the query's (expiry not applied).
	protected []consortium.Protection
}

// MatchPDQ returns the listed PDQ signals within q.Radius of h, and the frames of listed videos
// within it ([Store.MatchPDQFrames]), nearest first.
func (s *Store) MatchPDQ(h [32]byte, q Query) ([]Match, error) {
	out, err := s.matchPDQ([][32]byte{h}, q, func(index *pdqindex.Index, qs []pdqindex.Hash) [][]pdqindex.Match {
		return [][]pdqindex.Match{index.Search(qs[0], q.Radius, nil)}
	})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// MatchPDQBatch is [Store.MatchPDQ] for several hashes with one query: result i is what MatchPDQ(hs[i],
// q) returns. The index searches the hashes together ([pdqindex.Index.SearchBatch]), which is faster per
// hash than one search at a time.
func (s *Store) MatchPDQBatch(hs [][32]byte, q Query) ([][]Match, error) {
	return s.matchPDQ(hs, q, func(index *pdqindex.Index, qs []pdqindex.Hash) [][]pdqindex.Match {
		return index.SearchBatch(qs, q.Radius, nil)
	})
}

// matchPDQ is [Store.MatchPDQ] and [Store.MatchPDQBatch], which differ only in how they search the
// index: search returns the index's hits for each hash of qs, in order. Result i is the matches of
// hs[i]: the listed signals hit, with their certifications and those of hs[i], through finish's
// expiry and local policy, and the frames of listed videos near hs[i].
func (s *Store) matchPDQ(hs [][32]byte, q Query, search func(*pdqindex.Index, []pdqindex.Hash) [][]pdqindex.Match) ([][]Match, error) {
	if err := s.checkQuery(q); err != nil {
		return nil, err
	}
	qs := make([]pdqindex.Hash, len(hs))
	for i, h := range hs {
		qs[i] = pdqindex.Hash(h)
	}
	var cands [][]candidate
	for {
		// The index and the state are read as a pair: an equivocation cutoff may swap in a rebuilt
		// pair (store/fork.go), whose signal ids differ; a search that straddles the swap is redone.
		s.mu.RLock()
		index, state := s.pdq, s.state
		s.mu.RUnlock()
		hits := search(index, qs)
		s.mu.RLock()
		same := s.state == state
		if same {
			cands = make([][]candidate, len(hs))
			for i, found := range hits {
				for _, hit := range found {
					if sig, ok := s.state.SignalByID(hit.ID); ok {
						cands[i] = append(cands[i], s.candidateLocked(hit.ID, sig, hit.Distance))
					}
				}
				s.protectLocked(cands[i], consortium.Signal{Type: consortium.PDQ, Value: hs[i]})
			}
		}
		s.mu.RUnlock()
		if same {
			break
		}
	}
	out := make([][]Match, len(hs))
	for i, c := range cands {
		var ms []Match
		if len(c) > 0 {
			var err error
			if ms, err = s.finish(c, q, false); err != nil {
				return nil, err
			}
		}
		ms, err := s.withFrames(ms, hs[i], q)
		if err != nil {
			return nil, err
		}
		out[i] = ms
	}
	return out, nil
}

// checkQuery refuses a radius out of range and a known query quality below the store's gate.
func (s *Store) checkQuery(q Query) error {
	if q.Radius < 0 || q.Radius > MaxRadius {
		return fmt.Errorf("radius %d out of range 0 to %d", q.Radius, MaxRadius)
	}
	if q.Quality >= 0 && q.Quality < s.opts.QualityGate {
		return fmt.Errorf("%w: query quality %d is below the quality gate %d", ErrLowQuality, q.Quality, s.opts.QualityGate)
	}
	return nil
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
	s.protectLocked(cands, sig)
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
	c.protected = s.state.Protections(sig, 0)
	s.mu.RUnlock()
	ms, err := s.finish([]candidate{c}, Query{Radius: 0, Quality: -1, IncludeHidden: true}, true)
	if err != nil || len(ms) == 0 {
		return Match{Signal: sig}, false, err
	}
	return ms[0], len(ms[0].Listings) > 0, nil
}

// protectLocked gives each candidate the certifications of its signal and of the query's signal q
// (each certification once). q is the zero Signal for a query without a signal of its own (a
// video's frames): then each candidate gets its own. Caller holds mu.
func (s *Store) protectLocked(cands []candidate, q consortium.Signal) {
	if len(cands) == 0 {
		return
	}
	byQuery := s.state.Protections(q, 0)
	for i := range cands {
		ps := s.state.Protections(cands[i].sig, 0)
		for _, p := range byQuery {
			if !slices.ContainsFunc(ps, func(x consortium.Protection) bool { return x.Hash == p.Hash }) {
				ps = append(ps, p)
			}
		}
		cands[i].protected = ps
	}
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
			for _, p := range c.protected {
				if p.Expires == 0 || p.Expires > now {
					m.Protected = append(m.Protected, p)
				}
			}
			if len(m.Listings) == 0 && (!keepUnlisted || len(m.Opinions) == 0 && len(m.Protected) == 0) {
				continue
			}
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store %s: read match details: %w", s.path, err)
	}
	if err := s.applyPolicy(out, !q.Inspect && !keepUnlisted); err != nil {
		return nil, err
	}
	if !q.IncludeHidden {
		out = slices.DeleteFunc(out, func(m Match) bool { return m.Hidden != "" })
	}
	slices.SortStableFunc(out, func(a, b Match) int {
		if a.Distance != b.Distance {
			return a.Distance - b.Distance
		}
		return strings.Compare(a.Signal.Text(), b.Signal.Text())
	})
	return out, nil
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
	return OpinionInfo{Author: o.Author, Index: o.Index, Time: time.UnixMilli(e.TimeUnixMs).UTC(), Stance: o.Stance, Text: e.GetOpinion().GetText(), Role: o.Role}, nil
}

// View calls fn with the derived state under the store's read lock. fn must not keep the state or
// call into the store.
func (s *Store) View(fn func(*consortium.State)) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	fn(s.state)
}

// IndexStats returns the PDQ index's statistics. While a large batch of own submissions is being
// written, Len may count its new PDQ signals already (they cannot be matched before the commit).
func (s *Store) IndexStats() pdqindex.Stats {
	s.mu.RLock()
	index := s.pdq
	s.mu.RUnlock()
	return index.Stats()
}
