package store_test

import (
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/consortium/vpdq"
	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"github.com/hashfed/hashfed/store"
)

// sampleFrames reads the vPDQ reference's hashes of one sample video.
func sampleFrames(t *testing.T, name string) []vpdq.Frame {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "consortium", "vpdq", "testdata", "sample-hashes", name+".txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fs, err := vpdq.ParseText(f)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// videoAdds returns the adds of a video cut into the given number of parts.
func videoAdds(t *testing.T, frames []vpdq.Frame, contentID string, parts int) ([]*pb.Entry, []consortium.Signal) {
	t.Helper()
	var es []*pb.Entry
	var sigs []consortium.Signal
	n := len(frames)
	for i := range parts {
		ps, err := consortium.VideoParts(frames[i*n/parts:(i+1)*n/parts], 50)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			e, err := consortium.NewVideoAdd(0, p, []string{"behaviour:glorification-of-terrorist-acts"}, consortium.AddOptions{ContentID: contentID})
			if err != nil {
				t.Fatal(err)
			}
			es = append(es, e)
			sigs = append(sigs, consortium.VideoSignal(p))
		}
	}
	return es, sigs
}

// listedFrames returns what a video's adds carry, as vpdq frames.
func listedFrames(t *testing.T, es []*pb.Entry) []vpdq.Frame {
	t.Helper()
	var out []vpdq.Frame
	for _, e := range es {
		fs, err := consortium.VideoFrames(e.GetAdd().GetFrames())
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fs {
			out = append(out, vpdq.Frame{Quality: int(f.Quality), Hash: f.Hash, MS: int64(f.MS)})
		}
	}
	return out
}

// TestMatchVideo lists sample videos and checks that the indexed match gives exactly the
// reference rule's brute-force percentages, names the video and its frames, ignores another
// member's parts under the same content id, follows revokes, and survives a reopen.
func TestMatchVideo(t *testing.T) {
	g := fixture.Genesis(2, founders...)
	path := filepath.Join(t.TempDir(), "hashfed.db")
	s := openStore(t, path, g, testOptions())
	chair := sampleFrames(t, "chair-19-sd-bar")
	pattern := sampleFrames(t, "pattern-hd-no-bar")
	chairAdds, chairSigs := videoAdds(t, chair, "video-1", 2)
	patternAdds, _ := videoAdds(t, pattern, "video-9", 1)
	submit(t, s, "alpha", chairAdds...)
	submit(t, s, "bravo", patternAdds...)
	// Charlie lists the pattern video under alpha's content id: it must not join alpha's video.
	mixed, _ := videoAdds(t, pattern, "video-1", 1)
	submit(t, s, "charlie", mixed...)
	// Bravo lists one frame of the chair video as an image.
	still := chair[100] // in the first part
	submit(t, s, "bravo", fixture.Add(0, consortium.Signal{Type: consortium.PDQ, Value: still.Hash}, "lang:ar"))

	query := sampleFrames(t, "chair-20-sd-bar")
	check := func(t *testing.T, s *store.Store, wantParts int) {
		t.Helper()
		res, err := s.MatchVideo(query, store.DefaultVideoQuery())
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Videos) != 1 {
			t.Fatalf("got %d videos, want 1 (alpha's chair video): %+v", len(res.Videos), res.Videos)
		}
		v := res.Videos[0]
		if v.Member != "alpha" || v.ContentID != "video-1" || len(v.Parts) != wantParts {
			t.Fatalf("got %s/%s with %d parts, want alpha/video-1 with %d", v.Member, v.ContentID, len(v.Parts), wantParts)
		}
		var listed []*pb.Entry
		for _, p := range v.Parts {
			for i, sig := range chairSigs {
				if p.Signal == sig {
					listed = append(listed, chairAdds[i])
				}
			}
		}
		want := vpdq.Compare(query, listedFrames(t, listed), vpdq.DefaultMatchOptions())
		if math.Abs(v.QueryPercent-want.QueryPercent) > 1e-9 || math.Abs(v.ComparedPercent-want.ComparedPercent) > 1e-9 || v.QueryFrames != want.QueryFrames || v.ComparedFrames != want.ComparedFrames {
			t.Fatalf("got query %.2f %% of %d, compared %.2f %% of %d; brute force gives %.2f %% of %d, %.2f %% of %d",
				v.QueryPercent, v.QueryFrames, v.ComparedPercent, v.ComparedFrames, want.QueryPercent, want.QueryFrames, want.ComparedPercent, want.ComparedFrames)
		}
		if len(v.Frames) != len(want.Pairs) || v.Frames[0].Distance > 31 {
			t.Fatalf("got %d frame pairs, want %d", len(v.Frames), len(want.Pairs))
		}
		if len(v.Parts[0].Listings) != 1 || v.Parts[0].Listings[0].Member != "alpha" {
			t.Fatalf("part listings: got %+v, want alpha's only", v.Parts[0].Listings)
		}
		// Frames against images: a frame of the query is near bravo's still.
		if len(res.Images) != 1 || res.Images[0].Match.Signal.Value != still.Hash {
			t.Fatalf("got image matches %+v, want bravo's still", res.Images)
		}
		// And the still, as an image query, finds the frame of alpha's video it came from.
		fm, err := s.MatchPDQFrames(still.Hash, store.DefaultQuery())
		if err != nil {
			t.Fatal(err)
		}
		// MatchPDQ gives bravo's still and the frame of alpha's video.
		if all, _ := s.MatchPDQ(still.Hash, store.DefaultQuery()); len(all) != 2 || all[0].Signal.Type != consortium.PDQ && all[1].Signal.Type != consortium.PDQ {
			t.Fatalf("MatchPDQ of the still: got %+v, want the still and the frame", all)
		}
		if len(fm) != 1 || fm[0].FrameMS != still.MS || fm[0].Distance != 0 || fm[0].Signal.Type != consortium.VPDQ {
			t.Fatalf("image against frames: got %+v, want the frame at %d ms", fm, still.MS)
		}
	}
	check(t, s, 2)

	// A pattern video query finds bravo's and charlie's pattern videos, not alpha's.
	res, err := s.MatchVideo(sampleFrames(t, "pattern-longer-no-bar"), store.DefaultVideoQuery())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Videos) != 2 || res.Videos[0].Member == "alpha" || res.Videos[1].Member == "alpha" {
		t.Fatalf("pattern query: got %+v", res.Videos)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, path, g, testOptions())
	check(t, s, 2)

	// Revoking one part leaves a video of the other part, matched on it alone.
	submit(t, s, "alpha", fixture.RevokeSignal(0, chairSigs[1]))
	check(t, s, 1)
	submit(t, s, "alpha", fixture.RevokeSignal(0, chairSigs[0]))
	if res, _ := s.MatchVideo(query, store.DefaultVideoQuery()); len(res.Videos) != 0 {
		t.Fatalf("revoked video still matches: %+v", res.Videos)
	}
	if fm, _ := s.MatchPDQFrames(still.Hash, store.DefaultQuery()); len(fm) != 0 {
		t.Fatalf("revoked video's frame still matches: %+v", fm)
	}
}

