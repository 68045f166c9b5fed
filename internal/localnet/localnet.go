// Package localnet starts hashfed nodes on loopback for the demo and the benchmarks. It holds no
// keys: callers bring their own (the demo makes fresh ones; the benchmarks use internal/fixture,
// which only hashfed-bench links).
package localnet

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/node"
)

// Node starts a node on loopback: peer API and gossip on free ports of 127.0.0.1, the member API
// on a unix socket in dir, its data in dir/ID, logs discarded, fsync off unless sync. tweak, if not
// nil, changes the configuration before the node starts.
func Node(g *consortium.Genesis, key *consortium.PrivateKey, dir string, join []string, sync bool, tweak func(*node.Config)) (*node.Node, error) {
	cfg := node.DefaultConfig()
	cfg.Genesis, cfg.Key = g, key
	cfg.DataDir = filepath.Join(dir, key.ID())
	cfg.PeerListen = "127.0.0.1:0"
	cfg.GossipListen = "127.0.0.1:0"
	cfg.MemberListen = "unix:" + filepath.Join(dir, key.ID()+".sock")
	cfg.HTTPListen = ""
	cfg.Join = join
	cfg.Store.NoSync = !sync
	cfg.Logger = slog.New(slog.DiscardHandler)
	if tweak != nil {
		tweak(&cfg)
	}
	n, err := node.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", key.ID(), err)
	}
	if err := n.Start(); err != nil {
		return nil, fmt.Errorf("node %s: %w", key.ID(), err)
	}
	return n, nil
}

// WaitUntil polls cond every few milliseconds until it holds or the timeout passes, and reports
// whether it held.
func WaitUntil(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}
