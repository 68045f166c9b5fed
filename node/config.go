package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/hashfed/hashfed/consortium"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"github.com/hashfed/hashfed/store"
)

// Config configures a [Node]. Start from [DefaultConfig] and set at least Genesis, Key and DataDir.
type Config struct {
	// Genesis is the consortium's genesis (required).
	Genesis *consortium.Genesis
	// Key is this node's member key (required); its id must be on the roster.
	Key *consortium.PrivateKey
	// DataDir holds the store, hashfed.db (required; created if missing).
	DataDir string

	// PeerListen is the host:port of the peer API (gRPC over mutual TLS). Port 0 picks a free port.
	PeerListen string
	// PeerAdvertise is the address other nodes dial for the peer API; empty means the listen
	// address (with an unspecified host replaced by GossipAdvertise's host or 127.0.0.1).
	PeerAdvertise string
	// GossipListen is the host:port memberlist binds (UDP and TCP). Port 0 picks a free port.
	GossipListen string
	// GossipAdvertise is the address other nodes gossip to; empty means the listen address.
	GossipAdvertise string
	// Join lists gossip addresses (host:port) of nodes to join at start; retried until one answers.
	Join []string
	// GossipKeys are memberlist encryption keys (16, 24 or 32 bytes each); the first encrypts. Empty
	// means gossip is not encrypted (it carries only signed checkpoints, never entries).
	GossipKeys [][]byte
	// ClusterLabel is memberlist's cluster label; empty means "hashfed-" and the first 16 hex digits
	// of the consortium id, so nodes of different consortiums never merge.
	ClusterLabel string

	// MemberListen is the member API's address: host:port, or unix:PATH for a unix socket. Empty
	// disables it. A listener that is not loopback or a unix socket requires MemberToken.
	MemberListen string
	// MemberToken, when set, is the bearer token the member API and the JSON API require.
	MemberToken string
	// ConsoleHashVideo, when set, lets the console's search hash an uploaded video into signals
	// (vPDQ); without it the console searches by image and by hash only.
	ConsoleHashVideo func(ctx context.Context, data []byte) ([]consortium.Signal, error)
	// HTTPListen is the address of /metrics, /healthz and the JSON API; empty disables them.
	HTTPListen string
	// HashURLAllow lists the hosts (each with its subdomains) from which the HMA endpoints
	// GET /h/hash?url= and GET /m/lookup?url= may fetch a file to hash. Empty (the default)
	// turns hashing by URL off: a node fetching what a caller names is a server-side request
	// forgery risk.
	HashURLAllow []string

	// CheckpointInterval is the least time between two checkpoints of the node's own log. A log
	// that grows after a quiet spell is signed at once; under load, once per interval.
	CheckpointInterval time.Duration
	// AntiEntropyInterval is how often the node compares heads with a random peer.
	AntiEntropyInterval time.Duration
	// GossipInterval is memberlist's gossip interval, and GossipNodes the peers each round reaches.
	GossipInterval time.Duration
	GossipNodes    int
	// SweepInterval is how often expired listings are taken out of the match index.
	SweepInterval time.Duration
	// PushFanout is how many peers a node pushes each new verified checkpoint to directly (the
	// children of its place in the log's push tree, see push.go); 0 leaves propagation to gossip.
	PushFanout int
	// FetchParallel bounds the logs fetched at once.
	FetchParallel int
	// ChunkEntries is how many entries one range message carries at most.
	ChunkEntries int
	// MaxMessageBytes bounds every gRPC message received or sent.
	MaxMessageBytes int
	// MaxMatchStreams bounds concurrent MatchStream, Feed, Export and ExportLogs streams on the
	// member API; more are refused with RESOURCE_EXHAUSTED.
	MaxMatchStreams int
	// MaxInflight bounds the member API's unary calls (Submit, Match, Lookup, Status) in flight at
	// once; more are refused with RESOURCE_EXHAUSTED.
	MaxInflight int
	// MaxPeerStreams bounds concurrent GetRange streams served to peers.
	MaxPeerStreams int
	// RequestTimeout bounds one peer call (a range stream gets this per chunk).
	RequestTimeout time.Duration
	// RestoreGrace is how long, after the first peer answered, the node waits for the other live
	// peers to say how long its own log is before it appends to it and signs it again.
	RestoreGrace time.Duration
	// Recover starts the node after a lost or damaged store: a damaged store file is moved aside
	// (never deleted) and a new one started, and the node signs nothing, and accepts no
	// submission, until a peer answered and it holds its own log up to the longest checkpoint of
	// it the peers hold (which it waits for however long it takes).
	Recover bool

	// Follow, when set, makes the node a read replica (see replica.go) of the member node whose
	// peer API is at this host:port: Key is then the replica's own key (listed in that node's
	// Replicas), not a member key; the peer API, gossip and the listen addresses for them are not
	// used, and submissions are refused with [ErrReadReplica].
	Follow string
	// FollowMember is the roster member whose node the replica follows (required with Follow): the
	// node at Follow must prove that member's key in the TLS handshake, or it is refused.
	FollowMember string
	// FollowInterval is how often a read replica asks the member node for its heads.
	FollowInterval time.Duration
	// Replicas are the keys of the read replicas that may replicate from this node: they may call
	// the peer API's reads (Heads, GetRange, GetConsistency, GetEvidence) and nothing else.
	Replicas []ReplicaKey

	// Store configures the store.
	Store store.Options
	// Logger receives the node's logs (memberlist's too); nil discards them.
	Logger *slog.Logger

	// netFilter, when set (tests only), drops gossip and peer calls between this node and the
	// members for which it returns true, to simulate partitions.
	netFilter func(member string) bool
	// tamperRange, when set (tests only), alters every range chunk this node serves, to play a
	// peer that lies.
	tamperRange func(*pb.RangeChunk)
	// peerWrap, when set (tests only), wraps the peer API's implementation, to play a hostile peer.
	peerWrap func(pb.PeerServiceServer) pb.PeerServiceServer
}

