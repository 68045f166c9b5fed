package memberclient

import (
	"context"
	"fmt"
	"sync"
	"time"

	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// Tally counts what a node did with the entries of an import: appended as new listings (Added),
// appended replacing the member's listing (Updated), not appended because the listing in force is
// the same (Unchanged), or refused (one [Refusal] each).
type Tally struct {
	Added, Updated, Unchanged int
	Refused                   []Refusal
}

// Stored is how many entries the node holds: added, updated or unchanged.
func (t Tally) Stored() int { return t.Added + t.Updated + t.Unchanged }

// Refusal is an entry the node refused: the caller's tag for it (a line number) and the reason.
type Refusal struct {
	Tag    int
	What   string
	Reason string
}

// Importer sends entries to a node in batches of a fixed size, several batches in flight, and
// tallies the results: an import of any size in memory bounded by the batches in flight. Each
// batch is committed by the node on its own; since an add identical to the listing in force is
// not appended again, re-sending a list after an interruption finishes it. An Importer is used
// by one goroutine.
type Importer struct {
	c       *Client
	ctx     context.Context
	timeout time.Duration
	batch   int
	slots   chan struct{}
	wg      sync.WaitGroup
	entries []*pb.Entry
	tags    []int
	what    []string
	mu      sync.Mutex
	tally   Tally
	err     error
}

// NewImporter returns an importer to c sending batches of batch entries, at most inFlight at a
// time, each within timeout.
func (c *Client) NewImporter(ctx context.Context, batch, inFlight int, timeout time.Duration) *Importer {
	return &Importer{c: c, ctx: ctx, timeout: timeout, batch: max(batch, 1), slots: make(chan struct{}, max(inFlight, 1))}
}

// Add queues one entry, tagged (a line number) and described for a refusal; a full batch is sent.
// Once a batch failed, Add returns that error.
func (im *Importer) Add(e *pb.Entry, tag int, what string) error {
	im.entries = append(im.entries, e)
	im.tags = append(im.tags, tag)
	im.what = append(im.what, what)
	if len(im.entries) >= im.batch {
		return im.flush()
	}
	return nil
}

// Close sends what is queued, waits for every batch, and returns the first error.
func (im *Importer) Close() error {
	err := im.flush()
	im.wg.Wait()
	im.mu.Lock()
	defer im.mu.Unlock()
	if im.err != nil {
		return im.err
	}
	return err
}

// Tally returns the results so far.
func (im *Importer) Tally() Tally {
	im.mu.Lock()
	defer im.mu.Unlock()
	t := im.tally
	t.Refused = append([]Refusal(nil), t.Refused...)
	return t
}

func (im *Importer) flush() error {
	if len(im.entries) == 0 {
		return nil
	}
	entries, tags, what := im.entries, im.tags, im.what
	im.entries, im.tags, im.what = nil, nil, nil
	select {
	case im.slots <- struct{}{}:
	case <-im.ctx.Done():
		return im.ctx.Err()
	}
	im.mu.Lock()
	err := im.err
	im.mu.Unlock()
	if err != nil {
		<-im.slots
		return err
	}
	im.wg.Add(1)
	go func() {
		defer im.wg.Done()
		defer func() { <-im.slots }()
		results, err := im.c.Submit(im.ctx, entries, im.timeout)
		if err == nil && len(results) != len(entries) {
			err = fmt.Errorf("node answered %d results for %d entries", len(results), len(entries))
		}
		im.mu.Lock()
		defer im.mu.Unlock()
		if err != nil {
			if im.err == nil {
				im.err = fmt.Errorf("batch of lines %d to %d: %w", tags[0], tags[len(tags)-1], err)
			}
			return
		}
		for i, res := range results {
			switch {
			case res.Error != "":
				im.tally.Refused = append(im.tally.Refused, Refusal{Tag: tags[i], What: what[i], Reason: res.Error})
			case res.Unchanged:
				im.tally.Unchanged++
			case res.Updated:
				im.tally.Updated++
			default:
				im.tally.Added++
			}
		}
	}()
	return nil
}
