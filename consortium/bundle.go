package consortium

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// An audit bundle is a directory that holds everything an auditor needs to verify a consortium
// offline (section 11 of PROTOCOL.md):
//
//	genesis.bin                the SignedGenesis file
//	logs/<member>.b64          the member's log: one entry per line, base64, in log order
//	logs/<member>.leaves       optional: the leaf hash of each entry, one per line, 64 hex digits
//	checkpoints/<member>.txt   a checkpoint of the member's log with its cosignatures;
//	checkpoints/<member>.<n>.txt  more checkpoints of the same log (n = 1, 2, ...)
//	heads/<member>.txt         the latest heads note signed by that member (section 4.5)
//	evidence/<name>.bin        equivocation evidence (written as 0.bin, 1.bin, ...)
//
// Files an auditor may keep beside them and a reader ignores: README.md, state.txt, roots.txt,
// expected.txt, and the directories keys/ and cases/ (the golden vectors use them). Anything else is
// refused, so that no file of a bundle is silently left unread.

// Bundle file limits: a reader refuses larger files.
const (
	maxBundleFile    = 1 << 30
	maxBundleEntries = 1 << 26
)

// bundleInformative are the names at the top of a bundle that readers skip.
var bundleInformative = map[string]bool{"README.md": true, "state.txt": true, "roots.txt": true, "expected.txt": true, "keys": true, "cases": true}

// BundleWriter receives the files of a bundle. Names are slash-separated and relative to the
// bundle's root; WriteFile creates the parent directories it needs. The caller chooses where the
// files go and their permissions (the bundle holds the whole shared set: keep it private).
type BundleWriter interface {
	WriteFile(name string, data []byte) error
}

