package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/hashfed/hashfed/node"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// errFeedLimit ends a feed read once --limit records were printed.
var errFeedLimit = errors.New("feed limit reached")

func runFeed(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "feed", "[-f] [--cursor CURSOR] [--limit N] [--json]")
	var nf nodeFlags
	nf.register(fs, e)
	follow := fs.Bool("f", false, "follow: after the last record, wait for new ones until interrupted")
	fs.BoolVar(follow, "follow", false, "the same as -f")
	cursor := fs.String("cursor", "", "resume after the record with this cursor (a record's cursor, or the one the last run printed to stderr); empty: from the beginning")
	limit := fs.Int("limit", 0, "stop after this many records (0: no limit)")
	asJSON := fs.Bool("json", false, "print JSON Lines: the records of GET /v1/feed (docs/API.md)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("feed takes no arguments, got %q", pos[0])
	}
	if *limit < 0 {
		return usageErr("--limit %d: want 0 (no limit) or more", *limit)
	}
	c, err := nf.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	st, err := c.Status(ctx, nf.timeout)
	if err != nil {
		return err
	}
	start, err := node.ParseCursor(*cursor, st.Member)
	if err != nil {
		return fmt.Errorf("--cursor: %w", err)
	}
	if start > st.FeedEnd {
		return fmt.Errorf("--cursor %s is past the end of this node's feed (%d records): a cursor is only valid on the node that gave it, and a node restored from a backup forgets what it stored after", node.FormatCursor(st.Member, start), st.FeedEnd)
	}
	last, count := node.FormatCursor(st.Member, start), 0
	if !*asJSON {
		fmt.Fprintf(e.stdout, "%-12s %-10s %-14s %s\n", "CURSOR", "OP", "LOG/INDEX", "SIGNAL AND DETAILS")
	}
	enc := json.NewEncoder(e.stdout)
	err = c.Feed(ctx, start, *follow, func(ev *pb.FeedEvent) error {
		rec := node.NewFeedRecordJSON(st.Member, ev)
		if *asJSON {
			if err := enc.Encode(rec); err != nil {
				return err
			}
		} else {
			printFeedRow(e.stdout, rec)
		}
		last, count = rec.Cursor, count+1
		if *limit > 0 && count >= *limit {
			return errFeedLimit
		}
		return nil
	})
	if errors.Is(err, errFeedLimit) || (*follow && ctx.Err() != nil) {
		err = nil
	}
	fmt.Fprintf(e.stderr, "%d records; resume with --cursor %s\n", count, last)
	return err
}

// printFeedRow prints one feed record as a table row.
func printFeedRow(w io.Writer, r node.FeedRecordJSON) {
	var b strings.Builder
	if r.Signal != nil {
		fmt.Fprintf(&b, "%s %s", r.Signal.Type, r.Signal.Value)
	}
	add := func(format string, a ...any) {
		if b.Len() > 0 {
			b.WriteString("  ")
		}
		fmt.Fprintf(&b, format, a...)
	}
	switch r.Op {
	case "add":
		if len(r.Labels) > 0 {
			add("%s", strings.Join(r.Labels, " "))
		}
		if r.ContentID != "" {
			add("content %s", r.ContentID)
		}
		if r.Expires != "" {
			add("expires %s", r.Expires)
		}
	case "revoke":
		if r.RevokesIndex != nil {
			add("of entry %d", *r.RevokesIndex)
		}
		add("%s", r.Reason)
	case "opinion":
		add("%s", r.Stance)
	case "propose":
		add("epoch %d: %s  proposal %.16s…", *r.Epoch, r.Changes, r.Proposal)
	case "endorse":
		add("epoch %d  proposal %.16s…", *r.Epoch, r.Proposal)
	}
	if r.Signal != nil {
		who := strings.Join(r.ListedBy, ",")
		if who == "" {
			who = "nobody"
		}
		add("listed by %s", who)
	}
	if r.Cutoff != "" {
		add("CUTOFF %s", r.Cutoff)
	}
	if r.Rejected != "" {
		add("REJECTED: %s", r.Rejected)
	}
	fmt.Fprintf(w, "%-12s %-10s %-14s %s\n", r.Cursor, r.Op, fmt.Sprintf("%s/%d", r.Member, r.Index), b.String())
}
