package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
)

// Limits of the member API.
const (
	// maxSubmitEntries bounds the entries of one Submit call.
	maxSubmitEntries = 100_000
	// feedPage is how many feed events are read from the store at a time.
	feedPage = 1000
	// exportPage is how many signals Export gathers under the state's lock at a time.
	exportPage = 1000
	// exportChunkEntries and exportChunkBytes bound one LogChunk of ExportLogs (the bytes also
	// by half the configured message limit).
	exportChunkEntries = 20_000
	exportChunkBytes   = 8 << 20
)

// errBadRequest is wrapped by errors in a request that its sender must fix (a radius out of range,
// too many entries, a cursor past the end of the feed).
var errBadRequest = errors.New("invalid request")

// startMemberAPI serves the member API (gRPC) on Config.MemberListen: host:port, or unix:PATH for
// a unix socket (a stale socket file at PATH is removed first; the socket is made mode 0600). With
// Config.MemberToken set, every call but the gRPC health check needs the metadata
// "authorization: Bearer <token>". gRPC health (status SERVING) and reflection are served beside
// the MemberService.
func (n *Node) startMemberAPI() error {
	if n.cfg.MemberListen == "" {
		return nil
	}
	lis, err := listenMember(n.cfg.MemberListen)
	if err != nil {
		return err
	}
	n.memberLis = lis
	n.memberSrv = grpc.NewServer(
		grpc.MaxRecvMsgSize(n.cfg.MaxMessageBytes),
		grpc.MaxSendMsgSize(n.cfg.MaxMessageBytes),
		grpc.UnaryInterceptor(n.authUnary),
		grpc.StreamInterceptor(n.authStream),
	)
	pb.RegisterMemberServiceServer(n.memberSrv, &memberServer{n: n})
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(pb.MemberService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(n.memberSrv, hs)
	reflection.Register(n.memberSrv)
	n.goServe("member API", func() error { return n.memberSrv.Serve(lis) }, grpc.ErrServerStopped)
	return nil
}

// listenMember listens on a member API address: host:port, or unix:PATH.
func listenMember(addr string) (net.Listener, error) {
	path, ok := strings.CutPrefix(addr, "unix:")
	if !ok {
		lis, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("member API: %w", err)
		}
		return lis, nil
	}
	if path == "" {
		return nil, fmt.Errorf("%w: member API address %q names no socket path", ErrConfig, addr)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("member API: %s exists and is not a socket; not removing it", path)
		}
		// A socket left by a node that did not shut down cleanly: connecting to it fails.
		if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
			c.Close()
			return nil, fmt.Errorf("member API: another process serves on %s", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("member API: remove stale socket: %w", err)
		}
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("member API: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		lis.Close()
		return nil, fmt.Errorf("member API: %w", err)
	}
	return lis, nil
}

// acquireStream takes a slot of the member API's stream limit (Config.MaxMatchStreams), or refuses
// with RESOURCE_EXHAUSTED when none is free.
func (n *Node) acquireStream() (release func(), err error) {
	select {
	case n.memberStreams <- struct{}{}:
		return func() { <-n.memberStreams }, nil
	default:
		n.metrics.refusedStreams.WithLabelValues("member").Inc()
		return nil, status.Errorf(codes.ResourceExhausted, "too many concurrent streams (limit %d); retry later or use fewer streams", cap(n.memberStreams))
	}
}

// beginStream admits a streaming call of the member API ([Node.acquireStream]) and returns its
// context ([Node.callContext]); end releases both.
func (n *Node) beginStream(parent context.Context) (ctx context.Context, end func(), err error) {
	release, err := n.acquireStream()
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := n.callContext(parent)
	return ctx, func() { cancel(); release() }, nil
}

// callContext returns a context that ends when ctx ends or the node closes.
func (n *Node) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(n.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

// endedStatus is the status of a stream whose context ended: UNAVAILABLE when the node is
// shutting down (the client should reconnect, to this node or another), the caller's own
// cancellation or deadline otherwise.
func (n *Node) endedStatus(callCtx context.Context, what string) error {
	if err := callCtx.Err(); err != nil {
		return toStatus(err)
	}
	return status.Errorf(codes.Unavailable, "node shutting down; %s", what)
}

// memberServer implements the member API.
type memberServer struct {
	pb.UnimplementedMemberServiceServer
	n *Node
}

// Submit appends entries to the node's own log; refused entries are reported one by one.
func (s *memberServer) Submit(ctx context.Context, req *pb.SubmitRequest) (*pb.SubmitResponse, error) {
	if len(req.Entries) > maxSubmitEntries {
		return nil, status.Errorf(codes.InvalidArgument, "%d entries in one request, at most %d: split the submission", len(req.Entries), maxSubmitEntries)
	}
	if len(req.Entries) == 0 {
		return &pb.SubmitResponse{}, nil
	}
	for i, e := range req.Entries {
		if e == nil {
			return nil, status.Errorf(codes.InvalidArgument, "entry %d is missing", i)
		}
	}
	out, err := s.n.Submit(ctx, req.Entries)
	if err != nil {
		return nil, toStatus(fmt.Errorf("submit: %w", err))
	}
	resp := &pb.SubmitResponse{Results: make([]*pb.SubmitResult, len(out))}
	for i, a := range out {
		if a.Err != nil {
			resp.Results[i] = &pb.SubmitResult{Error: a.Err.Error()}
			continue
		}
		resp.Results[i] = &pb.SubmitResult{Index: a.Index, Entry: a.Entry, Unchanged: a.Unchanged, Updated: a.Updated}
	}
	return resp, nil
}

// Status reports the node.
func (s *memberServer) Status(ctx context.Context, req *pb.StatusRequest) (*pb.StatusResponse, error) {
	return s.n.Status(), nil
}

// now returns the current time as the store sees it (Config.Store.Now, for expiry).
func (n *Node) now() time.Time {
	if n.cfg.Store.Now != nil {
		return n.cfg.Store.Now()
	}
	return time.Now()
}
