package consortium

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"google.golang.org/protobuf/proto"
)

// EntryReader returns entry index of a member's log, one that was applied to the state earlier.
// The state uses it to resolve a revoke that names its target by index.
type EntryReader func(member string, index uint64) ([]byte, error)

// ChangeKind says what a [Change] did.
type ChangeKind uint8

// The kinds of state change.
const (
	// Listed: the member now lists the signal (a new add, a re-add with new details, or the member
	// gained the member role).
	Listed ChangeKind = iota + 1
	// Unlisted: the member no longer lists the signal (a revoke, or the member left the roster or
	// became an observer).
	Unlisted
	// OpinionChanged: an opinion on the signal was set, replaced or withdrawn.
	OpinionChanged
	// RosterChanged: a proposal won and the roster moved to a new epoch.
	RosterChanged
)

var changeNames = [...]string{"", "listed", "unlisted", "opinion", "roster"}

// String names the kind.
func (k ChangeKind) String() string {
	if int(k) < len(changeNames) && k > 0 {
		return changeNames[k]
	}
	return fmt.Sprintf("change(%d)", uint8(k))
}

// Change is one change of the derived state, reported to the function given to [State.OnChange]
// as it happens. A takedown pipeline's feed and the match indices are built from these.
type Change struct {
	Kind ChangeKind
	// Signal and SignalID name the signal (all kinds but RosterChanged).
	Signal   Signal
	SignalID uint32
	// Member is the lister (Listed, Unlisted) or the opinion's author.
	Member string
	// Index is the entry that caused the change (for Listed, the add now in force).
	Index uint64
	// Expires is the listing's expiry in Unix milliseconds, 0 for none (Listed).
	Expires int64
	// Listers is the number of members listing the signal after the change (expiry not applied).
	Listers int
	// Stance is the opinion's stance, STANCE_WITHDRAWN when it was withdrawn (OpinionChanged).
	Stance pb.Stance
	// Roster is the new roster (RosterChanged).
	Roster *Roster
}

// Listing is one member's listing of a signal.
type Listing struct {
	Member string
	// Index is the add entry in force.
	Index uint64
	// Expires is in Unix milliseconds, 0 for none.
	Expires int64
}

// OpinionRecord is one author's current opinion on a signal.
type OpinionRecord struct {
	Author string
	Stance pb.Stance
	Index  uint64
}

// Rejection records an entry that replay ignored because it broke a rule. The log stays valid: the
// entry is part of the signed history, it just has no effect.
type Rejection struct {
	Member string
	Index  uint64
	Err    error
}

// maxRejectionsKept bounds the rejections a state remembers in detail; all are counted.
const maxRejectionsKept = 1000

type listing struct {
	index   uint64
	expires int64
	member  uint16
}

type sigRec struct {
	sig     Signal
	visible uint16
	n       uint16
	first   listing
}

type logState struct {
	size     uint64
	lastTime int64
}

type proposal struct {
	author  string
	index   uint64
	epoch   uint64
	hash    Hash
	changes []*pb.RosterChange
}

type voteKey struct {
	member uint16
	epoch  uint64
}

type opinionKey struct {
	sig    Signal
	author uint16
}

type opinion struct {
	stance pb.Stance
	index  uint64
}

// State is the shared set derived from the member logs: who lists which signal, the opinions on
// them, and the roster. It is a pure function of the log contents: applying the same entries in
// any interleaving of the logs (each log in its own order) gives the same state and [State.Digest].
// A State is not safe for concurrent use.
type State struct {
	g        *Genesis
	read     EntryReader
	onChange func(Change)

	chain     []*Roster
	ever      map[string]ed25519.PublicKey
	proposals map[Hash]*proposal
	votes     map[voteKey]Hash
	invalid   map[Hash]string

	memberIdx map[string]uint16
	memberIDs []string
	logs      []logState
	canAdd    []bool
	onRoster  []bool

	sigIndex sigTable
	sigs     []sigRec
	extra    map[uint32][]listing
	opinions map[opinionKey]opinion
	listed   int

	rejected  []Rejection
	nRejected int
}

