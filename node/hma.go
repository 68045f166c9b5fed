package node

// HMA-compatible endpoints, on Config.HTTPListen beside the JSON API, so that a client written for
// Meta's Hasher-Matcher-Actioner (HMA, open-media-match) or ROOST's Coop works against a node
// unchanged. Request and response fields are HMA's; docs/API.md ("pytx and HMA") has the table.
//
//	GET  /status, /status/live     no token; "I-AM-ALIVE" (503 "SHUTTING-DOWN" while stopping)
//	GET  /m/lookup?signal_type=pdq&signal=<hex>[&banks=a,b][&max_distance=N][&detail=true]
//	                               {"<bank>":[{"bank_content_id":12,"distance":"4"}]}
//	GET  /m/lookup?url=...         hash a remote file then look it up (only with an allow-list)
//	POST /m/lookup                 multipart upload, field "photo" or "video": {"<signal_type>":{"<bank>":[...]}}
//	GET  /m/raw_lookup?signal_type=&signal=[&include_distance=true][&banks=][&max_distance=]
//	                               {"matches":[12,...]} or {"matches":[{"bank_content_id":12,"distance":"4","bank":"alpha"}]}
//	GET  /h/hash?url=...           hash a remote file (only with an allow-list; off by default)
//	POST /h/hash                   multipart upload: {"pdq":"<hex>","video_md5":"<hex>","video_sha256":"<hex>"}
//	POST /m/compare                {"pdq":["<hex>","<hex>"]} -> {"pdq":[true,{"distance":9}]}
//	GET  /m/index/status           {"pdq":{"present":true,"built_to":<unix s>,"size":N},...}
//	GET  /c/banks, /c/bank/<name>  read-only: [{"name":"alpha","matching_enabled_ratio":1.0,"local":false}]
//
// A bank is a member (every listing of that member is one bank content, whose id is the index of
// its add entry in the member's log, unique within the bank), or a local bank, named
// "local:<name>" and marked "local":true (a content id is then 48 bits of the SHA-256 of the
// signal's type and value). Errors are HMA's {"message": ...}.
//
// Beyond HMA (its issues #1827 and #1681): max_distance sets the PDQ distance of one request (0 to
// 63; default 31, HMA's threshold), and detail=true answers with the hashes and, on every match,
// the matched signal, the listing with its labels and the opinions on the signal:
//
//	{"hashes":{"pdq":"<hex>"},"matches":{"pdq":{"<bank>":[{"bank_content_id":12,"distance":"4",
//	  "signal":{...},"listing":{...},"opinions":[...],"local":false}]}}}

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/consortium/hashlist"
	"github.com/hashfed/hashfed/consortium/pdq"
	"github.com/hashfed/hashfed/store"
	"google.golang.org/grpc/codes"
)

// maxUploadBytes bounds a file uploaded to /h/hash or /m/lookup, and a file fetched by URL.
const maxUploadBytes = 64 << 20

// hmaPDQThreshold is HMA's (and pytx's) PDQ match threshold, the default max_distance.
const hmaPDQThreshold = 31

// registerHMA adds the HMA-compatible endpoints to mux.
func (n *Node) registerHMA(mux *http.ServeMux) {
	get := []string{http.MethodGet}
	mux.Handle("/status", n.route(false, []string{http.MethodGet, http.MethodHead}, n.handleHMAStatus))
	mux.Handle("/status/live", n.route(false, []string{http.MethodGet, http.MethodHead}, n.handleHMAStatus))
	mux.Handle("/m/lookup", n.routeLimit(true, []string{http.MethodGet, http.MethodPost}, maxUploadBytes+(1<<20), n.handleHMALookup))
	mux.Handle("/m/raw_lookup", n.route(true, get, n.handleHMARawLookup))
	mux.Handle("/m/compare", n.route(true, []string{http.MethodPost}, n.handleHMACompare))
	mux.Handle("/m/index/status", n.route(true, get, n.handleHMAIndexStatus))
	mux.Handle("/h/hash", n.routeLimit(true, []string{http.MethodGet, http.MethodPost}, maxUploadBytes+(1<<20), n.handleHMAHash))
	mux.Handle("/c/banks", n.route(true, get, n.handleHMABanks))
	mux.Handle("/c/bank/", n.route(true, get, n.handleHMABank))
}

// hmaError writes HMA's error body, {"message": msg}.
func hmaError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"message": msg})
}

