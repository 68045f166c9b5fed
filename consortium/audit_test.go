package consortium_test

import (
	"strings"
	"testing"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
)

// auditWorld is a small consortium with cosigned checkpoints and recorded leaf hashes.
func auditWorld(t *testing.T) consortium.AuditInput {
	t.Helper()
	g := fixture.Genesis(2, fixture.Members("alpha", "bravo", "charlie")...)
	in := consortium.AuditInput{Genesis: g.Marshal(), Logs: consortium.Logs{}, Leaves: map[string][]consortium.Hash{}, Checkpoints: map[string][][]byte{}}
	for k, m := range []string{"alpha", "bravo"} {
		l := fixture.NewLog(g.ID, fixture.Key(m))
		for i := 0; i < 20; i++ {
			l.Append(fixture.Add(fixture.At(int64(i*1000)), fixture.PDQ(k*100+i)))
		}
		l.Append(fixture.RevokeSignal(fixture.At(30_000), fixture.PDQ(k*100)))
		cp, _ := consortium.OpenCheckpoint(g.ID, g, l.Checkpoint())
		cp, _ = consortium.Cosign(g.ID, g, cp, fixture.Key("charlie"), fixture.Epoch)
		in.Logs[m] = l.Entries
		in.Checkpoints[m] = [][]byte{cp.Note}
		for _, e := range l.Entries {
			in.Leaves[m] = append(in.Leaves[m], consortium.LeafHash(e))
		}
	}
	return in
}

func TestAuditOK(t *testing.T) {
	in := auditWorld(t)
	r := consortium.Audit(in, consortium.AuditOptions{RequireCosignatures: 1})
	if !r.OK {
		t.Fatalf("audit failed:\n%s", r)
	}
	if r.Signals != 38 || r.Listings != 38 || len(r.Logs) != 2 || r.Logs[0].Verified != 21 {
		t.Errorf("report: %+v", r)
	}
	if !strings.Contains(r.String(), "audit OK") {
		t.Errorf("text report: %s", r)
	}
	// At a time before the revokes: 40 listings.
	r = consortium.Audit(in, consortium.AuditOptions{Until: fixture.Epoch.Add(25 * time.Second)})
	if !r.OK || r.Listings != 40 {
		t.Errorf("point in time: got %d listings, ok %v", r.Listings, r.OK)
	}
}

func TestAuditFailures(t *testing.T) {
	tests := []struct {
		name string
		mod  func(in *consortium.AuditInput)
		opt  consortium.AuditOptions
		want string
	}{
		{"tampered entry, named by index", func(in *consortium.AuditInput) {
			in.Logs["bravo"][7] = fixture.Marshal(fixture.Add(fixture.At(7000), fixture.PDQ(999)))
		}, consortium.AuditOptions{}, `entry 7 of bravo was altered`},
		{"tampered entry without leaf hashes", func(in *consortium.AuditInput) {
			in.Leaves = nil
			in.Logs["bravo"][7] = fixture.Marshal(fixture.Add(fixture.At(7000), fixture.PDQ(999)))
		}, consortium.AuditOptions{}, `log "bravo": entries [0, 21) do not match the checkpoint of size 21`},
		{"missing checkpoint", func(in *consortium.AuditInput) { delete(in.Checkpoints, "alpha") }, consortium.AuditOptions{}, `log "alpha": 21 entries and no valid checkpoint`},
		{"too few cosignatures", func(in *consortium.AuditInput) {}, consortium.AuditOptions{RequireCosignatures: 2}, "1 cosignatures, 2 required"},
		{"forged checkpoint", func(in *consortium.AuditInput) {
			in.Checkpoints["alpha"][0] = []byte(strings.Replace(string(in.Checkpoints["alpha"][0]), "\n21\n", "\n20\n", 1))
		}, consortium.AuditOptions{}, "does not verify"},
		{"log of a stranger", func(in *consortium.AuditInput) { in.Logs["mallory"] = in.Logs["alpha"] }, consortium.AuditOptions{}, `log "mallory": not a member`},
		{"two checkpoints of one size", func(in *consortium.AuditInput) {
			g, _ := consortium.ParseGenesis(in.Genesis)
			other := fixture.NewLog(g.ID, fixture.Key("alpha"))
			for _, e := range in.Logs["alpha"][:20] {
				other.AppendRaw(e)
			}
			other.Append(fixture.Add(fixture.At(40_000), fixture.PDQ(555)))
			in.Checkpoints["alpha"] = append(in.Checkpoints["alpha"], other.Checkpoint())
		}, consortium.AuditOptions{}, "equivocation: alpha signed two roots for size 21"},
		{"bad genesis", func(in *consortium.AuditInput) { in.Genesis = []byte("junk") }, consortium.AuditOptions{}, "genesis:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := auditWorld(t)
			tc.mod(&in)
			r := consortium.Audit(in, tc.opt)
			if r.OK {
				t.Fatalf("audit passed:\n%s", r)
			}
			if !strings.Contains(r.FailureText(), tc.want) {
				t.Errorf("failures do not mention %q:\n%s", tc.want, r.FailureText())
			}
		})
	}
}
