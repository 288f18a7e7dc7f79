package scenario

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/bpf"
)

// procgate's BPF LSM program, kernel.bpf, with its rule set (package
// kernel/lsm/bpf):
//
//	bpf:
//	  generation: 3
//	  exempt_cgroup: 77          # cgroup v2 id; the task key cgroup says whose
//	  classes:
//	    - {name: guarded, clauses: ["uid 3333"]}
//	    - {name: agents, clauses: ["exe dev 8:1 ino 42", "not cgroup parent 1 level 1 system.slice/**"]}
//	  rules:
//	    - {subject: "*", target: 0, access: read, text: "protect guarded : read"}
//	    - {subject: 1, target: 0, access: attach}
//
// Clauses are written as bpf.Clause.String renders them; rules name
// classes by index ("*": every subject). Without kernel.bpf, bpf in
// kernel.lsm is the BPF LSM with no procgate rule set: it takes no part.

func init() {
	moduleBuilders["bpf"] = (*loader).bpf
	moduleWriters["bpf"] = writeBPF
}

func (l *loader) bpf(_, cfg *yaml.Node) kernel.LSM {
	if cfg == nil {
		return nil
	}
	c := l.mapping(cfg, "kernel.bpf", "generation", "exempt_cgroup", "classes", "rules")
	rs := &bpf.RuleSet{}
	if v := c["generation"]; v != nil {
		g, _ := l.integer(v, "kernel.bpf.generation", 0, 1<<62)
		rs.Generation = uint64(g)
	}
	if v := c["exempt_cgroup"]; v != nil {
		g, _ := l.integer(v, "kernel.bpf.exempt_cgroup", 0, 1<<62)
		rs.ExemptCgroup = uint64(g)
	}
	for _, cn := range l.seq(c["classes"], "kernel.bpf.classes") {
		m := l.mapping(cn, "kernel.bpf.classes", "name", "clauses")
		cl := bpf.Class{Name: l.str(m["name"], "kernel.bpf.classes.name")}
		for _, x := range l.seq(m["clauses"], "kernel.bpf.classes.clauses") {
			k, err := bpf.ParseClause(l.str(x, "kernel.bpf.classes.clauses"))
			if err != nil {
				l.errf(x, "kernel.bpf.classes.clauses: %v", err)
				continue
			}
			cl.Clauses = append(cl.Clauses, k)
		}
		rs.Classes = append(rs.Classes, cl)
	}
	classIndex := func(n *yaml.Node, what string, any bool) int {
		if any && n.Value == "*" {
			return -1
		}
		if len(rs.Classes) == 0 {
			l.errf(n, "%s: no class to name (kernel.bpf.classes is empty)", what)
			return 0
		}
		i, _ := l.integer(n, what, 0, int64(len(rs.Classes)-1)) // reports what is not a class index
		return int(i)
	}
	for _, rn := range l.seq(c["rules"], "kernel.bpf.rules") {
		m := l.mapping(rn, "kernel.bpf.rules", "subject", "target", "access", "text", "ref")
		if m["subject"] == nil || m["target"] == nil || m["access"] == nil {
			l.errf(rn, "kernel.bpf.rules: a rule needs subject, target and access")
			continue
		}
		r := bpf.Rule{
			Subject: classIndex(m["subject"], "kernel.bpf.rules.subject", true),
			Target:  classIndex(m["target"], "kernel.bpf.rules.target", false),
			Text:    l.str(m["text"], "kernel.bpf.rules.text"),
			Ref:     l.str(m["ref"], "kernel.bpf.rules.ref"),
		}
		switch a := l.str(m["access"], "kernel.bpf.rules.access"); a {
		case "read":
		case "attach":
			r.Access = bpf.Attach
		default:
			l.errf(m["access"], "kernel.bpf.rules.access: %q (want read or attach)", a)
		}
		rs.Rules = append(rs.Rules, r)
	}
	if err := rs.Validate(); err != nil {
		l.errf(cfg, "kernel.bpf: %v", err)
		return nil
	}
	return &bpf.Module{Rules: rs}
}

func writeBPF(m kernel.LSM) (*yaml.Node, error) {
	mod, ok := m.(*bpf.Module)
	if !ok {
		return nil, fmt.Errorf("not procgate's BPF module: %T", m)
	}
	rs := mod.Rules
	if rs == nil {
		return nil, nil
	}
	n := mapNode()
	addPair(n, "generation", intNode(int64(rs.Generation)))
	if rs.ExemptCgroup != 0 {
		addPair(n, "exempt_cgroup", intNode(int64(rs.ExemptCgroup)))
	}
	classes := &yaml.Node{Kind: yaml.SequenceNode}
	for _, c := range rs.Classes {
		cl := flowSeq()
		for _, k := range c.Clauses {
			cl.Content = append(cl.Content, quoted(k.String()))
		}
		classes.Content = append(classes.Content, flowMap("name", quoted(c.Name), "clauses", cl))
	}
	addPair(n, "classes", classes)
	rules := &yaml.Node{Kind: yaml.SequenceNode}
	for _, r := range rs.Rules {
		subject := quoted("*")
		if r.Subject >= 0 {
			subject = intNode(int64(r.Subject))
		}
		kv := []any{"subject", subject, "target", intNode(int64(r.Target)), "access", scalar(r.Access.String())}
		if t := strings.TrimSpace(r.Text); t != "" {
			kv = append(kv, "text", quoted(t))
		}
		if r.Ref != "" {
			kv = append(kv, "ref", quoted(r.Ref))
		}
		rules.Content = append(rules.Content, flowMap(kv...))
	}
	addPair(n, "rules", rules)
	return n, nil
}
