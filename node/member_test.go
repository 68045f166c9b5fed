package node

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// testGenesis is the consortium of the single-node tests: members alpha and beta, observer obs.
func testGenesis() *consortium.Genesis {
	return fixture.Genesis(1, fixture.Founder{ID: "alpha"}, fixture.Founder{ID: "beta"}, fixture.Founder{ID: "obs", Observer: true})
}

// startTestNode starts one node of [testGenesis] as member id, with every listener on loopback
// (port 0), and closes it when the test ends. tweak, when not nil, changes the configuration first.
func startTestNode(t *testing.T, id string, tweak func(*Config)) *Node {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Genesis = testGenesis()
	cfg.Key = fixture.Key(id)
	cfg.DataDir = t.TempDir()
	cfg.PeerListen = "127.0.0.1:0"
	cfg.GossipListen = "127.0.0.1:0"
	cfg.MemberListen = "127.0.0.1:0"
	cfg.HTTPListen = "127.0.0.1:0"
	cfg.CheckpointInterval = 20 * time.Millisecond
	cfg.Store.NoSync = true
	if tweak != nil {
		tweak(&cfg)
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatalf("new node: %v", err)
	}
	if err := n.Start(); err != nil {
		t.Fatalf("start node: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// dialMember returns a member API client of n (closed when the test ends).
func dialMember(t *testing.T, n *Node) pb.MemberServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(n.MemberAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dial member API: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return pb.NewMemberServiceClient(conn)
}

// testCtx is a context for one test's calls, bounded in time.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// flipBits returns sig with its first k bits inverted (a PDQ hash at distance k).
func flipBits(sig consortium.Signal, k int) consortium.Signal {
	for i := range k {
		sig.Value[i/8] ^= 1 << (i % 8)
	}
	return sig
}

func urlSignal(t *testing.T, u string) consortium.Signal {
	t.Helper()
	s, err := consortium.ParseSignal("url", u)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// submit submits entries over the member API and fails the test if any is refused.
func submit(t *testing.T, ctx context.Context, c pb.MemberServiceClient, es ...*pb.Entry) []*pb.SubmitResult {
	t.Helper()
	resp, err := c.Submit(ctx, &pb.SubmitRequest{Entries: es})
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	if got, want := len(resp.Results), len(es); got != want {
		t.Fatalf("submit: got %d results, want %d", got, want)
	}
	for i, r := range resp.Results {
		if r.Error != "" {
			t.Fatalf("submit: entry %d refused: %s", i, r.Error)
		}
	}
	return resp.Results
}

func addEntry(sig consortium.Signal, labels ...string) *pb.Entry {
	return &pb.Entry{Op: &pb.Entry_Add{Add: &pb.Add{Signal: sig.Proto(), Labels: labels}}}
}

func radius(r uint32) *uint32 { return &r }

// wantCode fails the test unless err is a status with code want.
func wantCode(t *testing.T, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("got code %v (%v), want %v", got, err, want)
	}
}

func TestMemberSubmitMatchLookup(t *testing.T) {
	n := startTestNode(t, "alpha", nil)
	c := dialMember(t, n)
	ctx := testCtx(t)

	pdq := fixture.PDQ(1)
	md5 := fixture.MD5(1)
	u := urlSignal(t, "https://Example.com/attack/video?id=7")
	q := uint32(90)
	pdqAdd := &pb.Entry{Op: &pb.Entry_Add{Add: &pb.Add{Signal: pdq.Proto(), Labels: []string{"behaviour:threat-incitement", "content:manifesto"},
		ContentId: "case-1", Note: "from channel X", Quality: &q}}}
	res := submit(t, ctx, c, pdqAdd, addEntry(md5, "behaviour:glorification-of-terrorist-acts"), addEntry(u, "incident:ch-2026-01"))
	for i, r := range res {
		if r.Index != uint64(i) || len(r.Entry) == 0 {
			t.Fatalf("result %d: got index %d, %d entry bytes; want index %d and the entry", i, r.Index, len(r.Entry), i)
		}
	}

	tests := []struct {
		name      string
		sig       consortium.Signal
		radius    *uint32
		want      string // signal text of the match, "" for none
		wantDist  uint32
		wantLabel string
	}{
		{"pdq exact", pdq, nil, pdq.Text(), 0, "behaviour:threat-incitement,content:manifesto"},
		{"pdq near", flipBits(pdq, 3), nil, pdq.Text(), 3, "behaviour:threat-incitement,content:manifesto"},
		{"pdq near, small radius", flipBits(pdq, 3), radius(2), "", 0, ""},
		{"pdq far", fixture.PDQ(2), nil, "", 0, ""},
		{"md5", md5, nil, md5.Text(), 0, "behaviour:glorification-of-terrorist-acts"},
		{"md5 unknown", fixture.MD5(2), nil, "", 0, ""},
		{"url canonicalized", urlSignal(t, "https://example.com/attack/video?id=7"), nil, u.Text(), 0, "incident:ch-2026-01"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := c.Match(ctx, &pb.MatchRequest{Id: "q", Signal: tc.sig.Proto(), Radius: tc.radius})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Id != "q" {
				t.Errorf("got id %q, want q", resp.Id)
			}
			if tc.want == "" {
				if len(resp.Matches) != 0 {
					t.Fatalf("got %d matches, want none", len(resp.Matches))
				}
				return
			}
			if len(resp.Matches) != 1 {
				t.Fatalf("got %d matches, want 1", len(resp.Matches))
			}
			m := resp.Matches[0]
			got, _ := consortium.SignalFromProto(m.Signal)
			if got.Text() != tc.want || m.Distance != tc.wantDist {
				t.Errorf("got %s at distance %d, want %s at %d", got.Text(), m.Distance, tc.want, tc.wantDist)
			}
			if len(m.Listings) != 1 {
				t.Fatalf("got %d listings, want 1", len(m.Listings))
			}
			l := m.Listings[0]
			if l.Member != "alpha" || strings.Join(l.Labels, ",") != tc.wantLabel || l.TimeUnixMs == 0 {
				t.Errorf("got listing %v, want alpha's with labels %s and a time", l, tc.wantLabel)
			}
		})
	}

	// The listing carries every detail of the add.
	resp, err := c.Match(ctx, &pb.MatchRequest{Signal: pdq.Proto()})
	if err != nil {
		t.Fatal(err)
	}
	l := resp.Matches[0].Listings[0]
	if l.ContentId != "case-1" || l.Note != "from channel X" || l.GetQuality() != 90 || l.Quality == nil || l.Index != 0 {
		t.Errorf("got listing %v, want content id case-1, the note, quality 90, index 0", l)
	}

	t.Run("lookup", func(t *testing.T) {
		for _, tc := range []struct {
			sig       consortium.Signal
			wantFound bool
		}{{pdq, true}, {flipBits(pdq, 3), false}, {md5, true}, {fixture.MD5(9), false}} {
			resp, err := c.Lookup(ctx, &pb.LookupRequest{Signal: tc.sig.Proto()})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Found != tc.wantFound {
				t.Errorf("lookup %s: got found %v, want %v", tc.sig, resp.Found, tc.wantFound)
			}
			if tc.wantFound && (len(resp.Result.GetListings()) != 1 || resp.Result.Listings[0].Member != "alpha") {
				t.Errorf("lookup %s: got %v, want alpha's listing", tc.sig, resp.Result)
			}
		}
		_, err := c.Lookup(ctx, &pb.LookupRequest{Signal: &pb.Signal{Type: "md5", Value: []byte{1, 2}}})
		wantCode(t, err, codes.InvalidArgument)
	})

	t.Run("match stream", func(t *testing.T) {
		stream, err := c.MatchStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		reqs := []*pb.MatchRequest{
			{Id: "1", Signal: flipBits(pdq, 5).Proto()},
			{Id: "2", Signal: &pb.Signal{Type: "phash", Value: []byte{1}}},
			{Id: "3", Signal: fixture.MD5(3).Proto()},
			{Id: "4", Signal: md5.Proto()},
			{Id: "5", Signal: pdq.Proto(), Radius: radius(64)},
		}
		for _, r := range reqs {
			if err := stream.Send(r); err != nil {
				t.Fatal(err)
			}
		}
		if err := stream.CloseSend(); err != nil {
			t.Fatal(err)
		}
		want := []struct {
			id      string
			matches int
			err     string
		}{{"1", 1, ""}, {"2", 0, "unknown signal type"}, {"3", 0, ""}, {"4", 1, ""}, {"5", 0, "radius 64"}}
		for _, w := range want {
			resp, err := stream.Recv()
			if err != nil {
				t.Fatalf("recv answer %s: %v", w.id, err)
			}
			if resp.Id != w.id || len(resp.Matches) != w.matches || !strings.Contains(resp.Error, w.err) || (w.err == "") != (resp.Error == "") {
				t.Errorf("got id %s, %d matches, error %q; want id %s, %d matches, error containing %q", resp.Id, len(resp.Matches), resp.Error, w.id, w.matches, w.err)
			}
		}
		if _, err := stream.Recv(); err != io.EOF {
			t.Errorf("after the last answer: got %v, want EOF", err)
		}
	})

	t.Run("match stream batch", func(t *testing.T) {
		// Queries sent at once are answered together (runs of PDQ queries with one query go to the
		// index as a batch): every answer must equal the unary Match's, in order, errors included.
		var reqs []*pb.MatchRequest
		for i := range 60 {
			r := &pb.MatchRequest{Id: fmt.Sprint(i), Signal: flipBits(pdq, i%40).Proto()}
			switch i {
			case 7:
				r.Radius = radius(64)
			case 20, 21:
				r.Radius = radius(10)
			case 30:
				r.Signal = md5.Proto()
			case 40:
				q := uint32(10)
				r.Quality = &q
			case 41:
				r.IncludeHidden = true
			}
			reqs = append(reqs, r)
		}
		answers := matchStreamAll(t, ctx, c, reqs)
		hits := 0
		for i, r := range reqs {
			got := answers[i]
			want, err := c.Match(ctx, r)
			if err != nil {
				want = &pb.MatchResponse{Id: r.Id, Error: status.Convert(err).Message()}
			}
			hits += len(want.Matches)
			if got.Id != r.Id || (got.Error == "") != (want.Error == "") {
				t.Errorf("query %s: got %v, want %v", r.Id, got, want)
			}
			if len(got.Matches) != len(want.Matches) {
				t.Errorf("query %s: got %d matches, want %d", r.Id, len(got.Matches), len(want.Matches))
			}
			for k := range got.Matches {
				if !proto.Equal(got.Matches[k], want.Matches[k]) {
					t.Errorf("query %s match %d: got %v, want %v", r.Id, k, got.Matches[k], want.Matches[k])
				}
			}
		}
		if hits < 30 {
			t.Errorf("%d matches in all, want at least 30 (queries within 31 bits of a listed hash)", hits)
		}
	})

	t.Run("revoke", func(t *testing.T) {
		submit(t, ctx, c, fixture.RevokeSignal(0, md5), fixture.RevokeIndex(0, 0))
		for _, sig := range []consortium.Signal{md5, pdq} {
			resp, err := c.Match(ctx, &pb.MatchRequest{Signal: sig.Proto()})
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Matches) != 0 {
				t.Errorf("match %s after revoke: got %d matches, want none", sig, len(resp.Matches))
			}
		}
		resp, err := c.Match(ctx, &pb.MatchRequest{Signal: u.Proto()})
		if err != nil || len(resp.Matches) != 1 {
			t.Errorf("url after revoking others: got %v, %v; want 1 match", resp, err)
		}
	})

	st, err := c.Status(ctx, &pb.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Member != "alpha" || st.Signals != 1 || st.FeedEnd != 5 {
		t.Errorf("status: got member %s, %d signals, feed end %d; want alpha, 1, 5", st.Member, st.Signals, st.FeedEnd)
	}
}

func TestMemberBadRequests(t *testing.T) {
	n := startTestNode(t, "alpha", nil)
	c := dialMember(t, n)
	ctx := testCtx(t)
	low, high := uint32(10), uint32(101)
	tests := []struct {
		name string
		req  *pb.MatchRequest
		code codes.Code
		msg  string
	}{
		{"no signal", &pb.MatchRequest{}, codes.InvalidArgument, "signal missing"},
		{"unknown type", &pb.MatchRequest{Signal: &pb.Signal{Type: "tmk", Value: []byte{1}}}, codes.InvalidArgument, `unknown signal type: "tmk"`},
		{"short md5", &pb.MatchRequest{Signal: &pb.Signal{Type: "md5", Value: []byte{1, 2, 3}}}, codes.InvalidArgument, "md5 value is 3 bytes, want 16"},
		{"zero pdq", &pb.MatchRequest{Signal: &pb.Signal{Type: "pdq", Value: make([]byte, 32)}}, codes.InvalidArgument, "0 bits set"},
		{"radius", &pb.MatchRequest{Signal: fixture.PDQ(1).Proto(), Radius: radius(64)}, codes.InvalidArgument, "radius 64 is out of range 0 to 63"},
		{"low quality", &pb.MatchRequest{Signal: fixture.PDQ(1).Proto(), Quality: &low}, codes.InvalidArgument, "quality 10 is below the quality gate 50"},
		{"quality range", &pb.MatchRequest{Signal: fixture.PDQ(1).Proto(), Quality: &high}, codes.InvalidArgument, "quality 101 is out of range"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Match(ctx, tc.req)
			wantCode(t, err, tc.code)
			if msg := status.Convert(err).Message(); !strings.Contains(msg, tc.msg) {
				t.Errorf("got message %q, want it to contain %q", msg, tc.msg)
			}
		})
	}
	t.Run("too many entries", func(t *testing.T) {
		es := make([]*pb.Entry, maxSubmitEntries+1)
		for i := range es {
			es[i] = &pb.Entry{}
		}
		_, err := c.Submit(ctx, &pb.SubmitRequest{Entries: es})
		wantCode(t, err, codes.InvalidArgument)
	})
	t.Run("empty submit", func(t *testing.T) {
		resp, err := c.Submit(ctx, &pb.SubmitRequest{})
		if err != nil || len(resp.Results) != 0 {
			t.Errorf("got %v, %v; want no results and no error", resp, err)
		}
	})
}

func TestMemberSubmitRefusals(t *testing.T) {
	n := startTestNode(t, "alpha", nil)
	c := dialMember(t, n)
	ctx := testCtx(t)
	low := uint32(10)
	good1, good2 := fixture.PDQ(10), fixture.MD5(10)
	req := []*pb.Entry{
		addEntry(good1, "behaviour:threat-incitement"),
		{Op: &pb.Entry_Add{Add: &pb.Add{Signal: fixture.PDQ(11).Proto(), Quality: &low}}},
		{Op: &pb.Entry_Add{Add: &pb.Add{Signal: &pb.Signal{Type: "md5", Value: []byte("abc")}}}},
		addEntry(good2, "behaviour:no-such-behaviour"),
		fixture.RevokeSignal(0, fixture.MD5(99)),
		addEntry(good2),
	}
	resp, err := c.Submit(ctx, &pb.SubmitRequest{Entries: req})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		index uint64
		err   string
	}{
		{0, ""},
		{0, "quality 10 is below the quality gate 50"},
		{0, "md5 value is 3 bytes, want 16"},
		{0, `unknown behaviour "no-such-behaviour"`},
		{0, "does not list md5"},
		{1, ""},
	}
	if len(resp.Results) != len(want) {
		t.Fatalf("got %d results, want %d", len(resp.Results), len(want))
	}
	for i, w := range want {
		r := resp.Results[i]
		if w.err == "" {
			if r.Error != "" || r.Index != w.index {
				t.Errorf("entry %d: got index %d, error %q; want index %d accepted", i, r.Index, r.Error, w.index)
			}
			continue
		}
		if !strings.Contains(r.Error, w.err) || len(r.Entry) != 0 {
			t.Errorf("entry %d: got error %q, want one containing %q (and no entry)", i, r.Error, w.err)
		}
	}
	for _, sig := range []consortium.Signal{good1, good2} {
		m, err := c.Match(ctx, &pb.MatchRequest{Signal: sig.Proto()})
		if err != nil || len(m.Matches) != 1 {
			t.Errorf("match %s: got %v, %v; want the accepted add", sig, m, err)
		}
	}
	if got := n.store.Size("alpha"); got != 2 {
		t.Errorf("log size: got %d, want 2", got)
	}

	t.Run("observer", func(t *testing.T) {
		obs := startTestNode(t, "obs", nil)
		oc := dialMember(t, obs)
		resp, err := oc.Submit(ctx, &pb.SubmitRequest{Entries: []*pb.Entry{addEntry(fixture.MD5(5)), fixture.Opinion(0, fixture.MD5(5), pb.Stance_STANCE_AGREE)}})
		if err != nil {
			t.Fatal(err)
		}
		if r := resp.Results[0]; !strings.Contains(r.Error, "observers cannot add") {
			t.Errorf("observer add: got error %q, want it refused as an observer's", r.Error)
		}
		if r := resp.Results[1]; r.Error != "" {
			t.Errorf("observer opinion: got error %q, want accepted", r.Error)
		}
	})
}

