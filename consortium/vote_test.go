package consortium_test

import (
	"errors"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
)

// permutations returns every ordering of ids.
func permutations(ids []string) [][]string {
	if len(ids) <= 1 {
		return [][]string{slices.Clone(ids)}
	}
	var out [][]string
	for i := range ids {
		rest := slices.Concat(ids[:i], ids[i+1:])
		for _, p := range permutations(rest) {
			out = append(out, append([]string{ids[i]}, p...))
		}
	}
	return out
}

// applyLogsInOrder applies whole logs one after the other, in the given order of members.
func applyLogsInOrder(t *testing.T, g *consortium.Genesis, logs consortium.Logs, order []string) *consortium.State {
	t.Helper()
	s := consortium.NewState(g, logs.Reader())
	for _, m := range order {
		for i, raw := range logs[m] {
			if err := s.Apply(m, uint64(i), raw); err != nil {
				t.Fatal(err)
			}
		}
	}
	return s
}

// TestCopiedProposalChangesNothing is the attack of issue 10: an observer or a member writes the
// bytes of another member's passed proposal into its own log. The copy must change nothing (not the
// roster, not the digest), in every order the logs are applied in, and on every restart.
func TestCopiedProposalChangesNothing(t *testing.T) {
	g := fixture.Genesis(2, fixture.Founder{ID: "alpha"}, fixture.Founder{ID: "bravo"}, fixture.Founder{ID: "charlie"}, fixture.Founder{ID: "oscar", Observer: true})
	base := consortium.Logs{}
	p := fixture.Marshal(fixture.Admit(fixture.At(1000), "alpha", 0, "delta"))
	base["alpha"] = [][]byte{p}
	base["bravo"] = [][]byte{fixture.Marshal(fixture.Endorse(fixture.At(2000), 0, p))}
	base["charlie"] = [][]byte{fixture.Marshal(fixture.Add(fixture.At(500), fixture.PDQ(1)))}
	base["oscar"] = [][]byte{fixture.Marshal(fixture.Add(fixture.At(500), fixture.PDQ(2)))}
	ref, err := consortium.Replay(g, base, consortium.ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r := ref.Roster(); r.Epoch != 1 || !r.CanAdd("delta") {
		t.Fatalf("without copies: got epoch %d %v, want delta admitted in epoch 1", r.Epoch, r.Members)
	}
	want := ref.Digest()
	copies := []struct {
		name    string
		copiers []string
	}{
		{"by an observer", []string{"oscar"}},
		{"by a member that did not vote", []string{"charlie"}},
		{"by a member that voted for it", []string{"bravo"}},
		{"by everyone", []string{"oscar", "charlie", "bravo"}},
	}
	for _, tc := range copies {
		t.Run(tc.name, func(t *testing.T) {
			logs := maps.Clone(base)
			for _, m := range tc.copiers {
				logs[m] = append(slices.Clone(logs[m]), p)
			}
			ids := slices.Sorted(maps.Keys(logs))
			for _, order := range permutations(ids) {
				s := applyLogsInOrder(t, g, logs, order)
				if got := s.Digest(); got != want {
					r := s.Roster()
					t.Fatalf("order %v: digest %x, want %x (roster epoch %d, delta admitted %v)", order, got[:6], want[:6], r.Epoch, r.CanAdd("delta"))
				}
				if r := s.Roster(); r.Proposer != "alpha" {
					t.Fatalf("order %v: proposer %q, want alpha", order, r.Proposer)
				}
			}
			// Random interleavings (each log in its own order), as a restarted node would replay.
			rnd := rand.New(rand.NewPCG(10, 1))
			for range 20 {
				if got := interleave(t, rnd, g, logs, fullSizes(logs)).Digest(); got != want {
					t.Fatalf("interleaving: digest %x, want %x", got[:6], want[:6])
				}
			}
		})
	}
}

// rejectedWith returns the error replay recorded for entry index of member's log, or nil.
func rejectedWith(s *consortium.State, member string, index uint64) error {
	rs, _ := s.Rejections()
	for _, r := range rs {
		if r.Member == member && r.Index == index {
			return r.Err
		}
	}
	return nil
}

// TestVoteRules checks which entries are a member's vote and which votes count (PROTOCOL.md
// section 6), each in every order the logs can be applied in.
func TestVoteRules(t *testing.T) {
	type rejection struct {
		member string
		index  uint64
		want   error
	}
	tests := []struct {
		name string
		// logs builds the logs; p is alpha's proposal to admit delta in epoch 0.
		logs     func(w *world, p []byte)
		admitted bool
		rejected []rejection
		invalid  string // a proposal that cannot win, with this in its reason
	}{
		{"a copy does not spend the copier's vote", func(w *world, p []byte) {
			w.logs["charlie"] = append(w.logs["charlie"], p) // charlie 0: the copy, rejected
			w.append("charlie", fixture.Endorse(w.tick(), 0, p))
		}, true, []rejection{{"charlie", 0, consortium.ErrWrongAuthor}}, ""},
		{"a copy is not a vote for the copy's hash either", func(w *world, p []byte) {
			w.logs["charlie"] = append(w.logs["charlie"], p)
		}, false, []rejection{{"charlie", 0, consortium.ErrWrongAuthor}}, ""},
		{"a duplicate in the author's log is a second vote", func(w *world, p []byte) {
			w.logs["alpha"] = append(w.logs["alpha"], p)
		}, false, []rejection{{"alpha", 1, consortium.ErrDoubleEndorse}}, ""},
		{"a proposal naming someone else in the author field", func(w *world, p []byte) {
			// bravo writes a proposal that says it is alpha's: rejected, bravo's vote is unspent.
			w.append("bravo", fixture.Admit(w.tick(), "alpha", 0, "echo"))
			w.append("bravo", fixture.Endorse(w.tick(), 0, p))
		}, true, []rejection{{"bravo", 0, consortium.ErrWrongAuthor}}, ""},
		{"an endorsement before its proposal counts", func(w *world, p []byte) {
			// Written first (in time and in apply order), naming the proposal's hash.
			w.logs["bravo"] = append([][]byte{fixture.Marshal(fixture.Endorse(fixture.At(1), 0, p))}, w.logs["bravo"]...)
		}, true, nil, ""},
		{"an endorsement naming a proposal of another epoch counts for nothing and spends that epoch's vote", func(w *world, p []byte) {
			w.append("bravo", fixture.Endorse(w.tick(), 1, p))
			w.append("bravo", fixture.Endorse(w.tick(), 1, p))
		}, false, []rejection{{"bravo", 1, consortium.ErrDoubleEndorse}}, ""},
		{"a copied endorsement is the copier's own vote", func(w *world, p []byte) {
			e := fixture.Marshal(fixture.Endorse(w.tick(), 0, p))
			w.logs["oscar"] = append(w.logs["oscar"], e) // an observer's vote: never counted
			w.logs["bravo"] = append(w.logs["bravo"], e)
		}, true, nil, ""},
		{"an observer's endorsement does not count", func(w *world, p []byte) {
			w.append("oscar", fixture.Endorse(w.tick(), 0, p))
		}, false, nil, ""},
		{"an observer's proposal cannot win", func(w *world, p []byte) {
			q := fixture.Marshal(fixture.Admit(w.tick(), "oscar", 0, "echo"))
			w.logs["oscar"] = append(w.logs["oscar"], q)
			w.append("bravo", fixture.Endorse(w.tick(), 0, q))
			w.append("charlie", fixture.Endorse(w.tick(), 0, q))
		}, false, nil, "oscar is not a voting member in epoch 0"},
		{"an outsider's proposal cannot win", func(w *world, p []byte) {
			q := fixture.Marshal(fixture.Admit(w.tick(), "mallory", 0, "echo"))
			w.logs["mallory"] = append(w.logs["mallory"], q)
			w.append("bravo", fixture.Endorse(w.tick(), 0, q))
			w.append("charlie", fixture.Endorse(w.tick(), 0, q))
		}, false, nil, "mallory is not a voting member in epoch 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, 2, fixture.Founder{ID: "alpha"}, fixture.Founder{ID: "bravo"}, fixture.Founder{ID: "charlie"}, fixture.Founder{ID: "oscar", Observer: true})
			_, p := w.append("alpha", fixture.Admit(w.tick(), "alpha", 0, "delta"))
			tc.logs(w, p)
			ids := slices.Sorted(maps.Keys(w.logs))
			var first consortium.Hash
			for i, order := range permutations(ids) {
				s := applyLogsInOrder(t, w.g, w.logs, order)
				if i == 0 {
					first = s.Digest()
				} else if s.Digest() != first {
					t.Fatalf("order %v: digest differs from order %v", order, ids)
				}
				if got := s.Roster().CanAdd("delta"); got != tc.admitted {
					t.Fatalf("order %v: delta admitted %v, want %v", order, got, tc.admitted)
				}
				for _, r := range tc.rejected {
					if err := rejectedWith(s, r.member, r.index); !errors.Is(err, r.want) {
						t.Fatalf("order %v: rejection of %s/%d: got %v, want %v", order, r.member, r.index, err, r.want)
					}
				}
				if tc.invalid != "" {
					found := false
					for _, why := range s.InvalidProposals() {
						found = found || strings.Contains(why, tc.invalid)
					}
					if !found {
						t.Fatalf("order %v: invalid proposals %v, want one %q", order, s.InvalidProposals(), tc.invalid)
					}
				}
			}
		})
	}
}

