package main

import (
	"context"
	"errors"
	"path/filepath"

	"github.com/hashfed/hashfed/internal/demo"
)

func runDemo(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "demo", "[--dir DIR] [--images DIR]")
	dir := fs.String("dir", "", "where the demo consortium lives (default a temporary directory, removed afterwards)")
	images := fs.String("images", filepath.Join("testdata", "pdq", "images"), "the sample images (the repository's testdata/pdq/images)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	err := demo.Run(ctx, e.stdout, *dir, *images)
	if errors.Is(err, demo.ErrFailed) {
		return errSilent
	}
	return err
}
