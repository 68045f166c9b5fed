package node

import (
	"bufio"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// feedLines parses a JSON Lines feed answer.
func feedLines(t *testing.T, body string) []FeedRecordJSON {
	t.Helper()
	var out []FeedRecordJSON
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r FeedRecordJSON
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("feed line %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

// getFeed fetches one page of n's HTTP feed and returns its records and the Hashfed-Cursor header.
func getFeed(t *testing.T, n *Node, query string) ([]FeedRecordJSON, string) {
	t.Helper()
	code, hdr, body := httpDo(t, n, "GET", "/v1/feed?"+query, "", "")
	if code != 200 {
		t.Fatalf("GET /v1/feed?%s: got %d %s, want 200", query, code, body)
	}
	if ct := hdr.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("got Content-Type %q, want application/x-ndjson", ct)
	}
	return feedLines(t, body), hdr.Get("Hashfed-Cursor")
}

// seqs returns the feed positions of records.
func seqs(rs []FeedRecordJSON) []uint64 {
	out := make([]uint64, len(rs))
	for i, r := range rs {
		out[i] = r.Seq
	}
	return out
}

// sha256Signal returns a sha256 signal derived from n.
func sha256Signal(n int) consortium.Signal {
	sum := sha256.Sum256(fmt.Appendf(nil, "sha256 %d", n))
	s, _ := consortium.SignalFromBytes(consortium.SHA256, sum[:])
	return s
}

// feedNode starts a node whose feed has adds of every type, revokes by index and by signal, and
// opinions (seven records).
func feedNode(t *testing.T) (*Node, []consortium.Signal) {
	t.Helper()
	n := startTestNode(t, "alpha", nil)
	c := dialMember(t, n)
	ctx := testCtx(t)
	u := urlSignal(t, "https://example.com/feed")
	sigs := []consortium.Signal{fixture.PDQ(40), fixture.MD5(40), sha256Signal(40), u}
	submit(t, ctx, c, addEntry(sigs[0], "behaviour:threat-incitement"), addEntry(sigs[1]), addEntry(sigs[2]), addEntry(sigs[3], "incident:x1"))
	submit(t, ctx, c, fixture.RevokeIndex(0, 1), fixture.RevokeSignal(0, sigs[2]), fixture.Opinion(0, sigs[0], pb.Stance_STANCE_AGREE))
	return n, sigs
}

func TestHTTPFeedRecords(t *testing.T) {
	n, sigs := feedNode(t)
	all, cur := getFeed(t, n, "")
	if got, want := seqs(all), []uint64{0, 1, 2, 3, 4, 5, 6}; !slices.Equal(got, want) {
		t.Fatalf("got seqs %v, want %v", got, want)
	}
	if cur != "alpha.7" {
		t.Errorf("got Hashfed-Cursor %q, want alpha.7", cur)
	}
	type want struct {
		op, sig, listedBy string
	}
	wants := []want{
		{"add", sigs[0].Text(), "alpha"}, {"add", sigs[1].Text(), ""}, {"add", sigs[2].Text(), ""}, {"add", sigs[3].Text(), "alpha"},
		{"revoke", sigs[1].Text(), ""}, {"revoke", sigs[2].Text(), ""}, {"opinion", sigs[0].Text(), "alpha"},
	}
	for i, w := range wants {
		r := all[i]
		if r.Signal == nil || r.Op != w.op || r.Signal.Value != w.sig || strings.Join(r.ListedBy, ",") != w.listedBy || r.ListedBy == nil {
			t.Errorf("record %d: got %s %+v listed by %v, want %s %s listed by %q", i, r.Op, r.Signal, r.ListedBy, w.op, w.sig, w.listedBy)
		}
		if r.Cursor != fmt.Sprintf("alpha.%d", i+1) || r.Member != "alpha" || r.Index != uint64(i) {
			t.Errorf("record %d: got cursor %s member %s index %d, want alpha.%d alpha %d", i, r.Cursor, r.Member, r.Index, i+1, i)
		}
		if _, err := time.Parse(time.RFC3339, r.Time); err != nil {
			t.Errorf("record %d: time %q: %v", i, r.Time, err)
		}
	}
	if r := all[0]; r.Signal.Type != "pdq" || strings.Join(r.Labels, ",") != "behaviour:threat-incitement" {
		t.Errorf("add: got %s labels %v, want pdq with its label", r.Signal.Type, r.Labels)
	}
	if r := all[3]; r.Signal.Type != "url" || !strings.HasPrefix(r.Signal.Value, "sha256:") {
		t.Errorf("url add: got %+v, want type url, value sha256:<hex>", r.Signal)
	}
	if r := all[4]; r.RevokesIndex == nil || *r.RevokesIndex != 1 || r.Reason != "order_overturned" {
		t.Errorf("revoke by index: got revokes_index %v reason %q, want 1, order_overturned", *r.RevokesIndex, r.Reason)
	}
	if r := all[6]; r.Stance != "agree" {
		t.Errorf("opinion: got stance %q, want agree", r.Stance)
	}

	// The gRPC Feed gives the same records.
	stream, err := dialMember(t, n).Feed(testCtx(t), &pb.FeedRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for i, ev := range feedAll(t, stream) {
		a, _ := json.Marshal(NewFeedRecordJSON("alpha", ev))
		b, _ := json.Marshal(all[i])
		if string(a) != string(b) {
			t.Errorf("record %d: gRPC gives %s, HTTP %s", i, a, b)
		}
	}
}

// TestHTTPFeedResume checks that resuming from every cursor, in pages of every size, gives
// exactly the records after it.
func TestHTTPFeedResume(t *testing.T) {
	n, _ := feedNode(t)
	all, _ := getFeed(t, n, "")
	cursors := []string{""}
	for _, r := range all {
		cursors = append(cursors, r.Cursor)
	}
	for i, c := range cursors {
		for _, limit := range []int{1, 2, 3, 100} {
			var got []FeedRecordJSON
			cur := c
			for range 20 {
				page, next := getFeed(t, n, fmt.Sprintf("cursor=%s&limit=%d", url.QueryEscape(cur), limit))
				if len(page) > limit {
					t.Fatalf("got %d records, want at most limit %d", len(page), limit)
				}
				if len(page) > 0 && page[len(page)-1].Cursor != next {
					t.Errorf("Hashfed-Cursor %s, want the last record's %s", next, page[len(page)-1].Cursor)
				}
				got = append(got, page...)
				if len(page) == 0 {
					if want := cursors[len(cursors)-1]; next != want {
						t.Errorf("at the end: got Hashfed-Cursor %q, want %q", next, want)
					}
					break
				}
				cur = next
			}
			if g, w := seqs(got), seqs(all[i:]); !slices.Equal(g, w) {
				t.Errorf("from cursor %q in pages of %d: got %v, want %v", c, limit, g, w)
			}
		}
	}
	// The gRPC feed position is accepted as a cursor too.
	if got, _ := getFeed(t, n, "cursor=5"); !slices.Equal(seqs(got), []uint64{5, 6}) {
		t.Errorf("cursor=5: got %v, want [5 6]", seqs(got))
	}
}

func TestHTTPFeedBadRequest(t *testing.T) {
	n, _ := feedNode(t)
	tests := []struct {
		query, want string
	}{
		{"cursor=beta.3", `given by node \"beta\", and this is node \"alpha\"`},
		{"cursor=alpha.x", `want the cursor of a feed record (alpha.12)`},
		{"cursor=-1", `bad cursor \"-1\"`},
		{"cursor=alpha.8", `alpha.8: past the end of this node's feed (7 records)`},
		{"limit=0", `limit \"0\": want a whole number`},
		{"limit=ten", `limit \"ten\"`},
		{"wait=-1", `wait \"-1\": want seconds`},
		{"wait=NaN", `wait \"NaN\"`},
		{"curser=alpha.1", `unknown parameter \"curser\"`},
		{"cursor=alpha.1&cursor=alpha.2", `parameter \"cursor\" given 2 times`},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			code, _, body := httpDo(t, n, "GET", "/v1/feed?"+tc.query, "", "")
			if code != 400 || !strings.Contains(body, tc.want) {
				t.Errorf("got %d %s, want 400 with %q", code, body, tc.want)
			}
		})
	}
	if code, _, body := httpDo(t, n, "POST", "/v1/feed", "{}", ""); code != 405 {
		t.Errorf("POST: got %d %s, want 405", code, body)
	}
}

func TestHTTPFeedLongPoll(t *testing.T) {
	n, _ := feedNode(t)
	t.Run("nothing new", func(t *testing.T) {
		start := time.Now()
		got, cur := getFeed(t, n, "cursor=alpha.7&wait=0.3")
		if len(got) != 0 || cur != "alpha.7" {
			t.Errorf("got %d records, cursor %q; want none, alpha.7", len(got), cur)
		}
		if d := time.Since(start); d < 300*time.Millisecond {
			t.Errorf("answered after %v, want it held for the wait (300ms)", d)
		}
	})
	t.Run("node closes", func(t *testing.T) {
		n, _ := feedNode(t)
		go func() {
			// Close once the long-poll holds its slot (or after 5 s: the test then fails on timing).
			for deadline := time.Now().Add(5 * time.Second); len(n.memberStreams) == 0 && time.Now().Before(deadline); {
				time.Sleep(5 * time.Millisecond)
			}
			n.Close()
		}()
		start := time.Now()
		code, hdr, body := httpDo(t, n, "GET", "/v1/feed?cursor=alpha.7&wait=30", "", "")
		if code != 503 || hdr.Get("Hashfed-Cursor") != "alpha.7" || !strings.Contains(body, "resume the feed from cursor alpha.7") {
			t.Errorf("got %d, Hashfed-Cursor %q, %s; want 503 saying to resume from alpha.7", code, hdr.Get("Hashfed-Cursor"), body)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("answered %v after the request, want promptly when the node closes", d)
		}
	})
	t.Run("new record", func(t *testing.T) {
		c := dialMember(t, n)
		go func() {
			time.Sleep(200 * time.Millisecond)
			c.Submit(t.Context(), &pb.SubmitRequest{Entries: []*pb.Entry{addEntry(fixture.MD5(41))}})
		}()
		start := time.Now()
		got, cur := getFeed(t, n, "cursor=alpha.7&wait=20")
		if len(got) != 1 || got[0].Seq != 7 || cur != "alpha.8" {
			t.Fatalf("got %v cursor %q, want the record at 7 and alpha.8", seqs(got), cur)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("answered after %v, want as soon as the record was stored", d)
		}
	})
}

// sseEvent is one server-sent event.
type sseEvent struct{ id, event, data string }

// readSSE reads events from r until it ends or max events were read.
func readSSE(t *testing.T, r io.Reader, max int) []sseEvent {
	t.Helper()
	var out []sseEvent
	var cur sseEvent
	sc := bufio.NewScanner(r)
	for len(out) < max && sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur != (sseEvent{}) {
				out = append(out, cur)
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id: "):
			cur.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			cur.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			cur.data += line[6:]
		default:
			t.Errorf("unexpected event stream line %q", line)
		}
	}
	return out
}

