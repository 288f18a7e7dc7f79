package report_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/report"
)

// htmlBrowserWorld is a small machine with something to find: three users
// (one running a debugger on its child, a non-dumpable agent and a
// set-uid program), root services with capabilities, a daemon keeping
// one, and a container owned by a user. With Yama at 0 users attach to
// their own processes, so the graph has read and attach edges, and
// related pairs (a parent and its children) have edges of their own.
func htmlBrowserWorld(t testing.TB, yamaScope int) *kernel.World {
	h := newHTMLWorld(t, yamaScope)
	root := h.cred(0, 0, nil)
	root.CapEffective, root.CapPermitted = kernel.CapSetAll, kernel.CapSetAll
	systemd := h.add("systemd", nil, root)
	net := h.cred(0, 0, nil)
	net.CapEffective = kernel.CapsOf(kernel.CapNetAdmin, kernel.CapNetBindService)
	net.CapPermitted = net.CapEffective
	h.add("NetworkManager", systemd, net)
	sshd := h.add("sshd", systemd, root)
	daemon := h.cred(100, 100, nil)
	daemon.CapEffective = kernel.CapsOf(kernel.CapNetBindService)
	daemon.CapPermitted = daemon.CapEffective
	h.add("nginx", systemd, daemon)
	h.add("nginx", systemd, daemon)

	alice := h.cred(1000, 1000, nil, 27)
	ash := h.add("bash", sshd, alice)
	h.add("vim", ash, alice)
	gdb := h.add("gdb", ash, alice)
	d := h.add("server", gdb, alice)
	d.Tracer = gdb
	agent := h.add("ssh-agent", ash, alice)
	agent.MM.Dumpable = kernel.SuidDumpDisable

	bob := h.cred(1001, 1001, nil)
	bsh := h.add("bash", sshd, bob)
	h.add("python3", bsh, bob)
	pw := h.add("passwd", bsh, bob)
	pw.Cred.EUID, pw.Cred.SUID, pw.Cred.FSUID = 0, 0, 0
	pw.MM.Dumpable = kernel.SuidDumpDisable

	carol := h.cred(1002, 1002, nil)
	h.add("firefox", systemd, carol)

	ns := h.userNS("ctr", 1000, 100000)
	cr := h.cred(100000, 100000, ns)
	cr.CapEffective, cr.CapPermitted = kernel.CapSetAll, kernel.CapSetAll
	cinit := h.add("container-init", ash, cr)
	h.add("postgres", cinit, h.cred(100070, 100070, ns))
	if err := h.w.Validate(); err != nil {
		t.Fatal(err)
	}
	return h.w
}

// htmlChromium finds the browser: Debian's chromium (make deps installs it)
// or another Chromium or Chrome on PATH.
func htmlChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("PROCGATE_TEST_REQUIRE_ROOT") == "1" {
		t.Fatal("chromium is not installed: run `make deps` (it installs Debian's chromium)")
	}
	t.Skip("chromium is not installed (run `make deps`); skipping the browser test")
	return ""
}

// htmlIsAdmin reports whether class c is an administrator as the report
// sees it: root of the initial user namespace with CAP_SYS_PTRACE.
func htmlIsAdmin(c *report.Class) bool {
	r := c.Rep()
	return r.Cred.EUID == 0 && r.Cred.UserNS.IsInit() && r.Cred.CapEffective.Has(kernel.CapSysPtrace)
}

