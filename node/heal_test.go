package node

import (
	"testing"
	"time"

	"github.com/hashfed/hashfed/internal/fixture"
)

// TestGossipHealsWithoutJoin restarts the first node of three as the README starts it, without
// seeds: it rejoins the others from the addresses it remembered. With the others gone it reports
// itself isolated, and it rejoins by itself when one comes back (also without seeds).
func TestGossipHealsWithoutJoin(t *testing.T) {
	c := newCluster(t, 2, "alpha", "bravo", "charlie")
	gossipAt := map[string]string{}
	c.tweak = func(cfg *Config) {
		if addr := gossipAt[cfg.Key.ID()]; addr != "" {
			// A restart, as an operator does it: same addresses, no seeds.
			cfg.GossipListen = addr
			cfg.Join = nil
		}
	}
	a := c.start("alpha")
	b := c.start("bravo")
	ch := c.start("charlie")
	all := func(k int, ns ...*Node) func() bool {
		return func() bool {
			for _, n := range ns {
				if n.GossipMembers() != k {
					return false
				}
			}
			return true
		}
	}
	waitFor(t, 10*time.Second, "three nodes see each other", all(3, a, b, ch))
	waitFor(t, 10*time.Second, "alpha remembers its peers", func() bool {
		recs, _ := a.store.Peers()
		return len(recs) == 2 && recs[0].GossipAddr != "" && recs[1].GossipAddr != "" && recs[0].PeerAddr != "" && recs[1].PeerAddr != ""
	})
	for id, n := range c.nodes {
		gossipAt[id] = n.GossipAddr()
	}

	c.stop("alpha")
	a = c.start("alpha")
	waitFor(t, 20*time.Second, "alpha, restarted without seeds, is back in gossip", all(3, a, b, ch))
	submitOK(t, a, fixture.Add(0, fixture.PDQ(1)))
	waitFor(t, 10*time.Second, "bravo replicates alpha's new entry", func() bool { return b.store.Size("alpha") == 1 })
	if a.Isolated() {
		t.Error("alpha reports itself isolated while it sees its peers")
	}

	c.stop("bravo")
	c.stop("charlie")
	waitFor(t, 20*time.Second, "alpha reports itself isolated", func() bool {
		return a.Isolated() && a.Status().GossipIsolated && gaugeValue(a.metrics.isolated) == 1
	})
	b = c.start("bravo")
	waitFor(t, 30*time.Second, "alpha and bravo find each other again", all(2, a, b))
	waitFor(t, 10*time.Second, "alpha no longer isolated", func() bool {
		return !a.Isolated() && !a.Status().GossipIsolated && gaugeValue(a.metrics.isolated) == 0
	})
}
