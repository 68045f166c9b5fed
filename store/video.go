package store

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
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

// The sketch. A query of the default rule (at least 80 % of a listed video's frames match) does not
// search the frame index: it searches a second, five times smaller index, the sketch, which holds
// from each part its frame of best quality and every fifth frame after it in the order of quality
// (ranks 0, 4, 9, 14, … of the part's frames sorted by quality, best first, then by position: see
// [sketchRanks]), and then computes the exact answer for each listed video it found by comparing
// the query's frames with every frame of that video. That finds every video the full search would
// report: a video's frames of quality at least Q are, in each of its parts, a prefix of that order,
// so of its N such frames at least ⌊N/5⌋+1 are in the sketch (each part of L ≥ 1 of them gives at
// least ⌊L/5⌋+1), which is more than the N/5 frames a video may miss and still reach 80 %; so a
// video that reaches 80 % has a frame in the sketch that matches. This holds when a video's parts
// share no frame hash (a video's parts are cut from one list of unique frames); the parts of a video
// found to share one are put in the sketch whole ([videoIndex.checkOverlap]). Near-identical query
// frames share one sketch search at a radius grown by their spread. Answers are the full
// search's, frame pairs and both percentages included (TestVideoSketchEqualsFullSearch); queries
// below 80 %, and queries whose candidate videos are too long to compare frame by frame, take the
// full search.

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

const (
	// sketchStride is the sketch's share of a part's frames: one in sketchStride, and the first.
	sketchStride = 5
	// sketchPercent is the lowest compared percentage a query may ask for to be answered from the
	// sketch: a video reaching it misses at most 1/sketchStride of its frames.
	sketchPercent = 100 - 100/sketchStride
	// sketchMaxFrames bounds the frames of the candidate videos the sketch path compares with the
	// query frame by frame (about |query| × 32,768 distances, a fraction of the full search's cost);
	// a query with more takes the full search.
	sketchMaxFrames = 1 << 15
	// nearFrames is the largest distance between query frames that share one sketch search (a
	// search at radius 35 costs about 1.5 times one at 31).
	nearFrames = 4
	// sketchHintLo and sketchHintHi keep the sketch's size hint (the size its layout is chosen
	// for) between 4 and 32 times its size, at the power of two at or above 4 times when it is
	// set: at 202,000 sketched frames the hint is 2^20, for pdqindex's 13 tables of 19 bits, where
	// 600 searches at radius 31 took 40 ms of CPU against 56 ms in the layout of the sketch's own
	// size (12 tables of 17 and 18 bits: four fewer candidates a probe in the longer tables, and
	// fewer probes with 13 tables than with 12), for about 30 % more memory a sketched frame
	// (measured on the loaded machine, 15 rounds interleaved, medians). A sketch of sketchHintMin
	// frames or more that leaves the range is made afresh (one BulkLoad, at most once per doubling).
	sketchHintLo = 4
	sketchHintHi = 32
)

// sketchHintMin is the smallest sketch given a size hint (a variable for tests).
var sketchHintMin = 1 << 12

// videoIndex holds the listed videos' frames. It is guarded by the store's mu.
type videoIndex struct {
	idx    *pdqindex.Index
	frames []frameRec
	free   []uint32
	bySig  map[uint32][]uint32              // part signal id -> its frame ids
	videos map[videoKey]map[uint32]struct{} // video -> its parts listed by the member
	cid    map[listingKey]string            // a member's listing of a part -> its content id

	// The sketch (see the comment above [ErrBadVideoQuery]), under ids of its own.
	sk      *pdqindex.Index
	skFrame []uint32            // sketch id -> frame id
	skFree  []uint32            // sketch ids free for reuse
	skBySig map[uint32][]uint32 // part -> its sketch ids
	skHint  int                 // the sketch's size hint (see sketchHintMin)
	skLoads int                 // times the sketch was made afresh
	whole   map[uint32]bool     // parts with every frame in the sketch
	overlap map[videoKey]bool   // videos two of whose parts share a frame hash: their parts are whole

	// bulk, while the store opens, defers the index adds to one BulkLoad of each index.
	bulk bool
}

