package store

// The node's local precision controls (section 9 of PROTOCOL.md): a suppress list, distance caps
// per member and per label, flood quarantine and reviewers' verdicts. They are this node's own
// choices, kept in the bucket "policy" of the store's bbolt file and never in a signed log (a
// reviewer's verdict reaches the other members only as the opinion the node publishes for it).
// They are read at match time from memory; each change is written to bbolt before it applies.

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashfed/hashfed/consortium"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	bolt "go.etcd.io/bbolt"
)

// ErrPolicy means a local policy change was refused; the message names the problem.
var ErrPolicy = errors.New("bad policy change")

var bucketPolicy = []byte("policy")

// Key prefixes in the policy bucket; the rest of the key is a signal ("<type> <text>"), a member
// id or a label, and the value is JSON.
const (
	prefixSuppress  = "suppress/"
	prefixMemberCap = "cap-member/"
	prefixLabelCap  = "cap-label/"
	prefixHold      = "hold/"
	prefixReview    = "review/"
)

// Verdict is a reviewer's finding on a match.
type Verdict string

// The verdicts.
const (
	// Confirm: the signal matches what it is listed for. A held signal is released, and a
	// confirmed signal is not held again for a flood.
	Confirm Verdict = "confirm"
	// Deconfirm: the match is wrong. The signal is released into the suppress list.
	Deconfirm Verdict = "deconfirm"
)

// ParseVerdict returns the verdict named s.
func ParseVerdict(s string) (Verdict, error) {
	switch v := Verdict(s); v {
	case Confirm, Deconfirm:
		return v, nil
	}
	return "", fmt.Errorf("%w: verdict %q (want confirm or deconfirm)", ErrPolicy, s)
}

// Suppression is a signal this node never matches, with who added it and why.
type Suppression struct {
	Signal consortium.Signal `json:"-"`
	Who    string            `json:"who"`
	Why    string            `json:"why"`
	Time   time.Time         `json:"time"`
}

// Hold is a signal held for review because it suddenly matched far more uploads than usual.
type Hold struct {
	Signal consortium.Signal `json:"-"`
	Since  time.Time         `json:"since"`
	// Matches is how many uploads matched it in the window that tripped the hold; Usual the
	// signal's usual count per window before it.
	Matches int     `json:"matches"`
	Usual   float64 `json:"usual"`
}

// Review is the latest reviewer verdict on a signal.
type Review struct {
	Signal   consortium.Signal `json:"-"`
	Reviewer string            `json:"reviewer"`
	Verdict  Verdict           `json:"verdict"`
	Note     string            `json:"note,omitempty"`
	Time     time.Time         `json:"time"`
	// Opinion is the index in the node's own log of the opinion published for it, or -1.
	Opinion int64 `json:"opinion"`
}

// PolicyView is a copy of the local policy, each list ordered by signal.
type PolicyView struct {
	Suppressed []Suppression
	MemberCaps map[string]int
	LabelCaps  map[string]int
	Held       []Hold
	Reviews    []Review
}

// policy is the in-memory copy of the policy bucket and the flood counters.
type policy struct {
	mu         sync.Mutex
	suppressed map[consortium.Signal]Suppression
	memberCaps map[string]int
	labelCaps  map[string]int
	held       map[consortium.Signal]Hold
	reviews    map[consortium.Signal]Review
	flood      map[consortium.Signal]*floodCount
}

// floodCount counts the uploads that matched one signal in the current window and its usual count
// per window (an average of earlier windows, each weighing half as much as the next).
type floodCount struct {
	window int64
	n      int
	usual  float64
}

// maxFloodSignals bounds the flood counters kept; beyond it, counters of signals idle for more
// than a window are dropped.
const maxFloodSignals = 100_000

func sigKey(sig consortium.Signal) string { return sig.Type.String() + " " + sig.Text() }

func parseSigKey(k string) (consortium.Signal, error) {
	typ, text, ok := strings.Cut(k, " ")
	if !ok {
		return consortium.Signal{}, fmt.Errorf("policy key %q names no signal", k)
	}
	return consortium.ParseSignal(typ, text)
}

