package node

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/hashfed/hashfed/consortium"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A read replica follows one member node: it holds no member key (its key, listed in the member
// node's configuration, only authenticates it over mutual TLS), joins no gossip, signs, cosigns and
// votes nothing, and accepts no submission. It asks the member node for its heads every
// FollowInterval and fetches what is new through the peer API's read-only calls (Heads, GetRange,
// GetConsistency, GetEvidence), verifying every checkpoint against the roster keys and every range
// against its checkpoint exactly as a node does, so a replica that follows a lying node stores
// nothing that does not verify. It serves match, lookup, feed, status, export and HTTP from its
// own verified store, so a platform runs as many as its match traffic needs.

// ErrReadReplica is returned for what a read replica refuses: submissions (they go to the member
// node, which alone holds the member key).
var ErrReadReplica = errors.New("this node is a read replica")

// replicaPrefix marks the peer API caller id of a read replica (roster member ids cannot contain
// "/"), so it never mixes with a member's.
const replicaPrefix = "replica/"

// replicaMethods are the peer API calls a read replica may make: reads only.
var replicaMethods = map[string]bool{
	"/hashfed.v1.PeerService/Heads":          true,
	"/hashfed.v1.PeerService/GetRange":       true,
	"/hashfed.v1.PeerService/GetConsistency": true,
	"/hashfed.v1.PeerService/GetEvidence":    true,
}

// replica reports whether the node is a read replica.
func (n *Node) replica() bool { return n.cfg.Follow != "" }

// replicaByKey returns the id of the configured read replica with the given key.
func (n *Node) replicaByKey(pub ed25519.PublicKey) (string, bool) {
	for _, r := range n.cfg.Replicas {
		if r.Key.Equal(pub) {
			return replicaPrefix + r.ID, true
		}
	}
	return "", false
}

// isReplica reports whether a peer API caller id is a read replica's.
func isReplica(caller string) bool {
	return len(caller) > len(replicaPrefix) && caller[:len(replicaPrefix)] == replicaPrefix
}

// checkReplicaCall refuses a read replica's peer API call other than a read.
func checkReplicaCall(ctx context.Context, method string) error {
	if c := caller(ctx); isReplica(c) && !replicaMethods[method] {
		return status.Errorf(codes.PermissionDenied, "%s is a read replica: it may only read (Heads, GetRange, GetConsistency, GetEvidence), not call %s", c, method)
	}
	return nil
}

// checkReplicaKey refuses, at startup, a read replica whose key is not its own: its key id is the
// member it follows or another roster member's id (the node's id would be that member's, so it
// would take that member's log for its own and sign heads notes in its name), or it holds a roster
// member's key (the member node would take its calls for that member's, not a replica's read-only
// ones, and the replica would hold a key that signs for the member).
func (n *Node) checkReplicaKey() error {
	fix := fmt.Sprintf("a read replica needs a key of its own (hashfed keygen --id %s-r1), listed in the replicas of %s's node", n.cfg.FollowMember, n.cfg.FollowMember)
	if n.id == n.cfg.FollowMember {
		return fmt.Errorf("%w: the read replica's key id %q is the id of the member it follows: %s", ErrConfig, n.id, fix)
	}
	var known bool
	n.store.View(func(s *consortium.State) { _, known = s.MemberKey(n.id) })
	if known {
		return fmt.Errorf("%w: the read replica's key id %q is a roster member's: %s", ErrConfig, n.id, fix)
	}
	if m, ok := n.memberByKey(n.cfg.Key.Public().Key); ok {
		return fmt.Errorf("%w: the read replica's key is member %q's: %s", ErrConfig, m, fix)
	}
	return nil
}

// startReplica starts a read replica: the member API, HTTP, and the loop that follows the member
// node.
func (n *Node) startReplica() error {
	if err := n.startMemberAPI(); err != nil {
		return err
	}
	if err := n.startHTTP(); err != nil {
		return err
	}
	n.wg.Add(2)
	go n.follow()
	go n.sweeper()
	n.log.Info("read replica started", "follow", n.cfg.Follow, "member", n.cfg.FollowMember, "member_api", n.MemberAddr(), "http", n.HTTPAddr())
	return nil
}

// ErrFollowedWrongMember is returned when the node at a read replica's follow address proves
// another key than the followed member's: another member's node (a hijacked name, a
// misconfiguration) could feed the replica a view that verifies but is stale or withholds entries,
// so it is refused.
var ErrFollowedWrongMember = errors.New("node at the follow address refused")

