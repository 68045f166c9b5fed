package consortium_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"flag"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"google.golang.org/protobuf/proto"
)

var update = flag.Bool("update", false, "rewrite the golden vectors in testdata/vectors")

const vectorsDir = "../testdata/vectors"

func hx(h consortium.Hash) string { return hex.EncodeToString(h[:]) }

// mapWriter is a [consortium.BundleWriter] into memory.
type mapWriter map[string][]byte

func (w mapWriter) WriteFile(name string, data []byte) error {
	w[name] = slices.Clone(data)
	return nil
}

// goldenWorld is the small consortium of the golden vectors, as logs that a case may extend before
// it is signed into a bundle.
type goldenWorld struct {
	g    *consortium.Genesis
	logs map[string]*fixture.Log
	ms   int64
	// extra are logs a case adds to the golden ones (participants it admits), in id order.
	extra []string
}

// members returns the ids of the world's logs, in id order.
func (w *goldenWorld) members() []string {
	return slices.Sorted(slices.Values(append(slices.Clone(goldenMembers), w.extra...)))
}

// join starts an empty log for a participant the case admits.
func (w *goldenWorld) join(id string) *fixture.Log {
	w.logs[id] = fixture.NewLog(w.g.ID, fixture.Key(id))
	w.extra = append(w.extra, id)
	return w.logs[id]
}

// goldenMembers are the golden logs, in id order.
var goldenMembers = []string{"alpha", "bravo", "charlie", "delta", "oscar"}

func (w *goldenWorld) at() int64 { w.ms += 60_000; return fixture.At(w.ms) }

