package node

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// One node per fuzzing process, holding a few entries, whose handlers the fuzz targets call
// directly (the network layers below them are grpc's and memberlist's).
var (
	fuzzOnce sync.Once
	fuzzNode *Node
)

func fuzzTarget(f *testing.F) *Node {
	fuzzOnce.Do(func() {
		dir, err := os.MkdirTemp("", "hashfed-fuzz-")
		if err != nil {
			f.Fatal(err)
		}
		g := fixture.Genesis(1, fixture.Members("alpha", "bravo")...)
		cfg := DefaultConfig()
		cfg.Genesis, cfg.Key, cfg.DataDir = g, fixture.Key("alpha"), filepath.Join(dir, "alpha")
		cfg.PeerListen, cfg.GossipListen, cfg.MemberListen, cfg.HTTPListen = "127.0.0.1:0", "127.0.0.1:0", "", ""
		cfg.Store.NoSync = true
		cfg.CheckpointInterval = time.Millisecond
		n, err := New(cfg)
		if err != nil {
			f.Fatal(err)
		}
		if err := n.Start(); err != nil {
			f.Fatal(err)
		}
		// Fixed times, so that every fuzzing process builds the very same log (seeds made in one
		// process are checkpoints of it; a different log under the same key would be equivocation).
		var es []*pb.Entry
		for i := range 50 {
			es = append(es, fixture.Add(fixture.At(int64(i)), fixture.PDQ(i), "behaviour:threat-incitement"))
		}
		es = append(es, fixture.Opinion(fixture.At(50), fixture.PDQ(3), pb.Stance_STANCE_AGREE))
		if _, err := n.Submit(context.Background(), es); err != nil {
			f.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for h, ok := n.store.Head("alpha"); !ok || h.Size < 51; h, ok = n.store.Head("alpha") {
			if time.Now().After(deadline) {
				f.Fatal("no checkpoint")
			}
			time.Sleep(5 * time.Millisecond)
		}
		fuzzNode = n
	})
	return fuzzNode
}

// sink is a server stream that discards what it is sent.
type sink[T any] struct {
	grpc.ServerStream
	ctx  context.Context
	sent int
}

func (s *sink[T]) Send(*T) error {
	s.sent++
	if s.sent > 100_000 {
		return context.Canceled
	}
	return nil
}
func (s *sink[T]) Context() context.Context     { return s.ctx }
func (s *sink[T]) SetHeader(metadata.MD) error  { return nil }
func (s *sink[T]) SendHeader(metadata.MD) error { return nil }
func (s *sink[T]) SetTrailer(metadata.MD)       {}

func seedMessages(f *testing.F, msgs ...proto.Message) {
	for i, m := range msgs {
		b, _ := proto.Marshal(m)
		f.Add(byte(i), b)
	}
}

// FuzzPeerHandlers feeds hostile requests to every handler of the peer API, as a roster member
// would send them after the TLS handshake. No input may panic, hang or corrupt the store.
func FuzzPeerHandlers(f *testing.F) {
	n := fuzzTarget(f)
	h, _ := n.store.Head("alpha")
	seedMessages(f,
		&pb.HeadsRequest{Heads: []*pb.Head{{Member: "alpha", Size: 3}, {Member: "zed", Size: 1 << 60}}},
		&pb.RangeRequest{Member: "alpha", Start: 10, MaxEntries: 5},
		&pb.ConsistencyRequest{Member: "alpha", OldSize: 3, NewSize: 40},
		&pb.EvidenceRequest{Member: "alpha"},
		&pb.CosignRequest{Checkpoint: h.Note},
		&pb.PushRequest{Checkpoint: h.Note, Start: 50, Entries: [][]byte{[]byte("not an entry")}},
	)
	srv := &peerServer{n: n}
	f.Fuzz(func(t *testing.T, which byte, raw []byte) {
		ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), callerKey{}, "bravo"), 2*time.Second)
		defer cancel()
		switch which % 6 {
		case 0:
			var req pb.HeadsRequest
			if proto.Unmarshal(raw, &req) == nil {
				srv.Heads(ctx, &req)
			}
		case 1:
			var req pb.RangeRequest
			if proto.Unmarshal(raw, &req) == nil {
				srv.GetRange(&req, &sink[pb.RangeChunk]{ctx: ctx})
			}
		case 2:
			var req pb.ConsistencyRequest
			if proto.Unmarshal(raw, &req) == nil {
				srv.GetConsistency(ctx, &req)
			}
		case 3:
			var req pb.EvidenceRequest
			if proto.Unmarshal(raw, &req) == nil {
				srv.GetEvidence(ctx, &req)
			}
		case 4:
			var req pb.CosignRequest
			if proto.Unmarshal(raw, &req) == nil {
				srv.Cosign(ctx, &req)
			}
		case 5:
			var req pb.PushRequest
			if proto.Unmarshal(raw, &req) == nil {
				srv.Push(ctx, &req)
			}
		}
		if n.store.Size("alpha") < 51 {
			t.Fatal("a peer request changed the log")
		}
	})
}

