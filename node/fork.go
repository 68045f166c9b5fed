package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashfed/hashfed/consortium"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// Resolving equivocation (PROTOCOL.md section 5): evidence that a member signed two incompatible
// checkpoints freezes its log, and while it is unresolved every node applies none of that log
// (cutoff 0: no entry is known to be in every node's copy); resolved evidence also proves the
// agreed size, where the two trees part, and every node then applies that member's log only up to
// the smallest agreed size known, fetching the agreed entries it lacks (the cutoff rose from 0).
// A node that holds one of the two forks computes its own roots at any size and asks a peer that
// holds the other fork for that fork's roots (GetConsistency, each answer checked against the
// other checkpoint), finding the agreed size by binary search in O(log size) calls.

// maxResolvePeers bounds the peers asked in one attempt to resolve evidence.
const maxResolvePeers = 8

// errNoFork means the node cannot resolve: it holds neither fork, or no peer proved the other.
var errNoFork = errors.New("cannot resolve the equivocation from here")

// resolveLater starts, unless one runs, a background attempt to resolve the stored evidence
// against member (a no-op when it is resolved already).
func (n *Node) resolveLater(member string) {
	n.runOnce("!resolve/"+member, func() {
		if err := n.resolve(member); err != nil {
			n.log.Debug("equivocation not resolved yet", "offender", member, "err", err)
		}
	})
}

// runOnce runs fn in the background under the fetch slot key, unless fn already runs under it or
// the node is closed; Close waits for it.
func (n *Node) runOnce(key string, fn func()) {
	f := n.claim(key, nil)
	if f == nil {
		return
	}
	go func() {
		defer n.wg.Done()
		defer func() {
			n.mu.Lock()
			f.running = false
			n.mu.Unlock()
		}()
		fn()
	}()
}

// claim takes the fetch slot key for a background task, unless the node is closed, a task runs
// under it already, or wanted (nil: always) says there is nothing to do. wanted runs under n.mu
// and may update the slot. A claimed slot is running and counted in n.wg: the task must call
// n.wg.Done and clear running under n.mu.
func (n *Node) claim(key string, wanted func(f *fetchState) bool) *fetchState {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	f := n.fetches[key]
	if f == nil {
		f = &fetchState{}
		n.fetches[key] = f
	}
	if wanted != nil && !wanted(f) || f.running {
		return nil
	}
	f.running = true
	n.wg.Add(1)
	return f
}

// resolve tries to turn the stored unresolved evidence against member into resolved evidence,
// asking peers for the fork this node does not hold.
func (n *Node) resolve(member string) error {
	ev := n.store.Evidence()[member]
	if ev == nil || ev.Resolved() {
		return nil
	}
	res, err := n.resolveEvidence(ev)
	if err != nil {
		return err
	}
	n.takeEvidence(res)
	return nil
}

// resolveEvidence returns ev resolved: the node holds one of its two checkpoints' trees and asks
// peers (the author first) for the other's roots.
func (n *Node) resolveEvidence(ev *consortium.Evidence) (*consortium.Evidence, error) {
	member := ev.Member
	// Which fork is stored here?
	mineIsA := false
	switch {
	case n.holds(ev.A):
		mineIsA = true
	case n.holds(ev.B):
	default:
		return nil, fmt.Errorf("%w: the stored log of %q matches neither checkpoint", errNoFork, member)
	}
	peers := n.alivePeers()
	if member != n.id {
		peers = append([]string{member}, peers...) // the author holds both, if it still answers
	}
	var errs []error
	for i, p := range peers {
		if i == maxResolvePeers || n.ctx.Err() != nil {
			break
		}
		g, err := n.findAgreement(p, ev, mineIsA)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
			continue
		}
		res, err := ev.Resolve(g)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
			continue
		}
		return res, nil
	}
	return nil, fmt.Errorf("%w: %w", errNoFork, errors.Join(errs...))
}

