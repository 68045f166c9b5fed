package consortium_test

import (
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/hashfed/hashfed/consortium"
	"golang.org/x/mod/sumdb/note"
)

func TestKeyRoundTrip(t *testing.T) {
	k, err := consortium.GenerateKey(rand.Reader, "alpha")
	if err != nil {
		t.Fatal(err)
	}
	k2, err := consortium.ParsePrivateKey(k.String() + "\n")
	if err != nil {
		t.Fatalf("ParsePrivateKey: %v", err)
	}
	if k2.String() != k.String() || k2.ID() != "alpha" {
		t.Errorf("round trip: got %q, want %q", k2.String(), k.String())
	}
	pub, err := consortium.ParsePublicKey(k.Public().String())
	if err != nil {
		t.Fatalf("ParsePublicKey: %v", err)
	}
	if !pub.Key.Equal(k.Public().Key) || pub.ID != "alpha" {
		t.Errorf("public round trip: got %v, want %v", pub, k.Public())
	}
	// The text forms are the signed-note key formats, so the note package reads them.
	if _, err := note.NewSigner(k.String()); err != nil {
		t.Errorf("note.NewSigner rejects our private key: %v", err)
	}
	if _, err := note.NewVerifier(k.Public().String()); err != nil {
		t.Errorf("note.NewVerifier rejects our public key: %v", err)
	}
}

func TestKeyRefusals(t *testing.T) {
	k, _ := consortium.GenerateKey(rand.Reader, "alpha")
	good := k.String()
	pubGood := k.Public().String()
	// A fixed key, whose hash (a624fafe) has letters to change the case of.
	fixed, _ := consortium.NewPrivateKey("alpha", make([]byte, 32))
	tests := []struct {
		name, text string
		public     bool
		want       error
		msg        string
	}{
		{"empty", "", false, consortium.ErrInvalidKey, "PRIVATE+KEY"},
		{"public key as private", pubGood, false, consortium.ErrInvalidKey, "PRIVATE+KEY"},
		{"bad base64", "PRIVATE+KEY+alpha+01234567+!!!", false, consortium.ErrInvalidKey, "base64"},
		{"wrong hash", strings.Replace(good, good[len("PRIVATE+KEY+alpha+"):len("PRIVATE+KEY+alpha+")+8], "00000000", 1), false, consortium.ErrInvalidKey, "key hash"},
		{"bad id", strings.Replace(good, "+alpha+", "+Alpha+", 1), false, consortium.ErrInvalidKey, "member id"},
		{"private as public", good, true, consortium.ErrInvalidKey, "member id"},
		{"short public", "alpha+01234567+AQID", true, consortium.ErrInvalidKey, "not an Ed25519"},
		{"upper-case hash", nonCanonicalKeys(fixed.Public().String())[0], true, consortium.ErrInvalidKey, "lower-case hex"},
		{"line break in base64", nonCanonicalKeys(fixed.String())[1], false, consortium.ErrInvalidKey, "canonical base64"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.public {
				_, err = consortium.ParsePublicKey(tc.text)
			} else {
				_, err = consortium.ParsePrivateKey(tc.text)
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("got %v, want %v mentioning %q", err, tc.want, tc.msg)
			}
		})
	}
}

func TestValidateMemberID(t *testing.T) {
	for _, id := range []string{"a", "alpha", "member-2", "0x", strings.Repeat("a", 32)} {
		if err := consortium.ValidateMemberID(id); err != nil {
			t.Errorf("ValidateMemberID(%q) = %v, want nil", id, err)
		}
	}
	for _, id := range []string{"", "-a", "Alpha", "a_b", "a b", "é", strings.Repeat("a", 33)} {
		if err := consortium.ValidateMemberID(id); !errors.Is(err, consortium.ErrInvalidMemberID) {
			t.Errorf("ValidateMemberID(%q) = %v, want ErrInvalidMemberID", id, err)
		}
	}
}

// keySeeds are fixed key texts for the key fuzz targets: a valid private and public key of one
// member.
func keySeeds(f *testing.F) (private, public string) {
	k, err := consortium.NewPrivateKey("alpha", make([]byte, 32))
	if err != nil {
		f.Fatal(err)
	}
	return k.String(), k.Public().String()
}

// nonCanonicalKeys returns texts that name the same key as text ("<prefix><id>+<hash>+<base64>")
// written another way: the hash in upper case, a CR or LF inside the base64 (which
// encoding/base64 skips).
func nonCanonicalKeys(text string) []string {
	rest, _ := strings.CutPrefix(text, "PRIVATE+KEY+")
	prefix := text[:len(text)-len(rest)]
	p := strings.SplitN(rest, "+", 3) // id, hash, base64 (which may hold '+')
	head := prefix + p[0] + "+"
	return []string{
		head + strings.ToUpper(p[1]) + "+" + p[2],
		head + p[1] + "+" + p[2][:10] + "\n" + p[2][10:],
		head + p[1] + "+" + p[2][:10] + "\r" + p[2][10:],
	}
}

// FuzzParsePrivateKey: any text is either refused with [consortium.ErrInvalidKey] or is the one
// text form of the key it gives (surrounding white space aside), so a key file cannot be written
// two ways.
func FuzzParsePrivateKey(f *testing.F) {
	priv, pub := keySeeds(f)
	seeds := []string{priv, priv + "\n", pub, "", "PRIVATE+KEY+", strings.ToUpper(priv), strings.Replace(priv, "+alpha+", "+a+", 1)}
	for _, s := range append(seeds, nonCanonicalKeys(priv)...) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		k, err := consortium.ParsePrivateKey(text)
		if err != nil {
			if !errors.Is(err, consortium.ErrInvalidKey) {
				t.Fatalf("got %v, want an error wrapping ErrInvalidKey", err)
			}
			return
		}
		if got, want := k.String(), strings.TrimSpace(text); got != want {
			t.Fatalf("accepted %q, which re-encodes as %q", want, got)
		}
		if got := k.Public().ID; got != k.ID() {
			t.Fatalf("public key id %q, want %q", got, k.ID())
		}
	})
}

// FuzzParsePublicKey: any text is either refused with [consortium.ErrInvalidKey] or is the one
// text form of the key it gives (surrounding white space aside).
func FuzzParsePublicKey(f *testing.F) {
	priv, pub := keySeeds(f)
	seeds := []string{pub, " " + pub + "\n", priv, "", "alpha+01234567+AQID", strings.ToUpper(pub)}
	for _, s := range append(seeds, nonCanonicalKeys(pub)...) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		p, err := consortium.ParsePublicKey(text)
		if err != nil {
			if !errors.Is(err, consortium.ErrInvalidKey) {
				t.Fatalf("got %v, want an error wrapping ErrInvalidKey", err)
			}
			return
		}
		if got, want := p.String(), strings.TrimSpace(text); got != want {
			t.Fatalf("accepted %q, which re-encodes as %q", want, got)
		}
	})
}