// loadPolicy reads the policy bucket into memory.
func (s *Store) loadPolicy() error {
	p := &policy{
		suppressed: map[consortium.Signal]Suppression{},
		memberCaps: map[string]int{},
		labelCaps:  map[string]int{},
		held:       map[consortium.Signal]Hold{},
		reviews:    map[consortium.Signal]Review{},
		flood:      map[consortium.Signal]*floodCount{},
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPolicy)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			key := string(k)
			bad := func(err error) error { return fmt.Errorf("%w: policy entry %q: %v", ErrDamaged, key, err) }
			switch {
			case strings.HasPrefix(key, prefixSuppress):
				var x Suppression
				sig, err := parseSigKey(key[len(prefixSuppress):])
				if err == nil {
					err = json.Unmarshal(v, &x)
				}
				if err != nil {
					return bad(err)
				}
				x.Signal = sig
				p.suppressed[sig] = x
			case strings.HasPrefix(key, prefixHold):
				var x Hold
				sig, err := parseSigKey(key[len(prefixHold):])
				if err == nil {
					err = json.Unmarshal(v, &x)
				}
				if err != nil {
					return bad(err)
				}
				x.Signal = sig
				p.held[sig] = x
			case strings.HasPrefix(key, prefixReview):
				var x Review
				sig, err := parseSigKey(key[len(prefixReview):])
				if err == nil {
					err = json.Unmarshal(v, &x)
				}
				if err != nil {
					return bad(err)
				}
				x.Signal = sig
				p.reviews[sig] = x
			case strings.HasPrefix(key, prefixMemberCap), strings.HasPrefix(key, prefixLabelCap):
				var c int
				if err := json.Unmarshal(v, &c); err != nil {
					return bad(err)
				}
				if name, ok := strings.CutPrefix(key, prefixMemberCap); ok {
					p.memberCaps[name] = c
				} else {
					p.labelCaps[key[len(prefixLabelCap):]] = c
				}
			default:
				return bad(errors.New("unknown kind"))
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("store %s: read local policy: %w", s.path, err)
	}
	s.pol = p
	return nil
}

// putPolicy writes (v non-nil) or deletes (v nil) one policy key.
func (s *Store) putPolicy(kvs map[string]any) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketPolicy)
		if err != nil {
			return err
		}
		for _, k := range slices.Sorted(maps.Keys(kvs)) {
			if kvs[k] == nil {
				if err := b.Delete([]byte(k)); err != nil {
					return err
				}
				continue
			}
			v, err := json.Marshal(kvs[k])
			if err != nil {
				return err
			}
			if err := b.Put([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store %s: write local policy: %w", s.path, err)
	}
	return nil
}

// Suppress adds sig to the suppress list: this node never matches it (a query that includes hidden
// matches gets it with the reason). who and why are required.
func (s *Store) Suppress(sig consortium.Signal, who, why string) error {
	who, why = strings.TrimSpace(who), strings.TrimSpace(why)
	if who == "" || why == "" {
		return fmt.Errorf("%w: a suppression needs who adds it and why", ErrPolicy)
	}
	if len(who) > 100 || len(why) > 1000 {
		return fmt.Errorf("%w: who is at most 100 bytes and why at most 1000", ErrPolicy)
	}
	x := Suppression{Signal: sig, Who: who, Why: why, Time: s.opts.Now().UTC()}
	p := s.pol
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := s.putPolicy(map[string]any{prefixSuppress + sigKey(sig): x}); err != nil {
		return err
	}
	p.suppressed[sig] = x
	return nil
}

// Unsuppress takes sig off the suppress list; it is not an error if it was not on it.
func (s *Store) Unsuppress(sig consortium.Signal) error {
	p := s.pol
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := s.putPolicy(map[string]any{prefixSuppress + sigKey(sig): nil}); err != nil {
		return err
	}
	delete(p.suppressed, sig)
	return nil
}

// SetMemberCap caps the PDQ distance at which this node matches the listings of member (0 to
// [MaxRadius]); a negative cap removes it.
func (s *Store) SetMemberCap(member string, limit int) error {
	if member == "" || len(member) > 32 {
		return fmt.Errorf("%w: member id %q", ErrPolicy, member)
	}
	return s.setCap(prefixMemberCap, member, limit, s.pol.memberCaps)
}

// SetLabelCap caps the PDQ distance at which this node matches listings carrying label (in its
// canonical form); a negative cap removes it.
func (s *Store) SetLabelCap(label string, limit int) error {
	l, err := consortium.CanonicalLabel(label)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPolicy, err)
	}
	return s.setCap(prefixLabelCap, l, limit, s.pol.labelCaps)
}

