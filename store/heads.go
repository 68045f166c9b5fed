package store

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/hashfed/hashfed/consortium"
	bolt "go.etcd.io/bbolt"
)

// Observation is what a checkpoint heard from a peer tells the store.
type Observation int

const (
	// Known: the checkpoint is of a size the store has, and agrees with the stored log (its
	// cosignatures were merged into the stored head when it is the head).
	Known Observation = iota
	// Newer: the log has entries the store lacks, up to the checkpoint's size: fetch them.
	Newer
	// Equivocated: the checkpoint contradicts the stored log; evidence was recorded and the log is
	// frozen.
	Equivocated
)

// mergeHead returns cp with the signatures of the stored head added when both are the same tree
// head, and cp itself otherwise. Caller holds wmu.
func (s *Store) mergeHead(cp *consortium.Checkpoint) *consortium.Checkpoint {
	s.mu.RLock()
	head := s.heads[cp.Member]
	keys := s.state
	s.mu.RUnlock()
	if head == nil || !head.Same(cp) {
		return cp
	}
	merged, err := consortium.MergeCheckpoints(s.g.ID, keys, head, cp)
	if err != nil {
		return cp
	}
	return merged
}

// ObserveCheckpoint compares a verified checkpoint (opened by the caller) with the stored log. A
// checkpoint of the stored head's tree adds its cosignatures to the head; one that contradicts the
// stored log yields equivocation evidence, which is stored, and freezes the log.
func (s *Store) ObserveCheckpoint(cp *consortium.Checkpoint) (Observation, *consortium.Evidence, error) {
	if merged, ok := s.observeSameHead(cp); ok {
		return merged, nil, nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.RLock()
	tree := s.treeOf(cp.Member)
	head := s.heads[cp.Member]
	ev := s.evidence[cp.Member]
	s.mu.RUnlock()
	if ev != nil {
		return Equivocated, ev, nil
	}
	switch {
	case cp.Size > tree.Size():
		return Newer, nil, nil
	case head != nil && cp.Same(head):
		merged := s.mergeHead(cp)
		if len(merged.Cosigners) == len(head.Cosigners) {
			return Known, nil, nil
		}
		s.putHeadLazy(cp.Member, merged)
		return Known, nil, nil
	}
	root, err := s.TreeHash(cp.Member, cp.Size)
	if err != nil {
		return Known, nil, err
	}
	if root == cp.Root {
		return Known, nil, nil
	}
	// The member signed a tree the stored log contradicts. The stored head is the other half of the
	// proof when it covers the checkpoint's size.
	if head == nil || head.Size < cp.Size {
		return Known, nil, fmt.Errorf("%w: checkpoint of %q at size %d contradicts the stored log, but no signed head covers that size", consortium.ErrInconsistent, cp.Member, cp.Size)
	}
	if head.Size == cp.Size {
		ev, err = consortium.SameSizeEvidence(cp, head)
	} else {
		var proof []consortium.Hash
		if proof, err = s.ProveConsistency(cp.Member, cp.Size, head.Size); err == nil {
			ev, err = consortium.ForkEvidence(cp, head, root, proof)
		}
	}
	if err != nil {
		return Known, nil, err
	}
	if _, err := s.recordEvidence(ev); err != nil {
		return Equivocated, ev, err
	}
	return Equivocated, ev, nil
}

// observeSameHead handles, without holding the write lock while it merges, a checkpoint of the
// stored head's tree head (the usual case: a cosigned head heard from each cosigner): the merged
// cosignatures replace the head unless the head changed meanwhile, when the merge is dropped (the
// cosignatures are heard again). It reports false when cp is not the stored head's tree head, or
// the log is frozen; the caller then observes cp under the lock.
func (s *Store) observeSameHead(cp *consortium.Checkpoint) (Observation, bool) {
	// The state (the keys) changes under the exclusive lock: it is read under the shared one.
	s.mu.RLock()
	head := s.heads[cp.Member]
	frozen := s.evidence[cp.Member] != nil
	if frozen || head == nil || !cp.Same(head) {
		s.mu.RUnlock()
		return Known, false
	}
	merged, err := consortium.MergeCheckpoints(s.g.ID, s.state, head, cp)
	s.mu.RUnlock()
	if err != nil || len(merged.Cosigners) == len(head.Cosigners) {
		return Known, true
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.RLock()
	same := s.heads[cp.Member] == head && s.evidence[cp.Member] == nil
	s.mu.RUnlock()
	if same {
		s.putHeadLazy(cp.Member, merged)
	}
	return Known, true
}

// ObserveFork checks a peer's claim that cp (newer than the stored head) forks from the stored log:
// prefixRoot is cp's tree at the stored head's size, with a consistency proof to cp's root. If the
// proof holds and prefixRoot differs from the stored head's root, that is equivocation: the
// evidence is stored and returned.
func (s *Store) ObserveFork(cp *consortium.Checkpoint, prefixRoot consortium.Hash, proof []consortium.Hash) (*consortium.Evidence, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.RLock()
	head := s.heads[cp.Member]
	s.mu.RUnlock()
	if head == nil || head.Size >= cp.Size {
		return nil, fmt.Errorf("%w: no stored head of %q below size %d", consortium.ErrMalformed, cp.Member, cp.Size)
	}
	ev, err := consortium.ForkEvidence(head, cp, prefixRoot, proof)
	if err != nil {
		return nil, err
	}
	_, err = s.recordEvidence(ev)
	return ev, err
}

// RecordEvidence stores verified equivocation evidence heard from a peer and freezes the log. It
// keeps the evidence that supersedes the stored one ([consortium.Evidence.Supersedes]), so nodes
// converge on the smallest agreed size, and reports whether ev was stored. Resolved evidence may
// rebuild the derived state (see [Store.Cutoffs]).
func (s *Store) RecordEvidence(ev *consortium.Evidence) (bool, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.recordEvidence(ev)
}

// Evidence returns the stored equivocation evidence, by member.
func (s *Store) Evidence() map[string]*consortium.Evidence {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return maps.Clone(s.evidence)
}

// SignHead signs a checkpoint of key's own log when it has grown since the last one, stores it as
// the head, and returns it (nil when there was nothing new to sign). It refuses with ErrForked once
// evidence against key's member is stored (see frozenErr).
func (s *Store) SignHead(key *consortium.PrivateKey) (*consortium.Checkpoint, error) {
	return s.SignHeadPublish(key, nil)
}

// SignHeadPublish is [Store.SignHead] that calls publish, when it is not nil, with the new
// checkpoint as soon as it is signed, before it is written as the head: the node sends it to its
// peers while the head is fsynced. That is safe because the checkpoint covers only entries
// already stored (fsynced when they were submitted) and signing is deterministic: after a crash
// before the head is written, signing the same tree again gives the same checkpoint, byte for
// byte. publish must not write to the store.
func (s *Store) SignHeadPublish(key *consortium.PrivateKey, publish func(*consortium.Checkpoint)) (*consortium.Checkpoint, error) {
	m := key.ID()
	cp, err := s.signOwn(key)
	if cp == nil || err != nil {
		return nil, err
	}
	if publish != nil {
		publish(cp)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.RLock()
	cur := s.heads[m]
	frozen := s.frozenErr(m)
	s.mu.RUnlock()
	if frozen != nil {
		return nil, frozen
	}
	if cur != nil && cur.Size >= cp.Size {
		return cur, nil // signed meanwhile by another caller
	}
	if err := s.putHead(m, cp); err != nil {
		return nil, err
	}
	return cp, nil
}

// signOwn signs a checkpoint of key's own log when it has grown since its stored head (nil when
// not), under the shared lock: the state (the keys that open it) changes under the exclusive one.
func (s *Store) signOwn(key *consortium.PrivateKey) (*consortium.Checkpoint, error) {
	m := key.ID()
	s.mu.RLock()
	defer s.mu.RUnlock()
	// A store whose reload after a failed commit failed may hold in memory entries that were never
	// stored: a checkpoint of them would fork the log once it is reopened (a closed one signs
	// nothing either: its head could not be written).
	if err := s.writableErr(); err != nil {
		return nil, err
	}
	tree := s.treeOf(m)
	head := s.heads[m]
	if err := s.frozenErr(m); err != nil {
		return nil, err
	}
	if tree.Size() == 0 || head != nil && head.Size >= tree.Size() {
		return nil, nil
	}
	note, err := consortium.SignCheckpoint(s.g.ID, key, tree.Size(), tree.Root())
	if err != nil {
		return nil, err
	}
	return consortium.OpenCheckpoint(s.g.ID, s.state, note)
}

// Cosign adds key's cosignature to the stored head of another member's log (which the store
// verified up to that size) and returns the cosigned head.
func (s *Store) Cosign(member string, key *consortium.PrivateKey, now time.Time) (*consortium.Checkpoint, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.RLock()
	head := s.heads[member]
	keys := s.state
	forked := s.evidence[member] != nil
	s.mu.RUnlock()
	if head == nil {
		return nil, fmt.Errorf("no checkpoint of %q to cosign", member)
	}
	if forked {
		return nil, fmt.Errorf("%w: %s equivocated; not cosigning", ErrForked, member)
	}
	if head.HasCosigner(key.ID()) {
		return head, nil
	}
	cp, err := consortium.Cosign(s.g.ID, keys, head, key, now)
	if err != nil {
		return nil, err
	}
	s.putHeadLazy(member, cp)
	return cp, nil
}

// Head returns the latest checkpoint of member's log the store holds.
func (s *Store) Head(member string) (*consortium.Checkpoint, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	cp, ok := s.heads[member]
	return cp, ok
}

// Heads returns the latest checkpoint of every log, by member.
func (s *Store) Heads() map[string]*consortium.Checkpoint {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return maps.Clone(s.heads)
}

// Size returns the number of entries stored of member's log.
func (s *Store) Size(member string) uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.treeOf(member).Size()
}

// Sizes returns the stored size of every log that has entries, by member.
func (s *Store) Sizes() map[string]uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := map[string]uint64{}
	for m, t := range s.trees {
		if t.Size() > 0 {
			out[m] = t.Size()
		}
	}
	return out
}

// Members returns the ids of every log the store holds, sorted.
func (s *Store) Members() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ids := slices.Collect(maps.Keys(s.trees))
	slices.SortFunc(ids, strings.Compare)
	return ids
}

