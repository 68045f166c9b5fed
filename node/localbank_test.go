package node

import (
	"encoding/json"
	"maps"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"google.golang.org/protobuf/proto"
)

// TestLocalBanksHTTP imports programmes' lists into local banks, matches them through the JSON API,
// gRPC's Match and MatchStream and HMA's endpoints (marked local), applies their deletions, and checks that nothing of it
// reaches the member's log or the shared state.
func TestLocalBanksHTTP(t *testing.T) {
	n := startTestNode(t, "alpha", nil)
	ctx := testCtx(t)
	submit(t, ctx, dialMember(t, n), addEntry(fixture.MD5(1)))
	sizes := n.store.Sizes()
	var digest consortium.Hash
	n.store.View(func(s *consortium.State) { digest = s.Digest() })

	post := func(bank, query, body string) (int, map[string]any) {
		t.Helper()
		code, _, b := httpDo(t, n, "POST", "/v1/banks/"+bank+"?"+query, body, "")
		var out map[string]any
		json.Unmarshal([]byte(b), &out)
		return code, out
	}
	ncmec, err := os.ReadFile("../consortium/hashlist/testdata/entries.ncmec.xml")
	if err != nil {
		t.Fatal(err)
	}
	code, res := post("ncmec", "format=ncmec", string(ncmec))
	if code != 200 || res["added"] != 3.0 || res["skipped"] != 1.0 || res["size"] != 3.0 {
		t.Fatalf("ncmec import: got %d %v, want 3 added, 1 skipped", code, res)
	}
	const img1MD5 = "0cc175b9c0f1b6a831c399e269772661"

	// The JSON API: no consortium match, one local match, marked local.
	_, _, body := httpDo(t, n, "GET", "/v1/match?type=md5&value="+img1MD5, "", "")
	var m matchesJSON
	json.Unmarshal([]byte(body), &m)
	if len(m.Matches) != 0 || len(m.Local) != 1 || !m.Local[0].Local || m.Local[0].Bank != "ncmec" || m.Local[0].ContentID != "ncmec:7-img-1" || strings.Join(m.Local[0].Labels, ",") != "ncmec-classification:B1" {
		t.Fatalf("got %s, want one local match in ncmec", body)
	}
	// gRPC's Match answers it too, in local.
	c := dialMember(t, n)
	md5Sig, err := consortium.ParseSignal("md5", img1MD5)
	if err != nil {
		t.Fatal(err)
	}
	mr, err := c.Match(ctx, &pb.MatchRequest{Signal: md5Sig.Proto()})
	if err != nil || len(mr.Matches) != 0 || len(mr.Local) != 1 || mr.Local[0].Bank != "ncmec" || mr.Local[0].ContentId != "ncmec:7-img-1" || mr.Local[0].AddedUnixMs == 0 {
		t.Fatalf("gRPC match: got %v, %v; want one local match in ncmec", mr, err)
	}
	if got := NewMatchResponseJSON(mr); len(got.Local) != 1 || !reflect.DeepEqual(got.Local, m.Local) {
		t.Errorf("gRPC answer in JSON: got %+v, want what /v1/match says, %+v", got.Local, m.Local)
	}
	// HMA: the bank is local:ncmec, listed in /c/banks with local true.
	code, body = hmaDo(t, n, "GET", "/m/lookup?"+url.Values{"signal_type": {"video_md5"}, "signal": {img1MD5}, "detail": {"true"}}.Encode(), "", nil)
	if code != 200 || !strings.Contains(body, `"local:ncmec":[{"bank_content_id":`) || !strings.Contains(body, `"local":true`) {
		t.Errorf("HMA lookup: got %d %s", code, body)
	}
	_, body = hmaDo(t, n, "GET", "/c/banks", "", nil)
	if !strings.Contains(body, `{"name":"local:ncmec","matching_enabled_ratio":1,"local":true}`) {
		t.Errorf("/c/banks: got %s", body)
	}

	// NCMEC withdraws img-1: both its signals go, vid-1 stays.
	del := `<queryResult><images><deletedImage><member id="7"/><id>img-1</id></deletedImage></images></queryResult>`
	if code, res := post("ncmec", "format=ncmec", del); code != 200 || res["deleted"] != 2.0 || res["size"] != 1.0 {
		t.Fatalf("ncmec delete: got %d %v", code, res)
	}
	_, _, body = httpDo(t, n, "GET", "/v1/match?type=md5&value="+img1MD5, "", "")
	if strings.Contains(body, `"local"`) {
		t.Errorf("withdrawn entry still matches: %s", body)
	}

	// StopNCII: an active hash added, a withdrawn one deleted.
	stop, _ := os.ReadFile("../consortium/hashlist/testdata/fetch.stopncii.json")
	if code, res := post("stopncii", "format=stopncii", string(stop)); code != 200 || res["added"] != 1.0 || res["skipped"] != 1.0 {
		t.Fatalf("stopncii: got %d %v", code, res)
	}
	// A platform's own list in pytx's local_file format, then replaced.
	te := "video_md5 92eb5ffee6ae2fec3ad71c777531578f\npdq f8f8f0cee0f4a84f06370a22028f67f0b36e2ed596621e1d33e6b39c4e9c9b22\nmd5 zz\n"
	code, res = post("own", "format=te", te)
	if code != 200 || res["added"] != 2.0 || len(res["refused"].([]any)) != 1 {
		t.Fatalf("te: got %d %v, want 2 added, 1 refused", code, res)
	}
	if code, res := post("own", "format=te&replace=true", "pdq f8f8f0cee0f4a84f06370a22028f67f0b36e2ed596621e1d33e6b39c4e9c9b22\n"); code != 200 || res["deleted"] != 1.0 || res["size"] != 1.0 {
		t.Fatalf("replace: got %d %v", code, res)
	}
	// MatchStream's batched PDQ answers carry local matches as Match does.
	ownPDQ, _ := consortium.ParseSignal("pdq", "f8f8f0cee0f4a84f06370a22028f67f0b36e2ed596621e1d33e6b39c4e9c9b22")
	var reqs []*pb.MatchRequest
	for i := range 4 {
		reqs = append(reqs, &pb.MatchRequest{Id: strconv.Itoa(i), Signal: flipBits(ownPDQ, i).Proto()})
	}
	for i, got := range matchStreamAll(t, ctx, c, reqs) {
		want, err := c.Match(ctx, reqs[i])
		// The same hash is in own and in stopncii's list.
		if err != nil || len(want.Local) != 2 || want.Local[0].Bank != "own" || want.Local[1].Bank != "stopncii" || want.Local[0].Distance != uint32(i) {
			t.Fatalf("match %d: got %v, %v; want local matches in own and stopncii at distance %d", i, want, err, i)
		}
		if !proto.Equal(got, want) {
			t.Errorf("stream answer %d: got %v, want %v", i, got, want)
		}
	}
	code, hdr, body := httpDo(t, n, "GET", "/v1/banks/own", "", "")
	if code != 200 || body != "pdq f8f8f0cee0f4a84f06370a22028f67f0b36e2ed596621e1d33e6b39c4e9c9b22\n" || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
		t.Errorf("export: got %d %q", code, body)
	}
	_, _, body = httpDo(t, n, "GET", "/v1/banks", "", "")
	if body != `{"banks":[{"name":"ncmec","size":1,"local":true},{"name":"own","size":1,"local":true},{"name":"stopncii","size":1,"local":true}]}`+"\n" {
		t.Errorf("list: got %s", body)
	}

	// Errors name the problem.
	for _, tc := range []struct {
		method, path, body string
		code               int
		msg                string
	}{
		{"POST", "/v1/banks/Bad!", "", 400, "invalid local bank name"},
		{"POST", "/v1/banks/x", "", 400, "format missing"},
		{"POST", "/v1/banks/x?format=xml", "", 400, "unknown hash-list format"},
		{"POST", "/v1/banks/x?format=ncmec", "{}", 400, "not a file of this format ncmec"},
		{"GET", "/v1/banks/nothere", "", 404, "no such local bank"},
		{"DELETE", "/v1/banks/nothere", "", 404, "no such local bank"},
	} {
		code, _, body := httpDo(t, n, tc.method, tc.path, tc.body, "")
		if code != tc.code || !strings.Contains(body, tc.msg) {
			t.Errorf("%s %s: got %d %s, want %d %q", tc.method, tc.path, code, body, tc.code, tc.msg)
		}
	}
	if code, _, body := httpDo(t, n, "DELETE", "/v1/banks/own", "", ""); code != 200 {
		t.Errorf("delete: got %d %s", code, body)
	}

	// None of it is in alpha's log or the shared state.
	if got := n.store.Sizes(); !maps.Equal(got, sizes) {
		t.Errorf("local banks wrote to a log: sizes %v, want %v", got, sizes)
	}
	n.store.View(func(s *consortium.State) {
		if s.Digest() != digest {
			t.Error("local banks changed the shared state's digest")
		}
	})
}

