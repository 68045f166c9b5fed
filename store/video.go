package store

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/consortium/pdq"
	"github.com/hashfed/hashfed/consortium/vpdq"
	"github.com/hashfed/hashfed/store/pdqindex"
)

// Video matching (docs/PROTOCOL.md, section 3.3, vpdq). The frames of every listed vpdq part are
// kept in a PDQ multi-index of the same kind as the signals' (store/pdqindex), under dense frame
// ids of their own: the index sizes its per-id storage by the largest id, and signal ids are the
// state's, so frames cannot share the signals' id space without either sparse ids or renumbering
// every PDQ signal. A query video's frames are searched in both: the frame index finds listed
// videos, the signal index finds listed images (frames against images); an image query searches
// the frame index too ([Store.MatchPDQFrames]).

// ErrBadVideoQuery reports a video query the store refuses (too many frames, bad options).
var ErrBadVideoQuery = errors.New("bad video query")

// MaxQueryFrames bounds the frames of one video query.
const MaxQueryFrames = 50_000

// frameRec is one indexed frame: the vpdq part (signal id) it belongs to, and its record.
type frameRec struct {
	sig uint32
	f   consortium.VideoFrame
}

type videoKey struct{ member, contentID string }

type listingKey struct {
	member string
	sig    uint32
}

// videoIndex holds the listed videos' frames. It is guarded by the store's mu.
type videoIndex struct {
	idx    *pdqindex.Index
	frames []frameRec
	free   []uint32
	bySig  map[uint32][]uint32              // part signal id -> its frame ids
	videos map[videoKey]map[uint32]struct{} // video -> its parts listed by the member
	cid    map[listingKey]string            // a member's listing of a part -> its content id
}

func newVideoIndex() *videoIndex {
	idx, _ := pdqindex.New(pdqindex.DefaultOptions())
	return &videoIndex{idx: idx, bySig: map[uint32][]uint32{}, videos: map[videoKey]map[uint32]struct{}{}, cid: map[listingKey]string{}}
}

// videoIdx returns the store's video index, made with the store (or the shadow store of a
// rebuild) before anyone can read it.
func (s *Store) videoIdx() *videoIndex { return s.video }

// videoChange keeps the video index in step with the state. It runs under mu, during Apply.
func (s *Store) videoChange(c consortium.Change) {
	v := s.videoIdx()
	lk := listingKey{c.Member, c.SignalID}
	switch c.Kind {
	case consortium.Listed:
		raw, err := s.readEntry(c.Member, c.Index)
		if err != nil {
			s.log.Error("video index: read add", "member", c.Member, "index", c.Index, "err", err)
			return
		}
		e, err := consortium.ParseEntry(raw)
		if err != nil {
			s.log.Error("video index: parse add", "member", c.Member, "index", c.Index, "err", err)
			return
		}
		a := e.GetAdd()
		v.list(lk, a.GetContentId())
		if _, ok := v.bySig[c.SignalID]; !ok {
			frames, err := consortium.VideoFrames(a.GetFrames())
			if err != nil {
				s.log.Error("video index: frames", "member", c.Member, "index", c.Index, "err", err)
				return
			}
			v.addFrames(c.SignalID, frames)
		}
	case consortium.Unlisted:
		v.unlist(lk)
		if c.Listers == 0 {
			v.removeFrames(c.SignalID)
		}
	}
}

func (v *videoIndex) list(lk listingKey, contentID string) {
	if old, ok := v.cid[lk]; ok && old != contentID {
		v.unlist(lk)
	}
	v.cid[lk] = contentID
	k := videoKey{lk.member, contentID}
	if v.videos[k] == nil {
		v.videos[k] = map[uint32]struct{}{}
	}
	v.videos[k][lk.sig] = struct{}{}
}

func (v *videoIndex) unlist(lk listingKey) {
	c, ok := v.cid[lk]
	if !ok {
		return
	}
	delete(v.cid, lk)
	k := videoKey{lk.member, c}
	delete(v.videos[k], lk.sig)
	if len(v.videos[k]) == 0 {
		delete(v.videos, k)
	}
}

