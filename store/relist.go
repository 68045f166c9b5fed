package store

import (
	"bytes"
	"fmt"

	"github.com/hashfed/hashfed/consortium"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// relister decides, for one group commit, which submitted adds re-list a signal exactly as the
// member's listing in force already does (same signal, labels, content id, expiry, note and
// quality): those are not appended, so that a platform re-sending its whole list appends only
// what changed. An add is compared only while nothing earlier in the same commit from the same
// member touched its signal (an add or revoke of it, or any revoke by index), so skipping it never
// changes what the entries after it mean. It reads the listing's add from the log in one read
// transaction, which close ends before the commit writes.
type relister struct {
	s       *Store
	tx      *bolt.Tx
	touched map[string]map[consortium.Signal]bool
	blind   map[string]bool // members with a revoke by index earlier in the commit
	logs    map[string]*bolt.Bucket
	buf     []byte
	hint    int // entries in the commit, to size the maps
}

func newRelister(s *Store) *relister {
	return &relister{s: s, touched: map[string]map[consortium.Signal]bool{}, blind: map[string]bool{}}
}

// addLookup is what check needs to know of an add from the state alone: its signal, and the
// member's listing of it in force. lookup finds it; it reads the state only, so commitBatch runs it
// for every entry on every CPU before the checks, which run in order. Caller holds mu (shared).
type addLookup struct {
	sig     consortium.Signal
	sigOK   bool
	listed  consortium.Listing
	inForce bool
	known   bool // the signal has an id in the state
}

func (r *relister) lookup(member string, e *pb.Entry) addLookup {
	var lk addLookup
	a := e.GetAdd()
	if a == nil {
		return lk
	}
	sig, err := consortium.SignalFromProto(a.GetSignal())
	if err != nil {
		return lk
	}
	lk.sig, lk.sigOK = sig, true
	lk.listed, lk.inForce, lk.known = r.s.state.LookupListing(member, sig)
	return lk
}

// check looks at entry e of member, in commit order. When e is an add identical to the listing in
// force (not expired at now), it returns the outcome to report and true; the entry is then not
// appended. Otherwise it notes what e touches and reports whether e, an add, replaces a listing in
// force (updated). Caller holds mu (shared).
// lk is lookup(member, e), or nil for check to find it.
func (r *relister) check(member string, e *pb.Entry, now int64, lk *addLookup) (out Appended, unchanged bool) {
	switch op := e.Op.(type) {
	case *pb.Entry_Revoke:
		if sp := op.Revoke.GetSignal(); sp != nil {
			if sig, err := consortium.SignalFromProto(sp); err == nil {
				r.touch(member, sig)
			}
			return out, false
		}
		r.blind[member] = true
		return out, false
	case *pb.Entry_Add:
		if lk == nil {
			l := r.lookup(member, e)
			lk = &l
		}
		if !lk.sigOK {
			return out, false // refused by the checks that follow
		}
		if r.touch(member, lk.sig) || r.blind[member] {
			return out, false
		}
		l, ok := lk.listed, lk.inForce
		if !ok {
			return out, false
		}
		out.Updated = true
		if l.Expires != 0 && l.Expires <= now {
			return out, false
		}
		raw, err := r.read(member, l.Index)
		if err != nil {
			return out, false // append: the checks that follow decide
		}
		// Stored entries are deterministic encodings, in which the add is the deterministic
		// encoding of the Add: equal bytes are an equal add (no decoding of the stored entry).
		cur, ok := addBytes(raw)
		if !ok {
			return out, false
		}
		r.buf, err = proto.MarshalOptions{Deterministic: true}.MarshalAppend(r.buf[:0], op.Add)
		if err != nil || !bytes.Equal(cur, r.buf) {
			return out, false
		}
		return Appended{Index: l.Index, Entry: bytes.Clone(raw), Unchanged: true}, true
	}
	return out, false
}

// touch notes that an entry of member touches sig, and reports whether one before it did.
func (r *relister) touch(member string, sig consortium.Signal) (before bool) {
	m := r.touched[member]
	if m == nil {
		m = make(map[consortium.Signal]bool, r.hint)
		r.touched[member] = m
	}
	n := len(m)
	m[sig] = true
	return len(m) == n
}

// read returns entry index of member's log, valid until close.
func (r *relister) read(member string, index uint64) ([]byte, error) {
	if r.tx == nil {
		tx, err := r.s.db.Begin(false)
		if err != nil {
			return nil, err
		}
		r.tx, r.logs = tx, map[string]*bolt.Bucket{}
	}
	b, ok := r.logs[member]
	if !ok {
		b = logBucket(r.tx, member)
		r.logs[member] = b
	}
	if b == nil {
		return nil, fmt.Errorf("no log of %q", member)
	}
	v := b.Get(logKey(index))
	if v == nil {
		return nil, fmt.Errorf("log %q has no entry %d", member, index)
	}
	_, e, err := splitValue(index, v)
	return e, err
}

// entryAddField is the field number of Entry.add (hashfed.proto).
const entryAddField = 2

// addBytes returns the bytes of the add field of an encoded entry.
func addBytes(raw []byte) ([]byte, bool) {
	for len(raw) > 0 {
		num, typ, n := protowire.ConsumeTag(raw)
		if n < 0 {
			return nil, false
		}
		raw = raw[n:]
		if num == entryAddField && typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(raw)
			return v, m >= 0
		}
		m := protowire.ConsumeFieldValue(num, typ, raw)
		if m < 0 {
			return nil, false
		}
		raw = raw[m:]
	}
	return nil, false
}

// close ends the read transaction, if one was begun.
func (r *relister) close() {
	if r.tx != nil {
		r.tx.Rollback()
		r.tx = nil
	}
}