// Entries returns entries [start, end) of member's log, stopping early after maxBytes of entry
// bytes (at least one entry is returned when any is asked for).
func (s *Store) Entries(member string, start, end uint64, maxBytes int) ([][]byte, error) {
	var out [][]byte
	err := s.db.View(func(tx *bolt.Tx) error {
		b := logBucket(tx, member)
		if b == nil {
			if start < end {
				return fmt.Errorf("no log of %q", member)
			}
			return nil
		}
		c := b.Cursor()
		size := 0
		next := start
		for k, v := c.Seek(logKey(start)); k != nil && next < end; k, v = c.Next() {
			_, e, err := splitValue(next, v)
			if err != nil {
				return err
			}
			if len(out) > 0 && size+len(e) > maxBytes {
				break
			}
			out = append(out, append([]byte(nil), e...))
			size += len(e)
			next++
		}
		if len(out) == 0 && start < end {
			return fmt.Errorf("log %q has no entry %d", member, start)
		}
		return nil
	})
	return out, err
}

// Entry returns entry index of member's log.
func (s *Store) Entry(member string, index uint64) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		out, err = readEntry(tx, member, index)
		return err
	})
	return out, err
}

// TreeHash returns the root of member's log at size (at most the stored size).
func (s *Store) TreeHash(member string, size uint64) (consortium.Hash, error) {
	var h consortium.Hash
	err := s.db.View(func(tx *bolt.Tx) error {
		if size > s.sizeIn(tx, member) {
			return fmt.Errorf("log %q has fewer than %d entries", member, size)
		}
		var err error
		h, err = consortium.TreeHash(hashReader(tx, member), size)
		return err
	})
	return h, err
}

