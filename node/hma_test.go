package node

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/consortium/pdq"
	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// testPNG is an image with enough structure for a PDQ hash of full quality.
func testPNG(t *testing.T) []byte {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, 96, 64))
	for y := range 64 {
		for x := range 96 {
			img.SetGray(x, y, color.Gray{uint8((x*x + 3*y*x/2 + (y/8)*40) % 251)})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// multipartBody is what a browser's FormData or requests' files= sends: one file in field.
func multipartBody(t *testing.T, field string, data []byte) (string, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, err := mw.CreateFormFile(field, "upload.png")
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(data)
	mw.Close()
	return mw.FormDataContentType(), &buf
}

// hmaDo sends a request as HMA's and Coop's clients do (no token, the node has none) and
// returns the status and the body.
func hmaDo(t *testing.T, n *Node, method, path, contentType string, body io.Reader) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(testCtx(t), method, "http://"+n.HTTPAddr()+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// decode unmarshals body into a fresh value of type T, failing the test when it does not fit.
func decode[T any](t *testing.T, body string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("answer %q does not decode into %T: %v", body, v, err)
	}
	return v
}

// TestHMAClients replays the requests that Coop's HmaService (lookupContent, hashContentFromUrl,
// getBank) and HMA's own clients (the match debugger page: POST /h/hash then /m/compare; its API
// tests: /m/raw_lookup, /m/lookup with a file, /m/compare) make, and checks the answers have
// HMA's shapes.
func TestHMAClients(t *testing.T) {
	img := testPNG(t)
	ih, _, err := pdq.Decode(bytes.NewReader(img), pdq.DefaultDecodeOptions())
	if err != nil {
		t.Fatal(err)
	}
	imgHash, quality := pdq.HashImage(ih)
	if quality < 50 {
		t.Fatalf("test image has PDQ quality %d, want at least 50", quality)
	}
	imgSig, err := consortium.SignalFromBytes(consortium.PDQ, imgHash[:])
	if err != nil {
		t.Fatal(err)
	}

	media := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/away" {
			// A redirect off the allow-list (to a closed loopback port).
			http.Redirect(w, r, "http://localhost:1/a.png", http.StatusFound)
			return
		}
		w.Header().Set("Content-Type", "image/png")
		w.Write(img)
	}))
	defer media.Close()
	mediaHost, _, _ := net.SplitHostPort(strings.TrimPrefix(media.URL, "http://"))

	n := startTestNode(t, "alpha", func(c *Config) { c.HashURLAllow = []string{mediaHost} })
	off := startTestNode(t, "alpha", nil)
	c := dialMember(t, n)
	ctx := testCtx(t)
	p, md5 := fixture.PDQ(1), fixture.MD5(1)
	submit(t, ctx, c,
		addEntry(p, "behaviour:threat-incitement"),
		addEntry(md5),
		addEntry(imgSig, "incident:x1"),
		fixture.Opinion(0, md5, pb.Stance_STANCE_AGREE),
	)
	near := flipBits(p, 3)

	type match struct {
		BankContentID int    `json:"bank_content_id"`
		Distance      string `json:"distance"`
	}
	type byBank map[string][]match

	t.Run("status", func(t *testing.T) {
		if code, body := hmaDo(t, n, "GET", "/status", "", nil); code != 200 || body != "I-AM-ALIVE" {
			t.Errorf("got %d %q, want 200 I-AM-ALIVE", code, body)
		}
	})

	t.Run("coop lookupContent", func(t *testing.T) {
		q := url.Values{"signal_type": {"pdq"}, "signal": {near.Text()}}
		code, body := hmaDo(t, n, "GET", "/m/lookup?"+q.Encode(), "", nil)
		if got, want := decode[byBank](t, body), (byBank{"alpha": {{0, "3"}}}); code != 200 || !reflect.DeepEqual(got, want) {
			t.Errorf("got %d %s, want 200 %v", code, body, want)
		}
		// pytx's name for an MD5; exact types have no distance ("-").
		q = url.Values{"signal_type": {"video_md5"}, "signal": {md5.Text()}}
		_, body = hmaDo(t, n, "GET", "/m/lookup?"+q.Encode(), "", nil)
		if got, want := decode[byBank](t, body), (byBank{"alpha": {{1, "-"}}}); !reflect.DeepEqual(got, want) {
			t.Errorf("got %s, want %v", body, want)
		}
	})

	t.Run("coop hashContentFromUrl", func(t *testing.T) {
		code, body := hmaDo(t, n, "GET", "/h/hash?url="+url.QueryEscape(media.URL+"/a.png"), "", nil)
		got := decode[map[string]string](t, body)
		if code != 200 || got["pdq"] != imgSig.Text() || len(got["video_md5"]) != 32 || len(got["video_sha256"]) != 64 {
			t.Errorf("got %d %s, want the image's pdq, video_md5 and video_sha256", code, body)
		}
		// Off by default: 403, as HMA answers without the hasher role.
		code, body = hmaDo(t, off, "GET", "/h/hash?url="+url.QueryEscape(media.URL+"/a.png"), "", nil)
		if code != 403 || !strings.Contains(body, "hashing by URL is off") {
			t.Errorf("node without an allow-list: got %d %s, want 403", code, body)
		}
		// A host not on the list is refused before anything is fetched (a closed loopback port).
		code, body = hmaDo(t, n, "GET", "/h/hash?url="+url.QueryEscape("http://localhost:1/a.png"), "", nil)
		if code != 400 || !strings.Contains(body, `host \"localhost\" is not on http.hash_url_allow`) {
			t.Errorf("host off the list: got %d %s, want 400", code, body)
		}
		code, body = hmaDo(t, n, "GET", "/h/hash?url="+url.QueryEscape(media.URL+"/away"), "", nil)
		if code != 400 || !strings.Contains(body, `host \"localhost\" is not on http.hash_url_allow`) {
			t.Errorf("redirect off the list: got %d %s, want 400", code, body)
		}
		// GET /m/lookup?url= hashes then looks up, keyed by signal type.
		code, body = hmaDo(t, n, "GET", "/m/lookup?url="+url.QueryEscape(media.URL+"/a.png"), "", nil)
		if got := decode[map[string]byBank](t, body); code != 200 || len(got["pdq"]["alpha"]) != 1 || got["pdq"]["alpha"][0] != (match{2, "0"}) {
			t.Errorf("lookup by url: got %d %s, want the image's listing", code, body)
		}
	})

	t.Run("coop getBank", func(t *testing.T) {
		code, body := hmaDo(t, n, "GET", "/c/bank/alpha", "", nil)
		if got := decode[map[string]any](t, body); code != 200 || got["name"] != "alpha" || got["matching_enabled_ratio"] != 1.0 || got["local"] != false {
			t.Errorf("got %d %s, want bank alpha", code, body)
		}
		code, body = hmaDo(t, n, "GET", "/c/bank/NOPE", "", nil)
		if code != 404 || decode[map[string]string](t, body)["message"] != "bank 'NOPE' not found" {
			t.Errorf("got %d %s, want 404 with a message", code, body)
		}
		code, body = hmaDo(t, n, "GET", "/c/banks", "", nil)
		if got := decode[[]map[string]any](t, body); code != 200 || len(got) < 1 || got[0]["name"] != "alpha" {
			t.Errorf("got %d %s, want a list with alpha", code, body)
		}
		if code, _ := hmaDo(t, n, "POST", "/c/banks", "application/json", strings.NewReader(`{"name":"X"}`)); code != 405 {
			t.Errorf("POST /c/banks: got %d, want 405 (banks are read-only)", code)
		}
	})

	t.Run("hma match debugger", func(t *testing.T) {
		var results []map[string]string
		for range 2 {
			ct, b := multipartBody(t, "photo", img)
			code, body := hmaDo(t, n, "POST", "/h/hash", ct, b)
			if code != 200 {
				t.Fatalf("POST /h/hash: got %d %s", code, body)
			}
			results = append(results, decode[map[string]string](t, body))
		}
		cmp := map[string][]string{}
		for k := range results[0] {
			cmp[k] = []string{results[0][k], results[1][k]}
		}
		b, _ := json.Marshal(cmp)
		code, body := hmaDo(t, n, "POST", "/m/compare", "application/json", bytes.NewReader(b))
		want := `{"pdq":[true,{"distance":0}],"video_md5":[true,{}],"video_sha256":[true,{}]}`
		if code != 200 || strings.TrimSpace(body) != want {
			t.Errorf("got %d %s, want %s", code, body, want)
		}
	})

	t.Run("hma compare", func(t *testing.T) {
		s1 := "facd8bcb2a49bcebdec1985298d5fe84bcd006c187c598c720c3c087b3fdb318"
		s2 := "facd8bcb2a49bcebdec1985228d5ae84bcd006c187c598c720c2b087b3fdb318"
		code, body := hmaDo(t, n, "POST", "/m/compare", "application/json", strings.NewReader(`{"pdq":["`+s1+`","`+s2+`"]}`))
		if code != 200 || strings.TrimSpace(body) != `{"pdq":[true,{"distance":9}]}` {
			t.Errorf("got %d %s", code, body)
		}
		for _, bad := range []string{`["banana"]`, `{"pdq":"banana"}`, `{"pdq":[]}`, `{"pdq":["banana","banana"]}`, `{"pdq":["` + s1 + `","` + s2 + `","` + s1 + `"]}`} {
			if code, body := hmaDo(t, n, "POST", "/m/compare", "application/json", strings.NewReader(bad)); code != 400 || decode[map[string]string](t, body)["message"] == "" {
				t.Errorf("%s: got %d %s, want 400 with a message", bad, code, body)
			}
		}
	})

	t.Run("hma raw_lookup", func(t *testing.T) {
		q := url.Values{"signal_type": {"pdq"}, "signal": {near.Text()}}
		_, body := hmaDo(t, n, "GET", "/m/raw_lookup?"+q.Encode(), "", nil)
		if got := decode[map[string][]int](t, body); !reflect.DeepEqual(got, map[string][]int{"matches": {0}}) {
			t.Errorf("got %s, want matches [0]", body)
		}
		q.Set("include_distance", "true")
		_, body = hmaDo(t, n, "GET", "/m/raw_lookup?"+q.Encode(), "", nil)
		if got := decode[map[string][]map[string]any](t, body)["matches"]; len(got) != 1 || got[0]["bank_content_id"] != 0.0 || got[0]["distance"] != "3" {
			t.Errorf("got %s, want one match with bank_content_id and distance", body)
		}
		q.Set("banks", "beta")
		_, body = hmaDo(t, n, "GET", "/m/raw_lookup?"+q.Encode(), "", nil)
		if got := decode[map[string][]any](t, body); len(got["matches"]) != 0 {
			t.Errorf("banks=beta: got %s, want no match", body)
		}
	})

	t.Run("hma lookup by file", func(t *testing.T) {
		for _, field := range []string{"photo", "video"} {
			ct, b := multipartBody(t, field, img)
			code, body := hmaDo(t, n, "POST", "/m/lookup", ct, b)
			got := decode[map[string]byBank](t, body)
			if code != 200 {
				t.Fatalf("%s: got %d %s", field, code, body)
			}
			_, hasPDQ := got["pdq"]
			if _, ok := got["video_md5"]; !ok || hasPDQ != (field == "photo") {
				t.Errorf("%s: got %s, want video_md5 and, for a photo only, pdq", field, body)
			}
			if field == "photo" && !reflect.DeepEqual(got["pdq"], byBank{"alpha": {{2, "0"}}}) {
				t.Errorf("photo: got %s, want the image's listing", body)
			}
		}
		ct, b := multipartBody(t, "audio", img)
		if code, body := hmaDo(t, n, "POST", "/m/lookup", ct, b); code != 400 || !strings.Contains(body, "no such content_type") {
			t.Errorf("field audio: got %d %s, want 400", code, body)
		}
	})

	t.Run("max_distance", func(t *testing.T) {
		for _, tc := range []struct {
			d    string
			want int
			code int
		}{{"2", 0, 200}, {"3", 1, 200}, {"64", 0, 400}, {"x", 0, 400}} {
			q := url.Values{"signal_type": {"pdq"}, "signal": {near.Text()}, "max_distance": {tc.d}}
			code, body := hmaDo(t, n, "GET", "/m/lookup?"+q.Encode(), "", nil)
			if code != tc.code {
				t.Errorf("max_distance=%s: got %d %s, want %d", tc.d, code, body, tc.code)
				continue
			}
			if code == 200 {
				if got := decode[byBank](t, body); len(got["alpha"]) != tc.want {
					t.Errorf("max_distance=%s: got %s, want %d matches", tc.d, body, tc.want)
				}
			}
		}
	})

	t.Run("detail", func(t *testing.T) {
		q := url.Values{"signal_type": {"video_md5"}, "signal": {md5.Text()}, "detail": {"true"}}
		code, body := hmaDo(t, n, "GET", "/m/lookup?"+q.Encode(), "", nil)
		type detailed struct {
			Hashes  map[string]string `json:"hashes"`
			Matches map[string]map[string][]struct {
				BankContentID int           `json:"bank_content_id"`
				Distance      string        `json:"distance"`
				Signal        SignalJSON    `json:"signal"`
				Listing       ListingJSON   `json:"listing"`
				Opinions      []OpinionJSON `json:"opinions"`
				Local         *bool         `json:"local"`
			} `json:"matches"`
		}
		got := decode[detailed](t, body)
		ms := got.Matches["video_md5"]["alpha"]
		if code != 200 || got.Hashes["video_md5"] != md5.Text() || len(ms) != 1 {
			t.Fatalf("got %d %s", code, body)
		}
		m := ms[0]
		if m.Signal.Type != "md5" || m.Listing.Member != "alpha" || m.Listing.Index != 1 || len(m.Opinions) != 1 || m.Opinions[0].Stance != "agree" || m.Local == nil || *m.Local {
			t.Errorf("got %s, want the signal, alpha's listing, alpha's opinion and local false", body)
		}
		ct, b := multipartBody(t, "photo", img)
		_, body = hmaDo(t, n, "POST", "/m/lookup?detail=true", ct, b)
		got = decode[detailed](t, body)
		if got.Hashes["pdq"] != imgSig.Text() || len(got.Matches["pdq"]["alpha"]) != 1 || strings.Join(got.Matches["pdq"]["alpha"][0].Listing.Labels, ",") != "incident:x1" {
			t.Errorf("upload with detail: got %s, want the hashes and the listing's labels", body)
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			method, path string
			code         int
			msg          string
		}{
			{"GET", "/m/lookup", 400, "both signal_type and signal are required"},
			{"GET", "/m/lookup?signal_type=tmk&signal=00", 400, "unknown signal type"},
			{"GET", "/m/lookup?signal_type=pdq&signal=zz", 400, "invalid signal"},
			{"GET", "/m/lookup?signal_type=pdq&signal=" + near.Text() + "&detail=maybe", 400, "prefer true/false"},
			{"POST", "/h/hash", 400, "Missing multipart/form-data file upload"},
			{"GET", "/h/hash", 400, "url is required"},
		} {
			code, body := hmaDo(t, n, tc.method, tc.path, "", nil)
			if code != tc.code || !strings.Contains(decode[map[string]string](t, body)["message"], tc.msg) {
				t.Errorf("%s %s: got %d %s, want %d with %q", tc.method, tc.path, code, body, tc.code, tc.msg)
			}
		}
	})
}

// TestHMAToken checks that the HMA endpoints need the node's token like the JSON API, but for
// /status, which load balancers probe.
func TestHMAToken(t *testing.T) {
	n := startTestNode(t, "alpha", func(c *Config) { c.MemberToken = "s3cret" })
	if code, _ := hmaDo(t, n, "GET", "/status", "", nil); code != 200 {
		t.Errorf("/status without a token: got %d, want 200", code)
	}
	for _, p := range []string{"/m/lookup?signal_type=pdq&signal=00", "/m/raw_lookup", "/c/banks", "/m/index/status"} {
		if code, _ := hmaDo(t, n, "GET", p, "", nil); code != 401 {
			t.Errorf("%s without a token: got %d, want 401", p, code)
		}
	}
	if code, _, body := httpDo(t, n, "GET", "/c/banks", "", "s3cret"); code != 200 {
		t.Errorf("/c/banks with the token: got %d %s, want 200", code, body)
	}
}
