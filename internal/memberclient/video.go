package memberclient

import (
	"context"
	"time"

	"github.com/hashfed/hashfed/consortium/vpdq"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// MatchVideo asks the node for the listed videos and images a video's frames match, within
// timeout (0 for none).
func (c *Client) MatchVideo(ctx context.Context, req *pb.MatchVideoRequest, timeout time.Duration) (*pb.MatchVideoResponse, error) {
	cctx, cancel := c.Ctx(ctx, timeout)
	defer cancel()
	resp, err := c.MemberServiceClient.MatchVideo(cctx, req)
	if err != nil {
		return nil, c.Err(err)
	}
	return resp, nil
}

// VideoRequest is the request matching frames by the rule o.
func VideoRequest(frames []vpdq.Frame, o vpdq.MatchOptions, hidden bool) *pb.MatchVideoRequest {
	d, q := uint32(o.Distance), uint32(o.Quality)
	qp, cp := o.QueryPercent, o.ComparedPercent
	req := &pb.MatchVideoRequest{Distance: &d, Quality: &q, QueryPercent: &qp, ComparedPercent: &cp, IncludeHidden: hidden}
	for _, f := range frames {
		req.Frames = append(req.Frames, &pb.VideoFrame{Pdq: f.Hash[:], Quality: uint32(f.Quality), TimeMs: f.MS})
	}
	return req
}