// feedAll reads a feed stream to its end.
func feedAll(t *testing.T, stream grpc.ServerStreamingClient[pb.FeedEvent]) []*pb.FeedEvent {
	t.Helper()
	var out []*pb.FeedEvent
	for {
		ev, err := stream.Recv()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("feed: %v", err)
		}
		out = append(out, ev)
	}
}

func TestMemberFeed(t *testing.T) {
	n := startTestNode(t, "alpha", nil)
	c := dialMember(t, n)
	ctx := testCtx(t)
	a, b := fixture.PDQ(20), fixture.MD5(20)
	submit(t, ctx, c, addEntry(a), addEntry(b))
	submit(t, ctx, c, fixture.RevokeIndex(0, 1), fixture.Opinion(0, a, pb.Stance_STANCE_AGREE))

	type want struct {
		seq      uint64
		op       consortium.Op
		listedBy string
	}
	all := []want{{0, consortium.OpAdd, "alpha"}, {1, consortium.OpAdd, ""}, {2, consortium.OpRevoke, ""}, {3, consortium.OpOpinion, "alpha"}}
	tests := []struct {
		name   string
		cursor uint64
		want   []want
	}{
		{"from 0", 0, all},
		{"resume", 2, all[2:]},
		{"at end", 4, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stream, err := c.Feed(ctx, &pb.FeedRequest{Cursor: tc.cursor})
			if err != nil {
				t.Fatal(err)
			}
			got := feedAll(t, stream)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d events, want %d", len(got), len(tc.want))
			}
			for i, w := range tc.want {
				ev := got[i]
				if ev.Seq != w.seq || ev.Member != "alpha" || ev.Index != w.seq || consortium.OpOf(ev.Entry) != w.op ||
					strings.Join(ev.ListedBy, ",") != w.listedBy || ev.Rejected != "" {
					t.Errorf("event %d: got seq %d %s/%d %v listed by %v rejected %q; want seq %d alpha/%d %v listed by %q",
						i, ev.Seq, ev.Member, ev.Index, consortium.OpOf(ev.Entry), ev.ListedBy, ev.Rejected, w.seq, w.seq, w.op, w.listedBy)
				}
			}
		})
	}

	t.Run("cursor past end", func(t *testing.T) {
		stream, err := c.Feed(ctx, &pb.FeedRequest{Cursor: 99})
		if err != nil {
			t.Fatal(err)
		}
		_, err = stream.Recv()
		wantCode(t, err, codes.OutOfRange)
	})

	t.Run("follow", func(t *testing.T) {
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		stream, err := c.Feed(fctx, &pb.FeedRequest{Cursor: 3, Follow: true})
		if err != nil {
			t.Fatal(err)
		}
		ev, err := stream.Recv()
		if err != nil || ev.Seq != 3 {
			t.Fatalf("got %v, %v; want the event at seq 3", ev, err)
		}
		newSig := fixture.MD5(21)
		start := time.Now()
		submit(t, ctx, c, addEntry(newSig))
		ev, err = stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("new entry arrived after %v, want within a second", d)
		}
		got, _ := consortium.SignalFromProto(ev.Entry.GetAdd().GetSignal())
		if ev.Seq != 4 || got != newSig || strings.Join(ev.ListedBy, ",") != "alpha" {
			t.Errorf("got seq %d signal %s listed by %v, want seq 4 %s listed by alpha", ev.Seq, got, ev.ListedBy, newSig)
		}
	})

	t.Run("node closes", func(t *testing.T) {
		waitFor(t, 5*time.Second, "the earlier streams to end", func() bool { return len(n.memberStreams) == 0 })
		stream, err := c.Feed(ctx, &pb.FeedRequest{Cursor: 5, Follow: true})
		if err != nil {
			t.Fatal(err)
		}
		// The stream is open once the server holds its slot.
		waitFor(t, 5*time.Second, "the feed stream to open", func() bool { return len(n.memberStreams) == 1 })
		start := time.Now()
		go n.Close()
		_, err = stream.Recv()
		wantCode(t, err, codes.Unavailable)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("stream ended %v after Close, want promptly", d)
		}
	})
}

