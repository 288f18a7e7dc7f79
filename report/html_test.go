package report_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/capability"
	"github.com/procgate/procgate/kernel/lsm/landlock"
	"github.com/procgate/procgate/kernel/lsm/yama"
	"github.com/procgate/procgate/report"
)

// htmlWorld builds worlds for the HTML tests: tasks are added with
// consecutive pids, a leader each unless added as a thread.
type htmlWorld struct {
	w   *kernel.World
	pid int
}

func newHTMLWorld(t testing.TB, yamaScope int) *htmlWorld {
	t.Helper()
	w := kernel.NewWorld(kernel.DefaultRelease)
	y, err := yama.New(yamaScope)
	if err != nil {
		t.Fatal(err)
	}
	w.LSMs = []kernel.LSM{capability.New(), landlock.New(7), y}
	return &htmlWorld{w: w}
}

// cred returns credentials with every uid uid and every gid gid.
func (h *htmlWorld) cred(uid, gid uint32, ns *kernel.UserNS, groups ...uint32) kernel.Cred {
	c := kernel.Cred{
		UID: kernel.KUID(uid), EUID: kernel.KUID(uid), SUID: kernel.KUID(uid), FSUID: kernel.KUID(uid),
		GID: kernel.KGID(gid), EGID: kernel.KGID(gid), SGID: kernel.KGID(gid), FSGID: kernel.KGID(gid),
		UserNS: ns,
	}
	if ns == nil {
		c.UserNS = h.w.Init
	}
	for _, g := range groups {
		c.Groups = append(c.Groups, kernel.KGID(g))
	}
	return c
}

// add adds a process (a thread-group leader with its own address space,
// dumpable unless changed) and returns it.
func (h *htmlWorld) add(comm string, parent *kernel.Task, c kernel.Cred) *kernel.Task {
	h.pid++
	t := &kernel.Task{Name: fmt.Sprintf("%s-%d", comm, h.pid), Comm: comm, PID: h.pid, TGID: h.pid, Parent: parent, Cred: c,
		MM: &kernel.MM{Dumpable: kernel.SuidDumpUser, UserNS: c.UserNS}}
	t.Leader = t
	h.w.AddTask(t)
	return t
}

// thread adds a thread to leader's group.
func (h *htmlWorld) thread(leader *kernel.Task) *kernel.Task {
	h.pid++
	t := &kernel.Task{Name: fmt.Sprintf("%s-%d", leader.Comm, h.pid), Comm: leader.Comm, PID: h.pid, TGID: leader.TGID,
		Parent: leader.Parent, Leader: leader, Cred: leader.Cred, MM: leader.MM}
	h.w.AddTask(t)
	return t
}

// userNS adds a user namespace under init owned by owner, mapping its
// ids 0..65535 to base.
func (h *htmlWorld) userNS(name string, owner, base uint32) *kernel.UserNS {
	m := []kernel.IDExtent{{Inside: 0, Outside: base, Count: 65536}}
	ns := &kernel.UserNS{Name: name, Parent: h.w.Init, Level: 1, Owner: kernel.KUID(owner), Group: kernel.KGID(owner), UIDMap: m, GIDMap: m}
	h.w.Namespaces = append(h.w.Namespaces, ns)
	return ns
}

// procs counts the world's processes (thread-group leaders).
func (h *htmlWorld) procs() int {
	n := 0
	for _, t := range h.w.Tasks {
		if t.IsLeader() {
			n++
		}
	}
	return n
}