// hmaErr writes err with the status its class calls for, in HMA's shape.
func hmaErr(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		code = http.StatusRequestEntityTooLarge
	case errors.Is(err, errHashByURLOff):
		code = http.StatusForbidden
	case errors.Is(err, errBadRequest), errors.Is(err, consortium.ErrInvalidSignal), errors.Is(err, consortium.ErrUnknownSignalType):
		code = http.StatusBadRequest
	default:
		switch codeOf(err) {
		case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
			code = http.StatusBadRequest
		case codes.Unavailable, codes.Canceled, codes.DeadlineExceeded:
			code = http.StatusServiceUnavailable
		}
	}
	hmaError(w, code, err.Error())
}

func (n *Node) handleHMAStatus(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if n.ctx.Err() != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "SHUTTING-DOWN")
		return
	}
	io.WriteString(w, "I-AM-ALIVE")
}

// hmaTypeName is the name HMA and pytx give a signal type.
func hmaTypeName(t consortium.SignalType) string {
	name, _ := hashlist.PytxType(t.String(), "")
	return name
}

// hmaSignal parses a signal named as HMA and pytx name it (video_md5, ...) or as hashfed does.
func hmaSignal(typeName, value string) (consortium.Signal, error) {
	if typeName == "" || value == "" {
		return consortium.Signal{}, fmt.Errorf("%w: both signal_type and signal are required", errBadRequest)
	}
	t, v := hashlist.NormalType(typeName, value)
	return consortium.ParseSignal(t, v)
}

// hmaParams are the options every lookup takes.
type hmaParams struct {
	banks       map[string]bool // nil: every bank
	maxDistance int
	detail      bool
}

func parseHMAParams(q url.Values) (hmaParams, error) {
	p := hmaParams{maxDistance: hmaPDQThreshold}
	if s := q.Get("banks"); s != "" {
		p.banks = map[string]bool{}
		for _, b := range strings.Split(s, ",") {
			if b = strings.TrimSpace(b); b != "" {
				p.banks[b] = true
			}
		}
	}
	if s := q.Get("max_distance"); s != "" {
		d, err := strconv.Atoi(s)
		if err != nil || d < 0 || d > store.MaxRadius {
			return p, fmt.Errorf("%w: max_distance %q, want 0 to %d", errBadRequest, s, store.MaxRadius)
		}
		p.maxDistance = d
	}
	var err error
	if p.detail, err = hmaBool(q, "detail"); err != nil {
		return p, err
	}
	return p, nil
}

// hmaBool parses a boolean parameter as HMA does: true/1 or false/0, absent is false.
func hmaBool(q url.Values, name string) (bool, error) {
	switch strings.ToLower(q.Get(name)) {
	case "", "false", "0":
		return false, nil
	case "true", "1":
		return true, nil
	}
	return false, fmt.Errorf("%w: %s %q: invalid boolean parameter - prefer true/false", errBadRequest, name, q.Get(name))
}

// hmaMatch is one bank content matched, in HMA's shape, with hashfed's detail when asked.
type hmaMatch struct {
	BankContentID uint64          `json:"bank_content_id"`
	Distance      string          `json:"distance"`
	Bank          string          `json:"bank,omitempty"`
	Signal        *SignalJSON     `json:"signal,omitempty"`
	Listing       *ListingJSON    `json:"listing,omitempty"`
	Opinions      []OpinionJSON   `json:"opinions,omitempty"`
	LocalEntry    *LocalMatchJSON `json:"local_entry,omitempty"`
	Local         *bool           `json:"local,omitempty"`
	// Protected, hashfed's, is on every match of a protected signal, detail or not: the
	// certifications that send the match to human review instead of automated removal.
	Protected []ProtectionJSON `json:"protected,omitempty"`
}

// hmaBankMatches maps a bank to its matches.
type hmaBankMatches map[string][]hmaMatch

