package console_test

// The console in a real browser: Debian's chromium, driven over the DevTools protocol with
// chromedp (pure Go, talks to the installed browser and downloads nothing; go-rod would fetch its
// own browser build by default). Every page and every review action runs against a 3-node
// loopback consortium, one pass with the keyboard alone. Screenshots go to testout/screenshots
// (ignored by git); with -docs they are also copied to docs/console/ for the README.

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/hashfed/hashfed/internal/localnet"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"github.com/hashfed/hashfed/store"
)

var docsShots = flag.Bool("docs", false, "also copy one screenshot of each console page to docs/console/")

// browserPath returns the chromium to drive, or "" when none is installed.
func browserPath() string {
	for _, p := range []string{os.Getenv("HASHFED_CHROMIUM"), "/usr/bin/chromium", "chromium", "chromium-browser"} {
		if p == "" {
			continue
		}
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	return ""
}

// browser is one chromium tab with the test's helpers.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string
	out  string
}

func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

func eval[T any](b *browser, js string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](js))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// text returns the text of the page's main element.
func (b *browser) text() string { return eval[string](b, `document.querySelector("main").innerText`) }

// wantText fails unless the page's main text contains every want.
func (b *browser) wantText(where string, want ...string) {
	b.t.Helper()
	got := b.text()
	for _, w := range want {
		if !strings.Contains(got, w) {
			b.t.Errorf("%s: the page does not say %q; it says:\n%.1500s", where, w, got)
		}
	}
}

// shot saves a screenshot of the viewport as name.png.
func (b *browser) shot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(b.out, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	if *docsShots {
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "console", name+".png"), png, 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
}

// focused describes the focused element: tag, id, text and whether a focus ring shows.
type focused struct {
	Tag, ID, Text string
	Ring          bool
	Visible       bool
}

const focusJS = `(() => { const e = document.activeElement; const s = getComputedStyle(e); const r = e.getBoundingClientRect();
return {Tag: e.tagName.toLowerCase(), ID: e.id || "", Text: (e.innerText || e.value || "").trim().slice(0, 60),
Ring: s.outlineStyle !== "none" && parseFloat(s.outlineWidth) > 0,
Visible: r.width > 0 && r.height > 0 && r.bottom > 0 && r.top < innerHeight}; })()`

// tab presses Tab and returns what is focused then.
func (b *browser) tab() focused {
	b.t.Helper()
	b.do("press Tab", chromedp.KeyEvent(kb.Tab))
	return eval[focused](b, focusJS)
}

// tabTo presses Tab until match holds for the focused element (at most 80 times), checking on the
// way that every focused element is visible and shows a focus ring.
func (b *browser) tabTo(what string, match func(focused) bool) focused {
	b.t.Helper()
	for range 80 {
		f := b.tab()
		if f.Tag != "body" && (!f.Ring || !f.Visible) {
			b.t.Errorf("keyboard: focused %s %q (id %q) without a visible focus ring (ring %v, on screen %v)", f.Tag, f.Text, f.ID, f.Ring, f.Visible)
		}
		if match(f) {
			return f
		}
	}
	b.t.Fatalf("keyboard: Tab never reached %s", what)
	return focused{}
}

// typeKeys types s into the focused element.
func (b *browser) typeKeys(s string) { b.t.Helper(); b.do("type", chromedp.KeyEvent(s)) }

// enter presses Enter on a link or a form's button and waits for the next page to show sel.
func (b *browser) enter(sel string) {
	b.t.Helper()
	b.submit("press Enter", chromedp.KeyEvent(kb.Enter), sel)
}

// submit runs an action that loads a new page (a click on a form's button, Enter on a link),
// waits for that page, then for sel on it.
func (b *browser) submit(what string, a chromedp.Action[chromedp.Void], sel string) {
	b.t.Helper()
	resp, err := chromedp.RunResponse(b.ctx, a)
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	if resp == nil || resp.Status >= 400 {
		b.t.Fatalf("%s: got response %+v", what, resp)
	}
	b.do(what, chromedp.WaitVisible(chromedp.CSS(sel)))
}

func click(sel string) chromedp.Action[chromedp.Void] { return chromedp.Click(chromedp.CSS(sel)) }