func (v *videoIndex) addFrames(sig uint32, frames []consortium.VideoFrame) {
	ids := make([]uint32, 0, len(frames))
	hs := make([]pdqindex.Hash, 0, len(frames))
	for _, f := range frames {
		var id uint32
		if n := len(v.free); n > 0 {
			id, v.free = v.free[n-1], v.free[:n-1]
			v.frames[id] = frameRec{sig, f}
		} else {
			id = uint32(len(v.frames))
			v.frames = append(v.frames, frameRec{sig, f})
		}
		ids = append(ids, id)
		hs = append(hs, f.Hash)
	}
	v.bySig[sig] = ids
	if len(ids) >= 64 {
		v.idx.AddBatch(ids, hs)
		return
	}
	for i, id := range ids {
		v.idx.Add(id, hs[i])
	}
}

func (v *videoIndex) removeFrames(sig uint32) {
	for _, id := range v.bySig[sig] {
		v.idx.Remove(id)
		v.frames[id] = frameRec{}
		v.free = append(v.free, id)
	}
	delete(v.bySig, sig)
}

// loadVideos fills the video index from the state, when the store opens or rebuilds. Caller
// holds the rebuild's read transaction (readEntry uses it).
func (s *Store) loadVideos() {
	s.state.ForEachListed(func(id uint32, sig consortium.Signal) bool {
		if sig.Type != consortium.VPDQ {
			return true
		}
		for _, l := range s.state.ListedByID(id) {
			s.videoChange(consortium.Change{Kind: consortium.Listed, Signal: sig, SignalID: id, Member: l.Member, Index: l.Index})
		}
		return true
	})
}

// VideoQuery says how to match a video.
type VideoQuery struct {
	// Options is the vPDQ rule (distance at most 63).
	Options vpdq.MatchOptions
	// IncludeHidden returns matches that the local policy hides, with the reason.
	IncludeHidden bool
}

// DefaultVideoQuery is the reference's rule: distance 31, quality 50, 80 % of the listed video.
func DefaultVideoQuery() VideoQuery { return VideoQuery{Options: vpdq.DefaultMatchOptions()} }

// FramePair is a query frame and the listed frame it matched.
type FramePair struct {
	QueryMS, ListedMS int64
	Distance          int
	// Part is the vpdq signal holding the listed frame.
	Part consortium.Signal
}

// VideoMatch is a listed video that matches a query video by the vPDQ rule.
type VideoMatch struct {
	// Member and ContentID name the video: the parts Member lists under ContentID.
	Member, ContentID string
	// QueryPercent is the share of the query's frames that match a frame of the video;
	// ComparedPercent the share of the video's frames that match a frame of the query.
	QueryPercent, ComparedPercent float64
	// QueryFrames and ComparedFrames count the frames taken into account (quality at least the
	// query's, repeats once).
	QueryFrames, ComparedFrames int
	// Frames pairs each matching query frame with its nearest listed frame, in query order.
	Frames []FramePair
	// Parts are the video's listed parts, with listings and opinions, in time order of their
	// first frame.
	Parts []Match
}

// FrameImageMatch is a listed image (a pdq signal) that a frame of a query video matches.
type FrameImageMatch struct {
	// QueryMS is the timestamp of the query frame nearest to the image.
	QueryMS int64
	Match   Match
}

// VideoResult is the answer to a video query.
type VideoResult struct {
	Videos []VideoMatch
	Images []FrameImageMatch
}

