package store

import (
	"fmt"
	"maps"
	"slices"

	"github.com/hashfed/hashfed/consortium"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"github.com/hashfed/hashfed/store/pdqindex"
	bolt "go.etcd.io/bbolt"
)

// Equivocation cutoffs: once evidence against a member is stored, the state applies that
// member's log only up to its cutoff ([consortium.Cutoffs]): the smallest agreed size of the
// resolved evidence against it (where its two histories part, see [consortium.Agreement]), or 0
// while only unresolved evidence is known. The entries beyond stay stored as signed history and
// have no effect. Every node that holds the same evidence (nodes keep the evidence that supersedes
// what they hold and gossip it) computes the same state, whichever fork it stored. When a cutoff
// changes what the state applies (down, or up from 0 when resolved evidence replaces unresolved
// evidence), the derived state (State, match indices, expiry heap) is rebuilt from the stored logs
// with the cutoffs applied; matching answers from the old state until the new one is swapped in,
// and the differences go to the listeners and the feed. When the store opens, the logs are
// replayed in full first (so that heads and evidence verify with every key the logs ever gave),
// then again with the stored cutoffs when they cut something.

// applyCount returns how many of the count entries starting at first of member's log the state
// applies: all of them unless a cutoff stops the log within or before them. applyLocked calls it
// under mu, replayCut on its private store.
func (s *Store) applyCount(member string, first uint64, count int) int {
	f, ok := s.cutoffs[member]
	switch {
	case !ok || first+uint64(count) <= f:
		return count
	case first >= f:
		return 0
	}
	return int(f - first)
}

// Cutoffs returns the cutoffs the state applies, by member (see [consortium.Cutoffs]).
func (s *Store) Cutoffs() map[string]uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return maps.Clone(s.cutoffs)
}

// evidenceCutoffs computes the cutoffs of the stored evidence. Caller holds mu (shared) or wmu.
func (s *Store) evidenceCutoffs() map[string]uint64 {
	evs := slices.Collect(maps.Values(s.evidence))
	return consortium.Cutoffs(evs)
}

// applyStoredCutoffs runs when the store opens, after the first replay: if stored evidence cuts a
// log below what was replayed, the derived state is rebuilt with the cutoffs. Listeners are not
// told of the difference: what they followed before the store closed already had the cutoffs
// applied (the changes of a new cutoff are recorded with its evidence, see recordEvidence).
func (s *Store) applyStoredCutoffs() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.RLock()
	cut := s.evidenceCutoffs()
	s.mu.RUnlock()
	shadow, err := s.rebuildFor(cut)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.swapCut(shadow, cut)
	s.mu.Unlock()
	return nil
}

// rebuildFor returns the derived state rebuilt with the cutoffs cut (see replayCut), or nil when
// the state applies the same entries of every log under cut as it does now. A cutoff may move
// either way: down when resolved evidence proves an earlier fork, up when resolved evidence
// replaces unresolved evidence (whose cutoff is 0). Caller holds wmu, so no append runs meanwhile.
func (s *Store) rebuildFor(cut map[string]uint64) (*Store, error) {
	s.mu.RLock()
	rebuild := false
	for _, m := range slices.Collect(maps.Keys(s.trees)) {
		size := s.treeOf(m).Size()
		applied, now := size, size
		if f, ok := s.cutoffs[m]; ok {
			applied = min(size, f)
		}
		if f, ok := cut[m]; ok {
			now = min(size, f)
		}
		if applied != now {
			rebuild = true
		}
	}
	s.mu.RUnlock()
	if !rebuild {
		return nil, nil
	}
	shadow, err := s.replayCut(cut)
	if err != nil {
		return nil, fmt.Errorf("rebuild the state with equivocation cutoffs %v: %w", cut, err)
	}
	return shadow, nil
}

// swapCut makes the state apply cut, swapping in shadow's derived state when it is not nil.
// Caller holds mu (exclusive) and wmu.
func (s *Store) swapCut(shadow *Store, cut map[string]uint64) {
	s.cutoffs = cut
	s.version++
	if shadow == nil {
		return
	}
	s.state, s.pdq, s.expiry, s.video = shadow.state, shadow.pdq, shadow.expiry, shadow.video
	s.state.OnChange(s.onChange)
	s.log.Warn("state rebuilt with equivocation cutoffs", "cutoffs", cut)
}

