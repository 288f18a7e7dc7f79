package scenario

import (
	"bytes"
	"errors"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/apparmor"
	"github.com/procgate/procgate/kernel/lsm/selinux"
	"github.com/procgate/procgate/kernel/lsm/smack"
)

// The mandatory-access-control modules and their kernel.<name> keys:
//
//	selinux:  {enforcing: true, policy: "<TE text>"}
//	apparmor: {profiles: "<profile text>", legacy_no_ptrace_mediation: false}
//	smack:    {ptrace: 0, rules: "<subject object access lines>", onlycap: [label], logging: 1}
//
// A module listed in kernel.lsm without its configuration runs with no
// policy: SELinux grants nothing (enforcing), AppArmor knows no profiles
// (only unconfined tasks), Smack has no rules.

func init() {
	moduleBuilders["selinux"] = (*loader).selinux
	moduleBuilders["apparmor"] = (*loader).apparmor
	moduleBuilders["smack"] = (*loader).smack
	moduleWriters["selinux"] = writeSELinux
	moduleWriters["apparmor"] = writeAppArmor
	moduleWriters["smack"] = writeSmack
}

func (l *loader) selinux(_, cfg *yaml.Node) kernel.LSM {
	c := l.mapping(cfg, "kernel.selinux", "enforcing", "policy")
	enforcing := true
	if v := c["enforcing"]; v != nil {
		enforcing = l.boolean(v, "kernel.selinux.enforcing")
	}
	var pol *selinux.Policy
	if v := c["policy"]; v != nil {
		text := l.str(v, "kernel.selinux.policy")
		p, err := selinux.Parse(text)
		if err != nil {
			l.embeddedErrs(v, "kernel.selinux.policy", err)
			return nil
		}
		pol = p
	}
	return selinux.New(pol, enforcing)
}

func (l *loader) apparmor(_, cfg *yaml.Node) kernel.LSM {
	c := l.mapping(cfg, "kernel.apparmor", "profiles", "legacy_no_ptrace_mediation")
	var pol *apparmor.Policy
	if v := c["profiles"]; v != nil {
		p, err := apparmor.Parse(l.str(v, "kernel.apparmor.profiles"))
		if err != nil {
			l.embeddedErrs(v, "kernel.apparmor.profiles", err)
			return nil
		}
		pol = p
	}
	m := apparmor.New(pol)
	if v := c["legacy_no_ptrace_mediation"]; v != nil {
		m.LegacyNoPtraceMediation = l.boolean(v, "kernel.apparmor.legacy_no_ptrace_mediation")
	}
	return m
}

func (l *loader) smack(pos, cfg *yaml.Node) kernel.LSM {
	c := l.mapping(cfg, "kernel.smack", "ptrace", "rules", "onlycap", "logging")
	var ptrace int64
	if v := c["ptrace"]; v != nil {
		ptrace, _ = l.integer(v, "kernel.smack.ptrace", 0, 2)
	}
	var rules *smack.Rules
	if v := c["rules"]; v != nil {
		r, err := smack.ParseRules(l.str(v, "kernel.smack.rules"))
		if err != nil {
			l.embeddedErrs(v, "kernel.smack.rules", err)
			return nil
		}
		rules = r
	}
	m, err := smack.New(int(ptrace), rules)
	if err != nil {
		l.errf(pos, "kernel.smack: %v", err)
		return nil
	}
	for _, x := range l.seq(c["onlycap"], "kernel.smack.onlycap") {
		m.OnlyCap = append(m.OnlyCap, l.str(x, "kernel.smack.onlycap"))
	}
	if v := c["logging"]; v != nil {
		if x, ok := l.integer(v, "kernel.smack.logging", 0, 3); ok {
			m.Logging = smack.Logging(x)
		}
	}
	return m
}

// embeddedErrs reports the errors of a policy text embedded in the YAML
// scalar n at their place in the scenario file. For a literal block
// scalar ("|"), text line L column C is file line n.Line+L at the block's
// indentation plus C; for any other style (whose lines may be folded or
// escaped) the text's own position is given after the scalar's.
func (l *loader) embeddedErrs(n *yaml.Node, what string, err error) {
	var list ErrorList
	var one *Error
	switch {
	case errors.As(err, &list):
	case errors.As(err, &one):
		list = ErrorList{one}
	default:
		list = ErrorList{{Msg: err.Error()}}
	}
	literal := n.Style&yaml.LiteralStyle != 0
	indent := l.blockIndent(n)
	for _, p := range list {
		switch {
		case p.Line == 0:
			l.errf(n, "%s: %s", what, p.Msg)
		case literal && indent >= 0:
			l.errs = append(l.errs, &Error{File: l.file, Line: n.Line + p.Line, Col: indent + p.Col, Msg: what + ": " + p.Msg})
		default:
			l.errf(n, "%s: text line %d column %d: %s", what, p.Line, p.Col, p.Msg)
		}
	}
}

// blockIndent returns the indentation of a block scalar's content (the
// first non-blank line after the indicator), or -1 when it cannot be
// found in the source.
func (l *loader) blockIndent(n *yaml.Node) int {
	lines := bytes.Split(l.src, []byte("\n"))
	for i := n.Line; i < len(lines); i++ { // n.Line is 1-based: lines[n.Line] is the next line
		s := string(lines[i])
		if strings.TrimSpace(s) == "" {
			continue
		}
		return len(s) - len(strings.TrimLeft(s, " "))
	}
	return -1
}

func blockText(s string) *yaml.Node {
	n := scalar(s)
	if strings.Contains(s, "\n") {
		n.Style = yaml.LiteralStyle
	}
	return n
}

func writeSELinux(m kernel.LSM) (*yaml.Node, error) {
	x, ok := m.(*selinux.Module)
	if !ok {
		return nil, errors.New("not the selinux package's module")
	}
	n := mapNode()
	addPair(n, "enforcing", boolNode(x.Enforcing()))
	if p := x.Policy(); p != nil {
		addPair(n, "policy", blockText(p.Source()))
	}
	return n, nil
}

func writeAppArmor(m kernel.LSM) (*yaml.Node, error) {
	x, ok := m.(*apparmor.Module)
	if !ok {
		return nil, errors.New("not the apparmor package's module")
	}
	n := mapNode()
	if p := x.Policy(); p != nil {
		addPair(n, "profiles", blockText(p.Source()))
	}
	if x.LegacyNoPtraceMediation {
		addPair(n, "legacy_no_ptrace_mediation", boolNode(true))
	}
	if len(n.Content) == 0 {
		return nil, nil
	}
	return n, nil
}

func writeSmack(m kernel.LSM) (*yaml.Node, error) {
	x, ok := m.(*smack.Module)
	if !ok {
		return nil, errors.New("not the smack package's module")
	}
	n := mapNode()
	addPair(n, "ptrace", intNode(int64(x.Ptrace)))
	if src := x.Rules().Source(); src != "" {
		addPair(n, "rules", blockText(src))
	}
	if len(x.OnlyCap) > 0 {
		s := flowSeq()
		for _, c := range x.OnlyCap {
			s.Content = append(s.Content, scalar(c))
		}
		addPair(n, "onlycap", s)
	}
	addPair(n, "logging", intNode(int64(x.Logging)))
	return n, nil
}
