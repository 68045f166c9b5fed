package consortium

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"hash"
	"maps"
	"slices"
	"strings"
	"time"

	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"google.golang.org/protobuf/proto"
)

// This file replays the entries of the civil-society and authority roles: certifications (the
// protected list), referrals and the members' answers to them (docs/PROTOCOL.md, "Certifications"
// and "Referrals").
//
// Like a listing, each of these records is kept whatever its author's role, and counts while the
// author's role in the current roster allows it: a certification while its author is a member or
// a civil-society participant, a referral while its author is a referral authority, an answer
// while its author is a member the referral addresses. So the state stays a pure function of the
// log contents, whatever order the logs are applied in. Only rules that depend on the author's own
// log are enforced when an entry is applied (the author field, a withdrawal of one's own
// certification, one answer per referral), so rejections too are the same in every order.

// certRec is a certification as replay keeps it.
type certRec struct {
	hash   Hash
	author uint16
	index  uint64
	time   int64
	c      *pb.Certify
	sigs   []Signal
}

// referralRec is a referral as replay keeps it.
type referralRec struct {
	hash   Hash
	author uint16
	index  uint64
	time   int64
	r      *pb.Refer
	sigs   []Signal
}

type answerKey struct {
	referral Hash
	member   uint16
}

type answerRec struct {
	index   uint64
	time    int64
	outcome pb.Outcome
	reason  string
}

// roles holds the records of the roles; the zero value is empty.
type roles struct {
	certs     map[Hash]*certRec
	certBySig map[Signal][]Hash
	referrals map[Hash]*referralRec
	answers   map[answerKey]answerRec
}

func (s *State) initRoles() {
	s.roles = roles{
		certs:     map[Hash]*certRec{},
		certBySig: map[Signal][]Hash{},
		referrals: map[Hash]*referralRec{},
		answers:   map[answerKey]answerRec{},
	}
}

// roleOf returns the current role of member index mi (unspecified when off the roster).
func (s *State) roleOf(mi uint16) pb.Role {
	m, ok := s.Roster().Member(s.memberIDs[mi])
	if !ok {
		return pb.Role_ROLE_UNSPECIFIED
	}
	return m.Role
}

func signalsOf(ps []*pb.Signal) []Signal {
	out := make([]Signal, 0, len(ps))
	for _, p := range ps {
		s, err := SignalFromProto(p)
		if err == nil {
			out = append(out, s)
		}
	}
	return out
}

// applyRoleOp applies a validated certify, uncertify, refer or answer entry of member's log. It
// returns the rule the entry breaks (the entry is then rejected), or a decoding failure of bytes
// already validated (err).
func (s *State) applyRoleOp(mi uint16, index uint64, raw []byte, v *entryView) (perr, err error) {
	member := s.memberIDs[mi]
	if (v.op == OpCertify || v.op == OpRefer) && string(v.author) != member {
		return fmt.Errorf("%w: the author field names %q, not the log owner %q (a copy of %s's %s, or a forgery in its name); it has no effect",
			ErrWrongAuthor, v.author, member, v.author, v.op), nil
	}
	switch v.op {
	case OpCertify, OpRefer:
		h := LeafHash(raw)
		if _, dup := s.roles.certs[h]; dup {
			return fmt.Errorf("%w: the same certification is already in force", ErrNotPermitted), nil
		}
		if _, dup := s.roles.referrals[h]; dup {
			return fmt.Errorf("%w: the same referral was already written", ErrNotPermitted), nil
		}
		var e pb.Entry
		if err := proto.Unmarshal(raw, &e); err != nil {
			return nil, fmt.Errorf("decode validated %s: %w", v.op, err)
		}
		if v.op == OpCertify {
			c := &certRec{hash: h, author: mi, index: index, time: v.time, c: e.GetCertify(), sigs: signalsOf(e.GetCertify().GetSignals())}
			s.roles.certs[h] = c
			for _, sig := range c.sigs {
				s.roles.certBySig[sig] = append(s.roles.certBySig[sig], h)
			}
			return nil, nil
		}
		s.roles.referrals[h] = &referralRec{hash: h, author: mi, index: index, time: v.time, r: e.GetRefer(), sigs: signalsOf(e.GetRefer().GetSignals())}
	case OpUncertify:
		c, ok := s.roles.certs[v.proposal]
		if !ok || c.author != mi {
			return fmt.Errorf("%w: uncertify of %s, which is no certification of %q in force", ErrNotPermitted, shortHash(v.proposal), member), nil
		}
		delete(s.roles.certs, v.proposal)
		for _, sig := range c.sigs {
			hs := slices.DeleteFunc(s.roles.certBySig[sig], func(h Hash) bool { return h == v.proposal })
			if len(hs) == 0 {
				delete(s.roles.certBySig, sig)
			} else {
				s.roles.certBySig[sig] = hs
			}
		}
	case OpAnswer:
		k := answerKey{v.proposal, mi}
		if prev, ok := s.roles.answers[k]; ok {
			return fmt.Errorf("%w: %q already answered referral %s (entry %d); a member answers a referral once", ErrNotPermitted, member, shortHash(v.proposal), prev.index), nil
		}
		var e pb.Entry
		if err := proto.Unmarshal(raw, &e); err != nil {
			return nil, fmt.Errorf("decode validated answer: %w", err)
		}
		s.roles.answers[k] = answerRec{index: index, time: v.time, outcome: v.outcome, reason: e.GetAnswer().GetReason()}
	}
	return nil, nil
}

