package consortium

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// AuditInput is what an auditor holds: the genesis file and, for each member log, its entries, the
// checkpoints collected for it (from one or several sources), and optionally the leaf hashes a node
// recorded (which let the audit name the exact entry that was altered). Evidence files are
// equivocation proofs collected from nodes.
type AuditInput struct {
	Genesis     []byte
	Logs        Logs
	Leaves      map[string][]Hash
	Checkpoints map[string][][]byte
	Evidence    [][]byte
}

// AuditOptions tunes an audit.
type AuditOptions struct {
	// Until, when not zero, computes the state at that time (section 7.2 of PROTOCOL.md).
	Until time.Time
	// RequireCosignatures fails a log whose verified checkpoint carries fewer cosignatures (by
	// members other than the author).
	RequireCosignatures int
}

// AuditReport is the outcome of [Audit]. OK is true only when Failures is empty.
type AuditReport struct {
	Consortium string       `json:"consortium"`
	Name       string       `json:"name"`
	Founders   []string     `json:"founders"`
	Logs       []LogAudit   `json:"logs"`
	Roster     []EpochAudit `json:"roster"`
	// Equivocations describes every proven equivocation.
	Equivocations []string          `json:"equivocations"`
	Rejections    []RejectionReport `json:"rejections"`
	// RejectedTotal counts all rejected entries (Rejections lists at most 1000).
	RejectedTotal int       `json:"rejected_total"`
	Signals       int       `json:"signals"`
	Listings      int       `json:"listings"`
	Digest        string    `json:"digest"`
	At            time.Time `json:"at,omitzero"`
	Failures      []string  `json:"failures"`
	Warnings      []string  `json:"warnings"`
	OK            bool      `json:"ok"`
}

