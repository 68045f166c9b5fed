// Package store keeps a node's member logs durably in bbolt and the state derived from them in
// memory: the listed signals, opinions and roster (a [consortium.State]) and the match indices.
//
// The logs are the truth. Entries are stored verbatim under sequential keys, one bucket per member
// log, each value prefixed by the log's tlog stored hashes so that proofs and tree hashes of any
// size are O(log n) reads. Checkpoints (with cosignatures), equivocation evidence and the feed
// index are stored beside them. Every append is one bbolt transaction, fsynced before the append
// is acknowledged and before its effect is visible to matching. Everything derived is rebuilt from
// the logs when the store opens.
//
// The store trusts nothing it is given from the network: a range of another member's log is
// stored only if it extends the stored log and its root equals a signed checkpoint. It does not
// sign (apart from the node's own checkpoints, with a key the caller passes) and does no network
// I/O.
package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/store/pdqindex"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the layout version of the bbolt file this package writes.
const SchemaVersion = 1

// Sentinel errors of the store.
var (
	// ErrDamaged means the database file is damaged or was not written by this version; the
	// message names the file. The store never writes to a file it could not read.
	ErrDamaged = errors.New("damaged store")

	// ErrWrongConsortium means the store was created for another consortium.
	ErrWrongConsortium = errors.New("store belongs to another consortium")

	// ErrGap means a range does not start where the stored log ends.
	ErrGap = errors.New("range does not start at the end of the stored log")

	// ErrForked means the log's author equivocated; the store accepts nothing more of that log.
	ErrForked = errors.New("log is forked")

	// ErrLowQuality means a PDQ hash's quality is below the store's quality gate.
	ErrLowQuality = errors.New("pdq quality below the gate")

	// ErrNotListed means an opinion is about a signal no member lists here: there is nothing to
	// agree with or dispute (a local rule of the submit path, not of replay).
	ErrNotListed = errors.New("no member lists the signal")

	// ErrClosed means the store was closed.
	ErrClosed = errors.New("store closed")

	// ErrBusy means too many submitted entries are waiting to be committed; retry later.
	ErrBusy = errors.New("store busy")

	// ErrWrongOwner means the store is another member's: it records the key of the member whose
	// node created it (see [Options.Owner]).
	ErrWrongOwner = errors.New("store belongs to another member")
)

var (
	bucketMeta     = []byte("meta")
	bucketLogs     = []byte("logs")
	bucketHeads    = []byte("heads")
	bucketEvidence = []byte("evidence")
	bucketFeed     = []byte("feed")

	keySchema  = []byte("schema")
	keyGenesis = []byte("genesis")
	keyOwner   = []byte("owner")
)

// Options configures a [Store]. Start from [DefaultOptions].
type Options struct {
	// QualityGate refuses PDQ adds and queries whose known quality is below it (0 to 100).
	QualityGate int
	// DisputeThreshold hides from match results a signal that at least this many members or
	// observers on the roster call a false positive (an opinion with stance false_positive; the
	// opinions of civil-society participants and authorities do not count); 0 never hides. Hidden
	// matches are still returned when a query asks for them, with the reason.
	DisputeThreshold int
	// FloodThreshold holds for review a signal that at least this many uploads matched within
	// FloodWindow when that is also at least FloodFactor times its usual count per window (section
	// 9 of PROTOCOL.md); 0 never holds. Held matches are hidden with the reason until a reviewer
	// confirms or deconfirms them ([Store.RecordReview]).
	FloodThreshold int
	// FloodWindow is the window of flood counting (default one hour).
	FloodWindow time.Duration
	// FloodFactor is how many times its usual count a signal must match to be held (default 10).
	FloodFactor float64
	// NoSync skips fsync. Only for tests and benchmarks that measure something else: an append
	// acknowledged without fsync can be lost in a crash.
	NoSync bool
	// MaxBatch bounds the entries of one group commit of the node's own submissions.
	MaxBatch int
	// MaxQueued bounds the submitted entries waiting to be committed; a submission beyond it is
	// refused with [ErrBusy] (a single submission larger than it is still taken when the queue is
	// empty).
	MaxQueued int
	// Logger receives the store's log lines; nil discards them.
	Logger *slog.Logger
	// Now returns the current time, for expiry; nil means time.Now.
	Now func() time.Time
	// OnChange, when set, is called with every state change after it is applied and its write is
	// durable, before readers see it (under the store's lock: it must not call back into the
	// store).
	OnChange func(consortium.Change)
	// Owner is the public key (in its text form, [consortium.PublicKey.String]) of the member whose
	// node keeps the store. A new store records it, and so does the first open of a store that
	// records none; a store recording another key is refused with [ErrWrongOwner], so that a node
	// never signs its member's log on top of another member's data. Empty: not checked.
	Owner string
}