// Protection is a certification in force: an account or piece of content on the protected list.
type Protection struct {
	// Hash is the leaf hash of the certify entry, which names it (and which uncertify names).
	Hash     Hash
	Author   string
	Index    uint64
	Time     int64
	Category pb.Category
	Reason   string
	Subject  string
	// Expires is in Unix milliseconds, 0 for none.
	Expires int64
	Signals []Signal
}

func (s *State) protection(c *certRec) Protection {
	return Protection{Hash: c.hash, Author: s.memberIDs[c.author], Index: c.index, Time: c.time, Category: c.c.GetCategory(),
		Reason: c.c.GetReason(), Subject: c.c.GetSubject(), Expires: c.c.GetExpiresUnixMs(), Signals: slices.Clone(c.sigs)}
}

// certInForce reports whether a certification counts: its author's current role may certify.
func (s *State) certInForce(c *certRec) bool {
	r := s.roleOf(c.author)
	return r == pb.Role_ROLE_MEMBER || r == pb.Role_ROLE_CIVIL_SOCIETY
}

// Protections returns the certifications in force that name sig, ordered by author then hash.
// With now (Unix milliseconds) not zero, certifications expired at now are left out.
func (s *State) Protections(sig Signal, now int64) []Protection {
	var out []Protection
	for _, h := range s.roles.certBySig[sig] {
		c := s.roles.certs[h]
		if !s.certInForce(c) || now != 0 && c.c.GetExpiresUnixMs() != 0 && c.c.GetExpiresUnixMs() <= now {
			continue
		}
		out = append(out, s.protection(c))
	}
	slices.SortFunc(out, func(a, b Protection) int {
		if c := strings.Compare(a.Author, b.Author); c != 0 {
			return c
		}
		return bytes.Compare(a.Hash[:], b.Hash[:])
	})
	return out
}

// Certifications returns every certification in force (expiry not applied), ordered by author,
// then time, then hash.
func (s *State) Certifications() []Protection {
	var out []Protection
	for _, c := range s.roles.certs {
		if s.certInForce(c) {
			out = append(out, s.protection(c))
		}
	}
	slices.SortFunc(out, func(a, b Protection) int {
		if c := strings.Compare(a.Author, b.Author); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Time, b.Time); c != 0 {
			return c
		}
		return bytes.Compare(a.Hash[:], b.Hash[:])
	})
	return out
}

// Referral is a referral in force (its author is a referral authority) with the answers that count.
type Referral struct {
	Hash       Hash
	Author     string
	Index      uint64
	Time       int64
	Deadline   int64
	Signals    []Signal
	LegalBasis string
	OrderRef   string
	Note       string
	// To names the members addressed; empty means every member.
	To []string
	// Addressed are the members of the current roster the referral addresses.
	Addressed []string
	// Answers are the addressed members' answers, by member id.
	Answers []ReferralAnswer
}

// ReferralAnswer is a member's answer to a referral.
type ReferralAnswer struct {
	Member  string
	Index   uint64
	Time    int64
	Outcome pb.Outcome
	Reason  string
	// ReferralTime and Deadline are the referral's, for [ReferralAnswer.Delay] and
	// [ReferralAnswer.Late].
	ReferralTime, Deadline int64
}

// Delay is the time from the referral to the answer, by the two entries' log times (never less
// than zero: an answer dated before its referral counts as immediate; see [State.StrayAnswers]).
func (a ReferralAnswer) Delay() time.Duration {
	return time.Duration(max(a.Time-a.ReferralTime, 0)) * time.Millisecond
}

// Late reports whether the answer came after the referral's deadline.
func (a ReferralAnswer) Late() bool { return a.Time > a.Deadline }

// Answer returns member's answer, if it answered.
func (r Referral) Answer(member string) (ReferralAnswer, bool) {
	for _, a := range r.Answers {
		if a.Member == member {
			return a, true
		}
	}
	return ReferralAnswer{}, false
}

