package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/memberclient"
	"github.com/hashfed/hashfed/internal/reportpage"
)

func runReport(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "report", "[--from DATE] [--to DATE] [--bundle DIR | --node ADDR] [--out FILE.html|FILE.json] [--json]")
	var nf nodeFlags
	nf.register(fs, e)
	bundle := fs.String("bundle", "", "compute the report from this audit bundle (its logs and equivocation evidence) instead of a running node")
	from := fs.String("from", "", "the period's first day (YYYY-MM-DD, UTC) or time (RFC 3339), inclusive (default: the day the consortium was founded)")
	to := fs.String("to", "", "the period's end (YYYY-MM-DD, UTC, or RFC 3339), exclusive (default: now)")
	out := fs.String("out", "", "write the report here: HTML with charts, or JSON when the name ends in .json")
	asJSON := fs.Bool("json", false, "print the JSON report (when no --out)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	g, logs, in, err := reportInput(ctx, &nf, *bundle)
	if err != nil {
		return err
	}
	f, t := g.Created.UTC().Truncate(24*time.Hour), time.Now().UTC()
	if *from != "" {
		if f, err = parseDay("--from", *from); err != nil {
			return err
		}
	}
	if *to != "" {
		if t, err = parseDay("--to", *to); err != nil {
			return err
		}
	}
	r, err := consortium.NewReport(g, logs, in.Evidence, f, t)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if *asJSON || strings.HasSuffix(*out, ".json") {
		b.Write(consortium.MarshalReport(r))
	} else if err := reportpage.Write(&b, r); err != nil {
		return err
	}
	if *out == "" {
		_, err := e.stdout.Write(b.Bytes())
		return err
	}
	if err := os.WriteFile(*out, b.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s: %d additions, %d revocations, %d disputes from %s to %s (check it with hashfed audit --report %s)\n",
		*out, r.Totals.Additions, r.Totals.Revocations, r.Totals.Disputes, f.Format(time.DateOnly), t.Format(time.DateOnly), *out)
	for _, c := range r.Cutoffs {
		fmt.Fprintf(e.stdout, "equivocation cutoff: %s's log applies up to %d entries (%s), %d of its entries left out, as in every node's state\n", c.Member, c.Cutoff, map[bool]string{true: "resolved evidence", false: "unresolved evidence"}[c.Resolved], c.Excluded)
	}
	return nil
}

// parseDay parses a date (midnight UTC) or an RFC 3339 time.
func parseDay(flag, s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return t, usageErr("%s %q: want YYYY-MM-DD or an RFC 3339 time", flag, s)
	}
	return t, nil
}

// reportInput reads the genesis, the logs and the equivocation evidence from a bundle or a node,
// and audits them: a report counts only the entries a valid checkpoint covers (the audit's verified
// logs, returned), and is not computed from a bundle that fails its audit.
func reportInput(ctx context.Context, nf *nodeFlags, bundle string) (*consortium.Genesis, consortium.Logs, consortium.AuditInput, error) {
	var in consortium.AuditInput
	var err error
	if bundle != "" {
		in, err = memberclient.ReadBundle(bundle)
	} else {
		in, err = fetchBundle(ctx, nf)
	}
	if err != nil {
		return nil, nil, in, err
	}
	g, err := consortium.ParseGenesis(in.Genesis)
	if err != nil {
		return nil, nil, in, err
	}
	ar := consortium.Audit(in, consortium.AuditOptions{})
	if !ar.OK {
		return nil, nil, in, fmt.Errorf("the logs fail their audit, so no report is computed from them (hashfed audit says more): %s", strings.TrimSpace(ar.Failures[0].String()))
	}
	return g, ar.VerifiedLogs(in.Logs), in, nil
}

// checkReport recomputes a report file from the audited logs (those the audit ar verified) and
// the evidence, and prints the outcome.
func checkReport(e *env, in consortium.AuditInput, ar *consortium.AuditReport, file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	g, err := consortium.ParseGenesis(in.Genesis)
	if err != nil {
		return err
	}
	diffs, n, err := consortium.CheckReport(g, ar.VerifiedLogs(in.Logs), in.Evidence, b)
	if err != nil {
		return fmt.Errorf("report %s: %w", file, err)
	}
	if len(diffs) > 0 {
		for _, d := range diffs {
			fmt.Fprintf(e.stdout, "report %s: %s\n", file, d)
		}
		return fmt.Errorf("report %s: %d of %d numbers differ from the signed logs and evidence: the report is refused", file, len(diffs), n)
	}
	fmt.Fprintf(e.stdout, "report %s: all %d numbers recomputed from the signed logs and evidence match\n", file, n)
	return nil
}
