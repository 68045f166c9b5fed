package store

import (
	"context"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// FeedEvent is one entry as this node stored it, in the order it stored them: the node's own
// submissions and every verified range from peers. Seq is the event's feed position; a consumer
// that has handled it resumes from Seq+1.
//
// An event with a Cutoff effect is not a newly stored entry: an equivocation cutoff changed the
// effect of an entry stored earlier (PROTOCOL.md section 5.2), and Entry is that entry again.
type FeedEvent struct {
	Seq    uint64
	Member string
	Index  uint64
	Entry  []byte
	Cutoff CutoffEffect
}

// CutoffEffect is how an equivocation cutoff changed the effect of a stored entry (0 for an event
// that is a newly stored entry).
type CutoffEffect uint8

// The effects of a cutoff on a stored entry.
const (
	// CutoffUnlisted: the add is no longer in force: the cutoff leaves it (or the roster change
	// that let its author list) out of the state.
	CutoffUnlisted CutoffEffect = iota + 1
	// CutoffListed: the add is in force now (a cutoff rose, or the add is in force again because
	// a later revoke or re-add was cut off).
	CutoffListed
	// CutoffOpinionRemoved: the opinion no longer counts.
	CutoffOpinionRemoved
	// CutoffOpinionApplied: the opinion counts now.
	CutoffOpinionApplied
)

// FeedEnd returns the feed position after the last stored event.
func (s *Store) FeedEnd() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.feedNext
}

// Feed returns up to max events from feed position cursor, and the position to resume from. The
// feed is durable: positions stay valid across restarts.
func (s *Store) Feed(cursor uint64, max int) ([]FeedEvent, uint64, error) {
	var out []FeedEvent
	next := cursor
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketFeed).Cursor()
		k, v := c.Seek(binary.BigEndian.AppendUint64(nil, cursor))
		if k == nil || binary.BigEndian.Uint64(k) > cursor {
			// The record holding cursor, if any, starts before it.
			if pk, pv := c.Prev(); pk != nil {
				k, v = pk, pv
			} else if k == nil {
				return nil
			}
		}
		for ; k != nil && len(out) < max; k, v = c.Next() {
			rec, err := decodeFeedRecord(k, v)
			if err != nil {
				return err
			}
			if rec.seq+rec.count <= next {
				continue
			}
			b := logBucket(tx, rec.member)
			if b == nil {
				return fmt.Errorf("%w: feed names log %q, which is missing", ErrDamaged, rec.member)
			}
			for off := next - rec.seq; off < rec.count && len(out) < max; off++ {
				idx := rec.start + off
				val := b.Get(logKey(idx))
				if val == nil {
					return fmt.Errorf("%w: feed names entry %d of %q, which is missing", ErrDamaged, idx, rec.member)
				}
				_, e, err := splitValue(idx, val)
				if err != nil {
					return err
				}
				out = append(out, FeedEvent{Seq: rec.seq + off, Member: rec.member, Index: idx, Entry: append([]byte(nil), e...), Cutoff: rec.effect})
				next = rec.seq + off + 1
			}
		}
		return nil
	})
	return out, next, err
}

// WaitFeed returns when the feed has an event at position cursor, or when ctx ends or the store
// closes.
func (s *Store) WaitFeed(ctx context.Context, cursor uint64) error {
	for {
		s.mu.RLock()
		next, wake, closed := s.feedNext, s.feedWake, s.closed
		s.mu.RUnlock()
		if closed {
			return ErrClosed
		}
		if cursor < next {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// unlockAndWake unlocks s.mu, which the caller holds, and when the feed grew (added) wakes the
// feed's readers waiting on the old channel.
func (s *Store) unlockAndWake(added bool) {
	wake := s.feedWake
	if added && !s.closed {
		s.feedWake = make(chan struct{})
	}
	s.mu.Unlock()
	if added && wake != nil {
		select {
		case <-wake:
		default:
			close(wake)
		}
	}
}
