package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashfed/hashfed/consortium"
	bolt "go.etcd.io/bbolt"
)

// The peers bucket remembers, per member ever on the roster, where its node was last reached: its
// gossip address and its peer API address. A node that restarts rejoins gossip from these without
// being told where to (see the node's healing). They are hints, never trusted: a gossip address
// only leads to a memberlist join (label and roster checks apply), and a peer API address is only
// saved once a TLS handshake there proved the member's key, and is proved again on every dial.
// A restored backup may hold stale addresses; they cost a failed dial each.

var bucketPeers = []byte("peers")

// ErrBadPeerRecord is returned for a peer record the store refuses to save: a member never on the
// roster, or an address that is not host:port.
var ErrBadPeerRecord = errors.New("bad peer record")

// maxAddrLen bounds a remembered address (a DNS name of 253 bytes, a colon and a port fit).
const maxAddrLen = 300

// PeerRecord is what the node remembers of another member's node.
type PeerRecord struct {
	// Member is the member whose node it is.
	Member string
	// GossipAddr is the host:port of its gossip endpoint, as last seen alive ("" if unknown).
	GossipAddr string
	// PeerAddr is the host:port of its peer API where a TLS handshake last proved its key ("" if
	// none did yet).
	PeerAddr string
	// Updated is when the record last changed.
	Updated time.Time
}

// SavePeer stores r, replacing the member's previous record. Only members ever on the roster have
// records, so the bucket holds at most one record per roster member.
func (s *Store) SavePeer(r PeerRecord) error {
	var known bool
	s.View(func(st *consortium.State) { _, known = st.MemberKey(r.Member) })
	if !known {
		return fmt.Errorf("%w: %q was never on the roster", ErrBadPeerRecord, r.Member)
	}
	for _, a := range []string{r.GossipAddr, r.PeerAddr} {
		if err := checkAddr(a); err != nil {
			return err
		}
	}
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketPeers)
		if err != nil {
			return err
		}
		return b.Put([]byte(r.Member), encodePeer(r))
	})
}

// Peers returns the remembered peer records. A record that does not decode is skipped and logged:
// it is a hint, and losing it costs only a rejoin from elsewhere.
func (s *Store) Peers() ([]PeerRecord, error) {
	var out []PeerRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPeers)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			r, err := decodePeer(v)
			if err != nil {
				s.log.Warn("skipping a remembered peer that does not decode", "member", string(k), "err", err)
				return nil
			}
			r.Member = string(k)
			out = append(out, r)
			return nil
		})
	})
	return out, err
}

func checkAddr(a string) error {
	if a == "" {
		return nil
	}
	if len(a) > maxAddrLen {
		return fmt.Errorf("%w: address of %d bytes", ErrBadPeerRecord, len(a))
	}
	if h, p, err := net.SplitHostPort(a); err != nil || h == "" || p == "" {
		return fmt.Errorf("%w: address %q is not host:port", ErrBadPeerRecord, a)
	}
	return nil
}

// peerRecordVersion is the first byte of a stored peer record.
const peerRecordVersion = 1

// encodePeer encodes a record (without its member, the key): a version byte, the gossip and peer
// addresses each as a uvarint length and bytes, and the update time in Unix milliseconds (varint).
func encodePeer(r PeerRecord) []byte {
	b := []byte{peerRecordVersion}
	for _, a := range []string{r.GossipAddr, r.PeerAddr} {
		b = binary.AppendUvarint(b, uint64(len(a)))
		b = append(b, a...)
	}
	return binary.AppendVarint(b, r.Updated.UnixMilli())
}

// decodePeer decodes what encodePeer wrote, refusing anything else.
func decodePeer(orig []byte) (PeerRecord, error) {
	var r PeerRecord
	b := orig
	if len(b) == 0 || b[0] != peerRecordVersion {
		return r, fmt.Errorf("%w: unknown version", ErrDamaged)
	}
	b = b[1:]
	var addrs [2]string
	for i := range addrs {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > maxAddrLen || l > uint64(len(b)-k) {
			return r, fmt.Errorf("%w: address %d: bad length", ErrDamaged, i)
		}
		addrs[i] = string(b[k : k+int(l)])
		if err := checkAddr(addrs[i]); err != nil {
			return r, fmt.Errorf("%w: %v", ErrDamaged, err)
		}
		b = b[k+int(l):]
	}
	ms, k := binary.Varint(b)
	if k <= 0 || k != len(b) {
		return r, fmt.Errorf("%w: bad update time", ErrDamaged)
	}
	r.GossipAddr, r.PeerAddr, r.Updated = addrs[0], addrs[1], time.UnixMilli(ms)
	if !bytes.Equal(encodePeer(r), orig) {
		return PeerRecord{}, fmt.Errorf("%w: not in canonical form", ErrDamaged)
	}
	return r, nil
}