func TestHTTPFeedSSE(t *testing.T) {
	n, _ := feedNode(t)
	open := func(t *testing.T, query, lastID string) *http.Response {
		t.Helper()
		req, err := http.NewRequestWithContext(testCtx(t), "GET", "http://"+n.HTTPAddr()+"/v1/feed?"+query, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Accept", "text/event-stream")
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("got %d %s, want 200 text/event-stream", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		return resp
	}
	t.Run("limit", func(t *testing.T) {
		resp := open(t, "cursor=alpha.2&limit=3", "")
		if got := resp.Header.Get("Hashfed-Cursor"); got != "alpha.2" {
			t.Errorf("got Hashfed-Cursor %q, want alpha.2", got)
		}
		evs := readSSE(t, resp.Body, 100) // ends after the limit
		if len(evs) != 3 {
			t.Fatalf("got %d events, want 3", len(evs))
		}
		for i, ev := range evs {
			var r FeedRecordJSON
			if err := json.Unmarshal([]byte(ev.data), &r); err != nil {
				t.Fatal(err)
			}
			if r.Seq != uint64(2+i) || ev.id != r.Cursor {
				t.Errorf("event %d: got seq %d id %q cursor %q, want seq %d, id = cursor", i, r.Seq, ev.id, r.Cursor, 2+i)
			}
		}
	})
	t.Run("Last-Event-ID", func(t *testing.T) {
		evs := readSSE(t, open(t, "wait=0", "alpha.5").Body, 100)
		if len(evs) != 2 || evs[0].id != "alpha.6" || evs[1].id != "alpha.7" {
			t.Errorf("got %+v, want the events with ids alpha.6 and alpha.7", evs)
		}
	})
	t.Run("follow", func(t *testing.T) {
		resp := open(t, "cursor=alpha.7", "")
		c := dialMember(t, n)
		go func() {
			time.Sleep(100 * time.Millisecond)
			c.Submit(t.Context(), &pb.SubmitRequest{Entries: []*pb.Entry{addEntry(fixture.MD5(42))}})
		}()
		evs := readSSE(t, resp.Body, 1)
		if len(evs) != 1 || evs[0].id != "alpha.8" || !strings.Contains(evs[0].data, fixture.MD5(42).Text()) {
			t.Errorf("got %+v, want the new add with id alpha.8", evs)
		}
	})
	t.Run("bad cursor", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(testCtx(t), "GET", "http://"+n.HTTPAddr()+"/v1/feed", nil)
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Last-Event-ID", "beta.1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 400 || !strings.Contains(string(b), "given by node") {
			t.Errorf("got %d %s, want 400 naming the node", resp.StatusCode, b)
		}
	})
}

// TestHTTPFeedSlowReader checks that a reader that stops reading an event stream is dropped once
// it has not taken a page for feedWriteTimeout: it does not keep its stream slot, nor the page.
func TestHTTPFeedSlowReader(t *testing.T) {
	old := feedWriteTimeout
	feedWriteTimeout = 300 * time.Millisecond
	t.Cleanup(func() { feedWriteTimeout = old })
	n := startTestNode(t, "alpha", nil)
	c := dialMember(t, n)
	ctx := testCtx(t)
	// More records than the loopback socket buffers hold: 3,000 of about 4 KB.
	const total = 3000
	note := strings.Repeat("n", consortium.MaxTextSize-10)
	for i := 0; i < total; i += 500 {
		es := make([]*pb.Entry, 500)
		for j := range es {
			es[j] = addEntry(fixture.MD5(100_000+i+j), "behaviour:threat-incitement")
			es[j].GetAdd().Note = note
		}
		submit(t, ctx, c, es...)
	}
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+n.HTTPAddr()+"/v1/feed", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// Read nothing: the node's writes block, then time out.
	waitFor(t, 10*time.Second, "the stalled stream to be dropped", func() bool { return len(n.memberStreams) == 0 })
	got, _ := io.ReadAll(resp.Body)
	if evs := strings.Count(string(got), "\nid: ") + 1; evs >= total {
		t.Errorf("a reader that stopped reading got all %d records, want the stream cut", evs)
	}
}
