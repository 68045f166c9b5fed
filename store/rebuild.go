package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/store/pdqindex"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"
)

// rebuild replays every stored log into a fresh state, checking each entry's stored leaf hash,
// restores each log's tree from its stored hashes and checks it against the stored checkpoint,
// loads evidence and the feed position, and builds the match indices.
func (s *Store) rebuild() error {
	start := time.Now()
	return s.db.View(func(tx *bolt.Tx) error {
		s.rtx = tx
		defer func() { s.rtx = nil }()
		st := consortium.NewState(s.g, s.readEntry)
		members, total, err := s.storedLogs(tx)
		if err != nil {
			return err
		}
		st.Grow(total)
		sizes, err := s.replayLogs(tx, st, members)
		if err != nil {
			return err
		}
		if err := s.restoreTrees(tx, members, sizes); err != nil {
			return err
		}
		if err := s.loadHeads(tx, st); err != nil {
			return err
		}
		if err := s.loadEvidence(tx, st); err != nil {
			return err
		}
		if err := s.loadFeedPosition(tx); err != nil {
			return err
		}
		s.state = st
		replayed := time.Since(start)
		s.loadIndex()
		st.OnChange(s.onChange)
		s.log.Info("store opened", "path", s.path, "entries", total, "replay", replayed.Round(time.Millisecond), "index", (time.Since(start) - replayed).Round(time.Millisecond))
		return nil
	})
}

// storedLogs returns the members whose logs are stored and the number of entries they hold, read
// from each log's last key.
func (s *Store) storedLogs(tx *bolt.Tx) (members []string, total int, err error) {
	logs := tx.Bucket(bucketLogs)
	// Every stored entry takes at least its leaf hash: a log that claims more entries than the
	// file can hold has a damaged key (and must not size the state's tables).
	maxEntries := uint64(s.size/consortium.HashSize) + 1
	err = logs.ForEachBucket(func(name []byte) error {
		members = append(members, string(name))
		if k, _ := logs.Bucket(name).Cursor().Last(); k != nil {
			if len(k) != 8 || binary.BigEndian.Uint64(k) >= maxEntries {
				return fmt.Errorf("open store %s: %w: log %q ends with key %x, beyond what the file can hold", s.path, ErrDamaged, name, k)
			}
			total += int(binary.BigEndian.Uint64(k)) + 1
		}
		return nil
	})
	return members, total, err
}

// replayBatch is a run of consecutive entries of one log on its way through [Store.replayLogs].
type replayBatch struct {
	member  string
	first   uint64
	entries [][]byte
	decoded []consortium.Decoded
	done    chan error
}

// replayBatchLen is the number of entries in a full [replayBatch].
const replayBatchLen = 4096

// replayLogs applies every entry of members' logs to st, in log order, and returns the size of
// each log.
//
// A second goroutine checks each entry against its stored leaf hash and decodes it, while a third
// applies the decoded entries in order and this one reads the database: the two halves take about
// as long.
func (s *Store) replayLogs(tx *bolt.Tx, st *consortium.State, members []string) (map[string]uint64, error) {
	sizes := map[string]uint64{}
	work := make(chan *replayBatch, 8)
	ready := make(chan *replayBatch, 8)
	// Batches go back to the reader once applied: allocating (and clearing) fresh ones costs
	// about a tenth of the open time at 10M entries.
	free := make(chan *replayBatch, 24)
	newBatch := func(member string, first uint64) *replayBatch {
		select {
		case b := <-free:
			b.member, b.first, b.entries = member, first, b.entries[:0]
			return b
		default:
			return &replayBatch{member: member, first: first, entries: make([][]byte, 0, replayBatchLen), decoded: make([]consortium.Decoded, replayBatchLen)}
		}
	}
	// Both goroutines read the database's memory map, so the transaction (and the database)
	// must outlive them: the reading loop below waits for them before it returns, however it
	// returns, and a panic or memory fault on damaged pages becomes an error in the goroutine
	// that met it. After the first error the others skip their work and only drain.
	var wg sync.WaitGroup
	var abort atomic.Bool
	wg.Add(2)
	go func() {
		defer wg.Done()
		debug.SetPanicOnFault(true)
		for b := range work {
			if abort.Load() {
				b.done <- errAborted
				continue
			}
			b.done <- s.checkBatch(b.member, b.first, b.entries, &b.decoded)
		}
	}()
	verr := make(chan error, 1)
	go func() {
		defer wg.Done()
		debug.SetPanicOnFault(true)
		// Apply batches in the order they were read.
		var first error
		for b := range ready {
			if err := <-b.done; err != nil && first == nil {
				first = err
			}
			if first == nil {
				first = s.applyBatch(st, b.member, b.first, b.entries, b.decoded)
			}
			if first != nil {
				abort.Store(true)
				continue
			}
			select {
			case free <- b:
			default:
			}
		}
		verr <- first
	}()
	applyErr := func() (err error) {
		defer wg.Wait()
		defer close(ready)
		defer close(work)
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("open store %s: %w: %v", s.path, ErrDamaged, r)
			}
			if err != nil {
				abort.Store(true)
			}
		}()
		send := func(b *replayBatch) {
			b.done = make(chan error, 1)
			work <- b
			ready <- b
		}
		return s.readLogs(tx.Bucket(bucketLogs), members, sizes, newBatch, send)
	}()
	// The reading loop's own error comes first: the others may only have been aborted by it.
	if err := <-verr; applyErr != nil {
		return nil, applyErr
	} else if err != nil {
		return nil, err
	}
	return sizes, nil
}

