package memberclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hashfed/hashfed/consortium"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// Submit sends entries to the node as one transaction, within timeout (0 for none), and returns
// the node's result for each.
func (c *Client) Submit(ctx context.Context, entries []*pb.Entry, timeout time.Duration) ([]*pb.SubmitResult, error) {
	cctx, cancel := c.Ctx(ctx, timeout)
	defer cancel()
	resp, err := c.MemberServiceClient.Submit(cctx, &pb.SubmitRequest{Entries: entries})
	if err != nil {
		return nil, c.Err(err)
	}
	return resp.Results, nil
}

// Status returns the node's status, within timeout (0 for none).
func (c *Client) Status(ctx context.Context, timeout time.Duration) (*pb.StatusResponse, error) {
	cctx, cancel := c.Ctx(ctx, timeout)
	defer cancel()
	st, err := c.MemberServiceClient.Status(cctx, &pb.StatusRequest{})
	return st, c.Err(err)
}

// Match asks the node for the matches of one request, within timeout (0 for none).
func (c *Client) Match(ctx context.Context, req *pb.MatchRequest, timeout time.Duration) ([]*pb.MatchResult, error) {
	cctx, cancel := c.Ctx(ctx, timeout)
	defer cancel()
	resp, err := c.MemberServiceClient.Match(cctx, req)
	if err != nil {
		return nil, c.Err(err)
	}
	return resp.Matches, nil
}

// MatchRequest is the request for sig's matches: quality is the signal's quality (-1: none) and
// radius the PDQ distance (-1: the node's default).
func MatchRequest(sig consortium.Signal, quality, radius int, hidden bool) *pb.MatchRequest {
	req := &pb.MatchRequest{Signal: sig.Proto(), IncludeHidden: hidden}
	if radius >= 0 {
		r := uint32(radius)
		req.Radius = &r
	}
	req.Quality = QualityOf(quality)
	return req
}

// QualityOf turns a quality (-1: none) into a request's or an add's optional quality.
func QualityOf(q int) *uint32 {
	if q < 0 {
		return nil
	}
	v := uint32(q)
	return &v
}

// Bundle reads the audit bundle (genesis, logs, checkpoints, heads notes, evidence) from the
// node's member API.
func (c *Client) Bundle(ctx context.Context) (consortium.AuditInput, error) {
	in := consortium.AuditInput{Logs: consortium.Logs{}, Leaves: map[string][]consortium.Hash{}, Checkpoints: map[string][][]byte{}, Heads: map[string][]byte{}}
	cctx, cancel := c.Ctx(ctx, 0)
	defer cancel()
	stream, err := c.ExportLogs(cctx, &pb.ExportLogsRequest{})
	if err != nil {
		return in, c.Err(err)
	}
	for {
		ch, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return in, c.Err(err)
		}
		switch {
		case len(ch.Genesis) > 0:
			in.Genesis = ch.Genesis
		case len(ch.Evidence) > 0:
			in.Evidence = append(in.Evidence, ch.Evidence)
		case len(ch.Heads) > 0:
			in.Heads[ch.Member] = ch.Heads
		default:
			if uint64(len(in.Logs[ch.Member])) != ch.Start {
				return in, fmt.Errorf("node sent entries of %s from %d, expected %d", ch.Member, ch.Start, len(in.Logs[ch.Member]))
			}
			in.Logs[ch.Member] = append(in.Logs[ch.Member], ch.Entries...)
			for _, en := range ch.Entries {
				in.Leaves[ch.Member] = append(in.Leaves[ch.Member], consortium.LeafHash(en))
			}
			if len(ch.Checkpoint) > 0 {
				in.Checkpoints[ch.Member] = append(in.Checkpoints[ch.Member], ch.Checkpoint)
			}
		}
	}
	return in, nil
}