// htmlSyntheticWorld is a busy machine of n processes: kernel threads, root
// services with assorted capabilities, system users' daemons, a hundred
// desktop users with sessions (some set-id and non-dumpable processes,
// a debugger with its debuggee, Landlock sandboxes, supplementary
// groups), containers in their own user namespaces, and a few zombies.
func htmlSyntheticWorld(t testing.TB, n, yamaScope int) *kernel.World {
	h := newHTMLWorld(t, yamaScope)
	w := h.w
	root := h.cred(0, 0, nil)
	root.CapEffective, root.CapPermitted = kernel.CapSetAll, kernel.CapSetAll
	systemd := h.add("systemd", nil, root)
	kthreadd := h.add("kthreadd", nil, root)
	kthreadd.MM = nil
	kthreadd.Kthread = true
	for i := range 120 {
		k := h.add(fmt.Sprintf("kworker/%d:%d", i/4, i%4), kthreadd, root)
		k.MM, k.Kthread = nil, true
	}
	// Root services, each with its own capability set.
	capSets := [][]kernel.Cap{
		{kernel.CapNetAdmin, kernel.CapNetRaw},
		{kernel.CapNetBindService},
		{kernel.CapSysPtrace, kernel.CapDACReadSearch},
		{kernel.CapSysAdmin},
		{kernel.CapSysTime},
		{kernel.CapSyslog, kernel.CapDACReadSearch},
		{kernel.CapChown, kernel.CapDACOverride, kernel.CapFowner},
		{kernel.CapKill, kernel.CapSetuid, kernel.CapSetgid},
	}
	for i := range 60 {
		c := h.cred(0, 0, nil)
		if i%5 != 0 {
			cs := kernel.CapsOf(capSets[i%len(capSets)]...)
			c.CapEffective, c.CapPermitted = cs, cs
		} else {
			c.CapEffective, c.CapPermitted = kernel.CapSetAll, kernel.CapSetAll
		}
		p := h.add(fmt.Sprintf("rootsvc%d", i), systemd, c)
		if i%7 == 0 {
			h.thread(p)
		}
	}
	// System users' daemons; some keep a capability, some are not
	// dumpable.
	for u := range 40 {
		uid := uint32(100 + u)
		c := h.cred(uid, uid, nil)
		if u%6 == 0 {
			cs := kernel.CapsOf(kernel.CapNetBindService)
			c.CapEffective, c.CapPermitted = cs, cs
		}
		for j := range 3 + u%6 {
			p := h.add(fmt.Sprintf("daemon%d", u), systemd, c)
			if j == 0 && u%4 == 1 {
				p.MM.Dumpable = kernel.SuidDumpDisable
			}
		}
	}
	// Containers: user namespaces owned by a user, by root, and nested
	// service uids inside.
	type ctr struct {
		ns    *kernel.UserNS
		owner uint32
	}
	ctrs := []ctr{{h.userNS("ctr-a", 1003, 100000), 1003}, {h.userNS("ctr-b", 1011, 165536), 1011}, {h.userNS("ctr-c", 0, 231072), 0}}
	for _, c := range ctrs {
		base := c.ns.UIDMap[0].Outside
		cr := h.cred(base, base, c.ns)
		cr.CapEffective, cr.CapPermitted = kernel.CapSetAll, kernel.CapSetAll
		init := h.add("container-init", systemd, cr)
		for j := range 60 {
			id := base + uint32(j%8)*1000
			p := h.add(fmt.Sprintf("ctr-app%d", j%8), init, h.cred(id, id, c.ns))
			if j%15 == 0 {
				p.MM.Dumpable = kernel.SuidDumpDisable
			}
		}
	}
	// Desktop users until n processes.
	dom := &kernel.LandlockDomain{Name: "browser-sandbox"}
	apps := []string{"bash", "vim", "firefox", "python3", "make", "go", "ssh", "less", "node", "git", "tmux", "cc1"}
	for u := 0; h.procs() < n; u++ {
		uid := uint32(1000 + u%100)
		var groups []uint32
		if uid%3 == 0 {
			groups = append(groups, 27) // sudo
		}
		if uid%5 == 0 {
			groups = append(groups, 999) // docker
		}
		c := h.cred(uid, uid, nil, groups...)
		session := h.add("systemd", systemd, c)
		shell := h.add("bash", session, c)
		for j := 0; j < 18 && h.procs() < n; j++ {
			p := h.add(apps[(j+u)%len(apps)], shell, c)
			switch {
			case j == 3 && u%3 == 0:
				// A set-uid program running for the user.
				p.Comm = "passwd"
				p.Cred.EUID, p.Cred.SUID, p.Cred.FSUID = 0, 0, 0
				p.MM.Dumpable = kernel.Dumpable(w.SuidDumpable)
			case j == 4:
				p.Comm = "ssh-agent"
				p.MM.Dumpable = kernel.SuidDumpDisable
			case j == 5 && u%4 == 0:
				p.Comm = "firefox-content"
				p.Landlock = dom
			case j == 6 && u%10 == 0:
				// A debugger and its debuggee.
				p.Comm = "gdb"
				d := h.add("debuggee", p, c)
				d.Tracer = p
			case j == 7 && u%12 == 0:
				p.Comm = "crash-handler-client"
				p.Ptracer = &kernel.PtracerException{Tracer: shell}
			case j == 8 && u%9 == 0:
				h.thread(p)
			case j == 9 && u%25 == 0:
				p.MM, p.State = nil, kernel.Zombie
			}
		}
	}
	if err := w.Validate(); err != nil {
		t.Fatal(err)
	}
	return w
}