// TestMemberFeedRejected checks that an entry of another member's log that replay rejected is
// reported as such in the feed.
func TestMemberFeedRejected(t *testing.T) {
	n := startTestNode(t, "alpha", nil)
	c := dialMember(t, n)
	ctx := testCtx(t)
	// beta's log: an add, then a revoke of a signal beta never listed (rejected by replay).
	l := fixture.NewLog(n.g.ID, fixture.Key("beta"))
	l.Append(fixture.Add(fixture.At(0), fixture.MD5(30)), fixture.RevokeSignal(fixture.At(1), fixture.MD5(31)))
	cp, err := n.openCheckpoint(l.Checkpoint())
	if err != nil {
		t.Fatal(err)
	}
	if err := n.store.AppendRange(cp, 0, l.Entries, nil); err != nil {
		t.Fatal(err)
	}
	stream, err := c.Feed(ctx, &pb.FeedRequest{})
	if err != nil {
		t.Fatal(err)
	}
	evs := feedAll(t, stream)
	if len(evs) != 2 {
		t.Fatalf("got %d events, want 2", len(evs))
	}
	if evs[0].Rejected != "" || strings.Join(evs[0].ListedBy, ",") != "beta" {
		t.Errorf("add: got rejected %q listed by %v, want accepted, listed by beta", evs[0].Rejected, evs[0].ListedBy)
	}
	if !strings.Contains(evs[1].Rejected, "does not list") {
		t.Errorf("revoke: got rejected %q, want the reason replay ignored it", evs[1].Rejected)
	}
}