// FuzzMemberHandlers feeds malformed requests to the member API's handlers.
func FuzzMemberHandlers(f *testing.F) {
	n := fuzzTarget(f)
	q := uint32(3)
	seedMessages(f,
		&pb.MatchRequest{Id: "1", Signal: fixture.PDQ(3).Proto(), Radius: &q},
		&pb.LookupRequest{Signal: fixture.MD5(1).Proto()},
		&pb.SubmitRequest{Entries: []*pb.Entry{fixture.Opinion(0, fixture.PDQ(9), pb.Stance_STANCE_OUTDATED)}},
		&pb.SubmitRequest{Entries: []*pb.Entry{{Op: &pb.Entry_Add{Add: &pb.Add{}}}}},
		&pb.FeedRequest{Cursor: 10},
		&pb.ExportRequest{AtUnixMs: fixture.At(1)},
	)
	srv := &memberServer{n: n}
	f.Fuzz(func(t *testing.T, which byte, raw []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		switch which % 6 {
		case 0:
			var req pb.MatchRequest
			if proto.Unmarshal(raw, &req) == nil {
				srv.Match(ctx, &req)
			}
		case 1:
			var req pb.LookupRequest
			if proto.Unmarshal(raw, &req) == nil {
				srv.Lookup(ctx, &req)
			}
		case 2:
			var req pb.SubmitRequest
			if proto.Unmarshal(raw, &req) == nil && len(req.Entries) < 100 {
				// Only opinions and votes: adds would grow the log without bound across runs.
				var keep []*pb.Entry
				for _, e := range req.Entries {
					if e.GetAdd() == nil {
						keep = append(keep, e)
					}
				}
				req.Entries = keep
				srv.Submit(ctx, &req)
			}
		case 3:
			var req pb.FeedRequest
			if proto.Unmarshal(raw, &req) == nil {
				req.Follow = false
				srv.Feed(&req, &sink[pb.FeedEvent]{ctx: ctx})
			}
		case 4:
			var req pb.ExportRequest
			if proto.Unmarshal(raw, &req) == nil {
				srv.Export(&req, &sink[pb.ExportRecord]{ctx: ctx})
			}
		}
	})
}

// FuzzGossip feeds arbitrary gossip messages and push/pull states to the gossip handlers.
func FuzzGossip(f *testing.F) {
	n := fuzzTarget(f)
	h, _ := n.store.Head("alpha")
	for _, g := range []*pb.Gossip{
		{From: "bravo", Msg: &pb.Gossip_Checkpoint{Checkpoint: h.Note}},
		{From: "bravo", Msg: &pb.Gossip_Evidence{Evidence: &pb.Equivocation{Member: "alpha", CheckpointA: h.Note, CheckpointB: h.Note}}},
	} {
		b, _ := proto.Marshal(g)
		f.Add(false, b)
	}
	st, _ := proto.Marshal(&pb.GossipState{Heads: []*pb.Head{{Member: "alpha", Size: 51}}})
	f.Add(true, st)
	f.Fuzz(func(t *testing.T, state bool, raw []byte) {
		if state {
			n.handleRemoteState(raw)
		} else {
			n.handleGossip(raw)
		}
		if len(n.store.Evidence()) > 0 {
			t.Fatalf("gossip made the node hold evidence against an honest member: %v", n.store.Evidence()["alpha"])
		}
	})
}

// FuzzHTTP sends arbitrary JSON and query strings to the JSON API.
func FuzzHTTP(f *testing.F) {
	n := fuzzTarget(f)
	h := n.httpHandler()
	f.Add("POST", "/v1/match", `{"type":"pdq","value":"`+fixture.PDQ(3).Text()+`","radius":31}`)
	f.Add("GET", "/v1/lookup?type=md5&value=00", "")
	f.Add("GET", "/v1/match?type=url&value=http://x/&radius=-1", "")
	f.Fuzz(func(t *testing.T, method, target, body string) {
		if method != "GET" && method != "POST" || !strings.HasPrefix(target, "/") || strings.ContainsAny(target, " \r\n\t") {
			return
		}
		req, err := http.NewRequest(method, "http://node"+target, strings.NewReader(body))
		if err != nil {
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s %s: status %d: %s", method, target, rec.Code, rec.Body)
		}
	})
}
