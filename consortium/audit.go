package consortium

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// AuditInput is what an auditor holds (an audit bundle, see [ReadBundle]): the genesis file and,
// for each member log, its entries, the checkpoints collected for it (from one or several sources),
// and optionally the leaf hashes a node recorded (which let the audit name the exact entry that was
// altered); the heads notes of members; and equivocation proofs collected from nodes.
type AuditInput struct {
	Genesis     []byte
	Logs        Logs
	Leaves      map[string][]Hash
	Checkpoints map[string][][]byte
	// Heads holds the latest heads note (section 4.5 of PROTOCOL.md) of each member that has one,
	// by signer.
	Heads    map[string][]byte
	Evidence [][]byte
}

// AuditOptions tunes an audit.
type AuditOptions struct {
	// Until, when not zero, computes the state at that time (section 7.2 of PROTOCOL.md).
	Until time.Time
	// RequireCosignatures fails a log whose verified checkpoint carries fewer cosignatures by
	// members of the final roster other than the author; for a log verified by the agreed root of
	// resolved evidence, the cosignatures counted are those on the evidence's checkpoints.
	RequireCosignatures int
	// RequireHeads fails the audit unless valid heads notes of at least this many distinct members
	// of the final roster are given. Every valid heads note is enforced whatever this is.
	RequireHeads int
	// RequireAnswers fails the audit when a member a referral addresses answered after the
	// deadline, or has not answered and the deadline is past (at Until, or else at the latest
	// entry time of the logs). Without it these are warnings.
	RequireAnswers bool
}

// Audit rules: the name of each check an audit can fail, as reported in [Failure.Rule] (section
// 12.2 of PROTOCOL.md).
const (
	RuleGenesis      = "genesis"      // the genesis file is invalid
	RuleMember       = "member"       // a log of an id no roster change admits
	RuleCheckpoint   = "checkpoint"   // a checkpoint (or a cosignature on it by a known key) does not verify
	RuleUnsigned     = "unsigned"     // a log with entries and no valid checkpoint
	RuleRoot         = "root"         // a log's entries do not give its checkpoint's root
	RuleTruncated    = "truncated"    // a checkpoint is larger than the entries given
	RuleEquivocation = "equivocation" // two incompatible checkpoints of one log
	RuleEvidence     = "evidence"     // equivocation evidence that does not verify
	RuleCosignatures = "cosignatures" // fewer cosignatures than required
	RuleDoubleVote   = "double-vote"  // a member voted twice in one epoch
	RuleHeads        = "heads"        // a heads note does not verify
	RuleHeadsCount   = "heads-count"  // fewer heads notes than required
	RuleOmitted      = "omitted"      // a log a heads note or resolved evidence names is not in the bundle
	RuleRolledBack   = "rolled-back"  // a log is shorter than a heads note says it was, or than its cutoff
	RuleHeadsRoot    = "heads-root"   // a head's root, signed by the log's author, differs from the log's tree
	RuleReplay       = "replay"       // the replay itself failed
	RuleDeadline     = "deadline"     // a referral answered late or not at all (with RequireAnswers)
	RuleAgreed       = "agreed"       // a log verified by the agreed root of resolved evidence does not give it, or goes beyond it
)

// auditor carries one audit's report and its failure helpers.
type auditor struct {
	r      *AuditReport
	audits map[string]*LogAudit
}

// fail records a failure of rule; log and index are optional (log "" and index nil when the
// failure concerns no log or no entry).
func (a *auditor) fail(rule, log string, index *uint64, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if la := a.audits[log]; la != nil {
		la.Problems = append(la.Problems, msg)
	}
	if log != "" {
		msg = fmt.Sprintf("log %q: %s", log, msg)
	}
	a.r.Failures = append(a.r.Failures, Failure{Rule: rule, Log: log, Index: index, Message: msg})
}

func at(i uint64) *uint64 { return &i }

