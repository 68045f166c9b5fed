// Package reportpage renders a transparency report ([consortium.Report]) as one self-contained HTML
// page with inline SVG charts and a data table under each chart, and gives the console the same
// charts. It computes nothing: every number comes from the report, whose JSON the page embeds so
// that `hashfed audit --report` can recompute it from the signed logs.
package reportpage

import (
	"fmt"
	"html/template"
	"strings"
)

// Series is one named, coloured set of values of a chart.
type Series struct {
	Name  string
	Class string // CSS class giving its colour: "s-add" or "s-rev"
}

// Row is one labelled group of bars, one value per series.
type Row struct {
	Label  string
	Values []int
}

// Chart is a bar chart with its data.
type Chart struct {
	ID     string
	Title  string
	Series []Series
	Rows   []Row
	// Vertical draws columns along a time axis (weeks) instead of horizontal bars.
	Vertical bool
}

var (
	seriesAddRev = []Series{{"additions", "s-add"}, {"revocations", "s-rev"}}
	seriesCount  = []Series{{"count", "s-add"}}
)

// SVG draws the chart as inline SVG, with a title and description for screen readers (the data
// table beside it carries the numbers).
func (c Chart) SVG() template.HTML {
	maxV := 1
	for _, r := range c.Rows {
		for _, v := range r.Values {
			maxV = max(maxV, v)
		}
	}
	var b strings.Builder
	esc := template.HTMLEscapeString
	desc := fmt.Sprintf("%d rows; the table below gives every value", len(c.Rows))
	if c.Vertical {
		const h, top, bottom, left = 180, 10, 50, 36
		colW := 10 * len(c.Series)
		gap := max(6, 480/max(1, len(c.Rows))-colW)
		w := left + len(c.Rows)*(colW+gap) + 10
		fmt.Fprintf(&b, `<svg class="chart" role="img" aria-labelledby="%[1]s-t %[1]s-d" width="%[2]d" height="%[3]d" viewBox="0 0 %[2]d %[3]d" preserveAspectRatio="xMinYMin meet">`, c.ID, w, h+top+bottom)
		fmt.Fprintf(&b, `<title id="%s-t">%s</title><desc id="%s-d">%s</desc>`, c.ID, esc(c.Title), c.ID, esc(desc))
		fmt.Fprintf(&b, `<line class="axis" x1="%d" y1="%d" x2="%d" y2="%d"/>`, left, top+h, w-5, top+h)
		fmt.Fprintf(&b, `<text class="tick" x="%d" y="%d" text-anchor="end">%d</text><text class="tick" x="%d" y="%d" text-anchor="end">0</text>`, left-4, top+8, maxV, left-4, top+h)
		for i, r := range c.Rows {
			x := left + gap/2 + i*(colW+gap)
			for j, v := range r.Values {
				bh := v * h / maxV
				fmt.Fprintf(&b, `<rect class="%s" x="%d" y="%d" width="9" height="%d"><title>%s: %d %s</title></rect>`,
					c.Series[j].Class, x+j*10, top+h-bh, bh, esc(r.Label), v, esc(c.Series[j].Name))
			}
			if len(c.Rows) <= 16 || i%((len(c.Rows)+15)/16) == 0 {
				label := r.Label
				if len(label) == len("2006-01-02") {
					label = label[5:] // the month and day; the data table gives the year
				}
				fmt.Fprintf(&b, `<text class="tick" x="%d" y="%d" transform="rotate(45 %d %d)">%s</text>`, x, top+h+12, x, top+h+12, esc(label))
			}
		}
	} else {
		const left, barH, width = 190, 12, 520
		rowH := barH*len(c.Series) + 8
		h := len(c.Rows)*rowH + 10
		fmt.Fprintf(&b, `<svg class="chart" role="img" aria-labelledby="%[1]s-t %[1]s-d" width="%[2]d" height="%[3]d" viewBox="0 0 %[2]d %[3]d" preserveAspectRatio="xMinYMin meet">`, c.ID, left+width+60, h)
		fmt.Fprintf(&b, `<title id="%s-t">%s</title><desc id="%s-d">%s</desc>`, c.ID, esc(c.Title), c.ID, esc(desc))
		for i, r := range c.Rows {
			y := 5 + i*rowH
			fmt.Fprintf(&b, `<text class="lbl" x="%d" y="%d" text-anchor="end">%s</text>`, left-6, y+barH, esc(shortLabel(r.Label)))
			for j, v := range r.Values {
				bw := v * width / maxV
				fmt.Fprintf(&b, `<rect class="%s" x="%d" y="%d" width="%d" height="%d"><title>%s: %d %s</title></rect>`,
					c.Series[j].Class, left, y+j*barH, bw, barH-2, esc(r.Label), v, esc(c.Series[j].Name))
				fmt.Fprintf(&b, `<text class="val" x="%d" y="%d">%d</text>`, left+bw+4, y+j*barH+barH-3, v)
			}
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func shortLabel(s string) string {
	if len(s) > 30 {
		return s[:29] + "…"
	}
	return s
}
