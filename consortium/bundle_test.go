package consortium_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
)

// vectorsFS returns the golden bundle as an in-memory file system (cases/ left out).
func vectorsFS(tb testing.TB) fstest.MapFS {
	tb.Helper()
	m := fstest.MapFS{}
	err := fs.WalkDir(os.DirFS(vectorsDir), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(p, "cases/") {
			return err
		}
		b, err := os.ReadFile(path.Join(vectorsDir, p))
		m[p] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// TestBundleRoundTrip: a bundle read and written again gives the same files.
func TestBundleRoundTrip(t *testing.T) {
	fsys := vectorsFS(t)
	in, err := consortium.ReadBundle(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Logs) != 5 || len(in.Heads) != 5 || len(in.Checkpoints) != 5 {
		t.Fatalf("got %d logs, %d heads notes, %d checkpoint sets, want 5 each", len(in.Logs), len(in.Heads), len(in.Checkpoints))
	}
	out := mapWriter{}
	if err := consortium.WriteBundle(out, in); err != nil {
		t.Fatal(err)
	}
	for name, b := range out {
		if f := fsys[name]; f == nil || !bytes.Equal(f.Data, b) {
			t.Errorf("%s: written differently from the bundle read", name)
		}
	}
}

// TestReadBundleRefuses: every malformed bundle is refused with an error naming the file.
func TestReadBundleRefuses(t *testing.T) {
	tests := []struct {
		name string
		mod  func(m fstest.MapFS)
		want string
	}{
		{"unknown top-level file", func(m fstest.MapFS) { m["equivocation.bin"] = &fstest.MapFile{Data: []byte("x")} }, `unknown file "equivocation.bin"`},
		{"evidence not .bin", func(m fstest.MapFS) { m["evidence/alpha.txt"] = &fstest.MapFile{Data: []byte("x")} }, `unknown file "evidence/alpha.txt"`},
		{"no genesis", func(m fstest.MapFS) { delete(m, "genesis.bin") }, "no genesis.bin"},
		{"bad base64", func(m fstest.MapFS) { m["logs/alpha.b64"].Data = []byte("!!!\n") }, "logs/alpha.b64: line 1 (entry 0) is not base64"},
		{"empty line", func(m fstest.MapFS) { m["logs/alpha.b64"].Data = append([]byte("\n"), m["logs/alpha.b64"].Data...) }, "logs/alpha.b64: line 1 is empty"},
		{"bad member id", func(m fstest.MapFS) { m["logs/Alpha.b64"] = m["logs/alpha.b64"] }, "logs/Alpha.b64"},
		{"leaves without log", func(m fstest.MapFS) { m["logs/zulu.leaves"] = m["logs/alpha.leaves"] }, "logs/zulu.leaves without logs/zulu.b64"},
		{"bad leaf hash", func(m fstest.MapFS) { m["logs/alpha.leaves"].Data = []byte("00\n") }, "logs/alpha.leaves: line 1 is not 64 hex digits"},
		{"checkpoint numbered 0", func(m fstest.MapFS) { m["checkpoints/alpha.0.txt"] = m["checkpoints/alpha.txt"] }, "checkpoints/alpha.0.txt"},
		{"checkpoint numbered 01", func(m fstest.MapFS) { m["checkpoints/alpha.01.txt"] = m["checkpoints/alpha.txt"] }, "checkpoints/alpha.01.txt"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := vectorsFS(t)
			for k, v := range m {
				m[k] = &fstest.MapFile{Data: bytes.Clone(v.Data)}
			}
			tc.mod(m)
			_, err := consortium.ReadBundle(m)
			if err == nil || !errors.Is(err, consortium.ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want ErrMalformed mentioning %q", err, tc.want)
			}
		})
	}
}

// TestHeadsNote: a heads note verifies with its signer's key only, in canonical form only.
func TestHeadsNote(t *testing.T) {
	g := fixture.Genesis(1, fixture.Members("alpha", "bravo")...)
	head := func(m string, size int) consortium.LogHead {
		l := fixture.NewLog(g.ID, fixture.Key(m))
		for i := range size {
			l.Append(fixture.Add(fixture.At(int64(i)), fixture.PDQ(i)))
		}
		cp, err := consortium.OpenCheckpoint(g.ID, g, l.Checkpoint())
		if err != nil {
			t.Fatal(err)
		}
		h, err := consortium.HeadOf(cp)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	heads := []consortium.LogHead{head("alpha", 3), head("bravo", 1)}
	at := time.UnixMilli(fixture.At(1234))
	msg, err := consortium.SignHeads(g.ID, fixture.Key("alpha"), at, heads)
	if err != nil {
		t.Fatal(err)
	}
	h, err := consortium.OpenHeads(g.ID, g, msg)
	if err != nil {
		t.Fatal(err)
	}
	if h.Signer != "alpha" || !h.Time.Equal(at) || len(h.Heads) != 2 {
		t.Errorf("got %+v", h)
	}
	if hd, ok := h.Head("bravo"); !ok || hd.Size != 1 {
		t.Errorf("Head(bravo): got %+v %v, want size 1", hd, ok)
	}
	bad := []struct {
		name string
		msg  []byte
		want error
	}{
		{"text changed", bytes.Replace(msg, []byte("log alpha 3"), []byte("log alpha 4"), 1), consortium.ErrBadSignature},
		{"a head its author never signed", mustSignHeads(t, g.ID, "alpha", at, []consortium.LogHead{{Member: "alpha", Size: 3, Root: heads[0].Root, Signature: heads[1].Signature}}), consortium.ErrBadSignature},
		{"signer changed", bytes.Replace(msg, []byte("signer alpha"), []byte("signer bravo"), 1), consortium.ErrBadSignature},
		{"leading zero", bytes.Replace(msg, []byte("log alpha 3"), []byte("log alpha 03"), 1), consortium.ErrMalformed},
		{"unknown signer", bytes.Replace(msg, []byte("signer alpha"), []byte("signer zulu"), 1), consortium.ErrUnknownMember},
		{"not a heads note", []byte("hello\n\n— x AAAA\n"), consortium.ErrMalformed},
	}
	for _, tc := range bad {
		if _, err := consortium.OpenHeads(g.ID, g, tc.msg); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	for _, hs := range [][]consortium.LogHead{
		{heads[1], heads[0]},
		{heads[0], heads[0]},
		{{Member: "alpha", Size: 0, Signature: heads[0].Signature}},
		{{Member: "alpha", Size: 3, Root: heads[0].Root}},
		{{Member: "alpha", Size: 3, Root: heads[0].Root, Signature: "a b"}},
	} {
		if _, err := consortium.SignHeads(g.ID, fixture.Key("alpha"), at, hs); !errors.Is(err, consortium.ErrMalformed) {
			t.Errorf("SignHeads(%v): got %v, want ErrMalformed", hs, err)
		}
	}
}

// FuzzReadBundle: a hostile bundle never panics, and an accepted one writes back to files that read
// the same.
func FuzzReadBundle(f *testing.F) {
	seed := vectorsFS(f)
	f.Add(seed["logs/alpha.b64"].Data, seed["checkpoints/bravo.txt"].Data, seed["heads/alpha.txt"].Data, seed["logs/alpha.leaves"].Data)
	f.Fuzz(func(t *testing.T, log, cp, heads, leaves []byte) {
		m := fstest.MapFS{
			"genesis.bin":           seed["genesis.bin"],
			"logs/alpha.b64":        &fstest.MapFile{Data: log},
			"logs/alpha.leaves":     &fstest.MapFile{Data: leaves},
			"checkpoints/alpha.txt": &fstest.MapFile{Data: cp},
			"heads/alpha.txt":       &fstest.MapFile{Data: heads},
		}
		in, err := consortium.ReadBundle(m)
		if err != nil {
			return
		}
		out := mapWriter{}
		if err := consortium.WriteBundle(out, in); err != nil {
			t.Fatal(err)
		}
		m2 := fstest.MapFS{}
		for k, v := range out {
			m2[k] = &fstest.MapFile{Data: v}
		}
		again, err := consortium.ReadBundle(m2)
		if err != nil {
			t.Fatalf("a written bundle does not read: %v", err)
		}
		if len(again.Logs["alpha"]) != len(in.Logs["alpha"]) || !bytes.Equal(again.Heads["alpha"], in.Heads["alpha"]) {
			t.Fatal("a written bundle reads differently")
		}
	})
}

// FuzzOpenHeads: a hostile heads note never panics, and an accepted one has sorted, distinct,
// non-empty logs.
func FuzzOpenHeads(f *testing.F) {
	seed := vectorsFS(f)
	g, err := consortium.ParseGenesis(seed["genesis.bin"].Data)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed["heads/alpha.txt"].Data)
	f.Fuzz(func(t *testing.T, msg []byte) {
		h, err := consortium.OpenHeads(g.ID, g, msg)
		if err != nil {
			return
		}
		for i, x := range h.Heads {
			if x.Size == 0 || (i > 0 && h.Heads[i-1].Member >= x.Member) {
				t.Fatalf("accepted heads note with logs %+v", h.Heads)
			}
		}
	})
}

func mustSignHeads(t *testing.T, cid consortium.ID, signer string, at time.Time, heads []consortium.LogHead) []byte {
	t.Helper()
	b, err := consortium.SignHeads(cid, fixture.Key(signer), at, heads)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