func (s *Store) setCap(prefix, name string, limit int, caps map[string]int) error {
	if limit > MaxRadius {
		return fmt.Errorf("%w: cap %d is over the largest radius %d", ErrPolicy, limit, MaxRadius)
	}
	p := s.pol
	p.mu.Lock()
	defer p.mu.Unlock()
	var v any = limit
	if limit < 0 {
		v = nil
	}
	if err := s.putPolicy(map[string]any{prefix + name: v}); err != nil {
		return err
	}
	if limit < 0 {
		delete(caps, name)
	} else {
		caps[name] = limit
	}
	return nil
}

// RecordReview records a reviewer's verdict on sig: a held signal is released (into the suppress
// list on [Deconfirm]). opinion is the index of the opinion published for it, or -1.
func (s *Store) RecordReview(sig consortium.Signal, reviewer string, v Verdict, note string, opinion int64) (Review, error) {
	reviewer = strings.TrimSpace(reviewer)
	if reviewer == "" || len(reviewer) > 100 {
		return Review{}, fmt.Errorf("%w: a review needs the reviewer's name (at most 100 bytes)", ErrPolicy)
	}
	if _, err := ParseVerdict(string(v)); err != nil {
		return Review{}, err
	}
	if len(note) > 1000 {
		return Review{}, fmt.Errorf("%w: a review note is at most 1000 bytes", ErrPolicy)
	}
	now := s.opts.Now().UTC()
	r := Review{Signal: sig, Reviewer: reviewer, Verdict: v, Note: note, Time: now, Opinion: opinion}
	kvs := map[string]any{prefixReview + sigKey(sig): r, prefixHold + sigKey(sig): nil}
	var sup *Suppression
	if v == Deconfirm {
		why := "deconfirmed in review"
		if note != "" {
			why += ": " + note
		}
		sup = &Suppression{Signal: sig, Who: reviewer, Why: why, Time: now}
		kvs[prefixSuppress+sigKey(sig)] = *sup
	}
	p := s.pol
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := s.putPolicy(kvs); err != nil {
		return Review{}, err
	}
	p.reviews[sig] = r
	delete(p.held, sig)
	if sup != nil {
		p.suppressed[sig] = *sup
	}
	if fc := p.flood[sig]; fc != nil {
		// The reviewed window is the usual from now on.
		fc.usual = max(fc.usual, float64(fc.n))
	}
	return r, nil
}

// Policy returns a copy of the local policy.
func (s *Store) Policy() PolicyView {
	p := s.pol
	p.mu.Lock()
	defer p.mu.Unlock()
	bySig := func(a, b consortium.Signal) int { return strings.Compare(sigKey(a), sigKey(b)) }
	v := PolicyView{MemberCaps: maps.Clone(p.memberCaps), LabelCaps: maps.Clone(p.labelCaps)}
	for _, x := range p.suppressed {
		v.Suppressed = append(v.Suppressed, x)
	}
	slices.SortFunc(v.Suppressed, func(a, b Suppression) int { return bySig(a.Signal, b.Signal) })
	for _, x := range p.held {
		v.Held = append(v.Held, x)
	}
	slices.SortFunc(v.Held, func(a, b Hold) int { return bySig(a.Signal, b.Signal) })
	for _, x := range p.reviews {
		v.Reviews = append(v.Reviews, x)
	}
	slices.SortFunc(v.Reviews, func(a, b Review) int { return bySig(a.Signal, b.Signal) })
	return v
}

// ReviewOf returns the latest review of sig.
func (s *Store) ReviewOf(sig consortium.Signal) (Review, bool) {
	p := s.pol
	p.mu.Lock()
	defer p.mu.Unlock()
	r, ok := p.reviews[sig]
	return r, ok
}

// applyPolicy counts the matches as uploads for flood detection (when count), holds a signal
// whose count trips the flood rule, and sets each match's Hidden to every reason the local policy
// hides it for.
func (s *Store) applyPolicy(ms []Match, count bool) error {
	if len(ms) == 0 {
		return nil
	}
	p := s.pol
	p.mu.Lock()
	defer p.mu.Unlock()
	now := s.opts.Now()
	var newHolds map[string]any
	for i := range ms {
		m := &ms[i]
		if count && s.opts.FloodThreshold > 0 {
			if h, ok := p.countUpload(m.Signal, now, s.opts); ok {
				newHolds = map[string]any{prefixHold + sigKey(m.Signal): h}
				if err := s.putPolicy(newHolds); err != nil {
					return err
				}
				p.held[m.Signal] = h
				s.log.Warn("signal held for review: a flood of matches", "signal", m.Signal.String(), "matches", h.Matches, "usual", h.Usual)
			}
		}
		m.Hidden = p.reasons(*m, s.opts)
	}
	return nil
}

