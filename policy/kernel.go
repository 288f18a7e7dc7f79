package policy

import (
	"cmp"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/bpf"
)

// KernelRules compiles the policy's restrictions — its deny and protect
// rules — into the rule set procgate's BPF LSM program enforces in the
// kernel (package kernel/lsm/bpf; procgate enforce): a deny rule refuses
// its subjects the ptrace access of its class (READ or ATTACH) to its
// targets, a protect rule refuses every subject. Allow, auditallow and
// dontaudit rules grant or log at the broker and have no kernel
// counterpart; a neverallow is a load-time assertion about allow rules,
// not a restriction of the kernel's own rules.
//
// What the program cannot tell apart is refused, each with its
// position: a rule that names items (the hook sees one READ or ATTACH
// question for every /proc entry and system call, and /proc/PID/status
// asks none), a rule with when conditions or class exclusions, a class
// with a selector other than uid, gid, group, exe, cgroup, container and
// cap (labels are not read by the program), and a cgroup pattern other
// than a path ("/system.slice/ssh.service") or a path's descendants
// ("/kubepods/**"). The program matches a selected cgroup by its name
// and its parent's id, which is resolved here: the parent must exist,
// and the selection holds while it does (the selected cgroup itself may
// come and go). Classes that match nothing on this machine (every name
// of a selector unresolved) are left out with their rules.
func (p *Policy) KernelRules() (*bpf.RuleSet, error) {
	rs := &bpf.RuleSet{Generation: p.gen}
	var errs ErrorList
	index := map[*class]int{}
	anyClass := -1
	classOf := func(c *class) (int, bool) {
		if i, ok := index[c]; ok {
			return i, i >= 0
		}
		if c.empty {
			index[c] = -1
			return -1, false
		}
		kc := bpf.Class{Name: c.kind.String() + " " + c.name}
		ok := true
		for _, cl := range c.clauses {
			k, err := p.kernelClause(cl)
			if err != nil {
				errs = append(errs, errorAt(c.pos, fmt.Sprintf("class %s: %v", c.name, err)))
				ok = false
				continue
			}
			kc.Clauses = append(kc.Clauses, k)
		}
		if !ok {
			index[c] = -1
			return -1, false
		}
		index[c] = len(rs.Classes)
		rs.Classes = append(rs.Classes, kc)
		return len(rs.Classes) - 1, true
	}
	for _, r := range p.rules {
		src := r.src
		if src.Effect != Deny && src.Effect != Protect {
			continue
		}
		access, full := bpf.Read, ReadItems
		if src.Attach {
			access, full = bpf.Attach, AttachItems
		}
		if src.Items != full {
			errs = append(errs, errorAt(src.Pos, fmt.Sprintf("%s: the kernel program cannot restrict single items (%s): at the ptrace hook every /proc entry and system call of the %s class asks the same question (and status asks none); restrict the whole class (: %s) or leave this rule to the broker", src.Effect, src.Items, access, access)))
			continue
		}
		if src.When != 0 || src.WhenNot != 0 {
			errs = append(errs, errorAt(src.Pos, fmt.Sprintf("%s: the kernel program evaluates no when conditions", src.Effect)))
			continue
		}
		if len(r.sExc.members()) > 0 || len(r.tExc.members()) > 0 {
			errs = append(errs, errorAt(src.Pos, fmt.Sprintf("%s: the kernel program cannot exclude classes ({ -name })", src.Effect)))
			continue
		}
		subjects := []int{-1}
		if !r.sAny {
			subjects = subjects[:0]
			for _, i := range r.sInc.members() {
				if k, ok := classOf(p.subj.classes[i]); ok {
					subjects = append(subjects, k)
				}
			}
		}
		var targets []int
		if r.tAny {
			if anyClass < 0 {
				anyClass = len(rs.Classes)
				rs.Classes = append(rs.Classes, bpf.Class{Name: "target *"})
			}
			targets = []int{anyClass}
		} else {
			for _, i := range r.tInc.members() {
				if k, ok := classOf(p.tgt.classes[i]); ok {
					targets = append(targets, k)
				}
			}
		}
		for _, s := range subjects {
			for _, t := range targets {
				rs.Rules = append(rs.Rules, bpf.Rule{Subject: s, Target: t, Access: access, Text: src.Text, Ref: r.ref().String()})
			}
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	if err := rs.Validate(); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return rs, nil
}

// kernelClause translates one selector clause for the program.
func (p *Policy) kernelClause(cl clause) (bpf.Clause, error) {
	k := bpf.Clause{Not: cl.not}
	switch cl.key {
	case selUID, selGID, selGroup:
		k.Kind = map[selKind]bpf.Kind{selUID: bpf.KindUID, selGID: bpf.KindGID, selGroup: bpf.KindGroup}[cl.key]
		for _, r := range cl.ids {
			k.IDs = append(k.IDs, bpf.IDRange{Lo: r.lo, Hi: r.hi})
		}
	case selExe:
		k.Kind = bpf.KindExe
		for _, e := range cl.exes {
			// The policy holds st_dev as stat reports it; the kernel
			// compares its own dev_t (s_dev).
			k.Exes = append(k.Exes, kernel.FileIDOfStat(e.dev, e.ino))
		}
	case selCgroup:
		k.Kind = bpf.KindCgroup
		for _, g := range cl.globs {
			sel, err := p.kernelCgroup(g)
			if err != nil {
				return k, err
			}
			k.Cgroups = append(k.Cgroups, sel)
		}
	case selContainer:
		return kernelContainer(cl), nil
	case selCap:
		k.Kind, k.Caps = bpf.KindCap, cl.caps
	default:
		return k, fmt.Errorf("the kernel program reads only uid, gid, group, exe, cgroup, container and cap selectors, not %s", selectorKeys[cl.key])
	}
	return k, nil
}

// kernelContainer translates a container clause into one on the pid
// namespace's inode: host is the initial namespace (PROC_PID_INIT_INO),
// any every other, a number that one.
func kernelContainer(cl clause) bpf.Clause {
	set := map[uint32]bool{}
	for _, n := range cl.pidns {
		set[uint32(n)] = true
	}
	if cl.host {
		set[initPIDNS] = true
	}
	if cl.cont {
		// any is the complement of the initial namespace, or of no
		// namespace when the clause names that one too: every one.
		k := bpf.Clause{Kind: bpf.KindPIDNS, Not: !cl.not}
		if !set[initPIDNS] {
			k.IDs = []bpf.IDRange{{Lo: initPIDNS, Hi: initPIDNS}}
		}
		return k
	}
	k := bpf.Clause{Kind: bpf.KindPIDNS, Not: cl.not}
	for n := range set {
		k.IDs = append(k.IDs, bpf.IDRange{Lo: n, Hi: n})
	}
	slices.SortFunc(k.IDs, func(a, b bpf.IDRange) int { return cmp.Compare(a.Lo, b.Lo) })
	return k
}

// kernelCgroup translates one cgroup pattern: a path selects that
// cgroup, path/** its descendants, /** every cgroup.
func (p *Policy) kernelCgroup(g glob) (bpf.CgroupSel, error) {
	var sel bpf.CgroupSel
	var dir string
	switch {
	case g.exact:
		dir, sel.Self = g.lit, true
	case g.prefix && g.lit == "/":
		return bpf.CgroupSel{Root: true}, nil
	case g.prefix:
		dir, sel.Below = strings.TrimSuffix(g.lit, "/"), true
	default:
		return sel, fmt.Errorf("cgroup %q: the kernel program selects a cgroup by its path (/a/b) or its descendants (/a/b/**), not by a pattern", g.pat)
	}
	dir = path.Clean(dir)
	if dir == "/" {
		return sel, fmt.Errorf("cgroup %q: the root cgroup alone cannot be selected in the kernel; /** selects every cgroup", g.pat)
	}
	parent, name := path.Split(dir)
	sel.Name = name
	sel.Level = uint32(strings.Count(dir, "/"))
	if len(name) > bpf.MaxCgroupName {
		return sel, fmt.Errorf("cgroup %q: the kernel program compares names of up to %d bytes, %q has %d", g.pat, bpf.MaxCgroupName, name, len(name))
	}
	if sel.Level > bpf.MaxCgroupLevel {
		return sel, fmt.Errorf("cgroup %q: level %d, the kernel program reads up to %d", g.pat, sel.Level, bpf.MaxCgroupLevel)
	}
	parent = path.Clean(parent)
	id, err := p.resolver.CgroupID(parent)
	if err != nil {
		return sel, fmt.Errorf("cgroup %q: its parent %s must exist when the rule set is loaded (the kernel program matches the cgroup by name under its parent's id): %v", g.pat, parent, err)
	}
	sel.Parent = id
	return sel, nil
}
