package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"github.com/hashfed/hashfed/store"
)

// clock is a settable time source for expiry tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func testOptions() store.Options {
	o := store.DefaultOptions()
	o.NoSync = true // tests that need fsync (the crash test) turn it back on
	return o
}

func openStore(t *testing.T, path string, g *consortium.Genesis, o store.Options) *store.Store {
	t.Helper()
	s, err := store.Open(path, g, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func submit(t *testing.T, s *store.Store, member string, es ...*pb.Entry) []store.Appended {
	t.Helper()
	out, err := s.Submit(t.Context(), member, es)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range out {
		if a.Err != nil {
			t.Fatalf("entry %d refused: %v", i, a.Err)
		}
	}
	return out
}

func digest(s *store.Store) consortium.Hash {
	var d consortium.Hash
	s.View(func(st *consortium.State) { d = st.Digest() })
	return d
}

// replayDigest replays the store's logs from scratch with the consortium package alone.
func replayDigest(t *testing.T, s *store.Store) consortium.Hash {
	t.Helper()
	logs := consortium.Logs{}
	for m, n := range s.Sizes() {
		es, err := s.Entries(m, 0, n, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		logs[m] = es
	}
	st, err := consortium.Replay(s.Genesis(), logs, consortium.ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return st.Digest()
}

var founders = fixture.Members("alpha", "bravo", "charlie")

func TestSubmitMatchReopen(t *testing.T) {
	g := fixture.Genesis(2, founders...)
	path := filepath.Join(t.TempDir(), "hashfed.db")
	s := openStore(t, path, g, testOptions())
	p1, p2 := fixture.PDQ(1), fixture.PDQ(2)
	q := uint32(90)
	add := &pb.Entry{Op: &pb.Entry_Add{Add: &pb.Add{Signal: p1.Proto(), Labels: []string{"behaviour:threat-incitement"}, ContentId: "case-7", Note: "seen in channel X", Quality: &q}}}
	out := submit(t, s, "alpha", add, &pb.Entry{Op: &pb.Entry_Add{Add: &pb.Add{Signal: fixture.MD5(1).Proto()}}})
	if out[0].Index != 0 || out[1].Index != 1 {
		t.Errorf("indices: got %d, %d", out[0].Index, out[1].Index)
	}
	// A hash 5 bits from p1 matches at radius 31 with alpha's labels.
	near := p1.Value
	for _, b := range []int{0, 17, 100, 200, 255} {
		near[b/8] ^= 0x80 >> (b % 8)
	}
	ms, err := s.MatchPDQ(near, store.DefaultQuery())
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || ms[0].Signal != p1 || ms[0].Distance != 5 {
		t.Fatalf("match: got %+v", ms)
	}
	l := ms[0].Listings[0]
	if l.Member != "alpha" || l.ContentID != "case-7" || l.Quality != 90 || strings.Join(l.Labels, ",") != "behaviour:threat-incitement" || l.Note != "seen in channel X" {
		t.Errorf("listing details: got %+v", l)
	}
	if ms, _ := s.MatchPDQ(near, store.Query{Radius: 4, Quality: -1}); len(ms) != 0 {
		t.Errorf("radius 4 matched a hash 5 bits away: %+v", ms)
	}
	if ms, _ := s.MatchPDQ(p2.Value, store.DefaultQuery()); len(ms) != 0 {
		t.Errorf("unrelated hash matched: %+v", ms)
	}
	if ms, _ := s.MatchSignal(fixture.MD5(1), store.DefaultQuery()); len(ms) != 1 {
		t.Errorf("exact md5 match: got %+v", ms)
	}
	// A revoke is visible to matching as soon as Submit returns.
	submit(t, s, "alpha", fixture.RevokeIndex(0, 0))
	if ms, _ := s.MatchPDQ(near, store.DefaultQuery()); len(ms) != 0 {
		t.Errorf("revoked signal still matches: %+v", ms)
	}
	submit(t, s, "alpha", fixture.Add(0, p2, "lang:ar"))
	before := digest(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openStore(t, path, g, testOptions())
	if got := digest(s2); got != before {
		t.Errorf("reopened state digest %x, want %x", got, before)
	}
	if got := replayDigest(t, s2); got != before {
		t.Errorf("replay from scratch %x, want %x", got, before)
	}
	if ms, _ := s2.MatchPDQ(p2.Value, store.DefaultQuery()); len(ms) != 1 {
		t.Errorf("after reopen: got %+v", ms)
	}
	if s2.Size("alpha") != 4 {
		t.Errorf("size after reopen: got %d, want 4", s2.Size("alpha"))
	}
}

func TestSubmitRefusals(t *testing.T) {
	g := fixture.Genesis(2, append(founders, fixture.Founder{ID: "oscar", Observer: true})...)
	s := openStore(t, filepath.Join(t.TempDir(), "db"), g, testOptions())
	low := uint32(20)
	out, err := s.Submit(t.Context(), "alpha", []*pb.Entry{
		{Op: &pb.Entry_Add{Add: &pb.Add{Signal: fixture.PDQ(1).Proto(), Quality: &low}}},
		fixture.Add(0, fixture.PDQ(2)),
		fixture.RevokeSignal(0, fixture.PDQ(3)),
		{Op: &pb.Entry_Add{Add: &pb.Add{Signal: &pb.Signal{Type: "pdq", Value: []byte{1, 2}}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []error{store.ErrLowQuality, nil, consortium.ErrNotPermitted, consortium.ErrInvalidSignal}
	for i, w := range want {
		if w == nil && out[i].Err != nil || w != nil && !errors.Is(out[i].Err, w) {
			t.Errorf("entry %d: got %v, want %v", i, out[i].Err, w)
		}
	}
	if out[1].Index != 0 {
		t.Errorf("the accepted entry got index %d, want 0", out[1].Index)
	}
	out, _ = s.Submit(t.Context(), "oscar", []*pb.Entry{fixture.Add(0, fixture.PDQ(4))})
	if !errors.Is(out[0].Err, consortium.ErrNotPermitted) {
		t.Errorf("observer add: got %v", out[0].Err)
	}
	out, _ = s.Submit(t.Context(), "mallory", []*pb.Entry{fixture.Add(0, fixture.PDQ(4))})
	if !errors.Is(out[0].Err, consortium.ErrUnknownMember) {
		t.Errorf("non-member add: got %v", out[0].Err)
	}
	if _, err := s.MatchPDQ(fixture.PDQ(2).Value, store.Query{Radius: 31, Quality: 10}); !errors.Is(err, store.ErrLowQuality) {
		t.Errorf("low-quality query: got %v", err)
	}
	if _, err := s.MatchPDQ(fixture.PDQ(2).Value, store.Query{Radius: 64, Quality: -1}); err == nil {
		t.Error("radius 64 accepted")
	}
}

// peerLog builds another member's log, as a peer would serve it.
func peerLog(g *consortium.Genesis, member string, n, from int) *fixture.Log {
	l := fixture.NewLog(g.ID, fixture.Key(member))
	for i := 0; i < n; i++ {
		l.Append(fixture.Add(fixture.At(int64(i)), fixture.PDQ(from+i), "behaviour:recruitment-instruction"))
	}
	return l
}

func openCP(t *testing.T, g *consortium.Genesis, note []byte) *consortium.Checkpoint {
	t.Helper()
	cp, err := consortium.OpenCheckpoint(g.ID, g, note)
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

func TestAppendRange(t *testing.T) {
	g := fixture.Genesis(2, founders...)
	path := filepath.Join(t.TempDir(), "db")
	s := openStore(t, path, g, testOptions())
	l := peerLog(g, "bravo", 10, 100)
	cp := openCP(t, g, l.Checkpoint())

	tampered := append([][]byte(nil), l.Entries...)
	tampered[3] = fixture.Marshal(fixture.Add(fixture.At(3), fixture.PDQ(999)))
	if err := s.AppendRange(cp, 0, tampered, nil); !errors.Is(err, consortium.ErrRootMismatch) {
		t.Fatalf("tampered range: got %v", err)
	}
	if s.Size("bravo") != 0 {
		t.Fatal("a tampered range was stored")
	}
	if err := s.AppendRange(cp, 2, l.Entries[2:], nil); !errors.Is(err, store.ErrGap) {
		t.Errorf("range with a gap: got %v", err)
	}
	// Half first (with a checkpoint at 5), then the rest.
	half := fixture.NewLog(g.ID, fixture.Key("bravo"))
	for _, e := range l.Entries[:5] {
		half.AppendRaw(e)
	}
	if err := s.AppendRange(openCP(t, g, half.Checkpoint()), 0, l.Entries[:5], nil); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendRange(cp, 5, l.Entries[5:], nil); err != nil {
		t.Fatal(err)
	}
	if ms, _ := s.MatchPDQ(fixture.PDQ(107).Value, store.DefaultQuery()); len(ms) != 1 || ms[0].Listings[0].Member != "bravo" {
		t.Errorf("replicated add does not match: %+v", ms)
	}
	if h, _ := s.Head("bravo"); h == nil || h.Size != 10 {
		t.Errorf("head: got %+v", h)
	}
	// Proofs served from the store verify against the checkpoints.
	p, err := s.ProveConsistency("bravo", 5, 10)
	if err != nil {
		t.Fatal(err)
	}
	if err := consortium.VerifyConsistency(p, 5, half.Tree.Root(), 10, cp.Root); err != nil {
		t.Errorf("consistency proof: %v", err)
	}
	ip, err := s.ProveInclusion("bravo", 7, 10)
	if err != nil {
		t.Fatal(err)
	}
	if err := consortium.VerifyInclusion(ip, 7, 10, cp.Root, consortium.LeafHash(l.Entries[7])); err != nil {
		t.Errorf("inclusion proof: %v", err)
	}
	// A partial range is stored when a consistency proof ties it to the checkpoint.
	s3 := openStore(t, filepath.Join(t.TempDir(), "partial"), g, testOptions())
	p4, _ := s.ProveConsistency("bravo", 4, 10)
	if err := s3.AppendRange(cp, 0, l.Entries[:4], p); !errors.Is(err, consortium.ErrRootMismatch) {
		t.Errorf("partial range with the wrong proof: got %v", err)
	}
	if err := s3.AppendRange(cp, 0, tampered[:4], p4); !errors.Is(err, consortium.ErrRootMismatch) {
		t.Errorf("tampered partial range: got %v", err)
	}
	if err := s3.AppendRange(cp, 0, l.Entries[:4], p4); err != nil {
		t.Fatalf("partial range: %v", err)
	}
	if _, ok := s3.Head("bravo"); ok || s3.Size("bravo") != 4 {
		t.Errorf("after a partial range: size %d, head set %v", s3.Size("bravo"), ok)
	}
	if err := s3.AppendRange(cp, 4, l.Entries[4:], nil); err != nil {
		t.Fatal(err)
	}
	if h, ok := s3.Head("bravo"); !ok || h.Size != 10 {
		t.Errorf("head after completing the range: %+v", h)
	}
	es, err := s.Entries("bravo", 3, 10, 200)
	if err != nil || len(es) == 0 || len(es) >= 7 || !bytes.Equal(es[0], l.Entries[3]) {
		t.Errorf("Entries with a byte limit: got %d entries, %v", len(es), err)
	}
	// Cosigning the verified head, then reopening, keeps the cosignature.
	if _, err := s.Cosign("bravo", fixture.Key("alpha"), fixture.Epoch); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2 := openStore(t, path, g, testOptions())
	if h, _ := s2.Head("bravo"); !h.HasCosigner("alpha") {
		t.Errorf("cosignature lost on reopen: %+v", h.Cosigners)
	}
	if got, want := digest(s2), replayDigest(t, s2); got != want {
		t.Errorf("digest %x, replay %x", got, want)
	}
}

func TestObserveCheckpointAndEquivocation(t *testing.T) {
	g := fixture.Genesis(2, founders...)
	path := filepath.Join(t.TempDir(), "db")
	s := openStore(t, path, g, testOptions())
	l := peerLog(g, "charlie", 8, 0)
	cp := openCP(t, g, l.Checkpoint())
	if obs, _, err := s.ObserveCheckpoint(cp); err != nil || obs != store.Newer {
		t.Fatalf("new checkpoint: got %v, %v", obs, err)
	}
	if err := s.AppendRange(cp, 0, l.Entries, nil); err != nil {
		t.Fatal(err)
	}
	// The same head cosigned by bravo: merged into the stored head.
	cosigned, _ := consortium.Cosign(g.ID, g, cp, fixture.Key("bravo"), fixture.Epoch)
	if obs, _, err := s.ObserveCheckpoint(cosigned); err != nil || obs != store.Known {
		t.Fatalf("cosigned head: got %v, %v", obs, err)
	}
	if h, _ := s.Head("charlie"); !h.HasCosigner("bravo") {
		t.Error("cosignature not merged into the head")
	}
	// An older, consistent checkpoint is known.
	older := fixture.NewLog(g.ID, fixture.Key("charlie"))
	for _, e := range l.Entries[:4] {
		older.AppendRaw(e)
	}
	if obs, _, _ := s.ObserveCheckpoint(openCP(t, g, older.Checkpoint())); obs != store.Known {
		t.Errorf("older consistent checkpoint: got %v", obs)
	}
	// charlie signs a different tree of size 6: not a prefix of what we stored.
	fork := fixture.NewLog(g.ID, fixture.Key("charlie"))
	for _, e := range l.Entries[:5] {
		fork.AppendRaw(e)
	}
	fork.Append(fixture.Add(fixture.At(50), fixture.PDQ(555)))
	obs, ev, err := s.ObserveCheckpoint(openCP(t, g, fork.Checkpoint()))
	if err != nil || obs != store.Equivocated || ev == nil {
		t.Fatalf("fork: got %v, %v, %v", obs, ev, err)
	}
	if _, err := consortium.ParseEvidence(g.ID, g, ev.Marshal()); err != nil {
		t.Errorf("stored evidence does not verify offline: %v", err)
	}
	// The log is frozen: no more ranges.
	more := peerLog(g, "charlie", 9, 0)
	if err := s.AppendRange(openCP(t, g, more.Checkpoint()), 8, more.Entries[8:], nil); !errors.Is(err, store.ErrForked) {
		t.Errorf("range of a forked log: got %v", err)
	}
	s.Close()
	s2 := openStore(t, path, g, testOptions())
	if ev := s2.Evidence()["charlie"]; ev == nil {
		t.Error("evidence lost on reopen")
	}
}

func TestExpiryAndDisputePolicy(t *testing.T) {
	g := fixture.Genesis(2, founders...)
	c := &clock{t: fixture.Epoch}
	o := testOptions()
	o.Now = c.now
	o.DisputeThreshold = 2
	s := openStore(t, filepath.Join(t.TempDir(), "db"), g, o)
	sig := fixture.PDQ(1)
	e := fixture.Add(fixture.Epoch.UnixMilli(), sig)
	e.GetAdd().ExpiresUnixMs = fixture.Epoch.Add(time.Hour).UnixMilli()
	submit(t, s, "alpha", e)
	if ms, _ := s.MatchPDQ(sig.Value, store.DefaultQuery()); len(ms) != 1 || ms[0].Listings[0].Expires.IsZero() {
		t.Fatalf("before expiry: got %+v", ms)
	}
	c.add(2 * time.Hour)
	if ms, _ := s.MatchPDQ(sig.Value, store.DefaultQuery()); len(ms) != 0 {
		t.Errorf("expired listing still matches: %+v", ms)
	}
	if n := s.Sweep(); n != 1 {
		t.Errorf("sweep took out %d, want 1", n)
	}
	if st := s.IndexStats(); st.Len != 0 {
		t.Errorf("index holds %d after the sweep, want 0", st.Len)
	}
	// A dispute by two members hides a signal; the query can still ask for it.
	other := fixture.PDQ(2)
	submit(t, s, "alpha", fixture.Add(0, other))
	submit(t, s, "bravo", fixture.Opinion(0, other, pb.Stance_STANCE_FALSE_POSITIVE))
	if ms, _ := s.MatchPDQ(other.Value, store.DefaultQuery()); len(ms) != 1 || ms[0].Hidden != "" {
		t.Fatalf("one dispute hid the match: %+v", ms)
	}
	submit(t, s, "charlie", fixture.Opinion(0, other, pb.Stance_STANCE_FALSE_POSITIVE))
	if ms, _ := s.MatchPDQ(other.Value, store.DefaultQuery()); len(ms) != 0 {
		t.Errorf("disputed signal matched: %+v", ms)
	}
	ms, _ := s.MatchPDQ(other.Value, store.Query{Radius: 31, Quality: -1, IncludeHidden: true})
	if len(ms) != 1 || !strings.Contains(ms[0].Hidden, "2 members call it a false positive") || len(ms[0].Opinions) != 2 {
		t.Errorf("hidden match: got %+v", ms)
	}
	m, ok, err := s.Lookup(other)
	if err != nil || !ok || len(m.Listings) != 1 {
		t.Errorf("lookup: got %+v %v %v", m, ok, err)
	}
}

func TestFeed(t *testing.T) {
	g := fixture.Genesis(2, founders...)
	path := filepath.Join(t.TempDir(), "db")
	s := openStore(t, path, g, testOptions())
	submit(t, s, "alpha", fixture.Add(0, fixture.PDQ(1)), fixture.Add(0, fixture.PDQ(2)))
	l := peerLog(g, "bravo", 3, 10)
	if err := s.AppendRange(openCP(t, g, l.Checkpoint()), 0, l.Entries, nil); err != nil {
		t.Fatal(err)
	}
	submit(t, s, "alpha", fixture.RevokeIndex(0, 1))
	evs, next, err := s.Feed(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		got = append(got, e.Member+"/"+string(rune('0'+e.Index)))
	}
	if strings.Join(got, " ") != "alpha/0 alpha/1 bravo/0 bravo/1 bravo/2 alpha/2" || next != 6 {
		t.Errorf("feed: got %v next %d", got, next)
	}
	// Resume from the middle, across a restart.
	s.Close()
	s2 := openStore(t, path, g, testOptions())
	evs, next, _ = s2.Feed(3, 2)
	if len(evs) != 2 || evs[0].Seq != 3 || evs[0].Member != "bravo" || evs[0].Index != 1 || next != 5 {
		t.Errorf("resumed feed: got %+v next %d", evs, next)
	}
	// WaitFeed wakes up on a new append.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s2.WaitFeed(ctx, 6) }()
	time.Sleep(20 * time.Millisecond)
	submit(t, s2, "alpha", fixture.Add(0, fixture.PDQ(3)))
	if err := <-done; err != nil {
		t.Errorf("WaitFeed: %v", err)
	}
}

func TestConcurrentSubmitAndMatch(t *testing.T) {
	g := fixture.Genesis(2, founders...)
	s := openStore(t, filepath.Join(t.TempDir(), "db"), g, testOptions())
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Go(func() {
			for i := 0; i < 50; i++ {
				out, err := s.Submit(t.Context(), "alpha", []*pb.Entry{fixture.Add(0, fixture.PDQ(w*1000+i))})
				if err != nil || out[0].Err != nil {
					t.Errorf("submit: %v %v", err, out)
					return
				}
			}
		})
		wg.Go(func() {
			for i := 0; i < 50; i++ {
				if _, err := s.MatchPDQ(fixture.PDQ(w*1000+i).Value, store.DefaultQuery()); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := s.Size("alpha"); n != 400 {
		t.Errorf("size: got %d, want 400", n)
	}
	for w := 0; w < 8; w++ {
		if ms, _ := s.MatchPDQ(fixture.PDQ(w*1000+49).Value, store.DefaultQuery()); len(ms) != 1 {
			t.Errorf("worker %d's last add does not match", w)
		}
	}
	if got, want := digest(s), replayDigest(t, s); got != want {
		t.Error("state differs from replay")
	}
}

func TestDamagedFile(t *testing.T) {
	g := fixture.Genesis(2, founders...)
	dir := t.TempDir()
	path := filepath.Join(dir, "hashfed.db")
	s, err := store.Open(path, g, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		submit(t, s, "alpha", fixture.Add(0, fixture.PDQ(i)))
	}
	s.Close()
	good, _ := os.ReadFile(path)

	cases := map[string][]byte{
		"empty":         {},
		"first bytes":   good[:100],
		"one page":      good[:4096],
		"truncated":     good[:len(good)/3],
		"zeroed header": append(make([]byte, 8192), good[8192:]...),
		"garbage":       bytes.Repeat([]byte("hashfed!"), len(good)/8),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, name+".db")
			if err := os.WriteFile(p, data, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := store.Open(p, g, testOptions())
			if err == nil {
				s.Close()
				t.Fatal("opened a damaged file")
			}
			if !errors.Is(err, store.ErrDamaged) {
				t.Errorf("got %v, want an error wrapping ErrDamaged", err)
			}
			if !strings.Contains(err.Error(), p) {
				t.Errorf("error does not name the file: %v", err)
			}
			after, _ := os.ReadFile(p)
			if !bytes.Equal(after, data) {
				t.Error("the damaged file was modified")
			}
		})
	}
	t.Run("other consortium", func(t *testing.T) {
		other := fixture.Genesis(1, fixture.Members("zulu")...)
		if _, err := store.Open(path, other, testOptions()); !errors.Is(err, store.ErrWrongConsortium) {
			t.Errorf("got %v, want ErrWrongConsortium", err)
		}
	})
}

// TestMatchPDQBatch: result i of MatchPDQBatch is exactly what MatchPDQ gives for hash i, on a store
// with every kind of record a PDQ match reads: listings by several members (one revoked, one
// expired), opinions, certifications of listed and of queried signals (one expired), the frames of a
// listed video, and a local policy that suppresses one signal and caps a label and a member.
func TestMatchPDQBatch(t *testing.T) {
	g := fixture.Genesis(2, fixture.Founder{ID: "alpha"}, fixture.Founder{ID: "bravo"}, fixture.Founder{ID: "ngo", Role: pb.Role_ROLE_CIVIL_SOCIETY})
	c := &clock{t: fixture.Epoch}
	o := testOptions()
	o.Now = c.now
	o.FloodThreshold = 0 // a flood hold tripping between the two calls would make them differ rightly
	s := openStore(t, filepath.Join(t.TempDir(), "hashfed.db"), g, o)
	var adds []*pb.Entry
	for i := range 20 {
		label := "lang:en"
		if i%5 == 0 {
			label = "behaviour:threat-incitement"
		}
		adds = append(adds, fixture.Add(0, fixture.PDQ(i), label))
	}
	expiring := fixture.Add(0, fixture.PDQ(20))
	expiring.GetAdd().ExpiresUnixMs = fixture.Epoch.Add(time.Hour).UnixMilli()
	adds = append(adds, expiring)
	submit(t, s, "alpha", adds...)
	submit(t, s, "alpha", fixture.RevokeIndex(0, 3))
	submit(t, s, "bravo", fixture.Add(0, fixture.PDQ(4)), fixture.Add(0, fixture.PDQ(21)), fixture.Opinion(0, fixture.PDQ(6), pb.Stance_STANCE_FALSE_POSITIVE))
	// The frames of a listed video.
	chair := sampleFrames(t, "chair-19-sd-bar")
	video, _ := videoAdds(t, chair, "video-1", 2)
	submit(t, s, "bravo", video...)
	// Certifications: of listed signals, of a query (near a listed one), and one that expires.
	queried := fixture.PDQ(8)
	queried.Value[0] ^= 0x0f
	shortLived := fixture.Certify(0, "ngo", pb.Category_CATEGORY_NEWS, fixture.PDQ(9))
	shortLived.GetCertify().ExpiresUnixMs = fixture.Epoch.Add(time.Hour).UnixMilli()
	submit(t, s, "ngo",
		fixture.Certify(0, "ngo", pb.Category_CATEGORY_PARODY, fixture.PDQ(1), queried),
		shortLived,
		fixture.Certify(0, "ngo", pb.Category_CATEGORY_NEWS, consortium.Signal{Type: consortium.PDQ, Value: chair[10].Hash}))
	// The local policy.
	if err := s.Suppress(fixture.PDQ(2), "rev@example.org", "our logo"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLabelCap("behaviour:threat-incitement", 2); err != nil {
		t.Fatal(err)
	}
	if err := s.SetMemberCap("bravo", 3); err != nil {
		t.Fatal(err)
	}
	// Queries near some signals (one revoked, one suppressed), near video frames, far from all, and
	// exact.
	var hs [][32]byte
	for i := range 25 {
		h := fixture.PDQ(i % 22).Value
		for _, b := range []int{i, 40 + i, 200} {
			h[b/8] ^= 0x80 >> (b % 8)
		}
		hs = append(hs, h)
	}
	hs = append(hs, fixture.PDQ(7).Value, queried.Value, chair[10].Hash, chair[300].Hash)
	for _, f := range chair[40:44] {
		h := f.Hash
		h[3] ^= 0x11
		hs = append(hs, h)
	}
	queries := []store.Query{store.DefaultQuery(), {Radius: 2, Quality: -1}, {Radius: 3, Quality: -1}, hiddenQuery(), {Radius: 31, Quality: 90, Inspect: true}}
	for _, when := range []string{"now", "after expiry"} {
		var hits, hidden, protected, frames int
		for _, q := range queries {
			name := fmt.Sprintf("%s, %+v", when, q)
			got, err := s.MatchPDQBatch(hs, q)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(hs) {
				t.Fatalf("%s: got %d results for %d hashes", name, len(got), len(hs))
			}
			for i, h := range hs {
				want, err := s.MatchPDQ(h, q)
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range want {
					hits++
					if m.Hidden != "" {
						hidden++
					}
					if len(m.Protected) > 0 {
						protected++
					}
					if m.Signal.Type == consortium.VPDQ {
						frames++
					}
				}
				if !reflect.DeepEqual(got[i], want) {
					t.Errorf("%s, hash %d: got %+v, want %+v", name, i, got[i], want)
				}
			}
		}
		// The test must find something of each kind, or it checks nothing.
		if hits < 40 || hidden == 0 || protected == 0 || frames == 0 {
			t.Errorf("%s: %d matches, %d hidden, %d protected, %d video frames; want some of each", when, hits, hidden, protected, frames)
		}
		c.add(2 * time.Hour)
	}
	for _, q := range []store.Query{{Radius: 64, Quality: -1}, {Radius: -1, Quality: -1}, {Radius: 31, Quality: 10}} {
		_, berr := s.MatchPDQBatch(hs, q)
		_, err := s.MatchPDQ(hs[0], q)
		if berr == nil || err == nil || berr.Error() != err.Error() {
			t.Errorf("%+v: batch error %v, single error %v; want the same error", q, berr, err)
		}
	}
}

// TestCosignaturesWrittenLazily: a merged cosignature is in the head at once and on disk after the
// next write, FlushHeads or Close; a newer head written meanwhile is not overwritten by it.
func TestCosignaturesWrittenLazily(t *testing.T) {
	g := fixture.Genesis(2, founders...)
	path := filepath.Join(t.TempDir(), "db")
	s := openStore(t, path, g, testOptions())
	l := peerLog(g, "charlie", 8, 0)
	prefix := fixture.NewLog(g.ID, fixture.Key("charlie"))
	for _, e := range l.Entries[:4] {
		prefix.AppendRaw(e)
	}
	cp := openCP(t, g, prefix.Checkpoint())
	if err := s.AppendRange(cp, 0, l.Entries[:4], nil); err != nil {
		t.Fatal(err)
	}
	cosigned, _ := consortium.Cosign(g.ID, g, cp, fixture.Key("bravo"), fixture.Epoch)
	if obs, _, err := s.ObserveCheckpoint(cosigned); err != nil || obs != store.Known {
		t.Fatalf("cosigned head: got %v, %v", obs, err)
	}
	if h, _ := s.Head("charlie"); !h.HasCosigner("bravo") || h.Size != 4 {
		t.Errorf("head after the merge: size %d, cosigners %v", h.Size, h.Cosigners)
	}
	if err := s.FlushHeads(); err != nil {
		t.Fatal(err)
	}
	// A cosignature merged, then a newer head stored before anything flushed it: the newer head
	// is what is on disk.
	if _, err := s.Cosign("charlie", fixture.Key("alpha"), fixture.Epoch); err != nil {
		t.Fatal(err)
	}
	full := openCP(t, g, l.Checkpoint())
	if err := s.AppendRange(full, 4, l.Entries[4:], nil); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2 := openStore(t, path, g, testOptions())
	if h, _ := s2.Head("charlie"); h.Size != 8 || h.HasCosigner("alpha") {
		t.Errorf("head on reopen: size %d, cosigners %v; want the newer head of size 8 without alpha's cosignature", h.Size, h.Cosigners)
	}
	// Cosigned, flushed, reopened: kept.
	if _, err := s2.Cosign("charlie", fixture.Key("alpha"), fixture.Epoch); err != nil {
		t.Fatal(err)
	}
	if err := s2.FlushHeads(); err != nil {
		t.Fatal(err)
	}
	s2.Close()
	s3 := openStore(t, path, g, testOptions())
	if h, _ := s3.Head("charlie"); h.Size != 8 || !h.HasCosigner("alpha") {
		t.Errorf("head on reopen after FlushHeads: size %d, cosigners %v", h.Size, h.Cosigners)
	}
}

// TestSignHeadPublish: the new checkpoint is published before it is the stored head, and then is.
func TestSignHeadPublish(t *testing.T) {
	g := fixture.Genesis(2, founders...)
	s := openStore(t, filepath.Join(t.TempDir(), "db"), g, testOptions())
	key := fixture.Key("alpha")
	if _, err := s.Submit(t.Context(), "alpha", []*pb.Entry{fixture.Add(0, fixture.PDQ(1))}); err != nil {
		t.Fatal(err)
	}
	var published *consortium.Checkpoint
	cp, err := s.SignHeadPublish(key, func(c *consortium.Checkpoint) {
		published = c
		if h, ok := s.Head("alpha"); ok {
			t.Errorf("head stored before publish: %+v", h)
		}
	})
	if err != nil || cp == nil || published == nil || !bytes.Equal(cp.Note, published.Note) || cp.Size != 1 {
		t.Fatalf("got %v, %v, published %v", cp, err, published)
	}
	if h, _ := s.Head("alpha"); h == nil || !bytes.Equal(h.Note, cp.Note) {
		t.Errorf("head after signing: %+v", h)
	}
	// Nothing new: nothing signed, nothing published.
	if cp, err := s.SignHeadPublish(key, func(*consortium.Checkpoint) { t.Error("published with nothing new") }); cp != nil || err != nil {
		t.Errorf("nothing new: got %v, %v", cp, err)
	}
}

// TestDisputeCountsOpinionRoles: a civil-society participant or a referral authority, whose roles
// are certifying and referring (PROTOCOL.md section 1), must not be able to hide members' listings
// from matching by calling them false positives; an observer, whose role is to write opinions, and
// a member can.
func TestDisputeCountsOpinionRoles(t *testing.T) {
	g := fixture.Genesis(2,
		fixture.Founder{ID: "alpha"}, fixture.Founder{ID: "bravo"},
		fixture.Founder{ID: "ngo", Role: pb.Role_ROLE_CIVIL_SOCIETY},
		fixture.Founder{ID: "police", Role: pb.Role_ROLE_AUTHORITY},
		fixture.Founder{ID: "oscar", Observer: true})
	o := testOptions()
	o.DisputeThreshold = 2
	s := openStore(t, filepath.Join(t.TempDir(), "db"), g, o)
	sig := fixture.PDQ(1)
	submit(t, s, "alpha", fixture.Add(0, sig))
	submit(t, s, "bravo", fixture.Opinion(0, sig, pb.Stance_STANCE_FALSE_POSITIVE))
	submit(t, s, "ngo", fixture.Opinion(0, sig, pb.Stance_STANCE_FALSE_POSITIVE))
	submit(t, s, "police", fixture.Opinion(0, sig, pb.Stance_STANCE_FALSE_POSITIVE))
	ms, err := s.MatchPDQ(sig.Value, store.DefaultQuery())
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || ms[0].Hidden != "" {
		t.Fatalf("a member's dispute with a civil-society participant's and an authority's: got %+v, want the match shown", ms)
	}
	if len(ms[0].Opinions) != 3 {
		t.Errorf("got %d opinions beside the match, want all 3 shown", len(ms[0].Opinions))
	}
	submit(t, s, "oscar", fixture.Opinion(0, sig, pb.Stance_STANCE_FALSE_POSITIVE))
	ms, err = s.MatchPDQ(sig.Value, store.Query{Radius: 31, Quality: -1, IncludeHidden: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || !strings.Contains(ms[0].Hidden, "2 members call it a false positive") {
		t.Fatalf("a member's and an observer's disputes: got %+v, want hidden by 2", ms)
	}
}

// TestSubmitStampsAfterEarlierInBatch: an entry the store stamps follows the entries before it in
// the same batch, not only the stored ones. A client-stamped entry a little ahead of the node's
// clock followed by one to stamp must both be taken, in order (the stamp was the stored log's last
// time, so the second was refused as out of order).
func TestSubmitStampsAfterEarlierInBatch(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "db"), fixture.Genesis(2, founders...), testOptions())
	ahead := time.Now().Add(time.Minute).UnixMilli()
	out := submit(t, s, "alpha",
		fixture.Add(ahead, fixture.PDQ(1)),
		fixture.Add(0, fixture.PDQ(2)),
		fixture.Add(0, fixture.PDQ(3)))
	var times []int64
	for i, a := range out {
		e, err := consortium.ParseEntry(a.Entry)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		times = append(times, e.TimeUnixMs)
	}
	if times[0] != ahead || times[1] < ahead || times[2] < times[1] {
		t.Errorf("times %v: want %d first and none earlier than the one before", times, ahead)
	}
}
