package node

import (
	"context"
	"fmt"
	"net/http"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/console"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// consoleHandler returns the web console (internal/console) over this node, or a handler that
// says why it is unavailable.
func (n *Node) consoleHandler() http.Handler {
	c, err := console.New(console.Config{Token: n.cfg.MemberToken, Store: n.store, Node: n, Logger: n.log, HashVideo: n.cfg.ConsoleHashVideo})
	if err != nil {
		n.log.Error("console unavailable", "err", err)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusInternalServerError, "console unavailable: "+err.Error())
		})
	}
	return c
}

// AuditInput returns what `hashfed audit export` writes, read from this node's store: the
// genesis, every log up to its latest checkpoint with that checkpoint, the heads notes and the
// equivocation evidence.
func (n *Node) AuditInput(ctx context.Context) (consortium.AuditInput, error) {
	in := consortium.AuditInput{Logs: consortium.Logs{}, Leaves: map[string][]consortium.Hash{}, Checkpoints: map[string][][]byte{}, Heads: map[string][]byte{}}
	err := n.exportLogs(ctx, func(ch *pb.LogChunk) error {
		switch {
		case len(ch.Genesis) > 0:
			in.Genesis = ch.Genesis
		case len(ch.Evidence) > 0:
			in.Evidence = append(in.Evidence, ch.Evidence)
		case len(ch.Heads) > 0:
			in.Heads[ch.Member] = ch.Heads
		default:
			if uint64(len(in.Logs[ch.Member])) != ch.Start {
				return fmt.Errorf("export of %s from %d, expected %d", ch.Member, ch.Start, len(in.Logs[ch.Member]))
			}
			in.Logs[ch.Member] = append(in.Logs[ch.Member], ch.Entries...)
			for _, e := range ch.Entries {
				in.Leaves[ch.Member] = append(in.Leaves[ch.Member], consortium.LeafHash(e))
			}
			if len(ch.Checkpoint) > 0 {
				in.Checkpoints[ch.Member] = append(in.Checkpoints[ch.Member], ch.Checkpoint)
			}
		}
		return nil
	})
	return in, err
}