// countUpload counts one upload matching sig and returns a new hold when it trips the flood rule:
// at least FloodThreshold matches in the current window and at least FloodFactor times the usual.
// Caller holds p.mu.
func (p *policy) countUpload(sig consortium.Signal, now time.Time, o Options) (Hold, bool) {
	w := now.UnixMilli() / o.FloodWindow.Milliseconds()
	fc := p.flood[sig]
	if fc == nil {
		if len(p.flood) >= maxFloodSignals {
			for k, c := range p.flood {
				if c.window < w-1 {
					delete(p.flood, k)
				}
			}
		}
		fc = &floodCount{window: w}
		p.flood[sig] = fc
	}
	for fc.window < w {
		fc.usual = fc.usual/2 + float64(fc.n)/2
		fc.n = 0
		fc.window++
		if fc.usual < 0.01 {
			fc.usual, fc.window = 0, w
		}
	}
	fc.n++
	if _, held := p.held[sig]; held {
		return Hold{}, false
	}
	if _, sup := p.suppressed[sig]; sup {
		return Hold{}, false
	}
	if r, ok := p.reviews[sig]; ok && r.Verdict == Confirm {
		return Hold{}, false
	}
	if fc.n < o.FloodThreshold || float64(fc.n) < o.FloodFactor*fc.usual {
		return Hold{}, false
	}
	return Hold{Signal: sig, Since: now.UTC(), Matches: fc.n, Usual: fc.usual}, true
}

// reasons explains every local policy that hides m, or returns "". Caller holds p.mu.
func (p *policy) reasons(m Match, o Options) string {
	var why []string
	if x, ok := p.suppressed[m.Signal]; ok {
		why = append(why, fmt.Sprintf("suppressed by %s on %s: %s", x.Who, x.Time.Format(time.DateOnly), x.Why))
	}
	if h, ok := p.held[m.Signal]; ok {
		why = append(why, fmt.Sprintf("held for review since %s: %d uploads matched it within %v (usual %.1f; the flood threshold is %d)",
			h.Since.Format(time.RFC3339), h.Matches, o.FloodWindow, h.Usual, o.FloodThreshold))
	}
	if c := p.capReason(m); c != "" {
		why = append(why, c)
	}
	if o.DisputeThreshold > 0 {
		n := 0
		for _, op := range m.Opinions {
			// Only the roles that write opinions (members and observers) dispute: a civil-society
			// participant certifies and an authority refers, and neither may hide listings.
			if op.Stance == pb.Stance_STANCE_FALSE_POSITIVE && (op.Role == pb.Role_ROLE_MEMBER || op.Role == pb.Role_ROLE_OBSERVER) {
				n++
			}
		}
		if n >= o.DisputeThreshold {
			why = append(why, fmt.Sprintf("disputed: %d members call it a false positive (local policy hides signals disputed by %d or more)", n, o.DisputeThreshold))
		}
	}
	return strings.Join(why, "; ")
}

// capReason says why m is beyond the distance caps of every listing, or "" when one listing is
// within its caps (or has none). Caps apply to PDQ only.
func (p *policy) capReason(m Match) string {
	if m.Signal.Type != consortium.PDQ || len(m.Listings) == 0 || (len(p.memberCaps) == 0 && len(p.labelCaps) == 0) {
		return ""
	}
	var beyond []string
	for _, l := range m.Listings {
		limit, by := -1, ""
		if c, ok := p.memberCaps[l.Member]; ok {
			limit, by = c, "member "+l.Member
		}
		for _, lab := range l.Labels {
			if c, ok := p.labelCaps[lab]; ok && (limit < 0 || c < limit) {
				limit, by = c, "label "+lab
			}
		}
		if limit < 0 || m.Distance <= limit {
			return ""
		}
		beyond = append(beyond, fmt.Sprintf("%s's listing (%s capped at %d)", l.Member, by, limit))
	}
	return fmt.Sprintf("distance %d is beyond the local distance cap of every listing: %s", m.Distance, strings.Join(beyond, ", "))
}

func sortSignals(sigs []consortium.Signal) {
	slices.SortFunc(sigs, func(a, b consortium.Signal) int { return strings.Compare(sigKey(a), sigKey(b)) })
}
