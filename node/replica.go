package node

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashfed/hashfed/consortium"
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
	n.log.Info("read replica started", "follow", n.cfg.Follow, "member_api", n.MemberAddr(), "http", n.HTTPAddr())
	return nil
}

// follow learns which member's node answers at Follow (from its TLS key, which must be a roster
// member's), then asks it for its heads every FollowInterval and fetches what is new.
func (n *Node) follow() {
	defer n.wg.Done()
	member := ""
	delay := n.cfg.FollowInterval
	for n.ctx.Err() == nil {
		var err error
		if member == "" {
			if member, err = n.followWho(); err == nil {
				n.log.Info("following member node", "member", member, "addr", n.cfg.Follow)
				n.mu.Lock()
				p := n.peerLocked(member)
				p.addr, p.alive = n.cfg.Follow, true
				n.mu.Unlock()
			}
		}
		if member != "" {
			err = n.exchangeHeads(member)
			n.updateLagMetrics()
		}
		if err != nil {
			n.log.Debug("follow", "addr", n.cfg.Follow, "err", err)
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

// followWho makes a TLS handshake with the followed node and returns the roster member whose key
// it presented.
func (n *Node) followWho() (string, error) {
	var member string
	cfg := &tls.Config{
		Certificates:       []tls.Certificate{n.cert},
		MinVersion:         tls.VersionTLS13,
		NextProtos:         []string{"h2"},
		InsecureSkipVerify: true, // checked against the roster below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			pub, err := peerKey(raw)
			if err != nil {
				return err
			}
			id, ok := n.memberByKey(pub)
			if !ok {
				return fmt.Errorf("%w: the node at %s", ErrNotOnRoster, n.cfg.Follow)
			}
			member = id
			return nil
		},
	}
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.RequestTimeout)
	defer cancel()
	d := tls.Dialer{NetDialer: &net.Dialer{}, Config: cfg}
	conn, err := d.DialContext(ctx, "tcp", n.cfg.Follow)
	if err != nil {
		return "", fmt.Errorf("follow %s: %w", n.cfg.Follow, err)
	}
	conn.Close()
	return member, nil
}

// ReplicaKey is the public key of a read replica a member node lets replicate from it.
type ReplicaKey = consortium.PublicKey