// ProveConsistency returns an RFC 6962 consistency proof of member's log from oldSize to newSize.
func (s *Store) ProveConsistency(member string, oldSize, newSize uint64) ([]consortium.Hash, error) {
	var p []consortium.Hash
	err := s.db.View(func(tx *bolt.Tx) error {
		if oldSize > newSize || newSize > s.sizeIn(tx, member) {
			return fmt.Errorf("no consistency proof of %q from %d to %d: %d entries stored", member, oldSize, newSize, s.sizeIn(tx, member))
		}
		var err error
		p, err = consortium.ProveConsistency(hashReader(tx, member), oldSize, newSize)
		return err
	})
	return p, err
}

// ProveInclusion returns an RFC 6962 inclusion proof of entry index in member's log of size.
func (s *Store) ProveInclusion(member string, index, size uint64) ([]consortium.Hash, error) {
	var p []consortium.Hash
	err := s.db.View(func(tx *bolt.Tx) error {
		if index >= size || size > s.sizeIn(tx, member) {
			return fmt.Errorf("no inclusion proof of %q entry %d in size %d: %d entries stored", member, index, size, s.sizeIn(tx, member))
		}
		var err error
		p, err = consortium.ProveInclusion(hashReader(tx, member), index, size)
		return err
	})
	return p, err
}

