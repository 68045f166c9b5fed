package main

import (
	"context"
	"fmt"

	"github.com/hashfed/hashfed/internal/version"
)

// runVersion prints this build's version and the Go toolchain that built it.
func runVersion(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "version", "")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("version takes no arguments, got %q", pos[0])
	}
	fmt.Fprintf(e.stdout, "hashfed %s (%s)\n", version.Version(), version.GoVersion())
	return nil
}
