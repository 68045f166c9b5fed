package consortium

import (
	"bytes"
	"cmp"
	"slices"

	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// Diff returns the changes that turn state old into state cur, in the form [State.OnChange]
// reports them, for listeners that followed old when the state is rebuilt rather than changed
// entry by entry (an equivocation cutoff, PROTOCOL.md section 5.2):
//
//   - Unlisted for every listing of old that cur does not have (Index is the add that was in
//     force in old);
//   - Listed for every listing of cur that old does not have or had from another add or expiry;
//   - OpinionChanged for every opinion of a roster member that differs: the stance of cur, or
//     STANCE_WITHDRAWN (with the index of the opinion old had) when cur has none;
//   - RosterChanged, last, when the current roster differs.
//
// They come in that order, each kind sorted by signal (type, then value bytes) and member. SignalID
// and Listers are those of cur (a signal cur has no id for gets 0 listers and SignalID 0).
func Diff(old, cur *State) []Change {
	type key struct {
		sig    Signal
		member string
	}
	listings := func(s *State) map[key]Listing {
		out := map[key]Listing{}
		s.ForEachListed(func(id uint32, sig Signal) bool {
			for _, l := range s.ListedByID(id) {
				out[key{sig, l.Member}] = l
			}
			return true
		})
		return out
	}
	opinions := func(s *State) map[key]opinion {
		out := map[key]opinion{}
		for k, o := range s.opinions {
			if s.onRoster[k.author] {
				out[key{k.sig, s.memberIDs[k.author]}] = o
			}
		}
		return out
	}
	base := func(sig Signal, member string, index uint64) Change {
		c := Change{Signal: sig, Member: member, Index: index}
		if id, ok := cur.SignalID(sig); ok {
			c.SignalID = id
			c.Listers = len(cur.ListedByID(id))
		}
		return c
	}
	var unlisted, listed, changed []Change
	diffMaps(listings(old), listings(cur), func(k key, l Listing) {
		c := base(k.sig, k.member, l.Index)
		c.Kind = Unlisted
		unlisted = append(unlisted, c)
	}, func(k key, l Listing) {
		c := base(k.sig, k.member, l.Index)
		c.Kind, c.Expires = Listed, l.Expires
		listed = append(listed, c)
	})
	diffMaps(opinions(old), opinions(cur), func(k key, o opinion) {
		c := base(k.sig, k.member, o.index)
		c.Kind, c.Stance = OpinionChanged, pb.Stance_STANCE_WITHDRAWN
		changed = append(changed, c)
	}, func(k key, o opinion) {
		c := base(k.sig, k.member, o.index)
		c.Kind, c.Stance = OpinionChanged, o.stance
		changed = append(changed, c)
	})
	byKey := func(a, b Change) int {
		return cmp.Or(
			cmp.Compare(a.Signal.Type.String(), b.Signal.Type.String()),
			bytes.Compare(a.Signal.Bytes(), b.Signal.Bytes()),
			cmp.Compare(a.Member, b.Member),
		)
	}
	var out []Change
	for _, cs := range [][]Change{unlisted, listed, changed} {
		slices.SortFunc(cs, byKey)
		out = append(out, cs...)
	}
	if r, o := cur.Roster(), old.Roster(); r.Epoch != o.Epoch || r.Quorum != o.Quorum || !slices.EqualFunc(r.Members, o.Members, func(a, b Member) bool {
		return a.ID == b.ID && a.Role == b.Role && a.Key.Equal(b.Key)
	}) {
		out = append(out, Change{Kind: RosterChanged, Roster: r})
	}
	return out
}

// diffMaps calls gone for each key of old that cur lacks, and set for each key of cur that old
// lacks or holds with another value.
func diffMaps[K, V comparable](old, cur map[K]V, gone, set func(K, V)) {
	for k, v := range old {
		if _, ok := cur[k]; !ok {
			gone(k, v)
		}
	}
	for k, v := range cur {
		if o, ok := old[k]; !ok || o != v {
			set(k, v)
		}
	}
}
