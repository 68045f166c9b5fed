package node

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Refused traffic is counted in full and logged sparingly: anyone who can reach a port can send
// junk faster than an operator can read, so each kind of refusal gets a small budget of log lines
// (a token bucket), and the lines it suppressed are summed up in one line when it may log again.

// Refusal reasons: the reason label of hashfed_refused_total. The set is fixed, so a sender cannot
// grow the metric or the limiter by what it sends.
const (
	refGossipMalformed  = "gossip_malformed"    // a gossip message that does not decode
	refGossipCheckpoint = "gossip_checkpoint"   // a gossiped checkpoint that does not verify
	refGossipEvidence   = "gossip_evidence"     // gossiped evidence that does not verify
	refGossipState      = "gossip_state"        // a push/pull state that does not decode or is too long
	refGossipOversized  = "gossip_oversized"    // a gossip message over 1 MiB
	refGossipNode       = "gossip_node"         // a gossip node refused (not on the roster, wrong consortium…)
	refGossipPacket     = "gossip_packet"       // traffic memberlist itself refused (bad label, undecodable…)
	refTLSUnknownKey    = "tls_unknown_key"     // a peer API client whose key is not on the roster
	refTLSBadCert       = "tls_bad_cert"        // a peer API client without a usable certificate
	refTLSHandshake     = "tls_handshake"       // any other failed peer API handshake
	refPeerAddrWrongKey = "peer_addr_wrong_key" // a member's advertised peer address answered with another key
	refHeadsOversized   = "heads_oversized"     // a head vector longer than allowed
	refHTTPBrowser      = "http_browser"        // an HTTP request sent cross-origin, or to a rebound name
)

// refusalReasons lists every reason, so each counter shows in /metrics from the start.
var refusalReasons = []string{refGossipMalformed, refGossipCheckpoint, refGossipEvidence, refGossipState, refGossipOversized,
	refGossipNode, refGossipPacket, refTLSUnknownKey, refTLSBadCert, refTLSHandshake, refPeerAddrWrongKey, refHeadsOversized, refPushRefused, refHTTPBrowser}

const (
	// logBurst lines of one kind may be logged at once; then one more every logEvery.
	logBurst = 5
	logEvery = 10 * time.Second
	// maxLogKinds bounds the kinds the limiter tracks; further kinds share one budget.
	maxLogKinds = 64
)

// refusals counts refused traffic by reason and logs it through a per-kind token bucket.
type refusals struct {
	log   *slog.Logger
	count *prometheus.CounterVec
	now   func() time.Time

	mu    sync.Mutex
	kinds map[string]*logBucket
}

type logBucket struct {
	level      slog.Level
	tokens     float64
	last       time.Time
	suppressed int
}

func newRefusals(l *slog.Logger, count *prometheus.CounterVec) *refusals {
	for _, r := range refusalReasons {
		count.WithLabelValues(r)
	}
	return &refusals{log: l, count: count, now: time.Now, kinds: map[string]*logBucket{}}
}

// refuse counts one refusal of reason and logs msg (rate-limited, at warning level).
func (r *refusals) refuse(reason, msg string, attrs ...any) {
	r.count.WithLabelValues(reason).Inc()
	r.logLimited(r.log, reason, slog.LevelWarn, msg, append([]any{"reason", reason}, attrs...)...)
}

// logLimited logs msg at level unless kind used up its budget; a line logged after suppressed ones
// is preceded by a summary of them.
func (r *refusals) logLimited(l *slog.Logger, kind string, level slog.Level, msg string, attrs ...any) {
	ctx := context.Background()
	if !l.Enabled(ctx, level) {
		return
	}
	r.mu.Lock()
	b := r.kinds[kind]
	if b == nil {
		if len(r.kinds) >= maxLogKinds {
			kind = "other"
			b = r.kinds[kind]
		}
		if b == nil {
			b = &logBucket{level: level, tokens: logBurst, last: r.now()}
			r.kinds[kind] = b
		}
	}
	now := r.now()
	b.tokens = min(logBurst, b.tokens+float64(now.Sub(b.last))/float64(logEvery))
	b.last = now
	b.level = max(b.level, level)
	if b.tokens < 1 {
		b.suppressed++
		r.mu.Unlock()
		return
	}
	b.tokens--
	suppressed := b.suppressed
	b.suppressed = 0
	r.mu.Unlock()
	if suppressed > 0 {
		l.Log(ctx, level, "suppressed similar messages", "kind", kind, "suppressed", suppressed)
	}
	l.Log(ctx, level, msg, attrs...)
}

// flush logs a summary line for every kind with suppressed lines, so a flood that stopped is still
// reported; the node calls it every logEvery, which bounds the summaries to one per kind then.
func (r *refusals) flush() {
	type line struct {
		kind  string
		level slog.Level
		k     int
	}
	var out []line
	r.mu.Lock()
	now := r.now()
	for kind, b := range r.kinds {
		b.tokens = min(logBurst, b.tokens+float64(now.Sub(b.last))/float64(logEvery))
		b.last = now
		if b.suppressed > 0 {
			out = append(out, line{kind, b.level, b.suppressed})
			b.suppressed = 0
		}
	}
	r.mu.Unlock()
	for _, l := range out {
		r.log.Log(context.Background(), l.level, "suppressed similar messages", "kind", l.kind, "suppressed", l.k)
	}
}

// memberlistKind is the limiter kind of a memberlist log line: its level and first words, which
// memberlist writes itself (what follows can come from the sender).
func memberlistKind(level slog.Level, line string) string {
	words := strings.Fields(line)
	return "memberlist " + level.String() + " " + strings.Join(words[:min(3, len(words))], " ")
}
