package node

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/hashfed/hashfed/consortium"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"github.com/hashfed/hashfed/store"
	"google.golang.org/grpc"
)

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

// maxHiddenReasons bounds the distinct reasons a match answer gives for hidden matches.
const maxHiddenReasons = 10

// matched is the answer to one query: the matches, and those the local policy hides when the query
// did not ask for them.
type matched struct {
	matches []store.Match
	hidden  []store.Match
	// local are the matches in the node's local banks (never shared).
	local []store.LocalMatch
}

// response returns the answer's wire form.
func (m matched) response(id string) *pb.MatchResponse {
	resp := &pb.MatchResponse{Id: id, Matches: matchesToProto(m.matches), HiddenCount: uint32(len(m.hidden))}
	for _, l := range m.local {
		resp.Local = append(resp.Local, localMatchToProto(l))
	}
	for _, h := range m.hidden {
		if len(resp.HiddenReasons) < maxHiddenReasons && !slices.Contains(resp.HiddenReasons, h.Hidden) {
			resp.HiddenReasons = append(resp.HiddenReasons, h.Hidden)
		}
	}
	return resp
}

// match answers one query and records its latency and outcome in the metrics. Matches the local
// policy hides are returned apart unless the query includes them, so that the answer can say how
// many were hidden and why; the node's local banks are matched too.
func (n *Node) match(sig consortium.Signal, q store.Query) (matched, error) {
	start := time.Now()
	include := q.IncludeHidden
	q.IncludeHidden = true
	all, err := n.store.MatchSignal(sig, q)
	res := splitHidden(all, include)
	n.countMatch(sig.Type.String(), res, err, time.Since(start))
	if err != nil {
		return res, err
	}
	res.local, err = n.store.LocalMatch(sig, q.Radius)
	return res, err
}

// splitHidden makes the answer to one query from all its matches, those the local policy hides
// included: the hidden ones apart, unless the query includes them.
func splitHidden(all []store.Match, include bool) matched {
	if include {
		return matched{matches: all}
	}
	var res matched
	for _, m := range all {
		if m.Hidden != "" {
			res.hidden = append(res.hidden, m)
		} else {
			res.matches = append(res.matches, m)
		}
	}
	return res
}

// countMatch records in the metrics the latency of a query of type typ and its outcome: an error,
// a hit (something shown) or a miss.
func (n *Node) countMatch(typ string, res matched, err error, took time.Duration) {
	n.metrics.matchLatency.WithLabelValues(typ).Observe(took.Seconds())
	outcome := "miss"
	switch {
	case err != nil:
		outcome = "error"
	case len(res.matches) > 0:
		outcome = "hit"
	}
	n.metrics.matchQueries.WithLabelValues(typ, outcome).Inc()
}

// matchRequest validates and answers one match request.
func (n *Node) matchRequest(req *pb.MatchRequest) (*pb.MatchResponse, error) {
	sig, q, err := matchQuery(req)
	if err != nil {
		n.metrics.matchQueries.WithLabelValues(typeLabel(req.GetSignal().GetType()), "error").Inc()
		return nil, err
	}
	res, err := n.match(sig, q)
	if err != nil {
		return nil, err
	}
	return res.response(req.Id), nil
}

// maxMatchBatch is the most queued stream queries answered together.
const maxMatchBatch = 64

// matchRequests answers reqs in order, each as matchRequest would (a failed one with error set): runs of
// PDQ queries with the same radius, quality and hidden flag go to the store together, whose index
// searches them as a batch.
func (n *Node) matchRequests(reqs []*pb.MatchRequest) []*pb.MatchResponse {
	out := make([]*pb.MatchResponse, len(reqs))
	sigs := make([]consortium.Signal, len(reqs))
	qs := make([]store.Query, len(reqs))
	ok := make([]bool, len(reqs))
	for i, req := range reqs {
		sig, q, err := matchQuery(req)
		if err != nil {
			n.metrics.matchQueries.WithLabelValues(typeLabel(req.GetSignal().GetType()), "error").Inc()
			out[i] = &pb.MatchResponse{Id: req.Id, Error: err.Error()}
			continue
		}
		sigs[i], qs[i], ok[i] = sig, q, true
	}
	for i := 0; i < len(reqs); {
		if !ok[i] {
			i++
			continue
		}
		j := i + 1
		if sigs[i].Type == consortium.PDQ {
			for j < len(reqs) && ok[j] && sigs[j].Type == consortium.PDQ && qs[j] == qs[i] {
				j++
			}
		}
		if j-i == 1 {
			resp, err := n.matchRequest(reqs[i])
			if err != nil {
				resp = &pb.MatchResponse{Id: reqs[i].Id, Error: err.Error()}
			}
			out[i] = resp
			i = j
			continue
		}
		hs := make([][32]byte, 0, j-i)
		for _, sig := range sigs[i:j] {
			hs = append(hs, sig.Value)
		}
		// As match: hidden matches are asked for, and set apart unless the queries include them.
		start := time.Now()
		q := qs[i]
		include := q.IncludeHidden
		q.IncludeHidden = true
		res, err := n.store.MatchPDQBatch(hs, q)
		each := time.Since(start)
		for k := i; k < j; k++ {
			if err != nil {
				n.countMatch("pdq", matched{}, err, each)
				out[k] = &pb.MatchResponse{Id: reqs[k].Id, Error: err.Error()}
				continue
			}
			m := splitHidden(res[k-i], include)
			n.countMatch("pdq", m, nil, each)
			var lerr error
			if m.local, lerr = n.store.LocalMatch(sigs[k], q.Radius); lerr != nil {
				out[k] = &pb.MatchResponse{Id: reqs[k].Id, Error: lerr.Error()}
				continue
			}
			out[k] = m.response(reqs[k].Id)
		}
		i = j
	}
	return out
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
	ctx, end, err := s.n.beginStream(stream.Context())
	if err != nil {
		return err
	}
	defer end()
	// Recv runs in its own goroutine so that the stream ends when the node closes, not only when
	// the client stops sending.
	reqs := make(chan *pb.MatchRequest, maxMatchBatch)
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
			if err != io.EOF {
				return err
			}
			// The client is done sending: every query it sent is in reqs already (the receiver
			// puts each one there before it reports the end), and each is answered before the
			// stream ends. (Returning at once dropped the queries still waiting: found by
			// TestMemberSubmitMatchLookup's batch.)
			for len(reqs) > 0 {
				if err := s.answerWaiting(stream, <-reqs, reqs); err != nil {
					return err
				}
			}
			return nil
		case req := <-reqs:
			if err := s.answerWaiting(stream, req, reqs); err != nil {
				return err
			}
		}
	}
}

// answerWaiting answers req and the queries already waiting in reqs (up to a batch) together (see
// matchRequests), in order.
func (s *memberServer) answerWaiting(stream grpc.BidiStreamingServer[pb.MatchRequest, pb.MatchResponse], req *pb.MatchRequest, reqs chan *pb.MatchRequest) error {
	batch := []*pb.MatchRequest{req}
drain:
	for len(batch) < maxMatchBatch {
		select {
		case r := <-reqs:
			batch = append(batch, r)
		default:
			break drain
		}
	}
	for _, resp := range s.n.matchRequests(batch) {
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
	return nil
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
