package store

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/consortium/pdq"
	"github.com/hashfed/hashfed/consortium/vpdq"
	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// videoCorpus builds random listed videos and queries for comparing the sketch path of
// MatchVideo with the full search.
type videoCorpus struct {
	t   *testing.T
	rng *rand.Rand
	// frames are the hashes of every listed frame, for queries to copy; videos the range of
	// frames of each video.
	frames []pdq.Hash
	videos [][2]int
}

func (c *videoCorpus) hash() pdq.Hash {
	var h pdq.Hash
	for i := 0; i < 32; i += 8 {
		binary.LittleEndian.PutUint64(h[i:], c.rng.Uint64())
	}
	return h
}

// near returns h with up to max bits flipped.
func (c *videoCorpus) near(h pdq.Hash, max int) pdq.Hash {
	for range c.rng.IntN(max + 1) {
		b := c.rng.IntN(256)
		h[b/8] ^= 1 << (b % 8)
	}
	return h
}

var qualities = []uint8{0, 20, 49, 50, 51, 70, 80, 100, 100, 100}

// records returns the frame records of a part holding hs, with random qualities unless given.
func (c *videoCorpus) records(hs []pdq.Hash, quality []uint8) []byte {
	var b []byte
	for i, h := range hs {
		q := qualities[c.rng.IntN(len(qualities))]
		if quality != nil {
			q = quality[i]
		}
		b = append(b, h[:]...)
		b = append(b, q)
		b = binary.BigEndian.AppendUint32(b, uint32(1000*i+c.rng.IntN(900)))
		c.frames = append(c.frames, h)
	}
	return b
}

func (c *videoCorpus) add(records []byte, contentID string, expires int64) *pb.Entry {
	c.t.Helper()
	e, err := consortium.NewVideoAdd(0, records, []string{"behaviour:glorification-of-terrorist-acts"}, consortium.AddOptions{ContentID: contentID, ExpiresUnixMs: expires})
	if err != nil {
		c.t.Fatal(err)
	}
	return e
}

func submitOK(t *testing.T, s *Store, member string, es ...*pb.Entry) {
	t.Helper()
	out, err := s.Submit(t.Context(), member, es)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range out {
		if a.Err != nil {
			t.Fatalf("%s entry %d refused: %v", member, i, a.Err)
		}
	}
}

// query returns a query video: runs of near copies of listed frames (some repeated exactly, as
// vPDQ videos repeat frames), frames of nothing listed, random qualities.
func (c *videoCorpus) query(n int) []vpdq.Frame {
	var q []vpdq.Frame
	base := c.rng.IntN(len(c.frames))
	if c.rng.IntN(2) == 0 { // most of one video
		v := c.videos[c.rng.IntN(len(c.videos))]
		base, n = v[0], (v[1]-v[0])*(8+c.rng.IntN(5))/10+c.rng.IntN(5)
	}
	for i := range n {
		var h pdq.Hash
		switch r := c.rng.IntN(10); {
		case r < 8:
			h = c.near(c.frames[(base+i)%len(c.frames)], 12)
		case r < 9 && len(q) > 0:
			h = c.near(q[len(q)-1].Hash, 5) // a repeat, or nearly (one search for both)
		case r < 10 && c.rng.IntN(2) == 0:
			h = c.near(c.frames[c.rng.IntN(len(c.frames))], 40)
		default:
			h = c.hash()
		}
		q = append(q, vpdq.Frame{Number: int64(i), Quality: int(qualities[c.rng.IntN(len(qualities))]), Hash: h, MS: int64(1000 * i)})
	}
	return q
}

