package consortium

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// ReportVersion is the version of the transparency report's JSON form. Version 2 added the
// equivocation cutoffs (Report.Cutoffs); [CheckReport] still checks a version 1 report, which
// applies no cutoff, when no evidence cuts a log.
const ReportVersion = 2

// MaxReportWeeks bounds the period of a transparency report (ten years).
const MaxReportWeeks = 522

// ErrReport means a transparency report could not be computed or does not match the logs.
var ErrReport = errors.New("transparency report")

// Report is a transparency report over a period [From, To): what the members added, revoked and
// disputed, computed from the signed logs alone by [NewReport], so that anyone holding the logs
// recomputes every number ([CheckReport]). Section 13 of PROTOCOL.md defines each number.
type Report struct {
	Version    int       `json:"version"`
	Consortium string    `json:"consortium"`
	Name       string    `json:"name"`
	From       time.Time `json:"from"`
	To         time.Time `json:"to"`
	// Logs is how many entries of each member's log the report covers: those written before To.
	Logs map[string]uint64 `json:"logs"`
	// Digest is the state digest after those entries; Signals and Listings count the listed
	// signals and listings at To (expired listings left out).
	Digest   string `json:"digest"`
	Signals  int    `json:"signals"`
	Listings int    `json:"listings"`

	Totals        ReportTotals `json:"totals"`
	Weeks         []WeekCount  `json:"weeks"`
	ByLabel       []KeyCount   `json:"by_label"`
	ByMember      []KeyCount   `json:"by_member"`
	ByType        []KeyCount   `json:"by_type"`
	RevokeReasons []NameCount  `json:"revoke_reasons"`
	Disputes      Disputes     `json:"disputes"`
	// TimeToRevocation is, for each signal first revoked in the period, the time from its first
	// listing to that revocation.
	TimeToRevocation Durations `json:"time_to_first_revocation"`
	// Cutoffs lists, by member id, the equivocation cutoff of every member the evidence given to
	// [NewReport] proves forked its log (PROTOCOL.md section 5.2) where the cutoff leaves out
	// entries written before To: the report, like every node's state, applies none of that
	// member's entries from the cutoff on. Empty without evidence.
	Cutoffs []ReportCutoff `json:"cutoffs"`
}

// ReportCutoff is the equivocation cutoff a report applied to one member's log.
type ReportCutoff struct {
	Member string `json:"member"`
	// Cutoff is F(M): at most the first Cutoff entries of the log are applied.
	Cutoff uint64 `json:"cutoff"`
	// Resolved is whether resolved evidence sets the cutoff (without it, the cutoff is 0).
	Resolved bool `json:"resolved"`
	// Excluded counts the log's entries written before the period's end that the cutoff leaves
	// out: they are in no number of the report.
	Excluded uint64 `json:"excluded"`
}

// ReportTotals counts the period's entries that replay applied, by operation, and those it ignored.
type ReportTotals struct {
	Additions   int `json:"additions"`
	Revocations int `json:"revocations"`
	Opinions    int `json:"opinions"`
	Disputes    int `json:"disputes"`
	Rejected    int `json:"rejected"`
}

// WeekCount counts additions and revocations in one week, named by its Monday (UTC).
type WeekCount struct {
	Week        string `json:"week"`
	Additions   int    `json:"additions"`
	Revocations int    `json:"revocations"`
}

// KeyCount counts additions and revocations by one key (a label, a member or a signal type).
type KeyCount struct {
	Key         string `json:"key"`
	Additions   int    `json:"additions"`
	Revocations int    `json:"revocations"`
}

// NameCount is a count with its name.
type NameCount struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
}

// Disputes counts the false-positive opinions given in the period (the latest per author and
// signal) and their outcome at To: "revoked" (a lister revoked the signal after the dispute),
// "withdrawn" (the author's opinion is no longer false_positive), or "open".
type Disputes struct {
	Raised   int         `json:"raised"`
	Outcomes []NameCount `json:"outcomes"`
}

