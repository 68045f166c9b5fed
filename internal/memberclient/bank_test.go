package memberclient

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestBankClientErrors: the node's answers become errors a user can act on, classed by status and
// shape (a hashfed node answers errors in JSON), not by their text.
func TestBankClientErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Header.Get("Authorization") != "Bearer good":
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":"invalid bearer token"}`))
		case r.URL.Path == "/v1/banks/gone":
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"error":"no such local bank \"gone\""}`))
		case r.URL.Path == "/v1/banks/full":
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"error":"something is wrong"}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	c, err := NewBankClient(srv.URL, "good", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	bad, _ := NewBankClient(strings.TrimPrefix(srv.URL, "http://"), "bad", 5*time.Second)
	for _, tc := range []struct {
		name   string
		err    error
		want   string
		noBank bool
	}{
		{"bad token", bad.Drop(ctx, "gone"), "refused the call: invalid bearer token (set --token or $HASHFED_TOKEN)", false},
		{"no such bank", c.Drop(ctx, "gone"), `no such local bank "gone"`, true},
		{"not a node", c.Drop(ctx, "other"), "answers /v1/banks/other with 404 (404 page not found): is it a hashfed node's HTTP API?", false},
		{"the node's message", c.Drop(ctx, "full"), "something is wrong (HTTP 400)", false},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) || errors.Is(tc.err, ErrNoBank) != tc.noBank {
			t.Errorf("%s: got %v, want %q (ErrNoBank %v)", tc.name, tc.err, tc.want, tc.noBank)
		}
	}
	for _, addr := range []string{"ftp://x:1", "http://x:1/v1", "http://x:1?a=b", "http://"} {
		if _, err := NewBankClient(addr, "", time.Second); err == nil || !strings.Contains(err.Error(), "want host:port") {
			t.Errorf("address %q: got %v, want it refused", addr, err)
		}
	}
}
