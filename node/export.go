package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hashfed/hashfed/consortium"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"github.com/hashfed/hashfed/store"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Export streams the shared set: now (every listed signal with its unexpired listings, hidden ones
// included, since hiding is local policy), or with at_unix_ms the set as replaying every stored log
// up to that time gives it (listings expired by then left out); each signal with the
// certifications that protect it then.
func (s *memberServer) Export(req *pb.ExportRequest, stream grpc.ServerStreamingServer[pb.ExportRecord]) error {
	if req.AtUnixMs < 0 {
		return status.Errorf(codes.InvalidArgument, "at_unix_ms %d is negative", req.AtUnixMs)
	}
	ctx, end, err := s.n.beginStream(stream.Context())
	if err != nil {
		return err
	}
	defer end()
	if req.AtUnixMs == 0 {
		err = s.n.exportNow(ctx, stream.Send)
	} else {
		err = s.n.exportAt(ctx, req.AtUnixMs, stream.Send)
	}
	if err != nil && ctx.Err() != nil {
		return s.n.endedStatus(stream.Context(), "export again")
	}
	return toStatus(err)
}

// exportNow sends every currently listed signal with its unexpired listings, in signal id order.
func (n *Node) exportNow(ctx context.Context, send func(*pb.ExportRecord) error) error {
	next := uint32(0)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var batch []consortium.Signal
		done := false
		n.store.View(func(s *consortium.State) {
			total := s.NumSignalIDs()
			for ; int(next) < total && len(batch) < exportPage; next++ {
				if len(s.ListedByID(next)) == 0 {
					continue
				}
				if sig, ok := s.SignalByID(next); ok {
					batch = append(batch, sig)
				}
			}
			done = int(next) >= total
		})
		for _, sig := range batch {
			m, ok, err := n.store.Lookup(sig)
			if err != nil {
				return fmt.Errorf("export %s: %w", sig, err)
			}
			if !ok || len(m.Listings) == 0 {
				continue
			}
			rec := &pb.ExportRecord{Signal: sig.Proto(), Listings: make([]*pb.Listing, len(m.Listings)), Protected: protectionsToProto(m.Protected)}
			for i, l := range m.Listings {
				rec.Listings[i] = listingToProto(l)
			}
			if err := send(rec); err != nil {
				return err
			}
		}
		if done {
			return nil
		}
	}
}

// readLogs reads every stored log in full.
func (n *Node) readLogs(ctx context.Context) (consortium.Logs, error) {
	logs := consortium.Logs{}
	for m, size := range n.store.Sizes() {
		log := make([][]byte, 0, size)
		for uint64(len(log)) < size {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			es, err := n.store.Entries(m, uint64(len(log)), size, 64<<20)
			if err != nil {
				return nil, fmt.Errorf("read log %q: %w", m, err)
			}
			log = append(log, es...)
		}
		logs[m] = log
	}
	return logs, nil
}

// exportAt replays every stored log up to time at (Unix ms), forked logs only up to their cutoffs,
// and sends the listings of that state.
func (n *Node) exportAt(ctx context.Context, at int64, send func(*pb.ExportRecord) error) error {
	logs, err := n.readLogs(ctx)
	if err != nil {
		return err
	}
	// Forked logs apply up to their equivocation cutoffs, as in the state and in an audit.
	st, err := consortium.Replay(n.g, logs, consortium.ReplayOptions{Until: time.UnixMilli(at), Sizes: n.store.Cutoffs()})
	if err != nil {
		return fmt.Errorf("replay the stored logs up to %s: %w", time.UnixMilli(at).UTC().Format(time.RFC3339), err)
	}
	var sendErr error
	st.ForEachListed(func(id uint32, sig consortium.Signal) bool {
		rec := &pb.ExportRecord{Signal: sig.Proto()}
		for _, l := range st.ListedByID(id) {
			if l.Expires != 0 && l.Expires <= at {
				continue
			}
			li, err := listingFromEntry(l.Member, l.Index, logs[l.Member][l.Index])
			if err != nil {
				sendErr = err
				return false
			}
			rec.Listings = append(rec.Listings, li)
		}
		if len(rec.Listings) == 0 {
			return true
		}
		rec.Protected = protectionsToProto(st.Protections(sig, at))
		if sendErr = send(rec); sendErr != nil {
			return false
		}
		return ctx.Err() == nil
	})
	if sendErr != nil {
		return sendErr
	}
	return ctx.Err()
}

