package consortium

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// algEd25519 is the signed-note algorithm byte for a plain Ed25519 key.
const algEd25519 = 0x01

// algCosignatureV1 is the signed-note algorithm byte for a C2SP tlog-cosignature/v1 Ed25519 key.
const algCosignatureV1 = 0x04

// PrivateKey is a member's Ed25519 signing key together with its member id.
//
// Its text form is the private key format of golang.org/x/mod/sumdb/note with the member id as the
// key name: "PRIVATE+KEY+<id>+<8 hex key hash>+<base64 of 0x01 || 32-byte seed>".
type PrivateKey struct {
	id   string
	priv ed25519.PrivateKey
}

// PublicKey is a member's Ed25519 public key together with its member id.
//
// Its text form is the verifier key format of golang.org/x/mod/sumdb/note:
// "<id>+<8 hex key hash>+<base64 of 0x01 || 32-byte public key>".
type PublicKey struct {
	ID  string
	Key ed25519.PublicKey
}

// GenerateKey makes a new member key for the member id, reading randomness from rand.
func GenerateKey(rand io.Reader, id string) (*PrivateKey, error) {
	if err := ValidateMemberID(id); err != nil {
		return nil, err
	}
	_, priv, err := ed25519.GenerateKey(rand)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return &PrivateKey{id: id, priv: priv}, nil
}

// NewPrivateKey makes a member key from a 32-byte Ed25519 seed (used for fixed test vectors).
func NewPrivateKey(id string, seed []byte) (*PrivateKey, error) {
	if err := ValidateMemberID(id); err != nil {
		return nil, err
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: seed is %d bytes, want %d", ErrInvalidKey, len(seed), ed25519.SeedSize)
	}
	return &PrivateKey{id: id, priv: ed25519.NewKeyFromSeed(seed)}, nil
}

// ParsePrivateKey parses the text form of a member's private key. Surrounding white space is
// ignored.
func ParsePrivateKey(text string) (*PrivateKey, error) {
	text = strings.TrimSpace(text)
	rest, ok := strings.CutPrefix(text, "PRIVATE+KEY+")
	if !ok {
		return nil, fmt.Errorf("%w: private key must start with PRIVATE+KEY+", ErrInvalidKey)
	}
	id, hash, key, err := splitKey(rest)
	if err != nil {
		return nil, err
	}
	if len(key) != 1+ed25519.SeedSize || key[0] != algEd25519 {
		return nil, fmt.Errorf("%w: private key for %q is not an Ed25519 seed", ErrInvalidKey, id)
	}
	k := &PrivateKey{id: id, priv: ed25519.NewKeyFromSeed(key[1:])}
	if want := keyHash(id, algEd25519, k.Public().Key); hash != want {
		return nil, fmt.Errorf("%w: key hash of %q is %08x, want %08x", ErrInvalidKey, id, hash, want)
	}
	return k, nil
}

// ParsePublicKey parses the text form of a member's public key.
func ParsePublicKey(text string) (PublicKey, error) {
	id, hash, key, err := splitKey(strings.TrimSpace(text))
	if err != nil {
		return PublicKey{}, err
	}
	if len(key) != 1+ed25519.PublicKeySize || key[0] != algEd25519 {
		return PublicKey{}, fmt.Errorf("%w: public key for %q is not an Ed25519 key", ErrInvalidKey, id)
	}
	pub := ed25519.PublicKey(key[1:])
	if want := keyHash(id, algEd25519, pub); hash != want {
		return PublicKey{}, fmt.Errorf("%w: key hash of %q is %08x, want %08x", ErrInvalidKey, id, hash, want)
	}
	return PublicKey{ID: id, Key: pub}, nil
}

