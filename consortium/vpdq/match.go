package vpdq

import (
	"encoding/binary"
	"fmt"
	"math/bits"

	"github.com/hashfed/hashfed/consortium/pdq"
)

// The reference's matching defaults (python-threatexchange's vpdq signal type and
// vpdq/README.md).
const (
	DefaultDistance        = 31
	DefaultQuality         = 50
	DefaultComparedPercent = 80
	DefaultQueryPercent    = 0
)

// MatchOptions is the vPDQ match rule's parameters.
type MatchOptions struct {
	// Distance is the largest Hamming distance at which two frames match (inclusive).
	Distance int
	// Quality is the lowest frame quality that takes part in matching.
	Quality int
	// QueryPercent is the share of the query's frames that must match, 0 to 100.
	QueryPercent float64
	// ComparedPercent is the share of the compared (listed) video's frames that must match.
	ComparedPercent float64
}

// DefaultMatchOptions returns the reference's defaults: distance 31, quality 50, 80 % of the
// compared video and 0 % of the query.
func DefaultMatchOptions() MatchOptions {
	return MatchOptions{Distance: DefaultDistance, Quality: DefaultQuality, QueryPercent: DefaultQueryPercent, ComparedPercent: DefaultComparedPercent}
}

// Validate reports options out of range.
func (o MatchOptions) Validate() error {
	switch {
	case o.Distance < 0 || o.Distance > 256:
		return fmt.Errorf("%w: distance %d, want 0 to 256", ErrBadOptions, o.Distance)
	case o.Quality < 0 || o.Quality > MaxQuality:
		return fmt.Errorf("%w: quality %d, want 0 to 100", ErrBadOptions, o.Quality)
	case !(o.QueryPercent >= 0 && o.QueryPercent <= 100):
		return fmt.Errorf("%w: query percentage %v, want 0 to 100", ErrBadOptions, o.QueryPercent)
	case !(o.ComparedPercent >= 0 && o.ComparedPercent <= 100):
		return fmt.Errorf("%w: compared percentage %v, want 0 to 100", ErrBadOptions, o.ComparedPercent)
	}
	return nil
}

// Holds reports whether the two percentages satisfy the rule. Nothing matches when either video
// has no frame of sufficient quality (both percentages are then 0).
func (o MatchOptions) Holds(queryPercent, comparedPercent float64, queryFrames, comparedFrames int) bool {
	return queryFrames > 0 && comparedFrames > 0 && queryPercent >= o.QueryPercent && comparedPercent >= o.ComparedPercent
}

// Prepare returns the frames that take part in matching: quality at least minQuality, and only
// the first of frames whose hashes are identical. The order is kept.
func Prepare(frames []Frame, minQuality int) []Frame {
	seen := make(map[pdq.Hash]struct{}, len(frames))
	out := make([]Frame, 0, len(frames))
	for _, f := range frames {
		if f.Quality < minQuality {
			continue
		}
		if _, ok := seen[f.Hash]; ok {
			continue
		}
		seen[f.Hash] = struct{}{}
		out = append(out, f)
	}
	return out
}

// Pair is a query frame and the first compared frame within the distance of it.
type Pair struct {
	Query, Compared Frame
	Distance        int
}

// Result is the outcome of comparing two videos.
type Result struct {
	// QueryPercent is the share of the query's prepared frames that match some frame of the
	// compared video; ComparedPercent the other way round.
	QueryPercent, ComparedPercent float64
	// QueryFrames and ComparedFrames count the prepared frames of each.
	QueryFrames, ComparedFrames int
	// Match reports whether the rule holds.
	Match bool
	// Pairs lists, for each matching query frame in order, its first matching compared frame.
	Pairs []Pair
}

// Compare applies the vPDQ rule to two frame lists by comparing every pair (the reference's
// brute-force matcher). It suits a handful of videos; many listed videos are matched through an
// index instead, with the same counts.
func Compare(query, compared []Frame, o MatchOptions) Result {
	q := Prepare(query, o.Quality)
	c := Prepare(compared, o.Quality)
	r := Result{QueryFrames: len(q), ComparedFrames: len(c)}
	if len(q) == 0 || len(c) == 0 {
		return r
	}
	cHit := make([]bool, len(c))
	qHits := 0
	cw := hashWords(c)
	for _, fq := range q {
		first := -1
		a := hashWords([]Frame{fq})[0]
		for j := range cw {
			b := &cw[j]
			d := bits.OnesCount64(a[0]^b[0]) + bits.OnesCount64(a[1]^b[1]) + bits.OnesCount64(a[2]^b[2]) + bits.OnesCount64(a[3]^b[3])
			if d > o.Distance {
				continue
			}
			cHit[j] = true
			if first < 0 {
				first = j
				r.Pairs = append(r.Pairs, Pair{fq, c[j], d})
			}
		}
		if first >= 0 {
			qHits++
		}
	}
	cHits := 0
	for _, h := range cHit {
		if h {
			cHits++
		}
	}
	r.QueryPercent = Percent(qHits, len(q))
	r.ComparedPercent = Percent(cHits, len(c))
	r.Match = o.Holds(r.QueryPercent, r.ComparedPercent, len(q), len(c))
	return r
}

// hashWords returns the frames' hashes as 64-bit words, for fast distances.
func hashWords(fs []Frame) [][4]uint64 {
	out := make([][4]uint64, len(fs))
	for i, f := range fs {
		for k := range 4 {
			out[i][k] = binary.LittleEndian.Uint64(f.Hash[8*k:])
		}
	}
	return out
}

// Percent returns 100 × n / total, or 0 when total is 0.
func Percent(n, total int) float64 {
	if total == 0 {
		return 0
	}
	return float64(n) * 100 / float64(total)
}