// TestVideoSketchEqualsFullSearch lists random videos (one to four parts, random qualities, parts
// listed by two members under different content ids, parts sharing frame hashes, expiring
// listings, revoked parts, ties, queries with near-identical frames), and checks that every query answered from the sketch gets exactly the
// full search's answer: the videos, both percentages, the frame pairs with their timestamps and
// distances, the parts and the images; after the listings change, and after a reopen (which loads
// the indexes in bulk).
func TestVideoSketchEqualsFullSearch(t *testing.T) {
	defer func(m int) { sketchHintMin = m }(sketchHintMin)
	sketchHintMin = 64 // resize the sketch as it grows and shrinks
	g := fixture.Genesis(1, fixture.Members("alpha", "bravo", "charlie")...)
	path := filepath.Join(t.TempDir(), "hashfed.db")
	var mu sync.Mutex
	now := fixture.Epoch.Add(time.Hour)
	o := DefaultOptions()
	o.NoSync = true
	o.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s, err := Open(path, g, o)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	c := &videoCorpus{t: t, rng: rand.New(rand.NewPCG(7, 16))}
	expires := now.Add(2 * time.Hour).UnixMilli()

	var revocable []consortium.Signal
	members := []string{"alpha", "bravo", "charlie"}
	for v := range 60 {
		member := members[v%3]
		nparts := 1 + c.rng.IntN(4)
		first := len(c.frames)
		var es []*pb.Entry
		for range nparts {
			n := 1 + c.rng.IntN(40)
			if c.rng.IntN(4) == 0 {
				n = 1 + c.rng.IntN(6) // short parts: the ⌊L/5⌋+1 bound is tight
			}
			hs := make([]pdq.Hash, n)
			for i := range hs {
				hs[i] = c.hash()
			}
			var exp int64
			if c.rng.IntN(5) == 0 {
				exp = expires
			}
			rec := c.records(hs, nil)
			es = append(es, c.add(rec, fmt.Sprintf("video-%d", v), exp))
			if c.rng.IntN(6) == 0 {
				revocable = append(revocable, consortium.VideoSignal(rec))
			}
			if c.rng.IntN(8) == 0 { // another member lists the same part in a video of its own
				submitOK(t, s, members[(v+1)%3], c.add(rec, fmt.Sprintf("copy-%d", v), 0))
			}
		}
		submitOK(t, s, member, es...)
		c.videos = append(c.videos, [2]int{first, len(c.frames)})
	}
	// Parts that share frame hashes within one video: five parts of five frames, the shared two
	// the best and the fifth in quality of each part (the frames a part's sketch keeps), the
	// other three each part's own. Matching the fifteen others alone is 15 of 17 distinct frames
	// (88 %): only the whole parts in the sketch find it.
	x, z := c.hash(), c.hash()
	var shared []*pb.Entry
	var own []pdq.Hash
	for range 5 {
		y := []pdq.Hash{c.hash(), c.hash(), c.hash()}
		own = append(own, y...)
		shared = append(shared, c.add(c.records([]pdq.Hash{x, y[0], y[1], y[2], z}, []uint8{100, 90, 90, 90, 60}), "shared", 0))
	}
	submitOK(t, s, "bravo", shared...)
	var ownQuery []vpdq.Frame
	for i, h := range own {
		ownQuery = append(ownQuery, vpdq.Frame{Number: int64(i), Quality: 100, Hash: c.near(h, 3), MS: int64(1000 * i)})
	}
	// Ties: each query frame is at distance 1 of two listed frames, one in each part of a video;
	// the full search pairs it with the one of lower frame id.
	var partA, partB []pdq.Hash
	var tieQuery []vpdq.Frame
	for i := range 10 {
		h := c.hash()
		a, b := h, h
		a[3] ^= 1
		b[9] ^= 4
		partA = append(partA, h, a)
		partB = append(partB, b)
		q := a
		q[9] ^= 4
		tieQuery = append(tieQuery, vpdq.Frame{Number: int64(i), Quality: 100, Hash: q, MS: int64(1000 * i)})
	}
	submitOK(t, s, "charlie", c.add(c.records(partB, make([]uint8, 10)), "ties", 0), c.add(c.records(partA, nil), "ties", 0))
	// Near-identical query frames share one search: the second frame of this query is at 31 of a
	// listed one-frame video and at 4 of the first, which is at 35 of it.
	far := c.hash()
	q2 := far
	for b := range 31 {
		q2[b/8] ^= 1 << (b % 8)
	}
	q1 := q2
	for b := 100; b < 104; b++ {
		q1[b/8] ^= 1 << (b % 8)
	}
	submitOK(t, s, "alpha", c.add(c.records([]pdq.Hash{far}, []uint8{100}), "far", 0))
	groupQuery := []vpdq.Frame{{Number: 0, Quality: 100, Hash: q1}, {Number: 1, Quality: 100, Hash: q2, MS: 1000}}
	// A fixture image near a listed frame, for frames against images.
	submitOK(t, s, "alpha", fixture.Add(0, consortium.Signal{Type: consortium.PDQ, Value: c.near(c.frames[5], 4)}, "lang:ar"))

	queries := [][]vpdq.Frame{ownQuery, tieQuery, groupQuery}
	for range 50 {
		queries = append(queries, c.query(1+c.rng.IntN(120)))
	}
	rules := []vpdq.MatchOptions{
		vpdq.DefaultMatchOptions(),
		{Distance: 31, Quality: 0, ComparedPercent: 80},
		{Distance: 31, Quality: 80, ComparedPercent: 85, QueryPercent: 10},
		{Distance: 12, Quality: 50, ComparedPercent: 100},
		{Distance: 45, Quality: 51, ComparedPercent: 90},
		{Distance: 0, Quality: 0, ComparedPercent: 80},
		{Distance: 31, Quality: 50, ComparedPercent: 79}, // below the sketch's percentage: full search both ways
	}
	compare := func(stage string) (matched int) {
		t.Helper()
		for qi, query := range queries {
			for _, r := range rules {
				for _, hidden := range []bool{false, true} {
					vq := VideoQuery{Options: r, IncludeHidden: hidden}
					got, err := s.matchVideo(query, vq, false)
					if err != nil {
						t.Fatal(err)
					}
					want, err := s.matchVideo(query, vq, true)
					if err != nil {
						t.Fatal(err)
					}
					if !reflect.DeepEqual(got, want) {
						t.Fatalf("%s, query %d, rule %+v: sketch gives\n%+v\nfull search gives\n%+v", stage, qi, r, got, want)
					}
					if r.ComparedPercent >= sketchPercent && !hidden {
						s.mu.RLock()
						_, sketched := s.sketchVideosLocked(vpdq.Prepare(query, r.Quality), r, o.Now().UnixMilli())
						s.mu.RUnlock()
						if !sketched {
							t.Fatalf("%s, query %d: the sketch path gave way to the full search", stage, qi)
						}
						matched += len(got.Videos)
					}
				}
			}
		}
		return matched
	}
	checkShared := func(stage string) {
		t.Helper()
		res, err := s.MatchVideo(ownQuery, DefaultVideoQuery())
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Videos) != 1 || res.Videos[0].ContentID != "shared" || res.Videos[0].ComparedFrames != 17 || res.Videos[0].Parts == nil {
			t.Fatalf("%s: parts sharing frames: got %+v, want bravo's video of 17 distinct frames", stage, res.Videos)
		}
	}
	n := compare("listed")
	t.Logf("%d video matches from the sketch", n)
	if n < 30 {
		t.Fatalf("only %d video matches over all queries: the corpus does not exercise matching", n)
	}
	checkShared("listed")

	// Some listings expire, some parts are revoked.
	mu.Lock()
	now = now.Add(3 * time.Hour)
	mu.Unlock()
	for _, sig := range revocable {
		for _, m := range members {
			out, err := s.Submit(t.Context(), m, []*pb.Entry{fixture.RevokeSignal(0, sig)})
			if err != nil {
				t.Fatal(err)
			}
			_ = out // a member that does not list the part gets a refusal
		}
	}
	compare("expired and revoked")
	checkShared("expired and revoked")
	if n := s.video.skLoads; n < 3 {
		t.Fatalf("the sketch was made %d times, want it resized as it grew", n)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(path, g, o); err != nil {
		t.Fatal(err)
	}
	compare("reopened")
	checkShared("reopened")
}

// TestSketchRanks checks the sketch's promise on every prefix of every quality order: of the
// first L frames by quality, at least ⌊L/5⌋+1 are kept.
func TestSketchRanks(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for n := 1; n <= 200; n++ {
		q := make([]int, n)
		for i := range q {
			q[i] = rng.IntN(4) * 30
		}
		kept := make([]bool, n)
		sketchRanks(n, func(i int) int { return q[i] }, func(i int) { kept[i] = true })
		for _, minQ := range []int{0, 30, 60, 90} {
			l, k := 0, 0
			for i := range q {
				if q[i] >= minQ {
					l++
					if kept[i] {
						k++
					}
				}
			}
			if l > 0 && k < l/sketchStride+1 {
				t.Fatalf("n=%d, quality ≥ %d: %d of %d frames kept, want at least %d", n, minQ, k, l, l/sketchStride+1)
			}
		}
	}
}