// sizeIn returns the stored size of member's log as of tx.
func (s *Store) sizeIn(tx *bolt.Tx, member string) uint64 {
	b := logBucket(tx, member)
	if b == nil {
		return 0
	}
	k, _ := b.Cursor().Last()
	if k == nil {
		return 0
	}
	return binary.BigEndian.Uint64(k) + 1
}

// putHead stores cp as the head of member's log, on disk and then in memory.
func (s *Store) putHead(member string, cp *consortium.Checkpoint) error {
	err := s.write(nil, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketHeads).Put([]byte(member), cp.Note)
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.heads[member] = cp
	s.mu.Unlock()
	return nil
}

// putHeadLazy makes cp, the stored head's tree head with more cosignatures, the head in memory at
// once and on disk with the next write (see lazyHeads). Cosignatures add nothing a crash could make
// inconsistent: the head on disk stays a verified checkpoint of the same tree, and a cosignature
// lost in a crash is heard again from its cosigner (gossip, head exchanges) or made again. Caller
// holds wmu.
func (s *Store) putHeadLazy(member string, cp *consortium.Checkpoint) {
	s.mu.Lock()
	s.heads[member] = cp
	s.mu.Unlock()
	if s.lazyHeads == nil {
		s.lazyHeads = map[string]bool{}
	}
	s.lazyHeads[member] = true
}

// lazyHeadNotes returns the notes of the heads in memory not yet written (see lazyHeads). Caller
// holds wmu.
func (s *Store) lazyHeadNotes() map[string][]byte {
	if len(s.lazyHeads) == 0 {
		return nil
	}
	out := make(map[string][]byte, len(s.lazyHeads))
	s.mu.RLock()
	for m := range s.lazyHeads {
		if h := s.heads[m]; h != nil {
			out[m] = h.Note
		}
	}
	s.mu.RUnlock()
	return out
}

// FlushHeads writes the cosignatures merged into heads in memory since the last write (see
// lazyHeads) to disk. The node calls it every second or so; Close calls it too.
func (s *Store) FlushHeads() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.flushHeadsLocked(false)
}

// flushHeadsLocked is FlushHeads with wmu held; closing writes even though the store is marked
// closed. Caller holds wmu.
func (s *Store) flushHeadsLocked(closing bool) error {
	if len(s.lazyHeads) == 0 {
		return nil
	}
	if closing {
		notes := s.lazyHeadNotes()
		err := s.db.Update(func(tx *bolt.Tx) error { return putHeadNotes(tx, notes) })
		if err != nil {
			return fmt.Errorf("store %s: write heads: %w", s.path, err)
		}
		clear(s.lazyHeads)
		return nil
	}
	return s.write(nil, func(*bolt.Tx) error { return nil })
}

func putHeadNotes(tx *bolt.Tx, notes map[string][]byte) error {
	b := tx.Bucket(bucketHeads)
	for m, note := range notes {
		if err := b.Put([]byte(m), note); err != nil {
			return err
		}
	}
	return nil
}