// Audit verifies a consortium's logs end to end, with nothing but this package, in the order of
// section 12.1 of PROTOCOL.md: the genesis and its signatures; every log, in rounds (a member
// admitted by a roster change becomes verifiable once the logs that admitted it are): each
// checkpoint's signature, every log's entries against its largest valid checkpoint (naming the
// first altered entry when leaf hashes are given), every pair of checkpoints of one log for
// consistency; then the cosignatures with the final roster's keys; the heads notes, so that no log
// is omitted or rolled back; any equivocation evidence; and the replay (optionally up to a time),
// reporting the state digest and every entry replay had to ignore.
func Audit(in AuditInput, opt AuditOptions) *AuditReport {
	r := &AuditReport{}
	a := &auditor{r: r, audits: map[string]*LogAudit{}}
	g, err := ParseGenesis(in.Genesis)
	if err != nil {
		a.fail(RuleGenesis, "", nil, "genesis: %v", err)
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
	for _, m := range members {
		a.audits[m] = &LogAudit{Member: m, Entries: uint64(len(in.Logs[m]))}
	}
	r.Rules = append(r.Rules,
		"genesis: one valid signature by every founder and no other (section 2)",
		"checkpoints: the author's signature, canonical form; every cosignature by a known key verifies (4.2, 4.3)",
		"logs: entries match the largest checkpoint they reach; checkpoints of one log are consistent; keys of admitted members are learnt in rounds (4.1, 5, 12.1)")
	// Logs verify in rounds: a member admitted by the roster becomes verifiable once the logs that
	// admitted it are.
	verified := Logs{}
	done := map[string]bool{}
	for progress := true; progress; {
		progress = false
		keys, err := Replay(g, verified, ReplayOptions{})
		if err != nil {
			a.fail(RuleReplay, "", nil, "replay: %v", err)
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
			verified[m] = a.auditLog(g, keys, m, in)
		}
	}
	for _, m := range members {
		if !done[m] {
			a.fail(RuleMember, m, nil, "not a member of the consortium (no roster change admits it)")
		}
	}
	keys, err := Replay(g, verified, ReplayOptions{})
	if err != nil {
		a.fail(RuleReplay, "", nil, "replay: %v", err)
		return r
	}
	final := keys.Roster()
	// The evidence is parsed with the final keys: its checkpoints' cosignatures count for a log
	// verified by its agreed root (step 3), and it is verified before the heads notes: a note of a
	// forked log beyond its cutoff shows the other history, which the evidence already proves, and
	// is a warning (step 4).
	parsed := make([]*Evidence, len(in.Evidence))
	parseErrs := make([]error, len(in.Evidence))
	var evidence []*Evidence
	for i, raw := range in.Evidence {
		if parsed[i], parseErrs[i] = ParseEvidence(g.ID, keys, raw); parseErrs[i] == nil {
			evidence = append(evidence, parsed[i])
		}
	}
	// Cosignatures count once every member's key is known (a member admitted later may have
	// cosigned founders' checkpoints).
	if k := opt.RequireCosignatures; k > 0 {
		r.Rules = append(r.Rules, fmt.Sprintf("cosignatures: at least %d on each log's verified checkpoint, by members of the final roster (any role) other than the author; for a log verified by the agreed root of equivocation evidence, on the evidence's checkpoints (4.3, 12.1)", k))
	}
	for _, m := range members {
		la := a.audits[m]
		if la.Agreed > 0 {
			a.agreedCosigners(la, final, evidence, opt.RequireCosignatures)
			continue
		}
		if la.note == nil {
			continue
		}
		cp, err := OpenCheckpoint(g.ID, keys, la.note)
		if err != nil {
			// Only a cosignature by a member whose key the first pass did not know yet can fail
			// here: the author's signature verified then.
			a.fail(RuleCheckpoint, m, nil, "checkpoint of size %d: %v", la.Checkpoint, err)
			continue
		}
		for _, c := range cp.Cosigners {
			if _, ok := final.Member(c.Member); ok {
				la.Cosigners = append(la.Cosigners, c.Member)
			} else {
				la.UncountedCosigners = append(la.UncountedCosigners, c.Member)
			}
		}
		if k := opt.RequireCosignatures; k > 0 && len(la.Cosigners) < k {
			a.fail(RuleCosignatures, m, nil, "checkpoint of size %d has %d cosignatures, %d required", cp.Size, len(la.Cosigners), k)
		}
	}
	a.auditHeads(g, keys, final, in, opt, Cutoffs(evidence))
	r.Rules = append(r.Rules, "evidence: every equivocation proof given verifies; resolved evidence cuts its member's log at the smallest agreed size, unresolved evidence alone at 0; either is a warning (5.2)")
	for i, ev := range parsed {
		if parseErrs[i] != nil {
			a.fail(RuleEvidence, "", nil, "evidence %d does not verify: %v", i, parseErrs[i])
			continue
		}
		r.Equivocations = append(r.Equivocations, ev.String())
	}
	// Equivocation cutoffs (auditfork.go): the replay applies a forking member's log up to them.
	cutoffs, warnings := auditCutoffs(evidence)
	tm, tf := auditThirdForks(cutoffs, evidence, verified)
	for i, m := range tm {
		a.fail(RuleEquivocation, m, nil, "%s", tf[i])
	}
	r.Warnings = append(r.Warnings, warnings...)
	a.auditEvidenceLogs(cutoffs, evidence)
	// The state, at the chosen time.
	r.Rules = append(r.Rules, "replay: sections 6 and 7 over the verified prefixes, each forking member's log up to its cutoff; a double vote fails the audit, other rejections are warnings (12.2)")
	st, err := Replay(g, verified, ReplayOptions{Until: opt.Until, Sizes: cutoffs})
	if err != nil {
		a.fail(RuleReplay, "", nil, "replay: %v", err)
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
			a.fail(RuleDoubleVote, x.Member, at(x.Index), "entry %d: %v", x.Index, x.Err)
		}
	}
	if n > 0 {
		r.Warnings = append(r.Warnings, fmt.Sprintf("%d entries break a rule and were ignored by replay (see rejections)", n))
	}
	if opt.Until.IsZero() {
		r.Signals, r.Listings = st.Counts()
	} else {
		r.Rules = append(r.Rules, fmt.Sprintf("state at %s: entries written after it left out; listings expired by then not counted (7.2)", opt.Until.UTC().Format(time.RFC3339Nano)))
		r.Signals, r.Listings = countAt(st, opt.Until)
	}
	a.auditReferrals(st, opt)
	d := st.Digest()
	r.Digest = fmt.Sprintf("%x", d[:])
	for _, m := range members {
		r.Logs = append(r.Logs, *a.audits[m])
	}
	r.OK = len(r.Failures) == 0
	return r
}

