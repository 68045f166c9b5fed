package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashfed/hashfed/consortium"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"github.com/hashfed/hashfed/store"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

type callerKey struct{}

// startPeerAPI listens for the peer API over mutual TLS.
func (n *Node) startPeerAPI() error {
	lis, err := net.Listen("tcp", n.cfg.PeerListen)
	if err != nil {
		return fmt.Errorf("peer API: %w", err)
	}
	n.peerLis = lis
	n.peerAdv = n.cfg.PeerAdvertise
	if n.peerAdv == "" {
		host, _, _ := net.SplitHostPort(n.cfg.PeerListen)
		_, port, _ := net.SplitHostPort(lis.Addr().String())
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
			host = advertiseHost(n.cfg.GossipAdvertise, n.cfg.GossipListen)
		}
		n.peerAdv = net.JoinHostPort(host, port)
	}
	n.peerSrv = grpc.NewServer(
		grpc.Creds(&refusingCreds{TransportCredentials: credentials.NewTLS(n.serverTLS()), n: n}),
		grpc.MaxRecvMsgSize(min(n.cfg.MaxMessageBytes, maxPeerRequest)),
		grpc.MaxSendMsgSize(n.cfg.MaxMessageBytes),
		grpc.MaxConcurrentStreams(uint32(4*n.cfg.MaxPeerStreams)),
		grpc.InTapHandle(n.pushTap),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.ConnectionTimeout(10*time.Second),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			ctx, err := n.authPeer(ctx)
			if err == nil {
				err = checkReplicaCall(ctx, info.FullMethod)
			}
			if err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			ctx, err := n.authPeer(ss.Context())
			if err == nil {
				err = checkReplicaCall(ctx, info.FullMethod)
			}
			if err != nil {
				return err
			}
			return h(srv, &ctxStream{ServerStream: ss, ctx: ctx})
		}),
	)
	var srv pb.PeerServiceServer = &peerServer{n: n}
	if n.cfg.peerWrap != nil {
		srv = n.cfg.peerWrap(srv)
	}
	pb.RegisterPeerServiceServer(n.peerSrv, srv)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(n.peerSrv, hs)
	n.goServe("peer API", func() error { return n.peerSrv.Serve(lis) }, grpc.ErrServerStopped)
	return nil
}

// advertiseHost picks the host to advertise when listening on all interfaces.
func advertiseHost(adv, listen string) string {
	for _, a := range []string{adv, listen} {
		if h, _, err := net.SplitHostPort(a); err == nil && h != "" {
			if ip := net.ParseIP(h); ip == nil || !ip.IsUnspecified() {
				return h
			}
		}
	}
	return privateIP()
}

// privateIP returns the first private IPv4 address of the host, or 127.0.0.1.
func privateIP() string {
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && ipn.IP.IsPrivate() {
				return ipn.IP.String()
			}
		}
	}
	return "127.0.0.1"
}

type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }

// authPeer identifies the calling member from its TLS key; the handshake already refused keys not
// on the roster.
func (n *Node) authPeer(ctx context.Context) (context.Context, error) {
	m, err := n.callerMember(ctx)
	if err != nil {
		// The handshake accepted the key, which has left the roster since.
		n.metrics.refusedPeers.Inc()
		addr := ""
		if p, ok := peer.FromContext(ctx); ok {
			addr = p.Addr.String()
		}
		n.refused.refuse(refTLSUnknownKey, "peer API call refused: the caller's key is not on the roster", "addr", addr)
		return nil, status.Error(codes.PermissionDenied, "peer API: caller's key is not on the consortium's roster")
	}
	if n.cfg.netFilter != nil && n.cfg.netFilter(m) {
		return nil, status.Error(codes.Unavailable, "partitioned")
	}
	return context.WithValue(ctx, callerKey{}, m), nil
}

func caller(ctx context.Context) string { m, _ := ctx.Value(callerKey{}).(string); return m }

type peerServer struct {
	pb.UnimplementedPeerServiceServer
	n *Node
}

// maxHeads bounds a head vector.
const maxHeads = 4 * consortium.MaxMembers

func (s *peerServer) Heads(ctx context.Context, req *pb.HeadsRequest) (*pb.HeadsResponse, error) {
	n := s.n
	from := caller(ctx)
	if len(req.Heads) > maxHeads {
		n.refused.refuse(refHeadsOversized, "peer sent a head vector too long", "peer", from, "logs", len(req.Heads), "max", maxHeads)
		return nil, status.Errorf(codes.InvalidArgument, "head vector of %d logs, at most %d", len(req.Heads), maxHeads)
	}
	theirs := map[string]uint64{}
	for _, h := range req.Heads {
		theirs[h.Member] = h.Size
	}
	// A read replica only reads: what it says makes it no peer (it has no peer API to dial, and
	// signs no heads note).
	if !isReplica(from) {
		n.peerCalled(from, req.PeerAddr)
		// The caller claims more of some logs (unsigned): ask it for its signed heads.
		if n.peerSizes(from, req.Heads) {
			n.nudge(from)
		}
		n.takeHeadsNote(from, req.HeadsNote)
	}
	resp := &pb.HeadsResponse{HeadsNote: n.ownHeadsNote()}
	heads := n.store.Heads()
	for m, size := range n.store.Sizes() {
		h := &pb.Head{Member: m, Size: size}
		if cp := heads[m]; cp != nil {
			h.Size = cp.Size // what we can prove
			if cp.Size > theirs[m] || cp.Size == theirs[m] && len(cp.Cosigners) > 0 {
				h.Checkpoint = cp.Note
			}
		}
		resp.Heads = append(resp.Heads, h)
	}
	for m := range n.store.Evidence() {
		resp.Evidence = append(resp.Evidence, m)
	}
	return resp, nil
}

