package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/bits"
	"runtime"
	"slices"
	"sync"

	"github.com/hashfed/hashfed/consortium"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"github.com/hashfed/hashfed/store/pdqindex"
	bolt "go.etcd.io/bbolt"
)

// Appended is the outcome of one submitted entry: its index in the author's log, or why it was
// refused.
type Appended struct {
	Index uint64
	// Entry is the entry's bytes as appended.
	Entry []byte
	Err   error
	// Unchanged is set for an add that was not appended because the member's listing in force
	// is the same (signal, labels, content id, expiry, note and quality); Index and Entry are
	// that listing's add.
	Unchanged bool
	// Updated is set for an appended add that replaces the member's listing in force.
	Updated bool
}

type submission struct {
	member  string
	entries []*pb.Entry
	out     []Appended
	err     error
	done    chan struct{}
}

// Submit appends entries to member's own log: the node's platform submitting its adds, revokes,
// opinions and votes. Each entry whose time is zero is stamped with the current time (never before
// the log's last entry). Entries are checked against the state ([consortium.State.CheckBatch]) and
// the quality gate; refused ones are reported and not appended. An add that re-lists a signal
// exactly as the member's listing in force does is not appended either: it is reported
// [Appended.Unchanged], with that listing's index, so re-sending a whole list appends only what
// changed. Submissions from concurrent callers
// are committed together (group commit): one bbolt transaction, fsynced before Submit returns and
// before the entries' effect is visible to matching. The error is for the whole submission (a
// closed store, a failed write); nothing of it was appended then.
func (s *Store) Submit(ctx context.Context, member string, entries []*pb.Entry) ([]Appended, error) {
	sub := &submission{member: member, entries: entries, done: make(chan struct{})}
	if q := s.queued.Add(int64(len(entries))); q > int64(s.opts.MaxQueued) && q > int64(len(entries)) {
		s.queued.Add(-int64(len(entries)))
		return nil, fmt.Errorf("%w: %d entries are waiting to be committed (limit %d)", ErrBusy, q-int64(len(entries)), s.opts.MaxQueued)
	}
	defer s.queued.Add(-int64(len(entries)))
	select {
	case s.submits <- sub:
	case <-s.done:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case <-sub.done:
		return sub.out, sub.err
	case <-ctx.Done():
		// The batch may still commit; the caller learns of it from the log or the feed.
		return nil, ctx.Err()
	}
}

// committer takes submissions as they come, groups what is queued into one batch, and commits it.
func (s *Store) committer() {
	defer s.wg.Done()
	for {
		var batch []*submission
		select {
		case sub := <-s.submits:
			batch = append(batch, sub)
		case <-s.done:
			s.drain()
			return
		}
		n := len(batch[0].entries)
	more:
		for n < s.opts.MaxBatch {
			select {
			case sub := <-s.submits:
				batch = append(batch, sub)
				n += len(sub.entries)
			default:
				break more
			}
		}
		s.commitBatch(batch)
	}
}

// drain refuses submissions still queued at close.
func (s *Store) drain() {
	for {
		select {
		case sub := <-s.submits:
			sub.err = ErrClosed
			close(sub.done)
		default:
			return
		}
	}
}