// countAt counts the signals listed at t and their listings, leaving out listings whose expiry is
// not after t.
func countAt(st *State, t time.Time) (signals, listings int) {
	ms := t.UnixMilli()
	for id := range st.NumSignalIDs() {
		n := 0
		for _, l := range st.ListedByID(uint32(id)) {
			if l.Expires == 0 || l.Expires > ms {
				n++
			}
		}
		if n > 0 {
			signals++
			listings += n
		}
	}
	return signals, listings
}

// auditHeads verifies the heads notes and checks that every log they name is in the bundle, at
// least as long as they say, with the root they say (section 4.5).
//
// cutoffs are those of the valid evidence (section 5.2): a member that signed two histories may
// have heads notes of either in a bundle of honest nodes. Above its cutoff F nothing of its log has
// any effect, so a note beyond F with another root, or naming more entries than the bundle
// verifies when it verifies at least F, is a warning; at or below F it still fails (a third
// history, or entries that count withheld).
func (a *auditor) auditHeads(g *Genesis, keys Keyring, final *Roster, in AuditInput, opt AuditOptions, cutoffs map[string]uint64) {
	r := a.r
	if k := opt.RequireHeads; k > 0 {
		r.Rules = append(r.Rules, fmt.Sprintf("heads notes: valid ones from at least %d members of the final roster (4.5)", k))
	}
	r.Rules = append(r.Rules, "heads notes: every log a valid heads note names is present, verified up to the size it names, with the root it names (4.5)")
	type claim struct {
		signer string
		at     time.Time
		head   LogHead
	}
	claims := map[string][]claim{}
	counted := 0
	for _, signer := range sortedKeys(in.Heads) {
		h, err := OpenHeads(g.ID, keys, in.Heads[signer])
		if err != nil {
			hint := ""
			if errors.Is(err, ErrUnknownMember) {
				hint = " (a log with the roster change that admitted it may be missing from the bundle)"
			}
			a.fail(RuleHeads, "", nil, "heads note of %s: %v%s", signer, err, hint)
			continue
		}
		if h.Signer != signer {
			a.fail(RuleHeads, "", nil, "heads note filed as %s's is signed by %s", signer, h.Signer)
			continue
		}
		_, onRoster := final.Member(signer)
		if onRoster {
			counted++
		}
		r.Heads = append(r.Heads, HeadsAudit{Signer: signer, Time: h.Time, Logs: len(h.Heads), Counted: onRoster})
		for _, hd := range h.Heads {
			claims[hd.Member] = append(claims[hd.Member], claim{signer, h.Time, hd})
		}
	}
	if k := opt.RequireHeads; counted < k {
		a.fail(RuleHeadsCount, "", nil, "heads notes of %d members of the final roster, %d required: nothing signed says which logs exist and how long they are", counted, k)
	}
	for _, m := range sortedKeys(claims) {
		cs := claims[m]
		slices.SortFunc(cs, func(x, y claim) int {
			if x.head.Size != y.head.Size {
				return int(x.head.Size) - int(y.head.Size)
			}
			return strings.Compare(x.signer, y.signer)
		})
		la := a.audits[m]
		if _, ok := keys.MemberKey(m); !ok {
			c := cs[0]
			a.fail(RuleHeads, "", nil, "heads note of %s names log %q, which no roster admits", c.signer, m)
			continue
		}
		cut, forked := cutoffs[m]
		if la == nil || la.Entries == 0 {
			c := cs[len(cs)-1]
			if forked && cut == 0 {
				r.Warnings = append(r.Warnings, fmt.Sprintf("log %q: not in the bundle although %s signed a checkpoint of size %d (in %s's heads note of %s); its author equivocated and none of its entries has effect (cutoff 0)", m, m, c.head.Size, c.signer, c.at.Format(time.RFC3339Nano)))
				continue
			}
			a.fail(RuleOmitted, m, nil, "omitted: the bundle does not hold this log, of which %s signed a checkpoint of size %d (in %s's heads note of %s)", m, c.head.Size, c.signer, c.at.Format(time.RFC3339Nano))
			continue
		}
		if c := cs[len(cs)-1]; la.Verified < c.head.Size {
			if !forked || la.Verified < cut {
				a.fail(RuleRolledBack, m, at(la.Verified), "rolled back: the bundle has %d verified entries; %s signed a checkpoint of size %d (in %s's heads note of %s)", la.Verified, m, c.head.Size, c.signer, c.at.Format(time.RFC3339Nano))
				continue
			}
			r.Warnings = append(r.Warnings, fmt.Sprintf("log %q: %s signed a checkpoint of size %d (in %s's heads note of %s), beyond the %d entries the bundle verifies; its author equivocated and entries from its cutoff %d on have no effect", m, m, c.head.Size, c.signer, c.at.Format(time.RFC3339Nano), la.Verified, cut))
		}
		// One pass over the verified entries gives the root at every size claimed.
		tree := NewTree()
		entries := in.Logs[m]
		for _, c := range cs {
			if c.head.Size > la.Verified { // only past the cutoff of a forked log (warned above)
				break
			}
			for tree.Size() < c.head.Size {
				tree.AppendEntry(entries[tree.Size()])
			}
			if tree.Root() != c.head.Root && forked && c.head.Size > cut {
				r.Warnings = append(r.Warnings, fmt.Sprintf("log %q: %s signed root %s at size %d (in %s's heads note of %s), the other of the two histories the evidence proves, beyond the cutoff %d: no effect", m, m, shortHash(c.head.Root), c.head.Size, c.signer, c.at.Format(time.RFC3339Nano), cut))
				continue
			}
			if tree.Root() != c.head.Root {
				a.fail(RuleHeadsRoot, m, nil, "%s signed root %s at size %d (in %s's heads note of %s), but its tree in the bundle has root %s there: %s signed two histories", m, shortHash(c.head.Root), c.head.Size, c.signer, c.at.Format(time.RFC3339Nano), shortHash(tree.Root()), m)
			}
		}
	}
}