// DefaultConfig returns a configuration with the documented defaults: peer API on :7400, gossip on
// :7946, member API on 127.0.0.1:7401, HTTP on 127.0.0.1:7402, checkpoints at most every 100 ms,
// anti-entropy every 2 s, gossip every 100 ms to 4 nodes.
func DefaultConfig() Config {
	return Config{
		PeerListen:          ":7400",
		GossipListen:        ":7946",
		MemberListen:        "127.0.0.1:7401",
		HTTPListen:          "127.0.0.1:7402",
		CheckpointInterval:  100 * time.Millisecond,
		AntiEntropyInterval: 2 * time.Second,
		GossipInterval:      100 * time.Millisecond,
		GossipNodes:         4,
		SweepInterval:       5 * time.Second,
		PushFanout:          6,
		FollowInterval:      200 * time.Millisecond,
		FetchParallel:       8,
		ChunkEntries:        16384,
		MaxMessageBytes:     64 << 20,
		MaxMatchStreams:     64,
		MaxInflight:         512,
		MaxPeerStreams:      32,
		RequestTimeout:      30 * time.Second,
		RestoreGrace:        3 * time.Second,
		Store:               store.DefaultOptions(),
	}
}

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("invalid node configuration")

func (c *Config) validate() error {
	if c.Genesis == nil {
		return fmt.Errorf("%w: no genesis", ErrConfig)
	}
	if c.Key == nil {
		return fmt.Errorf("%w: no member key", ErrConfig)
	}
	if c.DataDir == "" {
		return fmt.Errorf("%w: no data directory", ErrConfig)
	}
	if c.Follow != "" {
		if !validPeerAddr(c.Follow) {
			return fmt.Errorf("%w: follow address %q is not host:port", ErrConfig, c.Follow)
		}
		if c.FollowInterval <= 0 {
			return fmt.Errorf("%w: follow interval must be positive", ErrConfig)
		}
		if c.FollowMember == "" {
			return fmt.Errorf("%w: a read replica needs the member whose node it follows (follow member), not only its address: the node at %s must prove that member's key", ErrConfig, c.Follow)
		}
		if err := consortium.ValidateMemberID(c.FollowMember); err != nil {
			return fmt.Errorf("%w: follow member: %v", ErrConfig, err)
		}
		c.PushFanout = 0
	} else if c.FollowMember != "" {
		return fmt.Errorf("%w: follow member %q set without a follow address", ErrConfig, c.FollowMember)
	} else if c.PeerListen == "" || c.GossipListen == "" {
		return fmt.Errorf("%w: peer and gossip listen addresses are required", ErrConfig)
	}
	if c.MemberListen != "" && c.MemberToken == "" && !isLocal(c.MemberListen) {
		return fmt.Errorf("%w: the member API on %s is reachable from other hosts: set a member token, or listen on localhost or a unix socket", ErrConfig, c.MemberListen)
	}
	if c.HTTPListen != "" && c.MemberToken == "" && !isLocal(c.HTTPListen) {
		return fmt.Errorf("%w: the JSON API on %s is reachable from other hosts: set a member token, or listen on localhost", ErrConfig, c.HTTPListen)
	}
	for i, k := range c.GossipKeys {
		if l := len(k); l != 16 && l != 24 && l != 32 {
			return fmt.Errorf("%w: gossip key %d is %d bytes, want 16, 24 or 32", ErrConfig, i, l)
		}
	}
	pos := []struct {
		name string
		v    time.Duration
	}{{"checkpoint interval", c.CheckpointInterval}, {"anti-entropy interval", c.AntiEntropyInterval}, {"gossip interval", c.GossipInterval}, {"sweep interval", c.SweepInterval}, {"request timeout", c.RequestTimeout}, {"restore grace", c.RestoreGrace}}
	for _, p := range pos {
		if p.v <= 0 {
			return fmt.Errorf("%w: %s must be positive", ErrConfig, p.name)
		}
	}
	if c.PushFanout < 0 {
		return fmt.Errorf("%w: push fan-out must not be negative", ErrConfig)
	}
	if c.FetchParallel <= 0 || c.ChunkEntries <= 0 || c.MaxMessageBytes < 1<<20 || c.MaxMatchStreams <= 0 || c.MaxInflight <= 0 || c.MaxPeerStreams <= 0 || c.GossipNodes <= 0 {
		return fmt.Errorf("%w: fetch parallelism, chunk size, stream limits and gossip nodes must be positive, message size at least 1 MiB", ErrConfig)
	}
	if c.ClusterLabel == "" {
		c.ClusterLabel = "hashfed-" + c.Genesis.ID.String()[:16]
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// isLocal reports whether a listen address only accepts local connections.
func isLocal(addr string) bool {
	if strings.HasPrefix(addr, "unix:") {
		return true
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