func TestMatchVideoRefusals(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "hashfed.db"), fixture.Genesis(1, founders...), testOptions())
	big := make([]vpdq.Frame, store.MaxQueryFrames+1)
	o := store.DefaultVideoQuery()
	o.Options.Distance = 64
	for _, tc := range []struct {
		name   string
		frames []vpdq.Frame
		q      store.VideoQuery
	}{
		{"too many frames", big, store.DefaultVideoQuery()},
		{"distance over 63", nil, o},
		{"percentage over 100", nil, store.VideoQuery{Options: vpdq.MatchOptions{Distance: 31, ComparedPercent: 101}}},
	} {
		if _, err := s.MatchVideo(tc.frames, tc.q); err == nil {
			t.Errorf("%s: got no error", tc.name)
		}
	}
}

// TestMatchVideoExpiry lets one part of a two-part video expire: the video then counts and
// matches the other part only.
func TestMatchVideoExpiry(t *testing.T) {
	c := &clock{t: fixture.Epoch.Add(time.Hour)}
	o := testOptions()
	o.Now = c.now
	s := openStore(t, filepath.Join(t.TempDir(), "hashfed.db"), fixture.Genesis(1, founders...), o)
	chair := sampleFrames(t, "chair-19-sd-bar")
	adds, _ := videoAdds(t, chair, "video-1", 2)
	adds[1].GetAdd().ExpiresUnixMs = c.now().Add(time.Hour).UnixMilli()
	submit(t, s, "alpha", adds...)
	query := sampleFrames(t, "chair-20-sd-bar")
	res, err := s.MatchVideo(query, store.DefaultVideoQuery())
	if err != nil || len(res.Videos) != 1 {
		t.Fatalf("got %+v, %v", res.Videos, err)
	}
	both := res.Videos[0].ComparedFrames
	c.add(2 * time.Hour)
	res, err = s.MatchVideo(query, store.DefaultVideoQuery())
	if err != nil || len(res.Videos) != 1 {
		t.Fatalf("after expiry: got %+v, %v", res.Videos, err)
	}
	want := vpdq.Compare(query, listedFrames(t, adds[:1]), vpdq.DefaultMatchOptions())
	if v := res.Videos[0]; len(v.Parts) != 1 || v.ComparedFrames != want.ComparedFrames || v.ComparedFrames >= both || math.Abs(v.ComparedPercent-want.ComparedPercent) > 1e-9 {
		t.Fatalf("after expiry: got %d parts, %d frames, %.2f %%; want 1 part, %d frames (of %d before), %.2f %%", len(v.Parts), v.ComparedFrames, v.ComparedPercent, want.ComparedFrames, both, want.ComparedPercent)
	}
}
