package console_test

import (
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	"github.com/hashfed/hashfed/internal/localnet"
	"github.com/hashfed/hashfed/internal/memberclient"
	"github.com/hashfed/hashfed/node"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"github.com/hashfed/hashfed/store"
)

const token = "console-test-token-0123456789"

// The test consortium's signals: listed is alpha's, with a hostile note and labels; disputed is
// alpha's and bravo calls it a false positive; flood is held on bravo after a flood of uploads.
var (
	listed   = fixture.PDQ(1)
	disputed = fixture.PDQ(2)
	flood    = fixture.PDQ(3)
	exact    = fixture.MD5(1)
)

// uploadImage is the image the browser test uploads; alpha lists its PDQ hash.
const uploadImage = "../../testdata/pdq/images/synthetic/square-512x512.png"

const hostile = `<script>alert("x")</script><img src=x onerror=alert(1)>`

// consortiumUp starts alpha, bravo and charlie on loopback, each with the console on its HTTP
// listener behind the token, and waits until bravo holds alpha's entries and has held flood.
func consortiumUp(t *testing.T) map[string]*node.Node {
	t.Helper()
	g := fixture.Genesis(2, fixture.Members("alpha", "bravo", "charlie")...)
	dir := t.TempDir()
	nodes := map[string]*node.Node{}
	var join []string
	for _, id := range []string{"alpha", "bravo", "charlie"} {
		n, err := localnet.Node(g, fixture.Key(id), dir, join, false, func(c *node.Config) {
			c.HTTPListen = "127.0.0.1:0"
			c.MemberToken = token
			c.CheckpointInterval = 50 * time.Millisecond
			c.AntiEntropyInterval = 300 * time.Millisecond
			c.GossipInterval = 50 * time.Millisecond
			c.Store.FloodThreshold = 3
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		nodes[id] = n
		join = append(join, n.GossipAddr())
	}
	a, b := nodes["alpha"], nodes["bravo"]
	ih, err := memberclient.HashImageFile(uploadImage)
	if err != nil {
		t.Fatal(err)
	}
	img, err := consortium.ParseSignal("pdq", ih.PDQ)
	if err != nil {
		t.Fatal(err)
	}
	add := fixture.Add(fixture.At(0), listed, "behaviour:threat-incitement", "content:manifesto")
	add.GetAdd().Note = hostile
	submit(t, a, add, fixture.Add(fixture.At(1), disputed), fixture.Add(fixture.At(2), flood), fixture.Add(fixture.At(3), exact), fixture.Add(fixture.At(4), img, "content:branded-publication"))
	// bravo's node takes an opinion only on a signal it holds a listing of: wait for alpha's adds.
	if !localnet.WaitUntil(20*time.Second, func() bool { return b.Store().Size("alpha") == 5 }) {
		t.Fatal("alpha's log did not reach bravo")
	}
	submit(t, b, fixture.Opinion(fixture.At(4), disputed, pb.Stance_STANCE_FALSE_POSITIVE))
	if !localnet.WaitUntil(20*time.Second, func() bool {
		return b.Store().Size("alpha") == 5 && a.Store().Size("bravo") == 1
	}) {
		t.Fatal("the logs did not replicate")
	}
	for range 3 {
		b.Store().MatchSignal(flood, store.DefaultQuery())
	}
	if len(b.Store().Policy().Held) != 1 {
		t.Fatalf("bravo holds %v, want the flooded signal", b.Store().Policy().Held)
	}
	return nodes
}

func submit(t *testing.T, n *node.Node, es ...*pb.Entry) {
	t.Helper()
	out, err := n.Submit(t.Context(), es)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range out {
		if a.Err != nil {
			t.Fatal(a.Err)
		}
	}
}

// client is a browser-like HTTP client of one node's console: cookies kept, redirects not followed.
type client struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newClient(t *testing.T, n *node.Node) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, base: "http://" + n.HTTPAddr(), c: &http.Client{Jar: jar, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (c *client) do(method, path string, form url.Values, hdr map[string]string) (*http.Response, string) {
	c.t.Helper()
	var body *strings.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	} else {
		body = strings.NewReader("")
	}
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.c.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp, b.String()
}

// signIn signs in and returns the session's anti-forgery token, read from a page.
func (c *client) signIn(name string) string {
	c.t.Helper()
	resp, _ := c.do("POST", "/console/login", url.Values{"reviewer": {name}, "token": {token}, "next": {"/console/"}}, nil)
	if resp.StatusCode != http.StatusSeeOther {
		c.t.Fatalf("sign in: got %s, want 303", resp.Status)
	}
	_, page := c.do("GET", "/console/", nil, nil)
	_, rest, ok := strings.Cut(page, `name="csrf" value="`)
	if !ok {
		c.t.Fatalf("no anti-forgery token on the overview:\n%s", page)
	}
	csrf, _, _ := strings.Cut(rest, `"`)
	return csrf
}

func sigForm(sig consortium.Signal, kv ...string) url.Values {
	v := url.Values{"type": {sig.Type.String()}, "value": {sig.Text()}}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}
