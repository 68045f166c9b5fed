package store

// Local banks: named lists a member holds under other programmes' terms (a ThreatExchange privacy
// group, NCMEC, StopNCII, Tech Against Terrorism, the platform's own). They live only in this
// node's bbolt file, in the bucket "localbanks" (one sub-bucket per bank; key: the signal type's
// byte then its canonical value; value: the entry's JSON). They are never in the member's log,
// never gossiped or replicated, and have no part in the shared State or its digest: only this
// node matches against them, and every answer marks them local.

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/store/pdqindex"
	bolt "go.etcd.io/bbolt"
)

var bucketLocal = []byte("localbanks")

// ErrUnknownBank means a local bank name names no bank.
var ErrUnknownBank = errors.New("no such local bank")

// ErrBankName means a local bank name is not 1-64 of a-z 0-9 . _ - starting with a letter or digit.
var ErrBankName = errors.New("invalid local bank name")

var bankName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// CheckBankName reports whether name can name a local bank.
func CheckBankName(name string) error {
	if !bankName.MatchString(name) {
		return fmt.Errorf("%w %q: want 1-64 of a-z 0-9 . _ - starting with a letter or digit", ErrBankName, name)
	}
	return nil
}

// LocalEntry is one signal in a local bank.
type LocalEntry struct {
	Signal consortium.Signal `json:"-"`
	// Labels are the entry's labels as the source gave them (not checked against hashfed's
	// taxonomy: the bank is not shared).
	Labels []string `json:"labels,omitempty"`
	// ContentID is the source's id for the content (an NCMEC entry, a pytx collab record): a
	// deletion by content id removes every signal that carries it.
	ContentID string `json:"content_id,omitempty"`
	Note      string `json:"note,omitempty"`
	// AddedUnixMs is when this node stored the entry.
	AddedUnixMs int64 `json:"added"`
}

// LocalOp is one change to a local bank: a put of Entry (replacing an entry of the same signal),
// or a delete of the entry of Signal, or, with ContentID set and Signal zero, of every entry
// carrying that content id.
type LocalOp struct {
	Delete    bool
	Entry     LocalEntry
	ContentID string
}

// LocalResult counts what an apply changed.
type LocalResult struct {
	Added   int `json:"added"`
	Updated int `json:"updated"`
	Deleted int `json:"deleted"`
	Size    int `json:"size"`
}

// LocalBank describes a local bank.
type LocalBank struct {
	Name string `json:"name"`
	Size int    `json:"size"`
}

// LocalMatch is a local bank's entry matching a query.
type LocalMatch struct {
	Bank     string
	Entry    LocalEntry
	Distance int
}

type localRef struct {
	bank string
	sig  consortium.Signal
}

// localBanks is the in-memory copy of the local banks, loaded on first use.
type localBanks struct {
	wmu    sync.Mutex // serializes applies: bbolt write and memory update
	mu     sync.RWMutex
	loaded bool
	banks  map[string]map[consortium.Signal]LocalEntry
	pdq    *pdqindex.Index
	ids    map[uint32]localRef
	idOf   map[localRef]uint32
	nextID uint32
}

func localKey(sig consortium.Signal) []byte {
	return append([]byte{byte(sig.Type)}, sig.Bytes()...)
}

func localSignal(k []byte) (consortium.Signal, error) {
	if len(k) < 1 {
		return consortium.Signal{}, fmt.Errorf("%w: empty local bank key", ErrDamaged)
	}
	sig, err := consortium.SignalFromBytes(consortium.SignalType(k[0]), k[1:])
	if err != nil {
		return sig, fmt.Errorf("%w: local bank key: %v", ErrDamaged, err)
	}
	return sig, nil
}