// hmaLookup matches sig (of PDQ quality q, -1 when unknown) and groups the listings by bank.
func (n *Node) hmaLookup(sig consortium.Signal, quality int, p hmaParams) (hmaBankMatches, error) {
	q := store.DefaultQuery()
	q.Radius, q.Quality = p.maxDistance, quality
	res, err := n.match(sig, q)
	if err != nil {
		return nil, err
	}
	out := hmaBankMatches{}
	for _, m := range res.matches {
		j := NewMatchJSON(matchToProto(m))
		dist := "-" // pytx's "no distance" for exact types
		if sig.Type == consortium.PDQ {
			dist = strconv.Itoa(m.Distance)
		}
		for i, l := range m.Listings {
			if p.banks != nil && !p.banks[l.Member] {
				continue
			}
			hm := hmaMatch{BankContentID: l.Index, Distance: dist, Protected: j.Protected}
			if p.detail {
				local := false
				hm.Signal, hm.Listing, hm.Opinions, hm.Local = &j.Signal, &j.Listings[i], j.Opinions, &local
			}
			out[l.Member] = append(out[l.Member], hm)
		}
	}
	for _, l := range res.local {
		lm := newLocalMatchJSON(l)
		bank := hmaLocalPrefix + lm.Bank
		if p.banks != nil && !p.banks[bank] {
			continue
		}
		hm := hmaMatch{BankContentID: localContentID(lm.Signal), Distance: "-"}
		if sig.Type == consortium.PDQ {
			hm.Distance = strconv.Itoa(lm.Distance)
		}
		if p.detail {
			local, lm := true, lm
			hm.LocalEntry, hm.Local = &lm, &local
		}
		out[bank] = append(out[bank], hm)
	}
	return out, nil
}

// hmaLocalPrefix starts the HMA name of a local bank, so that it never collides with a member's.
const hmaLocalPrefix = "local:"

// localContentID is the bank_content_id of a local bank's entry: the first 48 bits of the SHA-256
// of its type and value (stable, and exact in a JSON number).
func localContentID(s SignalJSON) uint64 {
	sum := sha256.Sum256([]byte(s.Type + " " + s.Value))
	var v uint64
	for _, b := range sum[:6] {
		v = v<<8 | uint64(b)
	}
	return v
}

func (n *Node) handleHMALookup(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p, err := parseHMAParams(q)
	if err != nil {
		hmaErr(w, err)
		return
	}
	var hashes []hmaHash
	switch {
	case r.Method == http.MethodPost:
		if hashes, err = n.hashUpload(r); err != nil {
			hmaErr(w, err)
			return
		}
	case q.Get("url") != "":
		if hashes, err = n.hashURL(r, q.Get("url"), q.Get("content_type")); err != nil {
			hmaErr(w, err)
			return
		}
	default:
		sig, err := hmaSignal(q.Get("signal_type"), q.Get("signal"))
		if err != nil {
			hmaErr(w, err)
			return
		}
		bm, err := n.hmaLookup(sig, -1, p)
		if err != nil {
			hmaErr(w, err)
			return
		}
		if p.detail {
			writeJSON(w, http.StatusOK, hmaDetail{Hashes: map[string]string{hmaTypeName(sig.Type): sig.Text()},
				Matches: map[string]hmaBankMatches{hmaTypeName(sig.Type): bm}})
			return
		}
		writeJSON(w, http.StatusOK, bm)
		return
	}
	d := hmaDetail{Hashes: map[string]string{}, Matches: map[string]hmaBankMatches{}}
	for _, h := range hashes {
		bm, err := n.hmaLookup(h.sig, h.quality, p)
		if err != nil {
			hmaErr(w, err)
			return
		}
		name := hmaTypeName(h.sig.Type)
		d.Hashes[name], d.Matches[name] = h.sig.Text(), bm
	}
	if p.detail {
		writeJSON(w, http.StatusOK, d)
		return
	}
	writeJSON(w, http.StatusOK, d.Matches)
}

// hmaDetail is the answer of a lookup with detail=true.
type hmaDetail struct {
	Hashes  map[string]string         `json:"hashes"`
	Matches map[string]hmaBankMatches `json:"matches"`
}

func (n *Node) handleHMARawLookup(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p, err := parseHMAParams(q)
	if err != nil {
		hmaErr(w, err)
		return
	}
	withDist, err := hmaBool(q, "include_distance")
	if err != nil {
		hmaErr(w, err)
		return
	}
	sig, err := hmaSignal(q.Get("signal_type"), q.Get("signal"))
	if err != nil {
		hmaErr(w, err)
		return
	}
	bm, err := n.hmaLookup(sig, -1, p)
	if err != nil {
		hmaErr(w, err)
		return
	}
	banks := make([]string, 0, len(bm))
	for b := range bm {
		banks = append(banks, b)
	}
	slices.Sort(banks)
	matches := []any{}
	for _, b := range banks {
		for _, m := range bm[b] {
			if withDist || p.detail {
				m.Bank = b
				matches = append(matches, m)
			} else {
				matches = append(matches, m.BankContentID)
			}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"matches": matches})
}

