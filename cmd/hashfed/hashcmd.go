package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/hashfed/hashfed/internal/memberclient"
)

func runHash(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "hash", "FILE... [--json]")
	asJSON := fs.Bool("json", false, "print JSON Lines")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usageErr("hash needs image files (JPEG, PNG, GIF, BMP, TIFF or WebP)")
	}
	failed := 0
	// Files are hashed on every core; the output keeps the order of the command line.
	hashAll(pos, memberclient.HashImageFile, func(path string, h memberclient.ImageHashes, err error) {
		if err != nil {
			fmt.Fprintf(e.stderr, "hashfed: %v\n", err)
			failed++
			return
		}
		if *asJSON {
			b, _ := json.Marshal(h)
			fmt.Fprintln(e.stdout, string(b))
			return
		}
		low := ""
		if h.Quality < 50 {
			low = " (below the default quality gate of 50: too little detail to match reliably)"
		}
		fmt.Fprintf(e.stdout, "%s\n  pdq    %s quality %d%s\n  md5    %s\n  sha256 %s\n", path, h.PDQ, h.Quality, low, h.MD5, h.SHA256)
	})
	if failed > 0 {
		return fmt.Errorf("%d of %d files could not be hashed", failed, len(pos))
	}
	return nil
}