func (s *Store) commitBatch(batch []*submission) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	clear(s.batchAdds)
	type pending struct {
		sub *submission
		i   int
		lk  *addLookup
	}
	byMember := map[string][]int{} // indices into ps
	var order []string
	now := s.opts.Now().UnixMilli()
	s.mu.RLock()
	rl := newRelister(s)
	// Stamp and gate every entry in order, then encode, decode and leaf-hash them on every CPU:
	// that is most of the work before the check, and needs no state. Each entry is decoded once
	// here; the check and the apply use that.
	total, opinions := 0, false
	for _, sub := range batch {
		total += len(sub.entries)
		for _, e := range sub.entries {
			if _, ok := e.Op.(*pb.Entry_Opinion); ok {
				opinions = true
			}
		}
	}
	rl.hint = total
	// A pipeline over chunks of entries: the relister's lookups in the state run on every CPU
	// ahead of the checks, which go in order on this goroutine (stamping each entry), and each
	// checked chunk is encoded, decoded and leaf-hashed on every CPU while the next is checked.
	// Each entry is decoded once, there; the check and the apply use that.
	looks := make([][]addLookup, len(batch))
	ps := make([]pending, 0, total) // never grows: workers read its elements meanwhile
	errs := make([]error, total)
	raws := make([][]byte, total)
	decs := make([]consortium.Decoded, total)
	leaves := make([]consortium.Hash, total)
	work := newPool(total / frontChunk)
	looked := make([][]chan struct{}, len(batch))
	for b, sub := range batch {
		looks[b] = make([]addLookup, len(sub.entries))
		for lo := 0; lo < len(sub.entries); lo += frontChunk {
			hi := min(lo+frontChunk, len(sub.entries))
			done := make(chan struct{})
			looked[b] = append(looked[b], done)
			work.run(func() {
				for i := lo; i < hi; i++ {
					looks[b][i] = rl.lookup(sub.member, sub.entries[i])
				}
				close(done)
			})
		}
	}
	encoded := 0
	encode := func(hi int) {
		lo := encoded
		encoded = hi
		chunk := ps[lo:hi]
		work.run(func() {
			for k := lo; k < hi; k++ {
				p := &chunk[k-lo]
				raws[k], decs[k], errs[k] = consortium.EncodeEntry(p.sub.entries[p.i])
				if errs[k] == nil {
					leaves[k] = consortium.LeafHash(raws[k])
				}
			}
		})
	}
	// The latest time of each author's entries taken so far in this group commit: an entry stamped
	// here follows them too, not only the stored log (a client-stamped entry a little ahead of this
	// clock, then one to stamp, in one batch or in two grouped ones).
	latest := map[string]int64{}
	for b, sub := range batch {
		sub.out = make([]Appended, len(sub.entries))
		if _, ok := byMember[sub.member]; !ok {
			order = append(order, sub.member)
			byMember[sub.member] = nil
		}
		frozen := s.frozenErr(sub.member)
		for i, e := range sub.entries {
			if i%frontChunk == 0 {
				<-looked[b][i/frontChunk]
			}
			if frozen != nil {
				sub.out[i].Err = frozen
				continue
			}
			same, unchanged := rl.check(sub.member, e, now, &looks[b][i])
			if unchanged {
				sub.out[i] = same
				continue
			}
			if err := s.stamp(sub.member, e, now, latest[sub.member], &looks[b][i], opinions); err != nil {
				sub.out[i].Err = err
				continue
			}
			latest[sub.member] = max(latest[sub.member], e.TimeUnixMs)
			sub.out[i].Updated = same.Updated
			ps = append(ps, pending{sub: sub, i: i, lk: &looks[b][i]})
			if len(ps)-encoded == frontChunk {
				encode(len(ps))
			}
		}
	}
	rl.close()
	if encoded < len(ps) {
		encode(len(ps))
	}
	work.wait()
	errs, raws, decs, leaves = errs[:len(ps)], raws[:len(ps)], decs[:len(ps)], leaves[:len(ps)]
	for k, p := range ps {
		if errs[k] != nil {
			p.sub.out[p.i].Err = errs[k]
			continue
		}
		byMember[p.sub.member] = append(byMember[p.sub.member], k)
	}
	// Check each author's entries in order against the state and each other.
	var writes []logWrite
	for _, m := range order {
		ks := byMember[m]
		if len(ks) == 0 {
			continue
		}
		mraws, mdecs, mleaves := raws, decs, leaves
		if len(ks) != len(ps) { // not the whole batch: gather this author's
			mraws = make([][]byte, len(ks))
			mdecs = make([]consortium.Decoded, len(ks))
			mleaves = make([]consortium.Hash, len(ks))
			for i, k := range ks {
				mraws[i], mdecs[i], mleaves[i] = raws[k], decs[k], leaves[k]
			}
		}
		errs := s.state.CheckBatchDecoded(m, mraws, mdecs)
		w := logWrite{member: m, start: s.state.Size(m), tree: s.treeOf(m).Clone()}
		// The accepted entries, compacted in place.
		w.looks = make([]*addLookup, 0, len(ks))
		n := 0
		for i, k := range ks {
			p := ps[k]
			if errs[i] != nil {
				p.sub.out[p.i].Err = errs[i]
				continue
			}
			p.sub.out[p.i] = Appended{Index: w.start + uint64(n), Entry: mraws[i], Updated: p.sub.out[p.i].Updated}
			mraws[n], mdecs[n], mleaves[n] = mraws[i], mdecs[i], mleaves[i]
			w.looks = append(w.looks, p.lk)
			n++
		}
		if n > 0 {
			w.entries, w.decs, w.leaves = mraws[:n:n], mdecs[:n:n], mleaves[:n:n]
			writes = append(writes, w)
		}
	}
	index := s.pdq
	s.mu.RUnlock()
	// The new PDQ signals go into the match index while the batch is written and fsynced: a search
	// may find their ids meanwhile, but it resolves every id through the state, which has no signal
	// of those ids until the batch is applied after the commit (see preIndexed). Finding them
	// (predictPDQ) runs beside the write too: the state does not change while wmu is held.
	var pre *preIndexed
	predicted := make(chan struct{})
	go func() {
		s.mu.RLock()
		p := s.predictPDQ(writes)
		s.mu.RUnlock()
		if p != nil {
			p.done = make(chan struct{})
		}
		pre = p
		close(predicted)
		if p != nil {
			index.AddBatch(p.ids, p.hs)
			close(p.done)
		}
	}()
	err := s.writeApply(writes, func() *preIndexed { <-predicted; return pre })
	if err != nil {
		// A write that failed before its commit leaves the early inserts in the index; one that
		// failed in its commit reloaded the derived state from the file, with a new index.
		<-predicted
		if pre != nil && s.pdq == index {
			<-pre.done
			for _, id := range pre.ids {
				index.Remove(id)
			}
		}
		for _, sub := range batch {
			sub.out, sub.err = nil, err
		}
	}
	for _, sub := range batch {
		close(sub.done)
	}
}

