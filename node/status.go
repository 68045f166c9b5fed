package node

import (
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/version"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"github.com/hashicorp/memberlist"
)

// Status reports the node: roster, every log's size, checkpoint, lag and cosigners, peers, counts,
// the state digest, equivocations and pending proposals.
func (n *Node) Status() *pb.StatusResponse {
	st := &pb.StatusResponse{
		Member:         n.id,
		Consortium:     n.g.ID.String(),
		ConsortiumName: n.g.Name,
		FeedEnd:        n.store.FeedEnd(),
		UptimeMs:       time.Since(n.started).Milliseconds(),
		GossipNodes:    uint32(n.GossipMembers()),
		GossipIsolated: n.Isolated(),
		GossipSuspect:  uint32(n.gossipSuspect()),
		Version:        version.Version(),
		MemberAddress:  n.MemberAddr(),
		PeerAddress:    n.PeerAddr(),
		GossipAddress:  n.GossipAddr(),
		HttpAddress:    n.HTTPAddr(),
		// The state digest is cached by the store until the state changes: no scan of the set
		// when nothing changed.
		StateDigest:      hex.EncodeToString(digestBytes(n.store.Digest())),
		QualityGate:      uint32(n.cfg.Store.QualityGate),
		DisputeThreshold: uint32(n.cfg.Store.DisputeThreshold),
	}
	heads := n.store.Heads()
	sizes := n.store.Sizes()
	evidence := n.store.Evidence()
	n.store.View(func(s *consortium.State) {
		r := s.Roster()
		st.RosterEpoch = r.Epoch
		for _, m := range r.Members {
			st.Roster = append(st.Roster, &pb.RosterMember{Id: m.ID, Role: m.Role, PublicKey: m.PublicKey().String()})
		}
		sig, lst := s.Counts()
		st.Signals, st.Listings = uint64(sig), uint64(lst)
		_, rej := s.Rejections()
		st.RejectedEntries = uint64(rej)
		for _, p := range s.Proposals() {
			st.Proposals = append(st.Proposals, &pb.ProposalView{Hash: hex.EncodeToString(p.Hash[:]), Author: p.Author, Epoch: p.Epoch,
				Changes: consortium.DescribeChanges(p.Changes), Votes: p.Votes, Needed: uint32(p.Needed), Invalid: p.Invalid})
		}
		for _, r := range s.OpenReferrals(n.id) {
			st.OpenReferrals++
			if st.NextReferralDeadlineUnixMs == 0 || r.Deadline < st.NextReferralDeadlineUnixMs {
				st.NextReferralDeadlineUnixMs = r.Deadline
			}
		}
	})
	n.mu.Lock()
	members := map[string]bool{}
	for m := range sizes {
		members[m] = true
	}
	for m := range n.known {
		members[m] = true
	}
	for m := range heads {
		members[m] = true
	}
	ids := make([]string, 0, len(members))
	for m := range members {
		ids = append(ids, m)
	}
	slices.Sort(ids)
	for _, m := range ids {
		ls := &pb.LogStatus{Member: m, Size: sizes[m], KnownSize: max(n.known[m], sizes[m])}
		ls.Lag = ls.KnownSize - ls.Size
		if h := heads[m]; h != nil {
			ls.CheckpointSize = h.Size
			for _, c := range h.Cosigners {
				ls.Cosigners = append(ls.Cosigners, c.Member)
			}
		}
		ls.Forked = evidence[m] != nil
		st.Logs = append(st.Logs, ls)
	}
	now := time.Now()
	for _, p := range n.peers {
		ps := &pb.PeerStatus{Member: p.member, Address: p.addr, State: "dead", LastError: p.lastErr}
		if ps.Address == "" {
			ps.Address = p.provenAddr // remembered from before a restart
		}
		if p.refusedAddr != "" && now.Before(p.refusedUntil) {
			ps.LastError = fmt.Sprintf("address %s answered with another key; not dialled before %s", p.refusedAddr, p.refusedUntil.Format(time.TimeOnly))
			if p.lastErr != "" {
				ps.LastError += "; last error: " + p.lastErr // a read replica's says whose key answered
			}
			if a := p.dialAddr(now); a != "" {
				ps.Address = a
			}
		}
		if p.alive {
			ps.State = "alive"
		}
		if !p.lastContact.IsZero() {
			ps.LastContactUnixMs = p.lastContact.UnixMilli()
		}
		st.Peers = append(st.Peers, ps)
	}
	n.mu.Unlock()
	slices.SortFunc(st.Peers, func(a, b *pb.PeerStatus) int {
		if a.Member < b.Member {
			return -1
		}
		if a.Member > b.Member {
			return 1
		}
		return 0
	})
	for m, ev := range evidence {
		st.Equivocations = append(st.Equivocations, &pb.EquivocationStatus{Member: m, Description: ev.String(), Evidence: ev.Marshal()})
	}
	slices.SortFunc(st.Equivocations, func(a, b *pb.EquivocationStatus) int {
		if a.Member < b.Member {
			return -1
		}
		return 1
	})
	return st
}

func digestBytes(h consortium.Hash) []byte { return h[:] }

// gossipSuspect returns how many nodes gossip suspects of having failed.
func (n *Node) gossipSuspect() int {
	if n.ml == nil {
		return 0
	}
	k := 0
	for _, m := range n.ml.Members() {
		if m.State == memberlist.StateSuspect {
			k++
		}
	}
	return k
}
