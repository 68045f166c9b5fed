package store

import (
	"container/heap"
	"slices"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/store/pdqindex"
)

// expiryItem is a listing expiry to act on: at that time, signal id may stop matching.
type expiryItem struct {
	at int64
	id uint32
}

type expiryHeap []expiryItem

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiryItem)) }
func (h *expiryHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func (h *expiryHeap) push(it expiryItem) { heap.Push(h, it) }

// onChange keeps the match indices in step with the state. It runs under mu, during Apply.
func (s *Store) onChange(c consortium.Change) {
	switch c.Kind {
	case consortium.Listed:
		if c.Signal.Type == consortium.PDQ {
			switch {
			case s.pre != nil && s.pre.listed(c.SignalID, pdqindex.Hash(c.Signal.Value)):
				// in the index already (commitBatch)
			case s.pending != nil:
				s.pending[c.SignalID] = pdqindex.Hash(c.Signal.Value)
			default:
				s.pdq.Add(c.SignalID, pdqindex.Hash(c.Signal.Value))
			}
		}
		if c.Expires > 0 {
			s.expiry.push(expiryItem{at: c.Expires, id: c.SignalID})
		}
	case consortium.Unlisted:
		if c.Listers == 0 && c.Signal.Type == consortium.PDQ {
			delete(s.pending, c.SignalID)
			if s.pre != nil {
				<-s.pre.done // the id may be among the inserts still running
				s.pre.removed(c.SignalID)
			}
			s.pdq.Remove(c.SignalID)
		}
	}
	if c.Signal.Type == consortium.VPDQ && (c.Kind == consortium.Listed || c.Kind == consortium.Unlisted) {
		s.videoChange(c)
	}
	switch {
	case s.opts.OnChange == nil:
	case s.holding:
		s.held = append(s.held, c) // told once the commit is durable (writeApply)
	default:
		s.opts.OnChange(c)
	}
}

// Sweep takes out of the match index the PDQ signals whose every listing has expired by now, and
// returns how many it took out. Matching also checks expiry, so Sweep only saves work; a node calls
// it every few seconds.
func (s *Store) Sweep() int {
	now := s.opts.Now().UnixMilli()
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for s.expiry.Len() > 0 && s.expiry[0].at <= now {
		it := heap.Pop(&s.expiry).(expiryItem)
		sig, ok := s.state.SignalByID(it.id)
		if !ok || sig.Type != consortium.PDQ {
			continue
		}
		live := false
		for _, l := range s.state.ListedByID(it.id) {
			if l.Expires == 0 || l.Expires > now {
				live = true
				break
			}
		}
		if !live && s.pdq.Remove(it.id) {
			n++
		}
	}
	return n
}

// flushPending adds the PDQ signals listed during a write to the match index in one batch. It runs
// under mu, before the write returns, so they are visible to matching when it does.
func (s *Store) flushPending() {
	if len(s.pending) == 0 {
		s.pending = nil
		return
	}
	ids := make([]uint32, 0, len(s.pending))
	for id := range s.pending {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	hs := make([]pdqindex.Hash, len(ids))
	for i, id := range ids {
		hs[i] = s.pending[id]
	}
	s.pending = nil
	s.pdq.AddBatch(ids, hs)
}