// preIndexed are the PDQ signals of a batch that are new to the state, with the ids the state will
// give them when the batch is applied ([consortium.State.NextSignalID]), put in the match index
// while the batch is written. Until the state has them, a search that finds these ids drops them
// ([consortium.State.SignalByID] knows no such id). As the batch is applied, each Listed change of
// one of them is checked against the prediction (st); the index entries no Listed change
// confirmed are taken out before the write's own index adds go in, so the index ends as it would
// have without the early inserts.
type preIndexed struct {
	ids  []uint32 // ascending
	hs   []pdqindex.Hash
	st   []preState
	done chan struct{} // closed when the inserts are in the index
}

type preState uint8

const (
	preInserted  preState = iota // in the index, not yet confirmed by a Listed change
	preConfirmed                 // in the index, listed
	preRemoved                   // taken out of the index again (unlisted in the same batch)
)

// preIndexMin is the fewest new PDQ signals for which a batch indexes them while it is written.
const preIndexMin = 64

// predictPDQ returns the new PDQ signals of writes and their ids to be, or nil when there are
// fewer than preIndexMin. Signal ids are given to valid adds in the order applied, so this walks
// the entries that applyLocked will apply, in its order. Caller holds mu and wmu; it may run while
// writes are written.
func (s *Store) predictPDQ(writes []logWrite) *preIndexed {
	// The adds in apply order. Only the fields the write does not set are read: it runs meanwhile.
	total := 0
	for i := range writes {
		total += len(writes[i].decs)
	}
	adds := make([]consortium.Signal, 0, total)
	// known[i] is whether adds[i] has an id: from the relister's lookup when it looked that signal
	// up (under this same hold of wmu), else looked up below (unsure).
	known := make([]bool, 0, total)
	var unsure []int
	for i := range writes {
		w := &writes[i]
		if w.decs == nil {
			return nil
		}
		for j, d := range w.decs[:s.applyCount(w.member, w.start, len(w.entries))] {
			sig, ok := d.Added()
			if !ok {
				continue
			}
			if w.looks != nil && w.looks[j].sigOK && w.looks[j].sig == sig {
				known = append(known, w.looks[j].known)
			} else {
				known = append(known, false)
				unsure = append(unsure, len(adds))
			}
			adds = append(adds, sig)
		}
	}
	if len(adds) < preIndexMin {
		return nil
	}
	for _, i := range unsure {
		_, known[i] = s.state.SignalID(adds[i])
	}
	next := s.state.NextSignalID()
	var p preIndexed
	seen := newSigSet(len(adds))
	for i, sig := range adds {
		if known[i] || !seen.add(adds, int32(i)) {
			continue
		}
		if sig.Type == consortium.PDQ {
			p.ids = append(p.ids, next)
			p.hs = append(p.hs, pdqindex.Hash(sig.Value))
		}
		next++
	}
	if len(p.ids) < preIndexMin {
		return nil
	}
	p.st = make([]preState, len(p.ids))
	return &p
}