// TestBrowserHTML opens the HTML report in headless Chromium, fails on
// any console error or uncaught exception, and drives it: the graph is
// drawn, a click on a class shows its processes, the edge table filters
// and sorts, the machine selector switches machines. It leaves a
// full-page screenshot in $PROCGATE_ARTIFACTS (or a temporary
// directory), and with PROCGATE_UPDATE_SCREENSHOT=1 in
// docs/report-screenshot.png.
func TestBrowserHTML(t *testing.T) {
	browser := htmlChromium(t)

	yama1, err := report.ParseWhatIf("yama=1")
	if err != nil {
		t.Fatal(err)
	}
	m1 := htmlBuild(t, htmlBrowserWorld(t, 0), "web-1", report.Options{WhatIf: []report.WhatIf{yama1}})
	m2 := htmlBuild(t, htmlBrowserWorld(t, 1), "web-2", report.Options{})
	r := report.New([]*report.Machine{m1, m2}, time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC))
	if len(m1.Findings) == 0 {
		t.Fatal("the browser world has no findings")
	}
	page := filepath.Join(t.TempDir(), "report.html")
	f, err := os.Create(page)
	if err != nil {
		t.Fatal(err)
	}
	if err := report.WriteHTML(f, r); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	// The browser: killed when the test ends, whatever happens.
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.Headless,
		chromedp.WindowSize(1400, 1000))
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(allocCancel)
	timeCtx, timeCancel := context.WithTimeout(allocCtx, 60*time.Second)
	t.Cleanup(timeCancel)
	var (
		mu       sync.Mutex
		problems []string
	)
	ctx, cancel := chromedp.NewContext(timeCtx, chromedp.WithListener(func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				var args []string
				for _, a := range ev.Args {
					if a.Description != "" {
						args = append(args, a.Description)
					} else {
						args = append(args, string(a.Value))
					}
				}
				problems = append(problems, "console.error: "+strings.Join(args, " "))
			}
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			problems = append(problems, fmt.Sprintf("uncaught exception at %d:%d: %s", d.LineNumber+1, d.ColumnNumber+1, msg))
		case *log.EventEntryAdded:
			// The browser's own errors: a blocked or failed load, a
			// Content-Security-Policy violation.
			if ev.Entry.Level == log.EntryLevelError {
				problems = append(problems, fmt.Sprintf("browser log (%s): %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
			}
		}
	}))
	t.Cleanup(func() {
		_ = chromedp.Cancel(ctx) // closes the browser
		cancel()
	})
	checkProblems := func(when string) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		for _, p := range problems {
			t.Errorf("%s: %s", when, p)
		}
		problems = nil
	}
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	eval := func(expr string) int {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](expr))
		if err != nil {
			t.Fatalf("evaluate %s: %v", expr, err)
		}
		return n
	}
	waitFor := func(what, expr string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
			checkProblems("waiting for " + what)
			t.Fatalf("waiting for %s (%s): %v", what, expr, err)
		}
	}

	u := url.URL{Scheme: "file", Path: page}
	run("open the page", chromedp.Navigate(u.String()))
	waitFor("the script to finish", `document.body.dataset.ready === "true"`)
	checkProblems("loading the page")

	// The graph: every class a node, and an edge per edge that reaches
	// (administrators' edges hidden, as by default).
	nodes := eval(`document.querySelectorAll('#graph [data-class]').length`)
	edges := eval(`document.querySelectorAll('#graph .edge').length`)
	wantEdges, wantRows := 0, 0
	for _, e := range m1.Edges {
		if e.Reaches() && !htmlIsAdmin(m1.Class(e.Principal)) {
			wantEdges++
		}
		if e.Reaches() || len(e.Grants) > 0 {
			wantRows++
		}
	}
	if nodes == 0 || nodes != len(m1.Principals)+len(m1.Targets) {
		t.Errorf("graph has %d class nodes, want %d", nodes, len(m1.Principals)+len(m1.Targets))
	}
	if edges == 0 || edges != wantEdges {
		t.Errorf("graph has %d edges, want %d", edges, wantEdges)
	}
	if n := eval(`document.querySelectorAll('#graph .edge.attach').length`); n == 0 {
		t.Error("graph has no attach edge")
	}
	if n := eval(`document.querySelectorAll('#graph .edge.related').length`); n == 0 {
		t.Error("graph has no edge of related pairs")
	}

	// The fleet and the machine selector.
	if n := eval(`document.querySelectorAll('#fleet-findings tbody tr').length`); n == 0 {
		t.Error("fleet findings are empty")
	}
	run("choose the second machine", chromedp.Evaluate[chromedp.Void](`(() => { const s = document.querySelector('#machine'); s.value = '1'; s.dispatchEvent(new Event('change')); })()`))
	waitFor("the second machine", `document.querySelector('#summary').textContent.includes('web-2')`)
	if n := eval(`document.querySelectorAll('#graph [data-class]').length`); n != len(m2.Principals)+len(m2.Targets) {
		t.Errorf("second machine: graph has %d class nodes, want %d", n, len(m2.Principals)+len(m2.Targets))
	}
	run("choose the first machine", chromedp.Evaluate[chromedp.Void](`(() => { const s = document.querySelector('#machine'); s.value = '0'; s.dispatchEvent(new Event('change')); })()`))
	waitFor("the first machine", `document.querySelector('#summary').textContent.includes('web-1')`)
	checkProblems("switching machines")

	// A click on alice's principal class shows its processes.
	var alice *report.Class
	for _, c := range m1.Principals {
		if c.EUID == 1000 && c.UserNS == "init" && c.Login == "" {
			alice = c
			break
		}
	}
	if alice == nil || len(alice.Members) < 2 {
		t.Fatalf("alice's class: %+v", alice)
	}
	sel := fmt.Sprintf(`#graph [data-class=%q]`, alice.ID)
	run("click "+alice.ID, chromedp.Click(chromedp.CSS(sel)))
	waitFor("the details of "+alice.ID, fmt.Sprintf(`document.querySelector('#details').dataset.class === %q`, alice.ID))
	details, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#details")))
	if err != nil {
		t.Fatal(err)
	}
	for _, mem := range alice.Members {
		if !strings.Contains(details, fmt.Sprint(mem.PID)) || !strings.Contains(details, mem.Comm) {
			t.Errorf("details of %s lack process %d (%s): %q", alice.ID, mem.PID, mem.Comm, details)
		}
	}
	if n := eval(`document.querySelectorAll('#details .members li').length`); n != len(alice.Members) {
		t.Errorf("details of %s list %d processes, want %d", alice.ID, n, len(alice.Members))
	}
	if n := eval(`document.querySelectorAll('#graph .node.selected').length`); n != 1 {
		t.Errorf("%d nodes selected, want 1", n)
	}

	// The edge table: reaches only by default, then filtered to alice's
	// edges, then every edge of alice, then sorted by pairs.
	rows := func() int { return eval(`document.querySelectorAll('#edges tbody tr').length`) }
	if n := rows(); n != wantRows {
		t.Errorf("edge table has %d rows, want %d (edges that reach)", n, wantRows)
	}
	aliceReach, aliceAll := 0, 0
	for _, e := range m1.Edges {
		if e.Principal == alice.ID {
			aliceAll++
			if e.Reaches() || len(e.Grants) > 0 {
				aliceReach++
			}
		}
	}
	run("filter the edges", chromedp.SendKeys(chromedp.CSS("#edge-filter"), alice.ID))
	waitFor("the filtered table", fmt.Sprintf(`document.querySelector('#edge-count').dataset.rows === "%d"`, aliceReach))
	if n := rows(); n != aliceReach || n == wantRows {
		t.Errorf("filtered to %s: %d rows, want %d (of %d)", alice.ID, n, aliceReach, wantRows)
	}
	run("show every edge", chromedp.Click(chromedp.CSS("#reaches-only")))
	waitFor("every edge of "+alice.ID, fmt.Sprintf(`document.querySelector('#edge-count').dataset.rows === "%d"`, aliceAll))
	if n := rows(); n != aliceAll || aliceAll <= aliceReach {
		t.Errorf("every edge of %s: %d rows, want %d (more than the %d that reach)", alice.ID, n, aliceAll, aliceReach)
	}
	run("sort by pairs", chromedp.Click(chromedp.CSS(`#edges th[data-key="pairs"] button`)))
	waitFor("the sorted table", `document.querySelector('#edges th[data-key="pairs"]').getAttribute('aria-sort') === 'descending'`)
	pairs, err := chromedp.Run(ctx, chromedp.Evaluate[[]int](`[...document.querySelectorAll('#edges tbody tr td.num')].map((td) => Number(td.textContent.replace(/,/g, '')))`))
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(pairs); i++ {
		if pairs[i] > pairs[i-1] {
			t.Errorf("sorted by pairs, row %d has %d after %d: %v", i+1, pairs[i], pairs[i-1], pairs)
			break
		}
	}
	// Back to the default view for the screenshot, alice still selected.
	run("reset the table",
		chromedp.Evaluate[chromedp.Void](`(() => { const f = document.querySelector('#edge-filter'); f.value = ''; f.dispatchEvent(new Event('input')); })()`),
		chromedp.Click(chromedp.CSS("#reaches-only")))
	waitFor("the reset table", fmt.Sprintf(`document.querySelector('#edge-count').dataset.rows === "%d"`, wantRows))

	// Findings: one per finding, the first story opens.
	if n := eval(`document.querySelectorAll('#findings li.finding').length`); n != len(m1.Findings) {
		t.Errorf("findings list has %d entries, want %d", n, len(m1.Findings))
	}
	run("open the first story", chromedp.Click(chromedp.CSS(`#findings li.finding details summary`)))
	waitFor("the first story", `document.querySelectorAll('#findings li.finding table.story tr').length > 0`)
	if n := eval(`document.querySelectorAll('#findings li.finding:first-child table.story tr').length`); n < len(m1.Findings[0].Story) {
		t.Errorf("the first story has %d rows, want %d steps", n, len(m1.Findings[0].Story))
	}
	if n := eval(`document.querySelectorAll('#whatif .diff').length`); n != 1 {
		t.Errorf("%d what-if diffs shown, want 1", n)
	}
	checkProblems("driving the page")

	// The header sticks to the top of the viewport: scroll there, or a
	// full-page capture shows it in the middle.
	run("scroll to the top", chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`))
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv("PROCGATE_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "report-screenshot.png")
	if err := os.WriteFile(out, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", out, len(png))
	if os.Getenv("PROCGATE_UPDATE_SCREENSHOT") == "1" {
		doc := filepath.Join("..", "docs", "report-screenshot.png")
		if err := os.WriteFile(doc, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("updated %s", doc)
	}
	checkProblems("taking the screenshot")
}
