package node

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// hostile is a peer that holds a roster key and a correct store, and misbehaves on the peer API in
// one way (mode), passing everything else to the honest implementation.
type hostile struct {
	pb.PeerServiceServer
	mode string
	n    func() *Node // the hostile node itself (for its key and store)
}

type chunkStream struct {
	grpc.ServerStreamingServer[pb.RangeChunk]
	mod func(*pb.RangeChunk) *pb.RangeChunk
}

func (s *chunkStream) Send(c *pb.RangeChunk) error {
	if c = s.mod(c); c == nil {
		return nil
	}
	return s.ServerStreamingServer.Send(c)
}

// flipSig damages the first signature of a note.
func flipSig(note []byte) []byte {
	out := append([]byte(nil), note...)
	i := bytes.LastIndex(out, []byte(" ")) + 10
	if out[i] == 'A' {
		out[i] = 'B'
	} else {
		out[i] = 'A'
	}
	return out
}

func (h *hostile) GetRange(req *pb.RangeRequest, stream grpc.ServerStreamingServer[pb.RangeChunk]) error {
	n := h.n()
	if req.Member != "alpha" {
		return h.PeerServiceServer.GetRange(req, stream)
	}
	switch h.mode {
	case "stall":
		<-stream.Context().Done()
		return stream.Context().Err()
	case "endless":
		head, _ := n.store.Head(req.Member)
		pos := req.Start
		for i := 0; stream.Context().Err() == nil; i++ {
			e := fixture.Marshal(fixture.Add(fixture.At(int64(i)), fixture.PDQ(900_000+i)))
			c := &pb.RangeChunk{Start: pos, Entries: [][]byte{e}}
			if i == 0 {
				c.Checkpoint = head.Note
			}
			if err := stream.Send(c); err != nil {
				return err
			}
			pos++
		}
		return stream.Context().Err()
	case "unknown":
		// A checkpoint of this log signed by a key that is not the author's, under the author's origin.
		l := fixture.NewLog(n.g.ID, fixture.Key("zed"))
		l.Append(fixture.Add(fixture.At(1), fixture.PDQ(1)))
		note := bytes.Replace(l.Checkpoint(), []byte("/zed"), []byte("/"+req.Member), -1)
		return stream.Send(&pb.RangeChunk{Checkpoint: note, Entries: l.Entries})
	case "oversized":
		head, _ := n.store.Head(req.Member)
		big := make([]byte, 3<<20)
		return stream.Send(&pb.RangeChunk{Checkpoint: head.Note, Start: req.Start, Entries: [][]byte{big}})
	}
	first := true
	return h.PeerServiceServer.GetRange(req, &chunkStream{ServerStreamingServer: stream, mod: func(c *pb.RangeChunk) *pb.RangeChunk {
		c = proto.Clone(c).(*pb.RangeChunk)
		switch h.mode {
		case "forge":
			if len(c.Entries) > 0 {
				c.Entries[len(c.Entries)/2] = fixture.Marshal(fixture.Add(fixture.At(5), fixture.PDQ(777_777)))
			}
		case "reorder":
			if len(c.Entries) > 1 {
				c.Entries[0], c.Entries[1] = c.Entries[1], c.Entries[0]
			}
		case "truncate":
			if len(c.Entries) > 0 && len(c.ConsistencyProof) == 0 {
				c.Entries = c.Entries[:len(c.Entries)-1]
			}
		case "badproof":
			if len(c.ConsistencyProof) > 0 {
				c.ConsistencyProof[0] = bytes.Repeat([]byte{7}, 32)
			}
		case "badsig":
			if first {
				c.Checkpoint = flipSig(c.Checkpoint)
			}
		case "wronglog":
			if first {
				other, _ := n.store.Head("mallory")
				c.Checkpoint = other.Note
			}
		case "garbage":
			for i := range c.Entries {
				c.Entries[i] = []byte{0xff, 0x01, 0x02}
			}
		}
		first = false
		return c
	}})
}

