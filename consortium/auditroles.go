package consortium

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// ReferralAudit is one referral in force as an audit reports it: who wrote it and when, and for
// each addressed member its answer, computed from the log times of the two entries.
type ReferralAudit struct {
	Referral string        `json:"referral"`
	Author   string        `json:"author"`
	Index    uint64        `json:"index"`
	Time     time.Time     `json:"time"`
	Deadline time.Time     `json:"deadline"`
	Answers  []AnswerAudit `json:"answers"`
}

// AnswerAudit is one addressed member's answer to a referral, or its absence.
type AnswerAudit struct {
	Member string `json:"member"`
	// Outcome is "listed", "declined" or "none".
	Outcome string  `json:"outcome"`
	Index   *uint64 `json:"index,omitempty"`
	// DelayMs is the time from the referral to the answer in milliseconds (absent when none).
	DelayMs *int64 `json:"delay_ms,omitempty"`
	Late    bool   `json:"late"`
}

// String renders the referral for people, one line per addressed member.
func (r ReferralAudit) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "referral %s… by %s (entry %d) at %s, deadline %s\n", r.Referral[:12], r.Author, r.Index, r.Time.Format(time.RFC3339), r.Deadline.Format(time.RFC3339))
	for _, a := range r.Answers {
		switch {
		case a.DelayMs == nil && a.Late:
			fmt.Fprintf(&b, "  %s: no answer, deadline passed\n", a.Member)
		case a.DelayMs == nil:
			fmt.Fprintf(&b, "  %s: no answer yet\n", a.Member)
		default:
			late := ""
			if a.Late {
				late = ", after the deadline"
			}
			fmt.Fprintf(&b, "  %s: %s (entry %d) after %s%s\n", a.Member, a.Outcome, *a.Index, time.Duration(*a.DelayMs)*time.Millisecond, late)
		}
	}
	return b.String()
}

// auditReferrals reports the protected list and every referral with its answers' delays, and
// warns of answers that count for nothing, of "listed" answers whose member lists none of the
// referred signals, and of deadlines missed (failures with RequireAnswers).
func (a *auditor) auditReferrals(st *State, opt AuditOptions) {
	r := a.r
	r.Certifications = len(st.Certifications())
	refs := st.Referrals()
	if len(refs) == 0 && r.Certifications == 0 {
		return
	}
	now := opt.Until.UnixMilli()
	if opt.Until.IsZero() {
		now = 0
		for m := range st.Heads() {
			if t, ok := st.LastTime(m); ok {
				now = max(now, t)
			}
		}
	}
	r.Rules = append(r.Rules, "referrals: each answer's delay is its entry's time minus the referral's; a deadline is missed by a late answer or by none when the deadline is before the audit's time (PROTOCOL.md, Referrals)")
	for _, ref := range refs {
		ra := ReferralAudit{Referral: fmt.Sprintf("%x", ref.Hash[:]), Author: ref.Author, Index: ref.Index,
			Time: time.UnixMilli(ref.Time).UTC(), Deadline: time.UnixMilli(ref.Deadline).UTC()}
		for _, m := range ref.Addressed {
			aa := AnswerAudit{Member: m, Outcome: "none"}
			if ans, ok := ref.Answer(m); ok {
				d := ans.Delay().Milliseconds()
				aa.Outcome, aa.Index, aa.DelayMs, aa.Late = OutcomeName(ans.Outcome), at(ans.Index), &d, ans.Late()
				if aa.Outcome == "listed" && !slices.ContainsFunc(ref.Signals, func(s Signal) bool {
					return slices.ContainsFunc(st.Listed(s), func(l Listing) bool { return l.Member == m })
				}) {
					r.Warnings = append(r.Warnings, fmt.Sprintf("%s answered referral %s… as listed (entry %d) but lists none of its signals", m, ra.Referral[:12], ans.Index))
				}
			} else {
				aa.Late = ref.Deadline < now
			}
			if aa.Late {
				msg := fmt.Sprintf("referral %s… by %s, deadline %s: %s ", ra.Referral[:12], ref.Author, ra.Deadline.Format(time.RFC3339), m)
				if aa.Index != nil {
					msg += fmt.Sprintf("answered late (entry %d, after %s)", *aa.Index, time.Duration(*aa.DelayMs)*time.Millisecond)
				} else {
					msg += "has not answered"
				}
				if opt.RequireAnswers {
					a.fail(RuleDeadline, m, aa.Index, "%s", msg)
				} else {
					r.Warnings = append(r.Warnings, msg)
				}
			}
			ra.Answers = append(ra.Answers, aa)
		}
		r.Referrals = append(r.Referrals, ra)
	}
	for _, x := range st.StrayAnswers() {
		r.Warnings = append(r.Warnings, fmt.Sprintf("%s's answer (entry %d) to referral %x… counts for nothing: %s", x.Member, x.Index, x.Referral[:6], x.Why))
	}
}
