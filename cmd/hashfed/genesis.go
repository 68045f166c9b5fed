package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/memberclient"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

func runGenesis(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usageErr("genesis needs a step: draft, sign, finalize or show")
	}
	if isHelp(args[0]) {
		return stepsHelp(e, "genesis")
	}
	switch args[0] {
	case "draft":
		return genesisDraft(e, args[1:])
	case "sign":
		return genesisSign(e, args[1:])
	case "finalize":
		return genesisFinalize(e, args[1:])
	case "show":
		return genesisShow(e, args[1:])
	}
	return usageErr("unknown genesis step %q: want draft, sign, finalize or show", args[0])
}

func genesisDraft(e *env, args []string) error {
	fs := flagSet(e, "genesis draft", "--name NAME --member KEY.pub... [--observer KEY.pub...] --quorum N [--out FILE]")
	name := fs.String("name", "", "the consortium's name (required)")
	var ms, obs listFlag
	fs.Var(&ms, "member", "a founding member's public key file (repeat)")
	fs.Var(&obs, "observer", "a founding observer's public key file (repeat)")
	quorum := fs.Int("quorum", 0, "endorsements a roster change needs (default: a majority of the members)")
	out := fs.String("out", "genesis.draft", "draft file to write")
	created := fs.String("created", "", "creation time, RFC 3339 (default now)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *name == "" || len(ms) == 0 {
		return usageErr("genesis draft needs --name and at least one --member")
	}
	var members []consortium.Member
	for _, f := range ms {
		p, err := loadPublicKey(f)
		if err != nil {
			return err
		}
		members = append(members, consortium.Member{ID: p.ID, Key: p.Key, Role: pb.Role_ROLE_MEMBER})
	}
	for _, f := range obs {
		p, err := loadPublicKey(f)
		if err != nil {
			return err
		}
		members = append(members, consortium.Member{ID: p.ID, Key: p.Key, Role: pb.Role_ROLE_OBSERVER})
	}
	q := *quorum
	if q == 0 {
		q = len(ms)/2 + 1
	}
	t := time.Now()
	if *created != "" {
		var err error
		if t, err = time.Parse(time.RFC3339, *created); err != nil {
			return usageErr("--created: %v", err)
		}
	}
	file, err := consortium.NewGenesisDraft(*name, t, members, q)
	if err != nil {
		return err
	}
	if err := memberclient.WriteNew(*out, file, 0o644); err != nil {
		return err
	}
	g, _ := consortium.ParseGenesisDraft(file)
	fmt.Fprintf(e.stdout, "wrote %s: consortium %s\nnext: each founder runs hashfed genesis sign --key ID.key %s\n", *out, g.ID, *out)
	return nil
}

func genesisSign(e *env, args []string) error {
	fs := flagSet(e, "genesis sign", "--key ID.key FILE")
	keyFile := fs.String("key", "", "your private key file (required)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("genesis sign needs the draft file")
	}
	k, err := loadKey(*keyFile)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(pos[0])
	if err != nil {
		return err
	}
	signed, err := consortium.SignGenesis(b, k)
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	if err := writeAtomic(pos[0], signed, 0o644); err != nil {
		return err
	}
	g, _ := consortium.ParseGenesisDraft(signed)
	if m := g.Missing(); len(m) > 0 {
		fmt.Fprintf(e.stdout, "%s signed %s; still to sign: %s\n", k.ID(), pos[0], strings.Join(m, ", "))
	} else {
		fmt.Fprintf(e.stdout, "%s signed %s; every founder has signed: run hashfed genesis finalize %s\n", k.ID(), pos[0], pos[0])
	}
	return nil
}

func genesisFinalize(e *env, args []string) error {
	fs := flagSet(e, "genesis finalize", "FILE [--out genesis.bin]")
	out := fs.String("out", "genesis.bin", "the genesis file to write")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("genesis finalize needs the draft file")
	}
	b, err := os.ReadFile(pos[0])
	if err != nil {
		return err
	}
	g, err := consortium.ParseGenesis(b)
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	if err := memberclient.WriteNew(*out, g.Marshal(), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s\nconsortium %s\n", *out, g.ID)
	return nil
}

func genesisShow(e *env, args []string) error {
	fs := flagSet(e, "genesis show", "FILE")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("genesis show needs a file")
	}
	b, err := os.ReadFile(pos[0])
	if err != nil {
		return err
	}
	g, err := consortium.ParseGenesisDraft(b)
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	fmt.Fprintf(e.stdout, "consortium %s\nname %s\ncreated %s\nquorum %d\n", g.ID, g.Name, g.Created.Format(time.RFC3339), g.Quorum)
	for _, m := range g.Members {
		signed := "not signed"
		if _, ok := g.Signatures[m.ID]; ok {
			signed = "signed"
		}
		fmt.Fprintf(e.stdout, "%s %s %s (%s)\n", consortium.RoleName(m.Role), m.ID, m.PublicKey(), signed)
	}
	if m := g.Missing(); len(m) > 0 {
		fmt.Fprintf(e.stdout, "draft: waiting for %s\n", strings.Join(m, ", "))
	}
	return nil
}
