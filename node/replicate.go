package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/hashfed/hashfed/consortium"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"github.com/hashfed/hashfed/store"
)

// Replication: a newer checkpoint heard by gossip, or a larger size seen in a head exchange, makes
// the node want that log up to that size; one fetch loop per log pulls the missing range from the
// best peer (the one that announced it, the author, peers known to hold it), verifying each chunk
// against the signed checkpoint before storing it. A peer whose data does not verify is set aside
// for that log and the range is fetched elsewhere.

type fetchState struct {
	want    uint64
	hints   []string
	running bool
}

// want records that member's log has at least size entries, hinted to be at peer hint, and starts
// a fetch loop for it if none runs.
func (n *Node) want(member string, size uint64, hint string) {
	n.noteKnown(member, size)
	f := n.claim(member, func(f *fetchState) bool {
		if size > f.want {
			f.want = size
		}
		if hint != "" && hint != n.id && !slices.Contains(f.hints, hint) {
			f.hints = append(f.hints, hint)
			if len(f.hints) > 4 {
				f.hints = f.hints[1:]
			}
		}
		return n.store.Size(member) < f.want
	})
	if f != nil {
		go n.fetchLoop(member)
	}
}

// fetchLoop fetches member's log until the store holds what is wanted, trying peers in turn and
// backing off when none can help.
func (n *Node) fetchLoop(member string) {
	defer n.wg.Done()
	select {
	case n.fetchSem <- struct{}{}:
		defer func() { <-n.fetchSem }()
	case <-n.ctx.Done():
		n.stopFetch(member)
		return
	}
	failures := 0
	for {
		n.mu.Lock()
		f := n.fetches[member]
		want := f.want
		hint := ""
		if len(f.hints) > 0 {
			hint = f.hints[rand.IntN(len(f.hints))]
		}
		n.mu.Unlock()
		have := n.store.Size(member)
		if have >= want || n.ctx.Err() != nil || n.frozen(member) {
			if n.finishFetch(member) {
				return
			}
			continue
		}
		progressed := false
		for _, p := range n.sourcesFor(member, have, hint) {
			if n.ctx.Err() != nil {
				break
			}
			err := n.fetchFrom(p, member, have)
			n.contact(p, err)
			if n.store.Size(member) > have {
				progressed = true
			}
			if err == nil && progressed || n.frozen(member) {
				break
			}
			if err != nil {
				n.log.Debug("fetch failed", "log", member, "peer", p, "err", err)
			}
		}
		if progressed {
			failures = 0
			continue
		}
		failures++
		if failures > 8 {
			// Nobody can help now; anti-entropy or gossip will ask again.
			n.log.Warn("giving up fetching for now", "log", member, "have", have, "want", want)
			n.stopFetch(member)
			return
		}
		select {
		case <-n.ctx.Done():
		case <-time.After(time.Duration(failures) * 100 * time.Millisecond):
		}
	}
}

// finishFetch ends a fetch loop unless more was wanted meanwhile; it reports whether it ended.
func (n *Node) finishFetch(member string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	f := n.fetches[member]
	if n.ctx.Err() == nil && !n.frozenLocked(member) && n.store.Size(member) < f.want {
		return false
	}
	f.running = false
	f.hints = nil
	return true
}

func (n *Node) stopFetch(member string) {
	n.mu.Lock()
	n.fetches[member].running = false
	n.mu.Unlock()
}

func (n *Node) frozen(member string) bool { return n.store.Evidence()[member] != nil }

func (n *Node) frozenLocked(member string) bool { return n.store.Evidence()[member] != nil }

// errBadPeer marks data from a peer that did not verify.
var errBadPeer = errors.New("peer served data that does not verify")

