package consortium

import (
	"fmt"
	"slices"
	"sync/atomic"

	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"google.golang.org/protobuf/proto"
)

// intern returns the small index of a member id, adding it if new.
func (s *State) intern(member string) (uint16, error) {
	if i, ok := s.memberIdx[member]; ok {
		return i, nil
	}
	if len(s.memberIDs) >= 1<<16-1 {
		return 0, fmt.Errorf("%w: too many distinct logs", ErrNotPermitted)
	}
	if err := ValidateMemberID(member); err != nil {
		return 0, err
	}
	i := uint16(len(s.memberIDs))
	s.memberIdx[member] = i
	s.memberIDs = append(s.memberIDs, member)
	s.logs = append(s.logs, logState{})
	s.canAdd = append(s.canAdd, false)
	s.onRoster = append(s.onRoster, false)
	return i, nil
}

func (s *State) reject(member string, index uint64, err error) {
	s.nRejected++
	if len(s.rejected) < maxRejectionsKept {
		s.rejected = append(s.rejected, Rejection{Member: member, Index: index, Err: err})
	}
}

// Apply applies entry index of member's log. Entries of one log must come in order (index equal to
// the number already applied), or Apply returns [ErrOutOfOrder] and changes nothing; logs may be
// interleaved in any way. An entry that breaks a rule is recorded as a [Rejection] and has no other
// effect; that is not an error. Apply returns an error only for out-of-order calls and failures of
// the [EntryReader].
func (s *State) Apply(member string, index uint64, raw []byte) error {
	return s.ApplyDecoded(member, index, raw, Decode(raw))
}

// Decoded is an entry decoded and validated by [Decode], ready for [State.ApplyDecoded]. Decoding
// needs no state, so a caller replaying many entries can decode on other goroutines.
type Decoded struct {
	v   entryView
	err error
}

// Added returns the signal of an add that decoded and validated, and false for any other entry.
func (d Decoded) Added() (Signal, bool) {
	if d.err != nil || d.v.op != OpAdd {
		return Signal{}, false
	}
	return d.v.sig, true
}

// Decode decodes and validates entry bytes for [State.ApplyDecoded].
func Decode(raw []byte) Decoded {
	var d Decoded
	d.err = decodeEntry(raw, &d.v)
	return d
}

// ApplyDecoded is [State.Apply] of an entry already decoded by [Decode] from raw.
func (s *State) ApplyDecoded(member string, index uint64, raw []byte, d Decoded) error {
	mi, err := s.intern(member)
	if err != nil {
		return err
	}
	ls := &s.logs[mi]
	if index != ls.size {
		return fmt.Errorf("%w: entry %d of %q applied when %d entries are", ErrOutOfOrder, index, member, ls.size)
	}
	v, perr := d.v, d.err
	if perr == nil && v.op == OpRevoke && v.byIndex {
		v.sig, perr, err = s.revokeTarget(member, index, v.index)
		if err != nil {
			return err
		}
	}
	ls.size++
	if perr != nil {
		s.reject(member, index, perr)
		return nil
	}
	if v.time < ls.lastTime {
		s.reject(member, index, fmt.Errorf("%w: time %d ms is before the previous entry's %d ms", ErrOutOfOrder, v.time, ls.lastTime))
		return nil
	}
	ls.lastTime = v.time
	switch v.op {
	case OpAdd:
		s.applyAdd(mi, index, v.sig, v.sigHash, v.expires)
	case OpRevoke:
		if err := s.applyRevoke(mi, index, v.sig); err != nil {
			s.reject(member, index, err)
		}
	case OpOpinion:
		s.applyOpinion(mi, index, v.sig, v.stance)
	case OpPropose:
		// The author field makes the leaf hash name author and content. A proposal counts only in
		// its author's own log; a copy elsewhere is rejected and is not the copier's vote, so the
		// proposal's author (and the roster) never depend on which copy is applied first.
		if string(v.author) != member {
			s.reject(member, index, fmt.Errorf("%w: the author field names %q, not the log owner %q (a copy of a proposal by %q); it has no effect and is not %q's vote",
				ErrWrongAuthor, v.author, member, v.author, member))
			return nil
		}
		h := LeafHash(raw)
		if err := s.vote(mi, v.epoch, h); err != nil {
			s.reject(member, index, err)
			return nil
		}
		var e pb.Entry
		if err := proto.Unmarshal(raw, &e); err != nil {
			return fmt.Errorf("decode validated proposal: %w", err)
		}
		s.proposals[h] = &proposal{author: member, index: index, epoch: v.epoch, hash: h, changes: e.GetPropose().GetChanges()}
		s.recomputeRosterFor(v.epoch)
	case OpEndorse:
		if err := s.vote(mi, v.epoch, v.proposal); err != nil {
			s.reject(member, index, err)
			return nil
		}
		s.recomputeRosterFor(v.epoch)
	case OpCertify, OpUncertify, OpRefer, OpAnswer:
		perr, err := s.applyRoleOp(mi, index, raw, &v)
		if err != nil {
			return err
		}
		if perr != nil {
			s.reject(member, index, perr)
		}
	}
	return nil
}

