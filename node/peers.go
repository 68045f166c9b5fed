package node

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// peerInfo is what the node knows of another node: from gossip (its address) and from calls (its
// sizes, the last contact and error).
type peerInfo struct {
	member      string
	addr        string
	conn        *grpc.ClientConn
	connAddr    string
	alive       bool
	sizes       map[string]uint64
	lastContact time.Time
	lastErr     string
	// calledAt is when this peer last called us over the peer API (authenticated by its key):
	// proof of life that does not wait for gossip.
	calledAt time.Time
	// badUntil holds, per log, until when this peer is not asked for it again after it served a
	// range that did not verify.
	badUntil map[string]time.Time
}

// setPeer records a node seen in gossip (alive or not).
func (n *Node) setPeer(member, addr string, alive bool) {
	if member == n.id {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.peerLocked(member)
	if addr != "" {
		p.addr = addr
	}
	p.alive = alive
	n.metrics.peers.Set(float64(n.aliveCountLocked()))
}

func (n *Node) peerLocked(member string) *peerInfo {
	p := n.peers[member]
	if p == nil {
		p = &peerInfo{member: member, sizes: map[string]uint64{}, badUntil: map[string]time.Time{}}
		n.peers[member] = p
	}
	return p
}

// peerCalled records that member called us over the peer API, announcing its address.
func (n *Node) peerCalled(member, addr string) {
	if member == n.id {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.peerLocked(member)
	if addr != "" && addr != p.addr {
		p.addr = addr
	}
	p.calledAt = time.Now()
}

// usable reports whether a peer can be asked for data: gossip says it is alive, or it called us
// recently (gossip can take seconds to accept a node that restarted on a new address).
func (p *peerInfo) usable(now time.Time) bool {
	return p.addr != "" && (p.alive || now.Sub(p.calledAt) < 30*time.Second)
}

func (n *Node) aliveCountLocked() int {
	c := 0
	for _, p := range n.peers {
		if p.alive {
			c++
		}
	}
	return c
}

// client returns a peer API client for member, dialing (lazily) with mutual TLS.
func (n *Node) client(member string) (pb.PeerServiceClient, error) {
	if n.cfg.netFilter != nil && n.cfg.netFilter(member) {
		return nil, fmt.Errorf("peer %s unreachable (partitioned)", member)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.peers[member]
	if p == nil || p.addr == "" {
		return nil, fmt.Errorf("no address for peer %s", member)
	}
	if p.conn == nil || p.connAddr != p.addr {
		if p.conn != nil {
			p.conn.Close()
		}
		conn, err := grpc.NewClient(p.addr,
			grpc.WithTransportCredentials(credentials.NewTLS(n.clientTLS(member))),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(n.cfg.MaxMessageBytes), grpc.MaxCallSendMsgSize(n.cfg.MaxMessageBytes)),
		)
		if err != nil {
			return nil, fmt.Errorf("dial %s at %s: %w", member, p.addr, err)
		}
		p.conn, p.connAddr = conn, p.addr
	}
	return pb.NewPeerServiceClient(p.conn), nil
}

// contact records the outcome of a call to a peer.
func (n *Node) contact(member string, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.peers[member]
	if p == nil {
		return
	}
	if err != nil {
		p.lastErr = err.Error()
		return
	}
	p.lastContact = time.Now()
	p.lastErr = ""
}

// alivePeers returns the members of the nodes gossip reports alive, shuffled.
func (n *Node) alivePeers() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	now := time.Now()
	for m, p := range n.peers {
		if p.usable(now) {
			out = append(out, m)
		}
	}
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// sourcesFor returns the peers to ask for member's log beyond size, best first: the hinted peer,
// the log's author, peers known to hold more, then any other live peer; peers that recently served
// a bad range of this log come last.
func (n *Node) sourcesFor(member string, size uint64, hint string) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	now := time.Now()
	type cand struct {
		m     string
		score int
	}
	var cs []cand
	for m, p := range n.peers {
		if !p.usable(now) {
			continue
		}
		score := 0
		switch {
		case m == hint:
			score = 40
		case m == member:
			score = 30
		case p.sizes[member] > size:
			score = 20
		}
		score += rand.IntN(10)
		if now.Before(p.badUntil[member]) {
			score -= 100
		}
		cs = append(cs, cand{m, score})
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].score > cs[j].score })
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.m
	}
	return out
}

// markBad keeps a peer that served a range of member's log that did not verify from being asked
// for that log again for a while.
func (n *Node) markBad(peer, member string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if p := n.peers[peer]; p != nil {
		p.badUntil[member] = time.Now().Add(time.Minute)
	}
}

// peerSizes records the sizes a peer reported.
func (n *Node) peerSizes(peer string, heads []*pb.Head) {
	n.mu.Lock()
	p := n.peers[peer]
	if p != nil {
		for _, h := range heads {
			p.sizes[h.Member] = h.Size
		}
	}
	n.mu.Unlock()
	for _, h := range heads {
		if n.onRoster(h.Member) || n.knownLog(h.Member) {
			n.noteKnown(h.Member, h.Size)
		}
	}
}

// knownLog reports whether member's log is one the node holds or has heard of.
func (n *Node) knownLog(member string) bool {
	return n.store.Size(member) > 0
}