// addresses reports whether referral r addresses member id m under the current roster.
func (s *State) addresses(r *referralRec, m Member) bool {
	if !m.CanAdd() {
		return false
	}
	to := r.r.GetTo()
	if len(to) == 0 {
		return true
	}
	_, found := slices.BinarySearch(to, m.ID)
	return found
}

func (s *State) referralInForce(r *referralRec) bool {
	return s.roleOf(r.author) == pb.Role_ROLE_AUTHORITY
}

func (s *State) referral(r *referralRec) Referral {
	out := Referral{Hash: r.hash, Author: s.memberIDs[r.author], Index: r.index, Time: r.time, Deadline: r.r.GetDeadlineUnixMs(),
		Signals: slices.Clone(r.sigs), LegalBasis: r.r.GetLegalBasis(), OrderRef: r.r.GetOrderRef(), Note: r.r.GetNote(), To: slices.Clone(r.r.GetTo())}
	for _, m := range s.Roster().Members {
		if !s.addresses(r, m) {
			continue
		}
		out.Addressed = append(out.Addressed, m.ID)
		mi, ok := s.memberIdx[m.ID]
		if !ok {
			continue
		}
		if a, ok := s.roles.answers[answerKey{r.hash, mi}]; ok {
			out.Answers = append(out.Answers, ReferralAnswer{Member: m.ID, Index: a.index, Time: a.time, Outcome: a.outcome, Reason: a.reason, ReferralTime: r.time, Deadline: out.Deadline})
		}
	}
	return out
}

// Referrals returns every referral in force with its answers, ordered by time then hash.
func (s *State) Referrals() []Referral {
	var out []Referral
	for _, r := range s.sortedReferrals() {
		if s.referralInForce(r) {
			out = append(out, s.referral(r))
		}
	}
	return out
}

func (s *State) sortedReferrals() []*referralRec {
	rs := slices.Collect(maps.Values(s.roles.referrals))
	slices.SortFunc(rs, func(a, b *referralRec) int {
		if c := cmp.Compare(a.time, b.time); c != 0 {
			return c
		}
		return bytes.Compare(a.hash[:], b.hash[:])
	})
	return rs
}

// OpenReferrals returns the referrals in force that address member and that it has not answered.
func (s *State) OpenReferrals(member string) []Referral {
	var out []Referral
	for _, r := range s.Referrals() {
		if !slices.Contains(r.Addressed, member) {
			continue
		}
		if _, done := r.Answer(member); !done {
			out = append(out, r)
		}
	}
	return out
}

// StrayAnswer is an answer that counts for nothing, and why.
type StrayAnswer struct {
	Member   string
	Index    uint64
	Referral Hash
	Why      string
}

// StrayAnswers returns the answers that count for nothing (to a referral no log holds or no
// authority wrote, one that does not address the member, or by a participant who is not a
// member), and the answers dated before their referral; ordered by member then index.
func (s *State) StrayAnswers() []StrayAnswer {
	var out []StrayAnswer
	for k, a := range s.roles.answers {
		member := s.memberIDs[k.member]
		why := ""
		r, ok := s.roles.referrals[k.referral]
		m, on := s.Roster().Member(member)
		switch {
		case !ok:
			why = "no log holds the referral it answers"
		case !s.referralInForce(r):
			why = fmt.Sprintf("the referral's author %q is not a referral authority", s.memberIDs[r.author])
		case !on || !m.CanAdd():
			why = fmt.Sprintf("%q is not a member", member)
		case !s.addresses(r, m):
			why = fmt.Sprintf("the referral does not address %q", member)
		case a.time < r.time:
			why = fmt.Sprintf("dated %d ms before the referral (counted as immediate)", r.time-a.time)
		default:
			continue
		}
		out = append(out, StrayAnswer{Member: member, Index: a.index, Referral: k.referral, Why: why})
	}
	slices.SortFunc(out, func(a, b StrayAnswer) int {
		if c := strings.Compare(a.Member, b.Member); c != 0 {
			return c
		}
		return cmp.Compare(a.Index, b.Index)
	})
	return out
}