// replayCut replays the stored logs with the cutoffs into a private store's state and match
// indices, in one read transaction. The stored entries were verified (against their checkpoints
// and leaf hashes) when they were appended and when the store opened, so this is only the
// replay; heads and evidence are not reopened, as their keys may come from entries the cutoffs
// leave out (a member admitted with the vote of the forking member).
func (s *Store) replayCut(cut map[string]uint64) (*Store, error) {
	shadow := &Store{path: s.path, db: s.db, g: s.g, opts: s.opts, log: s.log, cutoffs: cut, video: newVideoIndex(), flight: s.flight}
	var err error
	if shadow.pdq, err = pdqindex.New(pdqindex.DefaultOptions()); err != nil {
		return nil, err
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		shadow.rtx = tx
		defer func() { shadow.rtx = nil }()
		st := consortium.NewState(s.g, shadow.readEntry)
		err := tx.Bucket(bucketLogs).ForEachBucket(func(name []byte) error {
			m := string(name)
			c := tx.Bucket(bucketLogs).Bucket(name).Cursor()
			i := uint64(0)
			for k, v := c.First(); k != nil && shadow.applyCount(m, i, 1) == 1; k, v = c.Next() {
				_, e, err := splitValue(i, v)
				if err != nil {
					return fmt.Errorf("log %q: %w", m, err)
				}
				if err := st.Apply(m, i, e); err != nil {
					return fmt.Errorf("replay log %q: %w", m, err)
				}
				i++
			}
			return nil
		})
		if err != nil {
			return err
		}
		shadow.state = st
		shadow.loadIndex()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return shadow, nil
}

// recordEvidence stores verified evidence when it supersedes the stored evidence against its
// member ([consortium.Evidence.Supersedes]), freezes the log, and applies the new cutoff. It
// reports whether the evidence was stored. When the cutoff changes what the state applies, the
// state is rebuilt, and the differences between the old and the new state ([consortium.Diff]) go
// to Options.OnChange and to the feed (as [FeedEvent]s with a Cutoff effect), in the same
// transaction as the evidence: a feed consumer that followed the old state learns of every
// listing the cutoff retracts or reinstates. Caller holds wmu.
func (s *Store) recordEvidence(ev *consortium.Evidence) (bool, error) {
	s.mu.RLock()
	have := s.evidence[ev.Member]
	evs := maps.Clone(s.evidence)
	seq := s.feedNext
	s.mu.RUnlock()
	if !ev.Supersedes(have) {
		return false, nil
	}
	evs[ev.Member] = ev
	cut := consortium.Cutoffs(slices.Collect(maps.Values(evs)))
	shadow, err := s.rebuildFor(cut)
	if err != nil {
		return false, err
	}
	var changes []consortium.Change
	var recs []feedRecord
	if shadow != nil {
		s.mu.RLock()
		changes = consortium.Diff(s.state, shadow.state)
		s.mu.RUnlock()
		for _, c := range changes {
			if e := cutoffEffect(c); e != 0 {
				recs = append(recs, feedRecord{seq: seq + uint64(len(recs)), member: c.Member, start: c.Index, count: 1, effect: e})
			}
		}
	}
	err = s.write(nil, func(tx *bolt.Tx) error {
		for _, r := range recs {
			k, v := r.encode()
			if err := tx.Bucket(bucketFeed).Put(k, v); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketEvidence).Put([]byte(ev.Member), ev.Marshal())
	})
	if err != nil {
		return false, err
	}
	s.mu.Lock()
	s.evidence[ev.Member] = ev
	s.swapCut(shadow, cut)
	if s.opts.OnChange != nil {
		for _, c := range changes {
			s.opts.OnChange(c)
		}
	}
	s.feedNext += uint64(len(recs))
	s.unlockAndWake(len(recs) > 0)
	s.log.Warn("equivocation", "member", ev.Member, "evidence", ev.String(), "cutoff", cut[ev.Member], "state_changes", len(changes))
	return true, nil
}

// cutoffEffect is the feed effect of a change a cutoff made, 0 for none (a roster change, which
// names no entry; the listings it changes have their own).
func cutoffEffect(c consortium.Change) CutoffEffect {
	switch c.Kind {
	case consortium.Unlisted:
		return CutoffUnlisted
	case consortium.Listed:
		return CutoffListed
	case consortium.OpinionChanged:
		if c.Stance == pb.Stance_STANCE_WITHDRAWN {
			return CutoffOpinionRemoved
		}
		return CutoffOpinionApplied
	}
	return 0
}

// AppendAgreed stores entries [start, start+len(entries)) of a forked log that the state applies
// but the store lacks: entries below the cutoff, which both forks share. It is how a node that
// had fallen behind before the log froze reaches the cutoff, and so the state every other node
// computes. The range must start at the stored size and end at or below the cutoff. It is
// verified like [Store.AppendRange] against cp, a checkpoint of the log that link (an RFC 6962
// consistency proof from the cutoff and the agreed root of the stored resolved evidence to cp)
// shows to extend the agreed tree; a range that ends at the cutoff is checked against the agreed
// root itself. The log's head does not change.
func (s *Store) AppendAgreed(cp *consortium.Checkpoint, link []consortium.Hash, start uint64, entries [][]byte, proof []consortium.Hash) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	m := cp.Member
	s.mu.RLock()
	ev := s.evidence[m]
	cutoff, cut := s.cutoffs[m]
	tree := s.treeOf(m)
	s.mu.RUnlock()
	agreed, ok := ev.AgreedSize()
	if !ok || !cut || agreed != cutoff {
		return fmt.Errorf("%w: no resolved evidence against %q", ErrForked, m)
	}
	if start != tree.Size() {
		return fmt.Errorf("%w: log %q is stored up to %d, range starts at %d", ErrGap, m, tree.Size(), start)
	}
	end := start + uint64(len(entries))
	if end > cutoff || len(entries) == 0 {
		return fmt.Errorf("%w: log %q entries [%d, %d) are not below its cutoff %d", ErrForked, m, start, end, cutoff)
	}
	w := logWrite{member: m, start: start, entries: entries, tree: tree}
	w.prepare()
	switch {
	case end == cutoff:
		if w.after.Root() != ev.Agreement.Root {
			return fmt.Errorf("%w: log %q entries [%d, %d): computed root differs from the agreed root", consortium.ErrRootMismatch, m, start, end)
		}
	case cp.Size < cutoff:
		return fmt.Errorf("%w: log %q: checkpoint of size %d is below the cutoff %d", consortium.ErrRootMismatch, m, cp.Size, cutoff)
	default:
		if err := consortium.VerifyConsistency(link, cutoff, ev.Agreement.Root, cp.Size, cp.Root); err != nil {
			return fmt.Errorf("%w: log %q: checkpoint of size %d does not extend the agreed tree: %w", consortium.ErrRootMismatch, m, cp.Size, err)
		}
		if err := consortium.VerifyConsistency(proof, end, w.after.Root(), cp.Size, cp.Root); err != nil {
			return fmt.Errorf("%w: log %q entries [%d, %d) are not a prefix of its checkpoint of size %d: %w", consortium.ErrRootMismatch, m, start, end, cp.Size, err)
		}
	}
	return s.writeApply([]logWrite{w}, nil)
}

// frozenErr returns ErrForked when member's log is frozen by evidence against its author, nil
// otherwise. A node whose own member equivocated (an operator who restored an old copy of the
// store and wrote on, or a key used on two nodes) meets it: every peer that holds the evidence
// accepts nothing more of that log, so the node refuses to append to it or sign it rather than
// accept entries that take effect nowhere. Caller holds mu (shared) or wmu.
func (s *Store) frozenErr(member string) error {
	ev := s.evidence[member]
	if ev == nil {
		return nil
	}
	if f, ok := s.cutoffs[member]; ok && ev.Resolved() {
		return fmt.Errorf("%w: %s signed two incompatible histories (%s); every node applies its log only up to entry %d and accepts nothing more of it, so nothing can be appended or signed", ErrForked, member, ev, f)
	}
	return fmt.Errorf("%w: %s signed two incompatible histories (%s); the evidence does not say where they part, so every node applies none of its log until it does, and accepts nothing more of it: nothing can be appended or signed", ErrForked, member, ev)
}
