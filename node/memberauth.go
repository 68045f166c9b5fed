package node

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// checkToken checks the bearer token of a member API call (when the node has one).
func (n *Node) checkToken(ctx context.Context) error {
	if n.cfg.MemberToken == "" {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 {
		return status.Error(codes.Unauthenticated, `missing bearer token: this node's member API requires the metadata "authorization: Bearer <member token>"`)
	}
	if !tokenMatches(vals[0], n.cfg.MemberToken) {
		return status.Error(codes.Unauthenticated, `invalid bearer token: the "authorization" metadata must be "Bearer " and this node's member token`)
	}
	return nil
}

// tokenMatches reports whether an Authorization value is "Bearer <token>" (the scheme in any
// case), comparing in constant time (over hashes, so the token's length does not leak either).
func tokenMatches(header, token string) bool {
	scheme, got, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	a := sha256.Sum256([]byte(strings.TrimSpace(got)))
	b := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// noTokenMethod reports methods that need no token: the gRPC health check, so that load balancers
// and orchestrators can probe the node.
func noTokenMethod(method string) bool {
	return strings.HasPrefix(method, "/grpc.health.v1.Health/")
}

func (n *Node) authUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if !noTokenMethod(info.FullMethod) {
		if err := n.checkToken(ctx); err != nil {
			return nil, err
		}
	}
	// Unary calls in flight are bounded too (Config.MaxInflight): beyond it, shed load at once.
	select {
	case n.memberInflight <- struct{}{}:
		defer func() { <-n.memberInflight }()
	default:
		n.metrics.refusedStreams.WithLabelValues("member-unary").Inc()
		return nil, status.Errorf(codes.ResourceExhausted, "too many calls in flight (limit %d); retry later", cap(n.memberInflight))
	}
	return handler(ctx, req)
}

func (n *Node) authStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if !noTokenMethod(info.FullMethod) {
		if err := n.checkToken(ss.Context()); err != nil {
			return err
		}
	}
	return handler(srv, ss)
}
