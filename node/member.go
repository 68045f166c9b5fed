package node

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hashfed/hashfed/consortium"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"github.com/hashfed/hashfed/store"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
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
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.memberSrv.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			n.log.Error("member API stopped", "err", err)
		}
	}()
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

// codeOf classifies an error for the edge: what the caller must fix (INVALID_ARGUMENT), what the
// state does not allow (FAILED_PRECONDITION), a closing node (UNAVAILABLE), the caller's context,
// and anything else (INTERNAL).
func codeOf(err error) codes.Code {
	is := func(targets ...error) bool {
		for _, t := range targets {
			if errors.Is(err, t) {
				return true
			}
		}
		return false
	}
	switch {
	case is(context.Canceled):
		return codes.Canceled
	case is(context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case is(store.ErrClosed, errClosed, ErrRestoring):
		return codes.Unavailable
	case is(store.ErrBusy):
		return codes.ResourceExhausted
	case is(errBadRequest, store.ErrLowQuality, consortium.ErrInvalidSignal, consortium.ErrUnknownSignalType,
		consortium.ErrInvalidLabel, consortium.ErrInvalidEntry, consortium.ErrMalformed, consortium.ErrExpired,
		consortium.ErrInvalidMemberID, consortium.ErrInvalidKey):
		return codes.InvalidArgument
	case is(consortium.ErrNotPermitted, consortium.ErrUnknownMember, consortium.ErrDoubleEndorse,
		consortium.ErrOutOfOrder, store.ErrForked, ErrOwnLogConflict):
		return codes.FailedPrecondition
	}
	if s, ok := status.FromError(err); ok && s.Code() != codes.Unknown {
		return s.Code()
	}
	return codes.Internal
}

// toStatus turns an error into a gRPC status error with the error's message (a status error is
// returned as it is).
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := err.(interface{ GRPCStatus() *status.Status }); ok {
		return err
	}
	return status.Error(codeOf(err), err.Error())
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
		resp.Results[i] = &pb.SubmitResult{Index: a.Index, Entry: a.Entry}
	}
	return resp, nil
}

// matchQuery validates a match request: the signal, a radius of at most [store.MaxRadius] (unset
// means the default, 31) and a quality of at most 100.
func matchQuery(req *pb.MatchRequest) (consortium.Signal, store.Query, error) {
	sig, err := consortium.SignalFromProto(req.GetSignal())
	if err != nil {
		return sig, store.Query{}, err
	}
	q := store.DefaultQuery()
	q.IncludeHidden = req.GetIncludeHidden()
	if req.Radius != nil {
		if *req.Radius > store.MaxRadius {
			return sig, q, fmt.Errorf("%w: radius %d is out of range 0 to %d", errBadRequest, *req.Radius, store.MaxRadius)
		}
		q.Radius = int(*req.Radius)
	}
	if req.Quality != nil {
		if *req.Quality > 100 {
			return sig, q, fmt.Errorf("%w: quality %d is out of range 0 to 100", errBadRequest, *req.Quality)
		}
		q.Quality = int(*req.Quality)
	}
	return sig, q, nil
}

// typeLabel is the metrics label of a signal type name: the name when known, "invalid" otherwise
// (so that label values stay few).
func typeLabel(name string) string {
	if _, err := consortium.ParseSignalType(name); err != nil {
		return "invalid"
	}
	return name
}

// match answers one query and records its latency and outcome in the metrics.
func (n *Node) match(sig consortium.Signal, q store.Query) ([]store.Match, error) {
	start := time.Now()
	ms, err := n.store.MatchSignal(sig, q)
	typ := sig.Type.String()
	n.metrics.matchLatency.WithLabelValues(typ).Observe(time.Since(start).Seconds())
	outcome := "miss"
	switch {
	case err != nil:
		outcome = "error"
	case len(ms) > 0:
		outcome = "hit"
	}
	n.metrics.matchQueries.WithLabelValues(typ, outcome).Inc()
	return ms, err
}

// matchRequest validates and answers one match request.
func (n *Node) matchRequest(req *pb.MatchRequest) (*pb.MatchResponse, error) {
	sig, q, err := matchQuery(req)
	if err != nil {
		n.metrics.matchQueries.WithLabelValues(typeLabel(req.GetSignal().GetType()), "error").Inc()
		return nil, err
	}
	ms, err := n.match(sig, q)
	if err != nil {
		return nil, err
	}
	return &pb.MatchResponse{Id: req.Id, Matches: matchesToProto(ms)}, nil
}

