package store_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"github.com/hashfed/hashfed/store"
)

// TestProtectedMatch: a match carries the certifications in force of the listed signal and of the
// query's signal, until they expire.
func TestProtectedMatch(t *testing.T) {
	g := fixture.Genesis(2, fixture.Founder{ID: "alpha"}, fixture.Founder{ID: "bravo"}, fixture.Founder{ID: "ngo", Role: pb.Role_ROLE_CIVIL_SOCIETY})
	c := &clock{t: fixture.Epoch}
	o := testOptions()
	o.Now = c.now
	s := openStore(t, filepath.Join(t.TempDir(), "db"), g, o)
	listed := fixture.PDQ(1)
	near := listed
	near.Value[0] ^= 0x0f // 4 bits away
	other := fixture.PDQ(2)
	submit(t, s, "alpha", fixture.Add(0, listed), fixture.Add(0, other))
	cert := fixture.Certify(0, "ngo", pb.Category_CATEGORY_PARODY, near)
	cert.GetCertify().ExpiresUnixMs = fixture.Epoch.Add(time.Hour).UnixMilli()
	submit(t, s, "ngo", cert)

	// The query is certified, the listed signal it matches is not: the match is protected.
	ms, err := s.MatchPDQ(near.Value, store.DefaultQuery())
	if err != nil || len(ms) != 1 || len(ms[0].Protected) != 1 || ms[0].Protected[0].Author != "ngo" || ms[0].Protected[0].Category != pb.Category_CATEGORY_PARODY {
		t.Fatalf("match of the certified query: got %+v, %v; want one match protected by ngo", ms, err)
	}
	// The listed signal queried itself is not certified: no protection.
	if ms, _ := s.MatchSignal(listed, store.Query{Radius: 0, Quality: -1}); len(ms) != 1 || len(ms[0].Protected) != 0 {
		t.Errorf("match of the listed signal: got %+v, want no protection", ms)
	}
	// A certification of the listed signal itself protects every match of it.
	submit(t, s, "bravo", fixture.Certify(0, "bravo", pb.Category_CATEGORY_NEWS, other))
	if ms, _ := s.MatchSignal(other, store.DefaultQuery()); len(ms) != 1 || len(ms[0].Protected) != 1 || ms[0].Protected[0].Author != "bravo" {
		t.Errorf("match of a member's certified signal: got %+v", ms)
	}
	if m, ok, _ := s.Lookup(other); !ok || len(m.Protected) != 1 {
		t.Errorf("lookup: got %+v, %v; want the protection", m, ok)
	}
	// Expired: no longer protected.
	c.add(2 * time.Hour)
	if ms, _ := s.MatchPDQ(near.Value, store.DefaultQuery()); len(ms) != 1 || len(ms[0].Protected) != 0 {
		t.Errorf("after expiry: got %+v, want the match unprotected", ms)
	}
	var n int
	s.View(func(st *consortium.State) { n = len(st.Certifications()) })
	if n != 2 {
		t.Errorf("certifications in the state: got %d, want 2 (expiry is applied at match time)", n)
	}
}