// Durations summarises durations in seconds: their count, median and 90th percentile (nearest
// rank), and a histogram.
type Durations struct {
	Count         int         `json:"count"`
	MedianSeconds int64       `json:"median_seconds"`
	P90Seconds    int64       `json:"p90_seconds"`
	Buckets       []NameCount `json:"buckets"`
}

var durationBuckets = []struct {
	name  string
	under time.Duration
}{
	{"under 1 day", 24 * time.Hour},
	{"1 to 7 days", 7 * 24 * time.Hour},
	{"7 to 30 days", 30 * 24 * time.Hour},
	{"30 days or more", 1<<63 - 1},
}

// reportAcc accumulates one report.
type reportAcc struct {
	from, to     int64
	weeks        map[string]*WeekCount
	labels       map[string]*KeyCount
	members      map[string]*KeyCount
	types        map[string]*KeyCount
	reasons      map[string]int
	firstListed  map[Signal]int64
	firstRevoked map[Signal]int64
	lastRevoked  map[Signal]int64
	labelsOf     map[listingKey][]string
	disputes     map[opinionAuthorKey]int64
	totals       ReportTotals
}

type listingKey struct {
	member string
	sig    Signal
}

type opinionAuthorKey struct {
	author string
	sig    Signal
}

// NewReport computes the transparency report of the period [from, to) from the genesis, the
// member logs (each in full, or at least every entry written before to) and the equivocation
// evidence (encoded Equivocation messages, as an audit bundle or a node holds them). It replays
// every entry written before to, as [Replay] does, each forking member's log only up to its
// cutoff ([Cutoffs]), and counts the entries written in the period. Evidence that does not verify,
// or a log that is a third history of a forking member (see [Audit]), is an error.
func NewReport(g *Genesis, logs Logs, evidence [][]byte, from, to time.Time) (*Report, error) {
	from, to = from.UTC().Truncate(time.Millisecond), to.UTC().Truncate(time.Millisecond)
	if !from.Before(to) {
		return nil, fmt.Errorf("%w: the period's start %s is not before its end %s", ErrReport, from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	if to.Sub(from) > MaxReportWeeks*7*24*time.Hour {
		return nil, fmt.Errorf("%w: a period of at most %d weeks, not %v", ErrReport, MaxReportWeeks, to.Sub(from))
	}
	r := &Report{Version: ReportVersion, Consortium: g.ID.String(), Name: g.Name, From: from, To: to, Logs: map[string]uint64{}}
	acc := &reportAcc{
		from: from.UnixMilli(), to: to.UnixMilli(),
		weeks: map[string]*WeekCount{}, labels: map[string]*KeyCount{}, members: map[string]*KeyCount{}, types: map[string]*KeyCount{},
		reasons: map[string]int{}, firstListed: map[Signal]int64{}, firstRevoked: map[Signal]int64{}, lastRevoked: map[Signal]int64{},
		labelsOf: map[listingKey][]string{}, disputes: map[opinionAuthorKey]int64{},
	}
	for w := weekOf(acc.from); w < acc.to; w += 7 * 24 * 3600 * 1000 {
		k := time.UnixMilli(w).UTC().Format(time.DateOnly)
		acc.weeks[k] = &WeekCount{Week: k}
	}
	cuts, err := reportCutoffs(g, logs, evidence)
	if err != nil {
		return nil, err
	}
	cutAt := map[string]uint64{}
	for _, c := range cuts {
		cutAt[c.Member] = c.Cutoff
	}
	s := NewState(g, logs.Reader())
	var changes []Change
	s.OnChange(func(c Change) { changes = append(changes, c) })
	until := ReplayOptions{Until: to.Add(-time.Millisecond)}
	for _, m := range slices.Sorted(maps.Keys(logs)) {
		n := PrefixSize(logs[m], until)
		for i, c := range cuts {
			if c.Member == m && c.Cutoff < n {
				cuts[i].Excluded = n - c.Cutoff
			}
		}
		if f, ok := cutAt[m]; ok {
			n = min(n, f)
		}
		r.Logs[m] = n
		for i, raw := range logs[m][:n] {
			changes = changes[:0]
			rejected := s.nRejected
			if err := s.Apply(m, uint64(i), raw); err != nil {
				return nil, fmt.Errorf("%w: replay: %w", ErrReport, err)
			}
			e, err := ParseEntry(raw)
			if err != nil {
				e = &pb.Entry{} // rejected by Apply as well; counted below by its lack of time
			}
			acc.entry(m, e, s.nRejected > rejected, changes, logs)
		}
	}
	acc.finish(r, s)
	// Only the cutoffs that leave out something the report covers are listed: a report stays
	// true when a member forks later than its period.
	r.Cutoffs = slices.DeleteFunc(cuts, func(c ReportCutoff) bool { return c.Excluded == 0 })
	d := s.Digest()
	r.Digest = fmt.Sprintf("%x", d[:])
	r.Signals, r.Listings = countAt(s, to.Add(-time.Millisecond))
	return r, nil
}

// reportCutoffs verifies the evidence, as an audit does, with the keys of every member the logs
// ever admit, and returns the cutoffs it sets, by member id, with no entry excluded yet.
func reportCutoffs(g *Genesis, logs Logs, evidence [][]byte) ([]ReportCutoff, error) {
	out := []ReportCutoff{}
	if len(evidence) == 0 {
		return out, nil
	}
	keys, err := Replay(g, logs, ReplayOptions{})
	if err != nil {
		return nil, fmt.Errorf("%w: replay for the members' keys: %w", ErrReport, err)
	}
	var evs []*Evidence
	for i, raw := range evidence {
		ev, err := ParseEvidence(g.ID, keys, raw)
		if err != nil {
			return nil, fmt.Errorf("%w: evidence %d does not verify (a report applies only evidence every node would accept): %w", ErrReport, i, err)
		}
		evs = append(evs, ev)
	}
	cut := Cutoffs(evs)
	if _, failures := auditThirdForks(cut, evs, logs); len(failures) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrReport, failures[0])
	}
	unresolved := map[string]bool{}
	for _, m := range Unresolved(evs) {
		unresolved[m] = true
	}
	for _, m := range slices.Sorted(maps.Keys(cut)) {
		out = append(out, ReportCutoff{Member: m, Cutoff: cut[m], Resolved: !unresolved[m]})
	}
	return out, nil
}