// MatchVideo matches a query video's frames against every listed video by the vPDQ rule, and
// each frame against the listed images.
func (s *Store) MatchVideo(query []vpdq.Frame, q VideoQuery) (VideoResult, error) {
	o := q.Options
	if err := o.Validate(); err != nil {
		return VideoResult{}, fmt.Errorf("%w: %w", ErrBadVideoQuery, err)
	}
	if o.Distance > MaxRadius {
		return VideoResult{}, fmt.Errorf("%w: distance %d, at most %d", ErrBadVideoQuery, o.Distance, MaxRadius)
	}
	if len(query) > MaxQueryFrames {
		return VideoResult{}, fmt.Errorf("%w: %d frames, at most %d (hash fewer frames a second)", ErrBadVideoQuery, len(query), MaxQueryFrames)
	}
	qf := vpdq.Prepare(query, o.Quality)
	now := s.opts.Now().UnixMilli()

	type videoAcc struct {
		queryHit []int                 // query frame indexes that match, in order
		best     map[int]FramePair     // query frame index -> nearest listed frame
		hit      map[pdq.Hash]struct{} // listed frame hashes that match
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	v := s.videoIdx()
	accs := map[videoKey]*videoAcc{}
	imgs := map[uint32]FrameImageMatch{}
	imgDist := map[uint32]int{}
	var hits []pdqindex.Match
	for qi, f := range qf {
		hits = v.idx.Search(f.Hash, o.Distance, hits[:0])
		for _, h := range hits {
			rec := v.frames[h.ID]
			if int(rec.f.Quality) < o.Quality {
				continue
			}
			part, ok := s.state.SignalByID(rec.sig)
			if !ok {
				continue
			}
			for _, l := range s.state.ListedByID(rec.sig) {
				if l.Expires != 0 && l.Expires <= now {
					continue
				}
				c, ok := v.cid[listingKey{l.Member, rec.sig}]
				if !ok {
					continue
				}
				k := videoKey{l.Member, c}
				a := accs[k]
				if a == nil {
					a = &videoAcc{best: map[int]FramePair{}, hit: map[pdq.Hash]struct{}{}}
					accs[k] = a
				}
				a.hit[rec.f.Hash] = struct{}{}
				p, seen := a.best[qi]
				if !seen {
					a.queryHit = append(a.queryHit, qi)
				}
				if !seen || h.Distance < p.Distance {
					a.best[qi] = FramePair{QueryMS: f.MS, ListedMS: int64(rec.f.MS), Distance: h.Distance, Part: part}
				}
			}
		}
		for _, h := range s.pdq.Search(f.Hash, o.Distance, hits[:0]) {
			if d, ok := imgDist[h.ID]; !ok || h.Distance < d {
				imgDist[h.ID] = h.Distance
				imgs[h.ID] = FrameImageMatch{QueryMS: f.MS}
			}
		}
	}
	var res VideoResult
	for k, a := range accs {
		total, parts := v.videoFrames(k, o.Quality, func(id uint32) bool { return s.listedLive(k.member, id, now) })
		vm := VideoMatch{Member: k.member, ContentID: k.contentID, QueryFrames: len(qf), ComparedFrames: total,
			QueryPercent: vpdq.Percent(len(a.queryHit), len(qf)), ComparedPercent: vpdq.Percent(len(a.hit), total)}
		if !o.Holds(vm.QueryPercent, vm.ComparedPercent, len(qf), total) {
			continue
		}
		for _, qi := range a.queryHit {
			vm.Frames = append(vm.Frames, a.best[qi])
		}
		cands := make([]candidate, 0, len(parts))
		for _, id := range parts {
			sig, _ := s.state.SignalByID(id)
			c := s.candidateLocked(id, sig, 0)
			c.listings = slices.DeleteFunc(c.listings, func(l consortium.Listing) bool { return l.Member != k.member })
			cands = append(cands, c)
		}
		s.protectLocked(cands, consortium.Signal{})
		ms, err := s.finish(cands, Query{Quality: -1, IncludeHidden: true}, false)
		if err != nil {
			return VideoResult{}, err
		}
		// A part the local policy hides hides its video.
		hidden := ""
		for _, m := range ms {
			if m.Hidden != "" {
				hidden = m.Hidden
			}
		}
		if hidden != "" && !q.IncludeHidden {
			continue
		}
		slices.SortFunc(ms, func(a, b Match) int { return s.firstMS(a.Signal) - s.firstMS(b.Signal) })
		vm.Parts = ms
		res.Videos = append(res.Videos, vm)
	}
	slices.SortFunc(res.Videos, func(a, b VideoMatch) int {
		if a.ComparedPercent != b.ComparedPercent {
			if a.ComparedPercent > b.ComparedPercent {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Member+"\x00"+a.ContentID, b.Member+"\x00"+b.ContentID)
	})
	if len(imgs) > 0 {
		cands := make([]candidate, 0, len(imgs))
		for id := range imgs {
			sig, ok := s.state.SignalByID(id)
			if !ok {
				continue
			}
			cands = append(cands, s.candidateLocked(id, sig, imgDist[id]))
		}
		s.protectLocked(cands, consortium.Signal{})
		ms, err := s.finish(cands, Query{Quality: -1, IncludeHidden: q.IncludeHidden}, false)
		if err != nil {
			return VideoResult{}, err
		}
		for _, m := range ms {
			id, _ := s.state.SignalID(m.Signal)
			res.Images = append(res.Images, FrameImageMatch{QueryMS: imgs[id].QueryMS, Match: m})
		}
	}
	return res, nil
}

// videoFrames returns the number of distinct frame hashes of quality at least minQuality in a
// video's listed parts for which live holds, and those parts' signal ids.
func (v *videoIndex) videoFrames(k videoKey, minQuality int, live func(uint32) bool) (int, []uint32) {
	seen := map[pdq.Hash]struct{}{}
	var parts []uint32
	for id := range v.videos[k] {
		if !live(id) {
			continue
		}
		parts = append(parts, id)
		for _, fid := range v.bySig[id] {
			if f := v.frames[fid].f; int(f.Quality) >= minQuality {
				seen[f.Hash] = struct{}{}
			}
		}
	}
	slices.Sort(parts)
	return len(seen), parts
}

// listedLive reports whether member's listing of signal id has not expired at now. Caller holds mu.
func (s *Store) listedLive(member string, id uint32, now int64) bool {
	for _, l := range s.state.ListedByID(id) {
		if l.Member == member {
			return l.Expires == 0 || l.Expires > now
		}
	}
	return false
}

// firstMS returns the timestamp of a part's first frame. Caller holds mu.
func (s *Store) firstMS(sig consortium.Signal) int {
	id, ok := s.state.SignalID(sig)
	v := s.videoIdx()
	if !ok || len(v.bySig[id]) == 0 {
		return 0
	}
	return int(v.frames[v.bySig[id][0]].f.MS)
}

// MatchPDQFrames returns the parts of listed videos (vpdq signals) holding a frame within
// q.Radius of an image's PDQ hash h, nearest first, each with the timestamp of its nearest frame
// in FrameMS.
func (s *Store) MatchPDQFrames(h [32]byte, q Query) ([]Match, error) {
	if err := s.checkQuery(q); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	v := s.videoIdx()
	hits := v.idx.Search(pdqindex.Hash(h), q.Radius, nil)
	best := map[uint32]int64{}
	var cands []candidate
	for _, hit := range hits { // nearest first: the first frame of a part is its nearest
		rec := v.frames[hit.ID]
		if _, ok := best[rec.sig]; ok {
			continue
		}
		sig, ok := s.state.SignalByID(rec.sig)
		if !ok {
			continue
		}
		best[rec.sig] = int64(rec.f.MS)
		cands = append(cands, s.candidateLocked(rec.sig, sig, hit.Distance))
	}
	s.protectLocked(cands, consortium.Signal{Type: consortium.PDQ, Value: h})
	ms, err := s.finish(cands, q, false)
	if err != nil {
		return nil, err
	}
	for i := range ms {
		id, _ := s.state.SignalID(ms[i].Signal)
		ms[i].FrameMS = best[id]
	}
	return ms, nil
}

// withFrames adds to ms, the image matches of h, the frames of listed videos near h.
func (s *Store) withFrames(ms []Match, h [32]byte, q Query) ([]Match, error) {
	fm, err := s.MatchPDQFrames(h, q)
	if err != nil || len(fm) == 0 {
		return ms, err
	}
	ms = append(ms, fm...)
	slices.SortStableFunc(ms, func(a, b Match) int { return a.Distance - b.Distance })
	return ms, nil
}

// VideoIndexStats returns the statistics of the listed videos' frame index.
func (s *Store) VideoIndexStats() pdqindex.Stats {
	s.mu.RLock()
	v := s.videoIdx()
	s.mu.RUnlock()
	return v.idx.Stats()
}
