package reportpage_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	"github.com/hashfed/hashfed/internal/reportpage"
)

func TestPageEmbedsTheReport(t *testing.T) {
	g := fixture.Genesis(2, fixture.Members("alpha", "bravo")...)
	logs := consortium.Logs{"alpha": {fixture.Marshal(fixture.Add(fixture.At(0), fixture.PDQ(1), "content:manifesto"))}}
	r, err := consortium.NewReport(g, logs, nil, fixture.Epoch, fixture.Epoch.Add(14*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// Text from the logs and the genesis is attacker-controlled: it must not open an element or
	// close the embedded data.
	r.Name = `</script><script>alert(1)</script>`
	r.ByMember[0].Key = `<img src=x onerror=alert(2)>`
	var b bytes.Buffer
	if err := reportpage.Write(&b, r); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, bad := range []string{"<script>alert(1)", "<img src=x"} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains %q unescaped", bad)
		}
	}
	for _, want := range []string{`<svg class="chart" role="img"`, "Additions and revocations per week", "<th scope=\"row\">content:manifesto</th>", "hashfed audit --bundle DIR --report"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	back, _, err := consortium.ReadReport(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(consortium.MarshalReport(back), consortium.MarshalReport(r)) {
		t.Error("the report read back from the page differs")
	}
}

// TestPageSaysCutoffs: a report that applied equivocation cutoffs says so on its page, naming the
// member, and reads back with them.
func TestPageSaysCutoffs(t *testing.T) {
	g := fixture.Genesis(2, fixture.Members("alpha", "bravo")...)
	logs := consortium.Logs{"alpha": {fixture.Marshal(fixture.Add(fixture.At(0), fixture.PDQ(1)))}}
	r, err := consortium.NewReport(g, logs, nil, fixture.Epoch, fixture.Epoch.Add(14*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var plain bytes.Buffer
	if err := reportpage.Write(&plain, r); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(plain.String(), "Equivocation.") {
		t.Error("a report without cutoffs speaks of an equivocation")
	}
	r.Cutoffs = []consortium.ReportCutoff{{Member: "bravo", Cutoff: 4, Resolved: true, Excluded: 2}}
	var b bytes.Buffer
	if err := reportpage.Write(&b, r); err != nil {
		t.Fatal(err)
	}
	if want := "<code>bravo</code> first 4 entries (resolved evidence; 2 left out)"; !strings.Contains(b.String(), want) {
		t.Errorf("page lacks %q", want)
	}
	back, _, err := consortium.ReadReport(b.Bytes())
	if err != nil || len(back.Cutoffs) != 1 || back.Cutoffs[0] != r.Cutoffs[0] {
		t.Errorf("read back: got %+v (%v), want the cutoff", back, err)
	}
}