// weekOf returns the start (Monday 00:00 UTC) of the week holding t (Unix milliseconds).
func weekOf(t int64) int64 {
	d := time.UnixMilli(t).UTC()
	day := time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, time.UTC)
	back := (int(day.Weekday()) + 6) % 7
	return day.AddDate(0, 0, -back).UnixMilli()
}

func (a *reportAcc) key(m map[string]*KeyCount, k string) *KeyCount {
	if m[k] == nil {
		m[k] = &KeyCount{Key: k}
	}
	return m[k]
}

// entry accounts for one applied entry.
func (a *reportAcc) entry(member string, e *pb.Entry, rejected bool, changes []Change, logs Logs) {
	t := e.TimeUnixMs
	in := t >= a.from && t < a.to
	week := a.weeks[time.UnixMilli(weekOf(t)).UTC().Format(time.DateOnly)]
	if rejected {
		if in {
			a.totals.Rejected++
		}
		return
	}
	switch op := e.Op.(type) {
	case *pb.Entry_Add:
		sig, err := SignalFromProto(op.Add.GetSignal())
		if err != nil {
			return
		}
		a.labelsOf[listingKey{member, sig}] = op.Add.GetLabels()
		if f, ok := a.firstListed[sig]; !ok || t < f {
			a.firstListed[sig] = t
		}
		if !in {
			return
		}
		a.totals.Additions++
		week.Additions++
		a.key(a.members, member).Additions++
		a.key(a.types, sig.Type.String()).Additions++
		for _, l := range labelKeys(op.Add.GetLabels()) {
			a.key(a.labels, l).Additions++
		}
	case *pb.Entry_Revoke:
		sig, ok := revokedSignal(member, op.Revoke, changes, logs)
		if !ok {
			return
		}
		if f, ok := a.firstRevoked[sig]; !ok || t < f {
			a.firstRevoked[sig] = t
		}
		a.lastRevoked[sig] = max(a.lastRevoked[sig], t)
		if !in {
			return
		}
		a.totals.Revocations++
		week.Revocations++
		a.reasons[ReasonName(op.Revoke.GetReason())]++
		a.key(a.members, member).Revocations++
		a.key(a.types, sig.Type.String()).Revocations++
		for _, l := range labelKeys(a.labelsOf[listingKey{member, sig}]) {
			a.key(a.labels, l).Revocations++
		}
	case *pb.Entry_Opinion:
		sig, err := SignalFromProto(op.Opinion.GetSignal())
		if err != nil || !in {
			return
		}
		a.totals.Opinions++
		if op.Opinion.GetStance() == pb.Stance_STANCE_FALSE_POSITIVE {
			a.disputes[opinionAuthorKey{member, sig}] = t
		}
	}
}