func newVideoIndex() *videoIndex {
	idx, _ := pdqindex.New(pdqindex.DefaultOptions())
	sk, _ := pdqindex.New(pdqindex.DefaultOptions())
	return &videoIndex{idx: idx, bySig: map[uint32][]uint32{}, videos: map[videoKey]map[uint32]struct{}{}, cid: map[listingKey]string{},
		sk: sk, skBySig: map[uint32][]uint32{}, whole: map[uint32]bool{}, overlap: map[videoKey]bool{}}
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
		if !v.bulk {
			v.checkOverlap(videoKey{c.Member, a.GetContentId()}, c.SignalID)
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
		delete(v.overlap, k)
	}
}

// checkOverlap keeps the sketch's promise for video k, which has just been given part sig: if a
// frame hash of sig is also in another of k's parts, or k already had such a pair, every part of
// k goes into the sketch whole. A video of one part is never checked (a part's hashes are unique).
func (v *videoIndex) checkOverlap(k videoKey, sig uint32) {
	parts := v.videos[k]
	if _, ok := parts[sig]; !ok {
		return
	}
	if v.overlap[k] {
		v.makeWhole(sig)
		return
	}
	if len(parts) < 2 {
		return
	}
	var hits []pdqindex.Match
	for _, fid := range v.bySig[sig] {
		hits = v.idx.Search(v.frames[fid].f.Hash, 0, hits[:0])
		for _, h := range hits {
			other := v.frames[h.ID].sig
			if _, ok := parts[other]; ok && other != sig {
				v.overlap[k] = true
				for p := range parts {
					v.makeWhole(p)
				}
				return
			}
		}
	}
}

// makeWhole puts every frame of part sig in the sketch.
func (v *videoIndex) makeWhole(sig uint32) {
	if v.whole[sig] {
		return
	}
	v.whole[sig] = true
	v.removeSketch(sig)
	v.addSketch(sig, v.bySig[sig])
}

// sketchRanks calls keep with the positions of the frames of a part (given by their qualities)
// that go into the sketch: sorted by quality, best first, then by position, ranks 0 and 4, 9, 14,
// … (every sketchStride-th from sketchStride-1). Of the first L ≥ 1 frames in that order, ⌊L/5⌋+1
// are kept; the frames of quality at least any Q are such a prefix.
func sketchRanks(n int, quality func(int) int, keep func(int)) {
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return quality(b) - quality(a) })
	for r, i := range order {
		if r == 0 || r%sketchStride == sketchStride-1 {
			keep(i)
		}
	}
}

// addSketch adds to the sketch the frames of part sig (frame ids fids, in the part's order) that
// [sketchRanks] selects, or all of them if the part is whole.
func (v *videoIndex) addSketch(sig uint32, fids []uint32) {
	var sel []uint32
	if v.whole[sig] {
		sel = fids
	} else {
		sketchRanks(len(fids), func(i int) int { return int(v.frames[fids[i]].f.Quality) }, func(i int) { sel = append(sel, fids[i]) })
		slices.Sort(sel)
	}
	ids := make([]uint32, 0, len(sel))
	hs := make([]pdqindex.Hash, 0, len(sel))
	for _, fid := range sel {
		var id uint32
		if n := len(v.skFree); n > 0 {
			id, v.skFree = v.skFree[n-1], v.skFree[:n-1]
			v.skFrame[id] = fid
		} else {
			id = uint32(len(v.skFrame))
			v.skFrame = append(v.skFrame, fid)
		}
		ids = append(ids, id)
		hs = append(hs, v.frames[fid].f.Hash)
	}
	v.skBySig[sig] = ids
	if !v.bulk {
		addIndex(v.sk, ids, hs)
		v.resizeSketch()
	}
}

// resizeSketch rebuilds the sketch with a new size hint when its size has left the range of its
// hint (see sketchHintMin).
func (v *videoIndex) resizeSketch() {
	n := len(v.skFrame) - len(v.skFree)
	if n >= sketchHintMin && n*sketchHintLo > v.skHint || n*sketchHintHi < v.skHint {
		v.loadSketch(sketchHint(n))
	}
}

// sketchHint returns the size hint of a sketch of n frames: the power of two at or above
// sketchHintLo × n, or 0 for a sketch under sketchHintMin frames.
func sketchHint(n int) int {
	if n < sketchHintMin {
		return 0
	}
	return 1 << bits.Len(uint(n*sketchHintLo-1))
}