// A third history: resolved evidence proves where two of a member's histories part, but the node
// may hold a third one that parts from them earlier. Applying that log up to the evidence's
// agreed size would give a state no other node has, and nothing else would reveal it, since a
// node compares no checkpoint with a frozen log. So whenever resolved evidence is held, the node
// checks its own copy of the log against the agreed tree; when they differ it builds evidence
// from its own signed head and one of the evidence's checkpoints, resolves it (its agreed size is
// below the held one, so it supersedes it) and spreads it: every node then cuts the log at the
// smaller size.

// checkAgreedLater starts, unless one runs, a background check of member's stored log against the
// agreed tree of the resolved evidence held against it (see checkAgreed).
func (n *Node) checkAgreedLater(member string) {
	ev := n.store.Evidence()[member]
	h, ok := n.store.Head(member)
	if !ev.Resolved() || !ok {
		return
	}
	// want records the head size checked already (plus one) against this agreed size.
	f := n.claim(fmt.Sprintf("!agreed/%s/%d", member, ev.Agreement.Size), func(f *fetchState) bool { return f.want != h.Size+1 })
	if f == nil {
		return
	}
	go func() {
		defer n.wg.Done()
		err := n.checkAgreed(member, ev, h)
		n.mu.Lock()
		f.running = false
		if err == nil {
			f.want = h.Size + 1
		}
		n.mu.Unlock()
		if err != nil {
			n.log.Warn("the stored log of a forked member could not be checked against the agreed tree", "offender", member, "err", err)
		}
	}()
}

// checkAgreed checks that h, the stored head of ev's member, is consistent with the tree both of
// ev's histories share up to the agreed size; when it is not, it proves and resolves the
// equivocation between h and one of ev's checkpoints, and takes that evidence.
func (n *Node) checkAgreed(member string, ev *consortium.Evidence, h *consortium.Checkpoint) error {
	g := ev.Agreement
	if h.Size >= g.Size {
		root, err := n.store.TreeHash(member, g.Size)
		if err != nil {
			return err
		}
		if root == g.Root {
			return nil // the stored log is the agreed tree up to the cutoff
		}
	}
	var errs []error
	for _, x := range []*consortium.Checkpoint{ev.A, ev.B} {
		fork, err := n.forkWith(h, x)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if fork == nil {
			return nil // h is a prefix of x's tree: the stored log is the agreed one so far
		}
		res, err := n.resolveEvidence(fork)
		if err != nil {
			return err
		}
		n.log.Error("equivocation: the stored log of a forked member is a third history", "offender", member, "agreed_size", res.Agreement.Size, "evidence", res.String())
		n.takeEvidence(res)
		return nil
	}
	return errors.Join(errs...)
}

// forkWith returns evidence that h (the stored head) and x, two checkpoints of one log, are
// incompatible, or nil when they are consistent. When x is the larger, x's root at h's size comes
// from a peer, checked against x.
func (n *Node) forkWith(h, x *consortium.Checkpoint) (*consortium.Evidence, error) {
	member := h.Member
	if h.Size >= x.Size {
		root, err := n.store.TreeHash(member, x.Size)
		if err != nil {
			return nil, err
		}
		switch {
		case root == x.Root:
			return nil, nil
		case h.Size == x.Size:
			return consortium.SameSizeEvidence(x, h)
		}
		proof, err := n.store.ProveConsistency(member, x.Size, h.Size)
		if err != nil {
			return nil, err
		}
		return consortium.ForkEvidence(x, h, root, proof)
	}
	var errs []error
	for i, p := range n.alivePeers() {
		if i == maxResolvePeers || n.ctx.Err() != nil {
			break
		}
		c, err := n.client(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ctx, cancel := context.WithTimeout(n.ctx, n.cfg.RequestTimeout)
		resp, err := c.GetConsistency(ctx, &pb.ConsistencyRequest{Member: member, OldSize: h.Size, NewSize: x.Size})
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
			continue
		}
		proof, err := bytesToHashes(resp.Proof)
		if err != nil || len(resp.OldRoot) != consortium.HashSize {
			errs = append(errs, fmt.Errorf("%s: %w: malformed consistency answer", p, errBadPeer))
			continue
		}
		root := consortium.Hash(resp.OldRoot)
		if err := consortium.VerifyConsistency(proof, h.Size, root, x.Size, x.Root); err != nil {
			errs = append(errs, fmt.Errorf("%s: root at %d does not lead to the checkpoint of size %d: %w", p, h.Size, x.Size, err))
			continue
		}
		if root == h.Root {
			return nil, nil
		}
		return consortium.ForkEvidence(h, x, root, proof)
	}
	return nil, fmt.Errorf("%w: no peer proved the root at %d of the checkpoint of size %d: %w", errNoFork, h.Size, x.Size, errors.Join(errs...))
}

