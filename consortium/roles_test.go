package consortium_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"google.golang.org/protobuf/proto"
)

// The attacks on the roles of issue 18, each written as a test before the rule it checks. The
// consortium: three founding members (alpha, bravo, charlie, quorum 2) who admit, by the usual
// vote, ngo as a civil-society participant and irua as a referral authority.

const (
	roleCS   = pb.Role_ROLE_CIVIL_SOCIETY
	roleAuth = pb.Role_ROLE_AUTHORITY
)

// rolesWorld returns the genesis and logs of the consortium after the admission (epoch 1).
func rolesWorld(t *testing.T) (*consortium.Genesis, consortium.Logs) {
	t.Helper()
	g := fixture.Genesis(2, fixture.Members("alpha", "bravo", "charlie")...)
	p := fixture.Marshal(fixture.Propose(fixture.At(1000), "alpha", 0,
		consortium.AdmitChange(fixture.Key("irua").Public(), roleAuth),
		consortium.AdmitChange(fixture.Key("ngo").Public(), roleCS)))
	logs := consortium.Logs{
		"alpha": {p},
		"bravo": {fixture.Marshal(fixture.Endorse(fixture.At(2000), 0, p))},
	}
	return g, logs
}

func replay(t *testing.T, g *consortium.Genesis, logs consortium.Logs) *consortium.State {
	t.Helper()
	s, err := consortium.Replay(g, logs, consortium.ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func appendTo(logs consortium.Logs, member string, es ...*pb.Entry) []byte {
	var last []byte
	for _, e := range es {
		last = fixture.Marshal(e)
		logs[member] = append(logs[member], last)
	}
	return last
}

// rejectedAs reports whether replay rejected entry index of member with an error wrapping want.
func rejectedAs(s *consortium.State, member string, index uint64, want error) bool {
	return errors.Is(rejectedWith(s, member, index), want)
}

func TestRolesAdmittedByQuorum(t *testing.T) {
	g, logs := rolesWorld(t)
	s := replay(t, g, logs)
	r := s.Roster()
	for id, want := range map[string]pb.Role{"ngo": roleCS, "irua": roleAuth, "alpha": pb.Role_ROLE_MEMBER} {
		m, ok := r.Member(id)
		if !ok || m.Role != want {
			t.Errorf("%s: got role %v (on roster %v), want %v", id, m.Role, ok, want)
		}
	}
	if got := r.Voters(); got != 3 {
		t.Errorf("voters: got %d, want 3 (civil society and authorities do not vote)", got)
	}
}

// TestCivilSocietyCannotListOrVote: ngo adds a signal, proposes to admit a member, and endorses
// alpha's proposal; none of it has effect.
func TestCivilSocietyCannotListOrVote(t *testing.T) {
	g, logs := rolesWorld(t)
	before := replay(t, g, logs).Digest()
	appendTo(logs, "ngo", fixture.Add(fixture.At(3000), fixture.PDQ(1)))
	appendTo(logs, "ngo", fixture.Admit(fixture.At(3100), "ngo", 1, "mallory"))
	p := appendTo(logs, "alpha", fixture.Remove(fixture.At(3200), "alpha", 1, "charlie"))
	appendTo(logs, "ngo", fixture.Endorse(fixture.At(3300), 1, p))
	appendTo(logs, "irua", fixture.Endorse(fixture.At(3300), 1, p))
	s := replay(t, g, logs)
	if got := s.Listed(fixture.PDQ(1)); len(got) != 0 {
		t.Errorf("ngo's add: got listings %v, want none", got)
	}
	if r := s.Roster(); r.Epoch != 1 {
		t.Errorf("roster: got epoch %d, want 1 (ngo's proposal cannot win; ngo's and irua's endorsements do not count)", r.Epoch)
	}
	for _, ps := range s.Proposals() {
		if ps.Author == "ngo" && ps.Invalid == "" {
			t.Errorf("ngo's proposal: not marked invalid")
		}
		if ps.Author == "alpha" && len(ps.Votes) != 1 {
			t.Errorf("alpha's proposal: got votes %v, want only alpha's", ps.Votes)
		}
	}
	// The digest changes only by what the proposals themselves are not: nothing listed.
	logs2 := consortium.Logs{"alpha": logs["alpha"], "bravo": logs["bravo"]}
	if got, want := s.Digest(), replay(t, g, logs2).Digest(); got != want {
		t.Errorf("digest with ngo's and irua's attempts %x, without %x: want equal (before %x)", got[:4], want[:4], before[:4])
	}
}

// TestAuthorityCannotRevokeOrList: irua revokes alpha's listing, adds a signal and certifies one.
func TestAuthorityCannotRevokeOrList(t *testing.T) {
	g, logs := rolesWorld(t)
	appendTo(logs, "alpha", fixture.Add(fixture.At(3000), fixture.PDQ(1)))
	appendTo(logs, "irua",
		fixture.RevokeSignal(fixture.At(3100), fixture.PDQ(1)),
		fixture.Add(fixture.At(3200), fixture.PDQ(2)),
		fixture.Certify(fixture.At(3300), "irua", pb.Category_CATEGORY_NEWS, fixture.PDQ(1)))
	s := replay(t, g, logs)
	if got := s.Listed(fixture.PDQ(1)); len(got) != 1 || got[0].Member != "alpha" {
		t.Errorf("alpha's listing after irua's revoke: got %v, want alpha's", got)
	}
	if !rejectedAs(s, "irua", 0, consortium.ErrNotPermitted) {
		t.Errorf("irua's revoke of alpha's listing: not rejected as not permitted")
	}
	if got := s.Listed(fixture.PDQ(2)); len(got) != 0 {
		t.Errorf("irua's add: got listings %v, want none", got)
	}
	if got := s.Protections(fixture.PDQ(1), 0); len(got) != 0 {
		t.Errorf("irua's certification: got protections %v, want none (authorities do not certify)", got)
	}
}

// TestForgedCertification: alpha writes a certification in ngo's name in its own log.
func TestForgedCertification(t *testing.T) {
	g, logs := rolesWorld(t)
	appendTo(logs, "alpha", fixture.Certify(fixture.At(3000), "ngo", pb.Category_CATEGORY_PARODY, fixture.PDQ(1)))
	s := replay(t, g, logs)
	if got := s.Protections(fixture.PDQ(1), 0); len(got) != 0 {
		t.Errorf("forged certification: got protections %v, want none", got)
	}
	if !rejectedAs(s, "alpha", 1, consortium.ErrWrongAuthor) {
		t.Errorf("forged certification: not rejected as a wrong author")
	}
}

// TestCopiedCertificationAndReferral: ngo's certification and irua's referral, copied byte for
// byte into alpha's and ngo's logs, change nothing, whatever order the logs are applied in.
func TestCopiedCertificationAndReferral(t *testing.T) {
	g, logs := rolesWorld(t)
	c := appendTo(logs, "ngo", fixture.Certify(fixture.At(3000), "ngo", pb.Category_CATEGORY_PARODY, fixture.PDQ(1)))
	ref := appendTo(logs, "irua", fixture.Refer(fixture.At(3000), "irua", nil, fixture.PDQ(2)))
	want := replay(t, g, logs).Digest()
	logs["alpha"] = append(logs["alpha"], c)
	logs["bravo"] = append(logs["bravo"], ref)
	ids := []string{"alpha", "bravo", "irua", "ngo"}
	for _, order := range permutations(ids) {
		s := applyLogsInOrder(t, g, logs, order)
		if got := s.Digest(); got != want {
			t.Fatalf("order %v: digest %x with copies, want %x", order, got[:4], want[:4])
		}
		ps := s.Protections(fixture.PDQ(1), 0)
		if len(ps) != 1 || ps[0].Author != "ngo" {
			t.Fatalf("order %v: got protections %v, want ngo's alone", order, ps)
		}
		rs := s.Referrals()
		if len(rs) != 1 || rs[0].Author != "irua" {
			t.Fatalf("order %v: got referrals %v, want irua's alone", order, rs)
		}
		if !rejectedAs(s, "alpha", 1, consortium.ErrWrongAuthor) || !rejectedAs(s, "bravo", 1, consortium.ErrWrongAuthor) {
			t.Fatalf("order %v: copies not rejected as wrong authors", order)
		}
	}
}

// TestUncertifyOnlyOwn: alpha withdraws ngo's certification; only ngo can.
func TestUncertifyOnlyOwn(t *testing.T) {
	g, logs := rolesWorld(t)
	c := appendTo(logs, "ngo", fixture.Certify(fixture.At(3000), "ngo", pb.Category_CATEGORY_PARODY, fixture.PDQ(1)))
	appendTo(logs, "alpha", fixture.Uncertify(fixture.At(3100), c))
	s := replay(t, g, logs)
	if got := s.Protections(fixture.PDQ(1), 0); len(got) != 1 {
		t.Errorf("after alpha's withdrawal of ngo's certification: got %d protections, want 1", len(got))
	}
	if !rejectedAs(s, "alpha", 1, consortium.ErrNotPermitted) {
		t.Errorf("alpha's withdrawal: not rejected as not permitted")
	}
	appendTo(logs, "ngo", fixture.Uncertify(fixture.At(3200), c))
	s = replay(t, g, logs)
	if got := s.Protections(fixture.PDQ(1), 0); len(got) != 0 {
		t.Errorf("after ngo's withdrawal: got protections %v, want none", got)
	}
}

// TestAnswerAttacks: answers to a referral that does not exist, to one not addressed to the
// member, by a participant who is not a member, and a second answer, all count for nothing.
func TestAnswerAttacks(t *testing.T) {
	g, logs := rolesWorld(t)
	ref := appendTo(logs, "irua", fixture.Refer(fixture.At(3000), "irua", []string{"alpha"}, fixture.PDQ(2)))
	base := replay(t, g, logs).Digest()
	ghost := fixture.Marshal(fixture.Refer(fixture.At(2500), "irua", nil, fixture.PDQ(3))) // never in irua's log
	appendTo(logs, "bravo",
		fixture.Answer(fixture.At(3100), ghost, pb.Outcome_OUTCOME_LISTED),
		fixture.Answer(fixture.At(3200), ref, pb.Outcome_OUTCOME_DECLINED))
	appendTo(logs, "ngo", fixture.Answer(fixture.At(3200), ref, pb.Outcome_OUTCOME_LISTED))
	s := replay(t, g, logs)
	if got := s.Digest(); got != base {
		t.Errorf("digest: got %x with stray answers, want %x", got[:4], base[:4])
	}
	rs := s.Referrals()
	if len(rs) != 1 || len(rs[0].Answers) != 0 {
		t.Fatalf("got referrals %+v, want one with no answers", rs)
	}
	stray := s.StrayAnswers()
	if len(stray) != 3 {
		t.Errorf("stray answers: got %+v, want 3 (bravo's two, ngo's one)", stray)
	}
	if open := s.OpenReferrals("alpha"); len(open) != 1 {
		t.Errorf("alpha's open referrals: got %d, want 1", len(open))
	}
	if open := s.OpenReferrals("bravo"); len(open) != 0 {
		t.Errorf("bravo's open referrals: got %d, want 0 (not addressed)", len(open))
	}
	// alpha answers twice: the second is rejected, the first stands.
	appendTo(logs, "alpha",
		fixture.Answer(fixture.At(5000), ref, pb.Outcome_OUTCOME_DECLINED),
		fixture.Answer(fixture.At(6000), ref, pb.Outcome_OUTCOME_LISTED))
	s = replay(t, g, logs)
	rs = s.Referrals()
	if len(rs) != 1 || len(rs[0].Answers) != 1 || rs[0].Answers[0].Outcome != pb.Outcome_OUTCOME_DECLINED || rs[0].Answers[0].Delay() != 2*time.Second {
		t.Fatalf("got referrals %+v, want alpha's one declined answer after 2000 ms", rs)
	}
	if !rejectedAs(s, "alpha", 2, consortium.ErrNotPermitted) {
		t.Errorf("alpha's second answer: not rejected")
	}
	if open := s.OpenReferrals("alpha"); len(open) != 0 {
		t.Errorf("alpha's open referrals after its answer: got %d, want 0", len(open))
	}
}

// TestReferralOnlyByAuthority: a member and ngo write referrals; only irua's count.
func TestReferralOnlyByAuthority(t *testing.T) {
	g, logs := rolesWorld(t)
	appendTo(logs, "ngo", fixture.Refer(fixture.At(3000), "ngo", nil, fixture.PDQ(1)))
	appendTo(logs, "charlie", fixture.Refer(fixture.At(3000), "charlie", nil, fixture.PDQ(1)))
	s := replay(t, g, logs)
	if rs := s.Referrals(); len(rs) != 0 {
		t.Errorf("got referrals %+v, want none", rs)
	}
}

// TestProtectedMatch: ngo certifies a parody account and a member certifies content; both protect
// while in force, members dispute with an opinion, expiry and removal of the author end it.
func TestProtectedMatch(t *testing.T) {
	g, logs := rolesWorld(t)
	acct, err := consortium.ParseSignal("url", "https://social.example/@caliphate_cats")
	if err != nil {
		t.Fatal(err)
	}
	sigs := []consortium.Signal{fixture.PDQ(1), acct}
	consortium.SortSignals(sigs)
	cert := fixture.Certify(fixture.At(3000), "ngo", pb.Category_CATEGORY_PARODY, sigs...)
	cert.GetCertify().Subject = "@caliphate_cats"
	cert.GetCertify().ExpiresUnixMs = fixture.At(10_000)
	appendTo(logs, "ngo", cert)
	appendTo(logs, "alpha", fixture.Add(fixture.At(3100), acct))
	appendTo(logs, "charlie", fixture.Certify(fixture.At(3000), "charlie", pb.Category_CATEGORY_RESEARCH, fixture.PDQ(9)))
	appendTo(logs, "bravo", fixture.Opinion(fixture.At(3200), acct, pb.Stance_STANCE_DISPUTE))
	s := replay(t, g, logs)
	ps := s.Protections(acct, fixture.At(5000))
	if len(ps) != 1 || ps[0].Author != "ngo" || ps[0].Category != pb.Category_CATEGORY_PARODY || ps[0].Subject != "@caliphate_cats" || ps[0].Reason == "" {
		t.Fatalf("got protections %+v, want ngo's parody certification", ps)
	}
	if got := s.Protections(acct, fixture.At(10_000)); len(got) != 0 {
		t.Errorf("at expiry: got %d protections, want 0", len(got))
	}
	if got := s.Protections(fixture.PDQ(9), 0); len(got) != 1 || got[0].Author != "charlie" {
		t.Errorf("charlie's certification: got %+v, want it (members may certify)", got)
	}
	if ops := s.Opinions(acct); len(ops) != 1 || ops[0].Stance != pb.Stance_STANCE_DISPUTE {
		t.Errorf("dispute: got opinions %+v, want bravo's dispute", ops)
	}
	// The members remove ngo: its certifications no longer protect.
	p := appendTo(logs, "alpha", fixture.Remove(fixture.At(4000), "alpha", 1, "ngo"))
	appendTo(logs, "charlie", fixture.Endorse(fixture.At(4100), 1, p))
	s = replay(t, g, logs)
	if got := s.Protections(acct, 0); len(got) != 0 {
		t.Errorf("after ngo's removal: got %d protections, want 0", len(got))
	}
}

// TestRolesDigestOrderIndependent replays a world with every new entry kind in every order of
// the logs and gets one digest, which differs from the digest without certifications, referrals
// or answers.
func TestRolesDigestOrderIndependent(t *testing.T) {
	g, logs := rolesWorld(t)
	plain := replay(t, g, logs).Digest()
	appendTo(logs, "ngo", fixture.Certify(fixture.At(3000), "ngo", pb.Category_CATEGORY_COUNTER_SPEECH, fixture.PDQ(1)))
	ref := appendTo(logs, "irua", fixture.Refer(fixture.At(3000), "irua", nil, fixture.PDQ(2)))
	appendTo(logs, "alpha", fixture.Answer(fixture.At(3500), ref, pb.Outcome_OUTCOME_LISTED))
	appendTo(logs, "charlie", fixture.Answer(fixture.At(3600), ref, pb.Outcome_OUTCOME_DECLINED))
	want := replay(t, g, logs).Digest()
	if want == plain {
		t.Fatalf("the digest does not cover certifications, referrals and answers")
	}
	for _, order := range permutations([]string{"alpha", "bravo", "charlie", "irua", "ngo"}) {
		if got := applyLogsInOrder(t, g, logs, order).Digest(); got != want {
			t.Fatalf("order %v: digest %x, want %x", order, got[:4], want[:4])
		}
	}
}

func TestRoleEntryValidation(t *testing.T) {
	now := fixture.At(1000)
	a, b := fixture.PDQ(1), fixture.PDQ(2)
	sorted := []consortium.Signal{a, b}
	consortium.SortSignals(sorted)
	cert := func(mod func(c *pb.Certify)) *pb.Entry {
		e := fixture.Certify(now, "ngo", pb.Category_CATEGORY_PARODY, sorted...)
		mod(e.GetCertify())
		return e
	}
	refer := func(mod func(r *pb.Refer)) *pb.Entry {
		e := fixture.Refer(now, "irua", []string{"alpha", "bravo"}, sorted...)
		mod(e.GetRefer())
		return e
	}
	ref := fixture.Marshal(refer(func(*pb.Refer) {}))
	answer := func(mod func(a *pb.Answer)) *pb.Entry {
		e := fixture.Answer(now, ref, pb.Outcome_OUTCOME_DECLINED)
		mod(e.GetAnswer())
		return e
	}
	tests := []struct {
		name string
		e    *pb.Entry
		want error
		msg  string
	}{
		{"valid certify", cert(func(c *pb.Certify) { c.Subject = "@parody"; c.ExpiresUnixMs = now + 1 }), nil, ""},
		{"certify without author", cert(func(c *pb.Certify) { c.Author = "" }), consortium.ErrInvalidEntry, "no author"},
		{"certify without signals", cert(func(c *pb.Certify) { c.Signals = nil }), consortium.ErrInvalidEntry, "no signals"},
		{"certify unsorted", cert(func(c *pb.Certify) { c.Signals[0], c.Signals[1] = c.Signals[1], c.Signals[0] }), consortium.ErrInvalidEntry, "sorted"},
		{"certify repeated signal", cert(func(c *pb.Certify) { c.Signals[1] = c.Signals[0] }), consortium.ErrInvalidEntry, "no repeats"},
		{"certify without category", cert(func(c *pb.Certify) { c.Category = 0 }), consortium.ErrInvalidEntry, "category missing"},
		{"certify unknown category", cert(func(c *pb.Certify) { c.Category = 9 }), consortium.ErrInvalidEntry, "category 9"},
		{"certify without reason", cert(func(c *pb.Certify) { c.Reason = "" }), consortium.ErrInvalidEntry, "no reason"},
		{"certify subject with newline", cert(func(c *pb.Certify) { c.Subject = "a\nb" }), consortium.ErrInvalidEntry, "control characters"},
		{"certify expired", cert(func(c *pb.Certify) { c.ExpiresUnixMs = now }), consortium.ErrExpired, "not after"},
		{"uncertify short hash", &pb.Entry{TimeUnixMs: now, Op: &pb.Entry_Uncertify{Uncertify: &pb.Uncertify{Certification: []byte{1}}}}, consortium.ErrInvalidEntry, "1 bytes"},
		{"uncertify nothing", &pb.Entry{TimeUnixMs: now, Op: &pb.Entry_Uncertify{Uncertify: &pb.Uncertify{Reason: "x"}}}, consortium.ErrInvalidEntry, "names no certification"},
		{"valid refer", refer(func(r *pb.Refer) { r.Note = "video of the attack" }), nil, ""},
		{"refer to all", refer(func(r *pb.Refer) { r.To = nil }), nil, ""},
		{"refer without deadline", refer(func(r *pb.Refer) { r.DeadlineUnixMs = 0 }), consortium.ErrInvalidEntry, "no deadline"},
		{"refer deadline not after time", refer(func(r *pb.Refer) { r.DeadlineUnixMs = now }), consortium.ErrInvalidEntry, "deadline"},
		{"refer without basis", refer(func(r *pb.Refer) { r.LegalBasis = "" }), consortium.ErrInvalidEntry, "legal basis"},
		{"refer unsorted to", refer(func(r *pb.Refer) { r.To = []string{"bravo", "alpha"} }), consortium.ErrInvalidEntry, "sorted"},
		{"refer bad member id", refer(func(r *pb.Refer) { r.To = []string{"Alpha"} }), consortium.ErrInvalidMemberID, "Alpha"},
		{"refer without author", refer(func(r *pb.Refer) { r.Author = "" }), consortium.ErrInvalidEntry, "no author"},
		{"valid answer", answer(func(*pb.Answer) {}), nil, ""},
		{"declined without reason", answer(func(a *pb.Answer) { a.Reason = "" }), consortium.ErrInvalidEntry, "no reason"},
		{"answer without outcome", answer(func(a *pb.Answer) { a.Outcome = 0 }), consortium.ErrInvalidEntry, "outcome missing"},
		{"answer unknown outcome", answer(func(a *pb.Answer) { a.Outcome = 7 }), consortium.ErrInvalidEntry, "outcome 7"},
		{"answer short hash", answer(func(a *pb.Answer) { a.Referral = a.Referral[:5] }), consortium.ErrInvalidEntry, "5 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := consortium.MarshalEntry(tc.e)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("MarshalEntry: got %v, want nil", err)
				}
				back, err := consortium.ParseEntry(raw)
				if err != nil || !proto.Equal(back, tc.e) {
					t.Fatalf("ParseEntry round trip: got %v, %v", back, err)
				}
				return
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("MarshalEntry: got %v, want %v mentioning %q", err, tc.want, tc.msg)
			}
		})
	}
	for _, c := range consortium.Categories() {
		if v, err := consortium.ParseCategory(c); err != nil || consortium.CategoryName(v) != c {
			t.Errorf("category %q: got %v, %v", c, v, err)
		}
	}
	for _, r := range []string{"member", "observer", "civil-society", "authority"} {
		if v, err := consortium.ParseRole(r); err != nil || consortium.RoleName(v) != r {
			t.Errorf("role %q: got %v, %v", r, v, err)
		}
	}
}

