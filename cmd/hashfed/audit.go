package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashfed/hashfed/consortium"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// An audit bundle is a directory an auditor can read with any tool (the layout of
// testdata/vectors):
//
//	genesis.bin               the SignedGenesis
//	logs/<member>.b64         the log's entries, one base64 line each
//	logs/<member>.leaves      the leaf hash of each entry, one hex line each (lets an audit name an
//	                          altered entry)
//	checkpoints/<member>.txt  the log's checkpoint with its cosignatures (more files, .1.txt, ...,
//	                          when several were collected)
//	evidence/<member>.bin     equivocation evidence

func runAudit(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 && args[0] == "export" {
		return auditExport(ctx, e, args[1:])
	}
	fs := flagSet(e, "audit", "[--bundle DIR | --node ADDR] [--at TIME] [--require-cosignatures K] [--json]")
	var nf nodeFlags
	nf.register(fs, e)
	bundle := fs.String("bundle", "", "audit this bundle directory (hashfed audit export writes one) instead of a running node")
	at := fs.String("at", "", "compute the state at this time (RFC 3339)")
	k := fs.Int("require-cosignatures", 0, "fail a log whose checkpoint has fewer cosignatures")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	var opt consortium.AuditOptions
	if *at != "" {
		t, err := time.Parse(time.RFC3339, *at)
		if err != nil {
			return usageErr("--at: %v", err)
		}
		opt.Until = t
	}
	opt.RequireCosignatures = *k
	var in consortium.AuditInput
	var err error
	if *bundle != "" {
		in, err = readBundle(*bundle)
	} else {
		in, err = fetchBundle(ctx, &nf)
	}
	if err != nil {
		return err
	}
	r := consortium.Audit(in, opt)
	if *asJSON {
		b, _ := json.MarshalIndent(r, "", "  ")
		fmt.Fprintln(e.stdout, string(b))
	} else {
		fmt.Fprint(e.stdout, r.String())
	}
	if !r.OK {
		return errSilent
	}
	return nil
}

func auditExport(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "audit export", "--out DIR")
	var nf nodeFlags
	nf.register(fs, e)
	out := fs.String("out", "", "the bundle directory to write (must not exist)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usageErr("audit export needs --out DIR")
	}
	in, err := fetchBundle(ctx, &nf)
	if err != nil {
		return err
	}
	if err := writeBundle(*out, in); err != nil {
		return err
	}
	n := 0
	for _, l := range in.Logs {
		n += len(l)
	}
	fmt.Fprintf(e.stdout, "wrote %s: %d logs, %d entries, %d evidence files\n", *out, len(in.Logs), n, len(in.Evidence))
	return nil
}

// fetchBundle reads the audit bundle from a node's member API.
func fetchBundle(ctx context.Context, nf *nodeFlags) (consortium.AuditInput, error) {
	in := consortium.AuditInput{Logs: consortium.Logs{}, Leaves: map[string][]consortium.Hash{}, Checkpoints: map[string][][]byte{}}
	c, err := nf.dial()
	if err != nil {
		return in, err
	}
	defer c.Close()
	cctx, cancel := c.ctx(ctx, 0)
	defer cancel()
	stream, err := c.ExportLogs(cctx, &pb.ExportLogsRequest{})
	if err != nil {
		return in, c.callErr(err)
	}
	for {
		ch, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return in, c.callErr(err)
		}
		switch {
		case len(ch.Genesis) > 0:
			in.Genesis = ch.Genesis
		case len(ch.Evidence) > 0:
			in.Evidence = append(in.Evidence, ch.Evidence)
		default:
			if uint64(len(in.Logs[ch.Member])) != ch.Start {
				return in, fmt.Errorf("node sent entries of %s from %d, expected %d", ch.Member, ch.Start, len(in.Logs[ch.Member]))
			}
			in.Logs[ch.Member] = append(in.Logs[ch.Member], ch.Entries...)
			for _, en := range ch.Entries {
				in.Leaves[ch.Member] = append(in.Leaves[ch.Member], consortium.LeafHash(en))
			}
			if len(ch.Checkpoint) > 0 {
				in.Checkpoints[ch.Member] = append(in.Checkpoints[ch.Member], ch.Checkpoint)
			}
		}
	}
	return in, nil
}

