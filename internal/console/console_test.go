package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashfed/hashfed/internal/fixture"
	"github.com/hashfed/hashfed/internal/localnet"
	"github.com/hashfed/hashfed/node"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"github.com/hashfed/hashfed/store"
)

func TestConsole(t *testing.T) {
	nodes := consortiumUp(t)
	a, b := nodes["alpha"], nodes["bravo"]

	t.Run("sign-in required", func(t *testing.T) {
		c := newClient(t, b)
		for _, p := range []string{"/console/", "/console/search?type=md5&value=" + exact.Text(), "/console/review", "/console/audit", "/console/signal?type=pdq&value=" + listed.Text()} {
			resp, _ := c.do("GET", p, nil, nil)
			if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/console/login?next=") {
				t.Errorf("GET %s signed out: got %s to %q, want 303 to the sign-in", p, resp.Status, loc)
			}
		}
		// The API's bearer token does not open the console to a cross-site form either.
		resp, _ := c.do("POST", "/console/review/suppress", sigForm(exact, "why", "x"), map[string]string{"Authorization": "Bearer " + token})
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("POST without a session: got %s, want 401", resp.Status)
		}
		resp, page := c.do("POST", "/console/login", url.Values{"reviewer": {"eve"}, "token": {"guess"}}, nil)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(page, "not this node&#39;s token") || len(resp.Cookies()) != 0 {
			t.Errorf("wrong token: got %s with cookies %v", resp.Status, resp.Cookies())
		}
		resp, _ = c.do("POST", "/console/login", url.Values{"reviewer": {"rev"}, "token": {token}}, nil)
		ck := resp.Cookies()
		if resp.StatusCode != http.StatusSeeOther || len(ck) != 1 || !ck[0].HttpOnly || ck[0].SameSite != http.SameSiteStrictMode || ck[0].Path != "/console/" {
			t.Errorf("sign in: got %s with cookies %+v, want 303 and one HttpOnly SameSite=Strict cookie", resp.Status, ck)
		}
	})

	t.Run("no open redirect", func(t *testing.T) {
		for _, next := range []string{"//evil.example/", "https://evil.example/console/", "/\\evil.example", "/elsewhere"} {
			c := newClient(t, b)
			resp, _ := c.do("POST", "/console/login", url.Values{"reviewer": {"rev"}, "token": {token}, "next": {next}}, nil)
			if loc := resp.Header.Get("Location"); loc != "/console/" {
				t.Errorf("next %q: redirected to %q, want /console/", next, loc)
			}
		}
	})

	t.Run("forged requests refused", func(t *testing.T) {
		c := newClient(t, b)
		csrf := c.signIn("rev")
		cases := []struct {
			name string
			form url.Values
			hdr  map[string]string
		}{
			{"no anti-forgery token", sigForm(exact, "why", "forged"), nil},
			{"wrong anti-forgery token", sigForm(exact, "why", "forged", "csrf", wrong(csrf)), nil},
			{"cross-site origin", sigForm(exact, "why", "forged", "csrf", csrf), map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}},
			{"other origin without fetch metadata", sigForm(exact, "why", "forged", "csrf", csrf), map[string]string{"Origin": "http://evil.example"}},
		}
		for _, tc := range cases {
			resp, _ := c.do("POST", "/console/review/suppress", tc.form, tc.hdr)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s: got %s, want 403", tc.name, resp.Status)
			}
		}
		if len(b.Store().Policy().Suppressed) != 0 {
			t.Fatalf("a forged request suppressed a signal: %+v", b.Store().Policy().Suppressed)
		}
		resp, _ := c.do("POST", "/console/review/suppress", sigForm(exact, "why", "our own test image", "csrf", csrf, "back", "/console/review"), map[string]string{"Origin": c.base, "Sec-Fetch-Site": "same-origin"})
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/review" {
			t.Fatalf("same-origin suppress: got %s to %q", resp.Status, resp.Header.Get("Location"))
		}
		if s := b.Store().Policy().Suppressed; len(s) != 1 || s[0].Who != "rev" || s[0].Why != "our own test image" {
			t.Errorf("suppressed: got %+v, want exact by rev", s)
		}
		b.Store().Unsuppress(exact)
	})

	t.Run("member text is escaped", func(t *testing.T) {
		c := newClient(t, b)
		c.signIn(`<b>mallory</b>`)
		for _, p := range []string{"/console/signal?type=pdq&value=" + listed.Text(), "/console/search?type=pdq&value=" + listed.Text(), "/console/"} {
			resp, page := c.do("GET", p, nil, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: %s", p, resp.Status)
			}
			for _, bad := range []string{"<script>alert", "<img src=x", "<b>mallory"} {
				if strings.Contains(page, bad) {
					t.Errorf("GET %s: page contains %q unescaped", p, bad)
				}
			}
			if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
				t.Errorf("GET %s: CSP %q", p, csp)
			}
		}
		_, page := c.do("GET", "/console/signal?type=pdq&value="+listed.Text(), nil, nil)
		if !strings.Contains(page, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") {
			t.Error("the hostile note is not shown escaped on the signal page")
		}
	})

	t.Run("pages", func(t *testing.T) {
		c := newClient(t, b)
		c.signIn("rev")
		cases := []struct{ path, want string }{
			{"/console/", "Members and logs"},
			{"/console/search?type=pdq&value=" + listed.Text(), "behaviour:threat-incitement"},
			{"/console/search?type=md5&value=" + exact.Text(), "Distance <strong>0</strong>"},
			{"/console/signal?type=pdq&value=" + listed.Text(), "Signed history"},
			{"/console/review", "Held for review (1)"},
			{"/console/review", "Disputes (1)"},
			{"/console/audit", "Audit OK."},
			{"/console/audit", "Additions and revocations per week"},
		}
		for _, tc := range cases {
			resp, page := c.do("GET", tc.path, nil, nil)
			if resp.StatusCode != http.StatusOK || !strings.Contains(page, tc.want) {
				t.Errorf("GET %s: got %s, want 200 with %q", tc.path, resp.Status, tc.want)
			}
		}
		resp, page := c.do("GET", "/console/search?type=pdq&value=zz", nil, nil)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "role=\"alert\"") {
			t.Errorf("bad hash: got %s", resp.Status)
		}
		resp, page = c.do("GET", "/console/report?from=2025-12-01&to=2026-02-01&format=json", nil, nil)
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, `"additions": 5`) {
			t.Errorf("report download: got %s %.200s", resp.Status, page)
		}
	})

	t.Run("confirm publishes an opinion everywhere", func(t *testing.T) {
		c := newClient(t, b)
		csrf := c.signIn("rev@bravo")
		resp, _ := c.do("POST", "/console/review/verdict", sigForm(flood, "verdict", "confirm", "note", "real", "publish", "on", "csrf", csrf, "back", "/console/review"), nil)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("confirm: got %s", resp.Status)
		}
		_, page := c.do("GET", "/console/review", nil, nil)
		if !strings.Contains(page, "Held for review (0)") || !strings.Contains(page, "confirmed by rev@bravo") {
			t.Errorf("after confirming, the review page says:\n%s", page)
		}
		resp, _ = c.do("POST", "/console/review/verdict", sigForm(disputed, "verdict", "deconfirm", "csrf", csrf), nil)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("deconfirm: got %s", resp.Status)
		}
		if !localnet.WaitUntil(20*time.Second, func() bool {
			m, ok, _ := a.Store().Lookup(flood)
			return ok && len(m.Opinions) == 1 && m.Opinions[0].Author == "bravo" && m.Opinions[0].Stance == pb.Stance_STANCE_AGREE
		}) {
			t.Error("alpha did not get bravo's confirm as an opinion")
		}
		if ms, _ := b.Store().MatchSignal(disputed, store.DefaultQuery()); len(ms) != 0 {
			t.Error("bravo still matches the signal it deconfirmed")
		}
	})
}