// holds reports whether the stored log of cp's member has cp's tree.
func (n *Node) holds(cp *consortium.Checkpoint) bool {
	if n.store.Size(cp.Member) < cp.Size {
		return false
	}
	root, err := n.store.TreeHash(cp.Member, cp.Size)
	return err == nil && root == cp.Root
}

// findAgreement computes the agreement of ev's two checkpoints from the stored log (checkpoint A
// when mineIsA, else B) and peer's roots of the other, each verified against the other checkpoint.
func (n *Node) findAgreement(peer string, ev *consortium.Evidence, mineIsA bool) (*consortium.Agreement, error) {
	c, err := n.client(peer)
	if err != nil {
		return nil, err
	}
	member := ev.Member
	mine, other := ev.B, ev.A
	if mineIsA {
		mine, other = ev.A, ev.B
	}
	type rooted struct {
		root  consortium.Hash
		proof []consortium.Hash
	}
	asked := map[uint64]rooted{}
	// theirs returns the other fork's root at k with its proof to the other checkpoint.
	theirs := func(k uint64) (rooted, error) {
		if r, ok := asked[k]; ok {
			return r, nil
		}
		if k == other.Size {
			return rooted{root: other.Root}, nil
		}
		ctx, cancel := context.WithTimeout(n.ctx, n.cfg.RequestTimeout)
		defer cancel()
		resp, err := c.GetConsistency(ctx, &pb.ConsistencyRequest{Member: member, OldSize: k, NewSize: other.Size})
		if err != nil {
			return rooted{}, err
		}
		if len(resp.OldRoot) != consortium.HashSize {
			return rooted{}, fmt.Errorf("%w: root of %d bytes", errBadPeer, len(resp.OldRoot))
		}
		proof, err := bytesToHashes(resp.Proof)
		if err != nil {
			return rooted{}, fmt.Errorf("%w: %w", errBadPeer, err)
		}
		r := rooted{root: consortium.Hash(resp.OldRoot), proof: proof}
		if err := consortium.VerifyConsistency(proof, k, r.root, other.Size, other.Root); err != nil {
			// The peer does not hold the other fork (or lies).
			return rooted{}, fmt.Errorf("root at %d does not lead to the other checkpoint: %w", k, err)
		}
		asked[k] = r
		return r, nil
	}
	ours := func(k uint64) (rooted, error) {
		root, err := n.store.TreeHash(member, k)
		if err != nil {
			return rooted{}, err
		}
		proof, err := n.store.ProveConsistency(member, k, mine.Size)
		return rooted{root: root, proof: proof}, err
	}
	agreed, err := consortium.SearchAgreedSize(min(mine.Size, other.Size), func(k uint64) (bool, error) {
		t, err := theirs(k)
		if err != nil {
			return false, err
		}
		o, err := n.store.TreeHash(member, k)
		return o == t.root, err
	})
	if err != nil {
		return nil, err
	}
	g := &consortium.Agreement{Size: agreed, Root: consortium.EmptyRoot()}
	if agreed > 0 {
		o, err := ours(agreed)
		if err != nil {
			return nil, err
		}
		t, err := theirs(agreed)
		if err != nil {
			return nil, err
		}
		g.Root = o.root
		if mineIsA {
			g.ProofA, g.ProofB = o.proof, t.proof
		} else {
			g.ProofA, g.ProofB = t.proof, o.proof
		}
	}
	o, err := ours(agreed + 1)
	if err != nil {
		return nil, err
	}
	t, err := theirs(agreed + 1)
	if err != nil {
		return nil, err
	}
	if mineIsA {
		g.NextA, g.NextProofA, g.NextB, g.NextProofB = o.root, o.proof, t.root, t.proof
	} else {
		g.NextA, g.NextProofA, g.NextB, g.NextProofB = t.root, t.proof, o.root, o.proof
	}
	return g, nil
}

