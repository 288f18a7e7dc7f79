package report

import (
	"cmp"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/yama"
	"github.com/procgate/procgate/policy"
)

// WhatIf is one hypothetical change: a kernel setting, a new broker
// policy, or a capability dropped from a process.
type WhatIf struct {
	// Key and Value are the change as given ("yama", "1").
	Key, Value string

	apply func(w *kernel.World) (undo func(), err error)
	pol   *policy.Policy
}

// String returns "key=value".
func (wi WhatIf) String() string { return wi.Key + "=" + wi.Value }

// WhatIfKeys lists the changes ParseWhatIf accepts.
var WhatIfKeys = []string{"yama=0..3", "suid_dumpable=0..2", "hidepid=off|noaccess|invisible|ptraceable", "policy=FILE", "drop-cap=PID:CAP"}

// ParseWhatIf parses a change given as KEY=VALUE. A policy file is
// compiled here, so that its errors (with file:line:column) come before
// any work.
func ParseWhatIf(s string) (WhatIf, error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok || v == "" {
		return WhatIf{}, fmt.Errorf("what-if %q: want KEY=VALUE, one of %s", s, strings.Join(WhatIfKeys, ", "))
	}
	wi := WhatIf{Key: k, Value: v}
	switch k {
	case "yama":
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 3 {
			return wi, fmt.Errorf("what-if yama=%s: want 0, 1, 2 or 3", v)
		}
		wi.apply = func(w *kernel.World) (func(), error) { return setYama(w, yama.Scope(n)), nil }
	case "suid_dumpable":
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 2 {
			return wi, fmt.Errorf("what-if suid_dumpable=%s: want 0, 1 or 2", v)
		}
		wi.apply = func(w *kernel.World) (func(), error) { return setSuidDumpable(w, kernel.Dumpable(n)), nil }
	case "hidepid":
		h, err := kernel.ParseHidePID(v)
		if err != nil {
			return wi, fmt.Errorf("what-if: %w", err)
		}
		wi.apply = func(w *kernel.World) (func(), error) {
			old := w.Proc.HidePID
			w.Proc.HidePID = h
			return func() { w.Proc.HidePID = old }, nil
		}
	case "policy":
		pol, err := LoadPolicy(v)
		if err != nil {
			return wi, fmt.Errorf("what-if policy=%s: %w", v, err)
		}
		wi.pol = pol
		wi.apply = func(*kernel.World) (func(), error) { return func() {}, nil }
	case "drop-cap":
		ps, cs, ok := strings.Cut(v, ":")
		pid, err := strconv.Atoi(ps)
		if !ok || err != nil || pid <= 0 {
			return wi, fmt.Errorf("what-if drop-cap=%s: want PID:CAP, as drop-cap=812:sys_ptrace", v)
		}
		c, err := kernel.ParseCap(cs)
		if err != nil {
			return wi, fmt.Errorf("what-if drop-cap=%s: %w", v, err)
		}
		wi.apply = func(w *kernel.World) (func(), error) { return dropCap(w, pid, c) }
	default:
		return wi, fmt.Errorf("what-if %q: unknown key %q (want one of %s)", s, k, strings.Join(WhatIfKeys, ", "))
	}
	return wi, nil
}

// LoadPolicy compiles a policy file for the report. Unlike the daemons,
// the report does not insist that root owns the file: it only reads it.
func LoadPolicy(path string) (*policy.Policy, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return policy.Load(path, src)
}

// setYama sets Yama's scope, adding the module (after the capability
// module and Landlock, where the kernel's lsm= order puts it) when it
// is not active.
func setYama(w *kernel.World, s yama.Scope) func() {
	old := w.LSMs
	lsms := slices.Clone(w.LSMs)
	if i := slices.IndexFunc(lsms, func(l kernel.LSM) bool { return l.Name() == "yama" }); i >= 0 {
		lsms[i] = &yama.Module{Scope: s}
	} else {
		at := 1
		if len(lsms) > 1 && lsms[1].Name() == "landlock" {
			at = 2
		}
		lsms = slices.Insert(lsms, min(at, len(lsms)), kernel.LSM(&yama.Module{Scope: s}))
	}
	w.LSMs = lsms
	return func() { w.LSMs = old }
}

