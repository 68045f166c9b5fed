package node

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sort"
	"strconv"
	"time"

	"github.com/hashfed/hashfed/consortium"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// peerInfo is what the node knows of another node: from gossip (its address) and from calls (its
// sizes, the last contact and error).
type peerInfo struct {
	member string
	// addr is the peer API address the member's node last announced (gossip metadata or its own
	// head exchange): a claim, dialled only through TLS that must prove the member's key.
	addr string
	// provenAddr is the last address where a TLS handshake proved the member's key; it is what
	// the node remembers across restarts, and what it falls back to when addr is refused.
	provenAddr string
	// refusedAddr answered with another key than the member's: it is not dialled again for this
	// member before refusedUntil.
	refusedAddr  string
	refusedUntil time.Time
	// gossipAddr is where gossip last saw the node alive; dirty marks a change of gossipAddr or
	// provenAddr not yet saved in the store.
	gossipAddr  string
	dirty       bool
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
	if addr != "" && validPeerAddr(addr) {
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
	if addr != "" && addr != p.addr && validPeerAddr(addr) {
		p.addr = addr
	}
	p.calledAt = time.Now()
}

// maxPeerAddr bounds an announced peer API address (a DNS name of 253 bytes, a colon, a port).
const maxPeerAddr = 300

// validPeerAddr reports whether an announced peer API address is worth dialling: host:port with a
// host and a numeric port, of bounded length. Anything else is ignored.
func validPeerAddr(a string) bool {
	if len(a) > maxPeerAddr {
		return false
	}
	h, p, err := net.SplitHostPort(a)
	if err != nil || h == "" {
		return false
	}
	port, err := strconv.Atoi(p)
	return err == nil && port > 0 && port < 65536
}

// usable reports whether a peer can be asked for data: it has an address that was not refused, and
// gossip says it is alive or it called us recently (gossip can take seconds to accept a node that
// restarted on a new address).
func (p *peerInfo) usable(now time.Time) bool {
	return p.dialAddr(now) != "" && (p.alive || now.Sub(p.calledAt) < 30*time.Second)
}

// dialAddr is the address to dial the member at: the one it announced unless that answered with
// another key lately, else the last one that proved its key; "" when there is none.
func (p *peerInfo) dialAddr(now time.Time) string {
	refused := func(a string) bool { return a == p.refusedAddr && now.Before(p.refusedUntil) }
	switch {
	case p.addr != "" && !refused(p.addr):
		return p.addr
	case p.provenAddr != "" && !refused(p.provenAddr):
		return p.provenAddr
	}
	return ""
}

// addrRefusal is how long an address that answered with another key is not dialled again for the
// member that announced it.
const addrRefusal = time.Minute

// errAddrRefused is returned when the only address known for a member answered with another key.
var errAddrRefused = errors.New("peer address answered with another key")

// addrProved records that a TLS handshake at addr proved member's key.
func (n *Node) addrProved(member, addr string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.peerLocked(member)
	if p.provenAddr != addr {
		p.provenAddr, p.dirty = addr, true
	}
	if p.refusedAddr == addr {
		p.refusedAddr, p.refusedUntil = "", time.Time{}
	}
}

// addrRefused records that addr, announced for member, answered with another key (or none on the
// roster): it is not dialled for member for addrRefusal, nor remembered, and the refusal is
// counted and logged.
func (n *Node) addrRefused(member, addr string, err error) {
	n.mu.Lock()
	p := n.peerLocked(member)
	p.refusedAddr, p.refusedUntil = addr, time.Now().Add(addrRefusal)
	if p.provenAddr == addr {
		p.provenAddr, p.dirty = "", true
	}
	if p.conn != nil && p.connAddr == addr {
		// Called from within the connection's handshake: close it from elsewhere.
		go p.conn.Close()
		p.conn, p.connAddr = nil, ""
	}
	n.mu.Unlock()
	n.refused.refuse(refPeerAddrWrongKey, "peer address answered with another key; not using it", "member", member, "addr", addr, "err", err)
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
	if p == nil || p.addr == "" && p.provenAddr == "" {
		return nil, fmt.Errorf("no address for peer %s", member)
	}
	addr := p.dialAddr(time.Now())
	if addr == "" {
		return nil, fmt.Errorf("%w: %s at %s (not dialled again before %s)", errAddrRefused, member, p.refusedAddr, p.refusedUntil.Format(time.TimeOnly))
	}
	if p.conn == nil || p.connAddr != addr {
		if p.conn != nil {
			p.conn.Close()
		}
		conn, err := grpc.NewClient(addr,
			grpc.WithTransportCredentials(credentials.NewTLS(n.clientTLS(member, addr))),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(n.cfg.MaxMessageBytes), grpc.MaxCallSendMsgSize(n.cfg.MaxMessageBytes)),
		)
		if err != nil {
			return nil, fmt.Errorf("dial %s at %s: %w", member, addr, err)
		}
		p.conn, p.connAddr = conn, addr
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

// peerSizes records the sizes of logs peer says it holds, for choosing whom to fetch from. Only
// logs of members ever on the roster are kept (one entry per member and peer, whatever the peer
// names), and a size is kept only up to what a signed checkpoint proved exists: a claim sets
// neither the lag nor the known size of a log. It reports whether the peer claims more of some log
// than this node holds, which is worth asking it for its signed heads (see [Node.nudge]).
func (n *Node) peerSizes(peer string, heads []*pb.Head) (claimsMore bool) {
	known := n.everOnRoster(heads)
	sizes := n.store.Sizes()
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.peers[peer]
	for _, h := range heads {
		if !known[h.Member] {
			continue
		}
		if p != nil {
			p.sizes[h.Member] = min(h.Size, max(n.known[h.Member], p.sizes[h.Member]))
		}
		if h.Size > sizes[h.Member] {
			claimsMore = true
		}
	}
	return claimsMore
}

// peerProved records that peer served a verified checkpoint of member's log at size.
func (n *Node) peerProved(peer, member string, size uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if p := n.peers[peer]; p != nil && size > p.sizes[member] {
		p.sizes[member] = size
	}
}

// everOnRoster returns which of the heads' members were ever on the roster (their logs are the
// only ones a node holds).
func (n *Node) everOnRoster(heads []*pb.Head) map[string]bool {
	out := map[string]bool{}
	n.store.View(func(s *consortium.State) {
		for _, h := range heads {
			if _, ok := s.MemberKey(h.Member); ok {
				out[h.Member] = true
			}
		}
	})
	return out
}

// nudge is the state of the head exchanges asked for by unsigned claims, per claimant.
type nudge struct {
	last    time.Time
	running bool
}

// nudge asks peer for its signed heads soon, because it claimed more of a log than this node holds;
// peer "" (a claim of unknown origin, a gossip state) means any live peer. A claim buys at most one
// head exchange at a time per claimant, and one per quarter anti-entropy interval: what the
// exchange brings is signed, and only that sets the lag or starts a fetch.
func (n *Node) nudge(peer string) {
	n.mu.Lock()
	if n.closed || n.ctx == nil {
		n.mu.Unlock()
		return
	}
	s := n.nudges[peer]
	if s == nil {
		s = &nudge{}
		n.nudges[peer] = s
	}
	now := time.Now()
	if s.running || now.Sub(s.last) < n.cfg.AntiEntropyInterval/4 {
		n.mu.Unlock()
		return
	}
	s.running, s.last = true, now
	n.wg.Add(1)
	n.mu.Unlock()
	go func() {
		defer n.wg.Done()
		target := peer
		if target == "" {
			if ps := n.alivePeers(); len(ps) > 0 {
				target = ps[0]
			}
		}
		if target != "" {
			if err := n.exchangeHeads(target); err != nil {
				n.log.Debug("head exchange after a claim", "peer", target, "err", err)
			}
		}
		n.mu.Lock()
		s.running = false
		n.mu.Unlock()
	}()
}