// TestCheckRoleOps: a node refuses its own participant's entries that would count for nothing.
func TestCheckRoleOps(t *testing.T) {
	g, logs := rolesWorld(t)
	c := appendTo(logs, "ngo", fixture.Certify(fixture.At(3000), "ngo", pb.Category_CATEGORY_PARODY, fixture.PDQ(1)))
	ref := appendTo(logs, "irua", fixture.Refer(fixture.At(3000), "irua", []string{"alpha"}, fixture.PDQ(2)))
	s := replay(t, g, logs)
	now := fixture.At(4000)
	ghost := fixture.Marshal(fixture.Refer(now, "irua", nil, fixture.PDQ(3)))
	tests := []struct {
		name, member string
		e            *pb.Entry
		want         error
		msg          string
	}{
		{"ngo certifies", "ngo", fixture.Certify(now, "ngo", pb.Category_CATEGORY_NEWS, fixture.PDQ(5)), nil, ""},
		{"member certifies", "bravo", fixture.Certify(now, "bravo", pb.Category_CATEGORY_NEWS, fixture.PDQ(5)), nil, ""},
		{"authority certifies", "irua", fixture.Certify(now, "irua", pb.Category_CATEGORY_NEWS, fixture.PDQ(5)), consortium.ErrNotPermitted, "only members and civil-society participants certify"},
		{"forged certification", "alpha", fixture.Certify(now, "ngo", pb.Category_CATEGORY_NEWS, fixture.PDQ(5)), consortium.ErrWrongAuthor, "own name"},
		{"ngo adds", "ngo", fixture.Add(now, fixture.PDQ(5)), consortium.ErrNotPermitted, "civil-society participants cannot add"},
		{"ngo endorses", "ngo", fixture.Endorse(now, 1, logs["alpha"][0]), consortium.ErrNotPermitted, "only members propose"},
		{"withdraw another's certification", "alpha", fixture.Uncertify(now, c), consortium.ErrNotPermitted, "withdraws only its own"},
		{"withdraw own", "ngo", fixture.Uncertify(now, c), nil, ""},
		{"member refers", "alpha", fixture.Refer(now, "alpha", nil, fixture.PDQ(5)), consortium.ErrNotPermitted, "only referral authorities refer"},
		{"authority refers", "irua", fixture.Refer(now, "irua", nil, fixture.PDQ(5)), nil, ""},
		{"answer", "alpha", fixture.Answer(now, ref, pb.Outcome_OUTCOME_LISTED), nil, ""},
		{"answer not addressed", "bravo", fixture.Answer(now, ref, pb.Outcome_OUTCOME_LISTED), consortium.ErrNotPermitted, "does not address"},
		{"answer unknown", "alpha", fixture.Answer(now, ghost, pb.Outcome_OUTCOME_LISTED), consortium.ErrNotPermitted, "does not hold"},
		{"ngo answers", "ngo", fixture.Answer(now, ref, pb.Outcome_OUTCOME_LISTED), consortium.ErrNotPermitted, "only members answer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Check(tc.member, fixture.Marshal(tc.e))
			if tc.want == nil {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want %v mentioning %q", err, tc.want, tc.msg)
			}
		})
	}
	// Two answers in one batch: the second is refused.
	a := fixture.Marshal(fixture.Answer(now, ref, pb.Outcome_OUTCOME_LISTED))
	b := fixture.Marshal(fixture.Answer(now+1, ref, pb.Outcome_OUTCOME_DECLINED))
	if errs := s.CheckBatch("alpha", [][]byte{a, b}); errs[0] != nil || !errors.Is(errs[1], consortium.ErrNotPermitted) {
		t.Errorf("two answers in one batch: got %v, want the second refused", errs)
	}
}