// NewState returns the state of a consortium whose logs are all empty. read resolves revokes by
// index; it may be nil when every revoke names its signal.
func NewState(g *Genesis, read EntryReader) *State {
	s := &State{
		g:         g,
		read:      read,
		ever:      map[string]ed25519.PublicKey{},
		proposals: map[Hash]*proposal{},
		votes:     map[voteKey]Hash{},
		invalid:   map[Hash]string{},
		memberIdx: map[string]uint16{},
		sigIndex:  newSigTable(),
		extra:     map[uint32][]listing{},
		opinions:  map[opinionKey]opinion{},
	}
	r := GenesisRoster(g)
	s.chain = []*Roster{r}
	for _, m := range r.Members {
		s.ever[m.ID] = m.Key
		s.intern(m.ID)
	}
	s.refreshRoles()
	return s
}

// Grow makes room for about n more entries' worth of signals, for replays whose size is known in
// advance (the sum of the log sizes); it only saves time.
func (s *State) Grow(n int) {
	s.growSigs(n)
	s.sigIndex.reserve(len(s.sigs)+n, s.sigs)
}

// growSigs makes room in the signal slice for n more signals. It uses make, not slices.Grow: memory
// fresh from the OS is not cleared again, and a large clear is preemptible here, where slices.Grow's
// is one long step that stalls the garbage collector (seconds at 10M signals).
func (s *State) growSigs(n int) {
	if cap(s.sigs)-len(s.sigs) >= n {
		return
	}
	sigs := make([]sigRec, len(s.sigs), len(s.sigs)+n)
	copy(sigs, s.sigs)
	s.sigs = sigs
}

// OnChange sets the function told of every change from now on (nil for none).
func (s *State) OnChange(fn func(Change)) { s.onChange = fn }

func (s *State) emit(c Change) {
	if s.onChange != nil {
		s.onChange(c)
	}
}

// Genesis returns the consortium's genesis.
func (s *State) Genesis() *Genesis { return s.g }

// Roster returns the current roster.
func (s *State) Roster() *Roster { return s.chain[len(s.chain)-1] }

// Chain returns every roster from genesis (epoch 0) to the current one.
func (s *State) Chain() []*Roster { return slices.Clone(s.chain) }

// MemberKey implements [Keyring]: the key of any member that was ever on the roster.
func (s *State) MemberKey(id string) (ed25519.PublicKey, bool) {
	k, ok := s.ever[id]
	return k, ok
}

// Size returns the number of entries applied from member's log.
func (s *State) Size(member string) uint64 {
	i, ok := s.memberIdx[member]
	if !ok {
		return 0
	}
	return s.logs[i].size
}

// LastTime returns the time of the last valid entry applied from member's log, in Unix
// milliseconds, and whether the log has any.
func (s *State) LastTime(member string) (int64, bool) {
	i, ok := s.memberIdx[member]
	if !ok || s.logs[i].size == 0 {
		return 0, false
	}
	return s.logs[i].lastTime, true
}

// Heads returns the number of entries applied from every log that has any.
func (s *State) Heads() map[string]uint64 {
	out := map[string]uint64{}
	for i, l := range s.logs {
		if l.size > 0 {
			out[s.memberIDs[i]] = l.size
		}
	}
	return out
}

// Rejections returns the entries replay ignored (at most the first 1000) and how many there were.
func (s *State) Rejections() ([]Rejection, int) { return slices.Clone(s.rejected), s.nRejected }

// InvalidProposals returns the proposals that can never win, by leaf hash, with the reason.
func (s *State) InvalidProposals() map[Hash]string {
	out := make(map[Hash]string, len(s.invalid))
	for k, v := range s.invalid {
		out[k] = v
	}
	return out
}

