package memberclient

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/consortium/pdq"
)

// ImageHashes are the hashes of one image file.
type ImageHashes struct {
	Path    string `json:"file"`
	PDQ     string `json:"pdq"`
	Quality int    `json:"quality"`
	MD5     string `json:"md5"`
	SHA256  string `json:"sha256"`
}

// HashImageFile decodes an image (refusing decompression bombs and corrupt files) and returns its
// PDQ hash with quality, and the MD5 and SHA-256 of its bytes.
func HashImageFile(path string) (ImageHashes, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return ImageHashes{}, err
	}
	h, q, _, err := pdq.HashFile(bytes.NewReader(data), pdq.DefaultDecodeOptions())
	if err != nil {
		return ImageHashes{}, fmt.Errorf("%s: %w", path, err)
	}
	m := md5.Sum(data)
	s := sha256.Sum256(data)
	return ImageHashes{Path: path, PDQ: h.String(), Quality: q, MD5: hex.EncodeToString(m[:]), SHA256: hex.EncodeToString(s[:])}, nil
}

// ImageSignal is one signal of an image, with its quality (-1: none).
type ImageSignal struct {
	Signal  consortium.Signal
	Quality int
}

// Signals returns the image's PDQ signal (with its quality), MD5 and SHA-256, in that order.
func (h ImageHashes) Signals() ([]ImageSignal, error) {
	var out []ImageSignal
	for _, s := range []struct {
		typ, v string
		q      int
	}{{"pdq", h.PDQ, h.Quality}, {"md5", h.MD5, -1}, {"sha256", h.SHA256, -1}} {
		sig, err := consortium.ParseSignal(s.typ, s.v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", h.Path, err)
		}
		out = append(out, ImageSignal{sig, s.q})
	}
	return out, nil
}

// WriteNew writes a file that must not exist yet.
func WriteNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		if os.IsExist(err) {
			return fmt.Errorf("%s exists; not overwriting it", path)
		}
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// The audit bundle's format (a directory of genesis, logs, checkpoints, heads notes and evidence)
// belongs to consortium: see [consortium.ReadBundle] and section 11 of docs/PROTOCOL.md.

// dirWriter writes a bundle's files under a new directory, readable by their owner only: the
// bundle holds the whole shared set.
type dirWriter struct{ root *os.Root }

func (w dirWriter) WriteFile(name string, data []byte) error {
	if dir := path.Dir(name); dir != "." {
		if err := w.root.MkdirAll(dir, 0o700); err != nil {
			return err
		}
	}
	f, err := w.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// WriteBundle writes a bundle into dir, which must not exist yet.
func WriteBundle(dir string, in consortium.AuditInput) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s exists; not overwriting it", dir)
		}
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	if err := consortium.WriteBundle(dirWriter{root}, in); err != nil {
		return fmt.Errorf("write bundle %s: %w", dir, err)
	}
	return nil
}

// ReadBundle reads the bundle in dir.
func ReadBundle(dir string) (consortium.AuditInput, error) {
	in, err := consortium.ReadBundle(os.DirFS(dir))
	if err != nil {
		return in, fmt.Errorf("%s: %w", dir, err)
	}
	return in, nil
}
