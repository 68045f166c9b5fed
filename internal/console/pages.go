package console

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/consortium/pdq"
	"github.com/hashfed/hashfed/internal/reportpage"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"github.com/hashfed/hashfed/store"
)

var funcs = template.FuncMap{
	"rfc3339": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	},
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"ms": func(ms int64) string {
		if ms == 0 {
			return "never"
		}
		return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"stance":    consortium.StanceName,
	"signalURL": signalURL,
	"join":      strings.Join,
	"role":      consortium.RoleName,
	"dict": func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	},
}

// signalURL is the console page of a signal.
func signalURL(sig consortium.Signal) string {
	return Prefix + "signal?type=" + url.QueryEscape(sig.Type.String()) + "&value=" + url.QueryEscape(sig.Text())
}

// page is what every template gets.
type page struct {
	Title    string
	Nav      string
	Member   string
	Name     string
	Reviewer string
	CSRF     string
	Flash    string
	Data     any
}

// render writes a page with the layout.
func (c *Console) render(w http.ResponseWriter, r *http.Request, code int, name, title string, data any) {
	p := page{Title: title, Nav: name, Data: data}
	if x := sessionOf(r); x != nil {
		p.Reviewer, p.CSRF, p.Flash = x.reviewer, x.csrf, c.sessions.takeFlash(x)
		st := c.cfg.Node.Status()
		p.Member, p.Name = st.Member, st.ConsortiumName
	}
	var b bytes.Buffer
	if err := c.pages[name].ExecuteTemplate(&b, "layout.html", p); err != nil {
		c.log.ErrorContext(r.Context(), "console page", "page", name, "err", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	w.Write(b.Bytes())
}

// done sends the browser back to a console page with a message for it.
func (c *Console) done(w http.ResponseWriter, r *http.Request, back, msg string) {
	c.sessions.setFlash(sessionOf(r), msg)
	http.Redirect(w, r, safeNext(back), http.StatusSeeOther)
}

// fail answers a bad request with a page naming the problem.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, code int, err error) {
	c.render(w, r, code, "error", "Problem", err.Error())
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	st := c.cfg.Node.Status()
	var alive int
	for _, p := range st.Peers {
		if p.State == "alive" {
			alive++
		}
	}
	c.render(w, r, http.StatusOK, "overview", "Overview", struct {
		S      *pb.StatusResponse
		Alive  int
		Held   int
		Uptime string
	}{st, alive, len(c.cfg.Store.Policy().Held), (time.Duration(st.UptimeMs) * time.Millisecond).Round(time.Second).String()})
}

// result is one search result: a match and the query that found it.
type result struct {
	Query  string
	M      store.Match
	Review *store.Review
}

type searchData struct {
	Type, Value string
	Radius      int
	Results     []result
	Searched    bool
	Error       string
	Video       bool
	Types       []string
}

func (c *Console) newSearch() searchData {
	d := searchData{Type: "pdq", Radius: store.DefaultQuery().Radius, Video: c.cfg.HashVideo != nil}
	for _, t := range consortium.SignalTypes() {
		d.Types = append(d.Types, t.String())
	}
	return d
}

func (c *Console) query() store.Query {
	q := store.DefaultQuery()
	q.IncludeHidden, q.Inspect = true, true
	return q
}

func (c *Console) matchAll(d *searchData, label string, sig consortium.Signal, q store.Query) {
	ms, err := c.cfg.Store.MatchSignal(sig, q)
	if err != nil {
		d.Error = err.Error()
		return
	}
	for _, m := range ms {
		res := result{Query: label, M: m}
		if rv, ok := c.cfg.Store.ReviewOf(m.Signal); ok {
			res.Review = &rv
		}
		d.Results = append(d.Results, res)
	}
}

func (c *Console) search(w http.ResponseWriter, r *http.Request) {
	d := c.newSearch()
	qs := r.URL.Query()
	if qs.Get("value") == "" {
		c.render(w, r, http.StatusOK, "search", "Search", d)
		return
	}
	d.Searched = true
	d.Type, d.Value = qs.Get("type"), qs.Get("value")
	q := c.query()
	if s := qs.Get("radius"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 || v > store.MaxRadius {
			d.Error = fmt.Sprintf("radius %q: want a whole number from 0 to %d", s, store.MaxRadius)
			c.render(w, r, http.StatusBadRequest, "search", "Search", d)
			return
		}
		q.Radius = v
	}
	d.Radius = q.Radius
	sig, err := consortium.ParseSignal(d.Type, strings.TrimSpace(d.Value))
	if err != nil {
		d.Error = err.Error()
		c.render(w, r, http.StatusBadRequest, "search", "Search", d)
		return
	}
	c.matchAll(&d, sig.String(), sig, q)
	c.render(w, r, http.StatusOK, "search", "Search", d)
}

// searchUpload hashes an uploaded image (or video, when the node can) and matches its hashes.
func (c *Console) searchUpload(w http.ResponseWriter, r *http.Request) {
	d := c.newSearch()
	d.Searched = true
	f, hdr, err := r.FormFile("file")
	if err != nil {
		d.Error = "choose a file to upload: " + err.Error()
		c.render(w, r, http.StatusBadRequest, "search", "Search", d)
		return
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, c.cfg.MaxUpload+1))
	if err != nil || int64(len(data)) > c.cfg.MaxUpload {
		d.Error = fmt.Sprintf("the file is over %d MiB", c.cfg.MaxUpload>>20)
		c.render(w, r, http.StatusRequestEntityTooLarge, "search", "Search", d)
		return
	}
	d.Value = hdr.Filename
	kind := http.DetectContentType(data)
	q := c.query()
	var sigs []consortium.Signal
	var labels []string
	switch {
	case strings.HasPrefix(kind, "video/"):
		if c.cfg.HashVideo == nil {
			d.Error = "this node cannot hash videos yet (vPDQ): search by one of the video's hashes instead"
			c.render(w, r, http.StatusUnprocessableEntity, "search", "Search", d)
			return
		}
		vs, err := c.cfg.HashVideo(r.Context(), data)
		if err != nil {
			d.Error = "the video could not be hashed: " + err.Error()
			c.render(w, r, http.StatusUnprocessableEntity, "search", "Search", d)
			return
		}
		for _, s := range vs {
			sigs, labels = append(sigs, s), append(labels, "video frame "+s.String())
		}
	default:
		img, _, err := pdq.Decode(bytes.NewReader(data), pdq.DefaultDecodeOptions())
		if err != nil {
			d.Error = "not an image this node can read (" + kind + "): " + err.Error()
			c.render(w, r, http.StatusUnprocessableEntity, "search", "Search", d)
			return
		}
		h, quality := pdq.HashImage(img)
		p, err := consortium.ParseSignal("pdq", h.String())
		if err == nil {
			sigs, labels = append(sigs, p), append(labels, fmt.Sprintf("PDQ of the image (quality %d)", quality))
		}
		m5, s256 := md5.Sum(data), sha256.Sum256(data)
		m, _ := consortium.SignalFromBytes(consortium.MD5, m5[:])
		s, _ := consortium.SignalFromBytes(consortium.SHA256, s256[:])
		sigs, labels = append(sigs, m, s), append(labels, "MD5 of the file", "SHA-256 of the file")
	}
	for i, sig := range sigs {
		c.matchAll(&d, labels[i], sig, q)
	}
	c.render(w, r, http.StatusOK, "search", "Search", d)
}