// Match answers one query.
func (s *memberServer) Match(ctx context.Context, req *pb.MatchRequest) (*pb.MatchResponse, error) {
	resp, err := s.n.matchRequest(req)
	if err != nil {
		return nil, toStatus(err)
	}
	return resp, nil
}

// MatchStream answers queries in the order they arrive, each with its request's id; a query that
// fails is answered with error set and the stream goes on.
func (s *memberServer) MatchStream(stream grpc.BidiStreamingServer[pb.MatchRequest, pb.MatchResponse]) error {
	release, err := s.n.acquireStream()
	if err != nil {
		return err
	}
	defer release()
	ctx, cancel := s.n.callContext(stream.Context())
	defer cancel()
	// Recv runs in its own goroutine so that the stream ends when the node closes, not only when
	// the client stops sending.
	reqs := make(chan *pb.MatchRequest)
	recvErr := make(chan error, 1)
	go func() {
		for {
			req, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case reqs <- req:
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return s.n.endedStatus(stream.Context(), "reconnect and send the unanswered queries again")
		case err := <-recvErr:
			if err == io.EOF {
				return nil
			}
			return err
		case req := <-reqs:
			resp, err := s.n.matchRequest(req)
			if err != nil {
				resp = &pb.MatchResponse{Id: req.Id, Error: err.Error()}
			}
			if err := stream.Send(resp); err != nil {
				return err
			}
		}
	}
}

// Lookup returns what the consortium says of exactly one signal.
func (s *memberServer) Lookup(ctx context.Context, req *pb.LookupRequest) (*pb.LookupResponse, error) {
	sig, err := consortium.SignalFromProto(req.GetSignal())
	if err != nil {
		return nil, toStatus(err)
	}
	m, found, err := s.n.store.Lookup(sig)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.LookupResponse{Found: found, Result: matchToProto(m)}, nil
}

// Status reports the node.
func (s *memberServer) Status(ctx context.Context, req *pb.StatusRequest) (*pb.StatusResponse, error) {
	return s.n.Status(), nil
}

// Feed streams the feed from req.Cursor: each stored entry, decoded, with the members listing its
// signal now. An entry that does not decode, or that replay rejected (among the first 1,000
// rejections the state remembers), carries the reason in rejected. With follow, the stream waits
// for new entries; it ends with UNAVAILABLE when the node shuts down (resume from the last seq + 1).
func (s *memberServer) Feed(req *pb.FeedRequest, stream grpc.ServerStreamingServer[pb.FeedEvent]) error {
	release, err := s.n.acquireStream()
	if err != nil {
		return err
	}
	defer release()
	ctx, cancel := s.n.callContext(stream.Context())
	defer cancel()
	cursor := req.Cursor
	if end := s.n.store.FeedEnd(); cursor > end {
		return status.Errorf(codes.OutOfRange, "cursor %d is past the end of this node's feed (%d events): a cursor is only valid on the node that gave it", cursor, end)
	}
	for {
		if ctx.Err() != nil {
			return s.n.endedStatus(stream.Context(), fmt.Sprintf("resume the feed from cursor %d", cursor))
		}
		evs, next, err := s.n.store.Feed(cursor, feedPage)
		if err != nil {
			return toStatus(fmt.Errorf("read feed from %d: %w", cursor, err))
		}
		if len(evs) == 0 {
			if !req.Follow {
				return nil
			}
			if err := s.n.store.WaitFeed(ctx, cursor); err != nil {
				return s.n.endedStatus(stream.Context(), fmt.Sprintf("resume the feed from cursor %d", cursor))
			}
			continue
		}
		for _, ev := range s.n.feedEvents(evs) {
			if err := stream.Send(ev); err != nil {
				return err
			}
		}
		cursor = next
	}
}

