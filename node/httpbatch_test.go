package node

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/hashfed/hashfed/internal/fixture"
)

func TestHTTPMatchBatch(t *testing.T) {
	n := startTestNode(t, "alpha", nil)
	pdq, md5 := fixture.PDQ(70), fixture.MD5(70)
	submit(t, testCtx(t), dialMember(t, n), addEntry(pdq, "behaviour:threat-incitement"), addEntry(md5))
	near := flipBits(pdq, 4)

	body := fmt.Sprintf(`{"queries":[
		{"id":"exact","type":"pdq","value":%q},
		{"id":"near","type":"pdq","value":%q,"radius":4},
		{"id":"too far","type":"pdq","value":%q,"radius":3},
		{"id":"md5","type":"md5","value":%q},
		{"id":"miss","type":"md5","value":%q},
		{"id":"bad","type":"md5","value":"abc"},
		{"id":"radius","type":"pdq","value":%q,"radius":99}]}`,
		pdq.Text(), near.Text(), near.Text(), md5.Text(), fixture.MD5(71).Text(), pdq.Text())
	code, _, resp := httpDo(t, n, "POST", "/v1/match/batch", body, "")
	if code != 200 {
		t.Fatalf("got %d %s, want 200", code, resp)
	}
	var got BatchJSON
	if err := json.Unmarshal([]byte(resp), &got); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		id      string
		matches int
		dist    int
		err     string
	}{
		{"exact", 1, 0, ""}, {"near", 1, 4, ""}, {"too far", 0, 0, ""}, {"md5", 1, 0, ""}, {"miss", 0, 0, ""},
		{"bad", 0, 0, "has 3 characters"}, {"radius", 0, 0, "radius 99 is out of range"},
	}
	if len(got.Results) != len(want) {
		t.Fatalf("got %d results, want %d: %s", len(got.Results), len(want), resp)
	}
	for i, w := range want {
		r := got.Results[i]
		if r.ID != w.id || len(r.Matches) != w.matches || (w.err == "") != (r.Error == "") || !strings.Contains(r.Error, w.err) {
			t.Errorf("result %d: got id %q, %d matches, error %q; want %q, %d, error with %q", i, r.ID, len(r.Matches), r.Error, w.id, w.matches, w.err)
			continue
		}
		if w.matches > 0 && r.Matches[0].Distance != w.dist {
			t.Errorf("%s: got distance %d, want %d", w.id, r.Matches[0].Distance, w.dist)
		}
	}
	// One shape: a batch result is a /v1/match answer with an id.
	if !strings.Contains(resp, `{"id":"miss","matches":[],"hidden_count":0}`) {
		t.Errorf("got %s, want the miss as {\"id\":\"miss\",\"matches\":[],\"hidden_count\":0}", resp)
	}

	tooMany := `{"queries":[` + strings.Repeat(`{"type":"md5","value":"`+md5.Text()+`"},`, maxBatchQueries) + `{"type":"md5","value":"` + md5.Text() + `"}]}`
	tests := []struct {
		name, method, body string
		code               int
		want               string
	}{
		{"empty", "POST", `{"queries":[]}`, 200, `{"results":[]}`},
		{"too many", "POST", tooMany, 400, "1001 queries in one batch, at most 1000"},
		{"unknown field", "POST", `{"queries":[{"type":"md5","value":"` + md5.Text() + `","radus":3}]}`, 400, `unknown field \"radus\"`},
		{"not json", "POST", `queries`, 400, "request body"},
		{"two values", "POST", `{"queries":[]}{}`, 400, "more than one JSON value"},
		{"get", "GET", "", 405, "allowed: POST"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, resp := httpDo(t, n, tc.method, "/v1/match/batch", tc.body, "")
			if code != tc.code || !strings.Contains(resp, tc.want) {
				t.Errorf("got %d %s, want %d with %q", code, resp, tc.code, tc.want)
			}
		})
	}
}
