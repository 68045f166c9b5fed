package store_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/consortium/vpdq"
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

// listedVideoWithNGO opens a store whose roster has a civil-society participant, ngo, and in which
// alpha lists a sample video in two parts; it returns the store, the video's frames and its parts.
func listedVideoWithNGO(t *testing.T) (*store.Store, []vpdq.Frame, []consortium.Signal) {
	t.Helper()
	g := fixture.Genesis(2, fixture.Founder{ID: "alpha"}, fixture.Founder{ID: "bravo"}, fixture.Founder{ID: "ngo", Role: pb.Role_ROLE_CIVIL_SOCIETY})
	s := openStore(t, filepath.Join(t.TempDir(), "db"), g, testOptions())
	chair := sampleFrames(t, "chair-19-sd-bar")
	adds, parts := videoAdds(t, chair, "video-1", 2)
	submit(t, s, "alpha", adds...)
	return s, chair, parts
}

// TestProtectedFrameMatch: an image query that matches a frame of a listed video is protected, as
// any match, when the query's signal or the listed video part is certified (PROTOCOL.md section 14).
func TestProtectedFrameMatch(t *testing.T) {
	s, chair, parts := listedVideoWithNGO(t)
	still := consortium.Signal{Type: consortium.PDQ, Value: chair[10].Hash} // in the first part
	late := consortium.Signal{Type: consortium.PDQ, Value: chair[len(chair)-10].Hash}
	submit(t, s, "ngo", fixture.Certify(0, "ngo", pb.Category_CATEGORY_NEWS, still), fixture.Certify(0, "ngo", pb.Category_CATEGORY_RESEARCH, parts[len(parts)-1]))
	cases := []struct {
		name  string
		query consortium.Signal
		want  pb.Category
	}{
		{"certified query image", still, pb.Category_CATEGORY_NEWS},
		{"certified video part", late, pb.Category_CATEGORY_RESEARCH},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ms, err := s.MatchPDQ(tc.query.Value, store.Query{Radius: 0, Quality: -1})
			if err != nil {
				t.Fatal(err)
			}
			if len(ms) == 0 || ms[0].Signal.Type != consortium.VPDQ {
				t.Fatalf("got %+v, want a frame of the video", ms)
			}
			for _, m := range ms {
				if len(m.Protected) != 1 || m.Protected[0].Category != tc.want {
					t.Errorf("%v at frame %d ms: got protections %+v, want one of category %v", m.Signal, m.FrameMS, m.Protected, tc.want)
				}
			}
		})
	}
}

// TestProtectedVideoMatch: a video query's matches carry the certifications of the listed parts and
// images they matched.
func TestProtectedVideoMatch(t *testing.T) {
	s, chair, parts := listedVideoWithNGO(t)
	query := sampleFrames(t, "chair-20-sd-bar")
	image := consortium.Signal{Type: consortium.PDQ, Value: chair[100].Hash}
	frameImage := consortium.Signal{Type: consortium.PDQ, Value: query[5].Hash}
	submit(t, s, "bravo", fixture.Add(0, image), fixture.Add(0, frameImage))
	submit(t, s, "ngo",
		fixture.Certify(0, "ngo", pb.Category_CATEGORY_NEWS, parts[0]),
		fixture.Certify(0, "ngo", pb.Category_CATEGORY_PARODY, image))
	res, err := s.MatchVideo(query, store.DefaultVideoQuery())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Videos) != 1 {
		t.Fatalf("got %d videos, want 1", len(res.Videos))
	}
	for _, p := range res.Videos[0].Parts {
		want := 0
		if p.Signal == parts[0] {
			want = 1
		}
		if len(p.Protected) != want {
			t.Errorf("part %v: got protections %+v, want %d", p.Signal, p.Protected, want)
		}
	}
	found := map[consortium.Signal]int{}
	for _, im := range res.Images {
		found[im.Match.Signal] = len(im.Match.Protected)
	}
	if n, ok := found[image]; !ok || n != 1 {
		t.Errorf("certified image: got %d protections (matched %v), want 1", n, ok)
	}
	if n, ok := found[frameImage]; !ok || n != 0 {
		t.Errorf("uncertified image: got %d protections (matched %v), want 0", n, ok)
	}
}
