package report

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/procgate/procgate/kernel"
)

// The page's assets: the HTML template, its style sheet and script. They
// are inlined into every page, which loads nothing else.
//
//go:embed page/page.html page/page.css page/page.js
var pageFS embed.FS

// page parses the template and reads the assets on first use, not at
// start-up: every process of the binary would pay for it, including the
// verifier's short-lived role processes.
var page = sync.OnceValue(func() pageAssets {
	return pageAssets{template.Must(template.ParseFS(pageFS, "page/page.html")), mustAsset("page/page.css"), mustAsset("page/page.js")}
})

// pageAssets are the page's template, style sheet and script.
type pageAssets struct {
	tmpl    *template.Template
	css, js string
}

// mustAsset returns an embedded asset (present: go:embed checked it).
func mustAsset(name string) string {
	b, err := pageFS.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// WriteHTML writes r as one self-contained HTML page: per machine a
// graph of its principal and target classes with a details panel per
// class, a sortable and filterable table of the edges, the findings with
// their stories and the what-if diffs; for a fleet a machine selector
// and the merged findings. The page loads nothing: its style sheet,
// script and data are inline, and its Content-Security-Policy forbids
// any fetch.
//
// The data is not the JSON output ([WriteJSON]) but a compact form of
// it, so that a machine of thousands of processes stays a page of a few
// hundred kilobytes: strings are stored once in a table and referred to
// by index, the five answers of an edge are one index into a table of
// answer combinations, an edge of unrelated pairs whose pairs are the
// product of its classes' sizes is stored as a run of targets, and
// processes are stored once with their two classes. An edge stored in a
// run loses its example pair; the other edges and the findings keep
// theirs, and the findings their stories.
func WriteHTML(w io.Writer, r *Report) error {
	data, err := json.Marshal(compactReport(r)) // escapes <, > and &: the data cannot end its element
	if err != nil {
		return fmt.Errorf("html: %w", err)
	}
	title := "procgate report"
	switch {
	case len(r.Machines) == 1:
		title += ": " + r.Machines[0].Name
	case len(r.Machines) > 1:
		title += fmt.Sprintf(": %d machines", len(r.Machines))
	}
	var b bytes.Buffer
	pg := page()
	err = pg.tmpl.Execute(&b, struct {
		Title string
		CSS   template.CSS
		JS    template.JS
		Data  template.JS
	}{title, template.CSS(pg.css), template.JS(pg.js), template.JS(data)})
	if err != nil {
		return fmt.Errorf("html: %w", err)
	}
	_, err = w.Write(b.Bytes())
	return err
}

// pageDoc is the page's data, as decode in page/page.js reads it.
type pageDoc struct {
	Version   int      `json:"version"`
	Generated string   `json:"generated"`
	Accesses  []string `json:"accesses"`
	// S is the string table; index 0 is "".
	S []string `json:"s"`
	// Answers are [allowed 0|1, errno, layer, [unknown…]] (strings by
	// index); Combos the answer of each access, by index into Answers.
	Answers [][]any          `json:"answers"`
	Combos  [][NumAccess]int `json:"combos"`
	// Grants are lists of policy items; index 0 is the empty list.
	Grants [][]int `json:"grants"`
	// Steps are story steps [layer, outcome, reason].
	Steps    [][3]int      `json:"steps"`
	Machines []pageMachine `json:"machines"`
	Fleet    *pageFleet    `json:"fleet,omitempty"`
}

// pageMachine is one machine of the page's data.
type pageMachine struct {
	Name       string   `json:"name"`
	Source     string   `json:"source"`
	Kernel     string   `json:"kernel"`
	LSMs       []string `json:"lsms"`
	Settings   Settings `json:"settings"`
	Processes  int      `json:"processes"`
	Unmodelled []string `json:"unmodelled,omitempty"`
	Policy     string   `json:"policy,omitempty"`
	Counts     Counts   `json:"counts"`
	// Procs is flat, four numbers a process: pid, comm, principal class
	// (index+1, 0 for none), target class (index+1).
	Procs []int `json:"procs"`
	// Principals and Targets are [id, label, flags, uid, euid, gid, caps,
	// userns, login, dumpable (-1 for none)].
	Principals [][]any `json:"principals"`
	Targets    [][]any `json:"targets"`
	// Edges are one [runs, explicit] per principal class, in order: runs
	// are pairs (answer combination or -1, count) over the targets in
	// order, one unrelated edge a target with pairs the product of the
	// classes' sizes and no grants; explicit lists the other edges,
	// seven numbers each: target, relation, pairs, answer combination,
	// example caller and target, grants.
	Edges [][2][]int `json:"edges"`
	// Findings are [rank, severity, kind, title, principal, target (class
	// indexes, -1 for none), relation, access, pairs, example caller,
	// example target, answer, [steps], [unknown], grants].
	Findings [][]any    `json:"findings"`
	WhatIf   []pageDiff `json:"what_if,omitempty"`
}

// Class flags.
const (
	pageAdmin      = 1
	pagePrivileged = 2
	pageContainer  = 4
)

// pageDiff is one what-if diff.
type pageDiff struct {
	Change   string   `json:"change"`
	Settings Settings `json:"settings"`
	// Removed, Added, GrantsRemoved and GrantsAdded are flat, ten
	// numbers an edge (see diffEdges).
	Removed       []int `json:"removed"`
	Added         []int `json:"added"`
	GrantsRemoved []int `json:"grants_removed,omitempty"`
	GrantsAdded   []int `json:"grants_added,omitempty"`
	// ByPrincipal is flat: principal id, label, pairs removed, added.
	ByPrincipal []int `json:"by_principal"`
}

// pageFleet is a fleet's merged report.
type pageFleet struct {
	Machines   int    `json:"machines"`
	Processes  int    `json:"processes"`
	Principals int    `json:"principals"`
	Targets    int    `json:"targets"`
	Counts     Counts `json:"counts"`
	// Findings are [severity, kind, principal label, target label,
	// access, pairs, [machine names]], strings by index.
	Findings [][]any `json:"findings"`
}

// pageEncoder interns the page's strings, answers and steps.
type pageEncoder struct {
	doc     pageDoc
	strs    map[string]int
	answers map[string]int
	combos  map[[NumAccess]int]int
	grants  map[string]int
	steps   map[[3]int]int
}

// s returns the index of string v.
func (p *pageEncoder) s(v string) int {
	if i, ok := p.strs[v]; ok {
		return i
	}
	i := len(p.doc.S)
	p.strs[v] = i
	p.doc.S = append(p.doc.S, v)
	return i
}

// list returns the indexes of strings vs.
func (p *pageEncoder) list(vs []string) []int {
	out := make([]int, len(vs))
	for i, v := range vs {
		out[i] = p.s(v)
	}
	return out
}

// combo returns the index of the combination of answers a.
func (p *pageEncoder) combo(a Answers) int {
	var c [NumAccess]int
	for i, x := range a {
		k := fmt.Sprintf("%t %s %s %q", x.Allowed, x.Errno, x.Layer, x.Unknown)
		j, ok := p.answers[k]
		if !ok {
			j = len(p.doc.Answers)
			p.answers[k] = j
			allowed := 0
			if x.Allowed {
				allowed = 1
			}
			p.doc.Answers = append(p.doc.Answers, []any{allowed, p.s(x.Errno.String()), p.s(string(x.Layer)), p.list(x.Unknown)})
		}
		c[i] = j
	}
	j, ok := p.combos[c]
	if !ok {
		j = len(p.doc.Combos)
		p.combos[c] = j
		p.doc.Combos = append(p.doc.Combos, c)
	}
	return j
}

// grantList returns the index of the list of policy items g.
func (p *pageEncoder) grantList(g []string) int {
	k := strings.Join(g, "\x00")
	if i, ok := p.grants[k]; ok {
		return i
	}
	i := len(p.doc.Grants)
	p.grants[k] = i
	p.doc.Grants = append(p.doc.Grants, p.list(g))
	return i
}

// story returns the indexes of a story's steps.
func (p *pageEncoder) story(steps []kernel.Step) []int {
	out := make([]int, len(steps))
	for i, st := range steps {
		k := [3]int{p.s(string(st.Layer)), p.s(string(st.Outcome)), p.s(st.Reason)}
		j, ok := p.steps[k]
		if !ok {
			j = len(p.doc.Steps)
			p.steps[k] = j
			p.doc.Steps = append(p.doc.Steps, k)
		}
		out[i] = j
	}
	return out
}

// compactReport is r as the page's data.
func compactReport(r *Report) *pageDoc {
	p := &pageEncoder{
		doc: pageDoc{Version: Version, Generated: r.Generated.UTC().Format(time.RFC3339), Accesses: accessNames[:],
			Answers: [][]any{}, Combos: [][NumAccess]int{}, Steps: [][3]int{}, Machines: []pageMachine{}},
		strs: map[string]int{}, answers: map[string]int{}, combos: map[[NumAccess]int]int{},
		grants: map[string]int{}, steps: map[[3]int]int{},
	}
	p.s("")
	p.grantList(nil)
	for _, m := range r.Machines {
		p.doc.Machines = append(p.doc.Machines, p.machine(m))
	}
	if g := r.Merged; g != nil {
		f := &pageFleet{Machines: g.Machines, Processes: g.Processes, Principals: len(g.Principals), Targets: len(g.Targets),
			Counts: g.Counts, Findings: [][]any{}}
		for _, x := range g.Findings {
			f.Findings = append(f.Findings, []any{p.s(string(x.Severity)), p.s(x.Kind), p.s(x.PrincipalLabel), p.s(x.TargetLabel),
				p.s(x.Access), x.Pairs, p.list(x.Machines)})
		}
		p.doc.Fleet = f
	}
	return &p.doc
}

// machine encodes one machine.
func (p *pageEncoder) machine(m *Machine) pageMachine {
	pm := pageMachine{Name: m.Name, Source: m.Source, Kernel: m.Kernel, LSMs: m.LSMs, Settings: m.Settings,
		Processes: m.Processes, Unmodelled: m.Unmodelled, Policy: m.Policy, Counts: m.Count(),
		Principals: [][]any{}, Targets: [][]any{}, Edges: [][2][]int{}, Findings: [][]any{}}
	if pm.LSMs == nil {
		pm.LSMs = []string{}
	}
	pidx, tidx := map[*Class]int{}, map[*Class]int{}
	byID := map[string]int{}
	class := func(c *Class, i int, target bool) []any {
		flags := 0
		if !target && admin(c) {
			flags |= pageAdmin
		}
		if c.Privileged {
			flags |= pagePrivileged
		}
		if c.Container {
			flags |= pageContainer
		}
		d := -1
		if c.Dumpable != nil {
			d = *c.Dumpable
		}
		byID[c.ID] = i
		return []any{c.ID, p.s(c.Label), flags, c.UID, c.EUID, c.GID, p.s(c.Caps), p.s(c.UserNS), p.s(c.Login), d}
	}
	// Processes, once each, with their classes.
	type proc struct {
		comm string
		p, t int
	}
	procs := map[int]*proc{}
	var order []int
	get := func(mem Member) *proc {
		x := procs[mem.PID]
		if x == nil {
			x = &proc{comm: mem.Comm}
			procs[mem.PID] = x
			order = append(order, mem.PID)
		}
		return x
	}
	for i, c := range m.Principals {
		pidx[c] = i
		pm.Principals = append(pm.Principals, class(c, i, false))
		for _, mem := range c.Members {
			get(mem).p = i + 1
		}
	}
	for i, c := range m.Targets {
		tidx[c] = i
		pm.Targets = append(pm.Targets, class(c, i, true))
		for _, mem := range c.Members {
			get(mem).t = i + 1
		}
	}
	pm.Procs = make([]int, 0, 4*len(order))
	for _, pid := range order {
		x := procs[pid]
		pm.Procs = append(pm.Procs, pid, p.s(x.comm), x.p, x.t)
	}

	// Edges: per principal, the unrelated edges whose pairs are the
	// product of the classes' sizes and that have no grants as runs of
	// answer combinations over the targets (-1: none); the others
	// explicit, seven numbers each: target, relation, pairs, answers,
	// example caller and target, grants.
	byP := make([][]*Edge, len(m.Principals))
	for _, e := range m.Edges {
		i := pidx[e.p]
		byP[i] = append(byP[i], e)
	}
	for i, c := range m.Principals {
		codes := make([]int, len(m.Targets))
		for j := range codes {
			codes[j] = -1
		}
		var explicit []int
		for _, e := range byP[i] {
			j := tidx[e.t]
			k := p.combo(e.Answers)
			if e.Relation == Unrelated && len(e.Grants) == 0 && e.Pairs == len(c.Members)*len(e.t.Members) {
				codes[j] = k
				continue
			}
			explicit = append(explicit, j, p.s(string(e.Relation)), e.Pairs, k, e.Example[0], e.Example[1], p.grantList(e.Grants))
		}
		var runs []int
		for j := 0; j < len(codes); {
			n := 1
			for j+n < len(codes) && codes[j+n] == codes[j] {
				n++
			}
			runs = append(runs, codes[j], n)
			j += n
		}
		if runs == nil {
			runs = []int{}
		}
		if explicit == nil {
			explicit = []int{}
		}
		pm.Edges = append(pm.Edges, [2][]int{runs, explicit})
	}

	for _, f := range m.Findings {
		pm.Findings = append(pm.Findings, []any{f.Rank, p.s(string(f.Severity)), p.s(f.Kind), p.s(f.Title),
			classRef(byID, f.Principal), classRef(byID, f.Target), p.s(string(f.Relation)), p.s(f.Access), f.Pairs,
			f.Example[0], f.Example[1], p.s(f.Answer), p.story(f.Story), p.list(f.Unknown), p.grantList(f.Grants)})
	}
	for _, d := range m.WhatIf {
		pd := pageDiff{Change: d.Change, Settings: d.Settings, Removed: p.diffEdges(d.Removed), Added: p.diffEdges(d.Added),
			ByPrincipal: []int{}}
		if d.GrantsRemoved != nil || d.GrantsAdded != nil {
			pd.GrantsRemoved, pd.GrantsAdded = p.diffEdges(d.GrantsRemoved), p.diffEdges(d.GrantsAdded)
		}
		for _, x := range d.ByPrincipal {
			pd.ByPrincipal = append(pd.ByPrincipal, p.s(x.Principal), p.s(x.Label), x.Removed, x.Added)
		}
		pm.WhatIf = append(pm.WhatIf, pd)
	}
	return pm
}

// classRef is the index of the class with the given id (-1 if none).
func classRef(byID map[string]int, id string) int {
	if i, ok := byID[id]; ok {
		return i
	}
	return -1
}

// diffEdges flattens a diff's edges, ten numbers each: principal id and
// label, target id and label, relation, access (or policy item), pairs,
// layer (strings by index), example caller and target.
func (p *pageEncoder) diffEdges(list []DiffEdge) []int {
	out := make([]int, 0, 10*len(list))
	for _, x := range list {
		out = append(out, p.s(x.Principal), p.s(x.PrincipalLabel), p.s(x.Target), p.s(x.TargetLabel), p.s(string(x.Relation)),
			p.s(x.Access), x.Pairs, p.s(string(x.Layer)), x.Example[0], x.Example[1])
	}
	return out
}
