package node

// The HTTP endpoints, on Config.HTTPListen:
//
//	GET  /healthz    no token. 200 {"status":"ok","member":"alpha","peers":2,"signals":1234}
//	                 (peers: nodes gossip reports alive; signals: signals listed by at least one
//	                 member); 503 {"status":"shutting down",...} while the node stops.
//	GET  /metrics    Prometheus text format. Requires the token when Config.MemberToken is set
//	                 (Prometheus: authorization.credentials in the scrape config).
//	GET  /v1/status  the member API's StatusResponse in hashfed's JSON ([MessageJSON]: proto field
//	                 names, integers as numbers, bytes in hex, times in RFC 3339).
//	GET  /v1/lookup?type=pdq&value=<value>
//	                 {"found":true,"result":<match>}; found is false when no member lists the
//	                 signal now (result then holds the signal and any opinions on it).
//	POST /v1/match   body {"type":"pdq","value":"<64 hex>","radius":31,"quality":80,"include_hidden":false}
//	                 (radius, quality and include_hidden optional; radius defaults to 31).
//	GET  /v1/match?type=pdq&value=<value>&radius=31&quality=80&include_hidden=true
//	                 the same, for curl. Both answer {"matches":[<match>...],"hidden_count":0},
//	                 nearest first (hidden_count, with hidden_reasons when not 0: the matches the
//	                 dispute policy hid).
//	POST /v1/match/batch
//	                 body {"queries":[{"id":"q1","type":"pdq","value":"...","radius":31},...]}, at
//	                 most 1,000 queries; answers {"results":[{"id":"q1","matches":[...],
//	                 "hidden_count":0,"error":"<this query's problem>"},...]} in order (httpbatch.go).
//	GET  /v1/feed?cursor=<cursor>&limit=1000&wait=30
//	                 the feed as JSON Lines, or as server-sent events with "Accept:
//	                 text/event-stream" (httpfeed.go; docs/API.md has the records).
//	/console/        the web console (internal/console): HTML pages behind a sign-in with the token.
//
// A value is written as `hashfed` and python-threatexchange write it: hex digits (either case) for
// pdq, md5 and sha256; for url, the URL itself (canonicalized and hashed by the node) or
// "sha256:<64 hex>" for an already hashed one.
//
// <match> is
//
//	{"signal":{"type":"pdq","value":"<hex; sha256:<hex> for url>"},
//	 "distance":3,
//	 "listings":[{"member":"alpha","index":12,"time":"2026-01-01T00:00:00.123Z",
//	              "labels":["behaviour:threat-incitement"],"content_id":"c1","note":"...",
//	              "expires":"2027-01-01T00:00:00Z","quality":92}],
//	 "opinions":[{"author":"beta","index":4,"time":"...","stance":"false_positive","text":"..."}],
//	 "hidden":"<why the local policy hides it>",
//	 "protected":[{"certification":"<leaf hash hex>","author":"ngo","index":0,"time":"...",
//	              "category":"parody","reason":"...","subject":"@handle","expires":"..."}]}
//
// where content_id, note, expires, quality, opinions, hidden and protected are left out when empty
// (protected, when present, means the match is certified counter-speech, parody, news or research:
// send it to review, not automated removal; /v1/certifications and /v1/referrals: node/roles.go), and times
// are RFC 3339 in UTC.
//
// Errors: 400 {"error":"<message naming the problem>"} for bad input (a bad hash, an unknown type,
// a radius out of range, an unknown JSON field, a body over 1 MiB); 401 {"error":...} without the
// right "Authorization: Bearer <token>" when Config.MemberToken is set (everything but /healthz);
// 404 for an unknown path; 405 for a wrong method (with Allow); 503 while the node shuts down.

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/console"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"github.com/hashfed/hashfed/store"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/codes"
)

// maxBodyBytes bounds an HTTP request body.
const maxBodyBytes = 1 << 20

