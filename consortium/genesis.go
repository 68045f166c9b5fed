package consortium

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// ProtocolVersion is the version of the hashfed protocol this package implements.
const ProtocolVersion = 1

// MaxGenesisSize bounds a genesis file, so a hostile file cannot make a parser allocate without
// limit.
const MaxGenesisSize = 1 << 20

// ID identifies a consortium: the SHA-256 of its genesis bytes.
type ID [32]byte

// String returns the id as 64 lowercase hex digits.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// ParseID parses 64 hex digits.
func ParseID(s string) (ID, error) {
	var id ID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("%w: consortium id %q is not 64 hex digits", ErrMalformed, truncate(s, 70))
	}
	copy(id[:], b)
	return id, nil
}

// Member is one roster entry.
type Member struct {
	ID   string
	Key  ed25519.PublicKey
	Role pb.Role
}

// CanAdd reports whether the member's role lets it list signals and vote on roster changes.
func (m Member) CanAdd() bool { return m.Role == pb.Role_ROLE_MEMBER }

// PublicKey returns the member's key in the form [PublicKey.String] prints.
func (m Member) PublicKey() PublicKey { return PublicKey{ID: m.ID, Key: m.Key} }

// CanCertify reports whether the member's role lets it certify accounts and content as protected:
// members and civil-society participants.
func (m Member) CanCertify() bool {
	return m.Role == pb.Role_ROLE_MEMBER || m.Role == pb.Role_ROLE_CIVIL_SOCIETY
}

// CanRefer reports whether the member's role lets it write referrals: referral authorities.
func (m Member) CanRefer() bool { return m.Role == pb.Role_ROLE_AUTHORITY }

// RoleName returns "member", "observer", "civil-society" or "authority".
func RoleName(r pb.Role) string {
	switch r {
	case pb.Role_ROLE_MEMBER:
		return "member"
	case pb.Role_ROLE_OBSERVER:
		return "observer"
	case pb.Role_ROLE_CIVIL_SOCIETY:
		return "civil-society"
	case pb.Role_ROLE_AUTHORITY:
		return "authority"
	}
	return fmt.Sprintf("role(%d)", int32(r))
}

// ParseRole parses "member", "observer", "civil-society" or "authority".
func ParseRole(s string) (pb.Role, error) {
	for r := pb.Role_ROLE_MEMBER; validRole(uint64(r)); r++ {
		if RoleName(r) == s {
			return r, nil
		}
	}
	return 0, fmt.Errorf("%w: role %q is not member, observer, civil-society or authority", ErrMalformed, s)
}

// validRole reports whether r is a role of this version.
func validRole(r uint64) bool {
	return r >= uint64(pb.Role_ROLE_MEMBER) && r <= uint64(pb.Role_ROLE_AUTHORITY)
}

// Genesis is a parsed, validated genesis document.
type Genesis struct {
	// ID is the consortium id, SHA-256 of Bytes.
	ID ID
	// Bytes is the serialized Genesis message that the founders sign.
	Bytes   []byte
	Name    string
	Created time.Time
	// Quorum is the configured quorum of the founding roster.
	Quorum  int
	Members []Member
	// Signatures holds the founders' signatures collected so far, by member id; all verified.
	Signatures map[string][]byte
}

