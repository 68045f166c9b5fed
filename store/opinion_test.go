package store_test

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"github.com/hashfed/hashfed/store"
)

// TestOpinionNeedsListing checks that the submit path refuses an opinion on a signal nobody lists
// (never listed, revoked, or expired), allows withdrawing one, and that a lookup then reports the
// signal as not found.
func TestOpinionNeedsListing(t *testing.T) {
	g := fixture.Genesis(2, founders...)
	c := &clock{t: fixture.Epoch}
	o := testOptions()
	o.Now = c.now
	s := openStore(t, filepath.Join(t.TempDir(), "db"), g, o)
	never, listed, revoked, expiring := fixture.MD5(1), fixture.MD5(2), fixture.MD5(3), fixture.MD5(4)
	exp := fixture.Add(0, expiring)
	exp.GetAdd().ExpiresUnixMs = fixture.Epoch.Add(time.Hour).UnixMilli()
	submit(t, s, "alpha", fixture.Add(0, listed), fixture.Add(0, revoked), exp)
	submit(t, s, "bravo", fixture.Opinion(0, revoked, pb.Stance_STANCE_FALSE_POSITIVE))
	submit(t, s, "alpha", fixture.RevokeSignal(0, revoked))
	c.add(2 * time.Hour)

	tests := []struct {
		name  string
		entry *pb.Entry
		want  error
	}{
		{"never listed", fixture.Opinion(0, never, pb.Stance_STANCE_FALSE_POSITIVE), store.ErrNotListed},
		{"agree with nothing", fixture.Opinion(0, never, pb.Stance_STANCE_AGREE), store.ErrNotListed},
		{"revoked", fixture.Opinion(0, revoked, pb.Stance_STANCE_OUTDATED), store.ErrNotListed},
		{"expired", fixture.Opinion(0, expiring, pb.Stance_STANCE_FALSE_POSITIVE), store.ErrNotListed},
		{"listed", fixture.Opinion(0, listed, pb.Stance_STANCE_FALSE_POSITIVE), nil},
		{"withdraw after the revoke", fixture.Opinion(0, revoked, pb.Stance_STANCE_WITHDRAWN), nil},
	}
	t.Run("after an add in the same submission", func(t *testing.T) {
		sig := fixture.MD5(5)
		submit(t, s, "alpha", fixture.Add(0, sig), fixture.Opinion(0, sig, pb.Stance_STANCE_AGREE))
	})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := s.Submit(t.Context(), "bravo", []*pb.Entry{tc.entry})
			if err != nil {
				t.Fatal(err)
			}
			if got := out[0].Err; !errors.Is(got, tc.want) || (tc.want == nil) != (got == nil) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}

	lookups := []struct {
		name      string
		found     bool
		opinions  int
		sigLookup func() (store.Match, bool, error)
	}{
		{"never listed", false, 0, func() (store.Match, bool, error) { return s.Lookup(never) }},
		{"revoked, with an opinion", false, 0, func() (store.Match, bool, error) { return s.Lookup(revoked) }},
		{"listed", true, 1, func() (store.Match, bool, error) { return s.Lookup(listed) }},
	}
	for _, tc := range lookups {
		t.Run("lookup "+tc.name, func(t *testing.T) {
			m, found, err := tc.sigLookup()
			if err != nil {
				t.Fatal(err)
			}
			if found != tc.found || len(m.Opinions) != tc.opinions {
				t.Errorf("got found %v with %d opinions, want %v with %d", found, len(m.Opinions), tc.found, tc.opinions)
			}
		})
	}
}
