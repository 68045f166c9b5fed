package consortium_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

func testLog(t *testing.T, g *consortium.Genesis, member string, n int) *fixture.Log {
	t.Helper()
	l := fixture.NewLog(g.ID, fixture.Key(member))
	for i := 0; i < n; i++ {
		l.Append(fixture.Add(fixture.At(int64(i)), fixture.PDQ(i)))
	}
	return l
}

func TestTreeMatchesTlog(t *testing.T) {
	g := fixture.Genesis(1, fixture.Members("alpha")...)
	l := testLog(t, g, "alpha", 0)
	for n := 0; n <= 70; n++ {
		hs := fixture.StoredHashes(t, l.Entries)
		want, err := consortium.TreeHash(hs, uint64(n))
		if err != nil {
			t.Fatal(err)
		}
		if got := l.Tree.Root(); got != want || l.Tree.Size() != uint64(n) {
			t.Fatalf("size %d: tree root %x, tlog root %x", n, got, want)
		}
		if c := l.Tree.Clone(); c.Root() != l.Tree.Root() {
			t.Fatalf("clone root differs")
		}
		l.Append(fixture.Add(fixture.At(int64(n)), fixture.PDQ(n)))
	}
	if consortium.NewTree().Root() != consortium.EmptyRoot() {
		t.Error("empty tree root is not the RFC 6962 empty root")
	}
}

func TestAppendStoredMatchesTlog(t *testing.T) {
	g := fixture.Genesis(1, fixture.Members("alpha")...)
	l := testLog(t, g, "alpha", 100)
	want := fixture.StoredHashes(t, l.Entries)
	tree := consortium.NewTree()
	var got []consortium.Hash
	for _, e := range l.Entries {
		got = tree.AppendStored(consortium.LeafHash(e), got)
	}
	if len(got) != len(want) {
		t.Fatalf("got %d stored hashes, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("stored hash %d differs", i)
		}
	}
	// A tree restored from its peaks continues identically.
	back, err := consortium.TreeFromRange(tree.Size(), tree.Peaks())
	if err != nil || back.Root() != tree.Root() {
		t.Fatalf("TreeFromRange: %v", err)
	}
	if _, err := consortium.TreeFromRange(5, tree.Peaks()); err == nil {
		t.Error("TreeFromRange accepted the wrong number of peaks")
	}
}

func TestCheckpointSignAndOpen(t *testing.T) {
	g := fixture.Genesis(2, fixture.Members("alpha", "bravo", "charlie")...)
	l := testLog(t, g, "alpha", 5)
	msg := l.Checkpoint()
	if !strings.HasPrefix(string(msg), "hashfed/"+g.ID.String()+"/alpha\n5\n") {
		t.Errorf("checkpoint text: got %q", msg)
	}
	cp, err := consortium.OpenCheckpoint(g.ID, g, msg)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Member != "alpha" || cp.Size != 5 || cp.Root != l.Tree.Root() || !bytes.Equal(cp.Note, msg) {
		t.Errorf("got %+v", cp)
	}

	other := fixture.Genesis(2, fixture.Members("alpha", "bravo", "charlie", "delta")...)
	wrongKey, _ := consortium.SignCheckpoint(g.ID, fixture.Key("mallory-alpha"), 5, l.Tree.Root())
	wrongKey = bytes.Replace(wrongKey, []byte("/mallory-alpha\n"), []byte("/alpha\n"), 1)
	forged := bytes.Replace(msg, []byte("\n5\n"), []byte("\n6\n"), 1)
	unknown, _ := consortium.SignCheckpoint(g.ID, fixture.Key("mallory"), 5, l.Tree.Root())
	tests := []struct {
		name string
		msg  []byte
		keys consortium.Keyring
		want error
		msg2 string
	}{
		{"signed by the wrong key", wrongKey, g, consortium.ErrBadSignature, "no signature by its key"},
		{"body altered after signing", forged, g, consortium.ErrBadSignature, "does not verify"},
		{"unknown member", unknown, g, consortium.ErrUnknownMember, "mallory"},
		{"another consortium", msg, other, consortium.ErrMalformed, "not a log of consortium"},
		{"not a note", []byte("hello"), g, consortium.ErrMalformed, "not a signed note"},
		{"oversized", bytes.Repeat([]byte("a"), consortium.MaxCheckpointSize+1), g, consortium.ErrMalformed, "at most"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := g.ID
			if tc.keys == other {
				id = other.ID
			}
			_, err := consortium.OpenCheckpoint(id, tc.keys, tc.msg)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg2) {
				t.Errorf("got %v, want %v mentioning %q", err, tc.want, tc.msg2)
			}
		})
	}
}