// fetchFrom streams member's log from peer, starting at start, verifying and storing each chunk.
func (n *Node) fetchFrom(peer, member string, start uint64) error {
	c, err := n.client(peer)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(n.ctx)
	defer cancel()
	// A stalled stream is cut after RequestTimeout without a chunk.
	watchdog := time.AfterFunc(n.cfg.RequestTimeout, cancel)
	defer watchdog.Stop()
	stream, err := c.GetRange(ctx, &pb.RangeRequest{Member: member, Start: start})
	if err != nil {
		return err
	}
	var cp *consortium.Checkpoint
	pos := start
	for {
		chunk, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			if pos > start {
				return nil // kept what verified; the loop asks again from here
			}
			return err
		}
		watchdog.Reset(n.cfg.RequestTimeout)
		if cp == nil {
			if len(chunk.Checkpoint) == 0 {
				return n.badPeer(peer, member, "range without a checkpoint")
			}
			if cp, err = n.openCheckpoint(chunk.Checkpoint); err != nil {
				return n.badPeer(peer, member, fmt.Sprintf("checkpoint does not verify: %v", err))
			}
			if cp.Member != member {
				return n.badPeer(peer, member, fmt.Sprintf("asked for %s's log, got a checkpoint of %s", member, cp.Member))
			}
			obs, ev, err := n.store.ObserveCheckpoint(cp)
			if member == n.id {
				n.sawOwnCheckpoint(cp, err)
			}
			switch {
			case err != nil:
				return err
			case obs == store.Equivocated:
				n.takeEvidence(ev)
				return nil
			case obs == store.Known:
				return nil
			}
			n.noteKnown(member, cp.Size)
		}
		if chunk.Start != pos {
			return n.badPeer(peer, member, fmt.Sprintf("chunk starts at %d, expected %d", chunk.Start, pos))
		}
		proof, err := bytesToHashes(chunk.ConsistencyProof)
		if err != nil {
			return n.badPeer(peer, member, err.Error())
		}
		if err := n.store.AppendRange(cp, pos, chunk.Entries, proof); err != nil {
			if errors.Is(err, consortium.ErrRootMismatch) {
				if n.checkFork(peer, cp) {
					return nil
				}
				return n.badPeer(peer, member, err.Error())
			}
			if errors.Is(err, store.ErrGap) && n.store.Size(member) > pos {
				return nil // someone else stored it meanwhile
			}
			return err
		}
		size := 0
		for _, e := range chunk.Entries {
			size += len(e)
		}
		n.metrics.replEntries.Add(float64(len(chunk.Entries)))
		n.metrics.replBytes.Add(float64(size))
		pos += uint64(len(chunk.Entries))
		if pos >= cp.Size {
			break
		}
	}
	if cp != nil && pos == cp.Size {
		n.verified(member)
	}
	return nil
}

// verified runs when member's log reached a new signed checkpoint here: cosign it, gossip it and
// push it on (see push.go).
func (n *Node) verified(member string) {
	n.metrics.logSize.WithLabelValues(member).Set(float64(n.store.Size(member)))
	if member == n.id || n.replica() {
		return
	}
	// Pushed first: the peers need the author's signature, not this node's.
	if cp, ok := n.store.Head(member); ok {
		n.pushOn(cp)
	}
	n.cosignSoon(member)
}

// cosignInterval is the least time between two cosignatures of one log by this node: a
// cosignature of the latest head covers the ones before, and each costs its author a
// verification.
const cosignInterval = time.Second

// cosignJitter spreads the cosignatures of one new head over time (see cosignSoon).
const cosignJitter = 200 * time.Millisecond

// cosignSoon cosigns member's stored head, at once when this node did not cosign that log in the
// last cosignInterval, else once that interval is over (the head then stored), and hands the
// cosigned head to the log's author by Push. The author so holds every cosignature of its head
// (what `hashfed add --wait` waits for); the other nodes get them from the Heads exchanges of
// anti-entropy. A cosigned head is not gossiped: every node would verify every node's
// cosignature of every head, which on a consortium of a hundred nodes is most of their CPU.
func (n *Node) cosignSoon(member string) {
	n.push.mu.Lock()
	if n.push.cosignDue[member] {
		n.push.mu.Unlock()
		return
	}
	// Every node that stored a new head would otherwise push its cosignature to the author at
	// the same moment: a short random delay spreads them (and keeps them off the push tree's
	// busiest moment).
	wait := max(cosignInterval-time.Since(n.push.cosigned[member]), cosignJitter/2+rand.N(cosignJitter))
	if !n.push.cosignNow[member] && wait > 0 {
		n.push.cosignDue[member] = true
		n.push.mu.Unlock()
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			select {
			case <-n.ctx.Done():
				return
			case <-time.After(wait):
			}
			n.push.mu.Lock()
			delete(n.push.cosignDue, member)
			n.push.cosignNow[member] = true
			n.push.mu.Unlock()
			n.cosignSoon(member)
		}()
		return
	}
	delete(n.push.cosignNow, member)
	n.push.cosigned[member] = time.Now()
	n.push.mu.Unlock()
	cp, err := n.store.Cosign(member, n.key, time.Now())
	if err != nil {
		n.log.Debug("cosign", "log", member, "err", err)
		return
	}
	n.pushCosigned(cp)
}

