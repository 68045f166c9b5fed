package consortium_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"google.golang.org/protobuf/proto"
)

func members(ids ...string) []consortium.Member {
	var ms []consortium.Member
	for _, id := range ids {
		ms = append(ms, consortium.Member{ID: id, Key: fixture.Key(id).Public().Key, Role: pb.Role_ROLE_MEMBER})
	}
	return ms
}

func TestGenesisMultiPartySigning(t *testing.T) {
	draft, err := consortium.NewGenesisDraft("GIFCT-like", fixture.Epoch, members("charlie", "alpha", "bravo"), 2)
	if err != nil {
		t.Fatal(err)
	}
	d, err := consortium.ParseGenesisDraft(draft)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(d.Missing(), ","), "alpha,bravo,charlie"; got != want {
		t.Errorf("missing: got %s, want %s", got, want)
	}
	if _, err := consortium.ParseGenesis(draft); !errors.Is(err, consortium.ErrInvalidGenesis) || !strings.Contains(err.Error(), "not signed by alpha, bravo, charlie") {
		t.Errorf("unsigned genesis: got %v", err)
	}
	// Each founder signs separately, in any order; the id never changes.
	file := draft
	for _, id := range []string{"bravo", "charlie", "alpha"} {
		if file, err = consortium.SignGenesis(file, fixture.Key(id)); err != nil {
			t.Fatalf("sign by %s: %v", id, err)
		}
	}
	g, err := consortium.ParseGenesis(file)
	if err != nil {
		t.Fatal(err)
	}
	if g.ID != d.ID {
		t.Errorf("id changed while signing: got %s, want %s", g.ID, d.ID)
	}
	if g.Members[0].ID != "alpha" || g.Quorum != 2 || g.Name != "GIFCT-like" || !g.Created.Equal(fixture.Epoch) {
		t.Errorf("genesis fields: got %+v", g)
	}
	// Signing twice replaces, never duplicates.
	again, err := consortium.SignGenesis(file, fixture.Key("alpha"))
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(file) {
		t.Errorf("re-signing changed the file")
	}
}

func TestGenesisRefusals(t *testing.T) {
	good, _ := consortium.NewGenesisDraft("c", fixture.Epoch, members("alpha", "bravo"), 2)
	signed, _ := consortium.SignGenesis(good, fixture.Key("alpha"))

	forged := func() []byte {
		var sg pb.SignedGenesis
		proto.Unmarshal(signed, &sg)
		sg.Signatures[0].Signature[5] ^= 1
		b, _ := proto.Marshal(&sg)
		return b
	}()
	stranger := func() []byte {
		var sg pb.SignedGenesis
		proto.Unmarshal(signed, &sg)
		sg.Signatures[0].Member = "mallory"
		b, _ := proto.Marshal(&sg)
		return b
	}()
	dupKey := []consortium.Member{{ID: "a", Key: fixture.Key("x").Public().Key, Role: pb.Role_ROLE_MEMBER}, {ID: "b", Key: fixture.Key("x").Public().Key, Role: pb.Role_ROLE_MEMBER}}
	observersOnly := []consortium.Member{{ID: "a", Key: fixture.Key("a").Public().Key, Role: pb.Role_ROLE_OBSERVER}}

	tests := []struct {
		name string
		make func() ([]byte, error)
		want error
		msg  string
	}{
		{"forged signature", func() ([]byte, error) { return forged, nil }, consortium.ErrBadSignature, "does not verify"},
		{"signature by non-founder", func() ([]byte, error) { return stranger, nil }, consortium.ErrUnknownMember, "mallory"},
		{"garbage", func() ([]byte, error) { return []byte("not a genesis"), nil }, consortium.ErrMalformed, "genesis"},
		{"quorum too high", func() ([]byte, error) { return consortium.NewGenesisDraft("c", fixture.Epoch, members("a", "b"), 3) }, consortium.ErrInvalidGenesis, "quorum 3"},
		{"quorum zero", func() ([]byte, error) { return consortium.NewGenesisDraft("c", fixture.Epoch, members("a", "b"), 0) }, consortium.ErrInvalidGenesis, "quorum 0"},
		{"duplicate id", func() ([]byte, error) { return consortium.NewGenesisDraft("c", fixture.Epoch, members("a", "a"), 1) }, consortium.ErrInvalidGenesis, "no repeats"},
		{"shared key", func() ([]byte, error) { return consortium.NewGenesisDraft("c", fixture.Epoch, dupKey, 1) }, consortium.ErrInvalidGenesis, "share a key"},
		{"no members", func() ([]byte, error) { return consortium.NewGenesisDraft("c", fixture.Epoch, nil, 1) }, consortium.ErrInvalidGenesis, "0 founders"},
		{"observers only", func() ([]byte, error) { return consortium.NewGenesisDraft("c", fixture.Epoch, observersOnly, 1) }, consortium.ErrInvalidGenesis, "no founder has role member"},
		{"empty name", func() ([]byte, error) { return consortium.NewGenesisDraft("", fixture.Epoch, members("a"), 1) }, consortium.ErrInvalidGenesis, "name"},
		{"no time", func() ([]byte, error) { return consortium.NewGenesisDraft("c", time.UnixMilli(0), members("a"), 1) }, consortium.ErrInvalidGenesis, "creation time"},
		{"bad member id", func() ([]byte, error) {
			return consortium.NewGenesisDraft("c", fixture.Epoch, []consortium.Member{{ID: "Bad", Key: fixture.Key("bad").Public().Key, Role: pb.Role_ROLE_MEMBER}}, 1)
		}, consortium.ErrInvalidMemberID, "Bad"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file, err := tc.make()
			if err == nil {
				_, err = consortium.ParseGenesisDraft(file)
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("got %v, want %v mentioning %q", err, tc.want, tc.msg)
			}
		})
	}
	if _, err := consortium.SignGenesis(good, fixture.Key("mallory")); !errors.Is(err, consortium.ErrUnknownMember) {
		t.Errorf("sign by non-founder: got %v, want ErrUnknownMember", err)
	}
	impostor, _ := consortium.NewPrivateKey("alpha", make([]byte, 32))
	if _, err := consortium.SignGenesis(good, impostor); !errors.Is(err, consortium.ErrInvalidKey) {
		t.Errorf("sign with another key for a founder id: got %v, want ErrInvalidKey", err)
	}
}