// Preload reads the memory that applying the adds among decs will read first, each add's home
// slot in the signal table and, when its tag matches, the signal there, so that
// [State.ApplyDecoded] of them finds it in the processor's cache: the reads of many entries
// overlap here, where the apply waits for each in turn. It changes nothing and only saves time: a
// caller calls it just before applying decs. It only reads the state, so it may run beside other
// readers.
func (s *State) Preload(decs []Decoded) {
	t := &s.sigIndex
	var x uint64
	for i := range decs {
		v := &decs[i].v
		if decs[i].err != nil || v.op != OpAdd {
			continue
		}
		slot := t.slots[v.sigHash>>t.shift]
		if slot != 0 && slot>>32 == v.sigHash>>32 {
			slot += uint64(s.sigs[uint32(slot)-1].n)
		}
		x += slot
	}
	preloadSink.Add(x)
}

// preloadChunk is how many entries [State.PreloadAhead] preloads at a time: enough for their
// reads to overlap, few enough that they are still in the processor's cache when applied.
const preloadChunk = 128

// PreloadAhead is [State.Preload] for a caller about to apply decs in order: called before
// applying each decs[j], it preloads, at the start of each chunk of entries, the chunk after it
// (and at j = 0 the first chunk too), so that each chunk's reads overlap while the one before it
// is applied.
func (s *State) PreloadAhead(decs []Decoded, j int) {
	if j%preloadChunk != 0 {
		return
	}
	if j == 0 {
		s.Preload(decs[:min(preloadChunk, len(decs))])
	}
	lo := min(j+preloadChunk, len(decs))
	s.Preload(decs[lo:min(lo+preloadChunk, len(decs))])
}

// preloadSink keeps the reads of [State.Preload] from being optimized away.
var preloadSink atomic.Uint64

// revokeTarget resolves a revoke by index: the target must be an earlier valid add of the same log.
// It returns the add's signal, or a rule error (perr), or a reader failure (err).
func (s *State) revokeTarget(member string, index, target uint64) (sig Signal, perr, err error) {
	if target >= index {
		return sig, fmt.Errorf("%w: revoke names entry %d, which is not before it", ErrInvalidEntry, target), nil
	}
	if s.read == nil {
		return sig, nil, fmt.Errorf("revoke by index needs an entry reader")
	}
	raw, err := s.read(member, target)
	if err != nil {
		return sig, nil, fmt.Errorf("read entry %d of %q: %w", target, member, err)
	}
	var v entryView
	if err := decodeEntry(raw, &v); err != nil || v.op != OpAdd {
		return sig, fmt.Errorf("%w: revoke names entry %d, which is not a valid add", ErrInvalidEntry, target), nil
	}
	return v.sig, nil, nil
}

// signalID returns the id of sig, whose hash is h (sigHash), giving it the next id when it is new.
func (s *State) signalID(sig Signal, h uint64) uint32 {
	id, slot, ok := s.sigIndex.find(&sig, h, s.sigs)
	if ok {
		return id
	}
	id = uint32(len(s.sigs))
	if len(s.sigs) == cap(s.sigs) {
		// Double rather than append's quarter steps, for fewer copies of a large table. Only the
		// slice: growing the index here would move the slot find returned.
		s.growSigs(len(s.sigs) + 1024)
	}
	s.sigs = append(s.sigs, sigRec{sig: sig})
	s.sigIndex.insert(slot, h, id, s.sigs)
	return id
}

