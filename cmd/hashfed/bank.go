package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/consortium/hashlist"
	"github.com/hashfed/hashfed/internal/memberclient"
	"github.com/hashfed/hashfed/store"
)

// The local bank commands: a platform's private lists on its own node (docs/API.md, "Local
// banks"), matched by that node only and never shared. The node serves them on its HTTP API.

func runBank(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usageErr("bank needs a step: list, show, add, remove or drop")
	}
	if isHelp(args[0]) {
		if err := stepsHelp(e, "bank"); err != nil {
			return err
		}
		fmt.Fprint(e.stdout, bankHelp)
		return nil
	}
	switch args[0] {
	case "list":
		return bankList(ctx, e, args[1:])
	case "show":
		return bankShow(ctx, e, args[1:])
	case "add":
		return bankApply(ctx, e, "add", args[1:])
	case "remove":
		return bankApply(ctx, e, "remove", args[1:])
	case "drop":
		return bankDrop(ctx, e, args[1:])
	}
	return usageErr("unknown bank step %q: want list, show, add, remove or drop", args[0])
}

const bankHelp = `
Steps:
  list                      the local banks and their sizes
  show NAME                 a bank's entries as a hash list (--format te|csv|pytx-csv|jsonl, --out FILE)
  add NAME TYPE VALUE...    add signals (--label, --content-id, --note apply to each)
  add NAME --file FILE      add a list: te, csv, pytx-csv, jsonl, or a programme's ncmec (XML) or
                            stopncii (JSON) file with its own deletions; --replace: the bank becomes the list
  remove NAME TYPE VALUE... remove signals (or --file FILE: every signal of a list)
  drop NAME --yes           delete a bank and everything in it

Local banks are this node's own: never in your log, never gossiped; hashfed match reports their
hits as LOCAL MATCH. They live on the node's HTTP API: --http ADDR (default $HASHFED_HTTP, else the
address the node at --node reports), with the member API's --token.
`

// bankFlags are the flags of every bank step: the member API (to find the HTTP API) and the HTTP
// API itself.
type bankFlags struct {
	nodeFlags
	http string
}

func (f *bankFlags) register(fs *flag.FlagSet, e *env) {
	f.nodeFlags.register(fs, e)
	fs.StringVar(&f.http, "http", e.getenv("HASHFED_HTTP"), "the node's HTTP API, host:port ($HASHFED_HTTP; default: the address the node at --node reports)")
}

// client returns a client of the node's HTTP API, asking the node at --node for its address when
// --http is not given.
func (f *bankFlags) client(ctx context.Context) (*memberclient.BankClient, error) {
	addr := f.http
	if addr == "" {
		st, err := fetchStatus(ctx, &f.nodeFlags)
		if err != nil {
			return nil, fmt.Errorf("finding the node's HTTP API (or give --http): %w", err)
		}
		if st.HttpAddress == "" {
			return nil, fmt.Errorf("the node at %s has its HTTP API off ([http] listen in its config): local banks are served there", f.addr)
		}
		addr = reachable(st.HttpAddress, f.addr)
	}
	return memberclient.NewBankClient(addr, f.token, f.timeout)
}

// reachable turns the address a node listens on into one to dial: an unspecified host (0.0.0.0,
// ::) becomes the member API's host, or 127.0.0.1 when that is a unix socket.
func reachable(listen, member string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if h, _, err := net.SplitHostPort(member); err == nil && !strings.HasPrefix(member, "unix:") && h != "" {
			host = h
		}
	}
	return net.JoinHostPort(host, port)
}

func bankList(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "bank list", "[--json]")
	var bf bankFlags
	bf.register(fs, e)
	asJSON := fs.Bool("json", false, "print the node's JSON: {\"banks\":[{\"name\":...,\"size\":...}]}")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("bank list takes no arguments, got %q", pos)
	}
	c, err := bf.client(ctx)
	if err != nil {
		return err
	}
	banks, err := c.List(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		if banks == nil {
			banks = []memberclient.Bank{}
		}
		b, _ := json.MarshalIndent(map[string]any{"banks": banks}, "", "  ")
		fmt.Fprintln(e.stdout, string(b))
		return nil
	}
	if len(banks) == 0 {
		fmt.Fprintln(e.stdout, "no local banks (add one with hashfed bank add NAME ...)")
		return nil
	}
	fmt.Fprintf(e.stdout, "%-20s %10s\n", "BANK", "ENTRIES")
	for _, b := range banks {
		fmt.Fprintf(e.stdout, "%-20s %10d\n", b.Name, b.Size)
	}
	return nil
}

