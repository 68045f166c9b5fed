package consortium_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
)

// admittedWorld is a consortium of founders alpha, bravo and charlie (quorum 2) that admits delta;
// every log's checkpoint is cosigned by every other member of the final roster, delta included.
func admittedWorld(t *testing.T) consortium.AuditInput {
	t.Helper()
	g := fixture.Genesis(2, fixture.Members("alpha", "bravo", "charlie")...)
	logs := map[string]*fixture.Log{}
	members := []string{"alpha", "bravo", "charlie", "delta"}
	for _, m := range members {
		logs[m] = fixture.NewLog(g.ID, fixture.Key(m))
	}
	i := logs["alpha"].Append(fixture.Admit(fixture.At(1000), "alpha", 0, "delta"))
	logs["bravo"].Append(fixture.Endorse(fixture.At(2000), 0, logs["alpha"].Entries[i]))
	logs["charlie"].Append(fixture.Add(fixture.At(3000), fixture.PDQ(1)))
	logs["delta"].Append(fixture.Add(fixture.At(4000), fixture.PDQ(2)))
	in := consortium.AuditInput{Genesis: g.Marshal(), Logs: consortium.Logs{}, Checkpoints: map[string][][]byte{}}
	for _, m := range members {
		in.Logs[m] = logs[m].Entries
	}
	s, err := consortium.Replay(g, in.Logs, consortium.ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range members {
		cp, err := consortium.OpenCheckpoint(g.ID, s, logs[m].Checkpoint())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range members {
			if o != m {
				if cp, err = consortium.Cosign(g.ID, s, cp, fixture.Key(o), fixture.Epoch); err != nil {
					t.Fatal(err)
				}
			}
		}
		in.Checkpoints[m] = [][]byte{cp.Note}
	}
	return in
}

// corruptSignature flips one byte of the Ed25519 signature of the note's signature line by name
// (after the 4-byte key hash and, for a cosignature, the 8-byte timestamp).
func corruptSignature(t *testing.T, msg []byte, name string) []byte {
	t.Helper()
	lines := strings.Split(string(msg), "\n")
	for i, l := range lines {
		rest, ok := strings.CutPrefix(l, "— "+name+" ")
		if !ok {
			continue
		}
		sig, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			t.Fatal(err)
		}
		sig[len(sig)-1] ^= 1
		lines[i] = "— " + name + " " + base64.StdEncoding.EncodeToString(sig)
		return []byte(strings.Join(lines, "\n"))
	}
	t.Fatalf("no signature line by %s in\n%s", name, msg)
	return nil
}

// selfCosign adds to a checkpoint note a C2SP tlog-cosignature/v1 made by hand (section 4.3 of
// PROTOCOL.md) with signer's key under signer's cosigner name.
func selfCosign(t *testing.T, cid consortium.ID, msg []byte, signer string) []byte {
	t.Helper()
	text, sigs, ok := strings.Cut(string(msg), "\n\n")
	if !ok {
		t.Fatal("not a note")
	}
	text += "\n"
	name := consortium.CosignerName(cid, signer)
	key := fixture.Key(signer)
	h := sha256.Sum256(append(append([]byte(name+"\n"), 0x04), key.Public().Key...))
	ts := uint64(fixture.Epoch.Unix())
	sig := binary.BigEndian.AppendUint32(nil, binary.BigEndian.Uint32(h[:4]))
	sig = binary.BigEndian.AppendUint64(sig, ts)
	sig = append(sig, key.Sign([]byte("cosignature/v1\ntime "+strconv.FormatUint(ts, 10)+"\n"+text))...)
	return []byte(text + "\n" + sigs + "— " + name + " " + base64.StdEncoding.EncodeToString(sig) + "\n")
}

// TestAuditBadCosignatureOfAdmittedMember: a corrupted cosignature by a member admitted after
// genesis must fail the audit, not silently drop every cosignature of the checkpoint (issue 11,
// bug 1).
func TestAuditBadCosignatureOfAdmittedMember(t *testing.T) {
	in := admittedWorld(t)
	if r := consortium.Audit(in, consortium.AuditOptions{RequireCosignatures: 3}); !r.OK {
		t.Fatalf("the untouched world fails:\n%s", r)
	}
	g, _ := consortium.ParseGenesis(in.Genesis)
	in.Checkpoints["bravo"][0] = corruptSignature(t, in.Checkpoints["bravo"][0], consortium.CosignerName(g.ID, "delta"))
	r := consortium.Audit(in, consortium.AuditOptions{RequireCosignatures: 3})
	if r.OK {
		t.Fatalf("audit passed with a corrupted cosignature:\n%s", r)
	}
	if got := r.FailureText(); !strings.Contains(got, `log "bravo"`) || !strings.Contains(got, "delta") {
		t.Errorf("failures do not name bravo's log and delta's cosignature:\n%s", got)
	}
}