// Counts returns the number of signals listed by at least one member and the number of listings.
func (s *State) Counts() (signals, listings int) {
	for i := range s.sigs {
		if s.sigs[i].visible > 0 {
			signals++
		}
	}
	return signals, s.listed
}

// NumSignalIDs returns one more than the largest signal id handed out.
func (s *State) NumSignalIDs() int { return len(s.sigs) }

// SignalByID returns the signal with the given id.
func (s *State) SignalByID(id uint32) (Signal, bool) {
	if int(id) >= len(s.sigs) {
		return Signal{}, false
	}
	return s.sigs[id].sig, true
}

// SignalID returns the id of a signal that has appeared in an add.
func (s *State) SignalID(sig Signal) (uint32, bool) {
	id, ok := s.sigIndex.lookup(sig, s.sigs)
	return id, ok
}

// Listed returns the members listing a signal, ordered by member id (expiry not applied).
func (s *State) Listed(sig Signal) []Listing {
	id, ok := s.sigIndex.lookup(sig, s.sigs)
	if !ok {
		return nil
	}
	return s.ListedByID(id)
}

// ListedByID is [State.Listed] by signal id.
func (s *State) ListedByID(id uint32) []Listing {
	if int(id) >= len(s.sigs) || s.sigs[id].visible == 0 {
		return nil
	}
	var out []Listing
	s.eachListing(id, func(l listing) {
		if s.canAdd[l.member] {
			out = append(out, Listing{Member: s.memberIDs[l.member], Index: l.index, Expires: l.expires})
		}
	})
	slices.SortFunc(out, func(a, b Listing) int { return strings.Compare(a.Member, b.Member) })
	return out
}

// Opinions returns the current opinions on a signal by members on the roster, ordered by author.
func (s *State) Opinions(sig Signal) []OpinionRecord {
	var out []OpinionRecord
	for i, id := range s.memberIDs {
		if !s.onRoster[i] {
			continue
		}
		if o, ok := s.opinions[opinionKey{sig, uint16(i)}]; ok {
			out = append(out, OpinionRecord{Author: id, Stance: o.stance, Index: o.index})
		}
	}
	slices.SortFunc(out, func(a, b OpinionRecord) int { return strings.Compare(a.Author, b.Author) })
	return out
}

// ForEachListed calls fn for every signal listed by at least one member, in signal id order.
func (s *State) ForEachListed(fn func(id uint32, sig Signal) bool) {
	for i := range s.sigs {
		if s.sigs[i].visible > 0 && !fn(uint32(i), s.sigs[i].sig) {
			return
		}
	}
}

func (s *State) eachListing(id uint32, fn func(listing)) {
	r := &s.sigs[id]
	if r.n == 0 {
		return
	}
	fn(r.first)
	for _, l := range s.extra[id] {
		fn(l)
	}
}

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
		s.applyAdd(mi, index, v.sig, v.expires)
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
	}
	return nil
}

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