func bankShow(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "bank show", "NAME [--format te|csv|pytx-csv|jsonl] [--out FILE]")
	var bf bankFlags
	bf.register(fs, e)
	format := fs.String("format", "te", "te (TYPE VALUE per line), csv, pytx-csv or jsonl (with labels, content ids and notes)")
	out := fs.String("out", "", "write the list to this file instead of stdout")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("bank show wants one bank NAME, got %d arguments", len(pos))
	}
	if err := store.CheckBankName(pos[0]); err != nil {
		return usageErr("%v", err)
	}
	if _, err := hashlist.ParseFormat(*format); err != nil {
		return usageErr("--format: %v", err)
	}
	c, err := bf.client(ctx)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := c.Get(ctx, pos[0], *format, &b); err != nil {
		return err
	}
	if *out == "" {
		_, err := e.stdout.Write(b.Bytes())
		return err
	}
	if err := os.WriteFile(*out, b.Bytes(), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s: local bank %s as %s (%d bytes; keep it under the bank's terms: it is not for sharing)\n", *out, pos[0], *format, b.Len())
	return nil
}

// bankApply is bank add and bank remove: signals from the arguments or a list file.
func bankApply(ctx context.Context, e *env, step string, args []string) error {
	usage := "NAME TYPE VALUE... [--label L]... [--content-id ID] [--note TEXT] | NAME --file FILE [--format F] [--replace]"
	if step == "remove" {
		usage = "NAME TYPE VALUE... | NAME --file FILE [--format te|csv|pytx-csv|jsonl]"
	}
	fs := flagSet(e, "bank "+step, usage)
	var bf bankFlags
	bf.register(fs, e)
	file := fs.String("file", "", "read the signals from this list file (- for stdin)")
	format := fs.String("format", "", "the file's format: te, csv, pytx-csv, jsonl (default from its name), or for add ncmec (NCMEC's XML) or stopncii (StopNCII's JSON)")
	var labels listFlag
	var contentID, note *string
	var replace *bool
	if step == "add" {
		fs.Var(&labels, "label", "a label of each signal given as arguments (repeatable; kept as written: a local bank's labels are never shared)")
		contentID = fs.String("content-id", "", "the content id of the signals given as arguments")
		note = fs.String("note", "", "a note on the signals given as arguments")
		replace = fs.Bool("replace", false, "with --file: the bank becomes exactly the file's signals (the others are deleted)")
	}
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usageErr("bank %s wants a bank NAME first", step)
	}
	name, pos := pos[0], pos[1:]
	if err := store.CheckBankName(name); err != nil {
		return usageErr("%v", err)
	}
	var body io.Reader
	var f hashlist.Format
	var wanted int
	switch {
	case *file != "" && len(pos) > 0:
		return usageErr("bank %s: give signals as TYPE VALUE arguments or --file, not both", step)
	case *file != "":
		if step == "add" && (len(labels) > 0 || *contentID != "" || *note != "") {
			return usageErr("--label, --content-id and --note apply to signals given as arguments; a file carries its own")
		}
		if f, err = bankFileFormat(step, *file, *format); err != nil {
			return err
		}
		if *file == "-" {
			body = e.stdin
		} else {
			fh, err := os.Open(*file)
			if err != nil {
				return err
			}
			defer fh.Close()
			body = fh
		}
	case len(pos) == 0:
		return usageErr("bank %s %s: give TYPE VALUE pairs or --file FILE", step, name)
	case len(pos)%2 != 0:
		return usageErr("bank %s: signals come as TYPE VALUE pairs, got %d arguments after the bank name", step, len(pos))
	default:
		if *format != "" {
			return usageErr("--format applies to --file")
		}
		if step == "add" && *replace {
			return usageErr("--replace applies to --file (the bank would become just these signals: use bank drop, then add)")
		}
		var b bytes.Buffer
		w, _ := hashlist.NewWriter(&b, hashlist.JSONL)
		for i := 0; i < len(pos); i += 2 {
			sig, err := consortium.ParseSignal(pos[i], pos[i+1])
			if err != nil {
				return err
			}
			rec := hashlist.Record{Type: sig.Type.String(), Value: sig.Text()}
			if step == "add" {
				rec.Labels, rec.ContentID, rec.Note = labels, *contentID, *note
			}
			if err := w.Write(rec); err != nil {
				return err
			}
		}
		if err := w.Flush(); err != nil {
			return err
		}
		body, f, wanted = &b, hashlist.JSONL, len(pos)/2
	}
	mode := memberclient.BankAdd
	switch {
	case step == "remove":
		mode = memberclient.BankDelete
	case *replace:
		mode = memberclient.BankReplace
	}
	c, err := bf.client(ctx)
	if err != nil {
		return err
	}
	res, err := c.Apply(ctx, name, string(f), body, mode)
	if err != nil {
		return err
	}
	if step == "add" {
		fmt.Fprintf(e.stdout, "local bank %s: %d added, %d updated, %d deleted, %d skipped; %d entries now\n", name, res.Added, res.Updated, res.Deleted, res.Skipped, res.Size)
	} else {
		fmt.Fprintf(e.stdout, "local bank %s: %d deleted; %d entries now\n", name, res.Deleted, res.Size)
		if wanted > res.Deleted {
			fmt.Fprintf(e.stdout, "%d of the %d signals given were not in the bank\n", wanted-res.Deleted, wanted)
		}
	}
	for _, r := range res.Refused {
		fmt.Fprintf(e.stderr, "%s line %d refused: %s\n", *file, r.Line, r.Error)
	}
	if len(res.Refused) > 0 {
		return fmt.Errorf("%d lines of %s refused (the others were applied): fix them and run bank %s again", len(res.Refused), *file, step)
	}
	return nil
}

