package main

import (
	"context"
	"fmt"

	"github.com/hashfed/hashfed/consortium/pdq"
	"github.com/hashfed/hashfed/internal/version"
)

// runVersion prints this build's version, the Go toolchain that built it, and the decoder its
// PDQ hashing uses for JPEG files (libjpeg-turbo in a cgo build, Go's image/jpeg without cgo),
// since the two give hashes a few bits apart.
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
	fmt.Fprintf(e.stdout, "JPEG decoder: %s\n", pdq.JPEGDecoderName())
	return nil
}