func (n *Node) handleHMACompare(w http.ResponseWriter, r *http.Request) {
	p, err := parseHMAParams(r.URL.Query())
	if err != nil {
		hmaErr(w, err)
		return
	}
	var req map[string]json.RawMessage
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		hmaErr(w, fmt.Errorf("%w: Request input was not a dict: %v", errBadRequest, err))
		return
	}
	out := map[string]any{}
	for name, raw := range req {
		var pair []string
		if err := json.Unmarshal(raw, &pair); err != nil {
			hmaErr(w, fmt.Errorf("%w: Comparison hashes for %s was not a list of strings", errBadRequest, name))
			return
		}
		if len(pair) != 2 {
			hmaErr(w, fmt.Errorf("%w: Comparison hash list length must be exactly 2", errBadRequest))
			return
		}
		a, err := hmaSignal(name, pair[0])
		if err == nil {
			var b consortium.Signal
			if b, err = hmaSignal(name, pair[1]); err == nil {
				if a.Type == consortium.PDQ {
					d := pdq.Distance(pdq.Hash(a.Value), pdq.Hash(b.Value))
					out[name] = []any{d <= p.maxDistance, map[string]int{"distance": d}}
				} else {
					out[name] = []any{a == b, map[string]any{}}
				}
			}
		}
		if err != nil {
			hmaErr(w, fmt.Errorf("%w: Invalid %s hash: %v", errBadRequest, name, err))
			return
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (n *Node) handleHMAIndexStatus(w http.ResponseWriter, r *http.Request) {
	counts := map[consortium.SignalType]int{}
	n.store.View(func(s *consortium.State) {
		for id := range uint32(s.NumSignalIDs()) {
			if sig, ok := s.SignalByID(id); ok && len(s.ListedByID(id)) > 0 {
				counts[sig.Type]++
			}
		}
	})
	built := time.Now().Unix()
	out := map[string]any{}
	for _, t := range consortium.SignalTypes() {
		out[hmaTypeName(t)] = map[string]any{"present": true, "built_to": built, "size": counts[t]}
	}
	writeJSON(w, http.StatusOK, out)
}

// hmaBank is a bank in HMA's shape; local says whether it is one of this node's local banks
// (never shared) rather than a member's listings.
type hmaBank struct {
	Name                 string  `json:"name"`
	MatchingEnabledRatio float64 `json:"matching_enabled_ratio"`
	Local                bool    `json:"local"`
}

// hmaBanks lists the banks: every member that can list signals, then the local banks.
func (n *Node) hmaBanks() ([]hmaBank, error) {
	var out []hmaBank
	n.store.View(func(s *consortium.State) {
		r := s.Roster()
		for _, m := range r.Members {
			if r.CanAdd(m.ID) {
				out = append(out, hmaBank{Name: m.ID, MatchingEnabledRatio: 1})
			}
		}
	})
	locals, err := n.store.LocalBanks()
	for _, b := range locals {
		out = append(out, hmaBank{Name: hmaLocalPrefix + b.Name, MatchingEnabledRatio: 1, Local: true})
	}
	return out, err
}

func (n *Node) handleHMABanks(w http.ResponseWriter, r *http.Request) {
	banks, err := n.hmaBanks()
	if err != nil {
		hmaErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, banks)
}

func (n *Node) handleHMABank(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/c/bank/")
	banks, err := n.hmaBanks()
	if err != nil {
		hmaErr(w, err)
		return
	}
	for _, b := range banks {
		if b.Name == name {
			writeJSON(w, http.StatusOK, b)
			return
		}
	}
	hmaError(w, http.StatusNotFound, fmt.Sprintf("bank '%s' not found", name))
}

// hmaHash is one hash of an uploaded or fetched file.
type hmaHash struct {
	sig     consortium.Signal
	quality int // PDQ quality, -1 for other types
}

// errHashByURLOff means hashing by URL is asked for but no host is allowed.
var errHashByURLOff = errors.New("hashing by URL is off on this node (set http.hash_url_allow)")

// hashBytes hashes a file's bytes: MD5 and SHA-256 always, PDQ for a photo (an image that does
// not decode is refused).
func hashBytes(data []byte, contentType string) ([]hmaHash, error) {
	m, s := md5.Sum(data), sha256.Sum256(data)
	var out []hmaHash
	if contentType == "photo" {
		img, _, err := pdq.Decode(bytes.NewReader(data), pdq.DefaultDecodeOptions())
		if err != nil {
			return nil, fmt.Errorf("%w: photo: %v", errBadRequest, err)
		}
		h, q := pdq.HashImage(img)
		sig, err := consortium.SignalFromBytes(consortium.PDQ, h[:])
		if err != nil {
			return nil, fmt.Errorf("%w: photo: %v", errBadRequest, err)
		}
		out = append(out, hmaHash{sig, q})
	}
	ms, _ := consortium.SignalFromBytes(consortium.MD5, m[:])
	ss, _ := consortium.SignalFromBytes(consortium.SHA256, s[:])
	return append(out, hmaHash{ms, -1}, hmaHash{ss, -1}), nil
}

// hashUpload hashes the one file of a multipart upload, whose field name is its content type
// (photo or video), as HMA requires.
func (n *Node) hashUpload(r *http.Request) ([]hmaHash, error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, fmt.Errorf("%w: Missing multipart/form-data file upload: %v", errBadRequest, err)
	}
	var hashes []hmaHash
	files := 0
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: multipart: %w", errBadRequest, err)
		}
		if part.FileName() == "" {
			part.Close()
			continue // a form value, not a file
		}
		if files++; files > 1 {
			return nil, fmt.Errorf("%w: Only one file allowed per request", errBadRequest)
		}
		hashes, err = hashPart(part)
		if err != nil {
			return nil, err
		}
	}
	if files == 0 {
		return nil, fmt.Errorf("%w: Missing multipart/form-data file upload", errBadRequest)
	}
	return hashes, nil
}