// sigSet is a set of signals, each given as its position in a slice, for finding the first
// appearances of signals in a batch without a map keyed by whole signals.
type sigSet struct {
	slots []int32 // position+1 of a signal, 0 for an empty slot
	shift uint
}

func newSigSet(n int) sigSet {
	size := 16
	for size < 2*n {
		size <<= 1
	}
	return sigSet{slots: make([]int32, size), shift: uint(64 - bits.TrailingZeros(uint(size)))}
}

// add adds sigs[i] and reports whether it was new.
func (t *sigSet) add(sigs []consortium.Signal, i int32) bool {
	sig := &sigs[i]
	h := (binary.LittleEndian.Uint64(sig.Value[:8]) ^ binary.LittleEndian.Uint64(sig.Value[8:16]) ^ uint64(sig.Type)) * 0x9e3779b97f4a7c15
	mask := len(t.slots) - 1
	for k := int(h >> t.shift); ; k = (k + 1) & mask {
		switch j := t.slots[k]; {
		case j == 0:
			t.slots[k] = i + 1
			return true
		case sigs[j-1] == *sig:
			return false
		}
	}
}

// listed reports whether id, just listed with hash h, is in the index already (inserted early and
// as predicted), and notes it confirmed.
func (p *preIndexed) listed(id uint32, h pdqindex.Hash) bool {
	i, ok := slices.BinarySearch(p.ids, id)
	if !ok || p.st[i] == preRemoved || p.hs[i] != h {
		return false
	}
	p.st[i] = preConfirmed
	return true
}

// removed notes that id was taken out of the index.
func (p *preIndexed) removed(id uint32) {
	if i, ok := slices.BinarySearch(p.ids, id); ok {
		p.st[i] = preRemoved
	}
}

// dropUnconfirmed waits for the early inserts to be in the index (the state was applied
// meanwhile), then takes out of index those that no Listed change confirmed (an add whose author
// may not add, or a prediction that missed, which the Listed change then added on the ordinary
// path with its true hash).
func (p *preIndexed) dropUnconfirmed(index *pdqindex.Index) {
	<-p.done
	for i, st := range p.st {
		if st == preInserted {
			index.Remove(p.ids[i])
		}
	}
}

// stamp stamps an entry's time, checks the quality gate and that an opinion is about a listed
// signal; commitBatch then encodes it. lk is the relister's lookup of e; noteAdds says whether to
// note an add's signal for the opinions after it in the batch (a batch with no opinion need not).
// An entry to stamp gets now, or the time of the log's last entry or of the latest entry taken
// before it in the batch (after) when later. Caller holds mu.
func (s *Store) stamp(member string, e *pb.Entry, now, after int64, lk *addLookup, noteAdds bool) error {
	if e.TimeUnixMs == 0 {
		e.TimeUnixMs = max(now, after, s.lastTime(member))
	}
	if a := e.GetAdd(); a != nil && a.Quality != nil && a.GetSignal().GetType() == "pdq" && int(*a.Quality) < s.opts.QualityGate {
		return fmt.Errorf("%w: pdq quality %d is below the quality gate %d (too little detail to match reliably)", ErrLowQuality, *a.Quality, s.opts.QualityGate)
	}
	if err := s.checkOpinionTarget(e.GetOpinion(), now); err != nil {
		return err
	}
	if noteAdds && lk.sigOK {
		if s.batchAdds == nil {
			s.batchAdds = map[consortium.Signal]bool{}
		}
		s.batchAdds[lk.sig] = true
	}
	return nil
}

// frontChunk is how many entries commitBatch looks up, checks or encodes per task.
const frontChunk = 512

// pool runs tasks on one goroutine per CPU, in the order given.
type pool struct {
	tasks chan func()
	wg    sync.WaitGroup
}

// newPool starts a pool with room for about n tasks queued.
func newPool(n int) *pool {
	p := &pool{tasks: make(chan func(), n+8)}
	for range runtime.GOMAXPROCS(0) {
		p.wg.Go(func() {
			for f := range p.tasks {
				f()
			}
		})
	}
	return p
}

// run queues f.
func (p *pool) run(f func()) { p.tasks <- f }

// wait returns once every task queued has run; no more may be queued.
func (p *pool) wait() {
	close(p.tasks)
	p.wg.Wait()
}

// parallelMin is the fewest items inParallel splits between goroutines.
const parallelMin = 256

