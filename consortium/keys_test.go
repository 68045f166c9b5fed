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
