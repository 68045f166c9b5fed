package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/hashfed/hashfed/consortium"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

func runRoster(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usageErr("roster needs a step: show, propose or endorse")
	}
	if isHelp(args[0]) {
		return stepsHelp(e, "roster")
	}
	switch args[0] {
	case "show":
		return rosterShow(ctx, e, args[1:])
	case "propose":
		return rosterPropose(ctx, e, args[1:])
	case "endorse":
		return rosterEndorse(ctx, e, args[1:])
	}
	return usageErr("unknown roster step %q: want show, propose or endorse", args[0])
}

func rosterShow(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "roster show", "")
	var nf nodeFlags
	nf.register(fs, e)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	st, err := fetchStatus(ctx, &nf)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "roster epoch %d\n", st.RosterEpoch)
	for _, m := range st.Roster {
		fmt.Fprintf(e.stdout, "  %-8s %s\n", consortium.RoleName(m.Role), m.Id)
	}
	for _, p := range st.Proposals {
		fmt.Fprintf(e.stdout, "proposal %s by %s for epoch %d: %s; votes %d of %d needed (%s)", p.Hash, p.Author, p.Epoch, p.Changes, len(p.Votes), p.Needed, strings.Join(p.Votes, ", "))
		if p.Invalid != "" {
			fmt.Fprintf(e.stdout, "; cannot win: %s", p.Invalid)
		}
		fmt.Fprintln(e.stdout)
	}
	return nil
}

func rosterPropose(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "roster propose", "[--admit KEY.pub]... [--observer KEY.pub]... [--civil-society KEY.pub]... [--authority KEY.pub]... [--remove ID]... [--quorum N] [--text T]")
	var nf nodeFlags
	nf.register(fs, e)
	var admit, observe, civil, authority, remove listFlag
	fs.Var(&admit, "admit", "admit a member with this public key file (repeat)")
	fs.Var(&observe, "observer", "admit an observer with this public key file (repeat)")
	fs.Var(&civil, "civil-society", "admit a civil-society participant, who certifies accounts and content as protected, with this public key file (repeat)")
	fs.Var(&authority, "authority", "admit a referral authority, who refers content to members, with this public key file (repeat)")
	fs.Var(&remove, "remove", "remove this member id (repeat)")
	quorum := fs.Int("quorum", 0, "set the configured quorum")
	text := fs.String("text", "", "why")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	var changes []*pb.RosterChange
	for _, f := range admit {
		p, err := loadPublicKey(f)
		if err != nil {
			return err
		}
		changes = append(changes, consortium.AdmitChange(p, pb.Role_ROLE_MEMBER))
	}
	for _, g := range []struct {
		files listFlag
		role  pb.Role
	}{{observe, pb.Role_ROLE_OBSERVER}, {civil, pb.Role_ROLE_CIVIL_SOCIETY}, {authority, pb.Role_ROLE_AUTHORITY}} {
		for _, f := range g.files {
			p, err := loadPublicKey(f)
			if err != nil {
				return err
			}
			changes = append(changes, consortium.AdmitChange(p, g.role))
		}
	}
	for _, id := range remove {
		changes = append(changes, consortium.RemoveChange(id))
	}
	if *quorum > 0 {
		changes = append(changes, consortium.QuorumChange(uint32(*quorum)))
	}
	if len(changes) == 0 {
		return usageErr("roster propose needs at least one of --admit, --observer, --remove, --quorum (or --civil-society, --authority)")
	}
	st, err := fetchStatus(ctx, &nf)
	if err != nil {
		return err
	}
	// The proposal names its author, the member whose log the node writes it in.
	en, err := consortium.NewPropose(0, st.Member, st.RosterEpoch, *text, changes...)
	if err != nil {
		return err
	}
	results, err := send(ctx, &nf, []*pb.Entry{en}, nf.timeout)
	if err != nil {
		return err
	}
	r := results[0]
	if r.Error != "" {
		return fmt.Errorf("proposal refused: %s", r.Error)
	}
	h := consortium.LeafHash(r.Entry)
	fmt.Fprintf(e.stdout, "proposed for epoch %d: %s\nproposal %s\nother members endorse it with: hashfed roster endorse %s\n", st.RosterEpoch, consortium.DescribeChanges(changes), hex.EncodeToString(h[:]), hex.EncodeToString(h[:]))
	return nil
}

func rosterEndorse(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "roster endorse", "PROPOSAL")
	var nf nodeFlags
	nf.register(fs, e)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("roster endorse needs the proposal's hash (hashfed roster show lists them)")
	}
	var h consortium.Hash
	if len(pos[0]) != 2*consortium.HashSize {
		return usageErr("proposal %q is not 64 hex digits", pos[0])
	}
	if _, err := hex.Decode(h[:], []byte(pos[0])); err != nil {
		return usageErr("proposal %q is not 64 hex digits", pos[0])
	}
	hexHash := hex.EncodeToString(h[:]) // as the node writes it: lowercase
	st, err := fetchStatus(ctx, &nf)
	if err != nil {
		return err
	}
	var found *pb.ProposalView
	for _, p := range st.Proposals {
		if p.Hash == hexHash {
			found = p
		}
	}
	switch {
	case found == nil:
		return fmt.Errorf("proposal %s is not pending at node %s (roster epoch %d): it was already adopted or superseded, was never made, or has not reached this node yet; hashfed roster show lists the pending ones", hexHash, st.Member, st.RosterEpoch)
	case found.Invalid != "":
		return fmt.Errorf("proposal %s cannot be adopted: %s", hexHash, found.Invalid)
	case slices.Contains(found.Votes, st.Member):
		return fmt.Errorf("%s has already voted for proposal %s (%d of %d votes)", st.Member, hexHash, len(found.Votes), found.Needed)
	}
	epoch := found.Epoch
	en, err := consortium.NewEndorse(0, epoch, h)
	if err != nil {
		return err
	}
	return submit(ctx, e, &nf, []*pb.Entry{en}, []string{"proposal " + hexHash}, "endorsed")
}