// labelKeys names the labels of an add for the by-label counts ("(none)" for none).
func labelKeys(labels []string) []string {
	if len(labels) == 0 {
		return []string{"(none)"}
	}
	return labels
}

// revokedSignal returns the signal a revoke applied by replay took out: from the change it caused,
// else from its target (the signal, or the add at the index it names).
func revokedSignal(member string, rv *pb.Revoke, changes []Change, logs Logs) (Signal, bool) {
	for _, c := range changes {
		if c.Kind == Unlisted && c.Member == member {
			return c.Signal, true
		}
	}
	if p := rv.GetSignal(); p != nil {
		sig, err := SignalFromProto(p)
		return sig, err == nil
	}
	raw, err := logs.Reader()(member, rv.GetIndex())
	if err != nil {
		return Signal{}, false
	}
	e, err := ParseEntry(raw)
	if err != nil || e.GetAdd() == nil {
		return Signal{}, false
	}
	sig, err := SignalFromProto(e.GetAdd().GetSignal())
	return sig, err == nil
}

// finish writes the accumulated counts into r, each list in a fixed order.
func (a *reportAcc) finish(r *Report, s *State) {
	r.Totals = a.totals
	r.Totals.Disputes = len(a.disputes)
	for _, k := range slices.Sorted(maps.Keys(a.weeks)) {
		r.Weeks = append(r.Weeks, *a.weeks[k])
	}
	r.ByLabel, r.ByMember, r.ByType = keyCounts(a.labels), keyCounts(a.members), keyCounts(a.types)
	r.RevokeReasons = []NameCount{}
	for _, k := range slices.Sorted(maps.Keys(a.reasons)) {
		r.RevokeReasons = append(r.RevokeReasons, NameCount{Name: k, Count: a.reasons[k]})
	}
	outcomes := map[string]int{"revoked": 0, "withdrawn": 0, "open": 0}
	for k, t := range a.disputes {
		switch {
		case a.lastRevoked[k.sig] >= t && a.lastRevoked[k.sig] != 0:
			outcomes["revoked"]++
		case !hasFalsePositive(s.Opinions(k.sig), k.author):
			outcomes["withdrawn"]++
		default:
			outcomes["open"]++
		}
	}
	r.Disputes = Disputes{Raised: len(a.disputes)}
	for _, k := range []string{"revoked", "withdrawn", "open"} {
		r.Disputes.Outcomes = append(r.Disputes.Outcomes, NameCount{Name: k, Count: outcomes[k]})
	}
	var ds []int64
	for sig, t := range a.firstRevoked {
		f, ok := a.firstListed[sig]
		if ok && t >= a.from && t < a.to && f <= t {
			ds = append(ds, (t-f)/1000)
		}
	}
	slices.Sort(ds)
	r.TimeToRevocation = Durations{Count: len(ds)}
	if len(ds) > 0 {
		r.TimeToRevocation.MedianSeconds = ds[(len(ds)-1)/2]
		r.TimeToRevocation.P90Seconds = ds[(len(ds)*9+9)/10-1]
	}
	for _, b := range durationBuckets {
		n := 0
		for len(ds) > 0 && time.Duration(ds[0])*time.Second < b.under {
			n++
			ds = ds[1:]
		}
		r.TimeToRevocation.Buckets = append(r.TimeToRevocation.Buckets, NameCount{Name: b.name, Count: n})
	}
}