// bankFileFormat returns the format of a list file: the one given, or one guessed from its name.
func bankFileFormat(step, file, format string) (hashlist.Format, error) {
	switch f := hashlist.Format(format); {
	case format == "" && strings.EqualFold(filepath.Ext(file), ".xml"):
		if step == "add" {
			return hashlist.NCMEC, nil
		}
		return "", usageErr("bank remove --file %s: an XML list is NCMEC's, which carries its own deletions: use bank add --file %s", file, file)
	case format == "":
		return hashlist.FormatOf(file), nil
	case f == hashlist.NCMEC || f == hashlist.StopNCII:
		if step != "add" {
			return "", usageErr("bank remove --format %s: %s files carry their own deletions: use bank add --file", f, f)
		}
		return f, nil
	default:
		if _, err := hashlist.ParseFormat(format); err != nil {
			if step == "add" {
				return "", usageErr("--format: %v (or ncmec, stopncii)", err)
			}
			return "", usageErr("--format: %v", err)
		}
		return f, nil
	}
}

func bankDrop(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "bank drop", "NAME --yes")
	var bf bankFlags
	bf.register(fs, e)
	yes := fs.Bool("yes", false, "really delete the bank and every entry in it")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("bank drop wants one bank NAME, got %d arguments", len(pos))
	}
	if err := store.CheckBankName(pos[0]); err != nil {
		return usageErr("%v", err)
	}
	c, err := bf.client(ctx)
	if err != nil {
		return err
	}
	if !*yes {
		// Say what would go, so that the operator confirms knowingly.
		banks, err := c.List(ctx)
		if err != nil {
			return err
		}
		for _, b := range banks {
			if b.Name == pos[0] {
				return usageErr("bank drop %s deletes the bank and its %d entries for good: add --yes", b.Name, b.Size)
			}
		}
		return fmt.Errorf("%w %q", memberclient.ErrNoBank, pos[0])
	}
	if err := c.Drop(ctx, pos[0]); err != nil {
		if errors.Is(err, memberclient.ErrNoBank) {
			return fmt.Errorf("bank drop %s: %w", pos[0], err)
		}
		return err
	}
	fmt.Fprintf(e.stdout, "dropped local bank %s\n", pos[0])
	return nil
}