// auditLog verifies one log and returns its verified prefix.
func (a *auditor) auditLog(g *Genesis, keys Keyring, m string, in AuditInput) [][]byte {
	r, la := a.r, a.audits[m]
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
			a.fail(RuleCheckpoint, m, nil, "checkpoint %d: %v", i, err)
			continue
		}
		if cp.Member != m {
			a.fail(RuleCheckpoint, m, nil, "checkpoint %d is of %q's log", i, cp.Member)
			continue
		}
		cps = append(cps, cp)
		raw[cp] = note
	}
	agreed := agreedAnchor(g, keys, m, in.Evidence)
	if len(entries) > 0 && len(cps) == 0 && agreed == nil {
		a.fail(RuleUnsigned, m, nil, "%d entries and no valid checkpoint and no valid resolved equivocation evidence against %s: nothing of this log can be verified", len(entries), m)
		return nil
	}
	// Pairs of checkpoints must be consistent with each other.
	slices.SortFunc(cps, func(a, b *Checkpoint) int { return int(a.Size) - int(b.Size) })
	for i := 0; i+1 < len(cps); i++ {
		x, y := cps[i], cps[i+1]
		if x.Size == y.Size && x.Root != y.Root {
			ev, _ := SameSizeEvidence(x, y)
			r.Equivocations = append(r.Equivocations, ev.String())
			a.fail(RuleEquivocation, m, nil, "equivocation: %s", ev.String())
		}
	}
	// Verify the entries against the largest checkpoint they reach.
	var best *Checkpoint
	for _, cp := range cps {
		if cp.Size <= uint64(len(entries)) {
			root, err := TreeHash(reader, cp.Size)
			if err != nil {
				a.fail(RuleRoot, m, nil, "tree at size %d: %v", cp.Size, err)
				continue
			}
			if root != cp.Root {
				msg, idx := alteredEntry(m, entries, in.Leaves[m], cp)
				a.fail(RuleRoot, m, idx, "entries [0, %d) do not match the checkpoint of size %d%s", cp.Size, cp.Size, msg)
				continue
			}
			best = cp
		} else {
			a.fail(RuleTruncated, m, at(uint64(len(entries))), "checkpoint of size %d is beyond the %d entries given", cp.Size, len(entries))
		}
	}
	if best == nil {
		return a.auditAgreed(m, entries, reader, agreed, nil)
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
				a.fail(RuleEquivocation, m, nil, "equivocation: %s", ev.String())
			}
		}
	}
	la.Checkpoint, la.Verified = best.Size, best.Size
	la.note = raw[best] // as given: signatures by members not known yet were dropped from best.Note
	if agreed != nil && best.Size < agreed.Size {
		return a.auditAgreed(m, entries, reader, agreed, best)
	}
	if tail := uint64(len(entries)) - best.Size; tail > 0 {
		r.Warnings = append(r.Warnings, fmt.Sprintf("log %q: %d entries after the last checkpoint are not signed yet and were left out", m, tail))
	}
	return entries[:best.Size]
}

