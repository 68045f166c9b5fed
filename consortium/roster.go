package consortium

import (
	"crypto/ed25519"
	"fmt"
	"slices"
	"strings"

	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// Roster is the consortium's membership at one epoch. Epoch 0 is the genesis roster; each winning
// proposal moves it to the next epoch.
type Roster struct {
	Epoch uint64
	// Quorum is the configured quorum; see [Roster.EffectiveQuorum].
	Quorum int
	// Members is sorted by id.
	Members []Member
	// Proposal is the leaf hash of the proposal that produced this epoch (zero for epoch 0), and
	// Proposer its author.
	Proposal Hash
	Proposer string
}

// GenesisRoster returns the roster of epoch 0.
func GenesisRoster(g *Genesis) *Roster {
	return &Roster{Epoch: 0, Quorum: g.Quorum, Members: slices.Clone(g.Members)}
}

// Member returns the roster entry of id.
func (r *Roster) Member(id string) (Member, bool) {
	i, ok := slices.BinarySearchFunc(r.Members, id, func(m Member, id string) int { return strings.Compare(m.ID, id) })
	if !ok {
		return Member{}, false
	}
	return r.Members[i], true
}

// CanAdd reports whether id is on the roster with role member.
func (r *Roster) CanAdd(id string) bool {
	m, ok := r.Member(id)
	return ok && m.CanAdd()
}

// Voters returns the number of members with role member.
func (r *Roster) Voters() int {
	n := 0
	for _, m := range r.Members {
		if m.CanAdd() {
			n++
		}
	}
	return n
}

// EffectiveQuorum is the number of endorsements a proposal of this epoch needs: the configured
// quorum, but never half the voters or fewer, so that at most one proposal can win an epoch when
// members vote once.
func (r *Roster) EffectiveQuorum() int { return max(r.Quorum, r.Voters()/2+1) }

// MemberKey implements [Keyring] for the members of this epoch.
func (r *Roster) MemberKey(id string) (ed25519.PublicKey, bool) {
	m, ok := r.Member(id)
	return m.Key, ok
}

// apply returns the roster that results from applying changes in order, checking each against the
// roster so far and against ever, the ids and keys of every member of any earlier epoch (ids and
// keys are never reused).
func (r *Roster) apply(changes []*pb.RosterChange, ever map[string]ed25519.PublicKey) (*Roster, error) {
	next := &Roster{Epoch: r.Epoch + 1, Quorum: r.Quorum, Members: slices.Clone(r.Members)}
	find := func(id string) int {
		i, ok := slices.BinarySearchFunc(next.Members, id, func(m Member, id string) int { return strings.Compare(m.ID, id) })
		if !ok {
			return -1
		}
		return i
	}
	for i, c := range changes {
		switch ch := c.GetChange().(type) {
		case *pb.RosterChange_Admit:
			m, err := memberFromProto(ch.Admit)
			if err != nil {
				return nil, fmt.Errorf("change %d: %w", i, err)
			}
			if _, was := ever[m.ID]; was || find(m.ID) >= 0 {
				return nil, fmt.Errorf("change %d: %w: member id %q is or was on the roster; ids are never reused", i, ErrNotPermitted, m.ID)
			}
			for id, k := range ever {
				if k.Equal(m.Key) {
					return nil, fmt.Errorf("change %d: %w: the key of %q is %q's key", i, ErrNotPermitted, m.ID, id)
				}
			}
			for _, o := range next.Members {
				if o.Key.Equal(m.Key) {
					return nil, fmt.Errorf("change %d: %w: the key of %q is %q's key", i, ErrNotPermitted, m.ID, o.ID)
				}
			}
			j, _ := slices.BinarySearchFunc(next.Members, m.ID, func(m Member, id string) int { return strings.Compare(m.ID, id) })
			next.Members = slices.Insert(next.Members, j, m)
		case *pb.RosterChange_Remove:
			j := find(ch.Remove)
			if j < 0 {
				return nil, fmt.Errorf("change %d: %w: remove %q, who is not on the roster", i, ErrUnknownMember, ch.Remove)
			}
			next.Members = slices.Delete(next.Members, j, j+1)
		case *pb.RosterChange_SetQuorum:
			next.Quorum = int(ch.SetQuorum)
		case *pb.RosterChange_SetRole:
			j := find(ch.SetRole.GetMember())
			if j < 0 {
				return nil, fmt.Errorf("change %d: %w: set role of %q, who is not on the roster", i, ErrUnknownMember, ch.SetRole.GetMember())
			}
			next.Members[j].Role = ch.SetRole.Role
		default:
			return nil, fmt.Errorf("change %d: %w: empty roster change", i, ErrMalformed)
		}
	}
	v := next.Voters()
	if v == 0 {
		return nil, fmt.Errorf("%w: the roster would have no member with role member", ErrNotPermitted)
	}
	if next.Quorum < 1 || next.Quorum > v {
		return nil, fmt.Errorf("%w: quorum %d with %d voting members", ErrNotPermitted, next.Quorum, v)
	}
	return next, nil
}

// DescribeChanges renders roster changes for people ("admit delta (member), quorum 3").
func DescribeChanges(changes []*pb.RosterChange) string {
	var parts []string
	for _, c := range changes {
		switch ch := c.GetChange().(type) {
		case *pb.RosterChange_Admit:
			parts = append(parts, fmt.Sprintf("admit %s (%s)", ch.Admit.GetId(), RoleName(ch.Admit.GetRole())))
		case *pb.RosterChange_Remove:
			parts = append(parts, "remove "+ch.Remove)
		case *pb.RosterChange_SetQuorum:
			parts = append(parts, fmt.Sprintf("quorum %d", ch.SetQuorum))
		case *pb.RosterChange_SetRole:
			parts = append(parts, fmt.Sprintf("%s becomes %s", ch.SetRole.GetMember(), RoleName(ch.SetRole.GetRole())))
		}
	}
	return strings.Join(parts, ", ")
}
