package node

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// httpDo sends one request to n's HTTP endpoint and returns the status code and body.
func httpDo(t *testing.T, n *Node, method, path, body, token string) (int, http.Header, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(testCtx(t), method, "http://"+n.HTTPAddr()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func TestHTTP(t *testing.T) {
	n := startTestNode(t, "alpha", nil)
	c := dialMember(t, n)
	ctx := testCtx(t)
	pdq, md5 := fixture.PDQ(1), fixture.MD5(1)
	u := urlSignal(t, "https://example.com/a")
	q := uint32(88)
	submit(t, ctx, c,
		&pb.Entry{Op: &pb.Entry_Add{Add: &pb.Add{Signal: pdq.Proto(), Labels: []string{"behaviour:threat-incitement"}, ContentId: "c-1", Quality: &q}}},
		addEntry(md5),
		addEntry(u, "incident:x1"),
		fixture.Opinion(0, md5, pb.Stance_STANCE_AGREE),
	)
	near := flipBits(pdq, 3)

	// oneMatch checks a /v1/match answer with one match of want at distance dist.
	oneMatch := func(want consortium.Signal, dist int, labels string) func(t *testing.T, body string) {
		return func(t *testing.T, body string) {
			var got matchesJSON
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatal(err)
			}
			if len(got.Matches) != 1 {
				t.Fatalf("got %d matches, want 1: %s", len(got.Matches), body)
			}
			m := got.Matches[0]
			if m.Signal.Type != want.Type.String() || m.Signal.Value != want.Text() || m.Distance != dist {
				t.Errorf("got %s %s at %d, want %s at %d", m.Signal.Type, m.Signal.Value, m.Distance, want, dist)
			}
			if len(m.Listings) != 1 || m.Listings[0].Member != "alpha" || strings.Join(m.Listings[0].Labels, ",") != labels {
				t.Fatalf("got listings %+v, want alpha's with labels %q", m.Listings, labels)
			}
			if _, err := time.Parse(time.RFC3339, m.Listings[0].Time); err != nil {
				t.Errorf("listing time: %v", err)
			}
		}
	}
	noMatch := func(t *testing.T, body string) {
		if strings.TrimSpace(body) != `{"matches":[],"hidden_count":0}` {
			t.Errorf(`got %s, want {"matches":[],"hidden_count":0}`, body)
		}
	}
	contains := func(subs ...string) func(t *testing.T, body string) {
		return func(t *testing.T, body string) {
			for _, s := range subs {
				if !strings.Contains(body, s) {
					t.Errorf("got %s, want it to contain %q", body, s)
				}
			}
		}
	}
	tests := []struct {
		name, method, path, body string
		code                     int
		check                    func(t *testing.T, body string)
	}{
		{"healthz", "GET", "/healthz", "", 200, contains(`"status":"ok"`, `"member":"alpha"`, `"signals":3`, `"peers":0`)},
		{"match post exact", "POST", "/v1/match", `{"type":"pdq","value":"` + pdq.Text() + `"}`, 200, oneMatch(pdq, 0, "behaviour:threat-incitement")},
		{"match post near", "POST", "/v1/match", `{"type":"pdq","value":"` + strings.ToUpper(near.Text()) + `","radius":31,"include_hidden":false}`, 200, oneMatch(pdq, 3, "behaviour:threat-incitement")},
		{"match post details", "POST", "/v1/match", `{"type":"pdq","value":"` + pdq.Text() + `"}`, 200, contains(`"content_id":"c-1"`, `"quality":88`, `"index":0`)},
		{"match post md5 opinion", "POST", "/v1/match", `{"type":"md5","value":"` + md5.Text() + `"}`, 200, contains(`"opinions":[{"author":"alpha","index":3`, `"stance":"agree"`)},
		{"match get near", "GET", "/v1/match?type=pdq&value=" + near.Text() + "&radius=3", "", 200, oneMatch(pdq, 3, "behaviour:threat-incitement")},
		{"match get small radius", "GET", "/v1/match?type=pdq&value=" + near.Text() + "&radius=2", "", 200, noMatch},
		{"match get url", "GET", "/v1/match?type=url&value=" + url.QueryEscape("HTTPS://EXAMPLE.com/a"), "", 200, oneMatch(u, 0, "incident:x1")},
		{"match get url hashed", "GET", "/v1/match?type=url&value=" + u.Text(), "", 200, oneMatch(u, 0, "incident:x1")},
		{"match miss", "GET", "/v1/match?type=md5&value=" + fixture.MD5(2).Text(), "", 200, noMatch},
		{"lookup found", "GET", "/v1/lookup?type=md5&value=" + md5.Text(), "", 200, contains(`"found":true`, `"member":"alpha"`)},
		{"lookup not found", "GET", "/v1/lookup?type=md5&value=" + fixture.MD5(2).Text(), "", 200, contains(`"found":false`, fixture.MD5(2).Text())},
		{"status", "GET", "/v1/status", "", 200, contains(`"member":"alpha"`, `"state_digest":`)},
		{"bad hash", "POST", "/v1/match", `{"type":"pdq","value":"abc"}`, 400, contains(`"error":`, `has 3 characters, want 64 hex digits`)},
		{"bad hex digit", "GET", "/v1/lookup?type=md5&value=" + strings.Repeat("z", 32), "", 400, contains(`want a hex digit`)},
		{"unknown type", "GET", "/v1/match?type=tmk&value=00", "", 400, contains(`unknown signal type`)},
		{"missing value", "GET", "/v1/match?type=md5", "", 400, contains(`value missing`)},
		{"radius out of range", "POST", "/v1/match", `{"type":"pdq","value":"` + pdq.Text() + `","radius":64}`, 400, contains(`radius 64 is out of range`)},
		{"radius not a number", "GET", "/v1/match?type=pdq&value=" + pdq.Text() + "&radius=far", "", 400, contains(`radius \"far\" is not an integer`)},
		{"low quality", "POST", "/v1/match", `{"type":"pdq","value":"` + pdq.Text() + `","quality":10}`, 400, contains(`below the quality gate 50`)},
		{"unknown field", "POST", "/v1/match", `{"type":"pdq","value":"` + pdq.Text() + `","radus":3}`, 400, contains(`unknown field \"radus\"`)},
		{"unknown parameter", "GET", "/v1/match?type=pdq&value=" + pdq.Text() + "&radus=3", "", 400, contains(`unknown parameter \"radus\"`)},
		{"not json", "POST", "/v1/match", `type=pdq`, 400, contains(`request body`)},
		{"too large", "POST", "/v1/match", `{"type":"pdq","value":"` + strings.Repeat(" ", 2<<20) + `"}`, 413, contains(`request body over`)},
		{"wrong method", "DELETE", "/v1/match", "", 405, contains(`method DELETE not allowed`)},
		{"wrong method lookup", "POST", "/v1/lookup", `{}`, 405, contains(`allowed: GET`)},
		{"unknown path", "GET", "/v2/match", "", 404, contains(`no endpoint /v2/match`)},
		{"metrics", "GET", "/metrics", "", 200, contains(`hashfed_match_seconds_bucket{type="pdq"`, `hashfed_match_queries_total{outcome="hit",type="pdq"}`, `hashfed_signals_listed 3`)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, hdr, body := httpDo(t, n, tc.method, tc.path, tc.body, "")
			if code != tc.code {
				t.Fatalf("got %d, want %d: %s", code, tc.code, body)
			}
			if tc.code != 200 && !strings.HasPrefix(body, `{"error":"`) {
				t.Errorf(`got body %s, want {"error": ...}`, body)
			}
			if tc.code == 405 && hdr.Get("Allow") == "" {
				t.Errorf("405 without an Allow header")
			}
			if tc.check != nil {
				tc.check(t, body)
			}
		})
	}
}