// auditEvidenceLogs fails a log that valid resolved evidence shows to hold entries every node
// applies but that the bundle does not verify (section 12.1, step 5): the evidence carries two
// checkpoints its member signed, both larger than its cutoff F, so the member's first F entries
// exist and count, as a heads note naming the log would show. A bundle without the log fails
// (omitted), one verifying fewer than F of its entries fails (rolled-back, at the verified size),
// unless that log already failed as omitted, rolled back or agreed.
func (a *auditor) auditEvidenceLogs(cutoffs map[string]uint64, evidence []*Evidence) {
	for _, m := range sortedKeys(cutoffs) {
		f := cutoffs[m]
		if f == 0 || a.failedLog(m, RuleOmitted, RuleRolledBack, RuleAgreed) {
			continue
		}
		var ev *Evidence
		for _, e := range evidence {
			if n, ok := e.AgreedSize(); ok && e.Member == m && n == f {
				ev = e
				break
			}
		}
		la := a.audits[m]
		if la == nil || la.Entries == 0 {
			a.fail(RuleOmitted, m, nil, "omitted: the bundle does not hold this log, whose first %d entries every node applies (the agreed size of the equivocation evidence against %s, of its checkpoints of sizes %d and %d)", f, m, ev.A.Size, ev.B.Size)
			continue
		}
		if la.Verified < f {
			a.fail(RuleRolledBack, m, at(la.Verified), "rolled back: the bundle has %d verified entries; every node applies the first %d (the agreed size of the equivocation evidence against %s, of its checkpoints of sizes %d and %d)", la.Verified, f, m, ev.A.Size, ev.B.Size)
		}
	}
}