// TestRemovedMemberCannotPropose checks that a member removed in epoch 0 cannot make epoch 1's
// roster, whatever its old log or a copy of its proposals says.
func TestRemovedMemberCannotPropose(t *testing.T) {
	w := newWorld(t, 2, fixture.Members("alpha", "bravo", "charlie")...)
	_, p := w.append("alpha", fixture.Remove(w.tick(), "alpha", 0, "charlie"))
	w.append("bravo", fixture.Endorse(w.tick(), 0, p))
	// charlie, removed in epoch 0, proposes for epoch 1; alpha and bravo endorse it.
	_, q := w.append("charlie", fixture.Admit(w.tick(), "charlie", 1, "delta"))
	w.append("alpha", fixture.Endorse(w.tick(), 1, q))
	w.append("bravo", fixture.Endorse(w.tick(), 1, q))
	s := w.state()
	if r := s.Roster(); r.Epoch != 1 || r.CanAdd("delta") {
		t.Fatalf("got epoch %d (delta admitted %v), want epoch 1 without delta", r.Epoch, r.CanAdd("delta"))
	}
	if why := s.InvalidProposals()[consortium.LeafHash(q)]; !strings.Contains(why, "charlie is not a voting member in epoch 1") {
		t.Errorf("reason: got %q", why)
	}
}

