package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"time"

	"github.com/hashfed/hashfed/consortium"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// The audit bundle's format (a directory of genesis, logs, checkpoints, heads notes and evidence)
// belongs to consortium: see [consortium.ReadBundle] and section 11 of docs/PROTOCOL.md.

func runAudit(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 && args[0] == "export" {
		return auditExport(ctx, e, args[1:])
	}
	fs := flagSet(e, "audit", "[--bundle DIR | --node ADDR] [--at TIME] [--require-cosignatures K] [--require-heads K] [--json]")
	var nf nodeFlags
	nf.register(fs, e)
	bundle := fs.String("bundle", "", "audit this bundle directory (hashfed audit export writes one) instead of a running node")
	at := fs.String("at", "", "compute the state at this time (RFC 3339)")
	k := fs.Int("require-cosignatures", 0, "fail a log whose checkpoint has fewer cosignatures by members of the final roster other than its author")
	h := fs.Int("require-heads", 1, "fail unless heads notes of at least this many members of the final roster say which logs exist (0: none required)")
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
	opt.RequireCosignatures, opt.RequireHeads = *k, *h
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
	fmt.Fprintf(e.stdout, "wrote %s: %d logs, %d entries, %d heads notes, %d evidence files\n", *out, len(in.Logs), n, len(in.Heads), len(in.Evidence))
	return nil
}

// fetchBundle reads the audit bundle from a node's member API.
func fetchBundle(ctx context.Context, nf *nodeFlags) (consortium.AuditInput, error) {
	in := consortium.AuditInput{Logs: consortium.Logs{}, Leaves: map[string][]consortium.Hash{}, Checkpoints: map[string][][]byte{}, Heads: map[string][]byte{}}
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
		case len(ch.Heads) > 0:
			in.Heads[ch.Member] = ch.Heads
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

// writeBundle writes a bundle into dir, which must not exist yet.
func writeBundle(dir string, in consortium.AuditInput) error {
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

// readBundle reads the bundle in dir.
func readBundle(dir string) (consortium.AuditInput, error) {
	in, err := consortium.ReadBundle(os.DirFS(dir))
	if err != nil {
		return in, fmt.Errorf("%s: %w", dir, err)
	}
	return in, nil
}