// inParallel calls f on consecutive ranges covering [0, n), one per CPU when n is large enough to be
// worth it, and returns when every call has.
func inParallel(n int, f func(lo, hi int)) {
	workers := min(runtime.GOMAXPROCS(0), n/parallelMin)
	if workers <= 1 {
		f(0, n)
		return
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { f(n*w/workers, n*(w+1)/workers) })
	}
	wg.Wait()
}

// lastTime returns the time of member's last applied entry (0 for an empty log). Caller holds mu.
func (s *Store) lastTime(member string) int64 {
	t, _ := s.state.LastTime(member)
	return t
}

func (s *Store) treeOf(member string) *consortium.Tree {
	if t := s.trees[member]; t != nil {
		return t
	}
	return consortium.NewTree()
}

// logWrite is entries to append to one log, from start, with the log's tree before them.
type logWrite struct {
	member  string
	start   uint64
	entries [][]byte
	tree    *consortium.Tree // before
	head    *consortium.Checkpoint
	// decs and leaves, when set, are the entries decoded ([consortium.Decode]) and their leaf
	// hashes, computed by whoever made the entries so that they are not computed again.
	decs   []consortium.Decoded
	leaves []consortium.Hash
	// looks, when set, are the relister's lookups of the entries (commitBatch).
	looks []*addLookup
	// Set by prepare: the tree after the entries, and each entry's stored value (its tlog stored
	// hashes, then its bytes).
	after  *consortium.Tree
	values [][]byte
}

// prepare hashes the entries once: the tree after them and the values to store. The values share
// one buffer (bbolt keeps references to them until the transaction ends).
func (w *logWrite) prepare() { w.prepareNotify(nil) }

// prepareChunk is how many values prepareNotify makes before it tells the writer.
const prepareChunk = 512

// prepareNotify is prepare that sends on ready the number of values made so far after every
// prepareChunk of them and at the end (when ready is not nil), so that they can be stored while
// the rest are hashed.
func (w *logWrite) prepareNotify(ready chan<- int) {
	t := w.tree.Clone()
	size := 0
	for j, e := range w.entries {
		size += storedCount(w.start+uint64(j))*consortium.HashSize + len(e)
	}
	buf := make([]byte, 0, size)
	w.values = make([][]byte, len(w.entries))
	var hs []consortium.Hash
	for j, e := range w.entries {
		var leaf consortium.Hash
		if w.leaves != nil {
			leaf = w.leaves[j]
		} else {
			leaf = consortium.LeafHash(e)
		}
		hs = t.AppendStored(leaf, hs[:0])
		start := len(buf)
		for _, h := range hs {
			buf = append(buf, h[:]...)
		}
		buf = append(buf, e...)
		w.values[j] = buf[start:len(buf):len(buf)]
		if ready != nil && (j+1)%prepareChunk == 0 {
			ready <- j + 1
		}
	}
	w.after = t
	if ready != nil {
		ready <- len(w.entries)
		close(ready)
	}
}

// write stores the entries of every logWrite (with their stored hashes), their heads and feed
// records, and extra, in one transaction. Caller holds wmu.
func (s *Store) write(writes []logWrite, extra func(tx *bolt.Tx) error) error {
	if len(writes) == 0 && extra == nil {
		return nil
	}
	seq, err := s.writeStart()
	if err != nil {
		return err
	}
	lazy := s.lazyHeadNotes()
	if err := s.db.Update(func(tx *bolt.Tx) error { return s.fill(tx, writes, extra, seq, lazy) }); err != nil {
		return fmt.Errorf("store %s: write: %w", s.path, err)
	}
	clear(s.lazyHeads)
	return nil
}

// writeStart returns the feed position the next write starts at, or an error wrapping ErrClosed.
func (s *Store) writeStart() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.writableErr(); err != nil {
		return 0, err
	}
	return s.feedNext, nil
}

// writableErr returns an error wrapping ErrClosed when the store is closed, or unreliable (its
// state in memory may hold entries that were never stored), nil otherwise. Caller holds mu.
func (s *Store) writableErr() error {
	switch {
	case s.closed:
		return ErrClosed
	case s.unreliable:
		return fmt.Errorf("%w: a failed commit left the state in memory unlike the file; restart the node", ErrClosed)
	}
	return nil
}