// TestAuditNamesCopiedProposal checks what an auditor sees of a copied proposal: the copy listed as
// a rejection that names the author and the log, and the roster the proposal's real votes made.
func TestAuditNamesCopiedProposal(t *testing.T) {
	g := fixture.Genesis(2, fixture.Founder{ID: "alpha"}, fixture.Founder{ID: "bravo"}, fixture.Founder{ID: "oscar", Observer: true})
	in := consortium.AuditInput{Genesis: g.Marshal(), Logs: consortium.Logs{}, Leaves: map[string][]consortium.Hash{}, Checkpoints: map[string][][]byte{}}
	p := fixture.Marshal(fixture.Admit(fixture.At(1000), "alpha", 0, "delta"))
	entries := map[string][][]byte{
		"alpha": {p},
		"bravo": {fixture.Marshal(fixture.Endorse(fixture.At(2000), 0, p))},
		"oscar": {p},
	}
	for m, es := range entries {
		l := fixture.NewLog(g.ID, fixture.Key(m))
		for _, e := range es {
			l.AppendRaw(e)
			in.Leaves[m] = append(in.Leaves[m], consortium.LeafHash(e))
		}
		in.Logs[m] = l.Entries
		in.Checkpoints[m] = [][]byte{l.Checkpoint()}
	}
	r := consortium.Audit(in, consortium.AuditOptions{})
	if len(r.Roster) != 2 || r.Roster[1].Proposer != "alpha" || !slices.Contains(r.Roster[1].Members, "delta (member)") {
		t.Fatalf("audit roster: got %+v, want epoch 1 proposed by alpha with delta", r.Roster)
	}
	text := r.String()
	if want := `rejected: oscar entry 0: author is not the log's owner: the author field names "alpha", not the log owner "oscar" (a copy of a proposal by "alpha")`; !strings.Contains(text, want) {
		t.Errorf("audit report does not name the copy; want %q in\n%s", want, text)
	}
}