// htmlBuild reports on world w as a scenario named name.
func htmlBuild(t testing.TB, w *kernel.World, name string, o report.Options) *report.Machine {
	t.Helper()
	m, err := report.Build(report.Input{Name: name, Source: "scenario", World: w}, o)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// htmlNetworkRef matches a resource a browser would fetch from the network.
var htmlNetworkRef = regexp.MustCompile(`(?i)(\b(src|href|action|srcset|poster|data)\s*=\s*["']?\s*(https?:)?//)|url\(\s*["']?\s*(https?:)?//|@import`)

// htmlPageData returns the JSON the page embeds.
func htmlPageData(t *testing.T, page string) map[string]any {
	t.Helper()
	const open = `<script id="report-data" type="application/json">`
	i := strings.Index(page, open)
	if i < 0 {
		t.Fatal("page has no report-data element")
	}
	rest := page[i+len(open):]
	j := strings.Index(rest, "</script>")
	if j < 0 {
		t.Fatal("report-data element is not closed")
	}
	var d map[string]any
	if err := json.Unmarshal([]byte(rest[:j]), &d); err != nil {
		t.Fatalf("report data: %v", err)
	}
	return d
}

func TestHTMLSize3000(t *testing.T) {
	const n = 3000
	w := htmlSyntheticWorld(t, n, 0)
	wi, err := report.ParseWhatIf("yama=1")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	m := htmlBuild(t, w, "synthetic-3000", report.Options{WhatIf: []report.WhatIf{wi}})
	if m.Processes != n {
		t.Fatalf("world has %d processes, want %d", m.Processes, n)
	}
	built := time.Since(start)
	findings := 0
	for _, f := range m.Findings {
		if len(f.Story) > 0 {
			findings++
		}
	}
	t.Logf("%d processes: %d principal classes, %d target classes, %d edges, %d findings (%d with a story), %d what-if; built in %v",
		m.Processes, len(m.Principals), len(m.Targets), len(m.Edges), len(m.Findings), findings, len(m.WhatIf), built.Round(time.Millisecond))
	var buf bytes.Buffer
	if err := report.WriteHTML(&buf, report.New([]*report.Machine{m}, time.Now())); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	t.Logf("HTML page: %d bytes (%.2f MiB)", len(page), float64(len(page))/(1<<20))
	if len(m.Principals) < 100 || len(m.Targets) < 100 || len(m.Findings) == 0 {
		t.Errorf("the synthetic world is not diverse enough: %d principal, %d target classes, %d findings", len(m.Principals), len(m.Targets), len(m.Findings))
	}
	if len(page) >= 2<<20 {
		t.Errorf("page is %d bytes, want < 2 MiB", len(page))
	}
	if loc := htmlNetworkRef.FindStringIndex(page); loc != nil {
		t.Errorf("page references the network: %q", page[max(0, loc[0]-40):min(len(page), loc[1]+40)])
	}
	for _, s := range []string{"http://", "https://"} {
		if i := strings.Index(page, s); i >= 0 {
			t.Errorf("page contains %q: %q", s, page[max(0, i-60):min(len(page), i+60)])
		}
	}
	htmlCheckPageData(t, page, m)
}

// htmlCheckPageData decodes the page's compact data as the script does and
// compares it with the report: every edge with its pairs, relation,
// answers and grants, every class's processes, the findings and their
// stories.
func htmlCheckPageData(t *testing.T, page string, machines ...*report.Machine) {
	t.Helper()
	var doc struct {
		S        []string
		Answers  [][]any
		Combos   [][report.NumAccess]int
		Grants   [][]int
		Steps    [][3]int
		Machines []struct {
			Name       string
			Procs      []int
			Principals [][]any
			Targets    [][]any
			Edges      [][2][]int
			Findings   [][]any
		}
	}
	raw := htmlPageData(t, page)
	b, _ := json.Marshal(raw)
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Machines) != len(machines) {
		t.Fatalf("page has %d machines, want %d", len(doc.Machines), len(machines))
	}
	answers := func(combo int) string {
		var parts []string
		for _, i := range doc.Combos[combo] {
			a := doc.Answers[i]
			parts = append(parts, fmt.Sprintf("%v/%s/%s", a[0] == 1.0, doc.S[int(a[1].(float64))], doc.S[int(a[2].(float64))]))
		}
		return strings.Join(parts, " ")
	}
	strs := func(idx []int) string {
		var out []string
		for _, i := range idx {
			out = append(out, doc.S[i])
		}
		return strings.Join(out, ",")
	}
	for mi, m := range machines {
		pm := doc.Machines[mi]
		if pm.Name != m.Name {
			t.Errorf("machine %d: name %q, want %q", mi, pm.Name, m.Name)
		}
		// Processes and classes.
		members := map[string][]int{}
		pid := func(c []any) string { return c[0].(string) }
		for k := 0; k < len(pm.Procs); k += 4 {
			if p := pm.Procs[k+2]; p > 0 {
				id := pid(pm.Principals[p-1])
				members[id] = append(members[id], pm.Procs[k])
			}
			id := pid(pm.Targets[pm.Procs[k+3]-1])
			members[id] = append(members[id], pm.Procs[k])
		}
		for _, list := range [][]*report.Class{m.Principals, m.Targets} {
			for _, c := range list {
				got := members[c.ID]
				slices.Sort(got)
				var want []int
				for _, mem := range c.Members {
					want = append(want, mem.PID)
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s: class %s has processes %v on the page, want %v", m.Name, c.ID, got, want)
				}
			}
		}
		// Edges, as a multiset.
		size := func(id string) int { return len(members[id]) }
		got := map[string]int{}
		for i, pe := range pm.Edges {
			p := pid(pm.Principals[i])
			runs, x := pe[0], pe[1]
			j := 0
			for k := 0; k < len(runs); k += 2 {
				if runs[k] >= 0 {
					for q := j; q < j+runs[k+1]; q++ {
						tid := pid(pm.Targets[q])
						got[fmt.Sprintf("%s %s - %d %s -", p, tid, size(p)*size(tid), answers(runs[k]))]++
					}
				}
				j += runs[k+1]
			}
			if j != len(pm.Targets) {
				t.Errorf("%s: runs of %s cover %d targets, want %d", m.Name, p, j, len(pm.Targets))
			}
			for k := 0; k < len(x); k += 7 {
				rel := doc.S[x[k+1]]
				if rel == "" {
					rel = "-"
				}
				g := strs(doc.Grants[x[k+6]])
				if g == "" {
					g = "-"
				}
				got[fmt.Sprintf("%s %s %s %d %s %s", p, pid(pm.Targets[x[k]]), rel, x[k+2], answers(x[k+3]), g)]++
			}
		}
		want := map[string]int{}
		for _, e := range m.Edges {
			var parts []string
			for _, a := range e.Answers {
				parts = append(parts, fmt.Sprintf("%v/%s/%s", a.Allowed, a.Errno.String(), a.Layer))
			}
			rel, g := string(e.Relation), strings.Join(e.Grants, ",")
			if rel == "" {
				rel = "-"
			}
			if g == "" {
				g = "-"
			}
			want[fmt.Sprintf("%s %s %s %d %s %s", e.Principal, e.Target, rel, e.Pairs, strings.Join(parts, " "), g)]++
		}
		if !maps.Equal(got, want) {
			n := 0
			for k, v := range want {
				if got[k] != v && n < 5 {
					t.Errorf("%s: edge %q: %d on the page, want %d", m.Name, k, got[k], v)
					n++
				}
			}
			for k, v := range got {
				if want[k] != v && n < 10 {
					t.Errorf("%s: edge %q: %d on the page, want %d", m.Name, k, v, want[k])
					n++
				}
			}
			t.Errorf("%s: the page's edges differ from the report's (%d on the page, %d in the report)", m.Name, len(got), len(want))
		}
		// Findings with their stories.
		if len(pm.Findings) != len(m.Findings) {
			t.Fatalf("%s: %d findings on the page, want %d", m.Name, len(pm.Findings), len(m.Findings))
		}
		for i, f := range m.Findings {
			pf := pm.Findings[i]
			if int(pf[0].(float64)) != f.Rank || doc.S[int(pf[3].(float64))] != f.Title {
				t.Errorf("%s: finding %d is %v, want rank %d %q", m.Name, i, pf[:4], f.Rank, f.Title)
			}
			story := pf[12].([]any)
			if len(story) != len(f.Story) {
				t.Errorf("%s: finding %d has %d steps, want %d", m.Name, f.Rank, len(story), len(f.Story))
				continue
			}
			for j, st := range f.Story {
				s := doc.Steps[int(story[j].(float64))]
				if doc.S[s[0]] != string(st.Layer) || doc.S[s[1]] != string(st.Outcome) || doc.S[s[2]] != st.Reason {
					t.Errorf("%s: finding %d step %d differs", m.Name, f.Rank, j+1)
				}
			}
		}
	}
}