// setSuidDumpable sets fs.suid_dumpable and, since the kernel applies
// it when a process executes a set-id program (fs/exec.c:
// begin_new_exec: set_dumpable(suid_dumpable) when the credentials
// change), gives every set-id process (real and effective or saved ids
// differ) whose address space has the old value the new one. A process
// that made itself non-dumpable with prctl cannot be told from one the
// setting made so; only set-id ones are changed.
func setSuidDumpable(w *kernel.World, v kernel.Dumpable) func() {
	old := w.SuidDumpable
	type saved struct {
		mm *kernel.MM
		d  kernel.Dumpable
	}
	var undo []saved
	seen := map[*kernel.MM]bool{}
	for _, t := range w.Tasks {
		c := &t.Cred
		setID := c.UID != c.EUID || c.UID != c.SUID || c.GID != c.EGID || c.GID != c.SGID
		if t.MM == nil || seen[t.MM] || !setID || int(t.MM.Dumpable) != old {
			continue
		}
		seen[t.MM] = true
		undo = append(undo, saved{t.MM, t.MM.Dumpable})
		t.MM.Dumpable = v
	}
	w.SuidDumpable = int(v)
	return func() {
		w.SuidDumpable = old
		for _, s := range undo {
			s.mm.Dumpable = s.d
		}
	}
}

// dropCap removes c from the effective and permitted sets of every task
// of process pid.
func dropCap(w *kernel.World, pid int, c kernel.Cap) (func(), error) {
	type saved struct {
		t        *kernel.Task
		eff, prm kernel.CapSet
	}
	var undo []saved
	for _, t := range w.Tasks {
		if t.TGID == pid || t.PID == pid {
			undo = append(undo, saved{t, t.Cred.CapEffective, t.Cred.CapPermitted})
			t.Cred.CapEffective &^= kernel.CapsOf(c)
			t.Cred.CapPermitted &^= kernel.CapsOf(c)
		}
	}
	if len(undo) == 0 {
		return nil, fmt.Errorf("what-if drop-cap=%d:%s: no process %d in the report", pid, c, pid)
	}
	return func() {
		for _, s := range undo {
			s.t.Cred.CapEffective, s.t.Cred.CapPermitted = s.eff, s.prm
		}
	}, nil
}

// Diff is the effect of one what-if: the edges (principal class, target
// class, relation, access) whose pairs lose or gain the access.
type Diff struct {
	Change   string     `json:"change"`
	Settings Settings   `json:"settings"`
	Removed  []DiffEdge `json:"removed"`
	Added    []DiffEdge `json:"added"`
	// ByPrincipal counts the pairs removed and added per principal.
	ByPrincipal []PrincipalDiff `json:"by_principal"`
	// Policy is set when the change is a new broker policy: its grants
	// on top of the kernel that appear or disappear.
	GrantsRemoved []DiffEdge `json:"grants_removed,omitempty"`
	GrantsAdded   []DiffEdge `json:"grants_added,omitempty"`
}

// DiffEdge is one edge that changed. Principal and Target are the
// classes' ids in the report before the change when they exist there,
// and their labels; Key fields identify them across the two.
type DiffEdge struct {
	Principal      string   `json:"principal"`
	PrincipalLabel string   `json:"principal_label"`
	Target         string   `json:"target"`
	TargetLabel    string   `json:"target_label"`
	Relation       Relation `json:"relation,omitempty"`
	Access         string   `json:"access"`
	Pairs          int      `json:"pairs"`
	// Layer is the step that decides after the change (for a removed
	// edge, the one that now denies).
	Layer kernel.Layer `json:"layer,omitempty"`
	// Example is one pair that changed, by pid.
	Example [2]int `json:"example"`
}

// PrincipalDiff counts one principal's changed pairs.
type PrincipalDiff struct {
	Principal string `json:"principal"`
	Label     string `json:"label"`
	Removed   int    `json:"removed"`
	Added     int    `json:"added"`
}

// whatIf builds the report again with the change applied and diffs it
// against base.
func whatIf(in Input, o Options, base *Machine, wi WhatIf) (*Diff, error) {
	undo, err := wi.apply(in.World)
	if err != nil {
		return nil, err
	}
	defer undo()
	pol, name := o.Policy, o.PolicyName
	if wi.pol != nil {
		pol, name = wi.pol, wi.Value
	}
	after, err := build(in, pol, name, nil)
	if err != nil {
		return nil, err
	}
	d := diff(base, after)
	d.Change = wi.String()
	return d, nil
}

// diffKey identifies an edge across two reports.
type diffKey struct {
	p, t string // class keys
	rel  Relation
	a    Access
}

type diffVal struct {
	pairs   int
	example [2]int
	layer   kernel.Layer
}

