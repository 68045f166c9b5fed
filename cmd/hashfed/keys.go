package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/memberclient"
)

func runKeygen(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "keygen", "--id ID [--out FILE]")
	id := fs.String("id", "", "the member id: 1-32 of a-z 0-9 - (required)")
	out := fs.String("out", "", "private key file (default ID.key); the public key goes next to it as .pub")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *id == "" {
		return usageErr("keygen needs --id")
	}
	k, err := consortium.GenerateKey(rand.Reader, *id)
	if err != nil {
		return err
	}
	keyPath := *out
	if keyPath == "" {
		keyPath = *id + ".key"
	}
	pubPath := keyPath[:len(keyPath)-len(filepath.Ext(keyPath))] + ".pub"
	if err := os.MkdirAll(filepath.Dir(keyPath), 0o700); err != nil {
		return err
	}
	if err := memberclient.WriteNew(keyPath, []byte(k.String()+"\n"), 0o600); err != nil {
		return err
	}
	if err := memberclient.WriteNew(pubPath, []byte(k.Public().String()+"\n"), 0o644); err != nil {
		os.Remove(keyPath)
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s (private, mode 0600) and %s\npublic key: %s\n", keyPath, pubPath, k.Public())
	return nil
}

// writeAtomic replaces a file with new contents through a temporary file and a rename.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".hashfed-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// loadKey reads a private key file, refusing one that others can read.
func loadKey(path string) (*consortium.PrivateKey, error) {
	if path == "" {
		return nil, usageErr("no key file given (--key)")
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	// A public key given where the private one is wanted is told so, not to chmod it.
	if b, err := os.ReadFile(path); err == nil {
		if p, perr := consortium.ParsePublicKey(string(b)); perr == nil {
			return nil, fmt.Errorf("%s is %s's public key; --key wants the private key file (%s.key, written by hashfed keygen beside the .pub)", path, p.ID, p.ID)
		}
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("key file %s is readable by others (mode %04o): run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	k, err := consortium.ParsePrivateKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return k, nil
}

// loadPublicKey reads a public key file.
func loadPublicKey(path string) (consortium.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return consortium.PublicKey{}, fmt.Errorf("public key file: %w", err)
	}
	p, err := consortium.ParsePublicKey(string(b))
	if err != nil {
		return consortium.PublicKey{}, fmt.Errorf("public key file %s: %w", path, err)
	}
	return p, nil
}

// loadGenesis reads a complete genesis file.
func loadGenesis(path string) (*consortium.Genesis, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("genesis file: %w", err)
	}
	g, err := consortium.ParseGenesis(b)
	if err != nil {
		return nil, fmt.Errorf("genesis file %s: %w", path, err)
	}
	return g, nil
}
