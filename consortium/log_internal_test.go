package consortium

import (
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

func TestOpenCheckpointStrictness(t *testing.T) {
	seed := sha256.Sum256([]byte("alpha"))
	alpha, _ := NewPrivateKey("alpha", seed[:])
	g := &Genesis{Members: []Member{{ID: "alpha", Key: alpha.Public().Key, Role: 1}}}
	var cid ID
	root := LeafHash([]byte("x"))
	signer := alpha.signerNamed(Origin(cid, "alpha"))

	// Extension lines are refused: hashfed checkpoints carry exactly origin, size and root.
	ext, err := note.Sign(&note.Note{Text: CheckpointText(cid, "alpha", 1, root) + "extra\n"}, signer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenCheckpoint(cid, g, ext); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "extension") {
		t.Errorf("extension line: got %v", err)
	}
	// A non-canonical size ("01") is refused.
	odd, _ := note.Sign(&note.Note{Text: "hashfed/" + cid.String() + "/alpha\n01\n" + strings.SplitN(CheckpointText(cid, "alpha", 1, root), "\n", 3)[2]}, signer)
	if _, err := OpenCheckpoint(cid, g, odd); !errors.Is(err, ErrMalformed) {
		t.Errorf("non-canonical size: got %v", err)
	}
	// Signatures by keys nobody knows are dropped from the stored note, not fatal.
	skey, _, _ := note.GenerateKey(nil, "stranger")
	stranger, _ := note.NewSigner(skey)
	both, _ := note.Sign(&note.Note{Text: CheckpointText(cid, "alpha", 1, root)}, signer, stranger)
	cp, err := OpenCheckpoint(cid, g, both)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(cp.Note), "stranger") || len(cp.Cosigners) != 0 {
		t.Errorf("stranger's signature kept: %q", cp.Note)
	}
}
