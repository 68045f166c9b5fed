package node

import (
	"context"
	"fmt"

	"github.com/hashfed/hashfed/consortium"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"github.com/hashfed/hashfed/store"
)

// Review records a reviewer's verdict on a signal (releasing it from a flood hold, and on
// [store.Deconfirm] suppressing it locally) and, when publish is set, publishes it to the
// consortium in the same action as an opinion in this member's log: confirm as "agree",
// deconfirm as "false_positive", with the text "confirmed in review" or "deconfirmed in review"
// and the note. The reviewer's name stays local (section 9 of PROTOCOL.md).
//
// The opinion is appended first: when that fails nothing is recorded; when it succeeds and the
// local record fails, the error says so and names the opinion's index.
func (n *Node) Review(ctx context.Context, sig consortium.Signal, reviewer string, v store.Verdict, note string, publish bool) (store.Review, error) {
	if _, err := store.ParseVerdict(string(v)); err != nil {
		return store.Review{}, err
	}
	if reviewer == "" {
		return store.Review{}, fmt.Errorf("%w: a review needs the reviewer's name", store.ErrPolicy)
	}
	opinion := int64(-1)
	if publish {
		stance, text := pb.Stance_STANCE_AGREE, "confirmed in review"
		if v == store.Deconfirm {
			stance, text = pb.Stance_STANCE_FALSE_POSITIVE, "deconfirmed in review"
		}
		if note != "" {
			text += ": " + note
		}
		t := n.now().UnixMilli()
		n.store.View(func(s *consortium.State) {
			if last, ok := s.LastTime(n.id); ok && last > t {
				t = last
			}
		})
		e, err := consortium.NewOpinion(t, sig, stance, text)
		if err != nil {
			return store.Review{}, fmt.Errorf("%w: %w", errBadRequest, err)
		}
		out, err := n.Submit(ctx, []*pb.Entry{e})
		if err != nil {
			return store.Review{}, fmt.Errorf("publish the review's opinion: %w", err)
		}
		if out[0].Err != nil {
			return store.Review{}, fmt.Errorf("publish the review's opinion: %w", out[0].Err)
		}
		opinion = int64(out[0].Index)
	}
	r, err := n.store.RecordReview(sig, reviewer, v, note, opinion)
	if err != nil && opinion >= 0 {
		return r, fmt.Errorf("opinion published as entry %d of %s's log, but the local review was not recorded: %w", opinion, n.id, err)
	}
	return r, err
}
