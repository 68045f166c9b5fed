package pdqindex

import (
	"math/bits"
	"slices"
)

// hashStore holds each id's hash, in pages of pageSize ids allocated as ids are first used, and a bitset of
// the ids present. Pages are slices rather than pointers to arrays so that reading a hash touches only its
// own cache line (a pointer to a large array costs an extra load for its nil check).
type hashStore struct {
	pages [][][4]uint64 // pages[id>>pageBits] is nil or pageSize hashes
	live  []uint64      // bit id%64 of live[id/64]: id is present
}

const (
	pageBits = 12
	pageSize = 1 << pageBits
)

// has reports whether id is present.
func (s *hashStore) has(id uint32) bool {
	w := int(id / 64)
	return w < len(s.live) && s.live[w]&(1<<(id%64)) != 0
}

// get returns id's hash; id must be present.
func (s *hashStore) get(id uint32) *[4]uint64 {
	return &s.pages[id>>pageBits][id&(pageSize-1)]
}

// put stores h as id's hash and marks id present.
func (s *hashStore) put(id uint32, h *[4]uint64) {
	pi := int(id >> pageBits)
	if n := len(s.pages); pi >= n {
		s.pages = slices.Grow(s.pages, pi+1-n)[:pi+1]
		clear(s.pages[n:])
	}
	if s.pages[pi] == nil {
		s.pages[pi] = make([][4]uint64, pageSize)
	}
	s.pages[pi][id&(pageSize-1)] = *h
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
func (s *hashStore) slots() int { return len(s.pages) << pageBits }

// forEach calls f for every present id and its hash, in id order.
func (s *hashStore) forEach(f func(id uint32, h *[4]uint64)) {
	for wi, lw := range s.live {
		for lw != 0 {
			id := uint32(wi*64 + bits.TrailingZeros64(lw))
			lw &= lw - 1
			f(id, s.get(id))
		}
	}
}

// bytes returns the memory the store holds.
func (s *hashStore) bytes() int64 {
	n := int64(cap(s.pages))*24 + int64(cap(s.live))*8
	for _, p := range s.pages {
		n += int64(cap(p)) * 32
	}
	return n
}