// wrong returns a token that differs from s in its last character.
func wrong(s string) string {
	last := byte('A')
	if s[len(s)-1] == 'A' {
		last = 'B'
	}
	return s[:len(s)-1] + string(last)
}

// A console without a token answers only to loopback names: a hostile page whose name was
// rebound to the node's address is refused.
func TestConsoleWithoutTokenRefusesOtherHosts(t *testing.T) {
	g := fixture.Genesis(2, fixture.Members("alpha", "bravo")...)
	n, err := localnet.Node(g, fixture.Key("alpha"), t.TempDir(), nil, false, func(c *node.Config) { c.HTTPListen = "127.0.0.1:0" })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	c := newClient(t, n)
	resp, _ := c.do("GET", "/console/login", nil, map[string]string{})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login page at 127.0.0.1: got %s", resp.Status)
	}
	for _, host := range []string{"evil.example", "evil.example:" + strings.Split(n.HTTPAddr(), ":")[1], "10.0.0.1"} {
		req, _ := http.NewRequestWithContext(t.Context(), "POST", c.base+"/console/login", strings.NewReader(url.Values{"reviewer": {"x"}}.Encode()))
		req.Host = host
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := c.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 {
			t.Errorf("Host %s: got %s with cookies %v, want 403", host, resp.Status, resp.Cookies())
		}
	}
	resp, _ = c.do("POST", "/console/login", url.Values{"reviewer": {"local"}}, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("sign in without a token at 127.0.0.1: got %s, want 303", resp.Status)
	}
}
