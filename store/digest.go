package store

import (
	"sync"

	"github.com/hashfed/hashfed/consortium"
)

// digestCache holds the state digest computed at one state version, so that a node asked for its
// status again and again while nothing changes does not hash the whole set each time.
type digestCache struct {
	mu      sync.Mutex
	version uint64
	valid   bool
	digest  consortium.Hash
}

// Digest returns the state digest ([consortium.State.Digest]) of the current state. It is
// computed once per change of the state (an append, a cutoff) and cached until the next: a scan
// of the whole set when the state changed since the last call, a copy otherwise.
func (s *Store) Digest() consortium.Hash {
	s.digest.mu.Lock()
	defer s.digest.mu.Unlock()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.digest.valid && s.digest.version == s.version {
		return s.digest.digest
	}
	s.digest.digest = s.state.Digest()
	s.digest.version, s.digest.valid = s.version, true
	return s.digest.digest
}