func (h *hostile) Heads(ctx context.Context, req *pb.HeadsRequest) (*pb.HeadsResponse, error) {
	switch h.mode {
	case "bigheads":
		resp := &pb.HeadsResponse{}
		for i := range maxHeads + 10 {
			resp.Heads = append(resp.Heads, &pb.Head{Member: fmt.Sprintf("x%d", i), Size: 1 << 40})
		}
		return resp, nil
	case "badsig", "unknown":
		resp, err := h.PeerServiceServer.Heads(ctx, req)
		if err == nil {
			for _, hd := range resp.Heads {
				if len(hd.Checkpoint) > 0 {
					hd.Checkpoint = flipSig(hd.Checkpoint)
				}
			}
		}
		return resp, err
	}
	return h.PeerServiceServer.Heads(ctx, req)
}

func metricValue(c interface{ Write(*dto.Metric) error }) float64 {
	var m dto.Metric
	c.Write(&m)
	return m.GetCounter().GetValue()
}

// TestHostilePeer runs a consortium where mallory holds a roster key and a correct copy of alpha's
// log but serves it wrongly in one way at a time. charlie, a new node, can reach only mallory at
// first: it must store nothing wrong and keep serving its platform. Once it can reach bravo too, it
// must get the honest copy and converge, with mallory reported.
func TestHostilePeer(t *testing.T) {
	modes := []struct {
		mode     string
		reported func(ch *Node) bool // how charlie reports mallory
	}{
		{"forge", badRangesFrom("mallory")},
		{"reorder", badRangesFrom("mallory")},
		{"truncate", badRangesFrom("mallory")},
		{"badproof", badRangesFrom("mallory")},
		{"badsig", badRangesFrom("mallory")},
		{"unknown", badRangesFrom("mallory")},
		{"wronglog", badRangesFrom("mallory")},
		{"garbage", badRangesFrom("mallory")},
		{"endless", badRangesFrom("mallory")},
		{"bigheads", badRangesFrom("mallory")},
		{"stall", lastErrorFrom("mallory", "")},
		{"oversized", lastErrorFrom("mallory", "larger than max")},
	}
	for _, tc := range modes {
		t.Run(tc.mode, func(t *testing.T) {
			c := newCluster(t, 2, "alpha", "bravo", "charlie", "mallory")
			var mallory *Node
			c.tweak = func(cfg *Config) {
				cfg.RequestTimeout = time.Second
				switch cfg.Key.ID() {
				case "mallory":
					cfg.ChunkEntries = 8 // several chunks, each with a consistency proof
					cfg.peerWrap = func(s pb.PeerServiceServer) pb.PeerServiceServer {
						return &hostile{PeerServiceServer: s, mode: tc.mode, n: func() *Node { return mallory }}
					}
				case "charlie":
					cfg.MaxMessageBytes = 2 << 20
				}
			}
			a, b := c.start("alpha"), c.start("bravo")
			mallory = c.start("mallory")
			var es []*pb.Entry
			for i := range 40 {
				es = append(es, fixture.Add(0, fixture.PDQ(i)))
			}
			submitOK(t, a, es...)
			submitOK(t, mallory, fixture.Add(0, fixture.MD5(1)))
			waitFor(t, 10*time.Second, "bravo and mallory hold alpha's log", func() bool {
				return b.store.Size("alpha") == 40 && mallory.store.Size("alpha") == 40 && b.store.Size("mallory") == 1
			})
			c.stop("alpha")
			c.part.cut([]string{"charlie", "mallory"}, []string{"bravo"})
			ch := c.start("charlie")
			waitFor(t, 15*time.Second, "charlie reports mallory", func() bool { return tc.reported(ch) })
			// Nothing wrong was stored, and charlie still serves its platform.
			if got := ch.store.Size("alpha"); got != 0 && tc.mode != "stall" {
				es, _ := ch.store.Entries("alpha", 0, got, 1<<20)
				want, _ := b.store.Entries("alpha", 0, got, 1<<20)
				for i := range es {
					if !bytes.Equal(es[i], want[i]) {
						t.Fatalf("charlie stored a wrong entry %d of alpha's log", i)
					}
				}
			}
			if tc.mode == "bigheads" {
				// No peer charlie reaches has answered a head exchange it can use: it cannot know
				// how long its own log is, so it takes no submission until an honest peer answers.
				if _, err := ch.Submit(t.Context(), []*pb.Entry{fixture.Add(0, fixture.PDQ(5000))}); !errors.Is(err, ErrRestoring) {
					t.Fatalf("got %v, want ErrRestoring while only the liar answers", err)
				}
				c.part.heal()
				waitFor(t, 15*time.Second, "charlie takes submissions once bravo answers", func() bool {
					_, err := ch.Submit(t.Context(), []*pb.Entry{fixture.Add(0, fixture.PDQ(5000))})
					return err == nil
				})
			} else {
				submitOK(t, ch, fixture.Add(0, fixture.PDQ(5000)))
			}
			if ms := matches(ch, fixture.PDQ(5000)); len(ms) != 1 {
				t.Fatalf("charlie stopped matching its own add")
			}
			c.part.heal()
			waitFor(t, 15*time.Second, "charlie gets the honest copy and converges", func() bool {
				return ch.store.Size("alpha") == 40 && digestOf(ch) == digestOf(b)
			})
		})
	}
}