// DefaultOptions returns the options a node uses unless configured otherwise: quality gate 50, no
// dispute hiding, fsync on, batches of up to 10,000 entries.
func DefaultOptions() Options {
	return Options{QualityGate: 50, MaxBatch: 10_000, MaxQueued: 1_000_000}
}

func (o *Options) validate() error {
	if o.QualityGate < 0 || o.QualityGate > 100 {
		return fmt.Errorf("store: quality gate %d, want 0 to 100", o.QualityGate)
	}
	if o.DisputeThreshold < 0 {
		return fmt.Errorf("store: dispute threshold %d, want 0 or more", o.DisputeThreshold)
	}
	if o.FloodThreshold < 0 {
		return fmt.Errorf("store: flood threshold %d, want 0 or more", o.FloodThreshold)
	}
	if o.FloodWindow < 0 || o.FloodFactor < 0 {
		return fmt.Errorf("store: flood window %v and factor %v, want 0 (the default) or more", o.FloodWindow, o.FloodFactor)
	}
	if o.FloodWindow == 0 {
		o.FloodWindow = time.Hour
	}
	if o.FloodWindow < time.Millisecond {
		return fmt.Errorf("store: flood window %v, want at least 1ms", o.FloodWindow)
	}
	if o.FloodFactor == 0 {
		o.FloodFactor = 10
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 10_000
	}
	if o.MaxQueued <= 0 {
		o.MaxQueued = 1_000_000
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}

// Store is a node's durable logs and derived state. It is safe for concurrent use.
type Store struct {
	path string
	size int64 // of the file when it was opened
	db   *bolt.DB
	g    *consortium.Genesis
	opts Options
	log  *slog.Logger

	// wmu serializes writers: a writer holds it across its bbolt transaction and the in-memory
	// update that follows, so trees and sizes read under wmu are stable.
	wmu sync.Mutex
	// batchAdds are the signals of the adds prepared in the batch being committed (under wmu), so
	// that an opinion after an add of the same signal in one batch is allowed.
	batchAdds map[consortium.Signal]bool
	// lazyHeads are the logs whose head in memory carries cosignatures the head on disk lacks
	// (the same tree head otherwise): merged or added cosignatures are written with the next
	// write, by FlushHeads, or at Close, not each with an fsync of its own (see ObserveCheckpoint).
	// Under wmu.
	lazyHeads map[string]bool
	// testBeforeCommit, when set (by tests), runs in every write's transaction before it commits;
	// an error fails the write.
	testBeforeCommit func() error
	// testCommit, when set (by tests), runs before a writeApply's transaction commits, while its
	// entries are applied; an error fails the commit (the transaction is rolled back).
	testCommit func() error
	// flight holds the writes being committed while they are applied (writeApply), so that the
	// state's entry reader finds their entries before the commit ends. Shared with the private
	// stores whose state may become this one's (replayCut, reloadLocked).
	flight *inFlight
	// holding is set while writeApply applies writes whose commit is not durable yet; the changes
	// for Options.OnChange wait in held meanwhile. Under mu (exclusive).
	holding bool
	held    []consortium.Change

	// local holds the local banks (localbank.go), apart from everything replicated.
	local localBanks

	// mu guards everything below it; readers take it shared.
	mu       sync.RWMutex
	state    *consortium.State
	trees    map[string]*consortium.Tree
	heads    map[string]*consortium.Checkpoint
	evidence map[string]*consortium.Evidence
	pdq      *pdqindex.Index
	video    *videoIndex // the listed videos' frames (video.go)
	expiry   expiryHeap
	// pending collects PDQ index adds during a large write (nil otherwise).
	pending map[uint32]pdqindex.Hash
	// pre, while commitBatch applies a write, are the new PDQ signals it put in the index while
	// the write was committed (nil otherwise; set under wmu).
	pre      *preIndexed
	feedNext uint64
	feedWake chan struct{}
	closed   bool
	// unreliable is set when a commit failed after its writes were applied and reloading the
	// stored state failed too: the state in memory may hold entries that were never stored, so the
	// store neither writes nor signs any more (see writeApply). Close still closes the file, without
	// writing the heads in memory (of such entries, maybe).
	unreliable bool
	// version counts the changes of state (appends applied, cutoffs swapped in), for digest.
	version uint64
	digest  digestCache

	// pol is the local policy (policy.go).
	pol *policy

	// cutoffs are the equivocation cutoffs the state applies (see fork.go).
	cutoffs map[string]uint64

	// rtx is the read transaction of the rebuild while the store opens.
	rtx *bolt.Tx

	submits chan *submission
	queued  atomic.Int64
	done    chan struct{}
	wg      sync.WaitGroup
}

// Open opens the store at path for the consortium of g, or creates it when no file is there, and
// rebuilds the derived state from the stored logs. A damaged file (an empty or truncated one
// included) gives an error wrapping [ErrDamaged] that names it; the file is not written. Open
// returns only once nothing it started still reads the file.
func Open(path string, g *consortium.Genesis, opts Options) (st *Store, err error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	// Only a missing file makes a new store, and a new store appears at path only once it is
	// complete (see create): an empty or truncated file is damage, never an invitation to start
	// over, since a node that starts over signs a history that forks from the one its peers hold.
	fresh := false
	var size int64
	fi, statErr := os.Stat(path)
	switch {
	case errors.Is(statErr, os.ErrNotExist):
		if err := create(path, g, opts); err != nil {
			return nil, err
		}
		fresh = true
		if fi, statErr = os.Stat(path); statErr != nil {
			return nil, fmt.Errorf("open store %s: %w", path, statErr)
		}
		size = fi.Size()
	case statErr != nil:
		return nil, fmt.Errorf("open store %s: %w", path, statErr)
	case fi.Size() == 0:
		return nil, fmt.Errorf("open store %s: %w: the file is empty (0 bytes)", path, ErrDamaged)
	default:
		size = fi.Size()
	}
	if err := precheck(path); err != nil {
		return nil, err
	}
	// Reads of a damaged file can fault in the memory map; on this goroutine (and the rebuild's)
	// a fault is a panic, which the deferred recover below turns into an error.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	db, err := openBolt(path, &bolt.Options{Timeout: 2 * time.Second, NoSync: opts.NoSync, FreelistType: bolt.FreelistMapType, MmapFlags: mmapFlags(size)})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("open store %s: another process has it open", path)
		}
		if fresh || errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("open store %s: %w", path, err)
		}
		return nil, fmt.Errorf("open store %s: %w: %v", path, ErrDamaged, err)
	}
	db.MmapFlags = 0 // populate the first mapping only (see mmapFlags), not each remap as the file grows
	s := &Store{
		path:     path,
		size:     size,
		db:       db,
		g:        g,
		opts:     opts,
		log:      opts.Logger,
		trees:    map[string]*consortium.Tree{},
		heads:    map[string]*consortium.Checkpoint{},
		evidence: map[string]*consortium.Evidence{},
		feedWake: make(chan struct{}),
		flight:   &inFlight{},
		submits:  make(chan *submission, 1024),
		done:     make(chan struct{}),
	}
	defer func() {
		// bbolt panics on some kinds of page damage; turn that into an error naming the file.
		if r := recover(); r != nil {
			err = fmt.Errorf("open store %s: %w: %v", path, ErrDamaged, r)
		}
		if err != nil {
			db.Close()
			st = nil
		}
	}()
	if err := s.checkMeta(); err != nil {
		return nil, err
	}
	if err := s.checkOwner(); err != nil {
		return nil, err
	}
	if s.pdq, err = pdqindex.New(pdqindex.DefaultOptions()); err != nil {
		return nil, err
	}
	s.video = newVideoIndex()
	if err := s.rebuild(); err != nil {
		return nil, err
	}
	if err := s.applyStoredCutoffs(); err != nil {
		return nil, err
	}
	if err := s.loadPolicy(); err != nil {
		return nil, err
	}
	s.wg.Add(1)
	go s.committer()
	return s, nil
}