func (s *peerServer) GetRange(req *pb.RangeRequest, stream grpc.ServerStreamingServer[pb.RangeChunk]) error {
	n := s.n
	select {
	case n.peerStreams <- struct{}{}:
		defer func() { <-n.peerStreams }()
	default:
		n.metrics.refusedStreams.WithLabelValues("peer").Inc()
		return status.Errorf(codes.ResourceExhausted, "too many range streams (limit %d); retry later", n.cfg.MaxPeerStreams)
	}
	head, ok := n.store.Head(req.Member)
	if !ok || head.Size <= req.Start {
		have := uint64(0)
		if ok {
			have = head.Size
		}
		return status.Errorf(codes.OutOfRange, "log %q: nothing signed beyond %d (checkpoint at %d)", req.Member, req.Start, have)
	}
	end := head.Size
	if req.MaxEntries > 0 && req.Start+req.MaxEntries < end {
		end = req.Start + req.MaxEntries
	}
	pos := req.Start
	first := true
	for pos < end {
		if err := stream.Context().Err(); err != nil {
			return err
		}
		chunkEnd := min(end, pos+uint64(n.cfg.ChunkEntries))
		entries, err := n.store.Entries(req.Member, pos, chunkEnd, n.cfg.MaxMessageBytes/2)
		if err != nil {
			return status.Errorf(codes.Internal, "read log %q: %v", req.Member, err)
		}
		next := pos + uint64(len(entries))
		chunk := &pb.RangeChunk{Start: pos, Entries: entries}
		if first {
			chunk.Checkpoint = head.Note
			first = false
		}
		if next < head.Size {
			proof, err := n.store.ProveConsistency(req.Member, next, head.Size)
			if err != nil {
				return status.Errorf(codes.Internal, "proof for log %q: %v", req.Member, err)
			}
			chunk.ConsistencyProof = hashesToBytes(proof)
		}
		if n.cfg.tamperRange != nil {
			n.cfg.tamperRange(chunk)
		}
		if err := stream.Send(chunk); err != nil {
			return err
		}
		pos = next
	}
	return nil
}

func (s *peerServer) GetConsistency(ctx context.Context, req *pb.ConsistencyRequest) (*pb.ConsistencyResponse, error) {
	n := s.n
	size := n.store.Size(req.Member)
	if req.OldSize > req.NewSize || req.NewSize > size {
		return nil, status.Errorf(codes.OutOfRange, "log %q: no proof from %d to %d (%d entries here)", req.Member, req.OldSize, req.NewSize, size)
	}
	root, err := n.store.TreeHash(req.Member, req.OldSize)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	proof, err := n.store.ProveConsistency(req.Member, req.OldSize, req.NewSize)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	resp := &pb.ConsistencyResponse{OldRoot: root[:], Proof: hashesToBytes(proof)}
	if h, ok := n.store.Head(req.Member); ok && h.Size == req.NewSize {
		resp.Checkpoint = h.Note
	}
	return resp, nil
}

func (s *peerServer) GetEvidence(ctx context.Context, req *pb.EvidenceRequest) (*pb.EvidenceResponse, error) {
	ev := s.n.store.Evidence()[req.Member]
	if ev == nil {
		return nil, status.Errorf(codes.NotFound, "no evidence against %q", req.Member)
	}
	return &pb.EvidenceResponse{Evidence: ev.Proto()}, nil
}

func (s *peerServer) Cosign(ctx context.Context, req *pb.CosignRequest) (*pb.CosignResponse, error) {
	n := s.n
	cp, err := n.openCheckpoint(req.Checkpoint)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "checkpoint: %v", err)
	}
	if cp.Member == n.id {
		return nil, status.Error(codes.InvalidArgument, "a member does not cosign its own log")
	}
	head, ok := n.store.Head(cp.Member)
	if !ok || !head.Same(cp) {
		have := uint64(0)
		if ok {
			have = head.Size
		}
		return nil, status.Errorf(codes.FailedPrecondition, "log %q is verified here up to checkpoint size %d, not this one (size %d)", cp.Member, have, cp.Size)
	}
	out, err := n.store.Cosign(cp.Member, n.key, time.Now())
	if err != nil {
		if errors.Is(err, store.ErrForked) {
			return nil, status.Errorf(codes.FailedPrecondition, "%v", err)
		}
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	return &pb.CosignResponse{Checkpoint: out.Note}, nil
}

func hashesToBytes(hs []consortium.Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = append([]byte(nil), hs[i][:]...)
	}
	return out
}

func bytesToHashes(bs [][]byte) ([]consortium.Hash, error) {
	if len(bs) > 128 {
		return nil, fmt.Errorf("proof of %d hashes", len(bs))
	}
	out := make([]consortium.Hash, len(bs))
	for i, b := range bs {
		if len(b) != consortium.HashSize {
			return nil, fmt.Errorf("proof hash %d is %d bytes", i, len(b))
		}
		copy(out[i][:], b)
	}
	return out, nil
}

// goServe runs serve in the background until its server stops; any error but stopped, the
// server's own word for a deliberate stop, is logged as what stopped.
func (n *Node) goServe(what string, serve func() error, stopped error) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := serve(); err != nil && !errors.Is(err, stopped) {
			n.log.Error(what+" stopped", "err", err)
		}
	}()
}
