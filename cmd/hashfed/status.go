package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/node"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"google.golang.org/protobuf/proto"
)

// stableJSON renders a message as indented JSON in the shape of the HTTP API (/v1/status gives
// the same): see [node.MessageJSON].
func stableJSON(m proto.Message) string {
	out, _ := json.MarshalIndent(node.MessageJSON(m), "", "  ")
	return string(out)
}

func runStatus(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "status", "[--json]")
	var nf nodeFlags
	nf.register(fs, e)
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	st, err := fetchStatus(ctx, &nf)
	if err != nil {
		return err
	}
	if *asJSON {
		fmt.Fprintln(e.stdout, stableJSON(st))
		return nil
	}
	w := e.stdout
	fmt.Fprintf(w, "node %s of %q (consortium %s…), up %s\n", st.Member, st.ConsortiumName, st.Consortium[:16], (time.Duration(st.UptimeMs) * time.Millisecond).Round(time.Second))
	var ids []string
	for _, m := range st.Roster {
		ids = append(ids, m.Id+"/"+consortium.RoleName(m.Role))
	}
	fmt.Fprintf(w, "roster epoch %d: %s\n", st.RosterEpoch, strings.Join(ids, ", "))
	fmt.Fprintf(w, "version %s\n", st.Version)
	fmt.Fprintf(w, "addresses: member API %s, peer API %s, gossip %s, http %s\n", orOff(st.MemberAddress), orOff(st.PeerAddress), orOff(st.GossipAddress), orOff(st.HttpAddress))
	hide := "never hidden"
	if st.DisputeThreshold > 0 {
		hide = fmt.Sprintf("hidden when %d members call it a false positive", st.DisputeThreshold)
	}
	fmt.Fprintf(w, "policy: pdq quality gate %d; disputed signals %s\n", st.QualityGate, hide)
	fmt.Fprintf(w, "shared set: %d signals, %d listings; state digest %s\n", st.Signals, st.Listings, st.StateDigest)
	if st.GossipIsolated {
		fmt.Fprintf(w, "GOSSIP ISOLATED: this node sees no other node; it keeps trying to rejoin (check the peers' addresses and the network)\n")
	} else {
		suspect := ""
		if st.GossipSuspect > 0 {
			suspect = fmt.Sprintf("; %d suspected of failing", st.GossipSuspect)
		}
		fmt.Fprintf(w, "gossip: %d nodes alive, this one included%s\n", st.GossipNodes, suspect)
	}
	if len(st.Proposals) == 0 {
		fmt.Fprintln(w, "pending proposals: none")
	}
	fmt.Fprintln(w, openReferrals(st, time.Now()))
	if st.RejectedEntries > 0 {
		fmt.Fprintf(w, "entries replay ignored (rule violations): %d\n", st.RejectedEntries)
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LOG\tENTRIES\tCHECKPOINT\tLAG\tCOSIGNED BY\t")
	for _, l := range st.Logs {
		flag := ""
		if l.Forked {
			flag = "  EQUIVOCATED"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\n", l.Member, l.Size, l.CheckpointSize, l.Lag, strings.Join(l.Cosigners, ","), flag)
	}
	tw.Flush()
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tSTATE\tADDRESS\tLAST CONTACT\tLAST ERROR\t")
	for _, p := range st.Peers {
		last := "never"
		if p.LastContactUnixMs > 0 {
			last = time.Since(time.UnixMilli(p.LastContactUnixMs)).Round(100*time.Millisecond).String() + " ago"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", p.Member, p.State, p.Address, last, p.LastError)
	}
	tw.Flush()
	for _, p := range st.Proposals {
		fmt.Fprintf(w, "pending proposal %s by %s: %s (%d of %d votes)\n", p.Hash, p.Author, p.Changes, len(p.Votes), p.Needed)
	}
	for _, q := range st.Equivocations {
		fmt.Fprintf(w, "EQUIVOCATION by %s: %s\n", q.Member, q.Description)
	}
	return nil
}

// openReferrals is the status line of the referrals awaiting this member's answer: how many, and
// when the next is due.
func openReferrals(st *pb.StatusResponse, now time.Time) string {
	if st.OpenReferrals == 0 {
		return fmt.Sprintf("open referrals for %s: none", st.Member)
	}
	deadline := time.UnixMilli(st.NextReferralDeadlineUnixMs).UTC()
	return fmt.Sprintf("open referrals for %s: %d (hashfed referrals lists them), the next deadline %s (%s)", st.Member, st.OpenReferrals, deadline.Format(time.RFC3339), dueIn(deadline, now))
}

// orOff is an address, or "off" when a listener is disabled.
func orOff(addr string) string {
	if addr == "" {
		return "off"
	}
	return addr
}