func hasFalsePositive(ops []OpinionRecord, author string) bool {
	for _, o := range ops {
		if o.Author == author {
			return o.Stance == pb.Stance_STANCE_FALSE_POSITIVE
		}
	}
	return false
}

func keyCounts(m map[string]*KeyCount) []KeyCount {
	out := []KeyCount{}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, *m[k])
	}
	return out
}

// MarshalReport returns the report's JSON form (indented; characters that matter in HTML escaped,
// so that it can be embedded in a page as it is).
func MarshalReport(r *Report) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.Encode(r) // a Report always encodes
	return b.Bytes()
}

// reportMarker opens the report's JSON in its HTML form.
const reportMarker = `<script type="application/json" id="hashfed-report">`

// ReadReport reads a report in its JSON form or from its HTML form (the JSON embedded in the page).
func ReadReport(b []byte) (*Report, []byte, error) {
	if i := bytes.Index(b, []byte(reportMarker)); i >= 0 {
		rest := b[i+len(reportMarker):]
		j := bytes.Index(rest, []byte("</script>"))
		if j < 0 {
			return nil, nil, fmt.Errorf("%w: the page's report data is not closed", ErrReport)
		}
		b = rest[:j]
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var r Report
	if err := dec.Decode(&r); err != nil {
		return nil, nil, fmt.Errorf("%w: not a hashfed report (JSON, or HTML written by hashfed report): %v", ErrReport, err)
	}
	switch {
	case r.Version != 1 && r.Version != ReportVersion:
		return nil, nil, fmt.Errorf("%w: version %d, this verifier knows 1 and %d", ErrReport, r.Version, ReportVersion)
	case r.Version == 1 && r.Cutoffs != nil:
		return nil, nil, fmt.Errorf("%w: a version 1 report has no cutoffs", ErrReport)
	case r.Version == ReportVersion && r.Cutoffs == nil:
		return nil, nil, fmt.Errorf("%w: a version %d report must list its cutoffs (an empty list when none)", ErrReport, ReportVersion)
	}
	return &r, b, nil
}

// ReportHTMLData is the marker and JSON a page embeds so that [ReadReport] reads it back.
func ReportHTMLData(r *Report) string {
	return reportMarker + "\n" + string(MarshalReport(r)) + "</script>"
}

// CheckReport recomputes claimed from the logs and the evidence (as [NewReport]) and returns every
// number that differs, each named by its path in the JSON form ("totals.additions: the report
// says 5, the logs give 4"), and how many values it compared. A cutoff the report applies that
// the evidence does not give, or one it leaves out, is named first, with its member. A version 1
// report (made before reports applied cutoffs) is checked as such when no evidence cuts a log,
// and is an error otherwise.
func CheckReport(g *Genesis, logs Logs, evidence [][]byte, claimed []byte) (diffs []string, compared int, err error) {
	r, raw, err := ReadReport(claimed)
	if err != nil {
		return nil, 0, err
	}
	got, err := NewReport(g, logs, evidence, r.From, r.To)
	if err != nil {
		return nil, 0, err
	}
	var want, have map[string]any
	if err := json.Unmarshal(raw, &want); err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrReport, err)
	}
	json.Unmarshal(MarshalReport(got), &have)
	if r.Version == 1 {
		if len(got.Cutoffs) > 0 {
			c := got.Cutoffs[0]
			return nil, 0, fmt.Errorf("%w: a version 1 report applies every entry of every log, but the evidence cuts the log of %q at %d entries (PROTOCOL.md section 5.2): recompute the report with this version of hashfed", ErrReport, c.Member, c.Cutoff)
		}
		delete(have, "cutoffs")
		have["version"] = float64(1)
	} else {
		diffs, compared = cutoffDiffs(r.Cutoffs, got.Cutoffs)
		delete(want, "cutoffs")
		delete(have, "cutoffs")
	}
	diffJSON("", want, have, &diffs, &compared)
	return diffs, compared, nil
}

