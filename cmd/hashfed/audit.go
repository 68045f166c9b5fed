package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/memberclient"
)

func runAudit(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 && args[0] == "export" {
		return auditExport(ctx, e, args[1:])
	}
	fs := flagSet(e, "audit", "[--bundle DIR | --node ADDR] [--at TIME] [--require-cosignatures K] [--require-heads K] [--require-answers] [--json] [--report FILE]")
	var nf nodeFlags
	nf.register(fs, e)
	bundle := fs.String("bundle", "", "audit this bundle directory (hashfed audit export writes one) instead of a running node")
	at := fs.String("at", "", "compute the state at this time: a time ago (1h, 7d), a date (2026-01-31) or RFC 3339")
	k := fs.Int("require-cosignatures", 0, "fail a log whose checkpoint has fewer cosignatures by members of the final roster other than its author")
	h := fs.Int("require-heads", 1, "fail unless heads notes of at least this many members of the final roster say which logs exist (0: none required)")
	answers := fs.Bool("require-answers", false, "fail when a member a referral addresses answered after its deadline or not at all by then")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	report := fs.String("report", "", "also recompute this transparency report (hashfed report writes one, HTML or JSON) from the audited logs; fail if one number differs")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	var opt consortium.AuditOptions
	opt.RequireAnswers = *answers
	if *at != "" {
		t, err := parseAt(*at, time.Now())
		if err != nil {
			return err
		}
		opt.Until = t
	}
	opt.RequireCosignatures, opt.RequireHeads = *k, *h
	var in consortium.AuditInput
	var err error
	if *bundle != "" {
		in, err = memberclient.ReadBundle(*bundle)
	} else {
		in, err = fetchBundle(ctx, &nf)
	}
	if err != nil {
		return err
	}
	r := consortium.Audit(in, opt)
	if *asJSON {
		b, _ := json.MarshalIndent(r, "", "  ")
		fmt.Fprintln(e.stdout, string(b))
	} else {
		fmt.Fprint(e.stdout, r.String())
	}
	if !r.OK {
		return errSilent
	}
	if *report != "" {
		return checkReport(e, in, r, *report)
	}
	return nil
}

func auditExport(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "audit export", "--out DIR")
	var nf nodeFlags
	nf.register(fs, e)
	out := fs.String("out", "", "the bundle directory to write (must not exist)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usageErr("audit export needs --out DIR")
	}
	in, err := fetchBundle(ctx, &nf)
	if err != nil {
		return err
	}
	if err := memberclient.WriteBundle(*out, in); err != nil {
		return err
	}
	n := 0
	for _, l := range in.Logs {
		n += len(l)
	}
	fmt.Fprintf(e.stdout, "wrote %s: %d logs, %d entries, %d heads notes, %d evidence files\n", *out, len(in.Logs), n, len(in.Heads), len(in.Evidence))
	return nil
}