// WriteBundle writes in as a bundle, every file in a fixed order, so that equal inputs give equal
// bundles. Leaf hashes are written for every entry (the recorded ones where given, else computed).
func WriteBundle(w BundleWriter, in AuditInput) error {
	if err := w.WriteFile("genesis.bin", in.Genesis); err != nil {
		return err
	}
	for _, m := range sortedKeys(in.Logs) {
		if err := ValidateMemberID(m); err != nil {
			return fmt.Errorf("bundle: log %q: %w", m, err)
		}
		var b, h bytes.Buffer
		for i, en := range in.Logs[m] {
			b.WriteString(base64.StdEncoding.EncodeToString(en))
			b.WriteByte('\n')
			leaf := LeafHash(en)
			if i < len(in.Leaves[m]) {
				leaf = in.Leaves[m][i]
			}
			h.WriteString(hex.EncodeToString(leaf[:]))
			h.WriteByte('\n')
		}
		if err := w.WriteFile("logs/"+m+".b64", b.Bytes()); err != nil {
			return err
		}
		if err := w.WriteFile("logs/"+m+".leaves", h.Bytes()); err != nil {
			return err
		}
	}
	for _, m := range sortedKeys(in.Checkpoints) {
		if err := ValidateMemberID(m); err != nil {
			return fmt.Errorf("bundle: checkpoints of %q: %w", m, err)
		}
		for i, cp := range in.Checkpoints[m] {
			name := "checkpoints/" + m + ".txt"
			if i > 0 {
				name = fmt.Sprintf("checkpoints/%s.%d.txt", m, i)
			}
			if err := w.WriteFile(name, cp); err != nil {
				return err
			}
		}
	}
	for _, m := range sortedKeys(in.Heads) {
		if err := ValidateMemberID(m); err != nil {
			return fmt.Errorf("bundle: heads note of %q: %w", m, err)
		}
		if err := w.WriteFile("heads/"+m+".txt", in.Heads[m]); err != nil {
			return err
		}
	}
	for i, ev := range in.Evidence {
		if err := w.WriteFile(fmt.Sprintf("evidence/%d.bin", i), ev); err != nil {
			return err
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// ReadBundle reads an audit bundle (see [WriteBundle]) from fsys, naming the file and line of
// anything malformed. It checks the layout and the line formats only; [Audit] verifies the content.
func ReadBundle(fsys fs.FS) (AuditInput, error) {
	in := AuditInput{Logs: Logs{}, Leaves: map[string][]Hash{}, Checkpoints: map[string][][]byte{}, Heads: map[string][]byte{}}
	top, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return in, fmt.Errorf("%w: bundle: %v", ErrMalformed, err)
	}
	haveGenesis := false
	for _, d := range top {
		name := d.Name()
		switch {
		case bundleInformative[name]:
		case name == "genesis.bin" && !d.IsDir():
			if in.Genesis, err = readBundleFile(fsys, name); err != nil {
				return in, err
			}
			haveGenesis = true
		case name == "logs" && d.IsDir():
			if err := readBundleLogs(fsys, &in); err != nil {
				return in, err
			}
		case name == "checkpoints" && d.IsDir():
			if err := readBundleCheckpoints(fsys, &in); err != nil {
				return in, err
			}
		case name == "heads" && d.IsDir():
			if err := readBundleDir(fsys, "heads", ".txt", func(base string, b []byte) error {
				if err := ValidateMemberID(base); err != nil {
					return err
				}
				in.Heads[base] = b
				return nil
			}); err != nil {
				return in, err
			}
		case name == "evidence" && d.IsDir():
			if err := readBundleDir(fsys, "evidence", ".bin", func(_ string, b []byte) error {
				in.Evidence = append(in.Evidence, b)
				return nil
			}); err != nil {
				return in, err
			}
		default:
			return in, fmt.Errorf("%w: bundle: unknown file %q (not part of the bundle format, so it would go unread)", ErrMalformed, name)
		}
	}
	if !haveGenesis {
		return in, fmt.Errorf("%w: bundle: no genesis.bin", ErrMalformed)
	}
	return in, nil
}

func readBundleFile(fsys fs.FS, name string) ([]byte, error) {
	fi, err := fs.Stat(fsys, name)
	if err != nil {
		return nil, fmt.Errorf("%w: bundle: %v", ErrMalformed, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: bundle: %s is not a regular file", ErrMalformed, name)
	}
	if fi.Size() > maxBundleFile {
		return nil, fmt.Errorf("%w: bundle: %s is %d bytes, at most %d", ErrMalformed, name, fi.Size(), maxBundleFile)
	}
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, fmt.Errorf("%w: bundle: %v", ErrMalformed, err)
	}
	return b, nil
}

// readBundleDir calls fn, in name order, with the base name and content of every file of dir that
// ends in ext; any other file is an error.
func readBundleDir(fsys fs.FS, dir, ext string, fn func(base string, b []byte) error) error {
	ds, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return fmt.Errorf("%w: bundle: %v", ErrMalformed, err)
	}
	for _, d := range ds {
		p := path.Join(dir, d.Name())
		base, ok := strings.CutSuffix(d.Name(), ext)
		if !ok || base == "" || d.IsDir() {
			return fmt.Errorf("%w: bundle: unknown file %q (%s/ holds only <name>%s files)", ErrMalformed, p, dir, ext)
		}
		b, err := readBundleFile(fsys, p)
		if err != nil {
			return err
		}
		if err := fn(base, b); err != nil {
			return fmt.Errorf("%w: bundle: %s: %w", ErrMalformed, p, err)
		}
	}
	return nil
}

func readBundleLogs(fsys fs.FS, in *AuditInput) error {
	leaves := map[string][]byte{}
	err := readBundleDir(fsys, "logs", "", func(name string, b []byte) error {
		if m, ok := strings.CutSuffix(name, ".b64"); ok {
			if err := ValidateMemberID(m); err != nil {
				return err
			}
			return eachBundleLine(b, func(n int, line []byte) error {
				en, err := base64.StdEncoding.DecodeString(string(line))
				if err != nil {
					return fmt.Errorf("line %d (entry %d) is not base64: %v", n, n-1, err)
				}
				// Go's decoder skips carriage returns: a line of "\r" would be an empty entry that
				// writes back as an empty line. Only the one text form of the entry is accepted.
				if base64.StdEncoding.EncodeToString(en) != string(line) {
					return fmt.Errorf("line %d (entry %d) is not canonical base64 (padded, no other characters)", n, n-1)
				}
				in.Logs[m] = append(in.Logs[m], en)
				return nil
			})
		}
		if m, ok := strings.CutSuffix(name, ".leaves"); ok {
			if err := ValidateMemberID(m); err != nil {
				return err
			}
			leaves[m] = b
			return nil
		}
		return fmt.Errorf("not a .b64 or .leaves file")
	})
	if err != nil {
		return err
	}
	for _, m := range sortedKeys(leaves) {
		if _, ok := in.Logs[m]; !ok {
			return fmt.Errorf("%w: bundle: logs/%s.leaves without logs/%s.b64", ErrMalformed, m, m)
		}
		err := eachBundleLine(leaves[m], func(n int, line []byte) error {
			var h Hash
			if len(line) != 2*HashSize {
				return fmt.Errorf("line %d is not 64 hex digits", n)
			}
			if _, err := hex.Decode(h[:], line); err != nil {
				return fmt.Errorf("line %d is not 64 hex digits", n)
			}
			in.Leaves[m] = append(in.Leaves[m], h)
			return nil
		})
		if err != nil {
			return fmt.Errorf("%w: bundle: logs/%s.leaves: %w", ErrMalformed, m, err)
		}
	}
	return nil
}

func readBundleCheckpoints(fsys fs.FS, in *AuditInput) error {
	type numbered struct {
		n    uint64
		note []byte
	}
	all := map[string][]numbered{}
	err := readBundleDir(fsys, "checkpoints", ".txt", func(base string, b []byte) error {
		m, num, dotted := strings.Cut(base, ".")
		if err := ValidateMemberID(m); err != nil {
			return err
		}
		var n uint64
		if dotted {
			var err error
			n, err = strconv.ParseUint(num, 10, 32)
			if err != nil || n == 0 || strconv.FormatUint(n, 10) != num {
				return fmt.Errorf("not named <member>.txt or <member>.<n>.txt with n a decimal number from 1")
			}
		}
		all[m] = append(all[m], numbered{n, b})
		return nil
	})
	if err != nil {
		return err
	}
	for m, cps := range all {
		slices.SortFunc(cps, func(a, b numbered) int { return int(a.n) - int(b.n) })
		for _, c := range cps {
			in.Checkpoints[m] = append(in.Checkpoints[m], c.note)
		}
	}
	return nil
}

// eachBundleLine calls fn with each line of b and its 1-based number. Lines end with "\n" (the last
// one may omit it); an empty line, or a line with a carriage return or other white space, is an
// error.
func eachBundleLine(b []byte, fn func(n int, line []byte) error) error {
	b = bytes.TrimSuffix(b, []byte("\n"))
	if len(b) == 0 {
		return nil
	}
	for n, line := range bytes.Split(b, []byte("\n")) {
		if len(line) == 0 {
			return fmt.Errorf("line %d is empty", n+1)
		}
		if n >= maxBundleEntries {
			return fmt.Errorf("more than %d lines", maxBundleEntries)
		}
		if err := fn(n+1, line); err != nil {
			return err
		}
	}
	return nil
}
