// Package console is the web console a node serves on its HTTP listener under /console/: an
// overview of the node and the consortium, a search by hash or by uploaded file, each signal's
// signed history, the review queues (held matches, disputes) with confirm and deconfirm, the local
// precision controls, and the audit with its transparency report.
//
// It is server-rendered HTML (html/template, which escapes everything a member log or a user
// supplies) with one hand-written style sheet and no script. It is behind the node's HTTP token:
// a person signs in once with the token and gets a session cookie (HttpOnly, SameSite=Strict);
// every state-changing request is a POST that must come from the console's own origin and carry
// the session's anti-forgery token. The console keeps no state of its own apart from sessions: it
// reads and changes the node's store and asks the node to publish opinions.
package console

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/reportpage"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"github.com/hashfed/hashfed/store"
)

// Prefix is the path the console is served under.
const Prefix = "/console/"

// Node is what the console needs of the running node.
type Node interface {
	// Status reports the node, its logs, peers and proposals.
	Status() *pb.StatusResponse
	// Review records a verdict and, when publish is set, publishes it as an opinion.
	Review(ctx context.Context, sig consortium.Signal, reviewer string, v store.Verdict, note string, publish bool) (store.Review, error)
	// AuditInput returns the node's audit bundle: the genesis, every log with its checkpoint,
	// heads notes and evidence.
	AuditInput(ctx context.Context) (consortium.AuditInput, error)
}

// Config configures a [Console].
type Config struct {
	// Token is the node's HTTP token; "" means the node has none (then signing in asks only for a
	// name).
	Token string
	Store *store.Store
	Node  Node
	// Logger receives the console's log lines (sign-ins, refused requests, reviews).
	Logger *slog.Logger
	// HashVideo, when set, hashes an uploaded video into signals (vPDQ) for the search; without it
	// the search takes images only and says so.
	HashVideo func(ctx context.Context, data []byte) ([]consortium.Signal, error)
	// MaxUpload bounds an uploaded file (default 32 MiB).
	MaxUpload int64
	// SessionTTL is how long a sign-in lasts (default 12 hours).
	SessionTTL time.Duration
	// Now returns the time (default time.Now).
	Now func() time.Time
}

// Console serves the console; it is an [http.Handler] for paths under [Prefix].
type Console struct {
	cfg      Config
	log      *slog.Logger
	mux      *http.ServeMux
	sessions *sessions
	cop      *http.CrossOriginProtection
	pages    map[string]*template.Template
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// New returns a console over the node and store of cfg.
func New(cfg Config) (*Console, error) {
	if cfg.Store == nil || cfg.Node == nil {
		return nil, errors.New("console: a store and a node are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxUpload <= 0 {
		cfg.MaxUpload = 32 << 20
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Console{cfg: cfg, log: cfg.Logger.With("component", "console"), mux: http.NewServeMux(), sessions: newSessions(cfg.SessionTTL, cfg.Now),
		cop: http.NewCrossOriginProtection(), pages: map[string]*template.Template{}}
	c.cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.log.WarnContext(r.Context(), "cross-origin request refused", "path", r.URL.Path, "origin", r.Header.Get("Origin"))
		http.Error(w, "cross-origin request refused: the console accepts changes only from its own pages", http.StatusForbidden)
	}))
	base, err := template.New("layout.html").Funcs(funcs).Funcs(reportpage.Funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	names, _ := fs.Glob(templateFS, "templates/*.html")
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return nil, err
		}
		c.pages[name] = t
	}
	c.routes()
	return c, nil
}

func (c *Console) routes() {
	static, _ := fs.Sub(staticFS, "static")
	c.mux.Handle("GET "+Prefix+"static/", http.StripPrefix(Prefix+"static/", http.FileServerFS(static)))
	c.mux.HandleFunc("GET "+Prefix+"static/report.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		w.Write([]byte(reportpage.CSS()))
	})
	c.mux.HandleFunc("GET "+Prefix+"login", c.loginPage)
	c.mux.HandleFunc("POST "+Prefix+"login", c.login)
	c.mux.Handle("POST "+Prefix+"logout", c.auth(c.logout))
	c.mux.Handle("GET "+Prefix+"{$}", c.auth(c.overview))
	c.mux.Handle("GET "+Prefix+"search", c.auth(c.search))
	c.mux.Handle("POST "+Prefix+"search", c.auth(c.searchUpload))
	c.mux.Handle("GET "+Prefix+"signal", c.auth(c.signal))
	c.mux.Handle("GET "+Prefix+"review", c.auth(c.review))
	c.mux.Handle("POST "+Prefix+"review/verdict", c.auth(c.verdict))
	c.mux.Handle("POST "+Prefix+"review/suppress", c.auth(c.suppress))
	c.mux.Handle("POST "+Prefix+"review/unsuppress", c.auth(c.unsuppress))
	c.mux.Handle("POST "+Prefix+"review/cap", c.auth(c.setCap))
	c.mux.Handle("GET "+Prefix+"audit", c.auth(c.audit))
	c.mux.Handle("GET "+Prefix+"report", c.auth(c.report))
}

// ServeHTTP serves a console request with the console's security headers; every POST must come
// from the console's own origin.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
	if c.cfg.Token == "" && !LoopbackHost(r.Host) {
		// Without a token, anyone who reaches the listener may sign in; a page of another site whose
		// name was rebound to this address would be same-origin with the console. So a console
		// without a token answers only to loopback names.
		c.log.WarnContext(r.Context(), "console request for a non-loopback host refused (the node has no token)", "host", r.Host)
		http.Error(w, "this node has no token, so its console answers only at localhost or a loopback address", http.StatusForbidden)
		return
	}
	c.cop.Handler(c.mux).ServeHTTP(w, r)
}

// LoopbackHost reports whether a Host header names this machine by a loopback address or
// "localhost".
func LoopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