// startHTTP serves /metrics, /healthz and the JSON API on Config.HTTPListen.
func (n *Node) startHTTP() error {
	if n.cfg.HTTPListen == "" {
		return nil
	}
	lis, err := net.Listen("tcp", n.cfg.HTTPListen)
	if err != nil {
		return fmt.Errorf("HTTP: %w", err)
	}
	n.httpLis = lis
	n.httpSrv = &http.Server{
		Handler:           n.httpHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelWarn),
	}
	n.goServe("HTTP server", func() error { return n.httpSrv.Serve(lis) }, http.ErrServerClosed)
	return nil
}

// httpHandler routes the HTTP endpoints.
func (n *Node) httpHandler() http.Handler {
	metrics := promhttp.HandlerFor(n.metrics.registry, promhttp.HandlerOpts{})
	mux := http.NewServeMux()
	mux.Handle("/healthz", n.route(false, []string{http.MethodGet, http.MethodHead}, n.handleHealth))
	mux.Handle("/metrics", n.route(true, []string{http.MethodGet, http.MethodHead}, metrics.ServeHTTP))
	mux.Handle("/v1/status", n.route(true, []string{http.MethodGet}, n.handleStatus))
	mux.Handle("/v1/lookup", n.route(true, []string{http.MethodGet}, n.handleLookup))
	mux.Handle("/v1/match", n.route(true, []string{http.MethodGet, http.MethodPost}, n.handleMatch))
	mux.Handle("/v1/match/batch", n.route(true, []string{http.MethodPost}, n.handleMatchBatch))
	mux.Handle("/v1/feed", n.route(true, []string{http.MethodGet}, n.handleFeed))
	mux.Handle("/v1/opinion", n.route(true, []string{http.MethodPost}, n.handleOpinion))
	n.registerHMA(mux)
	n.registerBanks(mux)
	mux.Handle(console.Prefix, n.consoleHandler()) // the web console: its own sign-in with the token (node/console.go)
	mux.Handle("/v1/certifications", n.route(true, []string{http.MethodGet}, n.handleCertifications))
	mux.Handle("/v1/referrals", n.route(true, []string{http.MethodGet}, n.handleReferrals))
	mux.Handle("/v1/match/video", n.route(true, []string{http.MethodPost}, n.handleMatchVideo))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no endpoint %s (see /v1/match, /v1/lookup, /v1/feed, /v1/status, /healthz, /metrics)", r.URL.Path))
	})
	return mux
}

// route wraps a handler with the method check, the token check (when auth and a token is set) and
// the body limit.
func (n *Node) route(auth bool, methods []string, h http.HandlerFunc) http.Handler {
	return n.routeLimit(auth, methods, maxBodyBytes, h)
}

