package node

// GET /v1/feed: the gRPC Feed over HTTP, as JSON Lines (one page per request, long-poll with wait)
// or as server-sent events (Accept: text/event-stream). docs/API.md ("GET /v1/feed") is the
// contract; h3's pytx exchange reads it.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The bounds of the HTTP feed.
const (
	// feedDefaultLimit and feedMaxLimit: records in one JSON Lines answer when limit is absent,
	// and at most (a larger limit is lowered to it).
	feedDefaultLimit = 1000
	feedMaxLimit     = 10_000
	// feedMaxWait is the longest a request is held waiting for a new record (a larger wait is
	// lowered to it).
	feedMaxWait = 60 * time.Second
	// feedKeepAlive is how often an idle event stream gets a comment line, so that proxies keep
	// it open and a vanished reader is noticed.
	feedKeepAlive = 15 * time.Second
)

// feedWriteTimeout is how long a reader may take to accept one page (JSON Lines: the whole
// answer) before the node drops the connection: a reader that stops reading holds no more than one
// page of memory and one stream slot, and not for long. A variable for the tests.
var feedWriteTimeout = 30 * time.Second

// feedParams are the parsed parameters of a feed request.
type feedParams struct {
	pos      uint64
	limit    int
	limitSet bool
	wait     time.Duration
	waitSet  bool
}

// parseFeedParams parses and checks cursor, limit and wait. An event stream without a cursor
// resumes from the Last-Event-ID header, as browsers' EventSource sends it on reconnection.
func (n *Node) parseFeedParams(r *http.Request, sse bool) (feedParams, error) {
	var p feedParams
	if err := onlyParams(r, "cursor", "limit", "wait"); err != nil {
		return p, err
	}
	q := r.URL.Query()
	cur := q.Get("cursor")
	if cur == "" && sse {
		cur = r.Header.Get("Last-Event-ID")
	}
	var err error
	if p.pos, err = ParseCursor(cur, n.id); err != nil {
		return p, err
	}
	if err := n.checkCursor(p.pos); err != nil {
		return p, err
	}
	p.limit = feedDefaultLimit
	if s := q.Get("limit"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			return p, fmt.Errorf("%w: limit %q: want a whole number of records, 1 or more (at most %d are sent at once)", errBadRequest, clip(s), feedMaxLimit)
		}
		p.limit, p.limitSet = v, true
	}
	if s := q.Get("wait"); s != "" {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return p, fmt.Errorf("%w: wait %q: want seconds, 0 or more (at most %d)", errBadRequest, clip(s), int(feedMaxWait.Seconds()))
		}
		p.wait, p.waitSet = min(time.Duration(v*float64(time.Second)), feedMaxWait), true
	}
	return p, nil
}

// wantsSSE reports whether the request asks for server-sent events.
func wantsSSE(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		for _, part := range strings.Split(v, ",") {
			mt, _, _ := strings.Cut(part, ";")
			if strings.EqualFold(strings.TrimSpace(mt), "text/event-stream") {
				return true
			}
		}
	}
	return false
}

func (n *Node) handleFeed(w http.ResponseWriter, r *http.Request) {
	sse := wantsSSE(r)
	p, err := n.parseFeedParams(r, sse)
	if err != nil {
		writeErr(w, err)
		return
	}
	// Every answer from here on says where to resume, errors included.
	w.Header().Set("Hashfed-Cursor", FormatCursor(n.id, p.pos))
	ctx, end, err := n.beginStream(r.Context())
	if err != nil {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, fmt.Sprintf("too many concurrent feed and stream requests (limit %d); retry later", cap(n.memberStreams)))
		return
	}
	defer end()
	if sse {
		n.serveFeedEvents(ctx, w, p)
		return
	}
	n.serveFeedLines(ctx, w, p)
}

