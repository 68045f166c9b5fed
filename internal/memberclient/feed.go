package memberclient

import (
	"context"
	"errors"
	"io"
	"time"

	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// Feed reads the node's feed from position cursor and calls fn with each event, in order. With
// follow it waits for new events until ctx ends (and then returns ctx's error); without, it
// returns nil at the end of the feed. An error of fn ends the read and is returned.
func (c *Client) Feed(ctx context.Context, cursor uint64, follow bool, fn func(*pb.FeedEvent) error) error {
	cctx, cancel := c.Ctx(ctx, 0)
	defer cancel()
	stream, err := c.MemberServiceClient.Feed(cctx, &pb.FeedRequest{Cursor: cursor, Follow: follow})
	if err != nil {
		return c.Err(err)
	}
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return c.Err(err)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
}

// MatchResponse asks the node for the whole answer to one request (the matches, and how many the
// node's policy hid and why), within timeout (0 for none).
func (c *Client) MatchResponse(ctx context.Context, req *pb.MatchRequest, timeout time.Duration) (*pb.MatchResponse, error) {
	cctx, cancel := c.Ctx(ctx, timeout)
	defer cancel()
	resp, err := c.MemberServiceClient.Match(cctx, req)
	if err != nil {
		return nil, c.Err(err)
	}
	return resp, nil
}