func badRangesFrom(peer string) func(*Node) bool {
	return func(n *Node) bool { return metricValue(n.metrics.badRanges.WithLabelValues(peer)) >= 1 }
}

func lastErrorFrom(peer, contains string) func(*Node) bool {
	return func(n *Node) bool {
		for _, p := range n.Status().Peers {
			if p.Member == peer && p.LastError != "" && strings.Contains(p.LastError, contains) {
				return true
			}
		}
		return false
	}
}

// rawCodec sends request bytes as they are, to feed a server malformed protobuf.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

var _ encoding.Codec = rawCodec{}

// TestPeerAPIAbuse calls an honest node's peer API as a member with a roster key that sends
// garbage, floods, and asks too much. The node answers each with an error and keeps serving.
func TestPeerAPIAbuse(t *testing.T) {
	c := newCluster(t, 2, "alpha", "bravo", "mallory")
	c.tweak = func(cfg *Config) { cfg.MaxPeerStreams = 2; cfg.ChunkEntries = 10 }
	a := c.start("alpha")
	var es []*pb.Entry
	for i := range 3000 {
		es = append(es, fixture.Add(0, fixture.PDQ(i)))
	}
	submitOK(t, a, es...)
	waitFor(t, 5*time.Second, "alpha signs its log", func() bool { h, ok := a.store.Head("alpha"); return ok && h.Size == 3000 })
	cert, _ := selfCert("mallory", fixture.Key("mallory").Ed25519())
	conn, err := grpc.NewClient(a.PeerAddr(), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cl := pb.NewPeerServiceClient(conn)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()

	// Malformed protobuf to every method.
	r := rand.New(rand.NewPCG(1, 2))
	for _, m := range []string{"Heads", "GetConsistency", "GetEvidence", "Cosign"} {
		for range 50 {
			junk := make([]byte, r.IntN(300))
			for i := range junk {
				junk[i] = byte(r.IntN(256))
			}
			var out []byte
			conn.Invoke(ctx, "/hashfed.v1.PeerService/"+m, &junk, &out, grpc.ForceCodecV2(encoding.GetCodecV2("proto")), grpc.ForceCodec(rawCodec{}))
		}
	}
	// Too many logs in a head vector; a range of a log nobody has; a forged checkpoint to cosign.
	big := &pb.HeadsRequest{}
	for i := range maxHeads + 1 {
		big.Heads = append(big.Heads, &pb.Head{Member: fmt.Sprintf("x%d", i), Size: 1})
	}
	if _, err := cl.Heads(ctx, big); status.Code(err) != codes.InvalidArgument {
		t.Errorf("oversized head vector: got %v", err)
	}
	st, _ := cl.GetRange(ctx, &pb.RangeRequest{Member: "nobody"})
	if _, err := st.Recv(); status.Code(err) != codes.OutOfRange {
		t.Errorf("range of an unknown log: got %v", err)
	}
	h, _ := a.store.Head("alpha")
	if _, err := cl.Cosign(ctx, &pb.CosignRequest{Checkpoint: flipSig(h.Note)}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("cosign of a forged checkpoint: got %v", err)
	}
	// More range streams than allowed at once: the extra ones are refused, not queued.
	var wg sync.WaitGroup
	var mu sync.Mutex
	codesSeen := map[codes.Code]int{}
	for range 8 {
		wg.Go(func() {
			s, err := cl.GetRange(ctx, &pb.RangeRequest{Member: "alpha"})
			if err == nil {
				_, err = s.Recv()
				time.Sleep(500 * time.Millisecond) // read slowly: the server's stream stays busy
				for err == nil {
					_, err = s.Recv()
				}
			}
			if errors.Is(err, io.EOF) {
				err = nil
			}
			mu.Lock()
			codesSeen[status.Code(err)]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if codesSeen[codes.ResourceExhausted] == 0 {
		t.Errorf("no stream was refused with RESOURCE_EXHAUSTED: %v", codesSeen)
	}
	// A flood of head exchanges.
	for range 500 {
		cl.Heads(ctx, &pb.HeadsRequest{})
	}
	// The node still serves its platform and its peers.
	submitOK(t, a, fixture.Add(0, fixture.PDQ(9999)))
	if len(matches(a, fixture.PDQ(9999))) != 1 {
		t.Error("alpha stopped matching")
	}
	b := c.start("bravo")
	waitFor(t, 10*time.Second, "bravo replicates from alpha", func() bool { return b.store.Size("alpha") == 3001 })
}

// TestGossipFloodAndGarbage has mallory flood the honest nodes with gossip: random bytes, forged
// checkpoints, checkpoints of unknown members, bogus evidence. They drop or refuse it all and keep
// replicating and matching.
func TestGossipFloodAndGarbage(t *testing.T) {
	c := newCluster(t, 2, "alpha", "bravo", "mallory")
	a, b, m := c.start("alpha"), c.start("bravo"), c.start("mallory")
	submitOK(t, a, fixture.Add(0, fixture.PDQ(1)))
	waitFor(t, 10*time.Second, "initial replication", func() bool { return b.store.Size("alpha") == 1 })
	h, _ := a.store.Head("alpha")
	zed := fixture.NewLog(c.g.ID, fixture.Key("zed"))
	zed.Append(fixture.Add(fixture.At(1), fixture.PDQ(2)))
	msgs := [][]byte{}
	for _, g := range []*pb.Gossip{
		{From: "mallory", Msg: &pb.Gossip_Checkpoint{Checkpoint: flipSig(h.Note)}},
		{From: "mallory", Msg: &pb.Gossip_Checkpoint{Checkpoint: zed.Checkpoint()}},
		{From: "mallory", Msg: &pb.Gossip_Evidence{Evidence: &pb.Equivocation{Member: "alpha", CheckpointA: h.Note, CheckpointB: h.Note}}},
		{From: "mallory", Msg: &pb.Gossip_Checkpoint{Checkpoint: []byte("not a note")}},
	} {
		b, _ := proto.Marshal(g)
		msgs = append(msgs, b)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		junk := make([]byte, 1+r.IntN(1000))
		for i := range junk {
			junk[i] = byte(r.IntN(256))
		}
		msgs = append(msgs, junk)
	}
	targets := []string{}
	for _, node := range m.ml.Members() {
		if node.Name != "mallory" {
			targets = append(targets, node.Name)
		}
	}
	start := time.Now()
	sent := 0
	for time.Since(start) < 2*time.Second {
		for _, node := range m.ml.Members() {
			if node.Name == "mallory" {
				continue
			}
			for _, msg := range msgs {
				m.ml.SendBestEffort(node, msg)
				sent++
			}
		}
	}
	t.Logf("mallory sent %d gossip messages to %v", sent, targets)
	// Honest work goes on during and after the flood.
	submitOK(t, a, fixture.Add(0, fixture.PDQ(2)))
	waitFor(t, 10*time.Second, "bravo replicates after the flood", func() bool { return b.store.Size("alpha") == 2 && len(matches(b, fixture.PDQ(2))) == 1 })
	if len(b.store.Evidence()) != 0 || len(a.store.Evidence()) != 0 {
		t.Error("bogus evidence was accepted")
	}
	bad := metricValue(b.metrics.gossipIn.WithLabelValues("checkpoint", "bad")) + metricValue(b.metrics.gossipIn.WithLabelValues("unknown", "malformed")) + metricValue(b.metrics.gossipIn.WithLabelValues("evidence", "bad"))
	if bad == 0 {
		t.Error("the garbage was not counted")
	}
	_ = consortium.ErrMalformed
}
