package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/memberclient"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// parseExpiry reads an expiry: a duration from now (90d, 12h) or an RFC 3339 time.
func parseExpiry(s string, now time.Time) (int64, error) {
	if s == "" {
		return 0, nil
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(d)
		if err != nil || days <= 0 {
			return 0, usageErr("--expires %q: want a number of days like 90d, a duration like 12h, or an RFC 3339 time", s)
		}
		return now.Add(time.Duration(days) * 24 * time.Hour).UnixMilli(), nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return 0, usageErr("--expires %q is not in the future", s)
		}
		return now.Add(d).UnixMilli(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return 0, usageErr("--expires %q: want a number of days like 90d, a duration like 12h, or an RFC 3339 time", s)
	}
	return t.UnixMilli(), nil
}

// parseAt reads a point in the past for --at: a time ago (1h, 90m, 7d), a date (2026-01-31,
// midnight UTC) or an RFC 3339 time.
func parseAt(s string, now time.Time) (time.Time, error) {
	bad := usageErr("--at %q: want a time ago like 1h or 7d, a date like 2026-01-31, or an RFC 3339 time like 2026-01-31T12:00:00Z", s)
	if d, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(d)
		if err != nil || days < 0 {
			return time.Time{}, bad
		}
		return now.Add(-time.Duration(days) * 24 * time.Hour), nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, bad
		}
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339, time.DateOnly, "2006-01-02T15:04"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, bad
}

func runAdd(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "add", "TYPE VALUE | --image FILE... | --video FILE... [flags]")
	var nf nodeFlags
	nf.register(fs, e)
	var labels, images listFlag
	fs.Var(&labels, "label", "a label: behaviour:NAME, entity:LIST/ID, content:KIND, incident:ID or namespace:value (repeat)")
	fs.Var(&images, "image", "an image file: adds its PDQ hash (with quality), MD5 and SHA-256 under one content id (repeat)")
	contentID := fs.String("content-id", "", "groups several signals of one piece of content")
	expires := fs.String("expires", "", "when the listing lapses: 90d, 12h or an RFC 3339 time (default never)")
	note := fs.String("note", "", "free text for other members' reviewers")
	quality := fs.Int("quality", -1, "the PDQ quality your hasher reported (0-100)")
	wait := fs.Duration("wait", 0, "after adding, wait up to this long until every other member's node holds the entries (has cosigned your log past them), so a match there finds them")
	var videos listFlag
	fs.Var(&videos, "video", "a video file: adds its vPDQ frame hashes (vpdq parts), MD5 and SHA-256 under one content id (repeat)")
	var vf videoFlags
	vf.register(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	exp, err := parseExpiry(*expires, time.Now())
	if err != nil {
		return err
	}
	var entries []*pb.Entry
	var what []string
	if len(videos) > 0 {
		if len(pos) > 0 || len(images) > 0 {
			return usageErr("give one of TYPE VALUE, --image or --video")
		}
		if len(videos) > 1 && *contentID != "" {
			return usageErr("--content-id names one video: give one --video with it")
		}
		for _, path := range videos {
			es, ws, err := videoAdds(ctx, &vf, path, labels, consortium.AddOptions{ContentID: *contentID, Note: *note, ExpiresUnixMs: exp})
			if err != nil {
				return err
			}
			entries, what = append(entries, es...), append(what, ws...)
		}
	} else if len(images) > 0 {
		if len(pos) > 0 {
			return usageErr("give either TYPE VALUE or --image, not both")
		}
		for _, path := range images {
			h, err := memberclient.HashImageFile(path)
			if err != nil {
				return err
			}
			cid := *contentID
			if cid == "" {
				cid = "sha256:" + h.SHA256[:16]
			}
			sigs, err := h.Signals()
			if err != nil {
				return err
			}
			for _, s := range sigs {
				sig := s.Signal
				en, err := consortium.NewAdd(0, sig, labels, consortium.AddOptions{ContentID: cid, Note: *note, ExpiresUnixMs: exp, Quality: memberclient.QualityOf(s.Quality)})
				if err != nil {
					return err
				}
				entries = append(entries, en)
				what = append(what, fmt.Sprintf("%s (%s)", sig, path))
			}
		}
	} else {
		sig, err := signalArgs(pos)
		if err != nil {
			return err
		}
		en, err := consortium.NewAdd(0, sig, labels, consortium.AddOptions{ContentID: *contentID, Note: *note, ExpiresUnixMs: exp, Quality: memberclient.QualityOf(*quality)})
		if err != nil {
			return err
		}
		entries = append(entries, en)
		what = append(what, sig.String())
	}
	if *wait < 0 {
		return usageErr("--wait %v: want a duration like 10s", *wait)
	}
	results, err := submitResults(ctx, e, &nf, entries, what, "added")
	if err != nil || *wait == 0 {
		return err
	}
	var need uint64
	for _, r := range results {
		need = max(need, r.Index+1)
	}
	return waitHeld(ctx, e, &nf, need, *wait)
}

