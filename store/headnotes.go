package store

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/hashfed/hashfed/consortium"
	bolt "go.etcd.io/bbolt"
)

// bucketHeadsNotes holds the latest heads note (section 4.5 of PROTOCOL.md) of each signer, under
// the signer's member id: the note's time in Unix milliseconds (8 bytes, big-endian), then the
// note. It is created on first use, so stores written before it existed open unchanged.
var bucketHeadsNotes = []byte("headnotes")

// PutHeadsNote keeps h, a heads note the caller has verified, as its signer's latest unless the
// store holds one of that signer signed at the same time or later, or less than minAge before h
// (a caller receiving fresh notes often saves a disk write per note). It reports whether h was
// stored. Heads notes are not part of the state: losing them loses nothing but evidence for audits.
func (s *Store) PutHeadsNote(h *consortium.HeadsNote, minAge time.Duration) (bool, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	ms := h.Time.UnixMilli()
	stored := false
	err := s.write(nil, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketHeadsNotes)
		if err != nil {
			return err
		}
		if old := b.Get([]byte(h.Signer)); len(old) >= 8 {
			if prev := int64(binary.BigEndian.Uint64(old)); prev >= ms || ms-prev < minAge.Milliseconds() {
				return nil
			}
		}
		stored = true
		return b.Put([]byte(h.Signer), append(binary.BigEndian.AppendUint64(nil, uint64(ms)), h.Note...))
	})
	if err != nil {
		return false, fmt.Errorf("store heads note of %s: %w", h.Signer, err)
	}
	return stored, nil
}

// HeadsNotes returns the latest heads note of every signer the store holds, by signer.
func (s *Store) HeadsNotes() (map[string][]byte, error) {
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	out := map[string][]byte{}
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketHeadsNotes)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if len(v) > 8 {
				out[string(k)] = append([]byte(nil), v[8:]...)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store %s: read heads notes: %w", s.path, err)
	}
	return out, nil
}

// HeadsNote returns the latest heads note of signer the store holds, or nil.
func (s *Store) HeadsNote(signer string) ([]byte, error) {
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketHeadsNotes); b != nil {
			if v := b.Get([]byte(signer)); len(v) > 8 {
				out = append([]byte(nil), v[8:]...)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store %s: read heads note of %s: %w", s.path, signer, err)
	}
	return out, nil
}