// feedEvents decodes stored feed events and adds, for each entry about a signal, the members
// listing that signal now (expired listings left out) and why replay rejected the entry, if it did.
func (n *Node) feedEvents(evs []store.FeedEvent) []*pb.FeedEvent {
	out := make([]*pb.FeedEvent, len(evs))
	sigs := make([]consortium.Signal, len(evs))
	hasSig := make([]bool, len(evs))
	for i, ev := range evs {
		fe := &pb.FeedEvent{Seq: ev.Seq, Member: ev.Member, Index: ev.Index, Cutoff: pb.CutoffEffect(ev.Cutoff)}
		out[i] = fe
		e, err := consortium.ParseEntry(ev.Entry)
		if err != nil {
			fe.Rejected = err.Error()
			continue
		}
		fe.Entry = e
		sigs[i], hasSig[i] = entrySignal(e, func(index uint64) ([]byte, error) { return n.store.Entry(ev.Member, index) })
	}
	type key struct {
		member string
		index  uint64
	}
	now := n.now().UnixMilli()
	n.store.View(func(s *consortium.State) {
		rejs, total := s.Rejections()
		var rejected map[key]error
		if total > 0 {
			rejected = make(map[key]error, len(rejs))
			for _, r := range rejs {
				rejected[key{r.Member, r.Index}] = r.Err
			}
		}
		for i, fe := range out {
			if err, ok := rejected[key{fe.Member, fe.Index}]; ok && fe.Rejected == "" {
				fe.Rejected = err.Error()
			}
			if !hasSig[i] {
				continue
			}
			for _, l := range s.Listed(sigs[i]) {
				if l.Expires == 0 || l.Expires > now {
					fe.ListedBy = append(fe.ListedBy, l.Member)
				}
			}
		}
	})
	return out
}

// now returns the current time as the store sees it (Config.Store.Now, for expiry).
func (n *Node) now() time.Time {
	if n.cfg.Store.Now != nil {
		return n.cfg.Store.Now()
	}
	return time.Now()
}

// Export streams the shared set: now (every listed signal with its unexpired listings, hidden ones
// included, since hiding is local policy), or with at_unix_ms the set as replaying every stored log
// up to that time gives it (listings expired by then left out).
func (s *memberServer) Export(req *pb.ExportRequest, stream grpc.ServerStreamingServer[pb.ExportRecord]) error {
	if req.AtUnixMs < 0 {
		return status.Errorf(codes.InvalidArgument, "at_unix_ms %d is negative", req.AtUnixMs)
	}
	release, err := s.n.acquireStream()
	if err != nil {
		return err
	}
	defer release()
	ctx, cancel := s.n.callContext(stream.Context())
	defer cancel()
	if req.AtUnixMs == 0 {
		err = s.n.exportNow(ctx, stream.Send)
	} else {
		err = s.n.exportAt(ctx, req.AtUnixMs, stream.Send)
	}
	if err != nil && ctx.Err() != nil {
		return s.n.endedStatus(stream.Context(), "export again")
	}
	return toStatus(err)
}

// exportNow sends every currently listed signal with its unexpired listings, in signal id order.
func (n *Node) exportNow(ctx context.Context, send func(*pb.ExportRecord) error) error {
	next := uint32(0)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var batch []consortium.Signal
		done := false
		n.store.View(func(s *consortium.State) {
			total := s.NumSignalIDs()
			for ; int(next) < total && len(batch) < exportPage; next++ {
				if len(s.ListedByID(next)) == 0 {
					continue
				}
				if sig, ok := s.SignalByID(next); ok {
					batch = append(batch, sig)
				}
			}
			done = int(next) >= total
		})
		for _, sig := range batch {
			m, ok, err := n.store.Lookup(sig)
			if err != nil {
				return fmt.Errorf("export %s: %w", sig, err)
			}
			if !ok || len(m.Listings) == 0 {
				continue
			}
			rec := &pb.ExportRecord{Signal: sig.Proto(), Listings: make([]*pb.Listing, len(m.Listings))}
			for i, l := range m.Listings {
				rec.Listings[i] = listingToProto(l)
			}
			if err := send(rec); err != nil {
				return err
			}
		}
		if done {
			return nil
		}
	}
}

// readLogs reads every stored log in full.
func (n *Node) readLogs(ctx context.Context) (consortium.Logs, error) {
	logs := consortium.Logs{}
	for m, size := range n.store.Sizes() {
		log := make([][]byte, 0, size)
		for uint64(len(log)) < size {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			es, err := n.store.Entries(m, uint64(len(log)), size, 64<<20)
			if err != nil {
				return nil, fmt.Errorf("read log %q: %w", m, err)
			}
			log = append(log, es...)
		}
		logs[m] = log
	}
	return logs, nil
}