// readLogs reads members' logs in key order, in batches from newBatch handed to send, and records
// each log's size in sizes. A gap or a malformed key is an error wrapping [ErrDamaged].
func (s *Store) readLogs(logs *bolt.Bucket, members []string, sizes map[string]uint64, newBatch func(string, uint64) *replayBatch, send func(*replayBatch)) error {
	for _, m := range members {
		b := logs.Bucket([]byte(m))
		c := b.Cursor()
		next := uint64(0)
		cur := newBatch(m, 0)
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(k) != 8 || binary.BigEndian.Uint64(k) != next {
				return fmt.Errorf("open store %s: %w: log %q has key %x where entry %d belongs", s.path, ErrDamaged, m, k, next)
			}
			cur.entries = append(cur.entries, v)
			if len(cur.entries) == replayBatchLen {
				send(cur)
				cur = newBatch(m, next+1)
			}
			next++
		}
		if len(cur.entries) > 0 {
			send(cur)
		}
		sizes[m] = next
	}
	return nil
}

// restoreTrees restores each member's tree from its stored hashes, at the size replayed.
func (s *Store) restoreTrees(tx *bolt.Tx, members []string, sizes map[string]uint64) error {
	for _, m := range members {
		next := sizes[m]
		tree, err := restoreTree(tx, m, next)
		if err != nil {
			return fmt.Errorf("open store %s: log %q: %w", s.path, m, err)
		}
		s.trees[m] = tree
	}
	return nil
}

// loadHeads loads the stored checkpoints: each must verify and agree with the stored tree at its
// size.
func (s *Store) loadHeads(tx *bolt.Tx, st *consortium.State) error {
	heads := tx.Bucket(bucketHeads)
	return heads.ForEach(func(k, v []byte) error {
		cp, err := consortium.OpenCheckpoint(s.g.ID, st, v)
		if err != nil {
			return fmt.Errorf("open store %s: %w: checkpoint of %q: %v", s.path, ErrDamaged, k, err)
		}
		tree := s.trees[cp.Member]
		if tree == nil || cp.Size > tree.Size() {
			return fmt.Errorf("open store %s: %w: checkpoint of %q is beyond the stored log", s.path, ErrDamaged, cp.Member)
		}
		root, err := consortium.TreeHash(hashReader(tx, cp.Member), cp.Size)
		if err != nil {
			return fmt.Errorf("open store %s: log %q: %w", s.path, cp.Member, err)
		}
		if root != cp.Root {
			return fmt.Errorf("open store %s: %w: log %q does not match its checkpoint of size %d", s.path, ErrDamaged, cp.Member, cp.Size)
		}
		s.heads[cp.Member] = cp
		return nil
	})
}

// loadEvidence loads the stored equivocation evidence, each verified against st's roster.
func (s *Store) loadEvidence(tx *bolt.Tx, st *consortium.State) error {
	return tx.Bucket(bucketEvidence).ForEach(func(k, v []byte) error {
		ev, err := consortium.ParseEvidence(s.g.ID, st, v)
		if err != nil {
			return fmt.Errorf("open store %s: %w: evidence against %q: %v", s.path, ErrDamaged, k, err)
		}
		s.evidence[ev.Member] = ev
		return nil
	})
}