// LogAudit is the audit of one member log.
type LogAudit struct {
	Member string `json:"member"`
	// Entries is the number of entries given; Verified how many of them a valid checkpoint covers
	// (only those are replayed).
	Entries    uint64   `json:"entries"`
	Verified   uint64   `json:"verified"`
	Checkpoint uint64   `json:"checkpoint"`
	Cosigners  []string `json:"cosigners"`
	Problems   []string `json:"problems"`

	note []byte // the verified checkpoint, reopened with the final roster for its cosignatures
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

// Audit verifies a consortium's logs end to end, with nothing but this package: the genesis and its
// signatures; every checkpoint's signature and cosignatures; every log's entries against its
// largest valid checkpoint (naming the first altered entry when leaf hashes are given); every pair
// of checkpoints of one log for consistency; any equivocation evidence; the roster changes against
// the quorum rule; then it replays the verified logs (optionally up to a time) and reports the state
// digest and every entry replay had to ignore.
func Audit(in AuditInput, opt AuditOptions) *AuditReport {
	r := &AuditReport{}
	fail := func(format string, a ...any) { r.Failures = append(r.Failures, fmt.Sprintf(format, a...)) }
	g, err := ParseGenesis(in.Genesis)
	if err != nil {
		fail("genesis: %v", err)
		return r
	}
	r.Consortium, r.Name = g.ID.String(), g.Name
	for _, m := range g.Members {
		r.Founders = append(r.Founders, m.ID)
	}
	members := make([]string, 0, len(in.Logs))
	for m := range in.Logs {
		members = append(members, m)
	}
	for m := range in.Checkpoints {
		if _, ok := in.Logs[m]; !ok {
			members = append(members, m)
		}
	}
	slices.Sort(members)
	audits := map[string]*LogAudit{}
	for _, m := range members {
		audits[m] = &LogAudit{Member: m, Entries: uint64(len(in.Logs[m]))}
	}
	// Logs verify in rounds: a member admitted by the roster becomes verifiable once the logs that
	// admitted it are.
	verified := Logs{}
	done := map[string]bool{}
	for progress := true; progress; {
		progress = false
		keys, err := Replay(g, verified, ReplayOptions{})
		if err != nil {
			fail("replay: %v", err)
			return r
		}
		for _, m := range members {
			if done[m] {
				continue
			}
			if _, ok := keys.MemberKey(m); !ok {
				continue
			}
			done[m], progress = true, true
			verified[m] = auditLog(g, keys, m, in, opt, audits[m], r)
		}
	}
	for _, m := range members {
		if !done[m] {
			audits[m].Problems = append(audits[m].Problems, "not a member of the consortium (no roster change admits it)")
			fail("log %q: not a member of the consortium", m)
		}
	}
	// Equivocation evidence collected from nodes.
	keys, err := Replay(g, verified, ReplayOptions{})
	if err != nil {
		fail("replay: %v", err)
		return r
	}
	// Cosignatures count once every member's key is known (a member admitted later may have
	// cosigned founders' checkpoints).
	for _, m := range members {
		la := audits[m]
		if la.note == nil {
			continue
		}
		cp, err := OpenCheckpoint(g.ID, keys, la.note)
		if err != nil {
			continue
		}
		for _, c := range cp.Cosigners {
			la.Cosigners = append(la.Cosigners, c.Member)
		}
		if k := opt.RequireCosignatures; k > 0 && len(cp.Cosigners) < k {
			la.Problems = append(la.Problems, fmt.Sprintf("checkpoint of size %d has %d cosignatures, %d required", cp.Size, len(cp.Cosigners), k))
			fail("log %q: checkpoint of size %d has %d cosignatures, %d required", m, cp.Size, len(cp.Cosigners), k)
		}
	}
	var evidence []*Evidence
	for i, raw := range in.Evidence {
		ev, err := ParseEvidence(g.ID, keys, raw)
		if err != nil {
			fail("evidence %d does not verify: %v", i, err)
			continue
		}
		r.Equivocations = append(r.Equivocations, ev.String())
		evidence = append(evidence, ev)
	}
	// Equivocation cutoffs (auditfork.go): the replay applies a forking member's log up to them.
	cutoffs, failures, warnings := auditCutoffs(evidence)
	r.Failures = append(r.Failures, failures...)
	r.Warnings = append(r.Warnings, warnings...)
	// The state, at the chosen time.
	ro := ReplayOptions{Until: opt.Until, Sizes: cutoffs}
	st, err := Replay(g, verified, ro)
	if err != nil {
		fail("replay: %v", err)
		return r
	}
	r.At = opt.Until
	for _, ep := range st.Chain() {
		ea := EpochAudit{Epoch: ep.Epoch, Quorum: ep.Quorum, Proposer: ep.Proposer}
		if ep.Epoch > 0 {
			ea.Proposal = fmt.Sprintf("%x", ep.Proposal[:])
		}
		for _, m := range ep.Members {
			ea.Members = append(ea.Members, m.ID+" ("+RoleName(m.Role)+")")
		}
		r.Roster = append(r.Roster, ea)
	}
	rej, n := st.Rejections()
	r.RejectedTotal = n
	for _, x := range rej {
		r.Rejections = append(r.Rejections, RejectionReport{Member: x.Member, Index: x.Index, Reason: x.Err.Error()})
		if errors.Is(x.Err, ErrDoubleEndorse) {
			fail("log %q entry %d: %v", x.Member, x.Index, x.Err)
		}
	}
	if n > 0 {
		r.Warnings = append(r.Warnings, fmt.Sprintf("%d entries break a rule and were ignored by replay (see rejections)", n))
	}
	r.Signals, r.Listings = st.Counts()
	d := st.Digest()
	r.Digest = fmt.Sprintf("%x", d[:])
	for _, m := range members {
		r.Logs = append(r.Logs, *audits[m])
	}
	r.OK = len(r.Failures) == 0
	return r
}

// auditLog verifies one log and returns its verified prefix.
func auditLog(g *Genesis, keys Keyring, m string, in AuditInput, opt AuditOptions, la *LogAudit, r *AuditReport) [][]byte {
	fail := func(format string, a ...any) {
		msg := fmt.Sprintf(format, a...)
		la.Problems = append(la.Problems, msg)
		r.Failures = append(r.Failures, fmt.Sprintf("log %q: %s", m, msg))
	}
	entries := in.Logs[m]
	// The tree over everything given, with tlog's stored hashes for proofs and prefix roots.
	tree := NewTree()
	var stored []Hash
	for _, e := range entries {
		stored = tree.AppendStored(LeafHash(e), stored)
	}
	reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			if x < 0 || x >= int64(len(stored)) {
				return nil, fmt.Errorf("stored hash %d out of range", x)
			}
			out[i] = stored[x]
		}
		return out, nil
	})
	var cps []*Checkpoint
	raw := map[*Checkpoint][]byte{}
	for i, note := range in.Checkpoints[m] {
		cp, err := OpenCheckpoint(g.ID, keys, note)
		if err != nil {
			fail("checkpoint %d: %v", i, err)
			continue
		}
		if cp.Member != m {
			fail("checkpoint %d is of %q's log", i, cp.Member)
			continue
		}
		cps = append(cps, cp)
		raw[cp] = note
	}
	if len(entries) > 0 && len(cps) == 0 {
		fail("%d entries and no valid checkpoint: nothing of this log can be verified", len(entries))
		return nil
	}
	// Pairs of checkpoints must be consistent with each other.
	slices.SortFunc(cps, func(a, b *Checkpoint) int { return int(a.Size) - int(b.Size) })
	for i := 0; i+1 < len(cps); i++ {
		a, b := cps[i], cps[i+1]
		if a.Size == b.Size && a.Root != b.Root {
			ev, _ := SameSizeEvidence(a, b)
			r.Equivocations = append(r.Equivocations, ev.String())
			fail("equivocation: %s", ev.String())
		}
	}
	// Verify the entries against the largest checkpoint they reach.
	var best *Checkpoint
	for _, cp := range cps {
		if cp.Size <= uint64(len(entries)) {
			root, err := TreeHash(reader, cp.Size)
			if err != nil {
				fail("tree at size %d: %v", cp.Size, err)
				continue
			}
			if root != cp.Root {
				fail("entries [0, %d) do not match the checkpoint of size %d%s", cp.Size, cp.Size, alteredEntry(m, entries, in.Leaves[m], cp))
				continue
			}
			best = cp
		} else {
			fail("checkpoint of size %d is beyond the %d entries given", cp.Size, len(entries))
		}
	}
	if best == nil {
		return nil
	}
	// Every other checkpoint must be a prefix of the verified one.
	for _, cp := range cps {
		if cp.Size > best.Size || cp.Same(best) {
			continue
		}
		root, _ := TreeHash(reader, cp.Size)
		if root != cp.Root {
			proof, _ := ProveConsistency(reader, cp.Size, best.Size)
			if ev, err := ForkEvidence(cp, best, root, proof); err == nil {
				r.Equivocations = append(r.Equivocations, ev.String())
				fail("equivocation: %s", ev.String())
			}
		}
	}
	la.Checkpoint, la.Verified = best.Size, best.Size
	la.note = raw[best] // as given: signatures by members not known yet were dropped from best.Note
	if tail := uint64(len(entries)) - best.Size; tail > 0 {
		r.Warnings = append(r.Warnings, fmt.Sprintf("log %q: %d entries after the last checkpoint are not signed yet and were left out", m, tail))
	}
	return entries[:best.Size]
}

// alteredEntry names the first entry whose hash differs from the recorded leaf hashes, when those
// are given and themselves match the checkpoint.
func alteredEntry(m string, entries [][]byte, leaves []Hash, cp *Checkpoint) string {
	if uint64(len(leaves)) < cp.Size {
		return ""
	}
	t := NewTree()
	for _, h := range leaves[:cp.Size] {
		t.Append(h)
	}
	if t.Root() != cp.Root {
		return " (the recorded leaf hashes do not match it either)"
	}
	for i := uint64(0); i < cp.Size; i++ {
		if LeafHash(entries[i]) != leaves[i] {
			return fmt.Sprintf(": entry %d of %s was altered (its hash differs from the signed tree's leaf %d)", i, m, i)
		}
	}
	return ""
}

// String renders the report for people.
func (r *AuditReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "consortium %s (%s)\n", r.Consortium, r.Name)
	fmt.Fprintf(&b, "founders: %s\n", strings.Join(r.Founders, ", "))
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
		}
		fmt.Fprintf(&b, "log %-12s %8d entries, checkpoint %d, %d cosignatures (%s): %s\n", l.Member, l.Entries, l.Checkpoint, len(l.Cosigners), strings.Join(l.Cosigners, ","), status)
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