// signalFrom reads the signal named by the request's type and value.
func signalFrom(typ, value string) (consortium.Signal, error) {
	if typ == "" || value == "" {
		return consortium.Signal{}, errors.New("name a signal: its type (pdq, md5, sha256, url) and value")
	}
	return consortium.ParseSignal(typ, strings.TrimSpace(value))
}

func (c *Console) signal(w http.ResponseWriter, r *http.Request) {
	sig, err := signalFrom(r.URL.Query().Get("type"), r.URL.Query().Get("value"))
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err)
		return
	}
	m, found, err := c.cfg.Store.Lookup(sig)
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	hist, err := c.cfg.Store.History(sig)
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	pol := c.cfg.Store.Policy()
	d := struct {
		Sig        consortium.Signal
		M          store.Match
		Found      bool
		History    []store.HistoryItem
		Suppressed *store.Suppression
		Held       *store.Hold
		Review     *store.Review
		Back       string
	}{Sig: sig, M: m, Found: found, History: hist, Back: signalURL(sig)}
	for _, x := range pol.Suppressed {
		if x.Signal == sig {
			d.Suppressed = &x
		}
	}
	for _, x := range pol.Held {
		if x.Signal == sig {
			d.Held = &x
		}
	}
	for _, x := range pol.Reviews {
		if x.Signal == sig {
			d.Review = &x
		}
	}
	c.render(w, r, http.StatusOK, "signal", sig.Type.String()+" "+shortText(sig.Text()), d)
}

