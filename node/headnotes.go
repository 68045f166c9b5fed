package node

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashfed/hashfed/consortium"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// Heads notes (section 4.5 of PROTOCOL.md) say which logs exist and how far they had grown, so that
// an audit bundle from which a log was removed, or rolled back, fails the audit. A node signs its
// own when it exports a bundle and for its Heads exchanges, where each side sends its own (the same
// one again while its heads do not change, for up to headsNoteMaxAge); it keeps
// the latest note of each peer and exports them all.

// headsNoteRefresh is how much newer than the stored one a peer's note naming the same logs must be
// to be stored (each Heads exchange carries a fresh one; storing each would be a disk write per
// exchange). A note held a little stale only covers a little less.
const headsNoteRefresh = 10 * time.Second

// headsNoteMaxAge is how long the node sends its last heads note again in Heads exchanges while its
// heads do not change, instead of signing a new one per exchange (replicas and peers call Heads
// several times a second). It is well below headsNoteRefresh, so a receiver stores notes as
// fresh as before within a second; the note states nothing untrue meanwhile (the heads it names
// are still the node's heads), and any change of heads is signed at once.
const headsNoteMaxAge = time.Second

// headsNoteCache is the last heads note the node signed for a Heads exchange, with the heads it
// names and its time.
type headsNoteCache struct {
	mu    sync.Mutex
	heads []consortium.LogHead
	at    time.Time
	note  []byte
}

// headsOf returns the heads of the given checkpoints, by member: the size, root and author's
// signature of each non-empty log, sorted by member id.
func headsOf(cps map[string]*consortium.Checkpoint) ([]consortium.LogHead, error) {
	var heads []consortium.LogHead
	for m, cp := range cps {
		if cp == nil || cp.Size == 0 {
			continue
		}
		h, err := consortium.HeadOf(cp)
		if err != nil {
			return nil, fmt.Errorf("head of %s: %w", m, err)
		}
		heads = append(heads, h)
	}
	slices.SortFunc(heads, func(a, b consortium.LogHead) int { return strings.Compare(a.Member, b.Member) })
	return heads, nil
}

// signHeadsNoteOf signs a heads note of the given checkpoints, by member.
func (n *Node) signHeadsNoteOf(cps map[string]*consortium.Checkpoint) ([]byte, error) {
	heads, err := headsOf(cps)
	if err != nil {
		return nil, err
	}
	return consortium.SignHeads(n.g.ID, n.key, n.now(), heads)
}

// ownHeadsNote is this node's heads note for a Heads exchange (the latest verified checkpoint of
// every non-empty log it holds), or nil (logged) when it cannot sign. The last one is sent again
// while the heads are the same and it is less than headsNoteMaxAge old.
func (n *Node) ownHeadsNote() []byte {
	if n.replica() {
		return nil // a read replica's key is no member's
	}
	heads, err := headsOf(n.store.Heads())
	if err != nil {
		n.log.Warn("sign heads note", "err", err)
		return nil
	}
	c := &n.headsCache
	c.mu.Lock()
	defer c.mu.Unlock()
	now := n.now()
	if age := now.Sub(c.at); c.note != nil && age >= 0 && age < headsNoteMaxAge && slices.Equal(c.heads, heads) {
		return c.note
	}
	b, err := consortium.SignHeads(n.g.ID, n.key, now, heads)
	if err != nil {
		n.log.Warn("sign heads note", "err", err)
		return nil
	}
	c.heads, c.at, c.note = heads, now, b
	return b
}

