package consortium_test

import (
	"errors"
	"testing"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

func TestConstructors(t *testing.T) {
	sig, md5 := fixture.PDQ(1), fixture.MD5(1)
	q := func(v uint32) *uint32 { return &v }
	now := fixture.At(0)
	key := fixture.Key("delta").Public()
	tests := []struct {
		name string
		make func() (*pb.Entry, error)
		want error
	}{
		{"add, labels made canonical", func() (*pb.Entry, error) {
			return consortium.NewAdd(0, sig, []string{"lang:EN", "behaviour:threat-incitement"}, consortium.AddOptions{Quality: q(80), ContentID: "c1"})
		}, nil},
		{"add, quality dropped for md5", func() (*pb.Entry, error) {
			return consortium.NewAdd(now, md5, nil, consortium.AddOptions{Quality: q(80)})
		}, nil},
		{"add, bad label", func() (*pb.Entry, error) {
			return consortium.NewAdd(0, sig, []string{"behaviour:memes"}, consortium.AddOptions{})
		}, consortium.ErrInvalidLabel},
		{"add, quality 101", func() (*pb.Entry, error) {
			return consortium.NewAdd(0, sig, nil, consortium.AddOptions{Quality: q(101)})
		}, consortium.ErrInvalidEntry},
		{"add, expired at its time", func() (*pb.Entry, error) {
			return consortium.NewAdd(now, sig, nil, consortium.AddOptions{ExpiresUnixMs: now})
		}, consortium.ErrExpired},
		{"revoke signal", func() (*pb.Entry, error) {
			return consortium.NewRevokeSignal(0, sig, pb.RevokeReason_REVOKE_REASON_FALSE_POSITIVE, "x")
		}, nil},
		{"revoke without reason", func() (*pb.Entry, error) { return consortium.NewRevokeIndex(0, 3, 0, "") }, consortium.ErrInvalidEntry},
		{"opinion", func() (*pb.Entry, error) { return consortium.NewOpinion(now, sig, pb.Stance_STANCE_AGREE, "") }, nil},
		{"opinion without stance", func() (*pb.Entry, error) { return consortium.NewOpinion(0, sig, 0, "") }, consortium.ErrInvalidEntry},
		{"propose", func() (*pb.Entry, error) {
			return consortium.NewPropose(0, "alpha", 0, "admit", consortium.AdmitChange(key, pb.Role_ROLE_MEMBER), consortium.RemoveChange("bravo"), consortium.QuorumChange(2))
		}, nil},
		{"propose nothing", func() (*pb.Entry, error) { return consortium.NewPropose(0, "alpha", 0, "") }, consortium.ErrInvalidEntry},
		{"propose without author", func() (*pb.Entry, error) {
			return consortium.NewPropose(0, "", 0, "", consortium.RemoveChange("bravo"))
		}, consortium.ErrInvalidEntry},
		{"endorse", func() (*pb.Entry, error) { return consortium.NewEndorse(now, 1, consortium.LeafHash([]byte("p"))) }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := tc.make()
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if tc.want != nil {
				if e != nil {
					t.Errorf("got entry %v with the error, want nil", e)
				}
				return
			}
			// The entry, once given a time, is valid.
			if e.TimeUnixMs == 0 {
				e.TimeUnixMs = now
			}
			if err := consortium.ValidateEntry(e); err != nil {
				t.Errorf("ValidateEntry: got %v, want nil", err)
			}
		})
	}
}

func TestNewAddFields(t *testing.T) {
	q := uint32(80)
	e, err := consortium.NewAdd(0, fixture.MD5(1), []string{"lang:en", "behaviour:threat-incitement"}, consortium.AddOptions{ContentID: "c1", Note: "n", ExpiresUnixMs: 9, Quality: &q})
	if err != nil {
		t.Fatal(err)
	}
	a := e.GetAdd()
	if e.TimeUnixMs != 0 || a.ContentId != "c1" || a.Note != "n" || a.ExpiresUnixMs != 9 || a.Quality != nil {
		t.Errorf("got %v, want time 0, content c1, note n, expiry 9 and no quality (md5)", e)
	}
	if got, want := a.Labels, []string{"behaviour:threat-incitement", "lang:en"}; len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("got labels %v, want %v", got, want)
	}
}
