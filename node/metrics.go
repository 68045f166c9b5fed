package node

import (
	"github.com/hashfed/hashfed/consortium"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the node's Prometheus metrics, served on /metrics.
type metrics struct {
	registry *prometheus.Registry

	peers          prometheus.Gauge
	logSize        *prometheus.GaugeVec
	logLag         *prometheus.GaugeVec
	signals        prometheus.GaugeFunc
	entries        prometheus.Counter
	submitted      prometheus.Counter
	changes        *prometheus.CounterVec
	matchLatency   *prometheus.HistogramVec
	matchQueries   *prometheus.CounterVec
	replBytes      prometheus.Counter
	replEntries    prometheus.Counter
	badRanges      *prometheus.CounterVec
	gossipIn       *prometheus.CounterVec
	gossipDropped  prometheus.Counter
	equivocations  prometheus.Gauge
	refusedPeers   prometheus.Counter
	refusedStreams *prometheus.CounterVec
	refused        *prometheus.CounterVec
	isolated       prometheus.Gauge
	followBehind   *prometheus.GaugeVec
	followLast     prometheus.Gauge
}

func newMetrics(n *Node) *metrics {
	r := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { r.MustRegister(c) }
	m := &metrics{
		registry:  r,
		peers:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "hashfed_peers", Help: "Nodes gossip reports alive, this one excluded."}),
		logSize:   prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hashfed_log_entries", Help: "Entries stored of each member log."}, []string{"member"}),
		logLag:    prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hashfed_log_lag_entries", Help: "Entries of each member log known to exist but not yet stored here."}, []string{"member"}),
		entries:   prometheus.NewCounter(prometheus.CounterOpts{Name: "hashfed_entries_applied_total", Help: "Entries applied to the state since start (replayed at open excluded)."}),
		submitted: prometheus.NewCounter(prometheus.CounterOpts{Name: "hashfed_entries_submitted_total", Help: "Entries this node's platform appended to its own log."}),
		changes:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hashfed_state_changes_total", Help: "State changes by kind (listed, unlisted, opinion, roster)."}, []string{"kind"}),
		matchLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "hashfed_match_seconds", Help: "Time to answer one match query.",
			Buckets: []float64{20e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 50e-3, 0.25, 1}}, []string{"type"}),
		matchQueries:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hashfed_match_queries_total", Help: "Match queries by signal type and outcome (hit, miss, error)."}, []string{"type", "outcome"}),
		replBytes:      prometheus.NewCounter(prometheus.CounterOpts{Name: "hashfed_replication_bytes_total", Help: "Entry bytes received from peers and stored after verification."}),
		replEntries:    prometheus.NewCounter(prometheus.CounterOpts{Name: "hashfed_replication_entries_total", Help: "Entries received from peers and stored after verification."}),
		badRanges:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hashfed_bad_ranges_total", Help: "Ranges refused because they did not verify, by serving peer."}, []string{"peer"}),
		gossipIn:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hashfed_gossip_messages_total", Help: "Gossip messages received by kind and outcome."}, []string{"kind", "outcome"}),
		gossipDropped:  prometheus.NewCounter(prometheus.CounterOpts{Name: "hashfed_gossip_dropped_total", Help: "Gossip messages dropped because the handling queue was full."}),
		equivocations:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "hashfed_equivocations", Help: "Members caught signing incompatible checkpoints."}),
		refusedPeers:   prometheus.NewCounter(prometheus.CounterOpts{Name: "hashfed_refused_peers_total", Help: "Peer connections and gossip nodes refused because their key or id is not on the roster."}),
		refusedStreams: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hashfed_refused_streams_total", Help: "Streams refused with RESOURCE_EXHAUSTED, by API."}, []string{"api"}),
		refused:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hashfed_refused_total", Help: "Traffic refused, by reason (every refusal is counted; its log lines are rate-limited)."}, []string{"reason"}),
		isolated:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "hashfed_gossip_isolated", Help: "1 while gossip sees no other node although the roster has other members; the node keeps trying to rejoin."}),
		followBehind: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hashfed_replica_followed_behind_entries",
			Help: "Read replica: entries of each log this replica verified beyond what the followed node now holds (restored from an older backup, or withholding); what was verified is kept."}, []string{"member"}),
		followLast: prometheus.NewGauge(prometheus.GaugeOpts{Name: "hashfed_replica_last_follow_timestamp_seconds",
			Help: "Read replica: Unix time of the last head exchange with the followed member's node that proved that member's key (0: none yet)."}),
	}
	m.signals = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hashfed_signals_listed", Help: "Signals listed by at least one member."}, func() float64 {
		var k int
		n.store.View(func(s *consortium.State) { k, _ = s.Counts() })
		return float64(k)
	})
	for _, c := range []prometheus.Collector{m.peers, m.logSize, m.logLag, m.signals, m.entries, m.submitted, m.changes, m.matchLatency, m.matchQueries,
		m.replBytes, m.replEntries, m.badRanges, m.gossipIn, m.gossipDropped, m.equivocations, m.refusedPeers, m.refusedStreams, m.refused, m.isolated, m.followBehind, m.followLast,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		f(c)
	}
	return m
}

// onChange counts state changes; the store calls it under its lock.
func (m *metrics) onChange(c consortium.Change) {
	m.changes.WithLabelValues(c.Kind.String()).Inc()
}

// Metrics returns the node's metrics, as /metrics serves them (for benchmarks and tests in the
// same process).
func (n *Node) Metrics() prometheus.Gatherer { return n.metrics.registry }