// routeLimit is route with a body limit of limit bytes.
//
// A web page the operator opens in a browser on the node's host can send requests to the JSON
// API, which without a token (the default, on loopback) nothing else guards. So a request a
// browser marks as cross-origin (Fetch metadata, or an Origin other than the Host) may change
// nothing: no POST or DELETE of another site's page is served (it would make the node sign an
// opinion in the member's log, or replace a local bank), nor any request it marks as sent by
// another site (see crossSite). And a node without a token answers its
// authenticated endpoints only at a loopback name: a page whose own name was rebound to 127.0.0.1
// would be same-origin, and read the shared set.
func (n *Node) routeLimit(auth bool, methods []string, limit int64, h http.HandlerFunc) http.Handler {
	allow := strings.Join(methods, ", ")
	cop := http.NewCrossOriginProtection()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := cop.Check(r); err != nil || crossSite(r) {
			origin, site := clip(r.Header.Get("Origin")), clip(r.Header.Get("Sec-Fetch-Site"))
			n.refused.refuse(refHTTPBrowser, "HTTP request refused: a browser sent it from another site", "path", clip(r.URL.Path), "origin", origin)
			writeError(w, http.StatusForbidden, fmt.Sprintf("%s refused: a web browser sent it from another site (Origin %q, Sec-Fetch-Site %q); the JSON API takes changes only from programs and same-origin pages", r.Method, origin, site))
			return
		}
		if auth && n.cfg.MemberToken == "" && !console.LoopbackHost(r.Host) {
			n.refused.refuse(refHTTPBrowser, "HTTP request refused: a host name that is not loopback, and no token", "path", clip(r.URL.Path), "host", clip(r.Host))
			writeError(w, http.StatusForbidden, fmt.Sprintf("this node has no member token, so its JSON API answers only at localhost or a loopback address, not at host %q (a web page whose name was rebound to this address would read it): use http://127.0.0.1:PORT, or set a member token", clip(r.Host)))
			return
		}
		ok := false
		for _, m := range methods {
			ok = ok || r.Method == m
		}
		if !ok {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s (allowed: %s)", r.Method, r.URL.Path, allow))
			return
		}
		if auth && n.cfg.MemberToken != "" {
			hdr := r.Header.Get("Authorization")
			if hdr == "" || !tokenMatches(hdr, n.cfg.MemberToken) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="hashfed"`)
				msg := "missing bearer token: send the header \"Authorization: Bearer <member token>\""
				if hdr != "" {
					msg = "invalid bearer token"
				}
				writeError(w, http.StatusUnauthorized, msg)
				return
			}
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		h(w, r)
	})
}

// crossSite reports whether a browser marks the request as sent by a page of another site (Fetch
// metadata), whatever its method: the answer of a GET is unreadable to that page, but a match
// would still count as an upload toward the flood rule, which holds a listed signal for review.
// No page of another site has a use for the JSON API (it sends no CORS headers).
func crossSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return true
	}
	return false
}

// writeJSON writes v as JSON with the status code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// writeError writes {"error": msg}.
func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// writeErr writes an error with the HTTP status its class calls for.
func writeErr(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch codeOf(err) {
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		code = http.StatusBadRequest
	case codes.Unavailable, codes.Canceled, codes.DeadlineExceeded:
		code = http.StatusServiceUnavailable
	}
	writeError(w, code, err.Error())
}

// healthJSON is the body of /healthz.
type healthJSON struct {
	Status  string `json:"status"`
	Member  string `json:"member"`
	Peers   int    `json:"peers"`
	Signals int    `json:"signals"`
}

func (n *Node) handleHealth(w http.ResponseWriter, r *http.Request) {
	h := healthJSON{Status: "ok", Member: n.id}
	if n.ctx.Err() != nil {
		h.Status = "shutting down"
		writeJSON(w, http.StatusServiceUnavailable, h)
		return
	}
	n.mu.Lock()
	h.Peers = n.aliveCountLocked()
	n.mu.Unlock()
	n.store.View(func(s *consortium.State) { h.Signals, _ = s.Counts() })
	writeJSON(w, http.StatusOK, h)
}

func (n *Node) handleStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, MessageJSON(n.Status()))
}

// SignalJSON is a signal in hashfed's JSON: its type and its value as users write it.
type SignalJSON struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// ListingJSON is one member's listing of a signal; times are RFC 3339 in UTC, an expiry is ""
// for never and the quality is absent when unknown.
type ListingJSON struct {
	Member    string   `json:"member"`
	Index     uint64   `json:"index"`
	Time      string   `json:"time"`
	Labels    []string `json:"labels"`
	ContentID string   `json:"content_id,omitempty"`
	Note      string   `json:"note,omitempty"`
	Expires   string   `json:"expires,omitempty"`
	Quality   *uint32  `json:"quality,omitempty"`
}

// OpinionJSON is one member's opinion on a signal.
type OpinionJSON struct {
	Author string `json:"author"`
	Index  uint64 `json:"index"`
	Time   string `json:"time"`
	Stance string `json:"stance"`
	Text   string `json:"text,omitempty"`
}

// MatchJSON is one match in hashfed's JSON, the one shape of the HTTP API (/v1/match,
// /v1/lookup) and of `hashfed match --json`.
type MatchJSON struct {
	Signal   SignalJSON    `json:"signal"`
	Distance int           `json:"distance"`
	Listings []ListingJSON `json:"listings"`
	Opinions []OpinionJSON `json:"opinions,omitempty"`
	Hidden   string        `json:"hidden,omitempty"`
	// Protected are the certifications that protect the match (roles.go): route it to review.
	Protected []ProtectionJSON `json:"protected,omitempty"`
	// FrameSeconds is set when the signal is a vpdq part whose frame an image matched: the frame's
	// timestamp in the video.
	FrameSeconds *float64 `json:"frame_seconds,omitempty"`
}

// MatchesJSON is the answer of /v1/match and what `hashfed match --json` prints: the matches,
// and how many the node's local policy hides (left out unless include_hidden) and why.
type MatchesJSON struct {
	Matches       []MatchJSON `json:"matches"`
	HiddenCount   int         `json:"hidden_count"`
	HiddenReasons []string    `json:"hidden_reasons,omitempty"`
	// Local are the matches in this node's local banks (never shared), each marked local.
	Local []LocalMatchJSON `json:"local,omitempty"`
}

// matchesJSON is the name the HTTP tests use.
type matchesJSON = MatchesJSON

// NewMatchesJSON returns the JSON form of matches in their wire form (never a null list).
func NewMatchesJSON(ms []*pb.MatchResult) MatchesJSON {
	out := MatchesJSON{Matches: make([]MatchJSON, len(ms))}
	for i, m := range ms {
		out.Matches[i] = NewMatchJSON(m)
	}
	return out
}

// NewMatchResponseJSON returns the JSON form of the answers to one or more queries (the queries
// of one image, say), their matches and hidden counts put together.
func NewMatchResponseJSON(resps ...*pb.MatchResponse) MatchesJSON {
	var all []*pb.MatchResult
	out := MatchesJSON{}
	for _, r := range resps {
		all = append(all, r.GetMatches()...)
		for _, l := range r.GetLocal() {
			out.Local = append(out.Local, NewLocalMatchJSON(l))
		}
		out.HiddenCount += int(r.GetHiddenCount())
		for _, why := range r.GetHiddenReasons() {
			if !slices.Contains(out.HiddenReasons, why) {
				out.HiddenReasons = append(out.HiddenReasons, why)
			}
		}
	}
	out.Matches = NewMatchesJSON(all).Matches
	return out
}

// NewMatchJSON returns the JSON form of a match in its wire form.
func NewMatchJSON(m *pb.MatchResult) MatchJSON {
	j := MatchJSON{Distance: int(m.GetDistance()), Listings: make([]ListingJSON, len(m.GetListings())), Hidden: m.GetHidden()}
	if m.FrameMs != nil {
		sec := float64(*m.FrameMs) / 1000
		j.FrameSeconds = &sec
	}
	if sig, err := consortium.SignalFromProto(m.GetSignal()); err == nil {
		j.Signal = SignalJSON{Type: sig.Type.String(), Value: sig.Text()}
	} else {
		j.Signal = SignalJSON{Type: m.GetSignal().GetType(), Value: hex.EncodeToString(m.GetSignal().GetValue())}
	}
	for i, l := range m.GetListings() {
		lj := ListingJSON{Member: l.Member, Index: l.Index, Time: rfc3339(time.UnixMilli(l.TimeUnixMs)), Labels: l.Labels,
			ContentID: l.ContentId, Note: l.Note, Quality: l.Quality}
		if lj.Labels == nil {
			lj.Labels = []string{}
		}
		if l.ExpiresUnixMs != 0 {
			lj.Expires = rfc3339(time.UnixMilli(l.ExpiresUnixMs))
		}
		j.Listings[i] = lj
	}
	for _, o := range m.GetOpinions() {
		j.Opinions = append(j.Opinions, OpinionJSON{Author: o.Author, Index: o.Index, Time: rfc3339(time.UnixMilli(o.TimeUnixMs)),
			Stance: consortium.StanceName(o.Stance), Text: o.Text})
	}
	j.Protected = newProtectionsJSON(m.GetProtected())
	return j
}

// lookupJSON is the answer of /v1/lookup.
type lookupJSON struct {
	Found  bool      `json:"found"`
	Result MatchJSON `json:"result"`
	// Local are the entries of this node's local banks with the signal, each marked local.
	Local []LocalMatchJSON `json:"local,omitempty"`
}

// matchRequestJSON is the body of POST /v1/match.
type matchRequestJSON struct {
	Type          string `json:"type"`
	Value         string `json:"value"`
	Radius        *int   `json:"radius"`
	Quality       *int   `json:"quality"`
	IncludeHidden bool   `json:"include_hidden"`
}

// parseQuery parses a match query from its JSON form.
func parseQuery(req matchRequestJSON) (consortium.Signal, store.Query, error) {
	if req.Type == "" {
		return consortium.Signal{}, store.Query{}, fmt.Errorf("%w: type missing (pdq, md5, sha256 or url)", errBadRequest)
	}
	if req.Value == "" {
		return consortium.Signal{}, store.Query{}, fmt.Errorf("%w: value missing", errBadRequest)
	}
	sig, err := consortium.ParseSignal(req.Type, req.Value)
	if err != nil {
		return sig, store.Query{}, err
	}
	q := store.DefaultQuery()
	q.IncludeHidden = req.IncludeHidden
	if req.Radius != nil {
		if *req.Radius < 0 || *req.Radius > store.MaxRadius {
			return sig, q, fmt.Errorf("%w: radius %d is out of range 0 to %d", errBadRequest, *req.Radius, store.MaxRadius)
		}
		q.Radius = *req.Radius
	}
	if req.Quality != nil {
		if *req.Quality < 0 || *req.Quality > 100 {
			return sig, q, fmt.Errorf("%w: quality %d is out of range 0 to 100", errBadRequest, *req.Quality)
		}
		q.Quality = *req.Quality
	}
	return sig, q, nil
}

// onlyParams refuses URL parameters other than names (a misspelt "radius" would otherwise be
// ignored silently) and repeated ones.
func onlyParams(r *http.Request, names ...string) error {
	for k, vs := range r.URL.Query() {
		if !slices.Contains(names, k) {
			return fmt.Errorf("%w: unknown parameter %q (known: %s)", errBadRequest, k, strings.Join(names, ", "))
		}
		if len(vs) > 1 {
			return fmt.Errorf("%w: parameter %q given %d times", errBadRequest, k, len(vs))
		}
	}
	return nil
}

// queryInt parses an optional integer URL parameter.
func queryInt(r *http.Request, name string) (*int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return nil, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %s %q is not an integer", errBadRequest, name, s)
	}
	return &v, nil
}

func (n *Node) handleMatch(w http.ResponseWriter, r *http.Request) {
	var req matchRequestJSON
	if r.Method == http.MethodPost {
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", maxBodyBytes))
				return
			}
			writeError(w, http.StatusBadRequest, "request body: "+err.Error())
			return
		}
	} else {
		if err := onlyParams(r, "type", "value", "radius", "quality", "include_hidden"); err != nil {
			writeErr(w, err)
			return
		}
		q := r.URL.Query()
		req.Type, req.Value = q.Get("type"), q.Get("value")
		var err error
		if req.Radius, err = queryInt(r, "radius"); err == nil {
			req.Quality, err = queryInt(r, "quality")
		}
		if err == nil {
			if s := q.Get("include_hidden"); s != "" {
				if req.IncludeHidden, err = strconv.ParseBool(s); err != nil {
					err = fmt.Errorf("%w: include_hidden %q is not true or false", errBadRequest, s)
				}
			}
		}
		if err != nil {
			writeErr(w, err)
			return
		}
	}
	sig, q, err := parseQuery(req)
	if err != nil {
		n.metrics.matchQueries.WithLabelValues(typeLabel(req.Type), "error").Inc()
		writeErr(w, err)
		return
	}
	res, err := n.match(sig, q)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, NewMatchResponseJSON(res.response("")))
}

func (n *Node) handleLookup(w http.ResponseWriter, r *http.Request) {
	if err := onlyParams(r, "type", "value"); err != nil {
		writeErr(w, err)
		return
	}
	q := r.URL.Query()
	typ, value := q.Get("type"), q.Get("value")
	if typ == "" || value == "" {
		writeErr(w, fmt.Errorf("%w: want the parameters type (pdq, md5, sha256 or url) and value", errBadRequest))
		return
	}
	sig, err := consortium.ParseSignal(typ, value)
	if err != nil {
		writeErr(w, err)
		return
	}
	m, found, err := n.store.Lookup(sig)
	if err != nil {
		writeErr(w, err)
		return
	}
	local, err := n.localMatches(sig, 0)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, lookupJSON{Found: found, Result: NewMatchJSON(matchToProto(m)), Local: local})
}