// follow asks the followed member's node for its heads every FollowInterval and fetches what is
// new. The node must prove, in every TLS handshake, the key of the member named by FollowMember:
// whatever else answers at the address (another member's node included) is refused and named.
func (n *Node) follow() {
	defer n.wg.Done()
	member := n.cfg.FollowMember
	n.mu.Lock()
	p := n.peerLocked(member)
	p.addr, p.alive = n.cfg.Follow, true
	n.mu.Unlock()
	proved := false
	delay := n.cfg.FollowInterval
	for n.ctx.Err() == nil {
		var err error
		if !proved {
			// A handshake of our own first, to say plainly who answers at the address (the peer
			// API client's own handshake refuses another key too, but only as a failed call).
			if err = n.followCheck(member); err == nil {
				proved = true
				n.addrProved(member, n.cfg.Follow)
				n.setPeer(member, n.cfg.Follow, true)
				n.log.Info("following member node", "member", member, "addr", n.cfg.Follow)
			} else {
				n.mu.Lock()
				p := n.peerLocked(member)
				p.lastErr, p.alive = err.Error(), false
				n.mu.Unlock()
				if errors.Is(err, ErrFollowedWrongMember) {
					n.refused.refuse(refPeerAddrWrongKey, "read replica: refusing the node at the follow address", "err", err)
				}
			}
		}
		if proved {
			if err = n.exchangeHeads(member); err != nil {
				proved = false // check who answers before asking again
			} else {
				n.metrics.followLast.Set(float64(time.Now().UnixMilli()) / 1000)
			}
			n.updateLagMetrics()
		}
		if err != nil {
			n.log.Debug("follow", "member", member, "addr", n.cfg.Follow, "err", err)
			delay = min(2*delay, 5*time.Second)
		} else {
			delay = n.cfg.FollowInterval
		}
		select {
		case <-n.ctx.Done():
		case <-time.After(delay):
		}
	}
}

// followCheck makes a TLS handshake with the node at the follow address and checks that it proves
// the key of member, the member this replica follows; otherwise the error names whom it reached.
func (n *Node) followCheck(member string) error {
	var reached error
	cfg := &tls.Config{
		Certificates:       []tls.Certificate{n.cert},
		MinVersion:         tls.VersionTLS13,
		NextProtos:         []string{"h2"},
		InsecureSkipVerify: true, // checked against the roster below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			pub, err := peerKey(raw)
			if err != nil {
				reached = fmt.Errorf("%w: %s (following %s): %v", ErrFollowedWrongMember, n.cfg.Follow, member, err)
				return reached
			}
			id, ok := n.memberByKey(pub)
			switch {
			case !ok:
				reached = fmt.Errorf("%w: %s presents a key that is no roster member's, not %s's (the member this replica follows)", ErrFollowedWrongMember, n.cfg.Follow, member)
			case id != member:
				reached = fmt.Errorf("%w: %s holds %s's key, not %s's (the member this replica follows)", ErrFollowedWrongMember, n.cfg.Follow, id, member)
			}
			return reached
		},
	}
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.RequestTimeout)
	defer cancel()
	d := tls.Dialer{NetDialer: &net.Dialer{}, Config: cfg}
	conn, err := d.DialContext(ctx, "tcp", n.cfg.Follow)
	if reached != nil {
		return reached
	}
	if err != nil {
		return fmt.Errorf("follow %s at %s: %w", member, n.cfg.Follow, err)
	}
	conn.Close()
	return nil
}

// followedHeads compares the head vector of the followed node with what this replica verified:
// a log the node holds less of (restored from an older backup, or withholding) changes nothing
// stored here (the store never goes back on a verified checkpoint), and is reported in status
// (the followed member's last error) and in hashfed_replica_followed_behind_entries.
func (n *Node) followedHeads(peer string, heads []*pb.Head) {
	theirs := make(map[string]uint64, len(heads))
	for _, h := range heads {
		theirs[h.Member] = h.Size
	}
	var behind []string
	for m, cp := range n.store.Heads() {
		if cp == nil {
			continue
		}
		d := cp.Size - min(cp.Size, theirs[m])
		n.metrics.followBehind.WithLabelValues(m).Set(float64(d))
		if d > 0 {
			behind = append(behind, fmt.Sprintf("%s at %d, verified here up to %d", m, theirs[m], cp.Size))
		}
	}
	if len(behind) == 0 {
		return
	}
	slices.Sort(behind)
	msg := fmt.Sprintf("the followed node is behind what this replica verified (restored from an older backup, or withholding): %s; kept what was verified", strings.Join(behind, "; "))
	n.mu.Lock()
	n.peerLocked(peer).lastErr = msg
	n.mu.Unlock()
	n.refused.logLimited(n.log, "replica_followed_behind", slog.LevelWarn, "read replica: "+msg, "member", peer)
}

// ReplicaKey is the public key of a read replica a member node lets replicate from it.
type ReplicaKey = consortium.PublicKey