// TestAuditSelfCosignatureNotCounted: a log's author cosigning its own checkpoint does not count
// toward --require-cosignatures (issue 11, bug 2).
func TestAuditSelfCosignatureNotCounted(t *testing.T) {
	in := admittedWorld(t)
	g, _ := consortium.ParseGenesis(in.Genesis)
	// bravo's checkpoint with only charlie's cosignature, then bravo's own.
	l := fixture.NewLog(g.ID, fixture.Key("bravo"))
	for _, e := range in.Logs["bravo"] {
		l.AppendRaw(e)
	}
	cp, err := consortium.OpenCheckpoint(g.ID, g, l.Checkpoint())
	if err != nil {
		t.Fatal(err)
	}
	if cp, err = consortium.Cosign(g.ID, g, cp, fixture.Key("charlie"), fixture.Epoch); err != nil {
		t.Fatal(err)
	}
	in.Checkpoints["bravo"] = [][]byte{selfCosign(t, g.ID, cp.Note, "bravo")}
	r := consortium.Audit(in, consortium.AuditOptions{RequireCosignatures: 2})
	if r.OK {
		t.Fatalf("the author's own cosignature was counted:\n%s", r)
	}
	if got := r.FailureText(); !strings.Contains(got, `log "bravo": checkpoint of size 1 has 1 cosignatures, 2 required`) {
		t.Errorf("failures: got\n%s\nwant bravo's checkpoint with 1 of 2 cosignatures", got)
	}
	c, err := consortium.OpenCheckpoint(g.ID, g, in.Checkpoints["bravo"][0])
	if err != nil {
		t.Fatal(err)
	}
	if c.HasCosigner("bravo") {
		t.Errorf("OpenCheckpoint kept bravo's cosignature of its own log: %+v", c.Cosigners)
	}
}

// TestAuditSmallerForkedCheckpoint: a smaller checkpoint of another tree fails as root (its entries
// do not give it) and as equivocation (the author signed both), as section 12.1 says.
func TestAuditSmallerForkedCheckpoint(t *testing.T) {
	in := auditWorld(t)
	g, _ := consortium.ParseGenesis(in.Genesis)
	other := fixture.NewLog(g.ID, fixture.Key("alpha"))
	for _, e := range in.Logs["alpha"][:9] {
		other.AppendRaw(e)
	}
	other.Append(fixture.Add(fixture.At(9000), fixture.PDQ(999)))
	in.Checkpoints["alpha"] = append(in.Checkpoints["alpha"], other.Checkpoint())
	r := consortium.Audit(in, consortium.AuditOptions{})
	var got []string
	for _, f := range r.Failures {
		got = append(got, f.Rule+" "+f.Log)
	}
	if want := []string{"root alpha", "equivocation alpha"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("failures: got %q, want %q\n%s", got, want, r)
	}
	if r.Logs[0].Verified != 21 {
		t.Errorf("alpha verified: got %d, want 21 (the larger checkpoint)", r.Logs[0].Verified)
	}
}

// TestAuditOmitEachLog: removing any one log from the golden bundle fails its audit; the log is
// named as omitted, or (for alpha's proposal and charlie's endorsement that admitted delta, whose
// key is then unknown) the heads notes naming delta's log are refused with a hint.
func TestAuditOmitEachLog(t *testing.T) {
	for _, m := range []string{"alpha", "bravo", "charlie", "delta", "oscar"} {
		t.Run(m, func(t *testing.T) {
			in, err := consortium.ReadBundle(os.DirFS(vectorsDir))
			if err != nil {
				t.Fatal(err)
			}
			delete(in.Logs, m)
			delete(in.Leaves, m)
			delete(in.Checkpoints, m)
			r := consortium.Audit(in, consortium.AuditOptions{RequireHeads: 1})
			want := "omitted " + m
			admitter := m == "alpha" || m == "charlie"
			if admitter {
				want = "heads "
			}
			var got []string
			for _, f := range r.Failures {
				got = append(got, f.Rule+" "+f.Log)
			}
			if r.OK || !slices.Contains(got, want) {
				t.Errorf("failures: got %q, want one %q\n%s", got, want, r)
			}
			if admitter && !strings.Contains(r.FailureText(), "may be missing from the bundle") {
				t.Errorf("no hint that a log is missing:\n%s", r.FailureText())
			}
		})
	}
}