func splitKey(s string) (id string, hash uint32, key []byte, err error) {
	parts := strings.SplitN(s, "+", 3)
	if len(parts) != 3 {
		return "", 0, nil, fmt.Errorf("%w: want <id>+<hash>+<key>", ErrInvalidKey)
	}
	id = parts[0]
	if err := ValidateMemberID(id); err != nil {
		return "", 0, nil, fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	// One key has one text form: the hash in lower-case hex, the key in canonical base64 (which
	// encoding/base64 alone does not ensure: it skips CR and LF).
	h, err := strconv.ParseUint(parts[1], 16, 32)
	if err != nil || len(parts[1]) != 8 || fmt.Sprintf("%08x", h) != parts[1] {
		return "", 0, nil, fmt.Errorf("%w: key hash %q is not 8 lower-case hex digits", ErrInvalidKey, parts[1])
	}
	key, err = base64.StdEncoding.DecodeString(parts[2])
	if err != nil {
		return "", 0, nil, fmt.Errorf("%w: key data is not base64: %v", ErrInvalidKey, err)
	}
	if base64.StdEncoding.EncodeToString(key) != parts[2] {
		return "", 0, nil, fmt.Errorf("%w: key data is not canonical base64 (a line break or padding bits inside)", ErrInvalidKey)
	}
	return id, uint32(h), key, nil
}

// keyHash is the signed-note key hash: the first 4 bytes of SHA-256(name "\n" alg key), big-endian.
func keyHash(name string, alg byte, key []byte) uint32 {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{'\n', alg})
	h.Write(key)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// ID returns the member id the key belongs to.
func (k *PrivateKey) ID() string { return k.id }

// Public returns the matching public key.
func (k *PrivateKey) Public() PublicKey {
	return PublicKey{ID: k.id, Key: k.priv.Public().(ed25519.PublicKey)}
}

// String returns the text form of the private key. Treat it as a secret.
func (k *PrivateKey) String() string {
	pub := k.Public().Key
	data := append([]byte{algEd25519}, k.priv.Seed()...)
	return fmt.Sprintf("PRIVATE+KEY+%s+%08x+%s", k.id, keyHash(k.id, algEd25519, pub), base64.StdEncoding.EncodeToString(data))
}

// Ed25519 returns the raw Ed25519 private key, for uses outside signed notes (a node's TLS
// certificate).
func (k *PrivateKey) Ed25519() ed25519.PrivateKey { return k.priv }

// Sign signs msg with the raw Ed25519 key.
func (k *PrivateKey) Sign(msg []byte) []byte { return ed25519.Sign(k.priv, msg) }

// String returns the text form of the public key.
func (p PublicKey) String() string {
	data := append([]byte{algEd25519}, p.Key...)
	return fmt.Sprintf("%s+%08x+%s", p.ID, keyHash(p.ID, algEd25519, p.Key), base64.StdEncoding.EncodeToString(data))
}

// noteSigner signs notes under an arbitrary key name (a log origin) with a member key.
type noteSigner struct {
	name string
	hash uint32
	sign func([]byte) ([]byte, error)
}

func (s *noteSigner) Name() string                    { return s.name }
func (s *noteSigner) KeyHash() uint32                 { return s.hash }
func (s *noteSigner) Sign(msg []byte) ([]byte, error) { return s.sign(msg) }

// signerNamed returns a signed-note signer for name using this key (algorithm Ed25519).
func (k *PrivateKey) signerNamed(name string) note.Signer {
	return &noteSigner{
		name: name,
		hash: keyHash(name, algEd25519, k.Public().Key),
		sign: func(msg []byte) ([]byte, error) { return ed25519.Sign(k.priv, msg), nil },
	}
}

// verifierNamed returns a signed-note verifier for name with this public key (Ed25519).
func verifierNamed(name string, pub ed25519.PublicKey) (note.Verifier, error) {
	vkey, err := note.NewEd25519VerifierKey(name, pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	return note.NewVerifier(vkey)
}

// ValidateMemberID checks that id is 1 to 32 characters of [a-z0-9-] and starts with a letter or
// digit.
func ValidateMemberID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty", ErrInvalidMemberID)
	}
	if len(id) > 32 {
		return fmt.Errorf("%w: %q is %d characters, at most 32", ErrInvalidMemberID, truncate(id, 40), len(id))
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0:
		default:
			return fmt.Errorf("%w: %q has %q at position %d (want a-z, 0-9 or -, not first)", ErrInvalidMemberID, id, c, i)
		}
	}
	return nil
}

// truncate shortens s for an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