// failedLog reports whether the audit already failed log m by one of rules.
func (a *auditor) failedLog(m string, rules ...string) bool {
	for _, f := range a.r.Failures {
		if f.Log == m && slices.Contains(rules, f.Rule) {
			return true
		}
	}
	return false
}

// agreedAnchor returns the agreement of the valid resolved evidence against m in evidence with
// the smallest agreed size (m's cutoff, [Cutoffs]), or nil when there is none or that size is 0.
// Evidence that does not verify is skipped here and reported by [Audit].
func agreedAnchor(g *Genesis, keys Keyring, m string, evidence [][]byte) *Agreement {
	var best *Agreement
	for _, raw := range evidence {
		ev, err := ParseEvidence(g.ID, keys, raw)
		if err != nil || ev.Member != m || !ev.Resolved() {
			continue
		}
		if best == nil || ev.Agreement.Size < best.Size {
			best = ev.Agreement
		}
	}
	if best == nil || best.Size == 0 {
		return nil
	}
	return best
}

// auditAgreed verifies the first g.Size entries of m's log by the agreed root of resolved evidence
// (section 12.1): resolved evidence proves, by consistency proofs to two checkpoints the member
// signed, that g.Root is the root of both its trees at g.Size, so entries that give that root are
// the member's signed log up to its cutoff, exactly what every node applies. best is the largest
// checkpoint the entries matched, smaller than g.Size, or nil. Only the agreed entries may be
// given beyond best: more, which no checkpoint covers, fail the audit, as do fewer (when no
// checkpoint verified any) and entries that do not give the agreed root.
func (a *auditor) auditAgreed(m string, entries [][]byte, reader tlog.HashReader, g *Agreement, best *Checkpoint) [][]byte {
	la := a.audits[m]
	if g == nil {
		return nil
	}
	n := uint64(len(entries))
	if n < g.Size {
		if best != nil { // the checkpoint verifies its entries; the cutoff is not reached
			if tail := n - best.Size; tail > 0 {
				a.r.Warnings = append(a.r.Warnings, fmt.Sprintf("log %q: %d entries after the last checkpoint are not signed yet and were left out", m, tail))
			}
			return entries[:best.Size]
		}
		a.fail(RuleAgreed, m, at(n), "%d entries, fewer than the %d agreed ones the equivocation evidence proves, and no checkpoint: nothing of this log can be verified", n, g.Size)
		return nil
	}
	root, err := TreeHash(reader, g.Size)
	if err != nil {
		a.fail(RuleAgreed, m, nil, "tree at the agreed size %d: %v", g.Size, err)
		return nil
	}
	if root != g.Root {
		a.fail(RuleAgreed, m, nil, "entries [0, %d) do not give the agreed root %s of the equivocation evidence (their root is %s): they are not the tree both of %s's signed histories share", g.Size, shortHash(g.Root), shortHash(root), m)
		if best != nil {
			return entries[:best.Size]
		}
		return nil
	}
	la.Verified, la.Agreed, la.agreedRoot = g.Size, g.Size, g.Root
	if n > g.Size {
		a.fail(RuleAgreed, m, at(g.Size), "entries [%d, %d) are beyond the agreed size %d and no checkpoint covers them: only the agreed entries verify by the equivocation evidence", g.Size, n, g.Size)
	}
	return entries[:g.Size]
}