// reachCutoffLater starts, unless one runs, a background fetch of the entries of member's forked
// log that the state applies but this node lacks (it fell behind before the log froze).
func (n *Node) reachCutoffLater(member string) {
	n.runOnce("!cutoff/"+member, func() {
		for i, p := range n.alivePeers() {
			if i == maxResolvePeers || n.ctx.Err() != nil || n.atCutoff(member) {
				return
			}
			if err := n.fetchAgreed(p, member); err != nil {
				n.log.Debug("fetch up to the cutoff", "log", member, "peer", p, "err", err)
			}
		}
	})
}

// atCutoff reports whether the node holds member's log up to its cutoff (or has no cutoff).
func (n *Node) atCutoff(member string) bool {
	f, ok := n.store.Cutoffs()[member]
	return !ok || n.store.Size(member) >= f
}

// fetchAgreed streams member's log from peer, from the stored size up to the cutoff, verifying
// each chunk against the checkpoint of the evidence the peer serves (see [store.Store.AppendAgreed]).
func (n *Node) fetchAgreed(peer, member string) error {
	c, err := n.client(peer)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.RequestTimeout)
	defer cancel()
	pos := n.store.Size(member)
	cutoff := n.store.Cutoffs()[member]
	stream, err := c.GetRange(ctx, &pb.RangeRequest{Member: member, Start: pos})
	if err != nil {
		return err
	}
	var cp *consortium.Checkpoint
	var link []consortium.Hash
	for pos < cutoff {
		chunk, err := stream.Recv()
		if err != nil {
			return err
		}
		if cp == nil {
			if cp, err = n.openCheckpoint(chunk.Checkpoint); err != nil || cp.Member != member {
				return n.badPeer(peer, member, fmt.Sprintf("range without a valid checkpoint of %s: %v", member, err))
			}
			if link, err = n.agreedLink(c, cp); err != nil {
				return err
			}
		}
		if chunk.Start != pos {
			return n.badPeer(peer, member, fmt.Sprintf("chunk starts at %d, expected %d", chunk.Start, pos))
		}
		proof, err := bytesToHashes(chunk.ConsistencyProof)
		if err != nil {
			return n.badPeer(peer, member, err.Error())
		}
		entries := chunk.Entries
		if uint64(len(entries)) > cutoff-pos {
			entries, proof = entries[:cutoff-pos], nil // checked against the agreed root
		}
		if err := n.store.AppendAgreed(cp, link, pos, entries, proof); err != nil {
			return err
		}
		pos += uint64(len(entries))
	}
	return nil
}

// agreedLink returns a consistency proof from the cutoff's agreed tree to cp: the evidence's own
// proof when cp is one of its checkpoints, else the peer's (checked by the store).
func (n *Node) agreedLink(c pb.PeerServiceClient, cp *consortium.Checkpoint) ([]consortium.Hash, error) {
	ev := n.store.Evidence()[cp.Member]
	if !ev.Resolved() {
		return nil, fmt.Errorf("%w: no resolved evidence against %q", errNoFork, cp.Member)
	}
	g := ev.Agreement
	switch {
	case cp.Same(ev.A):
		return g.ProofA, nil
	case cp.Same(ev.B):
		return g.ProofB, nil
	}
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.RequestTimeout)
	defer cancel()
	resp, err := c.GetConsistency(ctx, &pb.ConsistencyRequest{Member: cp.Member, OldSize: g.Size, NewSize: cp.Size})
	if err != nil {
		return nil, err
	}
	return bytesToHashes(resp.Proof)
}