func hashPart(part *multipart.Part) ([]hmaHash, error) {
	defer part.Close()
	ct := part.FormName()
	if ct != "photo" && ct != "video" {
		return nil, fmt.Errorf("%w: no such content_type: '%s' (the file's field name must be photo or video)", errBadRequest, ct)
	}
	data, err := io.ReadAll(io.LimitReader(part, maxUploadBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxUploadBytes {
		return nil, &http.MaxBytesError{Limit: maxUploadBytes}
	}
	return hashBytes(data, ct)
}

// hashURL fetches a file from a host on Config.HashURLAllow and hashes it; the content type is
// the given one (photo or video) or read from the answer's Content-Type.
func (n *Node) hashURL(r *http.Request, raw, contentType string) ([]hmaHash, error) {
	if len(n.cfg.HashURLAllow) == 0 {
		return nil, errHashByURLOff
	}
	u, err := n.allowedURL(raw)
	if err != nil {
		return nil, err
	}
	c := &http.Client{
		Timeout: 30 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			_, err := n.allowedURL(req.URL.String())
			return err
		},
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("%w: url: %v", errBadRequest, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: Failed to fetch URL: %v", errBadRequest, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: Failed to fetch URL: %s", errBadRequest, resp.Status)
	}
	if contentType == "" {
		switch mt := strings.ToLower(resp.Header.Get("Content-Type")); {
		case strings.HasPrefix(mt, "image"):
			contentType = "photo"
		case strings.HasPrefix(mt, "video"):
			contentType = "video"
		default:
			return nil, fmt.Errorf("%w: unsupported url ContentType: '%s', if you know the expected type, provide it with the content_type query param", errBadRequest, mt)
		}
	}
	if contentType != "photo" && contentType != "video" {
		return nil, fmt.Errorf("%w: no such content_type: '%s'", errBadRequest, contentType)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxUploadBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: Failed to fetch URL: %v", errBadRequest, err)
	}
	if len(data) > maxUploadBytes {
		return nil, &http.MaxBytesError{Limit: maxUploadBytes}
	}
	return hashBytes(data, contentType)
}

// allowedURL parses raw and checks that it is http(s) to a host of Config.HashURLAllow (the host
// itself or a subdomain of it).
func (n *Node) allowedURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: Invalid or unsafe URL provided: want an http or https URL", errBadRequest)
	}
	host := strings.ToLower(u.Hostname())
	for _, a := range n.cfg.HashURLAllow {
		a = strings.ToLower(a)
		if host == a || strings.HasSuffix(host, "."+a) {
			return u, nil
		}
	}
	return nil, fmt.Errorf("%w: Invalid or unsafe URL provided: host %q is not on http.hash_url_allow", errBadRequest, host)
}

func (n *Node) handleHMAHash(w http.ResponseWriter, r *http.Request) {
	var hashes []hmaHash
	var err error
	if r.Method == http.MethodPost {
		hashes, err = n.hashUpload(r)
	} else {
		q := r.URL.Query()
		if q.Get("url") == "" {
			err = fmt.Errorf("%w: url is required", errBadRequest)
		} else {
			hashes, err = n.hashURL(r, q.Get("url"), q.Get("content_type"))
		}
	}
	if err != nil {
		hmaErr(w, err)
		return
	}
	out := map[string]string{}
	for _, h := range hashes {
		out[hmaTypeName(h.sig.Type)] = h.sig.Text()
	}
	writeJSON(w, http.StatusOK, out)
}