// ExportLogs streams the audit bundle: the genesis; then, for each log with a signed checkpoint (by
// member id), its entries up to the checkpoint's size, in chunks, the last of which carries the
// checkpoint (cosignatures included); then one chunk per equivocation evidence. Entries stored
// beyond a log's latest checkpoint are left out, since an auditor could not verify them; the node's
// own log is signed first if it grew since its last checkpoint, so that it is exported in full. A
// forked log the node holds up to its cutoff, beyond any checkpoint it holds (a node that fetched
// the agreed entries after the fork), is exported up to the cutoff: the resolved evidence, exported
// too, verifies those entries by its agreed root (PROTOCOL.md section 12.1). Any other log of which
// the node holds no checkpoint is left out.
func (s *memberServer) ExportLogs(req *pb.ExportLogsRequest, stream grpc.ServerStreamingServer[pb.LogChunk]) error {
	ctx, end, err := s.n.beginStream(stream.Context())
	if err != nil {
		return err
	}
	defer end()
	err = s.n.exportLogs(ctx, stream.Send)
	if err != nil && ctx.Err() != nil {
		return s.n.endedStatus(stream.Context(), "export again")
	}
	return toStatus(err)
}

func (n *Node) exportLogs(ctx context.Context, send func(*pb.LogChunk) error) error {
	// While the own log may be behind the peers', nothing is signed: it is exported up to its last
	// checkpoint; so is a forked own log (SignHead refuses it).
	if n.replica() {
		// A read replica holds no member key: it signs nothing (replica.go).
	} else if blocked := n.ownLogBlocked(); blocked != nil {
		n.log.Debug("export: not signing own checkpoint", "err", blocked)
	} else if cp, err := n.store.SignHeadPublish(n.key, func(cp *consortium.Checkpoint) { n.ownSigned(cp.Size) }); err != nil && !errors.Is(err, store.ErrForked) {
		return fmt.Errorf("sign own checkpoint: %w", err)
	} else if cp != nil {
		n.noteKnown(n.id, cp.Size)
		n.broadcastCheckpoint(cp)
	}
	if err := send(&pb.LogChunk{Genesis: n.g.Marshal()}); err != nil {
		return err
	}
	heads := n.store.Heads()
	evidence := n.store.Evidence()
	cutoffs := n.store.Cutoffs()
	chunkBytes := min(exportChunkBytes, n.cfg.MaxMessageBytes/2)
	sizes := map[string]uint64{} // the entries exported of each log
	for _, m := range n.store.Members() {
		head := heads[m]
		end := uint64(0)
		if head != nil {
			end = head.Size
		}
		// The agreed entries of a forked log, beyond any checkpoint held, verify by the agreed
		// root of the resolved evidence that sets the cutoff.
		if f, cut := cutoffs[m]; cut && f > end && n.store.Size(m) >= f {
			if agreed, ok := evidence[m].AgreedSize(); ok && agreed == f {
				end = f
			}
		}
		if end == 0 {
			continue
		}
		sizes[m] = end
		for start := uint64(0); start < end; {
			if err := ctx.Err(); err != nil {
				return err
			}
			es, err := n.store.Entries(m, start, min(end, start+exportChunkEntries), chunkBytes)
			if err != nil {
				return fmt.Errorf("read log %q from %d: %w", m, start, err)
			}
			c := &pb.LogChunk{Member: m, Start: start, Entries: es}
			start += uint64(len(es))
			if start == end && head != nil {
				c.Checkpoint = head.Note
			}
			if err := send(c); err != nil {
				return err
			}
		}
	}
	if err := n.exportHeadsNotes(send, heads, sizes, cutoffs); err != nil {
		return err
	}
	ids := make([]string, 0, len(evidence))
	for m := range evidence {
		ids = append(ids, m)
	}
	slices.Sort(ids)
	for _, m := range ids {
		if err := send(&pb.LogChunk{Member: m, Evidence: evidence[m].Marshal()}); err != nil {
			return err
		}
	}
	return nil
}
