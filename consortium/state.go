package consortium

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"

	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
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
	// Role is the author's role in the current roster.
	Role pb.Role
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
	// listed counts the visible listings, visibleSigs the signals with at least one (see seen).
	listed      int
	visibleSigs int

	rejected  []Rejection
	nRejected int

	roles roles
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
	s.initRoles()
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

// errNotFound is returned by the in-memory entry reader.
var errNotFound = errors.New("no such entry")
