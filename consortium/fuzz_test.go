package consortium_test

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
)

// seedEntries returns the entries of the golden logs and of the roles case (certify, uncertify,
// refer and answer entries).
func seedEntries(f *testing.F) [][]byte {
	var out [][]byte
	paths, _ := filepath.Glob(filepath.Join(vectorsDir, "logs", "*.b64"))
	more, _ := filepath.Glob(filepath.Join(vectorsDir, "cases", "roles", "logs", "*.b64"))
	paths = append(paths, more...)
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		for _, line := range strings.Fields(string(b)) {
			e, _ := base64.StdEncoding.DecodeString(line)
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		f.Fatal("no seed entries in testdata/vectors/logs")
	}
	return out
}

func readVector(f *testing.F, name string) []byte {
	b, err := os.ReadFile(filepath.Join(vectorsDir, name))
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// FuzzParseEntry: any bytes either parse into an entry that re-encodes to valid bytes, or give an
// error; never a panic.
func FuzzParseEntry(f *testing.F) {
	for _, e := range seedEntries(f) {
		f.Add(e)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		e, err := consortium.ParseEntry(raw)
		if err != nil {
			return
		}
		// Accepted bytes are canonical: re-encoding gives the very same bytes.
		again, err := consortium.MarshalEntry(e)
		if err != nil {
			t.Fatalf("parsed entry does not re-encode: %v", err)
		}
		if !bytes.Equal(again, raw) {
			t.Fatalf("accepted a non-canonical encoding:\n got %x\nwant %x", raw, again)
		}
		// Replaying it as the first entry of a log must not panic either.
		g := fixture.Genesis(1, fixture.Members("alpha")...)
		s := consortium.NewState(g, consortium.Logs{"alpha": {raw}}.Reader())
		if err := s.Apply("alpha", 0, raw); err != nil {
			t.Fatal(err)
		}
		s.Digest()
	})
}

// FuzzOpenCheckpoint: hostile checkpoint notes never panic, and whatever opens re-opens to the
// same tree head.
func FuzzOpenCheckpoint(f *testing.F) {
	g, err := consortium.ParseGenesis(readVector(f, "genesis.bin"))
	if err != nil {
		f.Fatal(err)
	}
	for _, m := range []string{"alpha", "bravo", "oscar"} {
		f.Add(readVector(f, "checkpoints/"+m+".txt"))
	}
	keys := fixture.Genesis(2, fixture.Founder{ID: "alpha"}, fixture.Founder{ID: "bravo"}, fixture.Founder{ID: "charlie"}, fixture.Founder{ID: "oscar", Observer: true})
	f.Fuzz(func(t *testing.T, msg []byte) {
		cp, err := consortium.OpenCheckpoint(g.ID, keys, msg)
		if err != nil {
			return
		}
		again, err := consortium.OpenCheckpoint(g.ID, keys, cp.Note)
		if err != nil || !again.Same(cp) {
			t.Fatalf("re-open of an opened checkpoint: %v", err)
		}
	})
}

// FuzzParseGenesis: hostile genesis files never panic; what parses re-encodes to a file that parses
// to the same consortium id.
func FuzzParseGenesis(f *testing.F) {
	f.Add(readVector(f, "genesis.bin"))
	f.Fuzz(func(t *testing.T, file []byte) {
		g, err := consortium.ParseGenesisDraft(file)
		if err != nil {
			return
		}
		again, err := consortium.ParseGenesisDraft(g.Marshal())
		if err != nil || again.ID != g.ID {
			t.Fatalf("re-parse: %v", err)
		}
	})
}

// FuzzParseEvidence: hostile evidence never panics and never verifies without two incompatible
// checkpoints.
func FuzzParseEvidence(f *testing.F) {
	g, err := consortium.ParseGenesis(readVector(f, "genesis.bin"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(readVector(f, "cases/equivocation/evidence/0.bin"))
	f.Add(resolvedSeed(f, g))
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev, err := consortium.ParseEvidence(g.ID, g, raw)
		if err != nil {
			return
		}
		if ev.A.Size == ev.B.Size && ev.A.Root == ev.B.Root {
			t.Fatal("evidence of two equal checkpoints verified")
		}
		if n, ok := ev.AgreedSize(); ok && n >= ev.A.Size {
			t.Fatalf("agreed size %d verified, not below the smaller checkpoint's size %d", n, ev.A.Size)
		}
	})
}

// resolvedSeed is resolved evidence that alpha (the vectors' key) forked after 3 entries.
func resolvedSeed(f *testing.F, g *consortium.Genesis) []byte {
	p := &forkPair{g: g}
	la, lb := fixture.NewLog(g.ID, fixture.Key("alpha")), fixture.NewLog(g.ID, fixture.Key("alpha"))
	for i := 0; i < 6; i++ {
		la.Append(fixture.Add(fixture.At(int64(i)), fixture.PDQ(i)))
		lb.Append(fixture.Add(fixture.At(int64(i)), fixture.PDQ(i+10*min(1, i/3))))
	}
	p.ea, p.eb = la.Entries, lb.Entries
	var err error
	if p.a, err = consortium.OpenCheckpoint(g.ID, g, la.Checkpoint()); err != nil {
		f.Fatal(err)
	}
	if p.b, err = consortium.OpenCheckpoint(g.ID, g, lb.Checkpoint()); err != nil {
		f.Fatal(err)
	}
	ev, err := p.evidence(f).Resolve(p.agreement(f, 3))
	if err != nil {
		f.Fatalf("seed: %v", err)
	}
	return ev.Marshal()
}

// FuzzCanonicalURL: canonicalization never panics and is idempotent.
func FuzzCanonicalURL(f *testing.F) {
	for _, s := range []string{"http://example.com/a/../b?x=%41", "bücher.example/%7e", "https://[::1]:443/#x", "example.com:8080"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := consortium.CanonicalURL(s)
		if err != nil {
			return
		}
		c2, err := consortium.CanonicalURL(c)
		if err != nil || c2 != c {
			t.Fatalf("not idempotent: %q -> %q -> %q (%v)", s, c, c2, err)
		}
	})
}
