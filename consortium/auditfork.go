package consortium

import (
	"fmt"
	"maps"
	"slices"
)

// auditCutoffs is the audit's equivocation rule (PROTOCOL.md sections 5 and 7), kept apart from
// the rest of the audit: given the verified evidence of a bundle, it returns the number of entries
// of each forking member's log that the replay applies (for [ReplayOptions.Sizes]), and what to
// report. A member with resolved evidence is cut at the smallest agreed size and reported as a
// warning: every node computes the same state. A member with only unresolved evidence is a
// failure: nodes froze its log wherever they stood, so no state can be checked for it.
func auditCutoffs(evidence []*Evidence) (sizes map[string]uint64, failures, warnings []string) {
	sizes = Cutoffs(evidence)
	for _, m := range Unresolved(evidence) {
		failures = append(failures, fmt.Sprintf("equivocation by %q is not resolved: the evidence does not prove where its two histories part, so nodes may hold different states", m))
	}
	for _, m := range slices.Sorted(maps.Keys(sizes)) {
		warnings = append(warnings, fmt.Sprintf("log %q: its author equivocated; the replay applies its first %d entries (the smallest agreed size of the evidence)", m, sizes[m]))
	}
	return sizes, failures, warnings
}