// loadLocal reads the local banks into memory once; the caller holds l.mu for writing.
func (s *Store) loadLocalLocked() error {
	l := &s.local
	if l.loaded {
		return nil
	}
	l.banks = map[string]map[consortium.Signal]LocalEntry{}
	l.ids, l.idOf = map[uint32]localRef{}, map[localRef]uint32{}
	l.pdq, _ = pdqindex.New(pdqindex.DefaultOptions())
	err := s.db.View(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketLocal)
		if root == nil {
			return nil
		}
		return root.ForEachBucket(func(name []byte) error {
			bank := string(name)
			m := map[consortium.Signal]LocalEntry{}
			l.banks[bank] = m
			return root.Bucket(name).ForEach(func(k, v []byte) error {
				sig, err := localSignal(k)
				if err != nil {
					return err
				}
				var e LocalEntry
				if err := json.Unmarshal(v, &e); err != nil {
					return fmt.Errorf("%w: local bank %s entry %s: %v", ErrDamaged, bank, sig, err)
				}
				e.Signal = sig
				m[sig] = e
				l.indexLocked(bank, sig)
				return nil
			})
		})
	})
	if err != nil {
		return err
	}
	l.loaded = true
	return nil
}

func (l *localBanks) indexLocked(bank string, sig consortium.Signal) {
	if sig.Type != consortium.PDQ {
		return
	}
	r := localRef{bank, sig}
	if _, ok := l.idOf[r]; ok {
		return
	}
	id := l.nextID
	l.nextID++
	l.ids[id], l.idOf[r] = r, id
	l.pdq.Add(id, pdqindex.Hash(sig.Value))
}

func (l *localBanks) unindexLocked(bank string, sig consortium.Signal) {
	r := localRef{bank, sig}
	if id, ok := l.idOf[r]; ok {
		l.pdq.Remove(id)
		delete(l.ids, id)
		delete(l.idOf, r)
	}
}

