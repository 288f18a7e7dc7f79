package policy

import (
	"fmt"

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
// asks none), a rule with when conditions or class exclusions, and a
// class with a selector other than uid, gid, group and exe (labels,
// cgroups and containers are not read by the program). Classes that
// match nothing on this machine (every name of a selector unresolved)
// are left out with their rules.
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
			k, err := kernelClause(cl)
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
func kernelClause(cl clause) (bpf.Clause, error) {
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
	default:
		return k, fmt.Errorf("the kernel program reads only uid, gid, group and exe selectors, not %s", selectorKeys[cl.key])
	}
	return k, nil
}
