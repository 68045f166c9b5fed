// Command hashfed runs a node of a hash-sharing consortium and does every journey around it: keys,
// the genesis, serving, adding and revoking hashes, matching, exporting, status, audits and a demo.
// Run `hashfed help` for the list. The benchmarks are a separate command, hashfed-bench, so that
// the test keys they use are not linked into the binary members deploy.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	_ "github.com/hashfed/hashfed/internal/jpegturbo" // libjpeg-turbo decodes JPEGs when built with cgo
)

// command is one subcommand: a thin run(ctx, args) over the packages.
type command struct {
	name, args, summary string
	run                 func(ctx context.Context, e *env, args []string) error
}

// env is what a command may touch: its streams and environment. Only main exits.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

var commands []command

func init() {
	commands = []command{
		{"keygen", "--id ID [--out FILE]", "make a member key pair (ID.key, mode 0600, and ID.pub)", runKeygen},
		{"genesis", "draft|sign|finalize|show ...", "found a consortium: draft the genesis, each founder signs, finalize", runGenesis},
		{"serve", "--config FILE [flags]", "run a node", runServe},
		{"add", "TYPE VALUE | --image FILE... | --video FILE... [--label L]...", "add hashes to your log (hashes an image into pdq, md5 and sha256, a video into vpdq parts, md5 and sha256)", runAdd},
		{"revoke", "TYPE VALUE | --index N  --reason R", "withdraw one of your adds", runRevoke},
		{"dispute", "TYPE VALUE --stance S [--text T]", "record your opinion on a signal others list", runDispute},
		{"import", "FILE [--format te|csv|jsonl]", "add hashes in bulk from a file", runImport},
		{"bank", "list | show NAME | add NAME TYPE VALUE... | add NAME --file FILE | remove NAME ... | drop NAME --yes", "your node's local banks: private lists (NCMEC, StopNCII, your own) matched by your node only, never shared", runBank},
		{"hash", "FILE...", "MD5 and SHA-256 of any file, PDQ (with quality) of images, vPDQ of videos", runHash},
		{"match", "TYPE VALUE | FILE | --image FILE [--radius R] [--json]", "match a hash, an image or a video (vPDQ) against the shared set", runMatch},
		{"feed", "[-f] [--cursor CURSOR] [--json]", "every stored entry in order, resumable from a cursor (-f: keep following)", runFeed},
		{"export", "[--at TIME] [--format te|csv|jsonl]", "write the shared set, now or at a past time", runExport},
		{"status", "[--json]", "the node: peers, every log's head and lag, cosignatures, counts, equivocations", runStatus},
		{"roster", "show|propose|endorse ...", "roster changes: admit or remove members, change the quorum", runRoster},
		{"certify", "TYPE VALUE... --category C --reason R", "put an account or content on the protected list (civil society, members)", runCertify},
		{"uncertify", "CERTIFICATION [--reason R]", "withdraw one of your certifications", runUncertify},
		{"certifications", "[--json]", "the protected list: every certification in force", runCertifications},
		{"refer", "TYPE VALUE... --basis B [--deadline 1h] [--to ID]...", "refer content to members (referral authorities)", runRefer},
		{"referrals", "[--all] [--json]", "the referrals open for you, or all of them with answers and delays", runReferrals},
		{"answer", "REFERRAL listed|declined [--reason R]", "answer a referral addressed to you", runAnswer},
		{"version", "", "this build's version (also hashfed --version)", runVersion},
		{"audit", "[--bundle DIR | --node ADDR] [--at TIME] [--require-answers] [--json] [--report FILE] | audit export --out DIR", "verify every log, the roster and the state; export an audit bundle", runAudit},
		{"report", "[--from DATE] [--to DATE] [--bundle DIR] [--out FILE]", "a transparency report of a period (HTML with charts, or JSON) that audit --report recomputes", runReport},
		{"demo", "[--dir DIR]", "a local consortium doing its whole story, in under 30 s", runDemo},
	}
}

func main() { os.Exit(mainExit()) }

// mainExit runs the command line and returns the exit code: 0 on success, 1 on failure, 2 on a
// usage error.
func mainExit() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	err := run(ctx, e, os.Args[1:])
	var xe *exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &xe):
		if xe.err != nil {
			fmt.Fprintf(os.Stderr, "hashfed: %v\n", xe.err)
		}
		return xe.code
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(os.Stderr, "hashfed: %v\n", err)
		return 2
	case errors.Is(err, errSilent):
		return 1
	default:
		fmt.Fprintf(os.Stderr, "hashfed: %v\n", err)
		return 1
	}
}

// errUsage marks a command line that cannot be run as typed; errSilent a failure already reported.
var (
	errUsage  = errors.New("usage")
	errSilent = errors.New("failed")
)

// exitError is a failure with an exit code of its own: match exits 1 when nothing matched (err
// nil: nothing more to say) and 2 on an error, like grep.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

func usageErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}

func run(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(e.stdout)
		return nil
	}
	if args[0] == "--version" || args[0] == "-version" {
		return runVersion(ctx, e, args[1:])
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(ctx, e, args[1:])
		}
	}
	return usageErr("unknown command %q (run hashfed help)", args[0])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "hashfed: a node of a hash-sharing consortium, with no central operator.")
	fmt.Fprintln(w, "\nUsage: hashfed COMMAND [flags] [args]\n\nCommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-9s %s\n            %s\n", c.name, c.summary, c.args)
	}
	fmt.Fprintln(w, "\nCommands that talk to a node take --node ADDR (default $HASHFED_NODE or 127.0.0.1:7401; unix:PATH for a socket)")
	fmt.Fprintln(w, "and --token TOKEN (default $HASHFED_TOKEN). Run hashfed COMMAND -h for a command's flags.")
}

// flagSet returns a flag set for a command. Asked for with -h or --help, its usage goes to
// stdout (and the command exits 0); a bad flag is an error of [parse], which main prints once.
func flagSet(e *env, name, args string) *flag.FlagSet {
	fs := flag.NewFlagSet("hashfed "+name, flag.ContinueOnError)
	failed := &parseFailed{}
	fs.SetOutput(failed)
	fs.Usage = func() {
		if failed.seen {
			return
		}
		fmt.Fprintf(e.stdout, "Usage: hashfed %s %s\n\nFlags:\n", name, args)
		fs.SetOutput(e.stdout)
		fs.PrintDefaults()
		fs.SetOutput(failed)
	}
	return fs
}

// parseFailed is a flag set's output: the flag package writes there a parse error before it calls
// Usage (and nothing before it prints the help asked for). The error is dropped: Parse returns it
// too, and [parse] passes it on to be printed once.
type parseFailed struct{ seen bool }

func (p *parseFailed) Write(b []byte) (int, error) {
	p.seen = true
	return len(b), nil
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "--h", "help":
		return true
	}
	return false
}

// stepsHelp prints the steps of a command that has steps (genesis, roster) to stdout.
func stepsHelp(e *env, name string) error {
	for _, c := range commands {
		if c.name == name {
			fmt.Fprintf(e.stdout, "Usage: hashfed %s %s\n\n%s.\nRun hashfed %s STEP -h for a step's flags.\n", name, c.args, c.summary, name)
		}
	}
	return nil
}

// parse parses flags that may come before, between or after positional arguments, and returns the
// positional ones.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %v (run %s -h for its flags)", errUsage, err, fs.Name())
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// listFlag is a flag that may be given several times.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }
