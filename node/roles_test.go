package node

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// TestProtectedThroughAPIs: a certified signal's match says so over gRPC and HTTP, its feed event
// carries the protection, and the protected list is served.
func TestProtectedThroughAPIs(t *testing.T) {
	n := startTestNode(t, "alpha", nil)
	c := dialMember(t, n)
	ctx := testCtx(t)
	u := urlSignal(t, "https://social.example/@caliphate_cats")
	cert := fixture.Certify(0, "alpha", pb.Category_CATEGORY_PARODY, u)
	cert.GetCertify().Subject = "@caliphate_cats"
	submit(t, ctx, c, addEntry(u), cert)

	resp, err := c.Match(ctx, &pb.MatchRequest{Signal: u.Proto()})
	if err != nil || len(resp.Matches) != 1 || len(resp.Matches[0].Protected) != 1 || resp.Matches[0].Protected[0].Subject != "@caliphate_cats" {
		t.Fatalf("gRPC match: got %v, %v; want one match protected", resp, err)
	}
	code, _, body := httpDo(t, n, "GET", "/v1/match?type=url&value=https://social.example/@caliphate_cats", "", "")
	var got matchesJSON
	if err := json.Unmarshal([]byte(body), &got); code != 200 || err != nil || len(got.Matches) != 1 || len(got.Matches[0].Protected) != 1 {
		t.Fatalf("HTTP match: got %d %s (%v)", code, body, err)
	}
	if p := got.Matches[0].Protected[0]; p.Author != "alpha" || p.Category != "parody" || p.Reason == "" || len(p.Certification) != 64 {
		t.Errorf("HTTP protection: got %+v", p)
	}
	stream, err := c.Feed(ctx, &pb.FeedRequest{})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := stream.Recv()
	if err != nil || ev.Entry.GetAdd() == nil || len(ev.Protected) != 1 {
		t.Errorf("feed event of the add: got %v, %v; want it protected", ev, err)
	}
	// The HTTP feed names the certification and marks the add protected.
	code, _, body = httpDo(t, n, "GET", "/v1/feed?limit=100", "", "")
	if code != 200 || !strings.Contains(body, `"op":"certify"`) || !strings.Contains(body, `"subject":"@caliphate_cats"`) || !strings.Contains(body, `"protected":[{`) {
		t.Errorf("/v1/feed: got %d %s, want the certify record and a protected add", code, body)
	}
	code, _, body = httpDo(t, n, "GET", "/v1/certifications", "", "")
	if code != 200 || !strings.Contains(body, `"subject":"@caliphate_cats"`) {
		t.Errorf("/v1/certifications: got %d %s", code, body)
	}
	code, _, body = httpDo(t, n, "GET", "/v1/referrals?all=maybe", "", "")
	if code != 400 || !strings.Contains(body, "want true or false") {
		t.Errorf("/v1/referrals?all=maybe: got %d %s, want 400", code, body)
	}
	if code, _, body = httpDo(t, n, "GET", "/v1/referrals", "", ""); code != 200 {
		t.Errorf("/v1/referrals: got %d %s", code, body)
	}
	// HMA's lookups carry it on the match, detail or not; raw_lookup's bare ids cannot.
	hq := "signal_type=url&signal=" + url.QueryEscape("https://social.example/@caliphate_cats")
	for _, path := range []string{"/m/lookup?" + hq, "/m/lookup?detail=true&" + hq, "/m/raw_lookup?include_distance=true&" + hq} {
		code, _, body := httpDo(t, n, "GET", path, "", "")
		if code != 200 || !strings.Contains(body, `"protected":[{"certification":"`) || !strings.Contains(body, `"category":"parody"`) {
			t.Errorf("%s: got %d %s, want the match protected", path, code, body)
		}
	}
	if code, _, body := httpDo(t, n, "GET", "/m/raw_lookup?"+hq, "", ""); code != 200 || strings.TrimSpace(body) != `{"matches":[0]}` {
		t.Errorf("raw_lookup: got %d %s, want HMA's bare ids", code, body)
	}
	// An export carries the protection, now and at a time given.
	for _, at := range []int64{0, time.Now().Add(time.Hour).UnixMilli()} {
		stream, err := c.Export(ctx, &pb.ExportRequest{AtUnixMs: at})
		if err != nil {
			t.Fatal(err)
		}
		rec, err := stream.Recv()
		if err != nil || len(rec.Protected) != 1 || rec.Protected[0].Subject != "@caliphate_cats" || rec.Protected[0].Category != pb.Category_CATEGORY_PARODY {
			t.Errorf("export at %d: got %v, %v; want the signal with its protection", at, rec, err)
		}
	}
	// A member's node refuses to write a certification in another's name.
	r, err := c.Submit(ctx, &pb.SubmitRequest{Entries: []*pb.Entry{fixture.Certify(0, "beta", pb.Category_CATEGORY_NEWS, u)}})
	if err != nil || !strings.Contains(r.Results[0].Error, "writes only in its own name") {
		t.Errorf("forged certification: got %v, %v; want it refused", r, err)
	}
}