func shortText(s string) string {
	if len(s) > 16 {
		return s[:16] + "…"
	}
	return s
}

// maxQueue bounds each review queue shown.
const maxQueue = 200

func (c *Console) review(w http.ResponseWriter, r *http.Request) {
	pol := c.cfg.Store.Policy()
	var held []result
	for _, h := range pol.Held {
		m, _, err := c.cfg.Store.Lookup(h.Signal)
		if err != nil {
			c.fail(w, r, http.StatusInternalServerError, err)
			return
		}
		held = append(held, result{Query: fmt.Sprintf("held since %s: %d uploads in a window, usual %.1f", h.Since.Format(time.RFC3339), h.Matches, h.Usual), M: m})
	}
	disputed, err := c.cfg.Store.Disputed(maxQueue)
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	var disputes []result
	for _, m := range disputed {
		res := result{M: m}
		if rv, ok := c.cfg.Store.ReviewOf(m.Signal); ok {
			res.Review = &rv
		}
		disputes = append(disputes, res)
	}
	type capRow struct {
		Kind, Name string
		Cap        int
	}
	var caps []capRow
	for _, k := range sortedKeys(pol.MemberCaps) {
		caps = append(caps, capRow{"member", k, pol.MemberCaps[k]})
	}
	for _, k := range sortedKeys(pol.LabelCaps) {
		caps = append(caps, capRow{"label", k, pol.LabelCaps[k]})
	}
	c.render(w, r, http.StatusOK, "review", "Review", struct {
		Held       []result
		Disputes   []result
		Suppressed []store.Suppression
		Caps       []capRow
		Reviews    []store.Review
		MaxRadius  int
	}{held, disputes, pol.Suppressed, caps, pol.Reviews, store.MaxRadius})
}

func sortedKeys(m map[string]int) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// verdict confirms or deconfirms a match and, unless unticked, publishes it as an opinion.
func (c *Console) verdict(w http.ResponseWriter, r *http.Request) {
	sig, err := signalFrom(r.PostFormValue("type"), r.PostFormValue("value"))
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err)
		return
	}
	v, err := store.ParseVerdict(r.PostFormValue("verdict"))
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err)
		return
	}
	publish := r.PostFormValue("publish") == "on"
	reviewer := sessionOf(r).reviewer
	rv, err := c.cfg.Node.Review(r.Context(), sig, reviewer, v, strings.TrimSpace(r.PostFormValue("note")), publish)
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err)
		return
	}
	c.log.InfoContext(r.Context(), "review", "signal", sig.String(), "verdict", string(v), "reviewer", reviewer, "opinion", rv.Opinion)
	msg := fmt.Sprintf("%s: %sed by %s.", sig, v, reviewer)
	if rv.Opinion >= 0 {
		msg += fmt.Sprintf(" Published as opinion %d of %s's log.", rv.Opinion, c.cfg.Node.Status().Member)
	} else {
		msg += " Kept local (not published)."
	}
	c.done(w, r, r.PostFormValue("back"), msg)
}

func (c *Console) suppress(w http.ResponseWriter, r *http.Request) {
	sig, err := signalFrom(r.PostFormValue("type"), r.PostFormValue("value"))
	if err == nil {
		err = c.cfg.Store.Suppress(sig, sessionOf(r).reviewer, r.PostFormValue("why"))
	}
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err)
		return
	}
	c.log.InfoContext(r.Context(), "suppressed", "signal", sig.String(), "by", sessionOf(r).reviewer)
	c.done(w, r, r.PostFormValue("back"), sig.String()+" is suppressed: this node no longer matches it.")
}