func TestHTTPToken(t *testing.T) {
	const token = "s3cret"
	n := startTestNode(t, "alpha", func(c *Config) { c.MemberToken = token })
	md5 := fixture.MD5(1).Text()
	tests := []struct {
		name, path, token string
		code              int
	}{
		{"healthz needs none", "/healthz", "", 200},
		{"match without", "/v1/match?type=md5&value=" + md5, "", 401},
		{"match wrong", "/v1/match?type=md5&value=" + md5, "nope", 401},
		{"match right", "/v1/match?type=md5&value=" + md5, token, 200},
		{"lookup without", "/v1/lookup?type=md5&value=" + md5, "", 401},
		{"status without", "/v1/status", "", 401},
		{"feed without", "/v1/feed", "", 401},
		{"feed right", "/v1/feed", token, 200},
		{"metrics without", "/metrics", "", 401},
		{"metrics right", "/metrics", token, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, hdr, body := httpDo(t, n, "GET", tc.path, "", tc.token)
			if code != tc.code {
				t.Fatalf("got %d, want %d: %s", code, tc.code, body)
			}
			if code == 401 && (hdr.Get("WWW-Authenticate") == "" || !strings.Contains(body, "bearer token")) {
				t.Errorf("401: got header %q body %s, want WWW-Authenticate and a message about the bearer token", hdr.Get("WWW-Authenticate"), body)
			}
		})
	}
}