// loadFeedPosition sets the sequence number of the next feed event from the last stored record.
func (s *Store) loadFeedPosition(tx *bolt.Tx) error {
	if k, v := tx.Bucket(bucketFeed).Cursor().Last(); k != nil {
		rec, err := decodeFeedRecord(k, v)
		if err != nil {
			return fmt.Errorf("open store %s: %w", s.path, err)
		}
		s.feedNext = rec.seq + rec.count
	}
	return nil
}

// errAborted is what a batch gets once another part of the rebuild has failed.
var errAborted = errors.New("rebuild aborted")

// checkBatch checks entries [first, first+len(entries)) of member's log, read from the database
// while the store opens, against their stored leaf hashes, and decodes them: entries[i] becomes the
// entry's bytes (without its stored hashes) and (*decoded)[i] its decoding. A panic or memory fault
// on damaged pages is returned as an error wrapping [ErrDamaged].
func (s *Store) checkBatch(member string, first uint64, entries [][]byte, decoded *[]consortium.Decoded) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("open store %s: %w: log %q entries from %d: %v", s.path, ErrDamaged, member, first, r)
		}
	}()
	*decoded = (*decoded)[:len(entries)]
	for i, v := range entries {
		idx := first + uint64(i)
		hs, entry, err := splitValue(idx, v)
		if err != nil {
			return fmt.Errorf("open store %s: log %q: %w", s.path, member, err)
		}
		if leaf := consortium.LeafHash(entry); !bytes.Equal(leaf[:], hs[:consortium.HashSize]) {
			return fmt.Errorf("open store %s: %w: log %q entry %d does not match its stored hash", s.path, ErrDamaged, member, idx)
		}
		entries[i] = entry
		(*decoded)[i] = consortium.Decode(entry)
	}
	return nil
}

// applyBatch applies checked entries of member's log to st, in order; a panic (a revoke by index
// reads an earlier entry from the database) is returned as an error wrapping [ErrDamaged].
func (s *Store) applyBatch(st *consortium.State, member string, first uint64, entries [][]byte, decoded []consortium.Decoded) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("open store %s: %w: replay log %q from %d: %v", s.path, ErrDamaged, member, first, r)
		}
	}()
	for i, e := range entries {
		if err := st.ApplyDecoded(member, first+uint64(i), e, decoded[i]); err != nil {
			return fmt.Errorf("open store %s: replay log %q: %w", s.path, member, err)
		}
	}
	return nil
}

// loadIndex fills the PDQ index and the expiry heap from the state in one pass.
func (s *Store) loadIndex() {
	now := s.opts.Now().UnixMilli()
	s.pdq.BulkLoad(func(yield func(uint32, pdqindex.Hash) bool) {
		s.state.ForEachListed(func(id uint32, sig consortium.Signal) bool {
			for _, l := range s.state.ListedByID(id) {
				if l.Expires > 0 && l.Expires > now {
					s.expiry.push(expiryItem{at: l.Expires, id: id})
				}
			}
			if sig.Type == consortium.PDQ {
				return yield(id, pdqindex.Hash(sig.Value))
			}
			return true
		})
	})
	s.loadVideos()
}

// readEntry is the state's entry reader, for revokes by index: within the rebuild's transaction
// while the store opens, in a read transaction of its own afterwards.
func (s *Store) readEntry(member string, index uint64) ([]byte, error) {
	if e, ok := s.flight.entry(member, index); ok {
		return e, nil
	}
	if s.rtx != nil {
		return readEntry(s.rtx, member, index)
	}
	return s.Entry(member, index)
}

// restoreTree rebuilds the compact tree of a log of the given size from its stored hashes.
func restoreTree(tx *bolt.Tx, member string, size uint64) (*consortium.Tree, error) {
	var idx []int64
	var lo uint64
	for k := 63; k >= 0; k-- {
		if size&(1<<k) == 0 {
			continue
		}
		// The perfect subtree [lo, lo+2^k) is stored hash (level k, index lo>>k).
		idx = append(idx, tlog.StoredHashIndex(k, int64(lo>>k)))
		lo += 1 << k
	}
	hs, err := hashReader(tx, member).ReadHashes(idx)
	if err != nil {
		return nil, err
	}
	return consortium.TreeFromRange(size, hs)
}

