package pdqindex

import (
	"slices"
)

// hashStore holds each id's hash, in pages of pageSize ids allocated as ids are first used, and a bitset of
// the ids present. Each hash is split in halves kept in separate pages: the first half alone almost always
// shows a candidate is too far (128 random bits differ in about 64), so a search reads 16 bytes of most
// candidates, and the candidates' first halves take half the cache. Pages are slices rather than pointers
// to arrays so that reading a hash touches only its own cache line (a pointer to a large array costs an
// extra load for its nil check).
type hashStore struct {
	lo, hi [][][2]uint64 // lo[id>>pageBits] is nil or the first halves (words 0, 1) of pageSize hashes
	live   []uint64      // bit id%64 of live[id/64]: id is present
	pages  int           // pages allocated
	// loSlab and hiSlab are the rest of the slabs new pages are cut from: a slab holds as many pages as
	// are already allocated (one at first, at most maxSlabPages), so a large store's pages lie in slabs
	// of 8 MiB that can be backed by huge pages (see hugeSlice). The part of a slab not yet cut into
	// pages has never been written, so takes no memory but its first and last 2 MiB.
	loSlab, hiSlab [][2]uint64
	mems           []*hugeMem // keep the slabs mapped (see hugeSlice)
}

const (
	pageBits     = 12
	pageSize     = 1 << pageBits
	maxSlabPages = 128
)

// has reports whether id is present.
func (s *hashStore) has(id uint32) bool {
	w := int(id / 64)
	return w < len(s.live) && s.live[w]&(1<<(id%64)) != 0
}

// get returns id's hash; id must be present.
func (s *hashStore) get(id uint32) [4]uint64 {
	a, b := &s.lo[id>>pageBits][id&(pageSize-1)], &s.hi[id>>pageBits][id&(pageSize-1)]
	return [4]uint64{a[0], a[1], b[0], b[1]}
}

// put stores h as id's hash and marks id present.
func (s *hashStore) put(id uint32, h *[4]uint64) {
	pi := int(id >> pageBits)
	if n := len(s.lo); pi >= n {
		s.lo = slices.Grow(s.lo, pi+1-n)[:pi+1]
		s.hi = slices.Grow(s.hi, pi+1-n)[:pi+1]
		clear(s.lo[n:])
		clear(s.hi[n:])
	}
	if s.lo[pi] == nil {
		if len(s.loSlab) == 0 {
			k := min(max(s.pages, 1), maxSlabPages) * pageSize
			var lm, hm *hugeMem
			s.loSlab, lm = hugeSlice[[2]uint64](k)
			s.hiSlab, hm = hugeSlice[[2]uint64](k)
			for _, m := range []*hugeMem{lm, hm} {
				if m != nil {
					s.mems = append(s.mems, m)
				}
			}
		}
		s.lo[pi] = s.loSlab[:pageSize:pageSize]
		s.hi[pi] = s.hiSlab[:pageSize:pageSize]
		s.loSlab, s.hiSlab = s.loSlab[pageSize:], s.hiSlab[pageSize:]
		s.pages++
	}
	s.lo[pi][id&(pageSize-1)] = [2]uint64{h[0], h[1]}
	s.hi[pi][id&(pageSize-1)] = [2]uint64{h[2], h[3]}
	w := int(id / 64)
	if n := len(s.live); w >= n {
		s.live = slices.Grow(s.live, w+1-n)[:w+1]
		clear(s.live[n:])
	}
	s.live[w] |= 1 << (id % 64)
}

// del marks id absent.
func (s *hashStore) del(id uint32) {
	if w := int(id / 64); w < len(s.live) {
		s.live[w] &^= 1 << (id % 64)
	}
}

// slots returns the number of ids the allocated pages cover: every present id is below it.
func (s *hashStore) slots() int { return len(s.lo) << pageBits }

// keys sets keys[id] to tb's key of id's hash for every id below slots() (noKey for an absent id), and
// returns keys, grown to slots() if it was shorter.
func (s *hashStore) keys(tb *table, keys []uint32) []uint32 {
	keys = slices.Grow(keys[:0], s.slots())[:s.slots()]
	for pi, lo := range s.lo {
		ks := keys[pi<<pageBits : (pi+1)<<pageBits]
		if lo == nil {
			for j := range ks {
				ks[j] = noKey
			}
			continue
		}
		hi := s.hi[pi][:len(ks)]
		live := s.live[pi*pageSize/64 : min((pi+1)*pageSize/64, len(s.live))]
		// The key's bits are in words word and word+1: read only the half (page) they are in, unless
		// they straddle the two.
		for j := range ks {
			ks[j] = noKey
			if w := j / 64; w >= len(live) || live[w]&(1<<(j%64)) == 0 {
				continue
			}
			var w0, w1 uint64
			switch tb.word {
			case 0:
				w0, w1 = lo[j][0], lo[j][1]
			case 1:
				w0 = lo[j][1]
				if tb.spans {
					w1 = hi[j][0]
				}
			case 2:
				w0, w1 = hi[j][0], hi[j][1]
			default:
				w0 = hi[j][1]
			}
			v := w0 >> tb.shift
			if tb.spans {
				v |= w1 << (64 - tb.shift)
			}
			ks[j] = uint32(v) & tb.mask
		}
	}
	return keys
}

// bytes returns the memory the store holds.
func (s *hashStore) bytes() int64 {
	return int64(cap(s.lo)+cap(s.hi))*24 + int64(cap(s.live))*8 + int64(s.pages)*pageSize*32
}