// serveFeedLines answers one page of JSON Lines: up to limit records from the cursor, waiting up
// to wait for the first one when there is none yet.
func (n *Node) serveFeedLines(ctx context.Context, w http.ResponseWriter, p feedParams) {
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Now().Add(p.wait + feedWriteTimeout))
	limit := min(p.limit, feedMaxLimit)
	evs, next, err := n.store.Feed(p.pos, limit)
	if err == nil && len(evs) == 0 && p.wait > 0 {
		wctx, cancel := context.WithTimeout(ctx, p.wait)
		werr := n.store.WaitFeed(wctx, p.pos)
		cancel()
		switch {
		case werr == nil:
			evs, next, err = n.store.Feed(p.pos, limit)
		case n.ctx.Err() != nil:
			writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("node shutting down; resume the feed from cursor %s", FormatCursor(n.id, p.pos)))
			return
		case ctx.Err() != nil:
			return // the client left
		}
	}
	if err != nil {
		writeErr(w, fmt.Errorf("read feed from %d: %w", p.pos, err))
		return
	}
	if len(evs) == 0 {
		next = p.pos
	}
	h := w.Header()
	h.Set("Content-Type", "application/x-ndjson")
	h.Set("Cache-Control", "no-store")
	h.Set("Hashfed-Cursor", FormatCursor(n.id, next))
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 32<<10)
	var buf []byte
	for _, ev := range n.feedEvents(evs) {
		rec := NewFeedRecordJSON(n.id, ev)
		buf = append(rec.AppendJSON(buf[:0]), '\n')
		if _, err := bw.Write(buf); err != nil {
			return
		}
	}
	bw.Flush()
}

// serveFeedEvents streams server-sent events from the cursor: every record, then new ones as they
// are stored. It ends after limit records when limit is given, after wait without a new record
// when wait is given, when the client leaves, or when the node shuts down.
func (n *Node) serveFeedEvents(ctx context.Context, w http.ResponseWriter, p feedParams) {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	h.Set("Hashfed-Cursor", FormatCursor(n.id, p.pos))
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 32<<10)
	// flush sends what is buffered, giving the reader feedWriteTimeout to take it.
	flush := func() bool {
		rc.SetWriteDeadline(time.Now().Add(feedWriteTimeout))
		return bw.Flush() == nil && rc.Flush() == nil
	}
	if !flush() {
		return
	}
	pos, sent, idle := p.pos, 0, time.Now()
	for {
		if p.limitSet && sent >= p.limit {
			return
		}
		page := feedPage
		if p.limitSet {
			page = min(page, p.limit-sent)
		}
		evs, next, err := n.store.Feed(pos, page)
		if err != nil {
			b, _ := json.Marshal(map[string]string{"error": fmt.Sprintf("read feed from %s: %v", FormatCursor(n.id, pos), err)})
			fmt.Fprintf(bw, "event: error\ndata: %s\n\n", b)
			flush()
			return
		}
		if len(evs) == 0 {
			step := feedKeepAlive
			if p.waitSet {
				left := p.wait - time.Since(idle)
				if left <= 0 {
					return
				}
				step = min(step, left)
			}
			wctx, cancel := context.WithTimeout(ctx, step)
			werr := n.store.WaitFeed(wctx, pos)
			cancel()
			if werr == nil {
				continue
			}
			if ctx.Err() != nil || !errors.Is(werr, context.DeadlineExceeded) {
				return // the client left or the node shuts down: the client resumes from the last id
			}
			if !p.waitSet || time.Since(idle) < p.wait {
				bw.WriteString(": keep-alive\n\n")
				if !flush() {
					return
				}
			}
			continue
		}
		var buf []byte
		for _, ev := range n.feedEvents(evs) {
			rec := NewFeedRecordJSON(n.id, ev)
			buf = append(buf[:0], "id: "...)
			buf = append(buf, rec.Cursor...)
			buf = append(buf, "\ndata: "...)
			buf = append(rec.AppendJSON(buf), "\n\n"...)
			bw.Write(buf)
			if bw.Buffered() > 16<<10 && !flush() {
				return
			}
		}
		if !flush() {
			return
		}
		sent += len(evs)
		pos, idle = next, time.Now()
	}
}