// waitHeld waits until every other member on the roster holds the first need entries of this
// node's log: the node's head of its own log covers them and carries every other member's
// cosignature (a member cosigns only what its node stored). It polls the node's status.
func waitHeld(ctx context.Context, e *env, nf *nodeFlags, need uint64, wait time.Duration) error {
	c, err := nf.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	deadline := time.Now().Add(wait)
	var missing []string
	for {
		st, err := c.Status(ctx, nf.timeout)
		if err != nil {
			return err
		}
		missing = missing[:0]
		var head *pb.LogStatus
		for _, l := range st.Logs {
			if l.Member == st.Member {
				head = l
			}
		}
		for _, m := range st.Roster {
			if m.Id == st.Member {
				continue
			}
			if head == nil || head.CheckpointSize < need || !slices.Contains(head.Cosigners, m.Id) {
				missing = append(missing, m.Id)
			}
		}
		if len(missing) == 0 {
			fmt.Fprintf(e.stdout, "held by every member's node (log %s cosigned at size %d)\n", st.Member, head.CheckpointSize)
			return nil
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("added, but after %v not yet held by %s (their nodes down or behind? see hashfed status)", wait, strings.Join(missing, ", "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(100*time.Millisecond, time.Until(deadline))):
		}
	}
}

// submit sends entries to the node and reports each outcome; it fails if any was refused.
func submit(ctx context.Context, e *env, nf *nodeFlags, entries []*pb.Entry, what []string, verb string) error {
	_, err := submitResults(ctx, e, nf, entries, what, verb)
	return err
}

// submitResults is submit, returning the node's results too.
func submitResults(ctx context.Context, e *env, nf *nodeFlags, entries []*pb.Entry, what []string, verb string) ([]*pb.SubmitResult, error) {
	results, err := send(ctx, nf, entries, nf.timeout)
	if err != nil {
		return nil, err
	}
	refused := 0
	for i, r := range results {
		if r.Error != "" {
			refused++
			fmt.Fprintf(e.stderr, "refused %s: %s\n", what[i], r.Error)
			continue
		}
		if r.Unchanged {
			fmt.Fprintf(e.stdout, "unchanged: %s is already listed so, as entry %d (nothing appended)\n", what[i], r.Index)
			continue
		}
		fmt.Fprintf(e.stdout, "%s %s as entry %d\n", verb, what[i], r.Index)
	}
	if refused > 0 {
		return results, fmt.Errorf("%d of %d refused", refused, len(entries))
	}
	return results, nil
}

func runRevoke(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "revoke", "TYPE VALUE | --index N  --reason R [--text T]")
	var nf nodeFlags
	nf.register(fs, e)
	index := fs.Int64("index", -1, "the index of your add entry to withdraw (instead of TYPE VALUE)")
	reason := fs.String("reason", "", "why: "+strings.Join(consortium.RevokeReasons(), ", ")+" (required)")
	text := fs.String("text", "", "free text")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if *reason == "" {
		return usageErr("revoke needs --reason (%s)", strings.Join(consortium.RevokeReasons(), ", "))
	}
	rr, err := consortium.ParseRevokeReason(*reason)
	if err != nil {
		return err
	}
	var en *pb.Entry
	var what string
	switch {
	case *index >= 0 && len(pos) == 0:
		en, err = consortium.NewRevokeIndex(0, uint64(*index), rr, *text)
		what = fmt.Sprintf("your entry %d", *index)
	case *index < 0:
		sig, serr := signalArgs(pos)
		if serr != nil {
			return serr
		}
		en, err = consortium.NewRevokeSignal(0, sig, rr, *text)
		what = sig.String()
	default:
		return usageErr("give either TYPE VALUE or --index, not both")
	}
	if err != nil {
		return err
	}
	return submit(ctx, e, &nf, []*pb.Entry{en}, []string{what}, "revoked")
}

func runDispute(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "dispute", "TYPE VALUE --stance S [--text T]")
	var nf nodeFlags
	nf.register(fs, e)
	stance := fs.String("stance", "false_positive", "your stance: "+strings.Join(consortium.Stances(), ", "))
	text := fs.String("text", "", "free text: why")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	sig, err := signalArgs(pos)
	if err != nil {
		return err
	}
	st, err := consortium.ParseStance(*stance)
	if err != nil {
		return err
	}
	en, err := consortium.NewOpinion(0, sig, st, *text)
	if err != nil {
		return err
	}
	return submit(ctx, e, &nf, []*pb.Entry{en}, []string{sig.String() + " (" + *stance + ")"}, "recorded opinion on")
}