// setListing inserts or replaces member's listing of signal id and reports whether it replaced one.
func (s *State) setListing(id uint32, l listing) bool {
	r := &s.sigs[id]
	if r.n > 0 && r.first.member == l.member {
		r.first = l
		return true
	}
	ex := s.extra[id]
	for i := range ex {
		if ex[i].member == l.member {
			ex[i] = l
			return true
		}
	}
	if r.n == 0 {
		r.first = l
	} else {
		s.extra[id] = append(ex, l)
	}
	r.n++
	return false
}

// removeListing deletes member's listing of signal id and reports whether there was one.
func (s *State) removeListing(id uint32, member uint16) bool {
	r := &s.sigs[id]
	if r.n == 0 {
		return false
	}
	ex := s.extra[id]
	if r.first.member == member {
		if len(ex) > 0 {
			r.first = ex[len(ex)-1]
			ex = ex[:len(ex)-1]
		}
	} else {
		i := slices.IndexFunc(ex, func(l listing) bool { return l.member == member })
		if i < 0 {
			return false
		}
		ex = slices.Delete(ex, i, i+1)
	}
	if len(ex) == 0 {
		delete(s.extra, id)
	} else {
		s.extra[id] = ex
	}
	r.n--
	return true
}

func (s *State) hasListing(id uint32, member uint16) bool {
	found := false
	s.eachListing(id, func(l listing) { found = found || l.member == member })
	return found
}

func (s *State) applyAdd(mi uint16, index uint64, sig Signal, h uint64, expires int64) {
	id := s.signalID(sig, h)
	replaced := s.setListing(id, listing{index: index, expires: expires, member: mi})
	if !s.canAdd[mi] {
		return
	}
	r := &s.sigs[id]
	if !replaced {
		s.seen(r, +1)
	}
	s.emit(Change{Kind: Listed, Signal: sig, SignalID: id, Member: s.memberIDs[mi], Index: index, Expires: expires, Listers: int(r.visible)})
}

// seen counts one visible listing more (d = +1) or less (d = -1) of signal record r, and keeps
// the number of listings and of signals listed by anyone, so that [State.Counts] need not scan.
func (s *State) seen(r *sigRec, d int) {
	switch {
	case d > 0 && r.visible == 0:
		s.visibleSigs++
	case d < 0 && r.visible == 1:
		s.visibleSigs--
	}
	r.visible = uint16(int(r.visible) + d)
	s.listed += d
}

func (s *State) applyRevoke(mi uint16, index uint64, sig Signal) error {
	id, ok := s.sigIndex.lookup(sig, s.sigs)
	if !ok || !s.removeListing(id, mi) {
		return fmt.Errorf("%w: revoke of %s, which %q does not list", ErrNotPermitted, sig, s.memberIDs[mi])
	}
	if !s.canAdd[mi] {
		return nil
	}
	r := &s.sigs[id]
	s.seen(r, -1)
	s.emit(Change{Kind: Unlisted, Signal: sig, SignalID: id, Member: s.memberIDs[mi], Index: index, Listers: int(r.visible)})
	return nil
}

func (s *State) applyOpinion(mi uint16, index uint64, sig Signal, stance pb.Stance) {
	k := opinionKey{sig, mi}
	if stance == pb.Stance_STANCE_WITHDRAWN {
		delete(s.opinions, k)
	} else {
		s.opinions[k] = opinion{stance: stance, index: index}
	}
	if s.onRoster[mi] {
		s.emitOpinion(sig, mi, index, stance)
	}
}

func (s *State) emitOpinion(sig Signal, mi uint16, index uint64, st pb.Stance) {
	c := Change{Kind: OpinionChanged, Signal: sig, Member: s.memberIDs[mi], Index: index, Stance: st}
	if id, ok := s.sigIndex.lookup(sig, s.sigs); ok {
		c.SignalID = id
		c.Listers = int(s.sigs[id].visible)
	}
	s.emit(c)
}
