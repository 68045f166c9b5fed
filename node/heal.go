package node

import (
	"slices"
	"time"

	"github.com/hashfed/hashfed/store"
)

// Gossip heals by itself. The node remembers where its peers' nodes were (their gossip address as
// last seen alive, their peer API address as last proven by TLS; see [store.PeerRecord]) and joins
// them when it starts, even without configured seeds. While gossip sees no other node although
// there is someone to see (a seed, a remembered node, a node heard of since start), the node is
// isolated: it says so in its status, its metrics (hashfed_gossip_isolated) and its log, and
// tries to join again with a backoff that doubles up to healMaxTries anti-entropy intervals.

// healState is the node's view of its own gossip health; guarded by Node.mu.
type healState struct {
	isolated bool
	since    time.Time
	backoff  time.Duration
	retryAt  time.Time
}

// healMaxBackoff is the longest wait between two attempts to rejoin, in anti-entropy intervals.
const healMaxBackoff = 30

// loadPeers reads the remembered peers into the peer table; it runs before gossip starts.
func (n *Node) loadPeers() {
	recs, err := n.store.Peers()
	if err != nil {
		n.log.Warn("cannot read the remembered peers; rejoining from configured seeds only", "err", err)
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, r := range recs {
		if r.Member == n.id {
			continue
		}
		p := n.peerLocked(r.Member)
		p.gossipAddr, p.provenAddr = r.GossipAddr, r.PeerAddr
	}
}

// sawGossip records where gossip saw member's node alive.
func (n *Node) sawGossip(member, gossipAddr string) {
	if member == n.id || gossipAddr == "" {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.peerLocked(member)
	if p.gossipAddr != gossipAddr {
		p.gossipAddr, p.dirty = gossipAddr, true
	}
}

// savePeers writes the peer records that changed to the store.
func (n *Node) savePeers() {
	var recs []store.PeerRecord
	now := time.Now()
	n.mu.Lock()
	for m, p := range n.peers {
		if p.dirty {
			p.dirty = false
			recs = append(recs, store.PeerRecord{Member: m, GossipAddr: p.gossipAddr, PeerAddr: p.provenAddr, Updated: now})
		}
	}
	n.mu.Unlock()
	for _, r := range recs {
		if err := n.store.SavePeer(r); err != nil {
			n.log.Warn("cannot remember a peer's addresses", "peer", r.Member, "err", err)
		}
	}
}

// healSeeds returns the gossip addresses worth joining (configured seeds and every node's last
// known gossip address), and whether there is any other node to see at all.
func (n *Node) healSeeds() (seeds []string, others bool) {
	self := n.GossipAddr()
	seeds = slices.Clone(n.cfg.Join)
	n.mu.Lock()
	for m, p := range n.peers {
		if m == n.id {
			continue
		}
		others = true
		if p.gossipAddr != "" && p.gossipAddr != self && !slices.Contains(seeds, p.gossipAddr) {
			seeds = append(seeds, p.gossipAddr)
		}
	}
	n.mu.Unlock()
	slices.Sort(seeds)
	return seeds, others || len(seeds) > 0
}

// Isolated reports whether gossip sees no other node although there are other nodes to see.
func (n *Node) Isolated() bool {
	n.mu.Lock()
	isolated := n.heal.isolated
	n.mu.Unlock()
	return isolated && n.GossipMembers() <= 1
}

// healLoop watches gossip: it saves changed peer records, flushes the refusal log's summaries, and
// while the node is isolated tries to rejoin with backoff.
func (n *Node) healLoop() {
	defer n.wg.Done()
	base := n.cfg.AntiEntropyInterval
	lastFlush := time.Now()
	var tick time.Duration // the first check runs at once: a restarted node rejoins without waiting
	for {
		select {
		case <-n.ctx.Done():
			n.savePeers()
			return
		case <-time.After(tick):
		}
		tick = base
		now := time.Now()
		if now.Sub(lastFlush) >= logEvery {
			n.refused.flush()
			lastFlush = now
		}
		n.savePeers()
		seeds, others := n.healSeeds()
		isolated := others && n.GossipMembers() <= 1
		n.mu.Lock()
		h := &n.heal
		was := h.isolated
		h.isolated = isolated
		switch {
		case isolated && !was:
			h.since, h.backoff, h.retryAt = now, base, now
		case !isolated && was:
			n.log.Info("gossip reconnected", "nodes", n.GossipMembers(), "isolated_for", now.Sub(h.since).Round(time.Millisecond))
		}
		try := isolated && !now.Before(h.retryAt)
		if try {
			h.retryAt = now.Add(h.backoff)
			h.backoff = min(2*h.backoff, healMaxBackoff*base)
		}
		next := h.backoff
		n.mu.Unlock()
		if isolated {
			n.metrics.isolated.Set(1)
		} else {
			n.metrics.isolated.Set(0)
		}
		if !try {
			continue
		}
		n.mu.Lock()
		closed := n.closed
		n.mu.Unlock()
		if closed {
			continue // leaving: do not join again; the context ends the loop
		}
		if len(seeds) > 0 {
			if k, err := n.ml.Join(seeds); k > 0 {
				n.mu.Lock()
				n.heal.isolated = false
				n.mu.Unlock()
				n.metrics.isolated.Set(0)
				n.log.Info("gossip rejoined", "answered", k, "nodes", n.GossipMembers(), "isolated_for", time.Since(h.since).Round(time.Millisecond))
				n.catchUp()
				continue
			} else if err != nil {
				n.log.Warn("gossip is isolated: no other node answers; retrying", "seeds", len(seeds), "next_try_in", next, "err", err)
				continue
			}
		}
		n.log.Warn("gossip is isolated: no other node seen, and no address to try; waiting to be joined", "next_check_in", next)
	}
}
