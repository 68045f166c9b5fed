package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/consortium/hashlist"
	"github.com/hashfed/hashfed/internal/fixture"
	"github.com/hashfed/hashfed/internal/localnet"
	"github.com/hashfed/hashfed/internal/memberclient"
	"github.com/hashfed/hashfed/node"
	"github.com/hashfed/hashfed/store"
)

// benchImport times `hashfed import` end to end: a file of n lines (sha256 and md5 hashes, "TYPE
// VALUE" per line) is read, parsed and sent through the member API of the first of three nodes on
// loopback, in the import command's batches, and the clock stops when every node holds the
// author's whole log and matches the file's first and last hash. Then the same file is imported
// again: nothing may be appended.
func benchImport(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "import")
	n := fs.Int("n", 1_000_000, "lines in the file")
	batch := fs.Int("batch", 10_000, "entries per call (the import command's default)")
	inFlight := fs.Int("inflight", 4, "calls in flight (the import command's default)")
	sync := fs.Bool("fsync", true, "fsync appends on every node")
	dir := fs.String("dir", "", "directory for the file and the nodes' data (default a temporary one)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	tmp, done, err := workDir(*dir, "import")
	if err != nil {
		return err
	}
	defer done()
	file := filepath.Join(tmp, "list.txt")
	first, last, err := writeHashList(file, *n)
	if err != nil {
		return err
	}
	ids, g := majority(3, "m%d")
	var ns []*node.Node
	defer func() {
		for _, nd := range ns {
			nd.Close()
		}
	}()
	for _, id := range ids {
		var join []string
		for _, nd := range ns {
			join = append(join, nd.GossipAddr())
		}
		nd, err := localnet.Node(g, fixture.Key(id), tmp, join, *sync, nil)
		if err != nil {
			return err
		}
		ns = append(ns, nd)
	}
	if !localnet.WaitUntil(30*time.Second, func() bool {
		for _, nd := range ns {
			if len(nd.Status().Peers) < len(ns)-1 {
				return false
			}
		}
		return true
	}) {
		return fmt.Errorf("the 3 nodes did not see each other within 30 s")
	}
	author := ns[0]
	c, err := memberclient.Dial(author.MemberAddr(), "")
	if err != nil {
		return err
	}
	defer c.Close()

	run := func() (memberclient.Tally, time.Duration, error) {
		start := time.Now()
		t, err := importFile(ctx, c, file, *batch, *inFlight)
		if err != nil {
			return t, 0, err
		}
		sent := time.Since(start)
		want := author.Store().Size(author.ID())
		if !localnet.WaitUntil(5*time.Minute, func() bool {
			for _, nd := range ns {
				if nd.Store().Size(author.ID()) < want {
					return false
				}
			}
			return true
		}) {
			return t, 0, fmt.Errorf("the log of %d entries did not reach every node within 5 minutes", want)
		}
		for _, nd := range ns {
			for _, sig := range []consortium.Signal{first, last} {
				ms, err := nd.Store().MatchSignal(sig, store.DefaultQuery())
				if err != nil || len(ms) != 1 {
					return t, 0, fmt.Errorf("%s does not match %s (%v)", nd.ID(), sig, err)
				}
			}
		}
		total := time.Since(start)
		fmt.Fprintf(e.stdout, "  sent and stored at %s in %v; on every node and matchable after %v\n", author.ID(), sent.Round(time.Millisecond), total.Round(time.Millisecond))
		return t, total, nil
	}
	fmt.Fprintf(e.stdout, "importing %d lines into %s, replicated to %d nodes...\n", *n, author.ID(), len(ns))
	t1, d1, err := run()
	if err != nil {
		return err
	}
	if t1.Added != *n || len(t1.Refused) > 0 {
		return fmt.Errorf("first import: %d added, %d refused, want %d added", t1.Added, len(t1.Refused), *n)
	}
	size := author.Store().Size(author.ID())
	fmt.Fprintf(e.stdout, "first import: %d added in %v\n", t1.Added, d1.Round(time.Millisecond))
	stop := profile()
	t2, d2, err := run()
	stop()
	if err != nil {
		return err
	}
	if t2.Unchanged != *n || author.Store().Size(author.ID()) != size {
		return fmt.Errorf("second import: %d unchanged, log %d -> %d entries; want %d unchanged and nothing appended", t2.Unchanged, size, author.Store().Size(author.ID()), *n)
	}
	fmt.Fprintf(e.stdout, "second import: %d unchanged in %v, nothing appended\n", t2.Unchanged, d2.Round(time.Millisecond))
	fmt.Fprintf(e.stdout, "lines=%d nodes=%d fsync=%v import_s=%.2f lines_per_s=%.0f reimport_s=%.2f reimport_lines_per_s=%.0f reimport_appended=0\n",
		*n, len(ns), *sync, d1.Seconds(), float64(*n)/d1.Seconds(), d2.Seconds(), float64(*n)/d2.Seconds())
	return nil
}

// importFile does what `hashfed import` does with a te file: read it line by line, parse each
// signal, build an add, and send them through an [memberclient.Importer].
func importFile(ctx context.Context, c *memberclient.Client, path string, batch, inFlight int) (memberclient.Tally, error) {
	f, err := os.Open(path)
	if err != nil {
		return memberclient.Tally{}, err
	}
	defer f.Close()
	im := c.NewImporter(ctx, batch, inFlight, 5*time.Minute)
	err = hashlist.Scan(bufio.NewReaderSize(f, 1<<20), hashlist.TE, func(rec hashlist.Record, le *hashlist.LineError) error {
		if le != nil {
			return le
		}
		sig, err := consortium.ParseSignal(rec.Type, rec.Value)
		if err != nil {
			return err
		}
		en, err := consortium.NewAdd(time.Now().UnixMilli(), sig, []string{"behaviour:glorification-of-terrorist-acts"}, consortium.AddOptions{})
		if err != nil {
			return err
		}
		en.TimeUnixMs = 0
		return im.Add(en, rec.Line, "")
	})
	if cerr := im.Close(); err == nil {
		err = cerr
	}
	return im.Tally(), err
}

// writeHashList writes n distinct hashes, alternately sha256 and md5, one "TYPE VALUE" per line,
// and returns the first and the last.
func writeHashList(path string, n int) (first, last consortium.Signal, err error) {
	f, err := os.Create(path)
	if err != nil {
		return first, last, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for i := range n {
		sum := sha256.Sum256(fmt.Appendf(nil, "import:%d", i))
		typ, val := "sha256", hex.EncodeToString(sum[:])
		if i%2 == 1 {
			typ, val = "md5", val[:32]
		}
		fmt.Fprintf(w, "%s %s\n", typ, val)
		if i == 0 || i == n-1 {
			sig, err := consortium.ParseSignal(typ, val)
			if err != nil {
				f.Close()
				return first, last, err
			}
			if i == 0 {
				first = sig
			}
			last = sig
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return first, last, err
	}
	return first, last, f.Close()
}
