package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/store"
)

// A node never extends its own log past what it knows its peers hold. Its store may be an older
// copy (restored from a backup) or new (after a disk was lost): an entry appended there, at an
// index its peers already hold a different entry at, and then signed, is a second history under the
// member's key, and every peer that sees both freezes the log for good. So the node only appends to
// and signs its own log once it holds at least the longest checkpoint of that log any peer it asked
// holds (fetched from them and verified against its own key, like any other log), and never while a
// longer checkpoint of it is known. See docs/PROTOCOL.md section 8 and docs/SECURITY.md.

// Errors of the node's own log, returned by [Node.Submit].
var (
	// ErrRestoring means the node is still restoring its own log from its peers and accepts no
	// entries yet; retry later.
	ErrRestoring = errors.New("own log is being restored from peers")
	// ErrOwnLogConflict means the node's stored log contradicts a checkpoint of it signed with the
	// member's key that a peer holds: the store is not a copy of this member's history.
	ErrOwnLogConflict = errors.New("own log contradicts a checkpoint of it that peers hold")
	// ErrSecondWriter means another node appends to and signs this member's log: a checkpoint of
	// it signed with the member's key extends entries this node appended and signed since it
	// started, so it was signed elsewhere (a copy of the data directory, or of the key, running
	// on a second machine). Two writers fork the log sooner or later, freezing it for good; this
	// node stops appending and signing until it is restarted.
	ErrSecondWriter = errors.New("another node writes this member's log")
)

// ownLog is the node's knowledge of its own log on the network.
type ownLog struct {
	mu sync.Mutex
	// restored is closed once the node heard the peers it must hear before it appends or signs.
	restored chan struct{}
	done     bool
	// seen is the size of the longest verified checkpoint of the node's own log heard from a peer.
	seen uint64
	// heard holds the peers that answered a head exchange since the node started; first is when
	// the first answered.
	heard    map[string]bool
	first    time.Time
	conflict string
	// base is the size of the own log when the restore completed; signed is the largest checkpoint
	// of it this node signed since it started. A checkpoint of the own log larger than signed, and
	// consistent with it, heard after this node signed entries it appended itself (signed > base),
	// was signed by a second writer: second says so.
	base, signed uint64
	second       string
}

// mustAskPeers reports whether the node must hear from a peer before it extends its own log: when
// it was told to recover, when it is configured to join peers, or when its store shows it had peers
// (another log, or a cosignature on its own checkpoint). A node with none of these is alone, as the
// first node of a new consortium is: there is no one to ask.
func (n *Node) mustAskPeers() bool {
	if n.cfg.Recover || len(n.cfg.Join) > 0 {
		return true
	}
	for m := range n.store.Heads() {
		if m != n.id {
			return true
		}
	}
	h, ok := n.store.Head(n.id)
	return ok && len(h.Cosigners) > 0
}

// startOwnRestore starts restoring the node's own log from its peers (at Start), unless there is
// no one to ask.
func (n *Node) startOwnRestore() {
	if !n.mustAskPeers() {
		n.finishOwnRestore("no peers configured or known from the store")
		return
	}
	n.log.Info("own log: asking peers for its latest checkpoint before appending to it or signing it", "have", n.store.Size(n.id))
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for !n.ownRestoreStep() {
			select {
			case <-n.ctx.Done():
				return
			case <-t.C:
			}
		}
		n.finishOwnRestore("")
	}()
}

func (n *Node) finishOwnRestore(why string) {
	n.own.mu.Lock()
	n.own.done = true
	n.own.base = n.store.Size(n.id)
	close(n.own.restored)
	seen, heard := n.own.seen, len(n.own.heard)
	n.own.mu.Unlock()
	n.log.Info("own log: ready to append and sign", "have", n.store.Size(n.id), "longest_seen", seen, "peers_asked", heard, "why", why)
	n.ownLogGrew() // sign what was appended before the stop, if anything
}

// ownRestoreStep exchanges heads with every live peer not heard yet, and reports whether the
// restore is complete: at least one peer answered, the node holds its own log up to the longest
// checkpoint of it heard, and every live peer answered (or RestoreGrace passed since the first did).
func (n *Node) ownRestoreStep() bool {
	var wg sync.WaitGroup
	for _, p := range n.alivePeers() {
		n.own.mu.Lock()
		asked := n.own.heard[p]
		n.own.mu.Unlock()
		if asked || n.ctx.Err() != nil {
			continue
		}
		wg.Go(func() {
			if err := n.exchangeHeadsAsking(p, true); err != nil {
				n.log.Debug("own log: head exchange", "peer", p, "err", err)
				return
			}
			n.own.mu.Lock()
			n.own.heard[p] = true
			if n.own.first.IsZero() {
				n.own.first = time.Now()
			}
			n.own.mu.Unlock()
		})
	}
	wg.Wait()
	if n.frozen(n.id) {
		return true // nothing to restore; submissions are refused for the evidence
	}
	alive := n.alivePeers()
	n.own.mu.Lock()
	heard, seen, first := len(n.own.heard), n.own.seen, n.own.first
	all := true
	for _, p := range alive {
		all = all && n.own.heard[p]
	}
	n.own.mu.Unlock()
	if heard == 0 {
		return false
	}
	if have := n.store.Size(n.id); have < seen {
		n.want(n.id, seen, "")
		return false
	}
	return all || time.Since(first) >= n.cfg.RestoreGrace
}

