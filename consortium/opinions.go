package consortium

// ForEachOpinion calls fn with every current opinion of a member on the roster, in no particular
// order, until fn returns false.
func (s *State) ForEachOpinion(fn func(sig Signal, o OpinionRecord) bool) {
	for k, o := range s.opinions {
		if !s.onRoster[k.author] {
			continue
		}
		if !fn(k.sig, OpinionRecord{Author: s.memberIDs[k.author], Stance: o.stance, Index: o.index}) {
			return
		}
	}
}