// TestHTTPHiddenAndUnlisted checks that a match answer says how many matches the dispute policy
// hid and why, that a dispute of a signal nobody lists is refused, and that a lookup of a signal
// nobody lists answers found false.
func TestHTTPHiddenAndUnlisted(t *testing.T) {
	n := startTestNode(t, "alpha", func(c *Config) { c.Store.DisputeThreshold = 1 })
	c := dialMember(t, n)
	ctx := testCtx(t)
	disputed, revoked, never := fixture.MD5(50), fixture.MD5(51), fixture.MD5(52)
	submit(t, ctx, c, addEntry(disputed), addEntry(revoked))
	submit(t, ctx, c, fixture.Opinion(0, disputed, pb.Stance_STANCE_FALSE_POSITIVE), fixture.Opinion(0, revoked, pb.Stance_STANCE_AGREE))
	submit(t, ctx, c, fixture.RevokeSignal(0, revoked))

	resp, err := c.Submit(ctx, &pb.SubmitRequest{Entries: []*pb.Entry{fixture.Opinion(0, never, pb.Stance_STANCE_FALSE_POSITIVE)}})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Results[0].Error; !strings.Contains(got, "no member lists md5 "+never.Text()+" here") {
		t.Errorf("dispute of an unlisted signal: got %q, want it refused saying nobody lists it", got)
	}

	_, _, body := httpDo(t, n, "GET", "/v1/match?type=md5&value="+disputed.Text(), "", "")
	var got matchesJSON
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Matches) != 0 || got.HiddenCount != 1 || len(got.HiddenReasons) != 1 || !strings.Contains(got.HiddenReasons[0], "1 members call it a false positive") {
		t.Errorf("disputed: got %s, want no match, hidden_count 1 with the reason", body)
	}
	_, _, body = httpDo(t, n, "GET", "/v1/match?type=md5&include_hidden=true&value="+disputed.Text(), "", "")
	got = matchesJSON{}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Matches) != 1 || got.Matches[0].Hidden == "" || got.HiddenCount != 0 {
		t.Errorf("include_hidden: got %s, want the match with its reason and hidden_count 0", body)
	}
	mr, err := c.Match(ctx, &pb.MatchRequest{Signal: disputed.Proto()})
	if err != nil {
		t.Fatal(err)
	}
	if len(mr.Matches) != 0 || mr.HiddenCount != 1 || len(mr.HiddenReasons) != 1 {
		t.Errorf("gRPC: got %d matches, %d hidden %v; want 0, 1 with its reason", len(mr.Matches), mr.HiddenCount, mr.HiddenReasons)
	}

	for _, sig := range []consortium.Signal{never, revoked} {
		_, _, body := httpDo(t, n, "GET", "/v1/lookup?type=md5&value="+sig.Text(), "", "")
		var l lookupJSON
		if err := json.Unmarshal([]byte(body), &l); err != nil {
			t.Fatal(err)
		}
		if l.Found || len(l.Result.Listings) != 0 || l.Result.Signal.Value != sig.Text() {
			t.Errorf("lookup %s: got %s, want found false, no listings", sig, body)
		}
	}
}

// TestHTTPStatusJSON checks that /v1/status writes integers as JSON numbers, enums by name, times
// in RFC 3339, and every field even when zero.
func TestHTTPStatusJSON(t *testing.T) {
	n := startTestNode(t, "alpha", nil)
	submit(t, testCtx(t), dialMember(t, n), addEntry(fixture.MD5(60)))
	_, _, body := httpDo(t, n, "GET", "/v1/status", "", "")
	var st map[string]any
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"roster_epoch", "signals", "listings", "rejected_entries", "feed_end", "uptime_ms", "gossip_nodes"} {
		if _, ok := st[f].(float64); !ok {
			t.Errorf("%s: got %#v, want a JSON number", f, st[f])
		}
	}
	if st["signals"] != float64(1) || st["feed_end"] != float64(1) || st["rejected_entries"] != float64(0) {
		t.Errorf("got signals %v feed_end %v rejected_entries %v, want 1, 1, 0", st["signals"], st["feed_end"], st["rejected_entries"])
	}
	roster, _ := st["roster"].([]any)
	if len(roster) == 0 {
		t.Fatalf("got roster %#v, want the members", st["roster"])
	}
	m := roster[0].(map[string]any)
	if m["role"] != "member" || m["id"] != "alpha" {
		t.Errorf("got roster member %v, want alpha, role member", m)
	}
	if eq, ok := st["equivocations"].([]any); !ok || len(eq) != 0 {
		t.Errorf("got equivocations %#v, want []", st["equivocations"])
	}
}