// diff compares two reports of the same machine pair by pair: pairs of
// unrelated processes through their classes' edge, related pairs one
// by one.
func diff(before, after *Machine) *Diff {
	d := &Diff{Settings: after.Settings, Removed: []DiffEdge{}, Added: []DiffEdge{}}
	removed, added := map[diffKey]*diffVal{}, map[diffKey]*diffVal{}
	note := func(m map[diffKey]*diffVal, k diffKey, n int, ex [2]int, l kernel.Layer) {
		v := m[k]
		if v == nil {
			v = &diffVal{example: ex, layer: l}
			m[k] = v
		}
		v.pairs += n
	}
	// Unrelated pairs: the members of each edge's classes, grouped by
	// their classes after the change (one group each, unless the change
	// moved a process to another class), against after's edge of the
	// groups' classes.
	pg := map[*Class][]group{}
	tg := map[*Class][]group{}
	relIn := map[[2]*Class][][2]int{}
	for k := range before.related {
		pc := [2]*Class{before.pclass[k[0]], before.tclass[k[1]]}
		relIn[pc] = append(relIn[pc], k)
	}
	for _, e := range before.Edges {
		if e.Relation != Unrelated {
			continue
		}
		if pg[e.p] == nil {
			pg[e.p] = regroup(before, after, e.p, true)
		}
		if tg[e.t] == nil {
			tg[e.t] = regroup(before, after, e.t, false)
		}
		for _, pa := range pg[e.p] {
			for _, ta := range tg[e.t] {
				n, ex := pairsIn(pa, ta, relIn[[2]*Class{e.p, e.t}], after)
				if n == 0 {
					continue
				}
				if len(pg[e.p]) == 1 && len(tg[e.t]) == 1 {
					n, ex = e.Pairs, e.Example
				}
				var ae *Edge
				if lt := before.loginRep[e.p]; lt != nil && ta.c != nil {
					// A login is related to no process, so one decision
					// answers for the group. It is made directly: after
					// the change a process may hold the login's
					// credentials, and that process's class (the login's
					// after) has no unrelated edge to its own target class.
					ae = &Edge{Answers: after.answers(lt, after.tasks[ta.pids[0]])}
				} else if pa.c != nil && ta.c != nil {
					ae = after.edgeOf[edgeKey{pa.c, ta.c, Unrelated, ""}]
				}
				for a := range NumAccess {
					k := diffKey{e.p.Key, e.t.Key, Unrelated, a}
					was, is := e.Answers[a].Allowed, ae != nil && ae.Answers[a].Allowed
					switch {
					case was && !is:
						l := kernel.Layer("")
						if ae != nil {
							l = ae.Answers[a].Layer
						}
						note(removed, k, n, ex, l)
					case !was && is:
						note(added, k, n, ex, ae.Answers[a].Layer)
					}
				}
			}
		}
	}
	// In pid order: a diff edge's example and layer are its first pair's.
	relPairs := slices.SortedFunc(maps.Keys(before.relEdge), func(a, b [2]int) int {
		return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1]))
	})
	for _, k := range relPairs {
		e := before.relEdge[k]
		ae := after.relEdge[k]
		for a := range NumAccess {
			dk := diffKey{e.p.Key, e.t.Key, e.Relation, a}
			was, is := e.Answers[a].Allowed, ae != nil && ae.Answers[a].Allowed
			switch {
			case was && !is:
				l := kernel.Layer("")
				if ae != nil {
					l = ae.Answers[a].Layer
				}
				note(removed, dk, 1, k, l)
			case !was && is:
				note(added, dk, 1, k, ae.Answers[a].Layer)
			}
		}
	}
	// Pairs related only after the change (none for the settings; a
	// dropped capability changes no relation) are compared the same way.
	d.Removed = diffEdges(before, removed)
	d.Added = diffEdges(before, added)
	per := map[string]*PrincipalDiff{}
	var order []string
	count := func(list []DiffEdge, removed bool) {
		for _, x := range list {
			pd := per[x.Principal]
			if pd == nil {
				pd = &PrincipalDiff{Principal: x.Principal, Label: x.PrincipalLabel}
				per[x.Principal] = pd
				order = append(order, x.Principal)
			}
			if removed {
				pd.Removed += x.Pairs
			} else {
				pd.Added += x.Pairs
			}
		}
	}
	count(d.Removed, true)
	count(d.Added, false)
	d.ByPrincipal = []PrincipalDiff{}
	for _, p := range order {
		d.ByPrincipal = append(d.ByPrincipal, *per[p])
	}
	slices.SortFunc(d.ByPrincipal, func(a, b PrincipalDiff) int {
		return cmp.Or(cmp.Compare(b.Removed+b.Added, a.Removed+a.Added), strings.Compare(a.Principal, b.Principal))
	})
	if before.pol != nil || after.pol != nil {
		d.GrantsRemoved, d.GrantsAdded = diffGrants(before, after)
	}
	return d
}

