package consortium

import (
	"fmt"
	"strings"
	"time"
)

// Failure is one reason an audit fails: the rule broken, the log and entry index it concerns (when
// it concerns one), and a message for people.
type Failure struct {
	Rule    string  `json:"rule"`
	Log     string  `json:"log,omitempty"`
	Index   *uint64 `json:"index,omitempty"`
	Message string  `json:"message"`
}

func (f Failure) String() string { return f.Message + " [rule " + f.Rule + "]" }

// AuditReport is the outcome of [Audit]. OK is true only when Failures is empty.
type AuditReport struct {
	Consortium string       `json:"consortium"`
	Name       string       `json:"name"`
	Founders   []string     `json:"founders"`
	Logs       []LogAudit   `json:"logs"`
	Roster     []EpochAudit `json:"roster"`
	// Rules names the checks this audit applied, with their parameters.
	Rules []string `json:"rules"`
	// Heads lists the valid heads notes, by signer.
	Heads []HeadsAudit `json:"heads"`
	// Equivocations describes every proven equivocation.
	Equivocations []string          `json:"equivocations"`
	Rejections    []RejectionReport `json:"rejections"`
	// RejectedTotal counts all rejected entries (Rejections lists at most 1000).
	RejectedTotal int `json:"rejected_total"`
	// Signals and Listings count the state's listed signals and listings; at a time (At), listings
	// expired by then are left out, as export --at leaves them out. The digest never applies expiry.
	Signals  int `json:"signals"`
	Listings int `json:"listings"`
	// Certifications counts the certifications in force (the protected list); Referrals lists
	// every referral in force with each addressed member's answer and its delay.
	Certifications int             `json:"certifications,omitempty"`
	Referrals      []ReferralAudit `json:"referrals,omitempty"`
	Digest         string          `json:"digest"`
	At             time.Time       `json:"at,omitzero"`
	Failures       []Failure       `json:"failures"`
	Warnings       []string        `json:"warnings"`
	OK             bool            `json:"ok"`
}

// FailureText returns every failure, one per line.
func (r *AuditReport) FailureText() string {
	var b strings.Builder
	for _, f := range r.Failures {
		b.WriteString(f.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// VerifiedLogs returns the part of logs the audit replayed: each audited log's entries up to its
// verified checkpoint (none of a log that failed before one verified). Entries after it are signed
// by no one, so a transparency report is computed from these ([NewReport], PROTOCOL.md section 13).
func (r *AuditReport) VerifiedLogs(logs Logs) Logs {
	out := Logs{}
	for _, la := range r.Logs {
		if n := min(la.Verified, uint64(len(logs[la.Member]))); n > 0 {
			out[la.Member] = logs[la.Member][:n]
		}
	}
	return out
}

// LogAudit is the audit of one member log.
type LogAudit struct {
	Member string `json:"member"`
	// Entries is the number of entries given; Verified how many of them a valid checkpoint covers
	// (only those are replayed).
	Entries    uint64 `json:"entries"`
	Verified   uint64 `json:"verified"`
	Checkpoint uint64 `json:"checkpoint"`
	// Agreed, when not 0, is the agreed size of the resolved equivocation evidence that verified
	// the first Agreed entries, beyond any checkpoint given (section 12.1 of PROTOCOL.md).
	Agreed uint64 `json:"agreed,omitempty"`
	// Cosigners are the members of the final roster (any role) other than the author whose
	// cosignatures on that checkpoint verified: they count toward RequireCosignatures. For a log
	// verified by the agreed root (Agreed > 0), they are the cosigners of the checkpoints of the
	// evidence that fixes that root. UncountedCosigners verified but are no longer on the roster.
	Cosigners          []string `json:"cosigners"`
	UncountedCosigners []string `json:"uncounted_cosigners,omitempty"`
	Problems           []string `json:"problems"`

	note       []byte // the verified checkpoint, reopened with the final roster for its cosignatures
	agreedRoot Hash   // with Agreed: the agreed root that verified the log
}

// HeadsAudit is one valid heads note.
type HeadsAudit struct {
	Signer string    `json:"signer"`
	Time   time.Time `json:"time"`
	Logs   int       `json:"logs"`
	// Counted is whether the signer is on the final roster (it counts toward RequireHeads).
	Counted bool `json:"counted"`
}

// EpochAudit is one roster epoch.
type EpochAudit struct {
	Epoch    uint64   `json:"epoch"`
	Quorum   int      `json:"quorum"`
	Members  []string `json:"members"`
	Proposer string   `json:"proposer,omitempty"`
	Proposal string   `json:"proposal,omitempty"`
}

// RejectionReport is one entry replay ignored.
type RejectionReport struct {
	Member string `json:"member"`
	Index  uint64 `json:"index"`
	Reason string `json:"reason"`
}

// String renders the report for people.
func (r *AuditReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "consortium %s (%s)\n", r.Consortium, r.Name)
	fmt.Fprintf(&b, "founders: %s\n", strings.Join(r.Founders, ", "))
	for _, rule := range r.Rules {
		fmt.Fprintf(&b, "rule: %s\n", rule)
	}
	for _, e := range r.Roster {
		if e.Epoch == 0 {
			fmt.Fprintf(&b, "roster epoch 0 (genesis), quorum %d: %s\n", e.Quorum, strings.Join(e.Members, ", "))
		} else {
			fmt.Fprintf(&b, "roster epoch %d, proposed by %s (%s…), quorum %d: %s\n", e.Epoch, e.Proposer, e.Proposal[:12], e.Quorum, strings.Join(e.Members, ", "))
		}
	}
	for _, l := range r.Logs {
		status := "verified"
		if len(l.Problems) > 0 {
			status = "FAILED: " + strings.Join(l.Problems, "; ")
		} else if l.Agreed > 0 {
			status = fmt.Sprintf("verified up to %d by the agreed root of the equivocation evidence", l.Agreed)
		}
		fmt.Fprintf(&b, "log %-12s %8d entries, checkpoint %d, %d cosignatures (%s): %s\n", l.Member, l.Entries, l.Checkpoint, len(l.Cosigners), strings.Join(l.Cosigners, ","), status)
	}
	for _, h := range r.Heads {
		counted := ""
		if !h.Counted {
			counted = " (not on the final roster: not counted)"
		}
		fmt.Fprintf(&b, "heads note of %s at %s: %d logs%s\n", h.Signer, h.Time.Format(time.RFC3339Nano), h.Logs, counted)
	}
	for _, e := range r.Equivocations {
		fmt.Fprintf(&b, "EQUIVOCATION: %s\n", e)
	}
	for _, x := range r.Rejections {
		fmt.Fprintf(&b, "rejected: %s entry %d: %s\n", x.Member, x.Index, x.Reason)
	}
	if !r.At.IsZero() {
		fmt.Fprintf(&b, "state at %s: ", r.At.UTC().Format(time.RFC3339))
	} else {
		b.WriteString("state: ")
	}
	fmt.Fprintf(&b, "%d signals, %d listings, digest %s\n", r.Signals, r.Listings, r.Digest)
	if r.Certifications > 0 {
		fmt.Fprintf(&b, "protected list: %d certifications in force\n", r.Certifications)
	}
	for _, ref := range r.Referrals {
		b.WriteString(ref.String())
	}
	for _, w := range r.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", w)
	}
	for _, f := range r.Failures {
		fmt.Fprintf(&b, "FAIL: %s\n", f)
	}
	if r.OK {
		b.WriteString("audit OK\n")
	} else {
		fmt.Fprintf(&b, "audit FAILED (%d problems)\n", len(r.Failures))
	}
	return b.String()
}
