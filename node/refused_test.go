package node

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"github.com/hashicorp/memberlist"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"
)

// captured is a slog handler that keeps every record at warning level and above.
type captured struct {
	mu      sync.Mutex
	records []slog.Record
}

func (c *captured) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (c *captured) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	c.records = append(c.records, r.Clone())
	c.mu.Unlock()
	return nil
}
func (c *captured) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *captured) WithGroup(string) slog.Handler      { return c }

func (c *captured) lines() []slog.Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]slog.Record(nil), c.records...)
}

// refusedCount sums hashfed_refused_total over reasons.
func refusedCount(n *Node, reasons ...string) float64 {
	sum := 0.0
	for _, r := range reasons {
		sum += metricValue(n.metrics.refused.WithLabelValues(r))
	}
	return sum
}

// TestRefusedTrafficLogged floods a node with 20,000 gossip packets an outsider can send (junk
// without the cluster label, and labelled gossip messages that do not decode or carry a forged
// checkpoint claiming to come from a member) and with peer API handshakes it must refuse (a key not
// on the roster, no certificate). Every one is counted by reason; the log gets a bounded number of
// lines, with summaries of what it suppressed, and never names a forged message's claimed sender as
// its source.
func TestRefusedTrafficLogged(t *testing.T) {
	logs := &captured{}
	start := time.Now()
	c := newCluster(t, 1, "alpha", "bravo")
	c.tweak = func(cfg *Config) { cfg.Logger = slog.New(logs) }
	a := c.start("alpha")
	submitOK(t, a, fixture.Add(0, fixture.PDQ(1)))
	waitFor(t, 5*time.Second, "alpha signs its log", func() bool { _, ok := a.store.Head("alpha"); return ok })
	h, _ := a.store.Head("alpha")

	gossipReasons := []string{refGossipPacket, refGossipMalformed, refGossipCheckpoint}
	counted := func() float64 { return refusedCount(a, gossipReasons...) + metricValue(a.metrics.gossipDropped) }

	udp, err := net.Dial("udp", a.GossipAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	o := outsider(t, a, "eve", &forgedState{})
	host, port, _ := net.SplitHostPort(a.GossipAddr())
	p, _ := strconv.Atoi(port)
	target := &memberlist.Node{Name: "alpha", Addr: net.ParseIP(host), Port: uint16(p)}
	forged, _ := proto.Marshal(&pb.Gossip{From: "bravo", Msg: &pb.Gossip_Checkpoint{Checkpoint: flipSig(h.Note)}})
	const total, batch = 20_000, 200
	sent := 0
	for sent < total {
		for i := range batch {
			switch i % 3 {
			case 0: // junk without the cluster label
				udp.Write(fmt.Appendf(nil, "junk %d", sent))
			case 1: // labelled, but not a gossip message
				o.SendBestEffort(target, []byte{0xff, 0xfe, byte(sent)})
			case 2: // labelled, a checkpoint with a bad signature claiming to come from bravo
				o.SendBestEffort(target, forged)
			}
			sent++
		}
		// Pace the flood so that no packet is lost on the way (what is lost is not received).
		waitFor(t, 10*time.Second, fmt.Sprintf("%d packets counted", sent), func() bool { return counted() >= float64(sent) })
	}
	if got := counted(); got != total {
		t.Errorf("refused gossip counted %v times, want %d", got, total)
	}

	// Peer API handshakes that must be refused: a key not on the roster, no certificate at all.
	dial := func(certs []tls.Certificate) {
		conn, err := grpc.NewClient(a.PeerAddr(), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{Certificates: certs, InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		if _, err := pb.NewPeerServiceClient(conn).Heads(ctx, &pb.HeadsRequest{}); err == nil {
			t.Error("a refused client got an answer")
		}
	}
	mallory, _ := selfCert("mallory", fixture.Key("mallory").Ed25519())
	for range 20 {
		dial([]tls.Certificate{mallory})
		dial(nil)
	}
	waitFor(t, 5*time.Second, "refused handshakes counted", func() bool {
		return refusedCount(a, refTLSUnknownKey) >= 20 && refusedCount(a, refTLSBadCert) >= 20
	})
	a.refused.flush()

	lines := logs.lines()
	t.Logf("%d log lines", len(lines))
	// The limiter lets each kind log one more line (and a summary) every logEvery: a run slowed by
	// a loaded machine may log that much more, and no more.
	limit := 100 + 2*len(refusalReasons)*int(time.Since(start)/logEvery)
	if len(lines) > limit {
		t.Errorf("%d log lines for %d refused packets and 40 refused handshakes in %v, want at most %d", len(lines), total, time.Since(start).Round(time.Second), limit)
	}
	summaries := 0
	for _, r := range lines {
		if r.Message == "suppressed similar messages" {
			summaries++
		}
		r.Attrs(func(at slog.Attr) bool {
			if at.Key == "from" && at.Value.String() == "bravo" {
				t.Errorf("forged gossip logged as coming from the member it claims: %q", r.Message)
			}
			return true
		})
	}
	if summaries == 0 {
		t.Error("no line says how many similar messages were suppressed")
	}
	seen := map[string]bool{}
	for _, r := range lines {
		r.Attrs(func(at slog.Attr) bool {
			if at.Key == "reason" {
				seen[at.Value.String()] = true
			}
			return true
		})
	}
	for _, want := range []string{refGossipMalformed, refGossipCheckpoint, refTLSUnknownKey, refTLSBadCert} {
		if !seen[want] {
			t.Errorf("no log line for refusal reason %s", want)
		}
	}
}

// TestRefusalsBudget checks the token bucket with a controlled clock: a burst of lines, then one
// per interval, each after a summary of what was suppressed; every refusal counted.
func TestRefusalsBudget(t *testing.T) {
	logs := &captured{}
	reg := newMetrics(&Node{}).refused
	r := newRefusals(slog.New(logs), reg)
	now := time.Unix(1_000_000, 0)
	r.now = func() time.Time { return now }
	for range 100 {
		r.refuse(refGossipMalformed, "junk")
	}
	r.refuse(refTLSBadCert, "no cert") // another kind has its own budget
	if got := len(logs.lines()); got != logBurst+1 {
		t.Errorf("after 100 refusals of one kind and 1 of another: got %d lines, want %d", got, logBurst+1)
	}
	now = now.Add(logEvery)
	r.refuse(refGossipMalformed, "junk")
	lines := logs.lines()
	if got := len(lines); got != logBurst+3 {
		t.Fatalf("after one interval: got %d lines, want %d", got, logBurst+3)
	}
	sum := lines[len(lines)-2]
	var suppressed int64
	sum.Attrs(func(a slog.Attr) bool {
		if a.Key == "suppressed" {
			suppressed = a.Value.Int64()
		}
		return true
	})
	if sum.Message != "suppressed similar messages" || suppressed != 100-logBurst {
		t.Errorf("summary: got %q with %d suppressed, want %d suppressed", sum.Message, suppressed, 100-logBurst)
	}
	for range 10 {
		r.refuse(refGossipMalformed, "junk")
	}
	r.flush()
	lines = logs.lines()
	if last := lines[len(lines)-1]; last.Message != "suppressed similar messages" {
		t.Errorf("flush: last line %q, want a summary", last.Message)
	}
	if got := metricValue(reg.WithLabelValues(refGossipMalformed)); got != 111 {
		t.Errorf("counted %v refusals, want 111", got)
	}
}
