package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/hashfed/hashfed/consortium"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// The commands of the civil-society and authority roles (PROTOCOL.md sections 15 and 15):
// certify, uncertify and certifications (the protected list); refer, referrals and answer.

// signalPairs reads signals from positional TYPE VALUE [TYPE VALUE]... arguments.
func signalPairs(pos []string) ([]consortium.Signal, error) {
	if len(pos) == 0 || len(pos)%2 != 0 {
		return nil, usageErr("want TYPE VALUE pairs (e.g. url https://social.example/@account pdq f8f8…), got %d arguments", len(pos))
	}
	var out []consortium.Signal
	for i := 0; i < len(pos); i += 2 {
		s, err := consortium.ParseSignal(pos[i], pos[i+1])
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// parseHashArg reads a 64-hex-digit leaf hash naming a certification or referral.
func parseHashArg(what, s string) (consortium.Hash, error) {
	var h consortium.Hash
	if len(s) != 2*consortium.HashSize {
		return h, usageErr("%s %q is not 64 hex digits", what, s)
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, usageErr("%s %q is not 64 hex digits", what, s)
	}
	return h, nil
}

// submitOne submits one entry and prints its leaf hash, by which others name it.
func submitOne(ctx context.Context, e *env, nf *nodeFlags, en *pb.Entry, what string) (consortium.Hash, error) {
	results, err := send(ctx, nf, []*pb.Entry{en}, nf.timeout)
	if err != nil {
		return consortium.Hash{}, err
	}
	r := results[0]
	if r.Error != "" {
		return consortium.Hash{}, fmt.Errorf("%s refused: %s", what, r.Error)
	}
	return consortium.LeafHash(r.Entry), nil
}

func runCertify(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "certify", "TYPE VALUE [TYPE VALUE]... --category C --reason R [--subject S] [--expires 90d]")
	var nf nodeFlags
	nf.register(fs, e)
	category := fs.String("category", "", "what it is: "+strings.Join(consortium.Categories(), ", ")+" (required)")
	reason := fs.String("reason", "", "why it is protected (required)")
	subject := fs.String("subject", "", "what is certified, for people: the account's handle or URL")
	expires := fs.String("expires", "", "when the certification lapses: 90d, 12h or an RFC 3339 time (default never)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	sigs, err := signalPairs(pos)
	if err != nil {
		return err
	}
	if *category == "" || *reason == "" {
		return usageErr("certify needs --category (%s) and --reason", strings.Join(consortium.Categories(), ", "))
	}
	cat, err := consortium.ParseCategory(*category)
	if err != nil {
		return err
	}
	exp, err := parseExpiry(*expires, time.Now())
	if err != nil {
		return err
	}
	st, err := fetchStatus(ctx, &nf)
	if err != nil {
		return err
	}
	en, err := consortium.NewCertify(0, st.Member, sigs, cat, *reason, consortium.CertifyOptions{Subject: *subject, ExpiresUnixMs: exp})
	if err != nil {
		return err
	}
	h, err := submitOne(ctx, e, &nf, en, "certification")
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "certified %d signals as %s\ncertification %x\n", len(en.GetCertify().GetSignals()), *category, h[:])
	return nil
}

func runUncertify(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "uncertify", "CERTIFICATION [--reason R]")
	var nf nodeFlags
	nf.register(fs, e)
	reason := fs.String("reason", "", "why")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("uncertify needs the certification's hash (hashfed certifications lists them)")
	}
	h, err := parseHashArg("certification", pos[0])
	if err != nil {
		return err
	}
	en, err := consortium.NewUncertify(0, h, *reason)
	if err != nil {
		return err
	}
	return submit(ctx, e, &nf, []*pb.Entry{en}, []string{"certification " + pos[0][:12] + "…"}, "withdrew")
}

func runCertifications(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "certifications", "[--json]")
	var nf nodeFlags
	nf.register(fs, e)
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	c, err := nf.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	cctx, cancel := c.Ctx(ctx, nf.timeout)
	defer cancel()
	resp, err := c.MemberServiceClient.Certifications(cctx, &pb.CertificationsRequest{})
	if err != nil {
		return c.Err(err)
	}
	if *asJSON {
		return printProtoJSON(e, resp)
	}
	if len(resp.Certifications) == 0 {
		fmt.Fprintln(e.stdout, "no certifications in force")
	}
	for _, p := range resp.Certifications {
		printProtection(e, "", p)
	}
	return nil
}

func printProtoJSON(e *env, m proto.Message) error {
	b, err := protojson.MarshalOptions{UseProtoNames: true, Multiline: true}.Marshal(m)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, string(b))
	return nil
}

