package reportpage

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"time"

	"github.com/hashfed/hashfed/consortium"
)

//go:embed page.html
var pageHTML string

//go:embed report.css
var reportCSS string

// CSS is the style of the charts and tables, for pages that include them (the console).
func CSS() template.CSS { return template.CSS(reportCSS) }

var page = template.Must(template.New("page").Funcs(Funcs).Parse(pageHTML))

// Funcs are the template functions the report's templates use.
var Funcs = template.FuncMap{
	"date":     func(t time.Time) string { return t.UTC().Format(time.DateOnly) },
	"duration": Duration,
	"css":      CSS,
}

// Charts returns the report's charts, in the page's order.
func Charts(r *consortium.Report) []Chart {
	keyRows := func(ks []consortium.KeyCount) []Row {
		out := make([]Row, len(ks))
		for i, k := range ks {
			out[i] = Row{Label: k.Key, Values: []int{k.Additions, k.Revocations}}
		}
		return out
	}
	nameRows := func(ns []consortium.NameCount) []Row {
		out := make([]Row, len(ns))
		for i, n := range ns {
			out[i] = Row{Label: n.Name, Values: []int{n.Count}}
		}
		return out
	}
	weeks := make([]Row, len(r.Weeks))
	for i, w := range r.Weeks {
		weeks[i] = Row{Label: w.Week, Values: []int{w.Additions, w.Revocations}}
	}
	return []Chart{
		{ID: "weeks", Title: "Additions and revocations per week (weeks start on Monday, UTC)", Series: seriesAddRev, Rows: weeks, Vertical: true},
		{ID: "labels", Title: "Additions and revocations by label", Series: seriesAddRev, Rows: keyRows(r.ByLabel)},
		{ID: "members", Title: "Additions and revocations by member", Series: seriesAddRev, Rows: keyRows(r.ByMember)},
		{ID: "reasons", Title: "Revocations by reason", Series: seriesCount, Rows: nameRows(r.RevokeReasons)},
		{ID: "disputes", Title: fmt.Sprintf("Disputes raised (%d) by outcome at the end of the period", r.Disputes.Raised), Series: seriesCount, Rows: nameRows(r.Disputes.Outcomes)},
		{ID: "ttr", Title: "Time from first listing to first revocation", Series: seriesCount, Rows: nameRows(r.TimeToRevocation.Buckets)},
	}
}

// Duration writes seconds for people ("3 d 4 h", "12 min").
func Duration(s int64) string {
	d := time.Duration(s) * time.Second
	switch {
	case d >= 24*time.Hour:
		return fmt.Sprintf("%d d %d h", d/(24*time.Hour), d%(24*time.Hour)/time.Hour)
	case d >= time.Hour:
		return fmt.Sprintf("%d h %d min", d/time.Hour, d%time.Hour/time.Minute)
	default:
		return fmt.Sprintf("%d min", d/time.Minute)
	}
}

// Write writes the report as one self-contained HTML page, its JSON embedded for
// `hashfed audit --report`.
func Write(w io.Writer, r *consortium.Report) error {
	return page.Execute(w, struct {
		R      *consortium.Report
		Charts []Chart
		Data   template.HTML
	}{r, Charts(r), template.HTML(consortium.ReportHTMLData(r))})
}