// badPeer records that peer served data of member's log that does not verify, so the range is
// fetched elsewhere; it returns the error to report.
func (n *Node) badPeer(peer, member, why string) error {
	n.markBad(peer, member)
	n.metrics.badRanges.WithLabelValues(peer).Inc()
	n.log.Warn("peer served a range that does not verify; fetching it elsewhere", "peer", peer, "log", member, "why", why)
	return fmt.Errorf("%w: %s: log %s: %s", errBadPeer, peer, member, why)
}

// checkFork asks peer whether cp (signed by its author) forks from the stored log: if the peer's
// tree at the stored head's size differs from the stored head and the peer proves it is a prefix of
// cp, the author signed two histories. It returns true when it found (and recorded) equivocation.
func (n *Node) checkFork(peer string, cp *consortium.Checkpoint) bool {
	head, ok := n.store.Head(cp.Member)
	if !ok || head.Size >= cp.Size {
		return false
	}
	c, err := n.client(peer)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.RequestTimeout)
	defer cancel()
	resp, err := c.GetConsistency(ctx, &pb.ConsistencyRequest{Member: cp.Member, OldSize: head.Size, NewSize: cp.Size})
	if err != nil || len(resp.OldRoot) != consortium.HashSize {
		return false
	}
	proof, err := bytesToHashes(resp.Proof)
	if err != nil {
		return false
	}
	ev, err := n.store.ObserveFork(cp, consortium.Hash(resp.OldRoot), proof)
	if err != nil {
		return false
	}
	n.takeEvidence(ev) // announces it and starts resolving it
	return true
}

// handleCheckpoint acts on a verified checkpoint heard from gossip or a head exchange; it reports
// whether the checkpoint was news (a larger size than the node held).
func (n *Node) handleCheckpoint(cp *consortium.Checkpoint, hint string) bool {
	obs, ev, err := n.store.ObserveCheckpoint(cp)
	if cp.Member == n.id {
		n.sawOwnCheckpoint(cp, err)
	}
	if err != nil {
		n.log.Warn("checkpoint", "log", cp.Member, "size", cp.Size, "err", err)
		return false
	}
	switch obs {
	case store.Newer:
		n.want(cp.Member, cp.Size, hint)
		return true
	case store.Equivocated:
		n.takeEvidence(ev)
	}
	return false
}

// verifyEvidence checks equivocation evidence against the keys of every member ever on the roster.
func (n *Node) verifyEvidence(p *pb.Equivocation) (*consortium.Evidence, error) {
	var ev *consortium.Evidence
	var err error
	n.store.View(func(s *consortium.State) { ev, err = consortium.EvidenceFromProto(n.g.ID, s, p) })
	return ev, err
}

// takeEvidence stores verified evidence when it supersedes what the node holds against that member
// (resolved over unresolved, a smaller agreed size over a larger one) and gossips it; it reports
// whether it was stored. While the evidence held is unresolved, the node tries to resolve it.
func (n *Node) takeEvidence(ev *consortium.Evidence) bool {
	if ev == nil {
		return false
	}
	stored, err := n.store.RecordEvidence(ev)
	if err != nil {
		n.log.Error("record evidence", "err", err)
		return false
	}
	if held := n.store.Evidence()[ev.Member]; held != nil {
		n.announceEvidence(held)
		if !held.Resolved() {
			n.resolveLater(ev.Member)
		} else {
			n.checkAgreedLater(ev.Member)
			if !n.atCutoff(ev.Member) {
				n.reachCutoffLater(ev.Member)
			}
		}
	}
	return stored
}

// announceEvidence reports and gossips evidence the store holds (once per member and agreed size).
func (n *Node) announceEvidence(ev *consortium.Evidence) {
	key := "!evidence/" + ev.Member
	if agreed, ok := ev.AgreedSize(); ok {
		key += fmt.Sprintf("/%d", agreed)
	}
	n.mu.Lock()
	f := n.fetches[key]
	first := f == nil
	if first {
		n.fetches[key] = &fetchState{}
	}
	n.mu.Unlock()
	if !first {
		return
	}
	n.metrics.equivocations.Set(float64(len(n.store.Evidence())))
	if agreed, ok := ev.AgreedSize(); ok {
		n.log.Error("equivocation resolved: member signed incompatible checkpoints; its log applies up to the cutoff", "offender", ev.Member, "agreed_size", agreed, "cutoff", n.store.Cutoffs()[ev.Member], "evidence", ev.String())
	} else {
		n.log.Error("equivocation: member signed incompatible checkpoints; its log is frozen and none of it applies until the evidence is resolved", "offender", ev.Member, "evidence", ev.String())
	}
	n.broadcastEvidence(ev)
}

