package consortium_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

var update = flag.Bool("update", false, "rewrite the golden vectors in testdata/vectors")

const vectorsDir = "../testdata/vectors"

func hx(h consortium.Hash) string { return hex.EncodeToString(h[:]) }

// goldenConsortium builds the small consortium of the golden vectors: three founders and an
// observer, adds of every signal type with labels, a revoke by signal and by index, opinions, a
// fourth member admitted by quorum who then adds, and every checkpoint cosigned by the others.
func goldenConsortium(t *testing.T) map[string][]byte {
	t.Helper()
	g := fixture.Genesis(2, fixture.Founder{ID: "alpha"}, fixture.Founder{ID: "bravo"}, fixture.Founder{ID: "charlie"}, fixture.Founder{ID: "oscar", Observer: true})
	files := map[string][]byte{"genesis.bin": g.Marshal()}
	logs := map[string]*fixture.Log{}
	for _, m := range []string{"alpha", "bravo", "charlie", "oscar", "delta"} {
		logs[m] = fixture.NewLog(g.ID, fixture.Key(m))
		files["keys/"+m+".pub"] = []byte(fixture.Key(m).Public().String() + "\n")
		files["keys/"+m+".key"] = []byte(fixture.Key(m).String() + "\n")
	}
	ms := int64(0)
	at := func() int64 { ms += 60_000; return fixture.At(ms) }
	sig := func(typ, v string) consortium.Signal {
		s, err := consortium.ParseSignal(typ, v)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	pdq1 := sig("pdq", pdqHex)
	pdq2 := sig("pdq", "30a10efd71c83f429013d48d0ffffc52e34e0e17ada952a9d29685211ea9e5af")
	md5 := sig("md5", "d41d8cd98f00b204e9800998ecf8427e")
	sha := sig("sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
	url := sig("url", "https://example.com/propaganda/video-1")

	add := fixture.Add(at(), pdq1, "behaviour:glorification-of-terrorist-acts", "entity:unsc-2024-05/QDe.115")
	add.GetAdd().ContentId = "case-1"
	q := uint32(100)
	add.GetAdd().Quality = &q
	logs["alpha"].Append(add)
	a2 := fixture.Add(at(), md5, "content:branded-publication")
	a2.GetAdd().ContentId = "case-1"
	logs["alpha"].Append(a2)
	logs["bravo"].Append(fixture.Add(at(), pdq1, "behaviour:glorification-of-terrorist-acts"))
	exp := fixture.Add(at(), url, "incident:example-2026")
	exp.GetAdd().ExpiresUnixMs = fixture.At(ms + 86_400_000)
	logs["bravo"].Append(exp)
	logs["charlie"].Append(fixture.Add(at(), sha, "behaviour:recruitment-instruction"))
	logs["charlie"].Append(fixture.Opinion(at(), pdq1, pb.Stance_STANCE_AGREE))
	logs["oscar"].Append(fixture.Opinion(at(), md5, pb.Stance_STANCE_DISAGREE_WITH_LABELS))
	logs["alpha"].Append(fixture.Add(at(), pdq2, "behaviour:threat-incitement"))
	logs["alpha"].Append(fixture.RevokeIndex(at(), 2))
	logs["bravo"].Append(fixture.RevokeSignal(at(), url))
	// Admission of delta: alpha proposes, charlie endorses; 2 of 3 voters.
	i := logs["alpha"].Append(fixture.Admit(at(), "alpha", 0, "delta"))
	logs["charlie"].Append(fixture.Endorse(at(), 0, logs["alpha"].Entries[i]))
	logs["delta"].Append(fixture.Add(at(), pdq2, "behaviour:threat-incitement", "lang:ar"))

	members := []string{"alpha", "bravo", "charlie", "delta", "oscar"}
	memLogs := consortium.Logs{}
	for _, m := range members {
		var b strings.Builder
		for _, e := range logs[m].Entries {
			b.WriteString(base64.StdEncoding.EncodeToString(e) + "\n")
		}
		files["logs/"+m+".b64"] = []byte(b.String())
		memLogs[m] = logs[m].Entries
	}
	s, err := consortium.Replay(g, memLogs, consortium.ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Checkpoints, cosigned by every other member of the final roster at a fixed time.
	cosignAt := time.Unix(fixture.At(ms)/1000+60, 0)
	for _, m := range members {
		cp, err := consortium.OpenCheckpoint(g.ID, s, logs[m].Checkpoint())
		if err != nil {
			t.Fatal(err)
		}
		for _, other := range members {
			if other != m {
				if cp, err = consortium.Cosign(g.ID, s, cp, fixture.Key(other), cosignAt); err != nil {
					t.Fatal(err)
				}
			}
		}
		files["checkpoints/"+m+".txt"] = cp.Note
	}
	var roots strings.Builder
	for _, m := range members {
		tr := consortium.NewTree()
		for j, e := range logs[m].Entries {
			tr.AppendEntry(e)
			fmt.Fprintf(&roots, "%s %d %s %s\n", m, j+1, hx(consortium.LeafHash(e)), hx(tr.Root()))
		}
	}
	files["roots.txt"] = []byte("# member size leaf-hash-of-entry-(size-1) root-at-size\n" + roots.String())
	sigs, listings := s.Counts()
	files["state.txt"] = fmt.Appendf(nil, "consortium %s\nepoch %d\nsignals %d\nlistings %d\ndigest %s\n",
		g.ID, s.Roster().Epoch, sigs, listings, hx(s.Digest()))
	// An equivocation: alpha signs a second, different tree of its current size.
	other := fixture.NewLog(g.ID, fixture.Key("alpha"))
	for _, e := range logs["alpha"].Entries[:len(logs["alpha"].Entries)-1] {
		other.AppendRaw(e)
	}
	other.Append(fixture.Add(at(), pdq2))
	a, _ := consortium.OpenCheckpoint(g.ID, s, logs["alpha"].Checkpoint())
	b, _ := consortium.OpenCheckpoint(g.ID, s, other.Checkpoint())
	ev, err := consortium.SameSizeEvidence(a, b)
	if err != nil {
		t.Fatal(err)
	}
	files["equivocation.bin"] = ev.Marshal()
	// The same equivocation, resolved: the two trees agree on all but the last entry.
	agreement, err := consortium.AgreementOf(a, b, storedHashes(t, logs["alpha"].Entries), storedHashes(t, other.Entries))
	if err != nil {
		t.Fatal(err)
	}
	resolved, err := ev.Resolve(agreement)
	if err != nil {
		t.Fatal(err)
	}
	files["equivocation-resolved.bin"] = resolved.Marshal()
	return files
}

func TestGoldenVectors(t *testing.T) {
	files := goldenConsortium(t)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		path := filepath.Join(vectorsDir, n)
		if *update {
			os.MkdirAll(filepath.Dir(path), 0o755)
			if err := os.WriteFile(path, files[n], 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test ./consortium -run Golden -update)", err)
		}
		if !bytes.Equal(got, files[n]) {
			t.Errorf("%s differs from what this code produces (a protocol change? run with -update and review the diff)", n)
		}
	}
}

// TestVerifyGoldenVectorsFromFiles does what an independent verifier does, from the files alone:
// parse the genesis, verify every log against its signed checkpoint, check each cosignature,
// replay, and compare the state digest.
func TestVerifyGoldenVectorsFromFiles(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(vectorsDir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	g, err := consortium.ParseGenesis(read("genesis.bin"))
	if err != nil {
		t.Fatal(err)
	}
	logs := consortium.Logs{}
	paths, _ := filepath.Glob(filepath.Join(vectorsDir, "logs", "*.b64"))
	for _, p := range paths {
		m := strings.TrimSuffix(filepath.Base(p), ".b64")
		for _, line := range strings.Fields(string(read("logs/" + m + ".b64"))) {
			e, err := base64.StdEncoding.DecodeString(line)
			if err != nil {
				t.Fatal(err)
			}
			logs[m] = append(logs[m], e)
		}
	}
	s, err := consortium.Replay(g, logs, consortium.ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for m, entries := range logs {
		cp, err := consortium.OpenCheckpoint(g.ID, s, read("checkpoints/"+m+".txt"))
		if err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		if _, _, err := consortium.VerifyRange(consortium.NewTree(), entries, cp); err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		if len(cp.Cosigners) != 4 {
			t.Errorf("%s: %d cosignatures verified, want 4", m, len(cp.Cosigners))
		}
	}
	if rs, n := s.Rejections(); n != 0 {
		t.Errorf("golden logs have rejected entries: %v", rs)
	}
	var digest string
	for _, line := range strings.Split(string(read("state.txt")), "\n") {
		if d, ok := strings.CutPrefix(line, "digest "); ok {
			digest = d
		}
	}
	if got := hx(s.Digest()); got != digest {
		t.Errorf("digest: got %s, want %s", got, digest)
	}
	if _, err := consortium.ParseEvidence(g.ID, s, read("equivocation.bin")); err != nil {
		t.Errorf("equivocation evidence: %v", err)
	}
	ev, err := consortium.ParseEvidence(g.ID, s, read("equivocation-resolved.bin"))
	if err != nil {
		t.Errorf("resolved equivocation evidence: %v", err)
	} else if n, ok := ev.AgreedSize(); !ok || n != ev.A.Size-1 {
		t.Errorf("resolved equivocation evidence: agreed size %d (resolved %v), want %d", n, ok, ev.A.Size-1)
	}
}

func TestAuditGoldenVectors(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(vectorsDir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	in := consortium.AuditInput{Genesis: read("genesis.bin"), Logs: consortium.Logs{}, Checkpoints: map[string][][]byte{}}
	for _, m := range []string{"alpha", "bravo", "charlie", "delta", "oscar"} {
		for _, line := range strings.Fields(string(read("logs/" + m + ".b64"))) {
			e, _ := base64.StdEncoding.DecodeString(line)
			in.Logs[m] = append(in.Logs[m], e)
		}
		in.Checkpoints[m] = [][]byte{read("checkpoints/" + m + ".txt")}
	}
	r := consortium.Audit(in, consortium.AuditOptions{RequireCosignatures: 4})
	if !r.OK {
		t.Fatalf("audit of the golden vectors failed:\n%s", r)
	}
	if !strings.Contains(string(read("state.txt")), "digest "+r.Digest) || len(r.Roster) != 2 {
		t.Errorf("audit digest %s, roster %+v", r.Digest, r.Roster)
	}
	in.Evidence = [][]byte{read("equivocation.bin")}
	if r := consortium.Audit(in, consortium.AuditOptions{}); r.OK || len(r.Equivocations) != 1 {
		t.Errorf("evidence not reported: %+v", r.Equivocations)
	}
}