// openBolt opens the bbolt file at path, turning a panic of bbolt's on damage it meets while
// opening (precheck catches what it knows of first) into an error.
func openBolt(path string, o *bolt.Options) (db *bolt.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("bbolt: %v", r)
		}
	}()
	return bolt.Open(path, 0o600, o)
}

// storePageSize is the page size of a new store's file. Logs only grow at their end, so a commit
// of many entries writes long runs of full leaf pages, one write call each: 16 KiB pages take a
// quarter of the calls that the 4 KiB default does (a 10,000-entry commit writes about 2 MB).
// A store keeps the page size it was made with; any size opens.
const storePageSize = 16 << 10

// create makes a new, empty store for the consortium of g at path: it writes it under a temporary
// name beside path, syncs it, and renames it into place, so that a crash while creating leaves no
// file at path (which would be refused as damaged) but at most the temporary one, replaced by the
// next attempt.
func create(path string, g *consortium.Genesis, opts Options) error {
	tmp := path + ".creating"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("create store %s: %w", path, err)
	}
	db, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: 2 * time.Second, NoSync: opts.NoSync, FreelistType: bolt.FreelistMapType, PageSize: storePageSize})
	if err != nil {
		return fmt.Errorf("create store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketLogs, bucketHeads, bucketEvidence, bucketFeed} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if err := meta.Put(keySchema, binary.BigEndian.AppendUint32(nil, SchemaVersion)); err != nil {
			return err
		}
		if opts.Owner != "" {
			if err := meta.Put(keyOwner, []byte(opts.Owner)); err != nil {
				return err
			}
		}
		return meta.Put(keyGenesis, g.Marshal())
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil && !opts.NoSync {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("create store %s: %w", path, err)
	}
	return nil
}