// group is the members of one class that fall in one class after a
// change: c is that class (nil if none), pids the members.
type group struct {
	c    *Class
	pids []int
	set  map[int]bool
}

// regroup splits class c of before by the members' classes in after. A
// login principal has no pid: its class after is found by key.
func regroup(before, after *Machine, c *Class, principal bool) []group {
	if before.loginRep[c] != nil {
		for _, x := range after.Principals {
			if x.Key == c.Key {
				return []group{{c: x, pids: []int{0}, set: map[int]bool{}}}
			}
		}
		return []group{{pids: []int{0}, set: map[int]bool{}}}
	}
	var out []group
	idx := map[*Class]int{}
	for _, mem := range c.Members {
		x := after.tclass[mem.PID]
		if principal {
			x = after.pclass[mem.PID]
		}
		i, ok := idx[x]
		if !ok {
			i = len(out)
			idx[x] = i
			out = append(out, group{c: x, set: map[int]bool{}})
		}
		out[i].pids = append(out[i].pids, mem.PID)
		out[i].set[mem.PID] = true
	}
	return out
}

// pairsIn counts the unrelated pairs of distinct processes between
// groups pa and ta, given the related pairs of their classes, and
// returns one of them.
func pairsIn(pa, ta group, related [][2]int, after *Machine) (int, [2]int) {
	n := len(pa.pids) * len(ta.pids)
	for _, p := range pa.pids {
		if ta.set[p] {
			n--
		}
	}
	for _, k := range related {
		if pa.set[k[0]] && ta.set[k[1]] {
			n--
		}
	}
	if n <= 0 {
		return 0, [2]int{}
	}
	for _, p := range pa.pids {
		for _, t := range ta.pids {
			if p != t && after.related[[2]int{p, t}] == Unrelated {
				return n, [2]int{p, t}
			}
		}
	}
	return n, [2]int{pa.pids[0], ta.pids[0]}
}

func diffEdges(before *Machine, m map[diffKey]*diffVal) []DiffEdge {
	pk, tk := map[string]*Class{}, map[string]*Class{}
	for _, c := range before.Principals {
		pk[c.Key] = c
	}
	for _, c := range before.Targets {
		tk[c.Key] = c
	}
	out := make([]DiffEdge, 0, len(m))
	for k, v := range m {
		p, t := pk[k.p], tk[k.t]
		out = append(out, DiffEdge{Principal: p.ID, PrincipalLabel: p.Label, Target: t.ID, TargetLabel: t.Label,
			Relation: k.rel, Access: k.a.String(), Pairs: v.pairs, Layer: v.layer, Example: v.example})
	}
	slices.SortFunc(out, func(a, b DiffEdge) int {
		return cmp.Or(cmp.Compare(classIndex(pk[keyOfID(before, a.Principal)]), classIndex(pk[keyOfID(before, b.Principal)])),
			cmp.Compare(classIndex(tk[keyOfID(before, a.Target)]), classIndex(tk[keyOfID(before, b.Target)])),
			strings.Compare(string(a.Relation), string(b.Relation)), strings.Compare(a.Access, b.Access))
	})
	return out
}

func keyOfID(m *Machine, id string) string { return m.Class(id).Key }

// diffGrants compares the policy grants of the two reports, per edge.
func diffGrants(before, after *Machine) (removed, added []DiffEdge) {
	type gk struct {
		p, t string
		rel  Relation
		item string
	}
	collect := func(m *Machine) map[gk]*Edge {
		out := map[gk]*Edge{}
		for _, e := range m.Edges {
			for _, g := range e.Grants {
				out[gk{e.p.Key, e.t.Key, e.Relation, g}] = e
			}
		}
		return out
	}
	b, a := collect(before), collect(after)
	mk := func(e *Edge, item string) DiffEdge {
		return DiffEdge{Principal: e.p.ID, PrincipalLabel: e.p.Label, Target: e.t.ID, TargetLabel: e.t.Label,
			Relation: e.Relation, Access: item, Pairs: e.Pairs, Example: e.Example}
	}
	removed, added = []DiffEdge{}, []DiffEdge{}
	for k, e := range b {
		if a[k] == nil {
			removed = append(removed, mk(e, k.item))
		}
	}
	for k, e := range a {
		if b[k] == nil {
			added = append(added, mk(e, k.item))
		}
	}
	order := func(x, y DiffEdge) int {
		return cmp.Or(strings.Compare(x.Principal, y.Principal), strings.Compare(x.Target, y.Target), strings.Compare(x.Access, y.Access))
	}
	slices.SortFunc(removed, order)
	slices.SortFunc(added, order)
	return removed, added
}
