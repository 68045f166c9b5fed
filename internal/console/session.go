package console

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// cookieName is the session cookie.
const cookieName = "hashfed_console"

// maxSessions bounds the sessions held; a sign-in beyond it is refused until some expire.
const maxSessions = 1024

// session is one signed-in person.
type session struct {
	id       string
	csrf     string
	reviewer string
	expires  time.Time
	flash    string
}

type sessions struct {
	mu  sync.Mutex
	m   map[string]*session
	ttl time.Duration
	now func() time.Time
}

func newSessions(ttl time.Duration, now func() time.Time) *sessions {
	return &sessions{m: map[string]*session{}, ttl: ttl, now: now}
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session for reviewer, or returns nil when too many are open.
func (s *sessions) create(reviewer string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if len(s.m) >= maxSessions {
		for id, x := range s.m {
			if now.After(x.expires) {
				delete(s.m, id)
			}
		}
		if len(s.m) >= maxSessions {
			return nil
		}
	}
	x := &session{id: randomToken(), csrf: randomToken(), reviewer: reviewer, expires: now.Add(s.ttl)}
	s.m[x.id] = x
	return x
}

// get returns the live session of r's cookie.
func (s *sessions) get(r *http.Request) *session {
	ck, err := r.Cookie(cookieName)
	if err != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	x := s.m[ck.Value]
	if x == nil {
		return nil
	}
	if s.now().After(x.expires) {
		delete(s.m, x.id)
		return nil
	}
	return x
}

func (s *sessions) end(x *session) {
	s.mu.Lock()
	delete(s.m, x.id)
	s.mu.Unlock()
}

// setFlash keeps one message for the session's next page; takeFlash returns and clears it.
func (s *sessions) setFlash(x *session, msg string) {
	s.mu.Lock()
	x.flash = msg
	s.mu.Unlock()
}

func (s *sessions) takeFlash(x *session) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := x.flash
	x.flash = ""
	return f
}

type sessionKey struct{}

func sessionOf(r *http.Request) *session {
	x, _ := r.Context().Value(sessionKey{}).(*session)
	return x
}

// auth lets a request through with a live session; a POST must also carry the session's
// anti-forgery token in the form field "csrf". A GET without a session is sent to sign in.
func (c *Console) auth(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		x := c.sessions.get(r)
		if x == nil {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, Prefix+"login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			http.Error(w, "not signed in (or the session expired): sign in at "+Prefix+"login", http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, c.cfg.MaxUpload+1<<20)
			got := r.PostFormValue("csrf")
			if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(x.csrf)) != 1 {
				c.log.WarnContext(r.Context(), "request without the session's anti-forgery token refused", "path", r.URL.Path)
				http.Error(w, "the form's anti-forgery token is missing or wrong: reload the page and try again", http.StatusForbidden)
				return
			}
		}
		h(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, x)))
	})
}

// safeNext returns next when it is a console path, else the overview (no open redirect).
func safeNext(next string) string {
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(u.Path, Prefix) || strings.HasPrefix(next, "//") || strings.Contains(next, "\\") {
		return Prefix
	}
	return u.RequestURI()
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "login", "Sign in", struct {
		Next      string
		NeedToken bool
		Error     string
	}{safeNext(r.URL.Query().Get("next")), c.cfg.Token != "", ""})
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	name := strings.TrimSpace(r.PostFormValue("reviewer"))
	token := r.PostFormValue("token")
	next := safeNext(r.PostFormValue("next"))
	fail := func(code int, msg string) {
		c.render(w, r, code, "login", "Sign in", struct {
			Next      string
			NeedToken bool
			Error     string
		}{next, c.cfg.Token != "", msg})
	}
	if c.cfg.Token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(c.cfg.Token)) != 1 {
		c.log.WarnContext(r.Context(), "console sign-in refused: wrong token")
		time.Sleep(200 * time.Millisecond) // slows guessing
		fail(http.StatusUnauthorized, "That is not this node's token.")
		return
	}
	if name == "" || len(name) > 100 {
		fail(http.StatusBadRequest, "Give your name (up to 100 characters): it is recorded with your reviews and suppressions.")
		return
	}
	x := c.sessions.create(name)
	if x == nil {
		fail(http.StatusServiceUnavailable, "Too many people are signed in; try again later.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: x.id, Path: Prefix, HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode, MaxAge: int(c.cfg.SessionTTL.Seconds())})
	c.log.InfoContext(r.Context(), "console sign-in", "reviewer", name)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	c.sessions.end(sessionOf(r))
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: Prefix, HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
}
