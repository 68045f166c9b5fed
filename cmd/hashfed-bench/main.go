// Command hashfed-bench runs hashfed's benchmarks: PDQ matching and hashing, ingest, replay, open,
// and propagation, bootstrap and catch-up between nodes on loopback. Each prints one line of
// key=value figures last; docs/BENCHMARKS.md records them with the command that produced them.
//
// It is a separate command from hashfed because it links internal/fixture, whose member keys are
// derived from their names and must never sign anything real; the hashfed binary members deploy
// does not contain them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	_ "github.com/hashfed/hashfed/internal/jpegturbo" // libjpeg-turbo decodes JPEGs when built with cgo
)

// env is what a benchmark may touch: its output streams. Only main exits.
type env struct {
	stdout, stderr io.Writer
}

// errUsage marks a command line that cannot be run as typed.
var errUsage = errors.New("usage")

func usageErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}

func main() { os.Exit(mainExit()) }

// mainExit runs the command line and returns the exit code: 0 on success, 1 on failure, 2 on a
// usage error.
func mainExit() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &env{stdout: os.Stdout, stderr: os.Stderr}
	args := os.Args[1:]
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(e.stdout, "Usage: hashfed-bench match|hash|ingest|replay|open|propagation|bootstrap|catchup|import|video|feed|replica [flags]\n\nThe last line of each is key=value figures. hashfed-bench BENCHMARK -h lists its flags.")
		return 0
	}
	err := runBench(ctx, e, args)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(os.Stderr, "hashfed-bench: %v\n", err)
		return 2
	default:
		fmt.Fprintf(os.Stderr, "hashfed-bench: %v\n", err)
		return 1
	}
}

// newFlags returns the flag set of one benchmark; -h lists its flags on stderr.
func newFlags(e *env, name string) *flag.FlagSet {
	fs := flag.NewFlagSet("hashfed-bench "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	return fs
}

// parseFlags parses a benchmark's flags; benchmarks take no other arguments.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return usageErr("%s takes no argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}