// fill puts into tx the heads with cosignatures merged since the last write (lazy), then for
// each logWrite its entries with their stored hashes, its head and its feed record (from feed
// position seq), then extra. A logWrite not prepared yet is prepared while its entries are put.
func (s *Store) fill(tx *bolt.Tx, writes []logWrite, extra func(tx *bolt.Tx) error, seq uint64, lazy map[string][]byte) error {
	if err := putHeadNotes(tx, lazy); err != nil {
		return err
	}
	logs := tx.Bucket(bucketLogs)
	for i := range writes {
		w := &writes[i]
		b, err := logs.CreateBucketIfNotExists([]byte(w.member))
		if err != nil {
			return err
		}
		b.FillPercent = 1.0 // keys only ever grow: pack pages full
		// The values are hashed on another goroutine while the first are put.
		made := len(w.values)
		var ready chan int
		if w.values == nil {
			ready = make(chan int, len(w.entries)/prepareChunk+1)
			go w.prepareNotify(ready)
			made = 0
		}
		// The keys share one buffer, as the values do (bbolt keeps both until the commit).
		keys := make([]byte, 8*len(w.entries))
		for j := range w.entries {
			for j >= made {
				made = <-ready
			}
			k := keys[8*j : 8*j+8 : 8*j+8]
			binary.BigEndian.PutUint64(k, w.start+uint64(j))
			if err := b.Put(k, w.values[j]); err != nil {
				if ready != nil {
					for range ready { // let the hashing finish before w is reused
					}
				}
				return err
			}
		}
		if ready != nil {
			for range ready {
			}
		}
		if w.head != nil {
			if err := tx.Bucket(bucketHeads).Put([]byte(w.member), w.head.Note); err != nil {
				return err
			}
		}
		rec := feedRecord{seq: seq, member: w.member, start: w.start, count: uint64(len(w.entries))}
		if rec.count > 0 {
			k, v := rec.encode()
			if err := tx.Bucket(bucketFeed).Put(k, v); err != nil {
				return err
			}
			seq += rec.count
		}
	}
	if extra != nil {
		if err := extra(tx); err != nil {
			return err
		}
	}
	if s.testBeforeCommit != nil {
		return s.testBeforeCommit()
	}
	return nil
}

// writeApply stores writes in one transaction, as write does, and applies them (applyLocked);
// but the apply runs while the transaction commits (its pages written and fsynced), under the
// exclusive lock that readers wait for, and the lock is released only once the commit is durable:
// nothing of the writes is visible before. When the commit fails, the derived state the apply
// changed is reloaded from the file (reloadLocked) before the lock is released, so readers never
// see entries that were not stored. pre, when not nil, is called before the apply and returns the
// batch's early index inserts (commitBatch). Caller holds wmu.
func (s *Store) writeApply(writes []logWrite, pre func() *preIndexed) error {
	if len(writes) == 0 {
		if pre != nil {
			pre()
		}
		return nil
	}
	// Entries not decoded yet are decoded on the other CPUs while their values are put.
	decoded := make(chan [][]consortium.Decoded, 1)
	go func() { decoded <- decodeWrites(writes) }()
	seq, err := s.writeStart()
	if err != nil {
		<-decoded
		return err
	}
	lazy := s.lazyHeadNotes()
	tx, err := s.db.Begin(true)
	if err == nil {
		if err = s.fill(tx, writes, nil, seq, lazy); err != nil {
			tx.Rollback()
		}
	}
	decs := <-decoded
	if err != nil {
		return fmt.Errorf("store %s: write: %w", s.path, err)
	}
	committed := make(chan error, 1)
	go func() {
		if s.testCommit != nil {
			if err := s.testCommit(); err != nil {
				tx.Rollback()
				committed <- err
				return
			}
		}
		committed <- tx.Commit()
	}()
	var p *preIndexed
	if pre != nil {
		p = pre()
	}
	s.mu.Lock()
	// The heads whose cosignatures are in memory only, as they are before the apply (which may make
	// newer checkpoints of their logs the heads): a reload after a failed commit gives them back.
	var lazyBefore map[string]*consortium.Checkpoint
	if len(s.lazyHeads) > 0 {
		lazyBefore = make(map[string]*consortium.Checkpoint, len(s.lazyHeads))
		for m := range s.lazyHeads {
			lazyBefore[m] = s.heads[m]
		}
	}
	s.flight.writes = writes
	s.pre = p
	s.holding = true
	s.applyLocked(writes, decs)
	s.pre = nil
	err = <-committed
	s.flight.writes = nil
	s.holding = false
	held := s.held
	defer func() { clear(held); s.held = held[:0] }() // keeps its room for the next write
	if err != nil {
		err = fmt.Errorf("store %s: write: %w", s.path, err)
		if rerr := s.reloadLocked(lazyBefore); rerr != nil {
			s.log.Error("reload the store after a failed commit", "err", rerr)
			err = fmt.Errorf("%w; reloading the stored state then failed (%v): restart the node", err, rerr)
			s.unreliable = true
		}
		s.mu.Unlock()
		return err
	}
	clear(s.lazyHeads)
	for _, c := range held {
		s.opts.OnChange(c)
	}
	s.unlockAndWake(true)
	return nil
}

// decodeWrites returns the decoded entries of writes, decoding on every CPU those their logWrite
// does not carry decoded.
func decodeWrites(writes []logWrite) [][]consortium.Decoded {
	decs := make([][]consortium.Decoded, len(writes))
	var all [][]byte
	var dst []*consortium.Decoded
	for i := range writes {
		w := &writes[i] // its values and tree are being made meanwhile (fill): read only these
		if w.decs != nil {
			decs[i] = w.decs
			continue
		}
		decs[i] = make([]consortium.Decoded, len(w.entries))
		for j := range decs[i] {
			dst = append(dst, &decs[i][j])
		}
		all = append(all, w.entries...)
	}
	inParallel(len(all), func(lo, hi int) {
		for k := lo; k < hi; k++ {
			*dst[k] = consortium.Decode(all[k])
		}
	})
	return decs
}

// applyLocked applies writes, whose entries decs are decoded: the state (and through it the
// indices), trees, heads, feed position. Caller holds wmu and mu (exclusive).
func (s *Store) applyLocked(writes []logWrite, decs [][]consortium.Decoded) {
	n := 0
	for _, w := range writes {
		n += len(w.entries)
	}
	if n >= 64 {
		// Index adds of a large write go in as one batch (see flushPending).
		s.pending = make(map[uint32]pdqindex.Hash, n)
	}
	if len(writes) > 0 {
		s.version++
	}
	for i, w := range writes {
		wd := decs[i]
		for j, e := range w.entries[:s.applyCount(w.member, w.start, len(w.entries))] {
			s.state.PreloadAhead(wd, j)
			if err := s.state.ApplyDecoded(w.member, w.start+uint64(j), e, wd[j]); err != nil {
				// The entries were checked to follow the stored log; this is a bug.
				s.log.Error("apply stored entry", "member", w.member, "index", w.start+uint64(j), "err", err)
			}
		}
		s.trees[w.member] = w.after
		if w.head != nil {
			s.heads[w.member] = w.head
		}
		s.feedNext += uint64(len(w.entries))
	}
	if s.pre != nil {
		s.pre.dropUnconfirmed(s.pdq)
	}
	s.flushPending()
}

// AppendRange stores entries [start, start+len(entries)) of another member's log after verifying
// them against cp, a checkpoint of that log that the caller opened (its signature verified): start
// must be the stored size, and the tree over the stored log and the entries must be cp's tree or,
// when the range stops short of cp.Size, a prefix of it, as proof (an RFC 6962 consistency proof
// from the range's end to cp) shows. Nothing is stored otherwise. When the range reaches cp.Size,
// cp becomes the log's head (merged with the stored head's cosignatures when it is the same tree
// head).
func (s *Store) AppendRange(cp *consortium.Checkpoint, start uint64, entries [][]byte, proof []consortium.Hash) error {
	return s.AppendRangeRelay(cp, start, entries, proof, nil)
}