// NewGenesisDraft makes a genesis file with no signatures yet. Members are sorted by id. Each
// founder then adds its signature with [SignGenesis].
func NewGenesisDraft(name string, created time.Time, members []Member, quorum int) ([]byte, error) {
	ms := slices.Clone(members)
	slices.SortFunc(ms, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	g := &pb.Genesis{
		Version:       ProtocolVersion,
		Name:          name,
		CreatedUnixMs: created.UnixMilli(),
		Quorum:        uint32(max(quorum, 0)),
	}
	for _, m := range ms {
		g.Members = append(g.Members, &pb.Member{Id: m.ID, PublicKey: m.Key, Role: m.Role})
	}
	if quorum < 0 || quorum > 1<<16 {
		return nil, fmt.Errorf("%w: quorum %d out of range", ErrInvalidGenesis, quorum)
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(g)
	if err != nil {
		return nil, fmt.Errorf("encode genesis: %w", err)
	}
	if _, err := decodeGenesis(raw); err != nil {
		return nil, err
	}
	return proto.Marshal(&pb.SignedGenesis{Genesis: raw})
}

// genesisMessage is what each founder signs.
func genesisMessage(id ID) []byte {
	return []byte("hashfed genesis v1\n" + id.String() + "\n")
}

// SignGenesis verifies the signatures already on a genesis file and adds (or replaces) the
// signature of key's member, who must be a founder.
func SignGenesis(file []byte, key *PrivateKey) ([]byte, error) {
	g, err := ParseGenesisDraft(file)
	if err != nil {
		return nil, err
	}
	m, ok := g.Member(key.ID())
	if !ok {
		return nil, fmt.Errorf("%w: %q is not a founder of this genesis", ErrUnknownMember, key.ID())
	}
	if !m.Key.Equal(key.Public().Key) {
		return nil, fmt.Errorf("%w: the key for %q is not the one in the genesis", ErrInvalidKey, key.ID())
	}
	g.Signatures[key.ID()] = key.Sign(genesisMessage(g.ID))
	return g.Marshal(), nil
}

// Marshal returns the genesis file: the genesis bytes and the signatures, ordered by member id.
func (g *Genesis) Marshal() []byte {
	sg := &pb.SignedGenesis{Genesis: g.Bytes}
	for _, m := range g.Members {
		if sig, ok := g.Signatures[m.ID]; ok {
			sg.Signatures = append(sg.Signatures, &pb.GenesisSignature{Member: m.ID, Signature: sig})
		}
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(sg)
	if err != nil {
		panic(err) // a message of bytes and strings always encodes
	}
	return b
}

// Member returns the founder with the given id.
func (g *Genesis) Member(id string) (Member, bool) {
	i, ok := slices.BinarySearchFunc(g.Members, id, func(m Member, id string) int { return strings.Compare(m.ID, id) })
	if !ok {
		return Member{}, false
	}
	return g.Members[i], true
}

// Missing returns the founders whose signature the genesis still lacks.
func (g *Genesis) Missing() []string {
	var out []string
	for _, m := range g.Members {
		if _, ok := g.Signatures[m.ID]; !ok {
			out = append(out, m.ID)
		}
	}
	return out
}

// ParseGenesis parses a genesis file and requires a valid signature from every founder.
func ParseGenesis(file []byte) (*Genesis, error) {
	g, err := ParseGenesisDraft(file)
	if err != nil {
		return nil, err
	}
	if missing := g.Missing(); len(missing) > 0 {
		return nil, fmt.Errorf("%w: not signed by %s", ErrInvalidGenesis, strings.Join(missing, ", "))
	}
	return g, nil
}

// ParseGenesisDraft parses a genesis file that founders are still signing: every signature present
// must verify, but some may be missing.
func ParseGenesisDraft(file []byte) (*Genesis, error) {
	if len(file) > MaxGenesisSize {
		return nil, fmt.Errorf("%w: genesis file is %d bytes, at most %d", ErrMalformed, len(file), MaxGenesisSize)
	}
	var sg pb.SignedGenesis
	if err := proto.Unmarshal(file, &sg); err != nil {
		return nil, fmt.Errorf("%w: genesis file: %v", ErrMalformed, err)
	}
	if len(sg.ProtoReflect().GetUnknown()) > 0 {
		return nil, fmt.Errorf("%w: genesis file has unknown fields", ErrMalformed)
	}
	g, err := decodeGenesis(sg.Genesis)
	if err != nil {
		return nil, err
	}
	msg := genesisMessage(g.ID)
	for _, s := range sg.Signatures {
		if len(s.ProtoReflect().GetUnknown()) > 0 {
			return nil, fmt.Errorf("%w: genesis signature has unknown fields", ErrMalformed)
		}
		m, ok := g.Member(s.Member)
		if !ok {
			return nil, fmt.Errorf("%w: genesis signed by %q, who is not a founder", ErrUnknownMember, truncate(s.Member, 40))
		}
		if _, dup := g.Signatures[m.ID]; dup {
			return nil, fmt.Errorf("%w: two genesis signatures by %q", ErrInvalidGenesis, m.ID)
		}
		if !ed25519.Verify(m.Key, msg, s.Signature) {
			return nil, fmt.Errorf("%w: genesis signature by %q does not verify", ErrBadSignature, m.ID)
		}
		g.Signatures[m.ID] = s.Signature
	}
	return g, nil
}

// decodeGenesis parses and validates genesis bytes.
func decodeGenesis(raw []byte) (*Genesis, error) {
	var gp pb.Genesis
	if err := proto.Unmarshal(raw, &gp); err != nil {
		return nil, fmt.Errorf("%w: genesis: %v", ErrMalformed, err)
	}
	if hasUnknown(&gp) {
		return nil, fmt.Errorf("%w: genesis has unknown fields", ErrMalformed)
	}
	if gp.Version != ProtocolVersion {
		return nil, fmt.Errorf("%w: version %d, this node speaks %d", ErrInvalidGenesis, gp.Version, ProtocolVersion)
	}
	if gp.Name == "" || len(gp.Name) > 128 || !utf8.ValidString(gp.Name) || strings.ContainsAny(gp.Name, "\n\r") {
		return nil, fmt.Errorf("%w: name must be 1 to 128 bytes of UTF-8 on one line", ErrInvalidGenesis)
	}
	if gp.CreatedUnixMs <= 0 {
		return nil, fmt.Errorf("%w: creation time missing", ErrInvalidGenesis)
	}
	g := &Genesis{
		ID:         sha256.Sum256(raw),
		Bytes:      raw,
		Name:       gp.Name,
		Created:    time.UnixMilli(gp.CreatedUnixMs).UTC(),
		Quorum:     int(gp.Quorum),
		Signatures: map[string][]byte{},
	}
	if len(gp.Members) == 0 || len(gp.Members) > MaxMembers {
		return nil, fmt.Errorf("%w: %d founders, want 1 to %d", ErrInvalidGenesis, len(gp.Members), MaxMembers)
	}
	keys := map[string]string{}
	voters := 0
	for i, mp := range gp.Members {
		m, err := memberFromProto(mp)
		if err != nil {
			return nil, fmt.Errorf("%w: founder %d: %w", ErrInvalidGenesis, i, err)
		}
		if i > 0 && m.ID <= g.Members[i-1].ID {
			return nil, fmt.Errorf("%w: founders must be sorted by id with no repeats (%q after %q)", ErrInvalidGenesis, m.ID, g.Members[i-1].ID)
		}
		if other, dup := keys[string(m.Key)]; dup {
			return nil, fmt.Errorf("%w: %q and %q share a key", ErrInvalidGenesis, other, m.ID)
		}
		keys[string(m.Key)] = m.ID
		if m.CanAdd() {
			voters++
		}
		g.Members = append(g.Members, m)
	}
	if voters == 0 {
		return nil, fmt.Errorf("%w: no founder has role member", ErrInvalidGenesis)
	}
	if g.Quorum < 1 || g.Quorum > voters {
		return nil, fmt.Errorf("%w: quorum %d, want 1 to %d (the founders with role member)", ErrInvalidGenesis, g.Quorum, voters)
	}
	return g, nil
}

// MaxMembers bounds the roster size.
const MaxMembers = 1000

// memberFromProto validates a roster member record.
func memberFromProto(mp *pb.Member) (Member, error) {
	if mp == nil {
		return Member{}, fmt.Errorf("%w: member missing", ErrMalformed)
	}
	if err := ValidateMemberID(mp.Id); err != nil {
		return Member{}, err
	}
	if len(mp.PublicKey) != ed25519.PublicKeySize {
		return Member{}, fmt.Errorf("%w: key of %q is %d bytes, want %d", ErrInvalidKey, mp.Id, len(mp.PublicKey), ed25519.PublicKeySize)
	}
	if !validRole(uint64(mp.Role)) {
		return Member{}, fmt.Errorf("%w: role of %q is %v, want member, observer, civil-society or authority", ErrMalformed, mp.Id, mp.Role)
	}
	return Member{ID: mp.Id, Key: ed25519.PublicKey(slices.Clone(mp.PublicKey)), Role: mp.Role}, nil
}

// hasUnknown reports whether m or any message inside it carries fields this version does not know.
func hasUnknown(m proto.Message) bool {
	r := m.ProtoReflect()
	if len(r.GetUnknown()) > 0 {
		return true
	}
	unknown := false
	r.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				if hasUnknown(l.Get(i).Message().Interface()) {
					unknown = true
					return false
				}
			}
		case fd.Message() != nil && !fd.IsMap():
			if hasUnknown(v.Message().Interface()) {
				unknown = true
				return false
			}
		}
		return true
	})
	return unknown
}