func goldenSignal(t *testing.T, typ, v string) consortium.Signal {
	t.Helper()
	s, err := consortium.ParseSignal(typ, v)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newGoldenWorld builds the consortium of the golden vectors: three founders and an observer,
// adds of every signal type with labels, a revoke by signal and by index, opinions, a fourth
// member admitted by quorum who then adds.
func newGoldenWorld(t *testing.T) *goldenWorld {
	t.Helper()
	g := fixture.Genesis(2, fixture.Founder{ID: "alpha"}, fixture.Founder{ID: "bravo"}, fixture.Founder{ID: "charlie"}, fixture.Founder{ID: "oscar", Observer: true})
	w := &goldenWorld{g: g, logs: map[string]*fixture.Log{}}
	logs := w.logs
	for _, m := range goldenMembers {
		logs[m] = fixture.NewLog(g.ID, fixture.Key(m))
	}
	at := w.at
	sig := func(typ, v string) consortium.Signal { return goldenSignal(t, typ, v) }
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
	exp.GetAdd().ExpiresUnixMs = fixture.At(w.ms + 86_400_000)
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

	return w
}

// cosignAt is the fixed time of the golden cosignatures and heads notes.
func (w *goldenWorld) cosignAt() time.Time { return time.Unix(fixture.At(w.ms)/1000+60, 0) }

// bundle signs the world into an audit bundle: each log's checkpoint cosigned by cosigners(author)
// (every other member of the final roster when nil), and a heads note of every member of the
// final roster naming every non-empty log.
func (w *goldenWorld) bundle(t *testing.T, cosigners func(author string) []string) consortium.AuditInput {
	t.Helper()
	in := consortium.AuditInput{Genesis: w.g.Marshal(), Logs: consortium.Logs{}, Checkpoints: map[string][][]byte{}, Heads: map[string][]byte{}}
	for _, m := range w.members() {
		in.Logs[m] = w.logs[m].Entries
	}
	s, err := consortium.Replay(w.g, in.Logs, consortium.ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var heads []consortium.LogHead
	for _, m := range w.members() {
		cp, err := consortium.OpenCheckpoint(w.g.ID, s, w.logs[m].Checkpoint())
		if err != nil {
			t.Fatal(err)
		}
		var others []string
		if cosigners != nil {
			others = cosigners(m)
		} else {
			for _, o := range w.members() {
				if o != m {
					others = append(others, o)
				}
			}
		}
		for _, o := range others {
			if cp, err = consortium.Cosign(w.g.ID, s, cp, fixture.Key(o), w.cosignAt()); err != nil {
				t.Fatal(err)
			}
		}
		in.Checkpoints[m] = [][]byte{cp.Note}
		if cp.Size > 0 {
			h, err := consortium.HeadOf(cp)
			if err != nil {
				t.Fatal(err)
			}
			heads = append(heads, h)
		}
	}
	for _, m := range s.Roster().Members {
		if in.Heads[m.ID], err = consortium.SignHeads(w.g.ID, fixture.Key(m.ID), w.cosignAt(), heads); err != nil {
			t.Fatal(err)
		}
	}
	return in
}

// goldenConsortium returns the files of testdata/vectors: the bundle of the golden world, the keys,
// every root, the expected state, and one bundle per edge case under cases/.
func goldenConsortium(t *testing.T) map[string][]byte {
	t.Helper()
	w := newGoldenWorld(t)
	in := w.bundle(t, nil)
	files := mapWriter{}
	if err := consortium.WriteBundle(files, in); err != nil {
		t.Fatal(err)
	}
	for _, m := range goldenMembers {
		files["keys/"+m+".pub"] = []byte(fixture.Key(m).Public().String() + "\n")
		files["keys/"+m+".key"] = []byte(fixture.Key(m).String() + "\n")
	}
	s, err := consortium.Replay(w.g, in.Logs, consortium.ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var roots strings.Builder
	for _, m := range goldenMembers {
		tr := consortium.NewTree()
		for j, e := range w.logs[m].Entries {
			tr.AppendEntry(e)
			fmt.Fprintf(&roots, "%s %d %s %s\n", m, j+1, hx(consortium.LeafHash(e)), hx(tr.Root()))
		}
	}
	files["roots.txt"] = []byte("# member size leaf-hash-of-entry-(size-1) root-at-size\n" + roots.String())
	sigs, listings := s.Counts()
	files["state.txt"] = fmt.Appendf(nil, "consortium %s\nepoch %d\nsignals %d\nlistings %d\ndigest %s\n",
		w.g.ID, s.Roster().Epoch, sigs, listings, hx(s.Digest()))
	for _, c := range goldenCases() {
		cin, args := c.build(t)
		cf := mapWriter{}
		if err := consortium.WriteBundle(cf, cin); err != nil {
			t.Fatal(err)
		}
		opt, err := caseOptions(args)
		if err != nil {
			t.Fatalf("case %s: %v", c.name, err)
		}
		r := consortium.Audit(cin, opt)
		if err := c.check(r); err != nil {
			t.Errorf("case %s does not show its rule: %v\n%s", c.name, err, r)
		}
		cf["expected.txt"] = []byte(expectedText(c, args, r))
		for n, b := range cf {
			files["cases/"+c.name+"/"+n] = b
		}
	}
	return files
}

// TestGoldenVectors checks that testdata/vectors holds exactly the files this code produces
// (-update rewrites the directory).
func TestGoldenVectors(t *testing.T) {
	files := goldenConsortium(t)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	if *update {
		if err := os.RemoveAll(vectorsDir); err != nil {
			t.Fatal(err)
		}
	} else {
		err := fs.WalkDir(os.DirFS(vectorsDir), ".", func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && files[p] == nil {
				t.Errorf("%s is not a golden vector this code produces (run with -update)", p)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
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
	if _, err := consortium.ParseEvidence(g.ID, s, read("cases/equivocation/evidence/0.bin")); err != nil {
		t.Errorf("equivocation evidence: %v", err)
	}
	ev, err := consortium.ParseEvidence(g.ID, s, read("cases/equivocation-resolved/evidence/0.bin"))
	if err != nil {
		t.Errorf("resolved equivocation evidence: %v", err)
	} else if n, ok := ev.AgreedSize(); !ok || n != ev.A.Size-1 {
		t.Errorf("resolved equivocation evidence: agreed size %d (resolved %v), want %d", n, ok, ev.A.Size-1)
	}
}

// TestAuditGoldenVectors audits the golden bundle as hashfed audit --bundle does: it passes, with
// every cosignature and heads note, and gives state.txt's digest.
func TestAuditGoldenVectors(t *testing.T) {
	in, err := consortium.ReadBundle(os.DirFS(vectorsDir))
	if err != nil {
		t.Fatal(err)
	}
	r := consortium.Audit(in, consortium.AuditOptions{RequireCosignatures: 4, RequireHeads: 5})
	if !r.OK {
		t.Fatalf("audit of the golden vectors failed:\n%s", r)
	}
	state, err := os.ReadFile(filepath.Join(vectorsDir, "state.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(state), "digest "+r.Digest) || len(r.Roster) != 2 {
		t.Errorf("audit digest %s, roster %+v; state.txt:\n%s", r.Digest, r.Roster, state)
	}
}

// goldenCase is one edge rule of the protocol shown as a bundle: build returns the bundle and the
// arguments of hashfed audit; check says whether the report shows the rule (so that -update cannot
// bless a wrong verdict).
type goldenCase struct {
	name  string
	about string
	build func(t *testing.T) (consortium.AuditInput, string)
	check func(r *consortium.AuditReport) error
}

// failsWith checks that the audit failed with exactly these rules, each on the log given.
func failsWith(want ...string) func(r *consortium.AuditReport) error {
	return func(r *consortium.AuditReport) error {
		var got []string
		for _, f := range r.Failures {
			got = append(got, f.Rule+" "+f.Log)
		}
		if r.OK || !slices.Equal(got, want) {
			return fmt.Errorf("failures: got %q, want %q", got, want)
		}
		return nil
	}
}

// passes checks that the audit passed and that more holds of its report.
func passes(more func(r *consortium.AuditReport) error) func(r *consortium.AuditReport) error {
	return func(r *consortium.AuditReport) error {
		if !r.OK {
			return fmt.Errorf("audit failed")
		}
		if more != nil {
			return more(r)
		}
		return nil
	}
}

// rejected checks that replay rejected exactly these entries ("member index").
func rejected(want ...string) func(r *consortium.AuditReport) error {
	return func(r *consortium.AuditReport) error {
		var got []string
		for _, x := range r.Rejections {
			got = append(got, fmt.Sprintf("%s %d", x.Member, x.Index))
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("rejections: got %q, want %q", got, want)
		}
		return nil
	}
}

// resolveFork forks alpha's log (forkAlpha), adds resolved evidence of it to in and returns the
// checkpoint of the other history and the agreement (its agreed size is alpha's size - 1).
func (w *goldenWorld) resolveFork(t *testing.T, in *consortium.AuditInput) (other *consortium.Checkpoint, agreement *consortium.Agreement) {
	t.Helper()
	a, b, log := w.forkAlpha(t, *in)
	ev, err := consortium.SameSizeEvidence(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if agreement, err = consortium.AgreementOf(a, b, fixture.StoredHashes(t, w.logs["alpha"].Entries), fixture.StoredHashes(t, log.Entries)); err != nil {
		t.Fatal(err)
	}
	resolved, err := ev.Resolve(agreement)
	if err != nil {
		t.Fatal(err)
	}
	in.Evidence = [][]byte{resolved.Marshal()}
	return b, agreement
}

// agreedOnly turns in into the bundle of a node that joined after alpha forked: resolved
// evidence of the fork, alpha's first extra+agreed-size entries without a checkpoint, and heads
// notes that do not name alpha's log (the node holds no signed head of it).
func (w *goldenWorld) agreedOnly(t *testing.T, in consortium.AuditInput, extra int) consortium.AuditInput {
	t.Helper()
	_, agreement := w.resolveFork(t, &in)
	in.Logs["alpha"] = in.Logs["alpha"][:agreement.Size+uint64(extra)]
	delete(in.Checkpoints, "alpha")
	// Members admitted only by alpha's entries beyond the cutoff are not members at that node.
	s, err := consortium.Replay(w.g, consortium.Logs{"alpha": in.Logs["alpha"][:agreement.Size]}, consortium.ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for m := range in.Logs {
		if _, ok := s.MemberKey(m); !ok {
			delete(in.Logs, m)
			delete(in.Checkpoints, m)
		}
	}
	if s, err = consortium.Replay(w.g, in.Logs, consortium.ReplayOptions{Sizes: map[string]uint64{"alpha": agreement.Size}}); err != nil {
		t.Fatal(err)
	}
	var heads []consortium.LogHead
	for _, m := range sortedMembers(in.Checkpoints) {
		cp, err := consortium.OpenCheckpoint(w.g.ID, s, in.Checkpoints[m][0])
		if err != nil {
			t.Fatal(err)
		}
		if h, err := consortium.HeadOf(cp); err == nil {
			heads = append(heads, h)
		}
	}
	in.Heads = map[string][]byte{}
	for _, m := range s.Roster().Members {
		if in.Heads[m.ID], err = consortium.SignHeads(w.g.ID, fixture.Key(m.ID), w.cosignAt(), heads); err != nil {
			t.Fatal(err)
		}
	}
	return in
}

func sortedMembers(cps map[string][][]byte) []string {
	return slices.Sorted(maps.Keys(cps))
}

// forkAlpha signs a second tree of alpha's log, the same but for its last entry, and returns the
// checkpoints of both trees and the second log.
func (w *goldenWorld) forkAlpha(t *testing.T, in consortium.AuditInput) (a, b *consortium.Checkpoint, other *fixture.Log) {
	other = fixture.NewLog(w.g.ID, fixture.Key("alpha"))
	for _, e := range w.logs["alpha"].Entries[:len(w.logs["alpha"].Entries)-1] {
		other.AppendRaw(e)
	}
	other.Append(fixture.Add(w.at(), goldenSignal(t, "pdq", "30a10efd71c83f429013d48d0ffffc52e34e0e17ada952a9d29685211ea9e5af")))
	s, _ := consortium.Replay(w.g, in.Logs, consortium.ReplayOptions{})
	a, _ = consortium.OpenCheckpoint(w.g.ID, s, w.logs["alpha"].Checkpoint())
	b, _ = consortium.OpenCheckpoint(w.g.ID, s, other.Checkpoint())
	return a, b, other
}

func goldenCases() []goldenCase {
	base := func(t *testing.T) *goldenWorld { return newGoldenWorld(t) }
	extraSig := func(t *testing.T, n int) consortium.Signal { return fixture.PDQ(n) }
	return append(videoGoldenCases(), []goldenCase{
		{name: "equivocation", about: "unresolved evidence that alpha signed two trees of one size is a warning: the replay applies none of alpha's log (section 5.2)",
			build: func(t *testing.T) (consortium.AuditInput, string) {
				w := base(t)
				in := w.bundle(t, nil)
				a, b, _ := w.forkAlpha(t, in)
				ev, err := consortium.SameSizeEvidence(a, b)
				if err != nil {
					t.Fatal(err)
				}
				in.Evidence = [][]byte{ev.Marshal()}
				return in, ""
			}, check: passes(func(r *consortium.AuditReport) error {
				if len(r.Equivocations) != 1 || !slices.ContainsFunc(r.Warnings, func(w string) bool { return strings.Contains(w, "not resolved") }) {
					return fmt.Errorf("equivocations %q, warnings %q: want the unresolved evidence reported as a warning", r.Equivocations, r.Warnings)
				}
				return nil
			})},
		{name: "equivocation-resolved", about: "resolved evidence (the two trees of alpha agree on all but the last entry) is a warning: the replay applies alpha's log up to the agreed size (sections 5 and 7)",
			build: func(t *testing.T) (consortium.AuditInput, string) {
				w := base(t)
				in := w.bundle(t, nil)
				w.resolveFork(t, &in)
				return in, ""
			}, check: passes(func(r *consortium.AuditReport) error {
				if len(r.Equivocations) != 1 || !slices.ContainsFunc(r.Warnings, func(w string) bool { return strings.Contains(w, "equivocated") }) {
					return fmt.Errorf("equivocations %q, warnings %q: want the resolved evidence reported as a warning", r.Equivocations, r.Warnings)
				}
				return nil
			})},
		{name: "agreed-entries", about: "a node that joined after alpha forked holds alpha's agreed entries and no checkpoint of them (nor delta's log: alpha admitted delta after the fork point): the resolved evidence's agreed root verifies them, and the replay applies them (sections 11 and 12.1, step 2e)",
			build: func(t *testing.T) (consortium.AuditInput, string) {
				w := base(t)
				return w.agreedOnly(t, w.bundle(t, nil), 0), "--require-heads 1"
			}, check: passes(func(r *consortium.AuditReport) error {
				for _, la := range r.Logs {
					if la.Member == "alpha" && (la.Agreed == 0 || la.Verified != la.Agreed || la.Entries != la.Agreed) {
						return fmt.Errorf("alpha: %d entries, %d verified, agreed %d: want all verified by the agreed root", la.Entries, la.Verified, la.Agreed)
					}
				}
				return nil
			})},
		{name: "agreed-entries-beyond", about: "a log verified only by the agreed root of resolved evidence with an entry beyond the agreed size, which no checkpoint covers, fails (section 12.1, step 2e)",
			build: func(t *testing.T) (consortium.AuditInput, string) {
				w := base(t)
				return w.agreedOnly(t, w.bundle(t, nil), 1), "--require-heads 1"
			}, check: failsWith("agreed alpha")},
		{name: "agreed-entries-cosignatures", about: "with --require-cosignatures, a log verified only by the agreed root of resolved evidence counts the cosignatures on the evidence's two checkpoints, here none: it fails, so dropping a log's checkpoint does not avoid the requirement (section 12.1, step 3)",
			build: func(t *testing.T) (consortium.AuditInput, string) {
				w := base(t)
				return w.agreedOnly(t, w.bundle(t, nil), 0), "--require-heads 1 --require-cosignatures 1"
			}, check: failsWith("cosignatures alpha")},
		{name: "evidence-omitted-log", about: "a bundle with resolved evidence against alpha (cutoff > 0) but without alpha's log fails, although no heads note names it: the evidence's checkpoints show entries every node applies (section 12.1, step 5)",
			build: func(t *testing.T) (consortium.AuditInput, string) {
				w := base(t)
				in := w.agreedOnly(t, w.bundle(t, nil), 0)
				delete(in.Logs, "alpha")
				return in, "--require-heads 1"
			}, check: failsWith("omitted alpha")},
		{name: "third-history", about: "a bundle holding a third history of alpha, parting from the two of the resolved evidence before their agreed size, fails: cutting it at the evidence's cutoff would give a state no node computes (section 5.2)",
			build: func(t *testing.T) (consortium.AuditInput, string) {
				w := base(t)
				real := w.logs["alpha"]
				in := w.bundle(t, nil)
				other := fixture.NewLog(w.g.ID, fixture.Key("alpha"))
				for _, e := range real.Entries[:len(real.Entries)-1] {
					other.AppendRaw(e)
				}
				other.Append(fixture.Add(w.at(), fixture.PDQ(79)))
				s, _ := consortium.Replay(w.g, in.Logs, consortium.ReplayOptions{})
				a, _ := consortium.OpenCheckpoint(w.g.ID, s, real.Checkpoint())
				b, _ := consortium.OpenCheckpoint(w.g.ID, s, other.Checkpoint())
				ev, err := consortium.SameSizeEvidence(a, b)
				if err != nil {
					t.Fatal(err)
				}
				agreement, err := consortium.AgreementOf(a, b, fixture.StoredHashes(t, real.Entries), fixture.StoredHashes(t, other.Entries))
				if err != nil {
					t.Fatal(err)
				}
				if ev, err = ev.Resolve(agreement); err != nil {
					t.Fatal(err)
				}
				// The third history: entry 1 with another note, the rest as in the other two.
				var e1 pb.Entry
				if err := proto.Unmarshal(real.Entries[1], &e1); err != nil {
					t.Fatal(err)
				}
				e1.GetAdd().Note = "a third history"
				third := fixture.NewLog(w.g.ID, fixture.Key("alpha"))
				third.AppendRaw(real.Entries[0])
				third.AppendRaw(fixture.Marshal(&e1))
				for _, e := range real.Entries[2:] {
					third.AppendRaw(e)
				}
				w.logs["alpha"] = third
				in = w.bundle(t, nil)
				in.Evidence = [][]byte{ev.Marshal()}
				return in, ""
			}, check: func(r *consortium.AuditReport) error {
				if r.OK || !slices.ContainsFunc(r.Failures, func(f consortium.Failure) bool {
					return f.Rule == consortium.RuleEquivocation && f.Log == "alpha" && strings.Contains(f.Message, "third history")
				}) {
					return fmt.Errorf("ok %v, failures %+v: want a third-history failure on alpha", r.OK, r.Failures)
				}
				return nil
			}},
		{name: "revoke-index-of-rejected-add", about: "a revoke by index of an add rejected for its time withdraws that add's signal (section 7, step 3)",
			build: func(t *testing.T) (consortium.AuditInput, string) {
				w := base(t)
				b := w.logs["bravo"]
				late := w.at()
				b.Append(fixture.Add(late, extraSig(t, 1)))           // listed
				j := b.Append(fixture.Add(late-1000, extraSig(t, 1))) // rejected: time before the previous entry
				b.Append(fixture.RevokeIndex(w.at(), j))              // withdraws extraSig(1)
				return w.bundle(t, nil), ""
			}, check: passes(rejected("bravo 4"))},
		{name: "time-rejected", about: "an entry dated before the previous valid entry is rejected; invalid entries do not advance the clock, a rejected revoke does (section 7, step 1)",
			build: func(t *testing.T) (consortium.AuditInput, string) {
				w := base(t)
				c := w.logs["charlie"] // entries 0 to 2: an add, an opinion, an endorse
				t0 := w.at()
				c.Append(fixture.Add(t0, extraSig(t, 2)))                 // 3: valid, the clock is t0
				c.Append(fixture.RevokeIndex(t0+40_000, 2))               // 4: invalid (entry 2 is not an add): the clock stays t0
				c.Append(fixture.Add(t0+30_000, extraSig(t, 3)))          // 5: after t0: applied
				c.Append(fixture.RevokeSignal(t0+60_000, extraSig(t, 9))) // 6: rejected (not listed), the clock is t0+60s
				c.Append(fixture.Add(t0+55_000, extraSig(t, 4)))          // 7: before t0+60s: rejected
				w.ms += 120_000
				return w.bundle(t, nil), ""
			}, check: passes(rejected("charlie 4", "charlie 6", "charlie 7"))},
		{name: "wrong-epoch-endorse", about: "an endorse naming another epoch than its proposal's counts for nothing, and uses up its author's vote in the epoch it names (section 6)",
			build: func(t *testing.T) (consortium.AuditInput, string) {
				w := base(t)
				prop := w.logs["alpha"].Entries[len(w.logs["alpha"].Entries)-1]
				w.logs["bravo"].Append(fixture.Endorse(w.at(), 1, prop))
				w.logs["bravo"].Append(fixture.Remove(w.at(), "bravo", 1, "delta")) // a second vote of bravo in epoch 1
				return w.bundle(t, nil), ""
			}, check: failsWith("double-vote bravo")},
		{name: "expired-at-t", about: "audit --at t leaves out of its counts a listing whose expiry is not after t, as export --at does; the digest never applies expiry (sections 7, 7.1, 7.2)",
			build: func(t *testing.T) (consortium.AuditInput, string) {
				w := base(t)
				a := fixture.Add(w.at(), extraSig(t, 5))
				a.GetAdd().ExpiresUnixMs = fixture.At(w.ms + 3_600_000)
				w.logs["charlie"].Append(a)
				at := time.UnixMilli(fixture.At(w.ms + 3_600_000)).UTC()
				return w.bundle(t, nil), "--at " + at.Format(time.RFC3339)
			}, check: passes(func(r *consortium.AuditReport) error {
				if r.Signals != 4 || r.Listings != 5 {
					return fmt.Errorf("at t: got %d signals, %d listings, want 4 and 5 (the golden state without the expired listing)", r.Signals, r.Listings)
				}
				return nil
			})},
		{name: "observer-cosignature", about: "a cosignature by an observer counts toward --require-cosignatures (section 4.3)",
			build: func(t *testing.T) (consortium.AuditInput, string) {
				w := base(t)
				return w.bundle(t, func(author string) []string {
					if author == "oscar" {
						return []string{"alpha"}
					}
					return []string{"oscar"}
				}), "--require-cosignatures 1"
			}, check: passes(nil)},
		{name: "removed-member-cosignature", about: "a cosignature by a member removed from the roster still verifies but does not count toward --require-cosignatures (section 4.3)",
			build: func(t *testing.T) (consortium.AuditInput, string) {
				w := base(t)
				// Epoch 1 has four voters (effective quorum 3): alpha proposes to remove charlie,
				// bravo and delta endorse.
				i := w.logs["alpha"].Append(fixture.Remove(w.at(), "alpha", 1, "charlie"))
				w.logs["bravo"].Append(fixture.Endorse(w.at(), 1, w.logs["alpha"].Entries[i]))
				w.logs["delta"].Append(fixture.Endorse(w.at(), 1, w.logs["alpha"].Entries[i]))
				return w.bundle(t, nil), "--require-cosignatures 4"
			}, check: failsWith("cosignatures alpha", "cosignatures bravo", "cosignatures delta", "cosignatures oscar")},
		{name: "self-cosignature", about: "a member's cosignature of its own log is ignored and does not count (section 4.3)",
			build: func(t *testing.T) (consortium.AuditInput, string) {
				w := base(t)
				in := w.bundle(t, func(author string) []string {
					switch author {
					case "alpha":
						return []string{"bravo", "oscar"}
					case "bravo":
						return []string{"oscar"}
					case "oscar":
						return []string{"alpha", "charlie"}
					}
					return []string{"alpha", "oscar"}
				})
				in.Checkpoints["bravo"][0] = selfCosign(t, w.g.ID, in.Checkpoints["bravo"][0], "bravo")
				return in, "--require-cosignatures 2"
			}, check: failsWith("cosignatures bravo")},
		{name: "bad-cosignature", about: "a cosignature by a known key that does not verify fails the audit, also by a member admitted after genesis (section 4.3)",
			build: func(t *testing.T) (consortium.AuditInput, string) {
				w := base(t)
				in := w.bundle(t, nil)
				in.Checkpoints["alpha"][0] = corruptSignature(t, in.Checkpoints["alpha"][0], consortium.CosignerName(w.g.ID, "delta"))
				return in, "--require-cosignatures 4"
			}, check: failsWith("checkpoint alpha")},
		{name: "omitted-log", about: "a bundle without bravo's log fails: the heads notes name it (section 4.5)",
			build: func(t *testing.T) (consortium.AuditInput, string) {
				in := base(t).bundle(t, nil)
				delete(in.Logs, "bravo")
				delete(in.Checkpoints, "bravo")
				return in, "--require-cosignatures 1"
			}, check: failsWith("omitted bravo")},
		{name: "rolled-back-log", about: "a bundle with bravo's log rolled back to an older checkpoint (before its revoke) fails (section 4.5)",
			build: func(t *testing.T) (consortium.AuditInput, string) {
				w := base(t)
				in := w.bundle(t, nil)
				old := fixture.NewLog(w.g.ID, fixture.Key("bravo"))
				for _, e := range w.logs["bravo"].Entries[:2] {
					old.AppendRaw(e)
				}
				s, _ := consortium.Replay(w.g, in.Logs, consortium.ReplayOptions{})
				cp, err := consortium.OpenCheckpoint(w.g.ID, s, old.Checkpoint())
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range []string{"alpha", "charlie", "delta", "oscar"} {
					if cp, err = consortium.Cosign(w.g.ID, s, cp, fixture.Key(o), w.cosignAt()); err != nil {
						t.Fatal(err)
					}
				}
				in.Logs["bravo"] = in.Logs["bravo"][:2]
				in.Checkpoints["bravo"] = [][]byte{cp.Note}
				return in, "--require-cosignatures 4"
			}, check: failsWith("rolled-back bravo")},
		{name: "heads-fork", about: "a heads note carrying a checkpoint its author signed with another root than the bundle's tree at that size fails: the author signed two histories (section 4.5)",
			build: func(t *testing.T) (consortium.AuditInput, string) {
				w := base(t)
				in := w.bundle(t, nil)
				other := fixture.NewLog(w.g.ID, fixture.Key("alpha"))
				for _, e := range w.logs["alpha"].Entries[:len(w.logs["alpha"].Entries)-1] {
					other.AppendRaw(e)
				}
				other.Append(fixture.Add(w.at(), fixture.PDQ(77)))
				s, _ := consortium.Replay(w.g, in.Logs, consortium.ReplayOptions{})
				h, err := consortium.OpenHeads(w.g.ID, s, in.Heads["bravo"])
				if err != nil {
					t.Fatal(err)
				}
				cp, err := consortium.OpenCheckpoint(w.g.ID, s, other.Checkpoint())
				if err != nil {
					t.Fatal(err)
				}
				if h.Heads[0], err = consortium.HeadOf(cp); err != nil {
					t.Fatal(err)
				}
				if in.Heads["bravo"], err = consortium.SignHeads(w.g.ID, fixture.Key("bravo"), h.Time, h.Heads); err != nil {
					t.Fatal(err)
				}
				return in, ""
			}, check: failsWith("heads-root alpha")},
		{name: "roles", about: "the members admit a civil-society participant (ngo) and a referral authority (irua); ngo certifies a parody account, charlie's forgery of a certification in ngo's name is rejected, bravo disputes the certification, irua refers a signal to alpha and bravo, who answer within the deadline (sections 6, 7.1, 13 and 14)",
			build: func(t *testing.T) (consortium.AuditInput, string) {
				w := base(t)
				ngo, irua := w.join("ngo"), w.join("irua")
				// Epoch 1 has four voters (effective quorum 3): alpha proposes, bravo and delta endorse.
				i := w.logs["alpha"].Append(fixture.Propose(w.at(), "alpha", 1,
					consortium.AdmitChange(fixture.Key("irua").Public(), pb.Role_ROLE_AUTHORITY),
					consortium.AdmitChange(fixture.Key("ngo").Public(), pb.Role_ROLE_CIVIL_SOCIETY)))
				w.logs["bravo"].Append(fixture.Endorse(w.at(), 1, w.logs["alpha"].Entries[i]))
				w.logs["delta"].Append(fixture.Endorse(w.at(), 1, w.logs["alpha"].Entries[i]))
				acct := goldenSignal(t, "url", "https://social.example/@caliphate_cats")
				c := fixture.Certify(w.at(), "ngo", pb.Category_CATEGORY_PARODY, acct)
				c.GetCertify().Subject = "@caliphate_cats"
				ngo.Append(c)
				w.logs["charlie"].Append(fixture.Certify(w.at(), "ngo", pb.Category_CATEGORY_NEWS, extraSig(t, 11)))
				w.logs["bravo"].Append(fixture.Opinion(w.at(), acct, pb.Stance_STANCE_DISPUTE))
				j := irua.Append(fixture.Refer(w.at(), "irua", []string{"alpha", "bravo"}, extraSig(t, 12)))
				w.logs["alpha"].Append(fixture.Add(w.at(), extraSig(t, 12), "behaviour:threat-incitement"))
				w.logs["alpha"].Append(fixture.Answer(w.at(), irua.Entries[j], pb.Outcome_OUTCOME_LISTED))
				w.logs["bravo"].Append(fixture.Answer(w.at(), irua.Entries[j], pb.Outcome_OUTCOME_DECLINED))
				return w.bundle(t, nil), "--require-answers"
			}, check: passes(func(r *consortium.AuditReport) error {
				if err := rejected("charlie 3")(r); err != nil {
					return err
				}
				if r.Certifications != 1 || len(r.Referrals) != 1 || len(r.Referrals[0].Answers) != 2 || r.Referrals[0].Answers[0].Outcome != "listed" || r.Referrals[0].Answers[1].Outcome != "declined" {
					return fmt.Errorf("certifications %d, referrals %+v: want 1 certification and one referral answered listed by alpha, declined by bravo", r.Certifications, r.Referrals)
				}
				return nil
			})},
		{name: "referral-deadline", about: "with --require-answers, a referral whose deadline passed (by the latest entry time of the logs) without an answer from an addressed member fails the audit (section 15)",
			build: func(t *testing.T) (consortium.AuditInput, string) {
				w := base(t)
				irua := w.join("irua")
				i := w.logs["alpha"].Append(fixture.AdmitAs(w.at(), "alpha", 1, "irua", pb.Role_ROLE_AUTHORITY))
				w.logs["bravo"].Append(fixture.Endorse(w.at(), 1, w.logs["alpha"].Entries[i]))
				w.logs["delta"].Append(fixture.Endorse(w.at(), 1, w.logs["alpha"].Entries[i]))
				irua.Append(fixture.Refer(w.at(), "irua", []string{"charlie"}, extraSig(t, 13)))
				w.ms += 2 * 3_600_000
				w.logs["alpha"].Append(fixture.Add(w.at(), extraSig(t, 14)))
				return w.bundle(t, nil), "--require-answers"
			}, check: failsWith("deadline charlie")},
		{name: "no-heads", about: "without heads notes nothing signed says which logs exist: --require-heads 1 (hashfed audit's default) fails (section 4.5)",
			build: func(t *testing.T) (consortium.AuditInput, string) {
				in := base(t).bundle(t, nil)
				in.Heads = nil
				return in, "--require-heads 1"
			}, check: failsWith("heads-count ")},
	}...)
}

// caseOptions parses the hashfed audit arguments a case uses.
func caseOptions(args string) (consortium.AuditOptions, error) {
	var opt consortium.AuditOptions
	f := strings.Fields(args)
	for i := 0; i < len(f); i += 2 {
		if f[i] == "--require-answers" {
			opt.RequireAnswers = true
			i--
			continue
		}
		if i+1 == len(f) {
			return opt, fmt.Errorf("arguments %q are not pairs", args)
		}
		var err error
		switch f[i] {
		case "--at":
			opt.Until, err = time.Parse(time.RFC3339, f[i+1])
		case "--require-cosignatures":
			opt.RequireCosignatures, err = strconv.Atoi(f[i+1])
		case "--require-heads":
			opt.RequireHeads, err = strconv.Atoi(f[i+1])
		default:
			err = fmt.Errorf("unknown argument %q", f[i])
		}
		if err != nil {
			return opt, err
		}
	}
	return opt, nil
}

// expectedText is a case's expected.txt: what hashfed audit --bundle reports for it.
func expectedText(c goldenCase, args string, r *consortium.AuditReport) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n# hashfed audit --bundle testdata/vectors/cases/%s %s\n", c.about, c.name, args)
	fmt.Fprintf(&b, "args %s\nok %v\nsignals %d\nlistings %d\ndigest %s\n", args, r.OK, r.Signals, r.Listings, r.Digest)
	for _, x := range r.Rejections {
		fmt.Fprintf(&b, "rejected %s %d\n", x.Member, x.Index)
	}
	if r.Certifications > 0 {
		fmt.Fprintf(&b, "certifications %d\n", r.Certifications)
	}
	for _, ref := range r.Referrals {
		fmt.Fprintf(&b, "referral %s %s %d\n", ref.Referral, ref.Author, ref.Index)
		for _, a := range ref.Answers {
			delay := "-"
			if a.DelayMs != nil {
				delay = strconv.FormatInt(*a.DelayMs, 10)
			}
			fmt.Fprintf(&b, "answer %s %s %s late=%v\n", a.Member, a.Outcome, delay, a.Late)
		}
	}
	for _, f := range r.Failures {
		log, idx := f.Log, "-"
		if log == "" {
			log = "-"
		}
		if f.Index != nil {
			idx = strconv.FormatUint(*f.Index, 10)
		}
		fmt.Fprintf(&b, "fail %s %s %s\n", f.Rule, log, idx)
	}
	return b.String()
}

// TestGoldenCases audits every bundle of testdata/vectors/cases from the files, as an independent
// verifier would, and compares the outcome with the case's expected.txt.
func TestGoldenCases(t *testing.T) {
	for _, c := range goldenCases() {
		t.Run(c.name, func(t *testing.T) {
			dir := path.Join(vectorsDir, "cases", c.name)
			in, err := consortium.ReadBundle(os.DirFS(dir))
			if err != nil {
				t.Fatal(err)
			}
			want, err := fs.ReadFile(os.DirFS(dir), "expected.txt")
			if err != nil {
				t.Fatal(err)
			}
			var args string
			for _, l := range strings.Split(string(want), "\n") {
				if a, ok := strings.CutPrefix(l, "args "); ok {
					args = a
				} else if l == "args" {
					args = ""
				}
			}
			opt, err := caseOptions(args)
			if err != nil {
				t.Fatal(err)
			}
			r := consortium.Audit(in, opt)
			if err := c.check(r); err != nil {
				t.Errorf("%v\n%s", err, r)
			}
			if got := expectedText(c, args, r); got != string(want) {
				t.Errorf("expected.txt: got\n%s\nwant\n%s", got, want)
			}
		})
	}
}