// antiEntropy compares heads with a random live peer every AntiEntropyInterval (with jitter).
func (n *Node) antiEntropy() {
	defer n.wg.Done()
	for {
		d := n.cfg.AntiEntropyInterval
		d += time.Duration(rand.Int64N(int64(d) / 2))
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(d):
		}
		if peers := n.alivePeers(); len(peers) > 0 {
			if err := n.exchangeHeads(peers[0]); err != nil {
				n.log.Debug("anti-entropy", "peer", peers[0], "err", err)
			}
		}
		n.updateLagMetrics()
	}
}

// catchUp compares heads with up to three peers at once: on join, so that a new or returning node
// fetches what it lacks from several peers in parallel.
func (n *Node) catchUp() {
	peers := n.alivePeers()
	for i := 0; i < 20 && len(peers) == 0; i++ {
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
		peers = n.alivePeers()
	}
	for _, p := range peers[:min(3, len(peers))] {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			if err := n.exchangeHeads(p); err != nil {
				n.log.Debug("catch-up", "peer", p, "err", err)
			}
		}()
	}
}

// exchangeHeads sends this node's head vector to peer and acts on the answer: newer checkpoints are
// fetched, cosignatures merged, equivocation evidence collected. The peer, seeing this node's
// vector, fetches what it lacks in turn.
func (n *Node) exchangeHeads(peer string) error { return n.exchangeHeadsAsking(peer, false) }

// exchangeHeadsAsking is exchangeHeads; with askOwn, the node leaves its own log out of its vector,
// so that the peer answers with its checkpoint of that log whatever its size: a node restoring its
// own log checks that the log it holds agrees with what its peers hold, not only that they hold no
// more of it.
func (n *Node) exchangeHeadsAsking(peer string, askOwn bool) error {
	c, err := n.client(peer)
	if err != nil {
		return err
	}
	req := &pb.HeadsRequest{PeerAddr: n.peerAdv, HeadsNote: n.ownHeadsNote()}
	for m, s := range n.store.Sizes() {
		if askOwn && m == n.id {
			continue
		}
		req.Heads = append(req.Heads, &pb.Head{Member: m, Size: s})
	}
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.RequestTimeout)
	defer cancel()
	resp, err := c.Heads(ctx, req)
	n.contact(peer, err)
	if err != nil {
		return err
	}
	if len(resp.Heads) > maxHeads || len(resp.Evidence) > maxHeads {
		return n.badPeer(peer, "*", "head vector or evidence list too long")
	}
	n.peerSizes(peer, resp.Heads)
	n.takeHeadsNote(peer, resp.HeadsNote)
	if n.replica() {
		defer n.followedHeads(peer, resp.Heads) // after the checkpoints below are taken
	}
	for _, h := range resp.Heads {
		if len(h.Checkpoint) == 0 {
			continue
		}
		cp, err := n.openCheckpoint(h.Checkpoint)
		if err != nil {
			n.metrics.gossipIn.WithLabelValues("head", "bad").Inc()
			if n.logKnown(h.Member) {
				// A log this node knows, with a checkpoint its author did not sign. (A log it does
				// not know yet may be a member admitted since: not the peer's fault.)
				n.badPeer(peer, h.Member, "checkpoint in its head vector does not verify: "+err.Error())
			}
			continue
		}
		n.peerProved(peer, cp.Member, cp.Size)
		n.handleCheckpoint(cp, peer)
	}
	have := n.store.Evidence()
	for _, m := range resp.Evidence {
		// Evidence held here is asked again unless nothing can supersede it (agreed size 0): the
		// peer's may be resolved, or resolved at a smaller size.
		if agreed, ok := have[m].AgreedSize(); ok && agreed == 0 || !n.logKnown(m) {
			continue
		}
		er, err := c.GetEvidence(ctx, &pb.EvidenceRequest{Member: m})
		if err != nil {
			continue
		}
		ev, err := n.verifyEvidence(er.Evidence)
		if err != nil {
			n.badPeer(peer, m, "evidence does not verify: "+err.Error())
			continue
		}
		n.takeEvidence(ev)
	}
	return nil
}

func (n *Node) updateLagMetrics() {
	sizes := n.store.Sizes()
	n.mu.Lock()
	defer n.mu.Unlock()
	for m, k := range n.known {
		n.metrics.logLag.WithLabelValues(m).Set(float64(k - min(k, sizes[m])))
	}
	for m, s := range sizes {
		n.metrics.logSize.WithLabelValues(m).Set(float64(s))
	}
}