func writeBundle(dir string, in consortium.AuditInput) error {
	if _, err := os.Stat(dir); err == nil {
		return fmt.Errorf("%s exists; not overwriting it", dir)
	}
	for _, d := range []string{"logs", "checkpoints", "evidence"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "genesis.bin"), in.Genesis, 0o644); err != nil {
		return err
	}
	for m, entries := range in.Logs {
		var b, h strings.Builder
		for i, en := range entries {
			b.WriteString(base64.StdEncoding.EncodeToString(en))
			b.WriteByte('\n')
			leaf := consortium.LeafHash(en)
			if i < len(in.Leaves[m]) {
				leaf = in.Leaves[m][i]
			}
			h.WriteString(hex.EncodeToString(leaf[:]))
			h.WriteByte('\n')
		}
		if err := os.WriteFile(filepath.Join(dir, "logs", m+".b64"), []byte(b.String()), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "logs", m+".leaves"), []byte(h.String()), 0o644); err != nil {
			return err
		}
	}
	for m, cps := range in.Checkpoints {
		for i, cp := range cps {
			name := m + ".txt"
			if i > 0 {
				name = fmt.Sprintf("%s.%d.txt", m, i)
			}
			if err := os.WriteFile(filepath.Join(dir, "checkpoints", name), cp, 0o644); err != nil {
				return err
			}
		}
	}
	for i, ev := range in.Evidence {
		if err := os.WriteFile(filepath.Join(dir, "evidence", fmt.Sprintf("%d.bin", i)), ev, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// readBundle reads an audit bundle directory, naming the file and line of anything malformed.
func readBundle(dir string) (consortium.AuditInput, error) {
	in := consortium.AuditInput{Logs: consortium.Logs{}, Leaves: map[string][]consortium.Hash{}, Checkpoints: map[string][][]byte{}}
	var err error
	if in.Genesis, err = os.ReadFile(filepath.Join(dir, "genesis.bin")); err != nil {
		return in, fmt.Errorf("bundle %s: %w", dir, err)
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "logs", "*.b64"))
	for _, p := range logs {
		m := strings.TrimSuffix(filepath.Base(p), ".b64")
		err := eachLine(p, func(n int, line string) error {
			en, err := base64.StdEncoding.DecodeString(line)
			if err != nil {
				return fmt.Errorf("entry %d is not base64: %v", n-1, err)
			}
			in.Logs[m] = append(in.Logs[m], en)
			return nil
		})
		if err != nil {
			return in, err
		}
		lp := strings.TrimSuffix(p, ".b64") + ".leaves"
		if _, err := os.Stat(lp); err == nil {
			err := eachLine(lp, func(n int, line string) error {
				b, err := hex.DecodeString(line)
				if err != nil || len(b) != consortium.HashSize {
					return fmt.Errorf("leaf hash %d is not 64 hex digits", n-1)
				}
				in.Leaves[m] = append(in.Leaves[m], consortium.Hash(b))
				return nil
			})
			if err != nil {
				return in, err
			}
		}
	}
	cps, _ := filepath.Glob(filepath.Join(dir, "checkpoints", "*.txt"))
	slices.Sort(cps)
	for _, p := range cps {
		m, _, _ := strings.Cut(strings.TrimSuffix(filepath.Base(p), ".txt"), ".")
		b, err := os.ReadFile(p)
		if err != nil {
			return in, err
		}
		in.Checkpoints[m] = append(in.Checkpoints[m], b)
	}
	evs, _ := filepath.Glob(filepath.Join(dir, "evidence", "*.bin"))
	for _, p := range evs {
		b, err := os.ReadFile(p)
		if err != nil {
			return in, err
		}
		in.Evidence = append(in.Evidence, b)
	}
	return in, nil
}

// eachLine calls fn with each non-empty line of a file and its 1-based number.
func eachLine(path string, fn func(n int, line string) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 256<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if err := fn(n, line); err != nil {
			return fmt.Errorf("%s line %d: %w", path, n, err)
		}
	}
	return sc.Err()
}