// sawOwnCheckpoint records a verified checkpoint of the node's own log heard from a peer, and
// whether the stored log contradicts it.
func (n *Node) sawOwnCheckpoint(cp *consortium.Checkpoint, obsErr error) {
	n.own.mu.Lock()
	defer n.own.mu.Unlock()
	if cp.Size > n.own.seen {
		n.own.seen = cp.Size
	}
	if obsErr == nil && n.own.done && n.own.signed > n.own.base && cp.Size > n.own.signed && n.own.second == "" {
		// This node signed up to n.own.signed, including entries it appended itself since it
		// started; a longer checkpoint consistent with it holds them, so it was signed by a node
		// that fetched them and appended after them: a second node with this member's key.
		n.own.second = fmt.Sprintf("a checkpoint of this member's log at size %d, signed with its key, extends the entries this node appended and signed up to size %d since it started, so another node signed it", cp.Size, n.own.signed)
		n.log.Error("own log: another node writes this member's log with its key (a copied data directory or key file?); this node appends and signs nothing more: stop one of the two nodes", "signed_here", n.own.signed, "signed_elsewhere", cp.Size)
	}
	if errors.Is(obsErr, consortium.ErrInconsistent) && n.own.conflict == "" {
		n.own.conflict = obsErr.Error()
		n.log.Error("own log: the stored log contradicts a checkpoint of it that a peer holds; signing nothing (move the store aside and start with --recover)", "err", obsErr)
	}
}

// ownSigned records that this node signed a checkpoint of its own log at size.
func (n *Node) ownSigned(size uint64) {
	n.own.mu.Lock()
	n.own.signed = max(n.own.signed, size)
	n.own.mu.Unlock()
}

// ownLogBlocked returns why the node may not append to or sign its own log now, or nil.
func (n *Node) ownLogBlocked() error {
	n.own.mu.Lock()
	done, seen, heard, conflict, second := n.own.done, n.own.seen, len(n.own.heard), n.own.conflict, n.own.second
	n.own.mu.Unlock()
	have := n.store.Size(n.id)
	switch {
	case second != "":
		return fmt.Errorf("%w: %s; two nodes writing one log fork it, and every peer then freezes it for good: stop the other node (or this one), then restart the one that stays", ErrSecondWriter, second)
	case conflict != "":
		return fmt.Errorf("%w: %s; this store is not a copy of this member's log: stop the node, move the store file aside, and start it with --recover", ErrOwnLogConflict, conflict)
	case !done && heard == 0:
		return fmt.Errorf("%w: no peer has answered yet (have %d entries); the node signs nothing until one does: check that peers are running and reachable, and that this node joins one (--join, gossip.join)", ErrRestoring, have)
	case !done || have < seen:
		return fmt.Errorf("%w: have %d entries, peers have seen %d; retry once the node has fetched them", ErrRestoring, have, seen)
	}
	return nil
}

// ownRestoreWait bounds how long a submission waits for the own log's restore before it is refused.
const ownRestoreWait = 10 * time.Second

// checkOwnLog returns why a submission to the node's own log is refused now, or nil: the own log is
// still being restored (after waiting a little for it), its member equivocated, or the member is
// not on the current roster.
func (n *Node) checkOwnLog(ctx context.Context) error {
	t := time.NewTimer(ownRestoreWait)
	select {
	case <-n.own.restored:
	case <-ctx.Done():
	case <-t.C:
	}
	t.Stop()
	if ev := n.store.Evidence()[n.id]; ev != nil {
		return fmt.Errorf("%w: this member's log is frozen: its key signed two histories (%s) and no peer accepts more of it; stop the node and investigate (is another node running with this key, or was an old copy of the store restored?)", store.ErrForked, ev.String())
	}
	var epoch uint64
	var on bool
	n.store.View(func(s *consortium.State) {
		r := s.Roster()
		epoch = r.Epoch
		_, on = r.Member(n.id)
	})
	if !on {
		return fmt.Errorf("%w: %q is not on the roster of epoch %d as far as this node's logs go (removed, or its admission not fetched yet); its entries would be ignored", consortium.ErrUnknownMember, n.id, epoch)
	}
	return n.ownLogBlocked()
}

// openStore opens the node's store. With Config.Recover, a damaged store file is moved aside (to
// hashfed.db.damaged-TIME, never deleted) and a new store is started, to be filled from the peers.
func openStore(cfg Config, opts store.Options) (*store.Store, error) {
	path := filepath.Join(cfg.DataDir, "hashfed.db")
	st, err := store.Open(path, cfg.Genesis, opts)
	if err == nil || !errors.Is(err, store.ErrDamaged) {
		return st, err
	}
	if !cfg.Recover {
		return nil, fmt.Errorf("%w\nrestore %s from a backup, or start the node with --recover to move it aside and restore this member's logs from its peers", err, path)
	}
	aside := fmt.Sprintf("%s.damaged-%s", path, time.Now().UTC().Format("20060102T150405Z"))
	for i := 2; ; i++ {
		// Never replace a file moved aside earlier.
		if _, serr := os.Lstat(aside); errors.Is(serr, os.ErrNotExist) {
			break
		}
		aside = fmt.Sprintf("%s.damaged-%s-%d", path, time.Now().UTC().Format("20060102T150405Z"), i)
	}
	if rerr := os.Rename(path, aside); rerr != nil {
		return nil, fmt.Errorf("%w\nrecover: cannot move it aside: %v", err, rerr)
	}
	cfg.Logger.Warn("recover: damaged store moved aside; starting a new store, to be restored from peers", "damaged", aside, "err", err)
	return store.Open(path, cfg.Genesis, opts)
}