// TestLocalBankDeleteList: POST with delete=true removes the listed signals from a bank (the
// hash-list formats have no deletion of their own), refuses to create a bank, and cannot be
// combined with replace or a programme's format, which carries its own deletions.
func TestLocalBankDeleteList(t *testing.T) {
	n := startTestNode(t, "alpha", nil)
	const pdq = "f8f8f0cee0f4a84f06370a22028f67f0b36e2ed596621e1d33e6b39c4e9c9b22"
	const md5 = "92eb5ffee6ae2fec3ad71c777531578f"
	post := func(query, body string) (int, string) {
		t.Helper()
		code, _, b := httpDo(t, n, "POST", "/v1/banks/"+query, body, "")
		return code, b
	}
	if code, body := post("own?format=te", "pdq "+pdq+"\nmd5 "+md5+"\n"); code != 200 {
		t.Fatalf("add: got %d %s", code, body)
	}
	// One listed, one not in the bank, one unreadable: the first deleted, the others said.
	code, body := post("own?format=te&delete=true", "md5 "+md5+"\nmd5 0cc175b9c0f1b6a831c399e269772661\nmd5 zz\n")
	var res map[string]any
	json.Unmarshal([]byte(body), &res)
	if code != 200 || res["deleted"] != 1.0 || res["added"] != 0.0 || res["size"] != 1.0 || len(res["refused"].([]any)) != 1 {
		t.Fatalf("delete: got %d %s, want 1 deleted, size 1, 1 refused", code, body)
	}
	if _, _, body := httpDo(t, n, "GET", "/v1/banks/own", "", ""); body != "pdq "+pdq+"\n" {
		t.Errorf("after delete: got %q", body)
	}
	for _, tc := range []struct {
		query string
		code  int
		msg   string
	}{
		{"nothere?format=te&delete=true", 404, "no such local bank"},
		{"own?format=te&delete=true&replace=true", 400, "delete and replace"},
		{"own?format=ncmec&delete=true", 400, "ncmec lists carry their own deletions"},
		{"own?format=te&delete=maybe", 400, `delete \"maybe\" is not true or false`},
	} {
		if code, body := post(tc.query, "pdq "+pdq+"\n"); code != tc.code || !strings.Contains(body, tc.msg) {
			t.Errorf("%s: got %d %s, want %d %q", tc.query, code, body, tc.code, tc.msg)
		}
	}
	if _, _, body := httpDo(t, n, "GET", "/v1/banks", "", ""); strings.Contains(body, "nothere") {
		t.Errorf("a delete created a bank: %s", body)
	}
}
