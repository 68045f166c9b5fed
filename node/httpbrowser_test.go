package node

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashfed/hashfed/internal/fixture"
)

// TestHTTPRefusesBrowserAttacks: the JSON API of a node without a token (the default, on
// loopback) is reachable by any web page the operator opens in a browser on the node's host. A
// page of another site must not make the node sign an entry (an opinion in the member's permanent
// log), change a local bank, or, by rebinding its own name to 127.0.0.1, read the shared set.
// Programs (curl, pytx) send no Origin or Sec-Fetch-Site and go on working.
func TestHTTPRefusesBrowserAttacks(t *testing.T) {
	n := startTestNode(t, "alpha", func(c *Config) { c.Store.FloodThreshold = 3 })
	submit(t, testCtx(t), dialMember(t, n), addEntry(fixture.MD5(1)))
	before := n.store.Size("alpha")
	opinion := `{"type":"md5","value":"` + fixture.MD5(1).Text() + `","stance":"false_positive","text":"x"}`
	do := func(method, path, host, ctype, body string, hdr map[string]string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(testCtx(t), method, "http://"+n.HTTPAddr()+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if host != "" {
			req.Host = host
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	crossSite := map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}
	oldBrowser := map[string]string{"Origin": "https://evil.example"} // no Fetch metadata
	for _, tc := range []struct {
		name, method, path, host, ctype, body string
		hdr                                   map[string]string
	}{
		{"cross-site opinion as text/plain", "POST", "/v1/opinion", "", "text/plain", opinion, crossSite},
		{"cross-origin opinion without fetch metadata", "POST", "/v1/opinion", "", "text/plain", opinion, oldBrowser},
		{"cross-site bank replace", "POST", "/v1/banks/own?format=te&replace=true", "", "text/plain", "md5 " + fixture.MD5(2).Text() + "\n", crossSite},
		{"rebound name reads the feed", "GET", "/v1/feed", "evil.example:7402", "", "", nil},
		// An <img> of another site's page: the answer is unreadable, but the match would count as an
		// upload toward the flood rule, and enough of them hold a listed signal for review.
		{"cross-site match by an image tag", "GET", "/v1/match?type=md5&value=" + fixture.MD5(1).Text(), "", "", "", map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"}},
		{"rebound name reads the status", "GET", "/v1/status", "evil.example", "", "", nil},
		{"rebound name posts an opinion", "POST", "/v1/opinion", "evil.example", "application/json", opinion, map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "same-origin"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(tc.method, tc.path, tc.host, tc.ctype, tc.body, tc.hdr)
			if code != http.StatusForbidden {
				t.Errorf("got %d %s, want 403", code, body)
			}
		})
	}
	if got := n.store.Size("alpha"); got != before {
		t.Fatalf("got %d entries in alpha's log after the refused requests, want %d", got, before)
	}
	if banks, err := n.store.LocalBanks(); err != nil || len(banks) != 0 {
		t.Fatalf("got local banks %v (%v) after the refused requests, want none", banks, err)
	}
	for range 5 {
		do("GET", "/v1/match?type=md5&value="+fixture.MD5(1).Text(), "", "", "", map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"})
	}
	if held := n.store.Policy().Held; len(held) != 0 {
		t.Fatalf("got signals held for review %+v after cross-site matches, want none", held)
	}
	// A program's request, and a same-origin one, are served.
	if code, body := do("POST", "/v1/opinion", "", "application/json", opinion, nil); code != http.StatusOK {
		t.Fatalf("program's opinion: got %d %s, want 200", code, body)
	}
	if code, body := do("GET", "/v1/status", "localhost:7402", "", "", map[string]string{"Sec-Fetch-Site": "same-origin"}); code != http.StatusOK {
		t.Fatalf("status at localhost: got %d %s, want 200", code, body)
	}
	// With a token, the token is what guards: any host name may be used.
	m := startTestNode(t, "bravo", func(c *Config) { c.MemberToken = "s3cret-token-0123456789" })
	req, _ := http.NewRequestWithContext(testCtx(t), "GET", "http://"+m.HTTPAddr()+"/v1/status", nil)
	req.Host = "hashfed.internal:7402"
	req.Header.Set("Authorization", "Bearer s3cret-token-0123456789")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("token holder at a DNS name: got %d, want 200", resp.StatusCode)
	}
}