// TestHTMLSelfContained checks the page's structure on a small report:
// one document, inline assets only, the data escaped so that no string
// of the report can end the script element, and the parts the browser
// test drives.
func TestHTMLSelfContained(t *testing.T) {
	w := htmlSyntheticWorld(t, 200, 0)
	// A command name that tries to break out of the data element.
	w.Tasks[len(w.Tasks)-1].Comm = `</script><script>alert(1)</script>`
	m := htmlBuild(t, w, "small <&> machine", report.Options{})
	var buf bytes.Buffer
	if err := report.WriteHTML(&buf, report.New([]*report.Machine{m}, time.Now())); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	if !strings.HasPrefix(page, "<!DOCTYPE html>") {
		t.Errorf("page starts with %q", page[:min(len(page), 40)])
	}
	if n := strings.Count(page, "<script>alert(1)"); n != 0 {
		t.Errorf("a command name escapes the data element (%d times)", n)
	}
	for _, want := range []string{`id="report-data"`, `id="graph"`, `id="details"`, `id="edges"`, `id="findings"`, `<style>`, "Content-Security-Policy"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if strings.Contains(page, "<link") || regexp.MustCompile(`<script[^>]+src=`).MatchString(page) {
		t.Error("page loads an external stylesheet or script")
	}
	// Two script elements, the data and the code, and nothing in either
	// that ends one early.
	if o, c := strings.Count(page, "<script"), strings.Count(page, "</script"); o != 2 || c != 2 {
		t.Errorf("page has %d script openings and %d closings, want 2 and 2", o, c)
	}
	if n := strings.Count(page, "</style"); n != 1 {
		t.Errorf("page has %d style closings, want 1", n)
	}
	htmlCheckPageData(t, page, m)
	if err := report.WriteHTML(&bytes.Buffer{}, report.New(nil, time.Now())); err != nil {
		t.Errorf("a report without machines: %v", err)
	}
	if !strings.Contains(page, html.EscapeString("small <&> machine")) && !strings.Contains(page, `small \u003c\u0026\u003e machine`) {
		t.Error("the machine name is not escaped")
	}
}