// loadSketch makes the sketch afresh with size hint h and loads it with every sketched frame.
func (v *videoIndex) loadSketch(h int) {
	v.skHint = h
	v.skLoads++
	v.sk, _ = pdqindex.New(pdqindex.Options{Radius: pdqindex.DefaultRadius, SizeHint: h})
	v.sk.BulkLoad(func(yield func(uint32, pdqindex.Hash) bool) {
		for _, ids := range v.skBySig {
			for _, id := range ids {
				if !yield(id, v.frames[v.skFrame[id]].f.Hash) {
					return
				}
			}
		}
	})
}

// removeSketch takes part sig's frames out of the sketch.
func (v *videoIndex) removeSketch(sig uint32) {
	for _, id := range v.skBySig[sig] {
		v.sk.Remove(id)
		v.skFree = append(v.skFree, id)
	}
	delete(v.skBySig, sig)
	if !v.bulk {
		v.resizeSketch()
	}
}

// addIndex adds ids with hashes hs to x, in one batch when there are many.
func addIndex(x *pdqindex.Index, ids []uint32, hs []pdqindex.Hash) {
	if len(ids) >= 64 {
		x.AddBatch(ids, hs)
		return
	}
	for i, id := range ids {
		x.Add(id, hs[i])
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
	if !v.bulk {
		addIndex(v.idx, ids, hs)
	}
	v.addSketch(sig, ids)
}

func (v *videoIndex) removeFrames(sig uint32) {
	v.removeSketch(sig)
	delete(v.whole, sig)
	for _, id := range v.bySig[sig] {
		v.idx.Remove(id)
		v.frames[id] = frameRec{}
		v.free = append(v.free, id)
	}
	delete(v.bySig, sig)
}

// loadVideos fills the video index from the state, when the store opens or rebuilds: the frames
// first, then each index in one BulkLoad (much faster than a batch per part, and the layout is
// the one for the index's size). Caller holds the rebuild's read transaction (readEntry uses it).
func (s *Store) loadVideos() {
	v := s.videoIdx()
	v.bulk = true
	s.state.ForEachListed(func(id uint32, sig consortium.Signal) bool {
		if sig.Type != consortium.VPDQ {
			return true
		}
		for _, l := range s.state.ListedByID(id) {
			s.videoChange(consortium.Change{Kind: consortium.Listed, Signal: sig, SignalID: id, Member: l.Member, Index: l.Index})
		}
		return true
	})
	v.bulk = false
	v.idx.BulkLoad(func(yield func(uint32, pdqindex.Hash) bool) {
		for _, fids := range v.bySig {
			for _, id := range fids {
				if !yield(id, v.frames[id].f.Hash) {
					return
				}
			}
		}
	})
	v.loadSketch(sketchHint(len(v.skFrame) - len(v.skFree)))
	for k, parts := range v.videos {
		for sig := range parts {
			if len(parts) < 2 || v.overlap[k] {
				break
			}
			v.checkOverlap(k, sig)
		}
	}
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
	return s.matchVideo(query, q, false)
}

// videoFound is what a query found of one listed video: the query's matching frames, each with its
// nearest listed frame (in query order), and how many distinct listed frame hashes matched.
type videoFound struct {
	k      videoKey
	frames []FramePair
	hits   int
}

// matchVideo answers a video query from the sketch when the rule allows it, unless full is set,
// and by searching every frame otherwise: the answers are the same.
func (s *Store) matchVideo(query []vpdq.Frame, q VideoQuery, full bool) (VideoResult, error) {
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

	s.mu.RLock()
	defer s.mu.RUnlock()
	v := s.videoIdx()
	var found []videoFound
	sketched := false
	if !full && o.ComparedPercent >= sketchPercent {
		found, sketched = s.sketchVideosLocked(qf, o, now)
	}
	if !sketched {
		found = s.searchVideosLocked(qf, o, now)
	}
	var res VideoResult
	for _, a := range found {
		k := a.k
		total, parts := v.videoFrames(k, o.Quality, func(id uint32) bool { return s.listedLive(k.member, id, now) })
		vm := VideoMatch{Member: k.member, ContentID: k.contentID, QueryFrames: len(qf), ComparedFrames: total,
			QueryPercent: vpdq.Percent(len(a.frames), len(qf)), ComparedPercent: vpdq.Percent(a.hits, total), Frames: a.frames}
		if !o.Holds(vm.QueryPercent, vm.ComparedPercent, len(qf), total) {
			continue
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
	imgs, imgDist := s.frameImagesLocked(qf, o)
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

// searchVideosLocked searches every query frame in the frame index and gathers what each listed
// video's live parts matched. Caller holds mu.
func (s *Store) searchVideosLocked(qf []vpdq.Frame, o vpdq.MatchOptions, now int64) []videoFound {
	type videoAcc struct {
		queryHit []int                 // query frame indexes that match, in order
		best     map[int]FramePair     // query frame index -> nearest listed frame
		hit      map[pdq.Hash]struct{} // listed frame hashes that match
	}
	v := s.videoIdx()
	accs := map[videoKey]*videoAcc{}
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
	}
	found := make([]videoFound, 0, len(accs))
	for k, a := range accs {
		vf := videoFound{k: k, hits: len(a.hit)}
		for _, qi := range a.queryHit {
			vf.frames = append(vf.frames, a.best[qi])
		}
		found = append(found, vf)
	}
	return found
}

// sketchVideosLocked finds through the sketch every listed video that can reach the rule's
// compared percentage (at least sketchPercent), and compares each with the query frame by frame.
// It reports false, having found nothing, when those videos hold more than sketchMaxFrames frames:
// the full search is then cheaper. Caller holds mu.
func (s *Store) sketchVideosLocked(qf []vpdq.Frame, o vpdq.MatchOptions, now int64) ([]videoFound, bool) {
	if len(qf) == 0 {
		return nil, true
	}
	v := s.videoIdx()
	qw := make([][4]uint64, len(qf))
	for i := range qf {
		qw[i] = hashWords(&qf[i].Hash)
	}
	// A video reaching the percentage has a sketched frame of quality at least o.Quality, in a
	// part it lists and has not let expire, within the distance of a query frame. A query frame
	// within nearFrames of the frame that opened the current group joins the group, and the group
	// searches for its first frame at the distance plus its spread: that finds every sketched
	// frame within the distance of any of its frames (videos repeat frames with small changes).
	var groups [nearFrames + 1][]pdqindex.Hash // first frames, by spread
	lead, spread := 0, 0
	for i := 1; i <= len(qf); i++ {
		if i < len(qf) {
			if d := distance(&qw[lead], &qw[i]); d <= nearFrames {
				spread = max(spread, d)
				continue
			}
		}
		groups[spread] = append(groups[spread], qf[lead].Hash)
		lead, spread = i, 0
	}
	seen := map[uint32]bool{}
	var cands []videoKey
	isCand := map[videoKey]bool{}
	var dst [][]pdqindex.Match
	for sp, hs := range groups {
		for i := range dst {
			dst[i] = dst[i][:0]
		}
		dst = v.sk.SearchBatch(hs, o.Distance+sp, dst)
		for _, ms := range dst[:len(hs)] {
			for _, m := range ms {
				rec := v.frames[v.skFrame[m.ID]]
				if int(rec.f.Quality) < o.Quality || seen[rec.sig] {
					continue
				}
				seen[rec.sig] = true
				for _, l := range s.state.ListedByID(rec.sig) {
					if l.Expires != 0 && l.Expires <= now {
						continue
					}
					if c, ok := v.cid[listingKey{l.Member, rec.sig}]; ok && !isCand[videoKey{l.Member, c}] {
						isCand[videoKey{l.Member, c}] = true
						cands = append(cands, videoKey{l.Member, c})
					}
				}
			}
		}
	}
	n := 0
	for _, k := range cands {
		for sig := range v.videos[k] {
			n += len(v.bySig[sig])
		}
	}
	if n > sketchMaxFrames {
		return nil, false
	}
	found := make([]videoFound, 0, len(cands))
	for _, k := range cands {
		if vf, ok := s.compareVideoLocked(k, qf, qw, o, now); ok {
			found = append(found, vf)
		}
	}
	return found, true
}

// compareVideoLocked compares the query's frames (qw their hashes) with every frame of video k's
// live parts, as the frame index search would find them: for each query frame the nearest listed
// frame (the lowest frame id among the nearest), and the distinct listed hashes within the
// distance. It reports false when nothing matches. Caller holds mu.
func (s *Store) compareVideoLocked(k videoKey, qf []vpdq.Frame, qw [][4]uint64, o vpdq.MatchOptions, now int64) (videoFound, bool) {
	v := s.videoIdx()
	type listed struct{ fid, part uint32 }
	var fr []listed
	for sig := range v.videos[k] {
		if !s.listedLive(k.member, sig, now) {
			continue
		}
		if _, ok := s.state.SignalByID(sig); !ok {
			continue
		}
		for _, fid := range v.bySig[sig] {
			if int(v.frames[fid].f.Quality) >= o.Quality {
				fr = append(fr, listed{fid, sig})
			}
		}
	}
	// In frame id order, the first of the nearest is the one the index search gives first.
	slices.SortFunc(fr, func(a, b listed) int { return cmp.Compare(a.fid, b.fid) })
	lw := make([][4]uint64, len(fr))
	for j := range fr {
		lw[j] = hashWords(&v.frames[fr[j].fid].f.Hash)
	}
	hit := make([]bool, len(fr))
	vf := videoFound{k: k}
	for qi := range qw {
		a := &qw[qi]
		best, bestD := -1, o.Distance+1
		for j := range lw {
			b := &lw[j]
			// Half the bits first: a random pair differs in about 64 of them.
			d := bits.OnesCount64(a[0]^b[0]) + bits.OnesCount64(a[1]^b[1])
			if d > o.Distance {
				continue
			}
			if d += bits.OnesCount64(a[2]^b[2]) + bits.OnesCount64(a[3]^b[3]); d > o.Distance {
				continue
			}
			hit[j] = true
			if d < bestD {
				best, bestD = j, d
			}
		}
		if best >= 0 {
			part, _ := s.state.SignalByID(fr[best].part)
			vf.frames = append(vf.frames, FramePair{QueryMS: qf[qi].MS, ListedMS: int64(v.frames[fr[best].fid].f.MS), Distance: bestD, Part: part})
		}
	}
	var hashes []pdq.Hash
	for j, h := range hit {
		if h {
			hashes = append(hashes, v.frames[fr[j].fid].f.Hash)
		}
	}
	if len(hashes) == 0 {
		return vf, false
	}
	slices.SortFunc(hashes, func(a, b pdq.Hash) int { return bytes.Compare(a[:], b[:]) })
	vf.hits = len(slices.Compact(hashes))
	return vf, true
}

// distance returns the Hamming distance of two hashes given as words.
func distance(a, b *[4]uint64) int {
	return bits.OnesCount64(a[0]^b[0]) + bits.OnesCount64(a[1]^b[1]) + bits.OnesCount64(a[2]^b[2]) + bits.OnesCount64(a[3]^b[3])
}

// hashWords returns a hash as four 64-bit words, for fast distances.
func hashWords(h *pdq.Hash) [4]uint64 {
	var w [4]uint64
	for k := range w {
		w[k] = binary.LittleEndian.Uint64(h[8*k:])
	}
	return w
}

// frameImagesLocked searches every query frame in the listed images: for each image within the
// distance of a frame, the nearest such frame's timestamp and its distance. Caller holds mu.
func (s *Store) frameImagesLocked(qf []vpdq.Frame, o vpdq.MatchOptions) (map[uint32]FrameImageMatch, map[uint32]int) {
	imgs := map[uint32]FrameImageMatch{}
	imgDist := map[uint32]int{}
	var hits []pdqindex.Match
	for _, f := range qf {
		hits = s.pdq.Search(f.Hash, o.Distance, hits[:0])
		for _, h := range hits {
			if d, ok := imgDist[h.ID]; !ok || h.Distance < d {
				imgDist[h.ID] = h.Distance
				imgs[h.ID] = FrameImageMatch{QueryMS: f.MS}
			}
		}
	}
	return imgs, imgDist
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

// VideoSketchStats returns the statistics of the sketch of the listed videos' frames (the index
// that answers queries of the default rule).
func (s *Store) VideoSketchStats() pdqindex.Stats {
	s.mu.RLock()
	sk := s.videoIdx().sk // made afresh under the write lock as it grows
	s.mu.RUnlock()
	return sk.Stats()
}