func (c *Console) unsuppress(w http.ResponseWriter, r *http.Request) {
	sig, err := signalFrom(r.PostFormValue("type"), r.PostFormValue("value"))
	if err == nil {
		err = c.cfg.Store.Unsuppress(sig)
	}
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err)
		return
	}
	c.log.InfoContext(r.Context(), "unsuppressed", "signal", sig.String(), "by", sessionOf(r).reviewer)
	c.done(w, r, r.PostFormValue("back"), sig.String()+" is no longer suppressed.")
}

func (c *Console) setCap(w http.ResponseWriter, r *http.Request) {
	kind, name := r.PostFormValue("kind"), strings.TrimSpace(r.PostFormValue("name"))
	limit := -1
	if s := strings.TrimSpace(r.PostFormValue("cap")); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			c.fail(w, r, http.StatusBadRequest, fmt.Errorf("cap %q: want a whole number from 0 to %d, or nothing to remove the cap", s, store.MaxRadius))
			return
		}
		limit = v
	}
	var err error
	switch kind {
	case "member":
		err = c.cfg.Store.SetMemberCap(name, limit)
	case "label":
		err = c.cfg.Store.SetLabelCap(name, limit)
	default:
		err = fmt.Errorf("cap kind %q: want member or label", kind)
	}
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err)
		return
	}
	msg := fmt.Sprintf("The %s %s now has distance cap %d.", kind, name, limit)
	if limit < 0 {
		msg = fmt.Sprintf("The %s %s has no distance cap now.", kind, name)
	}
	c.done(w, r, Prefix+"review", msg)
}

// reportPeriod reads from and to (dates) or defaults to the last twelve whole weeks.
func (c *Console) reportPeriod(r *http.Request) (from, to time.Time, err error) {
	now := c.cfg.Now().UTC()
	to = time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, 1)
	from = to.AddDate(0, 0, -84)
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &from}, {"to", &to}} {
		if s := r.URL.Query().Get(p.name); s != "" {
			if *p.dst, err = time.Parse(time.DateOnly, s); err != nil {
				return from, to, fmt.Errorf("%s %q: want a date YYYY-MM-DD", p.name, s)
			}
		}
	}
	return from, to, nil
}

func (c *Console) auditInput(ctx context.Context) (consortium.AuditInput, *consortium.Genesis, error) {
	in, err := c.cfg.Node.AuditInput(ctx)
	if err != nil {
		return in, nil, err
	}
	g, err := consortium.ParseGenesis(in.Genesis)
	return in, g, err
}

func (c *Console) audit(w http.ResponseWriter, r *http.Request) {
	from, to, err := c.reportPeriod(r)
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err)
		return
	}
	in, g, err := c.auditInput(r.Context())
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	ar := consortium.Audit(in, consortium.AuditOptions{})
	rep, err := consortium.NewReport(g, ar.VerifiedLogs(in.Logs), in.Evidence, from, to)
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err)
		return
	}
	c.render(w, r, http.StatusOK, "audit", "Audit", struct {
		A        *consortium.AuditReport
		R        *consortium.Report
		Charts   []reportpage.Chart
		From, To string
	}{ar, rep, reportpage.Charts(rep), from.Format(time.DateOnly), to.Format(time.DateOnly)})
}

// report downloads the transparency report of a period, as HTML or JSON.
func (c *Console) report(w http.ResponseWriter, r *http.Request) {
	from, to, err := c.reportPeriod(r)
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err)
		return
	}
	in, g, err := c.auditInput(r.Context())
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	// Only the signed entries, as the audit verifies them (PROTOCOL.md section 13).
	ar := consortium.Audit(in, consortium.AuditOptions{})
	rep, err := consortium.NewReport(g, ar.VerifiedLogs(in.Logs), in.Evidence, from, to)
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err)
		return
	}
	name := fmt.Sprintf("hashfed-report-%s-%s", from.Format(time.DateOnly), to.Format(time.DateOnly))
	if r.URL.Query().Get("format") == "json" {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.json"`)
		w.Write(consortium.MarshalReport(rep))
		return
	}
	var b bytes.Buffer
	if err := reportpage.Write(&b, rep); err != nil {
		c.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.html"`)
	w.Write(b.Bytes())
}
