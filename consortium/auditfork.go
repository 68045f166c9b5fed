package consortium

import (
	"fmt"
	"maps"
	"slices"
)

// auditCutoffs is the audit's equivocation rule (PROTOCOL.md sections 5 and 7), kept apart from
// the rest of the audit: given the verified evidence of a bundle, it returns the number of entries
// of each forking member's log that the replay applies (for [ReplayOptions.Sizes]), and what to
// report. A member with resolved evidence is cut at the smallest agreed size, one with only
// unresolved evidence at 0 ([Cutoffs]); both are warnings, as every node holding the same
// evidence computes the same state. An unresolved one says the cutoff rises once resolved
// evidence is known.
func auditCutoffs(evidence []*Evidence) (sizes map[string]uint64, warnings []string) {
	sizes = Cutoffs(evidence)
	unresolved := map[string]bool{}
	for _, m := range Unresolved(evidence) {
		unresolved[m] = true
	}
	for _, m := range slices.Sorted(maps.Keys(sizes)) {
		if unresolved[m] {
			warnings = append(warnings, fmt.Sprintf("log %q: its author equivocated and the evidence is not resolved (it does not prove where the two histories part): the replay applies none of its entries; resolved evidence, once known, applies its first agreed-size entries", m))
			continue
		}
		warnings = append(warnings, fmt.Sprintf("log %q: its author equivocated; the replay applies its first %d entries (the smallest agreed size of the evidence)", m, sizes[m]))
	}
	return sizes, warnings
}

// auditThirdForks returns a failure for every log of the bundle that reaches its member's cutoff
// but whose first cutoff entries are not the tree both histories of the evidence share (the
// agreed root): the member signed a third history that parts from the other two earlier. Cutting
// that log at the cutoff would give a state no node computes (nodes that hold it prove the
// earlier fork and cut lower, PROTOCOL.md section 5.2); the audit cannot, as it needs the other
// histories' roots, so it fails and says what to collect. logs are the verified logs, sizes the
// cutoffs of [auditCutoffs]; members[i] is the log failures[i] is about (rule equivocation).
func auditThirdForks(sizes map[string]uint64, evidence []*Evidence, logs Logs) (members, failures []string) {
	for _, m := range slices.Sorted(maps.Keys(sizes)) {
		f := sizes[m]
		if uint64(len(logs[m])) < f {
			continue
		}
		var agreed *Agreement
		for _, ev := range evidence {
			if n, ok := ev.AgreedSize(); ok && ev.Member == m && n == f {
				agreed = ev.Agreement
				break
			}
		}
		t := NewTree()
		for _, e := range logs[m][:f] {
			t.AppendEntry(e)
		}
		if agreed != nil && t.Root() != agreed.Root {
			members = append(members, m)
			failures = append(failures, fmt.Sprintf("log %q: its first %d entries are not those both histories of the equivocation evidence share: %q signed a third history that parts from them earlier, so the cutoff %d does not apply to it; collect the evidence between this log's checkpoint and the others (from a node that holds this log) to compute the state", m, f, m, f))
		}
	}
	return members, failures
}