func TestConsoleInBrowser(t *testing.T) {
	path := browserPath()
	if path == "" {
		t.Skip("chromium is not installed (apt-get install chromium; CI installs it): the console's browser test is skipped")
	}
	out := filepath.Join("testout", "screenshots")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	nodes := consortiumUp(t)
	alpha, bravo := nodes["alpha"], nodes["bravo"]

	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute) // about 30 s on a quiet machine
	defer cancel()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 900), chromedp.Flag("disable-gpu", true), chromedp.Flag("lang", "en-US"))
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	b := &browser{t: t, ctx: bctx, base: "http://" + bravo.HTTPAddr(), out: out}
	var dialogs atomic.Int32
	if err := chromedp.Listen(bctx, func(ev any) {
		switch ev.(type) {
		case *page.EventJavascriptDialogOpening, page.EventJavascriptDialogOpening:
			dialogs.Add(1)
		}
	}); err != nil {
		t.Fatalf("start chromium %s: %v", path, err)
	}

	// Keyboard only: sign in, walk the overview, open the review page and confirm the held match.
	b.do("open the console", chromedp.Navigate(b.base+"/console/"), chromedp.WaitVisible(chromedp.ID("reviewer")))
	b.wantText("signed out", "Sign in to the console")
	b.shot("login")
	first := b.tab()
	if first.Text != "Skip to content" {
		t.Errorf("keyboard: the first Tab focuses %q, want the skip link", first.Text)
	}
	b.tabTo("the name field", func(f focused) bool { return f.ID == "reviewer" })
	b.typeKeys("kbd reviewer")
	if f := b.tab(); f.ID != "token" {
		t.Fatalf("keyboard: after the name, Tab focuses %+v, want the token field", f)
	}
	b.typeKeys(token)
	b.enter(`section[aria-labelledby="h-members"]`)
	b.wantText("overview", "Members and logs", "alpha", "bravo", "charlie", "Pending roster proposals")
	var seen []string
	b.tabTo("the sign-out button", func(f focused) bool {
		seen = append(seen, f.Text)
		return f.Text == "Sign out"
	})
	for _, want := range []string{"Overview", "Search", "Review", "Audit & report"} {
		if !strings.Contains(strings.Join(seen, "|"), want) {
			t.Errorf("keyboard: Tab on the overview never reached %q (reached %q)", want, seen)
		}
	}
	b.shot("overview")
	b.tabTo("the Review link", func(f focused) bool { return f.Tag == "a" && f.Text == "Review" })
	b.enter(`#h-held`)
	b.wantText("review", "Held for review (1)", "Disputes (1)", "held for review since")
	b.shot("review")
	b.tabTo("the first Confirm button", func(f focused) bool { return f.Tag == "button" && f.Text == "Confirm match" })
	b.enter(`.flash`)
	b.wantText("after confirming with the keyboard", "confirmed by kbd reviewer", "Published as opinion", "Held for review (0)")
	if !localnet.WaitUntil(20*time.Second, func() bool {
		m, ok, _ := alpha.Store().Lookup(flood)
		return ok && len(m.Opinions) == 1 && m.Opinions[0].Author == "bravo" && m.Opinions[0].Stance == pb.Stance_STANCE_AGREE
	}) {
		t.Error("the confirm made with the keyboard did not reach alpha as bravo's opinion")
	}

	// The mouse: each page and each remaining action.
	b.do("search page", chromedp.Navigate(b.base+"/console/search"), chromedp.WaitVisible(chromedp.ID("value")), chromedp.SendKeys(chromedp.ID("value"), listed.Text()))
	b.submit("search by hash", click(`form[aria-labelledby="h-byhash"] button`), "#h-results")
	b.wantText("search by hash", "behaviour:threat-incitement", "Distance 0", `<script>alert("x")</script>`)
	b.shot("search")
	b.do("search page", chromedp.Navigate(b.base+"/console/search"), chromedp.WaitVisible(chromedp.ID("file")),
		chromedp.SetUploadFiles(chromedp.ID("file"), []string{mustAbs(t, uploadImage)}))
	b.submit("search by image", click(`form[aria-labelledby="h-byfile"] button`), "#h-results")
	b.wantText("search by image", "PDQ of the image (quality", "content:branded-publication", "Distance 0")

	b.do("signal page", chromedp.Navigate(b.base+"/console/signal?type=pdq&value="+listed.Text()), chromedp.WaitVisible(chromedp.ID("h-history")))
	b.wantText("signal page", "Signed history", "add", "labels [behaviour:threat-incitement content:manifesto]", "alpha lists it")
	if !localnet.WaitUntil(10*time.Second, func() bool {
		b.do("reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("h-history")))
		return strings.Contains(b.text(), "verified")
	}) {
		t.Errorf("signal page: no entry shows a verified inclusion proof:\n%s", b.text())
	}
	b.shot("signal")
	b.do("fill why", chromedp.SendKeys(chromedp.ID("why"), "our own logo"))
	b.submit("suppress", click(`form[action="/console/review/suppress"] button`), ".flash")
	b.wantText("after suppressing", "is suppressed", "Suppressed by kbd reviewer", "our own logo")
	if ms, _ := bravo.Store().MatchSignal(listed, store.DefaultQuery()); len(ms) != 0 {
		t.Error("the signal suppressed in the browser still matches")
	}
	b.submit("unsuppress", click(`form[action="/console/review/unsuppress"] button`), ".flash")
	b.wantText("after unsuppressing", "no longer suppressed")

	b.do("review page", chromedp.Navigate(b.base+"/console/review"), chromedp.WaitVisible(chromedp.ID("h-disputes")))
	b.submit("deconfirm the dispute", click(`section[aria-labelledby="h-disputes"] button[value="deconfirm"]`), ".flash")
	b.wantText("after deconfirming", "deconfirmed by kbd reviewer", "deconfirmed in review")
	if !localnet.WaitUntil(20*time.Second, func() bool {
		m, ok, _ := alpha.Store().Lookup(disputed)
		return ok && len(m.Opinions) == 1 && m.Opinions[0].Stance == pb.Stance_STANCE_FALSE_POSITIVE && strings.HasPrefix(m.Opinions[0].Text, "deconfirmed in review")
	}) {
		t.Error("the deconfirm did not reach alpha as bravo's opinion")
	}
	b.do("fill the cap", chromedp.SendKeys(chromedp.ID("cap-name"), "content:manifesto"), chromedp.SendKeys(chromedp.ID("cap-value"), "12"))
	b.submit("set a label cap", click(`form[action="/console/review/cap"] button`), ".flash")
	b.wantText("after setting a cap", "now has distance cap 12")
	if c := bravo.Store().Policy().LabelCaps["content:manifesto"]; c != 12 {
		t.Errorf("label cap: got %d, want 12", c)
	}

	b.do("audit page", chromedp.Navigate(b.base+"/console/audit?from=2025-12-01&to=2026-03-01"), chromedp.WaitVisible(chromedp.ID("h-report")))
	b.wantText("audit", "Audit OK.", "Transparency report", "Additions and revocations per week", "Additions\n5")
	if n := eval[int](b, `document.querySelectorAll("svg.chart").length`); n != 6 {
		t.Errorf("audit page: %d charts, want 6", n)
	}
	b.do("scroll to the charts", chromedp.Evaluate[chromedp.Void](`document.getElementById("h-report").scrollIntoView()`))
	b.shot("audit")

	// A phone: nothing wider than the screen.
	b.do("phone", chromedp.EmulateViewport(390, 844), chromedp.Navigate(b.base+"/console/"), chromedp.WaitVisible(chromedp.ID("h-members")))
	b.shot("overview-phone")
	for _, p := range []string{"/console/", "/console/review", "/console/signal?type=pdq&value=" + listed.Text(), "/console/audit"} {
		b.do("phone "+p, chromedp.Navigate(b.base+p), chromedp.WaitVisible(chromedp.CSS("main h1")))
		if w := eval[[]int](b, `[document.documentElement.scrollWidth, innerWidth]`); w[0] > w[1]+1 {
			wide := eval[[]string](b, `[...document.querySelectorAll("body *")].filter(e => e.getBoundingClientRect().right > innerWidth + 1 && e.parentElement.getBoundingClientRect().right <= innerWidth + 1).slice(0, 5).map(e => e.tagName + "." + e.className + " " + (e.innerText || "").slice(0, 40))`)
			t.Errorf("phone: %s is %d px wide on a %d px screen; too wide: %q", p, w[0], w[1], wide)
		}
	}
	if n := dialogs.Load(); n != 0 {
		t.Errorf("%d JavaScript dialogs opened: hostile text ran as script", n)
	}
	fmt.Fprintf(os.Stderr, "console screenshots in %s\n", out)
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