// printProtection prints one certification, indented.
func printProtection(e *env, indent string, p *pb.Protection) {
	subject := ""
	if p.Subject != "" {
		subject = " " + p.Subject
	}
	fmt.Fprintf(e.stdout, "%sPROTECTED%s: %s, certified by %s (entry %d, %s): %s\n", indent, subject, consortium.CategoryName(p.Category),
		p.Author, p.Index, time.UnixMilli(p.TimeUnixMs).UTC().Format(time.RFC3339), p.Reason)
	if p.ExpiresUnixMs != 0 {
		fmt.Fprintf(e.stdout, "%s  expires %s\n", indent, time.UnixMilli(p.ExpiresUnixMs).UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(e.stdout, "%s  certification %x\n", indent, p.Certification)
}

func runRefer(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "refer", "TYPE VALUE [TYPE VALUE]... --basis B [--order REF] [--deadline 1h] [--to ID]... [--note N]")
	var nf nodeFlags
	nf.register(fs, e)
	basis := fs.String("basis", "", "the legal basis of the referral (required)")
	order := fs.String("order", "", "the reference of a removal order or case")
	deadline := fs.String("deadline", "1h", "when answers are due: a duration like 1h, 90d, or an RFC 3339 time")
	note := fs.String("note", "", "free text for the members' reviewers")
	var to listFlag
	fs.Var(&to, "to", "a member addressed (repeat; default every member)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	sigs, err := signalPairs(pos)
	if err != nil {
		return err
	}
	if *basis == "" {
		return usageErr("refer needs --basis (the law or power the referral rests on)")
	}
	due, err := parseExpiry(*deadline, time.Now())
	if err != nil {
		return err
	}
	st, err := fetchStatus(ctx, &nf)
	if err != nil {
		return err
	}
	en, err := consortium.NewRefer(0, st.Member, sigs, *basis, due, consortium.ReferOptions{OrderRef: *order, To: to, Note: *note})
	if err != nil {
		return err
	}
	h, err := submitOne(ctx, e, &nf, en, "referral")
	if err != nil {
		return err
	}
	who := "every member"
	if len(to) > 0 {
		who = strings.Join(en.GetRefer().GetTo(), ", ")
	}
	fmt.Fprintf(e.stdout, "referred %d signals to %s, due %s\nreferral %x\n", len(en.GetRefer().GetSignals()), who, time.UnixMilli(due).UTC().Format(time.RFC3339), h[:])
	return nil
}

func runReferrals(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "referrals", "[--all] [--json]")
	var nf nodeFlags
	nf.register(fs, e)
	all := fs.Bool("all", false, "every referral in force with its answers, not only those open for this node's member")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	c, err := nf.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	cctx, cancel := c.Ctx(ctx, nf.timeout)
	defer cancel()
	resp, err := c.MemberServiceClient.Referrals(cctx, &pb.ReferralsRequest{All: *all})
	if err != nil {
		return c.Err(err)
	}
	if *asJSON {
		return printProtoJSON(e, resp)
	}
	if len(resp.Referrals) == 0 {
		if *all {
			fmt.Fprintln(e.stdout, "no referrals")
		} else {
			fmt.Fprintln(e.stdout, "no open referrals")
		}
	}
	now := time.Now()
	for _, r := range resp.Referrals {
		deadline := time.UnixMilli(r.DeadlineUnixMs).UTC()
		fmt.Fprintf(e.stdout, "REFERRAL %x by %s at %s, deadline %s (%s)\n", r.Referral, r.Author, time.UnixMilli(r.TimeUnixMs).UTC().Format(time.RFC3339), deadline.Format(time.RFC3339), dueIn(deadline, now))
		basis := r.LegalBasis
		if r.OrderRef != "" {
			basis += "; order " + r.OrderRef
		}
		fmt.Fprintf(e.stdout, "  legal basis: %s\n", basis)
		if r.Note != "" {
			fmt.Fprintf(e.stdout, "  note: %s\n", r.Note)
		}
		for _, s := range r.Signals {
			sig, _ := consortium.SignalFromProto(s)
			fmt.Fprintf(e.stdout, "  signal %s\n", sig)
		}
		fmt.Fprintf(e.stdout, "  addressed to %s\n", strings.Join(r.Addressed, ", "))
		for _, a := range r.Answers {
			late := ""
			if a.Late {
				late = ", after the deadline"
			}
			reason := ""
			if a.Reason != "" {
				reason = ": " + a.Reason
			}
			fmt.Fprintf(e.stdout, "  answer of %s: %s (entry %d) after %s%s%s\n", a.Member, consortium.OutcomeName(a.Outcome), a.Index, (time.Duration(a.DelayMs) * time.Millisecond).String(), late, reason)
		}
	}
	return nil
}

// dueIn says how long until a referral's deadline, or how long it is overdue.
func dueIn(deadline, now time.Time) string {
	if now.After(deadline) {
		return "OVERDUE by " + now.Sub(deadline).Round(time.Second).String()
	}
	return "due in " + deadline.Sub(now).Round(time.Second).String()
}

func runAnswer(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "answer", "REFERRAL listed|declined [--reason R]")
	var nf nodeFlags
	nf.register(fs, e)
	reason := fs.String("reason", "", "why (required when declined)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usageErr("answer needs the referral's hash (hashfed referrals lists them) and listed or declined")
	}
	h, err := parseHashArg("referral", pos[0])
	if err != nil {
		return err
	}
	o, err := consortium.ParseOutcome(pos[1])
	if err != nil {
		return err
	}
	en, err := consortium.NewAnswer(0, h, o, *reason)
	if err != nil {
		return err
	}
	return submit(ctx, e, &nf, []*pb.Entry{en}, []string{"referral " + pos[0][:12] + "… (" + pos[1] + ")"}, "answered")
}