func (s *State) signalID(sig Signal) uint32 {
	h := s.sigIndex.hash(&sig)
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

func (s *State) applyAdd(mi uint16, index uint64, sig Signal, expires int64) {
	id := s.signalID(sig)
	replaced := s.setListing(id, listing{index: index, expires: expires, member: mi})
	if !s.canAdd[mi] {
		return
	}
	r := &s.sigs[id]
	if !replaced {
		r.visible++
		s.listed++
	}
	s.emit(Change{Kind: Listed, Signal: sig, SignalID: id, Member: s.memberIDs[mi], Index: index, Expires: expires, Listers: int(r.visible)})
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
	r.visible--
	s.listed--
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

// vote records member's vote (a proposal or an endorsement) for epoch; a second vote in one epoch
// is refused.
func (s *State) vote(mi uint16, epoch uint64, h Hash) error {
	k := voteKey{mi, epoch}
	if prev, ok := s.votes[k]; ok {
		return fmt.Errorf("%w: %q already voted in epoch %d for proposal %s", ErrDoubleEndorse, s.memberIDs[mi], epoch, shortHash(prev))
	}
	s.votes[k] = h
	return nil
}

// votedFor reports whether member's vote in epoch (its first propose or endorse of that epoch in its
// own log) is for the proposal with leaf hash h.
func (s *State) votedFor(member string, epoch uint64, h Hash) bool {
	mi, ok := s.memberIdx[member]
	if !ok {
		return false
	}
	v, ok := s.votes[voteKey{mi, epoch}]
	return ok && v == h
}

// recomputeRosterFor recomputes the roster after a vote or proposal of epoch: only when the chain
// reaches that epoch. A vote in a later epoch cannot change the chain yet (the chain stops at the
// current epoch, whose candidates and votes are unchanged), and is counted by the recompute that
// reaches its epoch. Skipping it keeps replay linear when a log holds many votes for future
// epochs (each recompute sorts every proposal: 20,000 of them took over ten minutes).
func (s *State) recomputeRosterFor(epoch uint64) {
	if epoch > s.Roster().Epoch {
		return
	}
	s.recomputeRoster()
}

// recomputeRoster rebuilds the chain of rosters from genesis and the recorded proposals and votes,
// then brings listing visibility in line with the new current roster.
func (s *State) recomputeRoster() {
	old := s.Roster()
	chain := []*Roster{GenesisRoster(s.g)}
	ever := map[string]ed25519.PublicKey{}
	for _, m := range chain[0].Members {
		ever[m.ID] = m.Key
	}
	// Everything below iterates in a fixed order (proposals by leaf hash, members by id), so the
	// result and the invalid reasons do not depend on map iteration or on the order of Apply calls.
	byEpoch := map[uint64][]*proposal{}
	for _, h := range slices.SortedFunc(maps.Keys(s.proposals), func(a, b Hash) int { return bytes.Compare(a[:], b[:]) }) {
		p := s.proposals[h]
		byEpoch[p.epoch] = append(byEpoch[p.epoch], p)
	}
	clear(s.invalid)
	for {
		r := chain[len(chain)-1]
		cands := byEpoch[r.Epoch]
		slices.SortFunc(cands, func(a, b *proposal) int { return bytes.Compare(a.hash[:], b.hash[:]) })
		var best *proposal
		var bestNext *Roster
		bestVotes := 0
		for _, p := range cands {
			if !r.CanAdd(p.author) {
				s.invalid[p.hash] = fmt.Sprintf("%s is not a voting member in epoch %d", p.author, r.Epoch)
				continue
			}
			next, err := r.apply(p.changes, ever)
			if err != nil {
				s.invalid[p.hash] = err.Error()
				continue
			}
			n := 0
			for _, m := range r.Members {
				if !m.CanAdd() {
					continue
				}
				if s.votedFor(m.ID, r.Epoch, p.hash) {
					n++
				}
			}
			if n >= r.EffectiveQuorum() && n > bestVotes {
				best, bestNext, bestVotes = p, next, n
			}
		}
		if best == nil {
			break
		}
		bestNext.Proposal, bestNext.Proposer = best.hash, best.author
		chain = append(chain, bestNext)
		for _, m := range bestNext.Members {
			if _, ok := ever[m.ID]; !ok {
				ever[m.ID] = m.Key
			}
		}
	}
	s.chain = chain
	s.ever = ever
	for _, id := range slices.Sorted(maps.Keys(ever)) {
		s.intern(id) //nolint:errcheck // ids from validated roster changes
	}
	cur := s.Roster()
	if cur.Epoch == old.Epoch && cur.Proposal == old.Proposal {
		return
	}
	s.refreshRoles()
	s.emit(Change{Kind: RosterChanged, Roster: cur})
}

// refreshRoles recomputes who may list and who is on the roster, and reports every listing and
// opinion whose visibility changed.
func (s *State) refreshRoles() {
	r := s.Roster()
	var gained, lost []uint16
	var joined, left []uint16
	for i, id := range s.memberIDs {
		m, on := r.Member(id)
		can := on && m.CanAdd()
		if can != s.canAdd[i] {
			if can {
				gained = append(gained, uint16(i))
			} else {
				lost = append(lost, uint16(i))
			}
			s.canAdd[i] = can
		}
		if on != s.onRoster[i] {
			if on {
				joined = append(joined, uint16(i))
			} else {
				left = append(left, uint16(i))
			}
			s.onRoster[i] = on
		}
	}
	if len(gained)+len(lost) > 0 {
		for id := range s.sigs {
			s.eachListing(uint32(id), func(l listing) {
				r := &s.sigs[id]
				switch {
				case slices.Contains(gained, l.member):
					r.visible++
					s.listed++
					s.emit(Change{Kind: Listed, Signal: r.sig, SignalID: uint32(id), Member: s.memberIDs[l.member], Index: l.index, Expires: l.expires, Listers: int(r.visible)})
				case slices.Contains(lost, l.member):
					r.visible--
					s.listed--
					s.emit(Change{Kind: Unlisted, Signal: r.sig, SignalID: uint32(id), Member: s.memberIDs[l.member], Index: l.index, Listers: int(r.visible)})
				}
			})
		}
	}
	if len(joined)+len(left) > 0 {
		// Reported in a fixed order (by signal, then author id), not the map's.
		var keys []opinionKey
		for k := range s.opinions {
			if slices.Contains(joined, k.author) || slices.Contains(left, k.author) {
				keys = append(keys, k)
			}
		}
		slices.SortFunc(keys, func(a, b opinionKey) int {
			if c := strings.Compare(a.sig.Type.String(), b.sig.Type.String()); c != 0 {
				return c
			}
			if c := bytes.Compare(a.sig.Bytes(), b.sig.Bytes()); c != 0 {
				return c
			}
			return strings.Compare(s.memberIDs[a.author], s.memberIDs[b.author])
		})
		for _, k := range keys {
			o := s.opinions[k]
			if slices.Contains(joined, k.author) {
				s.emitOpinion(k.sig, k.author, o.index, o.stance)
			} else {
				s.emitOpinion(k.sig, k.author, o.index, pb.Stance_STANCE_WITHDRAWN)
			}
		}
	}
}

// Check reports whether member may append entry raw to its log now, given this state: the rules of
// [ValidateEntry], plus the author is on the roster, only members add or vote, a proposal names
// member as its author ([ErrWrongAuthor] otherwise), a revoke names a signal the author lists, votes
// are for the current epoch and one per epoch, and time does not go backwards. A node runs it on
// its own submissions before appending them.
func (s *State) Check(member string, raw []byte) error {
	return s.CheckBatch(member, [][]byte{raw})[0]
}

// CheckBatch checks entries that member would append in order, each against the state as it would
// be after the accepted ones before it (see [State.Check]); a refused entry is left out and does not
// affect the others. It returns one error (or nil) per entry. It changes nothing.
func (s *State) CheckBatch(member string, raws [][]byte) []error {
	errs := make([]error, len(raws))
	r := s.Roster()
	m, ok := r.Member(member)
	if !ok {
		for i := range errs {
			errs[i] = fmt.Errorf("%w: %q is not on the roster of epoch %d", ErrUnknownMember, member, r.Epoch)
		}
		return errs
	}
	mi := s.memberIdx[member]
	ov := batchOverlay{
		lastTime: s.logs[mi].lastTime,
		next:     s.logs[mi].size,
		listed:   map[Signal]bool{},
		raws:     map[uint64][]byte{},
		votes:    map[uint64]Hash{},
	}
	for i, raw := range raws {
		if errs[i] = s.check(member, mi, m, raw, &ov); errs[i] == nil {
			ov.raws[ov.next] = raw
			ov.next++
		}
	}
	return errs
}

// batchOverlay is what a batch of not yet applied entries of one author changes for checking the
// next: its time, its listings, its votes and the entries themselves (for revokes by index).
type batchOverlay struct {
	lastTime int64
	next     uint64
	listed   map[Signal]bool
	raws     map[uint64][]byte
	votes    map[uint64]Hash
}

func (s *State) check(member string, mi uint16, m Member, raw []byte, ov *batchOverlay) error {
	var v entryView
	if err := decodeEntry(raw, &v); err != nil {
		return err
	}
	r := s.Roster()
	if v.time < ov.lastTime {
		return fmt.Errorf("%w: time %d ms is before the log's last entry at %d ms", ErrOutOfOrder, v.time, ov.lastTime)
	}
	switch v.op {
	case OpAdd:
		if !m.CanAdd() {
			return fmt.Errorf("%w: %q is an observer; observers cannot add", ErrNotPermitted, member)
		}
		ov.listed[v.sig] = true
	case OpRevoke:
		sig := v.sig
		if v.byIndex {
			if v.index >= ov.next {
				return fmt.Errorf("%w: revoke names entry %d, which is not before it", ErrInvalidEntry, v.index)
			}
			var perr, err error
			if raw, ok := ov.raws[v.index]; ok {
				var t entryView
				if decodeEntry(raw, &t) != nil || t.op != OpAdd {
					perr = fmt.Errorf("%w: revoke names entry %d, which is not a valid add", ErrInvalidEntry, v.index)
				}
				sig = t.sig
			} else {
				sig, perr, err = s.revokeTarget(member, ov.next, v.index)
			}
			if err != nil {
				return err
			}
			if perr != nil {
				return perr
			}
		}
		listed, inBatch := ov.listed[sig]
		if !inBatch {
			id, ok := s.sigIndex.lookup(sig, s.sigs)
			listed = ok && s.hasListing(id, mi)
		}
		if !listed {
			return fmt.Errorf("%w: %q does not list %s, so cannot revoke it (a member revokes only its own adds)", ErrNotPermitted, member, sig)
		}
		ov.listed[sig] = false
	case OpPropose, OpEndorse:
		if v.op == OpPropose && string(v.author) != member {
			return fmt.Errorf("%w: the proposal names %q as its author, but it would be written in %q's log; a member proposes only in its own log, with its own id as author (a copy of another member's proposal has no effect: endorse it instead)",
				ErrWrongAuthor, v.author, member)
		}
		if !m.CanAdd() {
			return fmt.Errorf("%w: %q is an observer; only members propose and endorse", ErrNotPermitted, member)
		}
		var vote Hash
		if v.op == OpPropose {
			var e pb.Entry
			if err := proto.Unmarshal(raw, &e); err != nil {
				return fmt.Errorf("%w: proposal: %v", ErrMalformed, err)
			}
			if _, err := r.apply(e.GetPropose().GetChanges(), s.ever); err != nil {
				return fmt.Errorf("%w: proposal: %w", ErrInvalidEntry, err)
			}
			vote = LeafHash(raw)
		} else {
			p, ok := s.proposals[v.proposal]
			if !ok {
				return fmt.Errorf("%w: endorsement of unknown proposal %s", ErrInvalidEntry, shortHash(v.proposal))
			}
			if p.epoch != v.epoch {
				return fmt.Errorf("%w: endorsement for epoch %d of a proposal for epoch %d", ErrInvalidEntry, v.epoch, p.epoch)
			}
			vote = v.proposal
		}
		if v.epoch != r.Epoch {
			return fmt.Errorf("%w: vote for epoch %d, but the roster is at epoch %d", ErrInvalidEntry, v.epoch, r.Epoch)
		}
		prev, ok := s.votes[voteKey{mi, v.epoch}]
		if !ok {
			prev, ok = ov.votes[v.epoch]
		}
		if ok {
			return fmt.Errorf("%w: %q already voted in epoch %d for proposal %s", ErrDoubleEndorse, member, v.epoch, shortHash(prev))
		}
		ov.votes[v.epoch] = vote
	}
	ov.lastTime = v.time
	return nil
}

// Proposals returns the pending proposals of the current epoch with their vote counts.
func (s *State) Proposals() []ProposalStatus {
	r := s.Roster()
	var out []ProposalStatus
	for _, p := range s.proposals {
		if p.epoch != r.Epoch {
			continue
		}
		ps := ProposalStatus{Hash: p.hash, Author: p.author, Index: p.index, Epoch: p.epoch, Changes: p.changes, Needed: r.EffectiveQuorum(), Invalid: s.invalid[p.hash]}
		for _, m := range r.Members {
			if m.CanAdd() && s.votedFor(m.ID, p.epoch, p.hash) {
				ps.Votes = append(ps.Votes, m.ID)
			}
		}
		out = append(out, ps)
	}
	slices.SortFunc(out, func(a, b ProposalStatus) int { return bytes.Compare(a.Hash[:], b.Hash[:]) })
	return out
}

// ProposalStatus describes a pending roster proposal.
type ProposalStatus struct {
	Hash    Hash
	Author  string
	Index   uint64
	Epoch   uint64
	Changes []*pb.RosterChange
	// Votes are the voting members of the epoch that voted for it; Needed is the effective quorum.
	Votes  []string
	Needed int
	// Invalid, when not empty, says why the proposal cannot win.
	Invalid string
}

// Digest returns the state digest: SHA-256 over a canonical encoding of the roster, every listing
// and every opinion (docs/PROTOCOL.md, "State digest"). Equal logs give equal digests.
func (s *State) Digest() Hash {
	h := sha256.New()
	h.Write([]byte("hashfed state v1\n"))
	var buf []byte
	r := s.Roster()
	buf = append(buf, 'R')
	buf = binary.AppendUvarint(buf, r.Epoch)
	buf = binary.AppendUvarint(buf, uint64(r.Quorum))
	buf = binary.AppendUvarint(buf, uint64(len(r.Members)))
	for _, m := range r.Members {
		buf = appendStr(buf, m.ID)
		buf = append(buf, byte(m.Role))
		buf = append(buf, m.Key...)
	}
	h.Write(buf)

	type item struct {
		sig    Signal
		member string
		index  uint64
		stance pb.Stance
	}
	var items []item
	for id := range s.sigs {
		if s.sigs[id].visible == 0 {
			continue
		}
		s.eachListing(uint32(id), func(l listing) {
			if s.canAdd[l.member] {
				items = append(items, item{sig: s.sigs[id].sig, member: s.memberIDs[l.member], index: l.index})
			}
		})
	}
	cmp := func(a, b item) int {
		if c := strings.Compare(a.sig.Type.String(), b.sig.Type.String()); c != 0 {
			return c
		}
		if c := bytes.Compare(a.sig.Bytes(), b.sig.Bytes()); c != 0 {
			return c
		}
		return strings.Compare(a.member, b.member)
	}
	slices.SortFunc(items, cmp)
	for _, it := range items {
		buf = append(buf[:0], 'L')
		buf = appendStr(buf, it.sig.Type.String())
		buf = appendStr(buf, string(it.sig.Bytes()))
		buf = appendStr(buf, it.member)
		buf = binary.AppendUvarint(buf, it.index)
		h.Write(buf)
	}
	items = items[:0]
	for k, o := range s.opinions {
		if s.onRoster[k.author] {
			items = append(items, item{sig: k.sig, member: s.memberIDs[k.author], index: o.index, stance: o.stance})
		}
	}
	slices.SortFunc(items, cmp)
	for _, it := range items {
		buf = append(buf[:0], 'O')
		buf = appendStr(buf, it.sig.Type.String())
		buf = appendStr(buf, string(it.sig.Bytes()))
		buf = appendStr(buf, it.member)
		buf = append(buf, byte(it.stance))
		buf = binary.AppendUvarint(buf, it.index)
		h.Write(buf)
	}
	var out Hash
	h.Sum(out[:0])
	return out
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// errNotFound is returned by the in-memory entry reader.
var errNotFound = errors.New("no such entry")