// takeHeadsNote verifies a heads note that peer from sent in a Heads exchange, which must be
// from's own, and stores it when it is newer than the one held by headsNoteRefresh. Nothing
// unverified is stored.
func (n *Node) takeHeadsNote(from string, raw []byte) {
	if len(raw) == 0 {
		return
	}
	var h *consortium.HeadsNote
	var err error
	n.store.View(func(s *consortium.State) { h, err = consortium.OpenHeads(n.g.ID, s, raw) })
	if err == nil && h.Signer != from {
		err = fmt.Errorf("%w: heads note of %s sent by %s", consortium.ErrNotPermitted, h.Signer, from)
	}
	if errors.Is(err, consortium.ErrUnknownMember) {
		// It names a log of a member this node has not learnt of yet (an admission on its way).
		n.log.Debug("heads note names an unknown member; ignored for now", "peer", from, "err", err)
		return
	}
	if err != nil {
		n.log.Warn("peer sent a heads note that does not verify; ignored", "peer", from, "err", err)
		return
	}
	minAge := headsNoteRefresh
	if old, err := n.store.HeadsNote(from); err == nil && !slices.Equal(headsLogIDs(old), headsLogIDs(raw)) {
		minAge = 0 // a log appeared (or went): keep the news at once
	}
	if _, err := n.store.PutHeadsNote(h, minAge); err != nil {
		n.log.Warn("store heads note", "member", from, "err", err)
	}
}

// headsLogIDs returns the member ids of the log lines of a heads note's text, in order.
func headsLogIDs(note []byte) []string {
	var ids []string
	for line := range strings.SplitSeq(string(note), "\n") {
		if line == "" {
			break // the end of the text
		}
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "log" {
			ids = append(ids, f[1])
		}
	}
	return ids
}

// exportHeadsNotes sends, for an audit bundle of the logs up to exported (the checkpoints whose
// logs the bundle holds; sizes are the numbers of entries the bundle holds of each log, agreed
// entries of a forked log included, and cutoffs those of the evidence it holds), the node's own
// heads note of exactly those checkpoints and the latest note of every other member the node holds
// (PROTOCOL.md section 4.5). A note is left out only when the node lags behind it on a log the
// bundle holds (the bundle would fail its audit as rolled back though nothing is hidden) and it
// names no log the bundle lacks. A note naming a log the bundle does not hold at all is kept: it is
// the only signed word in the bundle that the log exists, and leaving it out would let the bundle
// pass without the log; the audit then fails as omitted, naming it. A note naming a forked log
// beyond its cutoff is kept when the bundle holds the log up to the cutoff (the audit warns). A
// note naming another root at a size the node holds is kept: the log's author signed two
// histories, which the audit must report.
func (n *Node) exportHeadsNotes(send func(*pb.LogChunk) error, exported map[string]*consortium.Checkpoint, sizes, cutoffs map[string]uint64) error {
	held, err := n.store.HeadsNotes()
	if err != nil {
		return err
	}
	for m, raw := range held {
		var h *consortium.HeadsNote
		n.store.View(func(s *consortium.State) { h, err = consortium.OpenHeads(n.g.ID, s, raw) })
		if err != nil {
			delete(held, m)
			continue
		}
		lags, absent := "", ""
		for _, hd := range h.Heads {
			size := sizes[hd.Member]
			if f, cut := cutoffs[hd.Member]; size >= hd.Size || cut && size >= f {
				continue
			}
			if size == 0 {
				absent = hd.Member
			} else if lags == "" {
				lags = hd.Member
			}
		}
		switch {
		case absent != "":
			n.log.Warn("audit bundle: a heads note names a log this node holds none of; kept, so the audit reports the log omitted", "signer", m, "log", absent)
		case lags != "":
			n.log.Info("heads note left out of the audit bundle: this node lags behind it", "signer", m, "log", lags)
			delete(held, m)
		}
	}
	if !n.replica() { // a read replica's key is no member's: it exports the notes it holds
		own, err := n.signHeadsNoteOf(exported)
		if err != nil {
			return fmt.Errorf("sign heads note: %w", err)
		}
		held[n.id] = own
	}
	ids := make([]string, 0, len(held))
	for m := range held {
		ids = append(ids, m)
	}
	slices.Sort(ids)
	for _, m := range ids {
		if err := send(&pb.LogChunk{Member: m, Heads: held[m]}); err != nil {
			return err
		}
	}
	return nil
}
