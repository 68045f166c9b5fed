package main

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/node"
)

// localNode starts a node on loopback for the demo and the benchmarks: peer API and gossip on free
// ports of 127.0.0.1, the member API on a unix socket in its directory, fsync off unless sync.
func localNode(g *consortium.Genesis, key *consortium.PrivateKey, dir string, join []string, sync bool, tweak func(*node.Config)) (*node.Node, error) {
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

// waitUntil polls cond every few milliseconds until it holds or the timeout passes.
func waitUntil(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}
