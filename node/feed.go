package node

import (
	"fmt"

	"github.com/hashfed/hashfed/consortium"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"github.com/hashfed/hashfed/store"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Feed streams the feed from req.Cursor: each stored entry, decoded, with the members listing its
// signal now. An entry that does not decode, or that replay rejected (among the first 1,000
// rejections the state remembers), carries the reason in rejected. With follow, the stream waits
// for new entries; it ends with UNAVAILABLE when the node shuts down (resume from the last seq + 1).
func (s *memberServer) Feed(req *pb.FeedRequest, stream grpc.ServerStreamingServer[pb.FeedEvent]) error {
	ctx, end, err := s.n.beginStream(stream.Context())
	if err != nil {
		return err
	}
	defer end()
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
		if hasSig[i] {
			fe.Signal = sigs[i].Proto()
		}
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
			fe.Protected = protectionsToProto(s.Protections(sigs[i], now))
			for _, l := range s.Listed(sigs[i]) {
				if l.Expires == 0 || l.Expires > now {
					fe.ListedBy = append(fe.ListedBy, l.Member)
				}
			}
		}
	})
	return out
}
