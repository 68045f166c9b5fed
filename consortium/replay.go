package consortium

import (
	"fmt"
	"slices"
	"time"
)

// Logs holds member logs in memory: member id to the entries of its log, in order.
type Logs map[string][][]byte

// Reader returns an [EntryReader] over the logs.
func (l Logs) Reader() EntryReader {
	return func(member string, index uint64) ([]byte, error) {
		log := l[member]
		if index >= uint64(len(log)) {
			return nil, fmt.Errorf("%w: %q has no entry %d", errNotFound, member, index)
		}
		return log[index], nil
	}
}

// ReplayOptions selects a point in time for [Replay].
type ReplayOptions struct {
	// Sizes, when not nil, replays only the first Sizes[m] entries of member m's log (a set of
	// checkpoints); logs not named are replayed in full.
	Sizes map[string]uint64
	// Until, when not zero, replays each log only up to its first entry written after Until.
	Until time.Time
}

// Replay computes the state of a consortium from its logs. Logs are applied member by member in id
// order; the result is the same for any interleaving.
func Replay(g *Genesis, logs Logs, opt ReplayOptions) (*State, error) {
	s := NewState(g, logs.Reader())
	members := make([]string, 0, len(logs))
	for m := range logs {
		members = append(members, m)
	}
	slices.Sort(members)
	total := 0
	for _, m := range members {
		total += len(logs[m])
	}
	s.Grow(total)
	for _, m := range members {
		n := PrefixSize(logs[m], opt)
		if sz, ok := opt.Sizes[m]; ok && sz < n {
			n = sz
		}
		for i, e := range logs[m][:n] {
			if err := s.Apply(m, uint64(i), e); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

// PrefixSize returns how many entries of log a replay with opt includes: with Until set, the entries
// before the first decodable entry written after Until; otherwise all of them.
func PrefixSize(log [][]byte, opt ReplayOptions) uint64 {
	if opt.Until.IsZero() {
		return uint64(len(log))
	}
	t := opt.Until.UnixMilli()
	for i, raw := range log {
		if e, err := ParseEntry(raw); err == nil && e.TimeUnixMs > t {
			return uint64(i)
		}
	}
	return uint64(len(log))
}