// hashReader reads a log's tlog stored hashes from the values of its entries.
func hashReader(tx *bolt.Tx, member string) tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		b := logBucket(tx, member)
		if b == nil {
			return nil, fmt.Errorf("no log of %q", member)
		}
		out := make([]tlog.Hash, len(indexes))
		for i, x := range indexes {
			level, n := tlog.SplitStoredHashIndex(x)
			// The hash at (level, n) is stored with the record that completes it.
			rec := uint64(n+1)<<level - 1
			v := b.Get(logKey(rec))
			if v == nil {
				return nil, fmt.Errorf("%w: log %q has no entry %d for stored hash %d", ErrDamaged, member, rec, x)
			}
			if storedCount(rec) <= level || len(v) < (level+1)*consortium.HashSize {
				return nil, fmt.Errorf("%w: log %q entry %d lacks stored hash level %d", ErrDamaged, member, rec, level)
			}
			copy(out[i][:], v[level*consortium.HashSize:])
		}
		return out, nil
	})
}

func logBucket(tx *bolt.Tx, member string) *bolt.Bucket {
	return tx.Bucket(bucketLogs).Bucket([]byte(member))
}

// readEntry returns a copy of entry index of member's log.
func readEntry(tx *bolt.Tx, member string, index uint64) ([]byte, error) {
	b := logBucket(tx, member)
	if b == nil {
		return nil, fmt.Errorf("no log of %q", member)
	}
	v := b.Get(logKey(index))
	if v == nil {
		return nil, fmt.Errorf("log %q has no entry %d", member, index)
	}
	_, e, err := splitValue(index, v)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), e...), nil
}

// inFlight are the writes being committed while they are applied (see writeApply). Set and
// read under mu (exclusive) by the committing writer, which also holds wmu.
type inFlight struct {
	writes []logWrite
}

// entry returns entry index of member's log if a write in flight holds it.
func (f *inFlight) entry(member string, index uint64) ([]byte, bool) {
	if f == nil {
		return nil, false
	}
	for _, w := range f.writes {
		if w.member == member && index >= w.start && index-w.start < uint64(len(w.entries)) {
			return w.entries[index-w.start], true
		}
	}
	return nil, false
}

// reloadLocked rebuilds the derived state from the file, as Open does (the replay, the trees,
// heads, evidence, feed position, the cutoffs, the match indices), and swaps it in: after a
// commit that failed once its writes were applied in memory. Heads whose cosignatures were merged
// in memory but not written yet keep them: lazy are those heads as they were before the writes
// were applied (a write may have made a newer checkpoint the head). Caller holds wmu and mu
// (exclusive); readers wait.
func (s *Store) reloadLocked(lazy map[string]*consortium.Checkpoint) error {
	fresh := &Store{
		path: s.path, db: s.db, g: s.g, opts: s.opts, log: s.log, flight: s.flight,
		trees:    map[string]*consortium.Tree{},
		heads:    map[string]*consortium.Checkpoint{},
		evidence: map[string]*consortium.Evidence{},
		video:    newVideoIndex(),
	}
	fi, err := os.Stat(s.path)
	if err != nil {
		return err
	}
	fresh.size = fi.Size()
	if fresh.pdq, err = pdqindex.New(pdqindex.DefaultOptions()); err != nil {
		return err
	}
	if err := fresh.rebuild(); err != nil {
		return err
	}
	// The stored evidence's cutoffs, as Open applies them (fresh's own locks, not s's).
	if err := fresh.applyStoredCutoffs(); err != nil {
		return err
	}
	for m, old := range lazy {
		if now := fresh.heads[m]; old != nil && now != nil && old.Size == now.Size && old.Root == now.Root {
			fresh.heads[m] = old
		}
	}
	s.state, s.trees, s.heads, s.evidence = fresh.state, fresh.trees, fresh.heads, fresh.evidence
	s.pdq, s.video, s.expiry, s.cutoffs, s.feedNext = fresh.pdq, fresh.video, fresh.expiry, fresh.cutoffs, fresh.feedNext
	s.state.OnChange(s.onChange)
	s.version++
	s.log.Warn("derived state reloaded from the file after a failed commit", "path", s.path)
	return nil
}