func TestCosignatures(t *testing.T) {
	g := fixture.Genesis(2, fixture.Members("alpha", "bravo", "charlie")...)
	l := testLog(t, g, "alpha", 3)
	cp, err := consortium.OpenCheckpoint(g.ID, g, l.Checkpoint())
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(1767225600, 0).UTC()
	byBravo, err := consortium.Cosign(g.ID, g, cp, fixture.Key("bravo"), at)
	if err != nil {
		t.Fatal(err)
	}
	byCharlie, err := consortium.Cosign(g.ID, g, cp, fixture.Key("charlie"), at.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(byBravo.Cosigners) != 1 || byBravo.Cosigners[0].Member != "bravo" || !byBravo.Cosigners[0].Time.Equal(at) {
		t.Errorf("cosigners: got %+v", byBravo.Cosigners)
	}
	merged, err := consortium.MergeCheckpoints(g.ID, g, byBravo, byCharlie)
	if err != nil {
		t.Fatal(err)
	}
	if len(merged.Cosigners) != 2 || !merged.HasCosigner("bravo") || !merged.HasCosigner("charlie") {
		t.Errorf("merged cosigners: got %+v", merged.Cosigners)
	}
	// The transparency-dev cosignature verifier accepts our cosignatures (C2SP tlog-cosignature/v1).
	vkey, _ := note.NewEd25519VerifierKey(consortium.CosignerName(g.ID, "bravo"), fixture.Key("bravo").Public().Key)
	v, err := fnote.NewVerifierForCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open(byBravo.Note, note.VerifierList(v)); err != nil {
		t.Errorf("formats/note verifier rejects our cosignature: %v", err)
	}
	if _, err := consortium.Cosign(g.ID, g, cp, fixture.Key("alpha"), at); !errors.Is(err, consortium.ErrNotPermitted) {
		t.Errorf("self-cosign: got %v, want ErrNotPermitted", err)
	}
	// A cosignature whose bytes were altered is refused, naming the cosigner.
	lines := strings.Split(string(byBravo.Note), "\n")
	last := lines[len(lines)-2]
	sig := last[strings.LastIndex(last, " ")+1:]
	flipped := []byte(sig)
	flipped[20] ^= 1
	if flipped[20] == '+' || flipped[20] == '/' {
		flipped[20] = 'A'
	}
	bad := bytes.Replace(byBravo.Note, []byte(sig), flipped, 1)
	if _, err := consortium.OpenCheckpoint(g.ID, g, bad); !errors.Is(err, consortium.ErrBadSignature) && !errors.Is(err, consortium.ErrMalformed) {
		t.Errorf("tampered cosignature: got %v", err)
	}
}

func TestVerifyRange(t *testing.T) {
	g := fixture.Genesis(1, fixture.Members("alpha")...)
	l := testLog(t, g, "alpha", 10)
	cp, _ := consortium.OpenCheckpoint(g.ID, g, l.Checkpoint())
	prefix := consortium.NewTree()
	for _, e := range l.Entries[:4] {
		prefix.AppendEntry(e)
	}
	tree, leaves, err := consortium.VerifyRange(prefix, l.Entries[4:], cp)
	if err != nil {
		t.Fatal(err)
	}
	if tree.Root() != cp.Root || len(leaves) != 6 || prefix.Size() != 4 {
		t.Errorf("got size %d, %d leaves, prefix size %d", tree.Size(), len(leaves), prefix.Size())
	}
	tampered := append([][]byte(nil), l.Entries[4:]...)
	tampered[2] = fixture.Marshal(fixture.Add(fixture.At(99), fixture.PDQ(99)))
	if _, _, err := consortium.VerifyRange(prefix, tampered, cp); !errors.Is(err, consortium.ErrRootMismatch) || !strings.Contains(err.Error(), `log "alpha" entries [4, 10)`) {
		t.Errorf("tampered range: got %v", err)
	}
	reordered := append([][]byte(nil), l.Entries[4:]...)
	reordered[0], reordered[1] = reordered[1], reordered[0]
	if _, _, err := consortium.VerifyRange(prefix, reordered, cp); !errors.Is(err, consortium.ErrRootMismatch) {
		t.Errorf("reordered range: got %v", err)
	}
	if _, _, err := consortium.VerifyRange(prefix, l.Entries[4:9], cp); !errors.Is(err, consortium.ErrRootMismatch) || !strings.Contains(err.Error(), "do not end at") {
		t.Errorf("short range: got %v", err)
	}
}

func TestProofs(t *testing.T) {
	g := fixture.Genesis(1, fixture.Members("alpha")...)
	l := testLog(t, g, "alpha", 37)
	hs := fixture.StoredHashes(t, l.Entries)
	roots := make([]consortium.Hash, 38)
	for n := range roots {
		roots[n], _ = consortium.TreeHash(hs, uint64(n))
	}
	for size := uint64(1); size <= 37; size++ {
		for i := uint64(0); i < size; i++ {
			p, err := consortium.ProveInclusion(hs, i, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := consortium.VerifyInclusion(p, i, size, roots[size], consortium.LeafHash(l.Entries[i])); err != nil {
				t.Fatalf("inclusion %d in %d: %v", i, size, err)
			}
			if err := consortium.VerifyInclusion(p, i, size, roots[size], consortium.LeafHash(l.Entries[(i+1)%37])); !errors.Is(err, consortium.ErrInconsistent) {
				t.Fatalf("inclusion of the wrong leaf accepted")
			}
		}
		for old := uint64(0); old <= size; old++ {
			p, err := consortium.ProveConsistency(hs, old, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := consortium.VerifyConsistency(p, old, roots[old], size, roots[size]); err != nil {
				t.Fatalf("consistency %d→%d: %v", old, size, err)
			}
			if old > 0 && old < size {
				if err := consortium.VerifyConsistency(p, old, roots[old-1], size, roots[size]); !errors.Is(err, consortium.ErrInconsistent) {
					t.Fatalf("consistency %d→%d with a wrong old root accepted", old, size)
				}
			}
		}
	}
}

// TestOpenCheckpointKnown: lines verified before are not verified again, and nothing else is
// taken on their account: a line altered, moved to another tree head, or by a key the keyring no
// longer has is checked (and refused or dropped) as OpenCheckpoint does.
func TestOpenCheckpointKnown(t *testing.T) {
	g := fixture.Genesis(2, fixture.Members("alpha", "bravo", "charlie")...)
	l := testLog(t, g, "alpha", 3)
	cp, err := consortium.OpenCheckpoint(g.ID, g, l.Checkpoint())
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(1767225600, 0).UTC()
	byBravo, err := consortium.Cosign(g.ID, g, cp, fixture.Key("bravo"), at)
	if err != nil {
		t.Fatal(err)
	}
	both, err := consortium.Cosign(g.ID, g, byBravo, fixture.Key("charlie"), at)
	if err != nil {
		t.Fatal(err)
	}
	knows := func(k *consortium.Checkpoint) func(string) *consortium.Checkpoint {
		return func(string) *consortium.Checkpoint { return k }
	}
	// Same result as a full verification.
	got, err := consortium.OpenCheckpointKnown(g.ID, g, both.Note, knows(byBravo))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := consortium.OpenCheckpoint(g.ID, g, both.Note)
	if !bytes.Equal(got.Note, want.Note) || len(got.Cosigners) != 2 || got.Size != want.Size || got.Root != want.Root {
		t.Errorf("got %+v, want %+v", got, want)
	}
	sigLine := func(note []byte, who string) string {
		for _, line := range strings.Split(string(note), "\n") {
			if strings.Contains(line, "/"+who+"/cosigner ") {
				return line
			}
		}
		t.Fatalf("no line by %s in %q", who, note)
		return ""
	}
	// A known line altered in one byte is verified, and refused.
	line := sigLine(byBravo.Note, "bravo")
	b := []byte(line)
	b[len(b)-10] ^= 1
	if b[len(b)-10] == '+' || b[len(b)-10] == '/' {
		b[len(b)-10] = 'A'
	}
	tampered := bytes.Replace(both.Note, []byte(line), b, 1)
	if _, err := consortium.OpenCheckpointKnown(g.ID, g, tampered, knows(both)); !errors.Is(err, consortium.ErrBadSignature) {
		t.Errorf("altered known line: got %v, want ErrBadSignature", err)
	}
	// A known line moved onto another tree head (alpha's next checkpoint) does not verify there.
	l.Append(fixture.Add(fixture.At(3), fixture.PDQ(3)))
	next := l.Checkpoint()
	moved := append(bytes.TrimSuffix(next, []byte("\n")), []byte("\n"+line+"\n")...)
	if _, err := consortium.OpenCheckpointKnown(g.ID, g, moved, knows(both)); !errors.Is(err, consortium.ErrBadSignature) {
		t.Errorf("known line on another tree head: got %v, want ErrBadSignature", err)
	}
	// A keyring where bravo has another key: bravo's known line is not bravo's any more; it is
	// dropped as a signature by an unknown key.
	rekeyed := keyring{"alpha": fixture.Key("alpha").Public().Key, "bravo": fixture.Key("bravo2").Public().Key, "charlie": fixture.Key("charlie").Public().Key}
	got, err = consortium.OpenCheckpointKnown(g.ID, rekeyed, both.Note, knows(both))
	if err != nil {
		t.Fatal(err)
	}
	if got.HasCosigner("bravo") || !got.HasCosigner("charlie") {
		t.Errorf("rekeyed: got cosigners %+v, want charlie alone", got.Cosigners)
	}
	// Merging verified checkpoints gives what a full verification of the merged note gives.
	byCharlie, _ := consortium.Cosign(g.ID, g, cp, fixture.Key("charlie"), at)
	merged, err := consortium.MergeCheckpoints(g.ID, g, byBravo, byCharlie)
	if err != nil {
		t.Fatal(err)
	}
	full, err := consortium.OpenCheckpoint(g.ID, g, merged.Note)
	if err != nil || !bytes.Equal(full.Note, merged.Note) || len(full.Cosigners) != 2 {
		t.Errorf("merged: got %q (%v), full verification %+v", merged.Note, err, full)
	}
}

type keyring map[string]ed25519.PublicKey

func (k keyring) MemberKey(id string) (ed25519.PublicKey, bool) { key, ok := k[id]; return key, ok }

// TestCheckpointCovers: a note is covered only when its text is the checkpoint's and each of its
// signature lines is one of the checkpoint's; anything new (a line, another tree head, a line
// altered) is not.
func TestCheckpointCovers(t *testing.T) {
	g := fixture.Genesis(2, fixture.Members("alpha", "bravo", "charlie")...)
	l := testLog(t, g, "alpha", 3)
	cp, err := consortium.OpenCheckpoint(g.ID, g, l.Checkpoint())
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(1767225600, 0).UTC()
	byBravo, _ := consortium.Cosign(g.ID, g, cp, fixture.Key("bravo"), at)
	both, _ := consortium.Cosign(g.ID, g, byBravo, fixture.Key("charlie"), at)
	altered := bytes.Clone(both.Note)
	altered[len(altered)-5] ^= 1
	l.Append(fixture.Add(fixture.At(3), fixture.PDQ(3)))
	tests := []struct {
		name string
		c    *consortium.Checkpoint
		note []byte
		want bool
	}{
		{"same note", both, both.Note, true},
		{"fewer signatures", both, byBravo.Note, true},
		{"author alone", both, cp.Note, true},
		{"a new cosignature", byBravo, both.Note, false},
		{"an altered line", both, altered, false},
		{"another tree head", both, l.Checkpoint(), false},
		{"no signature", both, []byte(strings.SplitAfter(string(both.Note), "\n\n")[0]), false},
		{"not a note", both, []byte("hello"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.c.Covers(tc.note); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