// exportSet reads an export into "signal text: member,member" lines.
func exportSet(t *testing.T, ctx context.Context, c pb.MemberServiceClient, at int64) []string {
	t.Helper()
	stream, err := c.Export(ctx, &pb.ExportRequest{AtUnixMs: at})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for {
		rec, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("export: %v", err)
		}
		sig, err := consortium.SignalFromProto(rec.Signal)
		if err != nil {
			t.Fatal(err)
		}
		var ms []string
		for _, l := range rec.Listings {
			ms = append(ms, l.Member+"["+strings.Join(l.Labels, " ")+"]")
		}
		out = append(out, sig.String()+": "+strings.Join(ms, ","))
	}
	slices.Sort(out)
	return out
}

func TestMemberExport(t *testing.T) {
	n := startTestNode(t, "alpha", nil)
	c := dialMember(t, n)
	ctx := testCtx(t)
	base := time.Now().Add(-time.Hour).UnixMilli()
	a, b, e := fixture.MD5(40), fixture.MD5(41), fixture.MD5(42)
	expiring := &pb.Entry{TimeUnixMs: base, Op: &pb.Entry_Add{Add: &pb.Add{Signal: e.Proto(), ExpiresUnixMs: base + 200}}}
	submit(t, ctx, c,
		fixture.Add(base, a, "behaviour:threat-incitement"),
		fixture.Add(base, b),
		expiring,
		fixture.RevokeSignal(base+1000, b),
	)
	la := a.String() + ": alpha[behaviour:threat-incitement]"
	lb := b.String() + ": alpha[]"
	le := e.String() + ": alpha[]"
	tests := []struct {
		name string
		at   int64
		want []string
	}{
		{"now", 0, []string{la}},
		{"before the revoke", base + 500, []string{la, lb}},
		{"before the expiry", base + 100, []string{la, lb, le}},
		{"at the expiry", base + 200, []string{la, lb}},
		{"before everything", base - 1, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := exportSet(t, ctx, c, tc.at)
			slices.Sort(tc.want)
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	stream, err := c.Export(ctx, &pb.ExportRequest{AtUnixMs: -5})
	if err != nil {
		t.Fatal(err)
	}
	_, err = stream.Recv()
	wantCode(t, err, codes.InvalidArgument)
}

func TestMemberExportLogs(t *testing.T) {
	n := startTestNode(t, "alpha", nil)
	c := dialMember(t, n)
	ctx := testCtx(t)
	var es []*pb.Entry
	for i := range 50 {
		es = append(es, addEntry(fixture.MD5(100+i)))
	}
	submit(t, ctx, c, es...)
	submit(t, ctx, c, fixture.RevokeIndex(0, 3), addEntry(fixture.PDQ(7), "behaviour:recruitment-instruction"))
	// beta's log, held here as if replicated, with its checkpoint.
	bl := fixture.NewLog(n.g.ID, fixture.Key("beta"))
	bl.Append(fixture.Add(fixture.At(0), fixture.MD5(100)), fixture.Opinion(fixture.At(1), fixture.MD5(101), pb.Stance_STANCE_FALSE_POSITIVE))
	cp, err := n.openCheckpoint(bl.Checkpoint())
	if err != nil {
		t.Fatal(err)
	}
	if err := n.store.AppendRange(cp, 0, bl.Entries, nil); err != nil {
		t.Fatal(err)
	}

	stream, err := c.ExportLogs(ctx, &pb.ExportLogsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var chunks []*pb.LogChunk
	for {
		ch, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		chunks = append(chunks, ch)
	}
	if len(chunks) == 0 || len(chunks[0].Genesis) == 0 {
		t.Fatalf("got %d chunks, want the genesis first", len(chunks))
	}
	// Verify the bundle as an auditor would: genesis, then each log against its checkpoint.
	g, err := consortium.ParseGenesis(chunks[0].Genesis)
	if err != nil {
		t.Fatal(err)
	}
	if g.ID != n.g.ID {
		t.Fatalf("got consortium %s, want %s", g.ID, n.g.ID)
	}
	logs := consortium.Logs{}
	var order []string
	heads := map[string][]byte{}
	for _, ch := range chunks[1:] {
		if len(ch.Evidence) > 0 {
			t.Fatalf("got evidence against %s, want none", ch.Member)
		}
		if len(ch.Heads) > 0 {
			heads[ch.Member] = ch.Heads
			continue
		}
		if got, want := ch.Start, uint64(len(logs[ch.Member])); got != want {
			t.Fatalf("log %s: chunk starts at %d, want %d", ch.Member, got, want)
		}
		if len(logs[ch.Member]) == 0 {
			order = append(order, ch.Member)
		}
		logs[ch.Member] = append(logs[ch.Member], ch.Entries...)
		if len(ch.Checkpoint) == 0 {
			continue
		}
		cp, err := consortium.OpenCheckpoint(g.ID, g, ch.Checkpoint)
		if err != nil {
			t.Fatalf("log %s: %v", ch.Member, err)
		}
		if _, _, err := consortium.VerifyRange(consortium.NewTree(), logs[ch.Member], cp); err != nil {
			t.Fatalf("log %s: %v", ch.Member, err)
		}
	}
	if !slices.Equal(order, []string{"alpha", "beta"}) {
		t.Errorf("got logs %v, want [alpha beta] in order", order)
	}
	if got, want := len(logs["alpha"]), 52; got != want {
		t.Errorf("alpha's log: got %d entries, want %d (the node signs its own log before exporting)", got, want)
	}
	// The node's own heads note names both logs at the sizes exported.
	if len(heads) != 1 {
		t.Fatalf("got heads notes of %d members, want alpha's only", len(heads))
	}
	hn, err := consortium.OpenHeads(g.ID, g, heads["alpha"])
	if err != nil {
		t.Fatal(err)
	}
	if a, b := hn.Heads, []consortium.LogHead{{Member: "alpha", Size: 52}, {Member: "beta", Size: 2}}; len(a) != 2 || a[0].Member != b[0].Member || a[0].Size != b[0].Size || a[1].Member != b[1].Member || a[1].Size != b[1].Size {
		t.Errorf("heads note: got %+v, want alpha at 52 and beta at 2", a)
	}
	st, err := consortium.Replay(g, logs, consortium.ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d := st.Digest()
	if got, want := hex.EncodeToString(d[:]), n.Status().StateDigest; got != want {
		t.Errorf("replayed digest %s, node's %s", got, want)
	}
}

func TestMemberToken(t *testing.T) {
	const token = "s3cret-token"
	n := startTestNode(t, "alpha", func(c *Config) { c.MemberToken = token })
	c := dialMember(t, n)
	ctx := testCtx(t)
	with := func(v string) context.Context { return metadata.AppendToOutgoingContext(ctx, "authorization", v) }
	tests := []struct {
		name string
		ctx  context.Context
		code codes.Code
	}{
		{"none", ctx, codes.Unauthenticated},
		{"wrong", with("Bearer nope"), codes.Unauthenticated},
		{"no scheme", with(token), codes.Unauthenticated},
		{"right", with("Bearer " + token), codes.OK},
		{"scheme in lower case", with("bearer " + token), codes.OK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Status(tc.ctx, &pb.StatusRequest{})
			wantCode(t, err, tc.code)
			stream, err := c.Feed(tc.ctx, &pb.FeedRequest{})
			if err == nil {
				_, err = stream.Recv()
				if err == io.EOF {
					err = nil
				}
			}
			wantCode(t, err, tc.code)
		})
	}
	t.Run("health needs no token", func(t *testing.T) {
		conn, err := grpc.NewClient(n.MemberAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("got %v, %v; want SERVING", resp, err)
		}
	})
}

func TestMemberStreamLimit(t *testing.T) {
	n := startTestNode(t, "alpha", func(c *Config) { c.MaxMatchStreams = 1 })
	c := dialMember(t, n)
	ctx := testCtx(t)
	sctx, cancel := context.WithCancel(ctx)
	first, err := c.MatchStream(sctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Send(&pb.MatchRequest{Id: "a", Signal: fixture.MD5(1).Proto()}); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Recv(); err != nil {
		t.Fatal(err)
	}
	second, err := c.MatchStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	second.Send(&pb.MatchRequest{Id: "b", Signal: fixture.MD5(1).Proto()})
	_, err = second.Recv()
	wantCode(t, err, codes.ResourceExhausted)
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "limit 1") {
		t.Errorf("got message %q, want it to name the limit", msg)
	}
	feed, err := c.Feed(ctx, &pb.FeedRequest{})
	if err == nil {
		_, err = feed.Recv()
	}
	wantCode(t, err, codes.ResourceExhausted)

	// Once the first stream ends, its slot is free again.
	cancel()
	waitFor(t, 5*time.Second, "the stream slot to be released", func() bool { return len(n.memberStreams) == 0 })
	third, err := c.MatchStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	third.Send(&pb.MatchRequest{Id: "c", Signal: fixture.MD5(1).Proto()})
	if resp, err := third.Recv(); err != nil || resp.Id != "c" {
		t.Errorf("got %v, %v; want the answer to c", resp, err)
	}
	third.CloseSend()
}

func TestMemberUnixSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.sock")
	// A socket file left behind by a node that did not shut down cleanly.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()

	n := startTestNode(t, "alpha", func(c *Config) { c.MemberListen = "unix:" + path })
	if got, want := n.MemberAddr(), "unix:"+path; got != want {
		t.Errorf("member address: got %s, want %s", got, want)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("socket mode: got %v, want 0600", got)
	}
	c := dialMember(t, n)
	ctx := testCtx(t)
	submit(t, ctx, c, addEntry(fixture.MD5(50)))
	resp, err := c.Match(ctx, &pb.MatchRequest{Signal: fixture.MD5(50).Proto()})
	if err != nil || len(resp.Matches) != 1 {
		t.Errorf("match over the socket: got %v, %v; want 1 match", resp, err)
	}

	// A second node on the same live socket is refused; a regular file there is never removed.
	for _, tc := range []struct{ name, path string }{{"live socket", path}, {"regular file", filepath.Join(dir, "file")}} {
		if tc.name == "regular file" {
			os.WriteFile(tc.path, []byte("x"), 0o600)
		}
		if _, err := listenMember("unix:" + tc.path); err == nil {
			t.Errorf("%s: got no error, want one", tc.name)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "file")); err != nil {
		t.Errorf("regular file: %v", err)
	}
}

func TestCodeOf(t *testing.T) {
	tests := []struct {
		err  error
		want codes.Code
	}{
		{consortium.ErrInvalidSignal, codes.InvalidArgument},
		{errors.Join(errors.New("x"), consortium.ErrMalformed), codes.InvalidArgument},
		{consortium.ErrNotPermitted, codes.FailedPrecondition},
		{consortium.ErrOutOfOrder, codes.FailedPrecondition},
		{context.Canceled, codes.Canceled},
		{context.DeadlineExceeded, codes.DeadlineExceeded},
		{errClosed, codes.Unavailable},
		{errors.New("disk on fire"), codes.Internal},
		{status.Error(codes.NotFound, "x"), codes.NotFound},
	}
	for _, tc := range tests {
		if got := codeOf(tc.err); got != tc.want {
			t.Errorf("codeOf(%v): got %v, want %v", tc.err, got, tc.want)
		}
	}
	if err := toStatus(nil); err != nil {
		t.Errorf("toStatus(nil): got %v, want nil", err)
	}
}