// cutoffDiffs compares the cutoffs a report claims with those the evidence gives, member by
// member, and says what each difference means.
func cutoffDiffs(claimed, computed []ReportCutoff) (diffs []string, compared int) {
	cl, co := map[string]ReportCutoff{}, map[string]ReportCutoff{}
	for _, c := range claimed {
		if _, dup := cl[c.Member]; dup {
			diffs = append(diffs, fmt.Sprintf("cutoffs: %q is listed more than once", c.Member))
		}
		cl[c.Member] = c
	}
	for _, c := range computed {
		co[c.Member] = c
	}
	if !slices.IsSortedFunc(claimed, func(a, b ReportCutoff) int { return strings.Compare(a.Member, b.Member) }) {
		diffs = append(diffs, "cutoffs: not in member id order")
	}
	ms := slices.Collect(maps.Keys(cl))
	for m := range co {
		if _, ok := cl[m]; !ok {
			ms = append(ms, m)
		}
	}
	slices.Sort(ms)
	for _, m := range ms {
		compared++
		c, inReport := cl[m]
		e, inEvidence := co[m]
		switch {
		case !inReport:
			diffs = append(diffs, fmt.Sprintf("cutoffs: %q: the report applies all of its log, the evidence cuts it at %d entries (the report was made without this evidence, or before it was known: recompute it)", m, e.Cutoff))
		case !inEvidence:
			diffs = append(diffs, fmt.Sprintf("cutoffs: %q: the report cuts its log at %d entries, no evidence given here cuts it (get the evidence the report applied, e.g. in an audit bundle of a node; without it the cutoff is unproven)", m, c.Cutoff))
		case c.Cutoff != e.Cutoff:
			diffs = append(diffs, fmt.Sprintf("cutoffs: %q: the report cuts its log at %d entries, the evidence cuts it at %d entries", m, c.Cutoff, e.Cutoff))
		case c != e:
			diffs = append(diffs, fmt.Sprintf("cutoffs: %q: the report says %s, the logs and evidence give %s", m, short(c), short(e)))
		}
	}
	return diffs, compared
}

// diffJSON compares two decoded JSON values and records every difference.
func diffJSON(path string, claimed, computed any, diffs *[]string, n *int) {
	name := path
	if name == "" {
		name = "(report)"
	}
	switch c := claimed.(type) {
	case map[string]any:
		h, ok := computed.(map[string]any)
		if !ok {
			*diffs = append(*diffs, fmt.Sprintf("%s: the report has an object, the logs give %s", name, short(computed)))
			return
		}
		keys := slices.Sorted(maps.Keys(c))
		for k := range h {
			if _, ok := c[k]; !ok {
				keys = append(keys, k)
			}
		}
		for _, k := range keys {
			p := k
			if path != "" {
				p = path + "." + k
			}
			diffJSON(p, c[k], h[k], diffs, n)
		}
	case []any:
		h, ok := computed.([]any)
		if !ok || len(h) != len(c) {
			*diffs = append(*diffs, fmt.Sprintf("%s: the report has %s, the logs give %s", name, short(claimed), short(computed)))
			return
		}
		for i := range c {
			diffJSON(fmt.Sprintf("%s[%d]", path, i), c[i], h[i], diffs, n)
		}
	default:
		*n++
		if fmt.Sprint(claimed) != fmt.Sprint(computed) || (claimed == nil) != (computed == nil) {
			*diffs = append(*diffs, fmt.Sprintf("%s: the report says %s, the logs give %s", name, short(claimed), short(computed)))
		}
	}
}

func short(v any) string {
	if v == nil {
		return "nothing"
	}
	b, _ := json.Marshal(v)
	if len(b) > 80 {
		return string(b[:77]) + "..."
	}
	return string(b)
}