// agreedCosigners counts the cosignatures for a log verified by the agreed root of resolved
// evidence (section 12.1, step 3): the bundle holds no checkpoint of its verified entries, so the
// cosignatures that count are those on the checkpoints of the evidence that fixes the agreed root
// (agreed size la.Agreed, root la.agreedRoot), each member of the final roster other than the
// author once over all of them. Each of those cosigners verified a tree whose first la.Agreed
// entries are the verified ones. Counting nothing here would let a bundle pass the requirement by
// dropping a log's checkpoint and keeping only its agreed entries.
func (a *auditor) agreedCosigners(la *LogAudit, final *Roster, evidence []*Evidence, k int) {
	counted, uncounted := map[string]bool{}, map[string]bool{}
	for _, ev := range evidence {
		if n, ok := ev.AgreedSize(); !ok || ev.Member != la.Member || n != la.Agreed || ev.Agreement.Root != la.agreedRoot {
			continue
		}
		for _, cp := range []*Checkpoint{ev.A, ev.B} {
			for _, c := range cp.Cosigners {
				if _, ok := final.Member(c.Member); ok {
					counted[c.Member] = true
				} else {
					uncounted[c.Member] = true
				}
			}
		}
	}
	la.Cosigners = slices.Sorted(maps.Keys(counted))
	for _, c := range slices.Sorted(maps.Keys(uncounted)) {
		if !counted[c] {
			la.UncountedCosigners = append(la.UncountedCosigners, c)
		}
	}
	if k > 0 && len(la.Cosigners) < k {
		a.fail(RuleCosignatures, la.Member, nil, "%d entries verified by the agreed root of the equivocation evidence (no checkpoint of them in the bundle); the evidence's checkpoints carry %d cosignatures, %d required", la.Agreed, len(la.Cosigners), k)
	}
}

// alteredEntry names the first entry whose hash differs from the recorded leaf hashes, when those
// are given and themselves match the checkpoint, and returns its index.
func alteredEntry(m string, entries [][]byte, leaves []Hash, cp *Checkpoint) (string, *uint64) {
	if uint64(len(leaves)) < cp.Size {
		return "", nil
	}
	t := NewTree()
	for _, h := range leaves[:cp.Size] {
		t.Append(h)
	}
	if t.Root() != cp.Root {
		return " (the recorded leaf hashes do not match it either)", nil
	}
	for i := uint64(0); i < cp.Size; i++ {
		if LeafHash(entries[i]) != leaves[i] {
			return fmt.Sprintf(": entry %d of %s was altered (its hash differs from the signed tree's leaf %d)", i, m, i), at(i)
		}
	}
	return "", nil
}