// AppendRangeRelay is [Store.AppendRange] that calls relay, when it is not nil, once the range is
// verified against cp and before it is written (and fsynced) and applied: a node hands a verified
// range on to its peers while it stores it. relay is not called for a range that does not verify,
// nor for one that does not start at the stored size. It runs with the store's write lock held: it
// must not write to the store, and should only start work in the background.
func (s *Store) AppendRangeRelay(cp *consortium.Checkpoint, start uint64, entries [][]byte, proof []consortium.Hash, relay func()) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	m := cp.Member
	s.mu.RLock()
	forked := s.evidence[m] != nil
	tree := s.treeOf(m)
	s.mu.RUnlock()
	if forked {
		return fmt.Errorf("%w: %s equivocated; its log is frozen at %d", ErrForked, m, tree.Size())
	}
	if start != tree.Size() {
		return fmt.Errorf("%w: log %q is stored up to %d, range starts at %d", ErrGap, m, tree.Size(), start)
	}
	end := start + uint64(len(entries))
	w := logWrite{member: m, start: start, entries: entries, tree: tree}
	switch {
	case end == cp.Size:
		w.prepare()
		if got := w.after.Root(); got != cp.Root {
			return fmt.Errorf("%w: log %q entries [%d, %d): computed root differs from the checkpoint's", consortium.ErrRootMismatch, m, start, end)
		}
		w.head = s.mergeHead(cp)
	case end < cp.Size:
		w.prepare()
		if err := consortium.VerifyConsistency(proof, end, w.after.Root(), cp.Size, cp.Root); err != nil {
			return fmt.Errorf("%w: log %q entries [%d, %d) are not a prefix of its checkpoint of size %d: %w", consortium.ErrRootMismatch, m, start, end, cp.Size, err)
		}
	default:
		return fmt.Errorf("%w: log %q entries [%d, %d) go past the checkpoint's size %d", consortium.ErrRootMismatch, m, start, end, cp.Size)
	}
	if relay != nil {
		relay()
	}
	return s.writeApply([]logWrite{w}, nil)
}

// feedRecord is one committed range in the feed: feed positions seq .. seq+count-1 are entries
// start .. start+count-1 of member's log. A record with an effect is one position (count 1): the
// change a cutoff made to the effect of entry start (see recordEvidence); it is stored with a
// count of 0, which no range record has, followed by the effect byte.
type feedRecord struct {
	seq, start, count uint64
	member            string
	effect            CutoffEffect
}

func (r feedRecord) encode() (k, v []byte) {
	k = binary.BigEndian.AppendUint64(nil, r.seq)
	v = binary.AppendUvarint(nil, r.start)
	if r.effect != 0 {
		v = binary.AppendUvarint(v, 0)
		v = append(v, byte(r.effect))
		return k, append(v, r.member...)
	}
	v = binary.AppendUvarint(v, r.count)
	return k, append(v, r.member...)
}

func decodeFeedRecord(k, v []byte) (feedRecord, error) {
	var r feedRecord
	if len(k) != 8 {
		return r, fmt.Errorf("%w: feed key %x", ErrDamaged, k)
	}
	r.seq = binary.BigEndian.Uint64(k)
	var n int
	r.start, n = binary.Uvarint(v)
	if n <= 0 {
		return r, fmt.Errorf("%w: feed record %d", ErrDamaged, r.seq)
	}
	v = v[n:]
	r.count, n = binary.Uvarint(v)
	if n <= 0 {
		return r, fmt.Errorf("%w: feed record %d", ErrDamaged, r.seq)
	}
	if r.count == 0 {
		if len(v) < n+1 || v[n] == 0 || CutoffEffect(v[n]) > CutoffOpinionApplied {
			return r, fmt.Errorf("%w: feed record %d", ErrDamaged, r.seq)
		}
		r.effect, r.count = CutoffEffect(v[n]), 1
		n++
	}
	r.member = string(v[n:])
	return r, nil
}

// checkOpinionTarget refuses an opinion on a signal that no member lists here now (expired
// listings do not count) nor an add earlier in the batch: such an opinion would be about nothing, and a lookup would then report
// a signal nobody lists. Withdrawing an opinion is always allowed (the signal may have been revoked
// since). Replay accepts such opinions from other logs (another member may see the listing
// first); this is a rule of this node's own submissions. Caller holds mu.
func (s *Store) checkOpinionTarget(o *pb.Opinion, now int64) error {
	if o == nil || o.Stance == pb.Stance_STANCE_WITHDRAWN {
		return nil
	}
	sig, err := consortium.SignalFromProto(o.Signal)
	if err != nil || s.batchAdds[sig] {
		return nil // MarshalEntry reports a bad signal; an add earlier in the batch lists it
	}
	for _, l := range s.state.Listed(sig) {
		if l.Expires == 0 || l.Expires > now {
			return nil
		}
	}
	if len(s.state.Protections(sig, now)) > 0 {
		return nil // certified as protected: an opinion on it (a dispute) is about the certification
	}
	return fmt.Errorf("%w: no member lists %s here and no certification names it, so there is nothing to give an opinion on (if it was listed or certified moments ago, retry once this node has its entry)", ErrNotListed, sig)
}