// digestRoles hashes the records of the roles that count, after the listings and opinions (one
// item each, none when there are none; docs/PROTOCOL.md, "State digest"): certifications in force
// ('C'), referrals in force ('F') and the answers that count ('A').
func (s *State) digestRoles(h hash.Hash) {
	var buf []byte
	hashes := slices.SortedFunc(maps.Keys(s.roles.certs), func(a, b Hash) int { return bytes.Compare(a[:], b[:]) })
	for _, k := range hashes {
		c := s.roles.certs[k]
		if !s.certInForce(c) {
			continue
		}
		buf = append(buf[:0], 'C')
		buf = append(buf, k[:]...)
		buf = appendStr(buf, s.memberIDs[c.author])
		buf = binary.AppendUvarint(buf, c.index)
		h.Write(buf)
	}
	hashes = slices.SortedFunc(maps.Keys(s.roles.referrals), func(a, b Hash) int { return bytes.Compare(a[:], b[:]) })
	for _, k := range hashes {
		r := s.roles.referrals[k]
		if !s.referralInForce(r) {
			continue
		}
		buf = append(buf[:0], 'F')
		buf = append(buf, k[:]...)
		buf = appendStr(buf, s.memberIDs[r.author])
		buf = binary.AppendUvarint(buf, r.index)
		h.Write(buf)
	}
	for _, k := range hashes {
		r := s.roles.referrals[k]
		if !s.referralInForce(r) {
			continue
		}
		for _, a := range s.referral(r).Answers {
			buf = append(buf[:0], 'A')
			buf = append(buf, k[:]...)
			buf = appendStr(buf, a.Member)
			buf = append(buf, byte(a.Outcome))
			buf = binary.AppendUvarint(buf, a.Index)
			h.Write(buf)
		}
	}
}

// roleNoun names a role for messages: "an observer", or in the plural "observers".
func roleNoun(r pb.Role, plural bool) string {
	switch r {
	case pb.Role_ROLE_MEMBER:
		return map[bool]string{false: "a member", true: "members"}[plural]
	case pb.Role_ROLE_OBSERVER:
		return map[bool]string{false: "an observer", true: "observers"}[plural]
	case pb.Role_ROLE_CIVIL_SOCIETY:
		return map[bool]string{false: "a civil-society participant", true: "civil-society participants"}[plural]
	case pb.Role_ROLE_AUTHORITY:
		return map[bool]string{false: "a referral authority", true: "referral authorities"}[plural]
	}
	return RoleName(r)
}

// checkRoleOp is [State.Check] of a certify, uncertify, refer or answer entry: besides the replay
// rules (the author field, one's own certification, one answer per referral) it refuses what would
// count for nothing now: a certification by a role that does not certify, a referral by anyone but
// a referral authority, and an answer by a non-member, to a referral not in force or not
// addressed to the author.
func (s *State) checkRoleOp(member string, mi uint16, m Member, raw []byte, v *entryView, ov *batchOverlay) error {
	if (v.op == OpCertify || v.op == OpRefer) && string(v.author) != member {
		return fmt.Errorf("%w: the %s names %q as its author, but it would be written in %q's log; a participant writes only in its own name",
			ErrWrongAuthor, v.op, v.author, member)
	}
	switch v.op {
	case OpCertify:
		if !m.CanCertify() {
			return fmt.Errorf("%w: %q is %s; only members and civil-society participants certify", ErrNotPermitted, member, roleNoun(m.Role, false))
		}
		h := LeafHash(raw)
		if _, dup := s.roles.certs[h]; dup || ov.mine[h] {
			return fmt.Errorf("%w: the same certification is already in force", ErrNotPermitted)
		}
		ov.mine[h] = true
	case OpUncertify:
		c, ok := s.roles.certs[v.proposal]
		if !ov.mine[v.proposal] && (!ok || c.author != mi) {
			return fmt.Errorf("%w: %s is no certification of %q in force; a participant withdraws only its own", ErrNotPermitted, shortHash(v.proposal), member)
		}
		delete(ov.mine, v.proposal)
	case OpRefer:
		if !m.CanRefer() {
			return fmt.Errorf("%w: %q is %s; only referral authorities refer", ErrNotPermitted, member, roleNoun(m.Role, false))
		}
		if _, dup := s.roles.referrals[LeafHash(raw)]; dup {
			return fmt.Errorf("%w: the same referral was already written", ErrNotPermitted)
		}
	case OpAnswer:
		if !m.CanAdd() {
			return fmt.Errorf("%w: %q is %s; only members answer referrals", ErrNotPermitted, member, roleNoun(m.Role, false))
		}
		r, ok := s.roles.referrals[v.proposal]
		switch {
		case !ok:
			return fmt.Errorf("%w: answer to referral %s, which this node does not hold", ErrNotPermitted, shortHash(v.proposal))
		case !s.referralInForce(r):
			return fmt.Errorf("%w: answer to referral %s by %q, who is not a referral authority", ErrNotPermitted, shortHash(v.proposal), s.memberIDs[r.author])
		case !s.addresses(r, m):
			return fmt.Errorf("%w: referral %s does not address %q", ErrNotPermitted, shortHash(v.proposal), member)
		}
		if _, done := s.roles.answers[answerKey{v.proposal, mi}]; done || ov.mine[v.proposal] {
			return fmt.Errorf("%w: %q already answered referral %s; a member answers a referral once", ErrNotPermitted, member, shortHash(v.proposal))
		}
		ov.mine[v.proposal] = true
	}
	return nil
}