// syncDir fsyncs a directory, making a rename in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (s *Store) checkMeta() error {
	return s.db.View(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketLogs, bucketHeads, bucketEvidence, bucketFeed} {
			if tx.Bucket(b) == nil {
				return fmt.Errorf("open store %s: %w: bucket %q missing (not a hashfed store?)", s.path, ErrDamaged, b)
			}
		}
		meta := tx.Bucket(bucketMeta)
		v := meta.Get(keySchema)
		if len(v) != 4 {
			return fmt.Errorf("open store %s: %w: no schema version", s.path, ErrDamaged)
		}
		if got := binary.BigEndian.Uint32(v); got != SchemaVersion {
			return fmt.Errorf("open store %s: schema version %d, this hashfed reads %d", s.path, got, SchemaVersion)
		}
		g, err := consortium.ParseGenesis(meta.Get(keyGenesis))
		if err != nil {
			return fmt.Errorf("open store %s: %w: stored genesis: %v", s.path, ErrDamaged, err)
		}
		if g.ID != s.g.ID {
			return fmt.Errorf("open store %s: %w %s, not %s", s.path, ErrWrongConsortium, g.ID, s.g.ID)
		}
		return nil
	})
}

// checkOwner refuses a store recording another member's key than Options.Owner, and records
// the owner in a store that records none (made before stores recorded it).
func (s *Store) checkOwner() error {
	if s.opts.Owner == "" {
		return nil
	}
	var stored []byte
	if err := s.db.View(func(tx *bolt.Tx) error {
		stored = bytes.Clone(tx.Bucket(bucketMeta).Get(keyOwner))
		return nil
	}); err != nil {
		return fmt.Errorf("open store %s: %w", s.path, err)
	}
	if stored == nil {
		if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyOwner, []byte(s.opts.Owner)) }); err != nil {
			return fmt.Errorf("open store %s: record its owner: %w", s.path, err)
		}
		return nil
	}
	if string(stored) == s.opts.Owner {
		return nil
	}
	who := "another member"
	if p, err := consortium.ParsePublicKey(string(stored)); err == nil {
		who = fmt.Sprintf("member %q (key %s)", p.ID, p)
	}
	me := s.opts.Owner
	if p, err := consortium.ParsePublicKey(me); err == nil {
		me = fmt.Sprintf("%q (key %s)", p.ID, p)
	}
	return fmt.Errorf("open store %s: %w: it is the data of %s, and this node runs as %s; each member's node needs its own data directory (data_dir): point this one at its own, or start the node with that member's key", s.path, ErrWrongOwner, who, me)
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// Genesis returns the consortium's genesis.
func (s *Store) Genesis() *consortium.Genesis { return s.g }

// Close stops the committer, waits for submissions in flight, and closes the database.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.feedWake)
	s.mu.Unlock()
	close(s.done)
	s.wg.Wait()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.RLock()
	unreliable := s.unreliable
	s.mu.RUnlock()
	var ferr error
	if !unreliable { // heads in memory may then be of entries never stored
		ferr = s.flushHeadsLocked(true)
	}
	if err := s.db.Close(); err != nil {
		return err
	}
	return ferr
}

// logKey is the bbolt key of entry index: 8 bytes big-endian, so appends are sequential.
func logKey(index uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), index) }

// storedCount is how many tlog stored hashes precede entry index's bytes: its leaf hash and one per
// subtree it completes (the trailing one bits of index).
func storedCount(index uint64) int {
	n := 1
	for ; index&1 == 1; index >>= 1 {
		n++
	}
	return n
}

// splitValue splits a stored log value into its stored hashes and the entry bytes.
func splitValue(index uint64, v []byte) (hashes []byte, entry []byte, err error) {
	k := storedCount(index) * consortium.HashSize
	if len(v) < k {
		return nil, nil, fmt.Errorf("%w: entry %d is %d bytes, shorter than its %d stored hashes", ErrDamaged, index, len(v), k)
	}
	return v[:k], v[k:], nil
}
