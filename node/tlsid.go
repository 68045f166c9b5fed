package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// The peer API runs over TLS 1.3 with mutual authentication and no certificate authority: each node
// presents a certificate self-signed with its member key, and each side accepts the other only if
// that key is a current roster member's key. The roster is the trust store.

// ErrNotOnRoster is returned when a peer's TLS key is not a roster member's key.
var ErrNotOnRoster = errors.New("peer key is not on the roster")

// errBadCert is returned when a peer presents no certificate, or one that is not an Ed25519
// certificate self-signed by its key.
var errBadCert = errors.New("peer certificate unusable")

// selfCert makes a self-signed certificate for the member key.
func selfCert(member string, key ed25519.PrivateKey) (tls.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: member, Organization: []string{"hashfed"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{"hashfed-" + member},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("self-signed certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// peerKey returns the Ed25519 key of a presented certificate chain.
func peerKey(rawCerts [][]byte) (ed25519.PublicKey, error) {
	if len(rawCerts) == 0 {
		return nil, fmt.Errorf("%w: peer presented no certificate", errBadCert)
	}
	cert, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errBadCert, err)
	}
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: key is %T, not Ed25519", errBadCert, cert.PublicKey)
	}
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
		return nil, fmt.Errorf("%w: not self-signed by its key: %v", errBadCert, err)
	}
	return pub, nil
}

// serverTLS is the peer API server's TLS configuration: client certificates required, accepted
// when their key belongs to the roster. (The certificate is requested rather than required so that
// a client without one reaches VerifyPeerCertificate and is refused as errBadCert, countable.)
func (n *Node) serverTLS() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{n.cert},
		ClientAuth:   tls.RequestClientCert,
		MinVersion:   tls.VersionTLS13,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			pub, err := peerKey(raw)
			if err != nil {
				return err
			}
			if _, ok := n.memberByKey(pub); !ok {
				if _, ok := n.replicaByKey(pub); ok {
					return nil
				}
				n.metrics.refusedPeers.Inc()
				return ErrNotOnRoster
			}
			return nil
		},
	}
}

// clientTLS is the TLS configuration for dialing the peer API of member at addr: the server must
// present that member's roster key. The outcome is recorded: addr proved the member's key, or
// answered with another (or an unusable certificate) and is refused for the member.
func (n *Node) clientTLS(member, addr string) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{n.cert},
		MinVersion:   tls.VersionTLS13,
		// There is no CA: the certificate is checked against the roster below instead.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			err := n.checkServerKey(member, raw)
			if err != nil {
				n.addrRefused(member, addr, err)
				return err
			}
			n.addrProved(member, addr)
			return nil
		},
	}
}

// checkServerKey checks that a peer API server presented member's roster key.
func (n *Node) checkServerKey(member string, raw [][]byte) error {
	pub, err := peerKey(raw)
	if err != nil {
		return err
	}
	id, ok := n.memberByKey(pub)
	if !ok {
		return ErrNotOnRoster
	}
	if id != member {
		return fmt.Errorf("dialed %s but the peer holds %s's key", member, id)
	}
	return nil
}

// callerMember returns the roster member whose key authenticated the peer call.
func (n *Node) callerMember(ctx context.Context) (string, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", ErrNotOnRoster
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.PeerCertificates) == 0 {
		return "", ErrNotOnRoster
	}
	pub, ok := ti.State.PeerCertificates[0].PublicKey.(ed25519.PublicKey)
	if !ok {
		return "", ErrNotOnRoster
	}
	id, ok := n.memberByKey(pub)
	if !ok {
		if id, ok := n.replicaByKey(pub); ok {
			return id, nil
		}
		return "", ErrNotOnRoster
	}
	return id, nil
}

// refusingCreds are the peer API server's credentials: every failed handshake is counted by reason
// and logged (rate-limited) with the client's address.
type refusingCreds struct {
	credentials.TransportCredentials
	n *Node
}

func (c *refusingCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ServerHandshake(raw)
	if err != nil {
		reason := refTLSHandshake
		switch {
		case errors.Is(err, ErrNotOnRoster):
			reason = refTLSUnknownKey
		case errors.Is(err, errBadCert):
			reason = refTLSBadCert
		}
		c.n.refused.refuse(reason, "peer API handshake refused", "addr", raw.RemoteAddr().String(), "err", err)
	}
	return conn, info, err
}

func (c *refusingCreds) Clone() credentials.TransportCredentials {
	return &refusingCreds{TransportCredentials: c.TransportCredentials.Clone(), n: c.n}
}