// LocalApply applies ops, in order, to the local bank named bank (created when missing), in one
// transaction: all of them or, on an error, none. With replace, every entry the ops did not put
// is deleted afterwards, so the bank holds exactly the list given.
func (s *Store) LocalApply(bank string, ops []LocalOp, replace bool, nowMs int64) (LocalResult, error) {
	if err := CheckBankName(bank); err != nil {
		return LocalResult{}, err
	}
	l := &s.local
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.mu.Lock()
	err := s.loadLocalLocked()
	cur := l.banks[bank]
	l.mu.Unlock()
	if err != nil {
		return LocalResult{}, err
	}
	// Work on a copy; memory changes only after the transaction commits.
	next := make(map[consortium.Signal]LocalEntry, len(cur))
	for k, v := range cur {
		next[k] = v
	}
	var res LocalResult
	put := map[consortium.Signal]bool{}
	var byContent map[string][]consortium.Signal
	del := func(sig consortium.Signal) {
		if _, ok := next[sig]; ok {
			delete(next, sig)
			delete(put, sig)
			res.Deleted++
		}
	}
	for _, op := range ops {
		switch {
		case !op.Delete:
			e := op.Entry
			if !e.Signal.Type.Known() {
				return LocalResult{}, fmt.Errorf("%w: a local bank entry without a signal", consortium.ErrInvalidSignal)
			}
			if old, ok := next[e.Signal]; ok {
				e.AddedUnixMs = old.AddedUnixMs
				res.Updated++
			} else {
				e.AddedUnixMs = nowMs
				res.Added++
			}
			next[e.Signal] = e
			put[e.Signal] = true
			byContent = nil
		case op.Entry.Signal.Type.Known():
			del(op.Entry.Signal)
		case op.ContentID != "":
			if byContent == nil {
				byContent = map[string][]consortium.Signal{}
				for sig, e := range next {
					if e.ContentID != "" {
						byContent[e.ContentID] = append(byContent[e.ContentID], sig)
					}
				}
			}
			for _, sig := range byContent[op.ContentID] {
				del(sig)
			}
			delete(byContent, op.ContentID)
		default:
			return LocalResult{}, fmt.Errorf("%w: a delete names neither a signal nor a content id", consortium.ErrInvalidEntry)
		}
	}
	if replace {
		for sig := range next {
			if !put[sig] {
				del(sig)
			}
		}
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		root, err := tx.CreateBucketIfNotExists(bucketLocal)
		if err != nil {
			return err
		}
		b, err := root.CreateBucketIfNotExists([]byte(bank))
		if err != nil {
			return err
		}
		for sig := range cur {
			if _, ok := next[sig]; !ok {
				if err := b.Delete(localKey(sig)); err != nil {
					return err
				}
			}
		}
		for sig, e := range next {
			if old, ok := cur[sig]; ok && !put[sig] && sameLocal(old, e) {
				continue
			}
			v, err := json.Marshal(e)
			if err != nil {
				return err
			}
			if err := b.Put(localKey(sig), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return LocalResult{}, fmt.Errorf("local bank %s: %w", bank, err)
	}
	l.mu.Lock()
	for sig := range cur {
		if _, ok := next[sig]; !ok {
			l.unindexLocked(bank, sig)
		}
	}
	for sig := range next {
		l.indexLocked(bank, sig)
	}
	l.banks[bank] = next
	l.mu.Unlock()
	res.Size = len(next)
	return res, nil
}

func sameLocal(a, b LocalEntry) bool {
	return a.ContentID == b.ContentID && a.Note == b.Note && a.AddedUnixMs == b.AddedUnixMs && slices.Equal(a.Labels, b.Labels)
}

// LocalDrop deletes a local bank and everything in it.
func (s *Store) LocalDrop(bank string) error {
	l := &s.local
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.mu.Lock()
	err := s.loadLocalLocked()
	cur, ok := l.banks[bank]
	l.mu.Unlock()
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownBank, bank)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		if root := tx.Bucket(bucketLocal); root != nil && root.Bucket([]byte(bank)) != nil {
			return root.DeleteBucket([]byte(bank))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("local bank %s: %w", bank, err)
	}
	l.mu.Lock()
	for sig := range cur {
		l.unindexLocked(bank, sig)
	}
	delete(l.banks, bank)
	l.mu.Unlock()
	return nil
}

// withLocal runs fn with the loaded local banks, read-locked.
func (s *Store) withLocal(fn func(l *localBanks)) error {
	l := &s.local
	l.mu.RLock()
	if !l.loaded {
		l.mu.RUnlock()
		l.mu.Lock()
		err := s.loadLocalLocked()
		l.mu.Unlock()
		if err != nil {
			return err
		}
		l.mu.RLock()
	}
	defer l.mu.RUnlock()
	fn(l)
	return nil
}

// LocalBanks lists the local banks, by name.
func (s *Store) LocalBanks() ([]LocalBank, error) {
	var out []LocalBank
	err := s.withLocal(func(l *localBanks) {
		for name, m := range l.banks {
			out = append(out, LocalBank{Name: name, Size: len(m)})
		}
	})
	slices.SortFunc(out, func(a, b LocalBank) int { return strings.Compare(a.Name, b.Name) })
	return out, err
}

// LocalEntries returns a local bank's entries, sorted by signal type then value.
func (s *Store) LocalEntries(bank string) ([]LocalEntry, error) {
	var out []LocalEntry
	found := false
	err := s.withLocal(func(l *localBanks) {
		var m map[consortium.Signal]LocalEntry
		m, found = l.banks[bank]
		for _, e := range m {
			out = append(out, e)
		}
	})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%w %q", ErrUnknownBank, bank)
	}
	slices.SortFunc(out, func(a, b LocalEntry) int {
		if a.Signal.Type != b.Signal.Type {
			return int(a.Signal.Type) - int(b.Signal.Type)
		}
		return strings.Compare(string(a.Signal.Bytes()), string(b.Signal.Bytes()))
	})
	return out, nil
}

// LocalMatch returns the local banks' entries matching sig: exactly, or for PDQ within radius;
// nearest first, then by bank.
func (s *Store) LocalMatch(sig consortium.Signal, radius int) ([]LocalMatch, error) {
	var out []LocalMatch
	err := s.withLocal(func(l *localBanks) {
		if sig.Type != consortium.PDQ {
			for name, m := range l.banks {
				if e, ok := m[sig]; ok {
					out = append(out, LocalMatch{Bank: name, Entry: e})
				}
			}
			return
		}
		for _, hit := range l.pdq.Search(pdqindex.Hash(sig.Value), radius, nil) {
			r, ok := l.ids[hit.ID]
			if !ok {
				continue
			}
			out = append(out, LocalMatch{Bank: r.bank, Entry: l.banks[r.bank][r.sig], Distance: hit.Distance})
		}
	})
	slices.SortFunc(out, func(a, b LocalMatch) int {
		if a.Distance != b.Distance {
			return a.Distance - b.Distance
		}
		if c := strings.Compare(a.Bank, b.Bank); c != 0 {
			return c
		}
		return strings.Compare(string(a.Entry.Signal.Bytes()), string(b.Entry.Signal.Bytes()))
	})
	return out, err
}