// exportAt replays every stored log up to time at (Unix ms), forked logs only up to their cutoffs,
// and sends the listings of that state.
func (n *Node) exportAt(ctx context.Context, at int64, send func(*pb.ExportRecord) error) error {
	logs, err := n.readLogs(ctx)
	if err != nil {
		return err
	}
	// Forked logs apply up to their equivocation cutoffs, as in the state and in an audit.
	st, err := consortium.Replay(n.g, logs, consortium.ReplayOptions{Until: time.UnixMilli(at), Sizes: n.store.Cutoffs()})
	if err != nil {
		return fmt.Errorf("replay the stored logs up to %s: %w", time.UnixMilli(at).UTC().Format(time.RFC3339), err)
	}
	var sendErr error
	st.ForEachListed(func(id uint32, sig consortium.Signal) bool {
		rec := &pb.ExportRecord{Signal: sig.Proto()}
		for _, l := range st.ListedByID(id) {
			if l.Expires != 0 && l.Expires <= at {
				continue
			}
			li, err := listingFromEntry(l.Member, l.Index, logs[l.Member][l.Index])
			if err != nil {
				sendErr = err
				return false
			}
			rec.Listings = append(rec.Listings, li)
		}
		if len(rec.Listings) == 0 {
			return true
		}
		if sendErr = send(rec); sendErr != nil {
			return false
		}
		return ctx.Err() == nil
	})
	if sendErr != nil {
		return sendErr
	}
	return ctx.Err()
}

// ExportLogs streams the audit bundle: the genesis; then, for each log with a signed checkpoint (by
// member id), its entries up to the checkpoint's size, in chunks, the last of which carries the
// checkpoint (cosignatures included); then one chunk per equivocation evidence. Entries stored
// beyond a log's latest checkpoint are left out, since an auditor could not verify them; the node's
// own log is signed first if it grew since its last checkpoint, so that it is exported in full. A
// log of which the node holds no checkpoint is left out.
func (s *memberServer) ExportLogs(req *pb.ExportLogsRequest, stream grpc.ServerStreamingServer[pb.LogChunk]) error {
	release, err := s.n.acquireStream()
	if err != nil {
		return err
	}
	defer release()
	ctx, cancel := s.n.callContext(stream.Context())
	defer cancel()
	err = s.n.exportLogs(ctx, stream.Send)
	if err != nil && ctx.Err() != nil {
		return s.n.endedStatus(stream.Context(), "export again")
	}
	return toStatus(err)
}

func (n *Node) exportLogs(ctx context.Context, send func(*pb.LogChunk) error) error {
	// While the own log may be behind the peers', nothing is signed: it is exported up to its last
	// checkpoint; so is a forked own log (SignHead refuses it).
	if blocked := n.ownLogBlocked(); blocked != nil {
		n.log.Debug("export: not signing own checkpoint", "err", blocked)
	} else if cp, err := n.store.SignHead(n.key); err != nil && !errors.Is(err, store.ErrForked) {
		return fmt.Errorf("sign own checkpoint: %w", err)
	} else if cp != nil {
		n.noteKnown(n.id, cp.Size)
		n.broadcastCheckpoint(cp)
	}
	if err := send(&pb.LogChunk{Genesis: n.g.Marshal()}); err != nil {
		return err
	}
	heads := n.store.Heads()
	chunkBytes := min(exportChunkBytes, n.cfg.MaxMessageBytes/2)
	for _, m := range n.store.Members() {
		head := heads[m]
		if head == nil {
			continue
		}
		for start := uint64(0); start < head.Size; {
			if err := ctx.Err(); err != nil {
				return err
			}
			es, err := n.store.Entries(m, start, min(head.Size, start+exportChunkEntries), chunkBytes)
			if err != nil {
				return fmt.Errorf("read log %q from %d: %w", m, start, err)
			}
			c := &pb.LogChunk{Member: m, Start: start, Entries: es}
			start += uint64(len(es))
			if start == head.Size {
				c.Checkpoint = head.Note
			}
			if err := send(c); err != nil {
				return err
			}
		}
	}
	if err := n.exportHeadsNotes(send, heads); err != nil {
		return err
	}
	evidence := n.store.Evidence()
	ids := make([]string, 0, len(evidence))
	for m := range evidence {
		ids = append(ids, m)
	}
	slices.Sort(ids)
	for _, m := range ids {
		if err := send(&pb.LogChunk{Member: m, Evidence: evidence[m].Marshal()}); err != nil {
			return err
		}
	}
	return nil
}
