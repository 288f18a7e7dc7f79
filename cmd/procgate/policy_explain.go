package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/policy"
)

func newPolicyExplainCmd() *cobra.Command {
	var subj, tgt, items []string
	var descendant, auditLine bool
	cmd := &cobra.Command{
		Use:   "explain FILE... --subject K=V,... --target K=V,... --item ITEM[,ITEM]",
		Short: "Decide one question and name the rules behind the answer (audit2why)",
		Long: `explain describes a subject and a target process by their attributes and
prints, for each item, the decision, the classes each process belongs to,
the relational facts and the deciding rules as file:line, or the nearest
allow rules that did not apply.

Process keys: uid and gid (a number, or a user or group name resolved as
policy files resolve them), groups (numbers or group names separated by
',', ':' or '+'), selinux, apparmor, exe (a path, stat'ed for its device and
inode, or DEV:INO), cgroup, pidns, pid, comm; for the target also dumpable
(true|false, default true). Values that contain commas (MLS levels, group
lists) are kept whole.

Exit status: 0 every item allowed, 1 some item denied, 2 invalid input.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPolicyExplain(cmd.OutOrStdout(), cmd.InOrStdin(), args, subj, tgt, items, descendant, auditLine)
		},
	}
	cmd.Flags().StringArrayVar(&subj, "subject", nil, "the subject: key=value[,key=value...] (repeatable)")
	cmd.Flags().StringArrayVar(&tgt, "target", nil, "the target: key=value[,key=value...] (repeatable)")
	cmd.Flags().StringSliceVar(&items, "item", nil, "items to decide (read-class or attach-class names)")
	cmd.Flags().BoolVar(&descendant, "descendant", false, "the target descends from the subject")
	cmd.Flags().BoolVar(&auditLine, "audit-line", false, "also print the audit record the decision produces (even when not audited)")
	return cmd
}

func runPolicyExplain(out io.Writer, in io.Reader, paths, subj, tgt, items []string, descendant, auditLine bool) error {
	if len(items) == 0 {
		return &exitError{2, errors.New("policy explain: --item is required")}
	}
	var its []policy.Item
	for _, name := range items {
		it, err := policy.ParseItem(strings.TrimSpace(name))
		if err != nil {
			return &exitError{2, fmt.Errorf("policy explain: --item: %w", err)}
		}
		its = append(its, it)
	}
	s, t, err := parseProcesses(subj, tgt)
	if err != nil {
		return &exitError{2, fmt.Errorf("policy explain: %w", err)}
	}
	p, err := loadPolicies(paths, in)
	if err != nil {
		return err
	}
	var rel policy.Relation
	if descendant {
		rel |= policy.RelDescendant
	}
	denied := 0
	for i, it := range its {
		if i > 0 {
			fmt.Fprintln(out)
		}
		e := p.Explain(s, t, rel, it)
		fmt.Fprint(out, e.String())
		if e.Audit || auditLine {
			fmt.Fprintf(out, "  record:  %s\n", e.AuditLine())
		}
		if !e.Allowed {
			denied++
		}
	}
	if denied > 0 {
		return &exitError{1, fmt.Errorf("%d of %d item(s) denied", denied, len(its))}
	}
	return nil
}

// parseProcesses builds a subject and a target from key=value lists.
func parseProcesses(subj, tgt []string) (*policy.Subject, *policy.Target, error) {
	t := &policy.Target{Dumpable: true}
	var s policy.Subject
	sf, err := splitKV(subj)
	if err != nil {
		return nil, nil, fmt.Errorf("--subject: %w", err)
	}
	for _, kv := range sf {
		if err := setProcField(&s.Process, nil, kv[0], kv[1]); err != nil {
			return nil, nil, fmt.Errorf("--subject: %w", err)
		}
	}
	tf, err := splitKV(tgt)
	if err != nil {
		return nil, nil, fmt.Errorf("--target: %w", err)
	}
	for _, kv := range tf {
		if err := setProcField(&t.Process, &t.Dumpable, kv[0], kv[1]); err != nil {
			return nil, nil, fmt.Errorf("--target: %w", err)
		}
	}
	return &s, t, nil
}

// splitKV splits "a=1,b=2" lists; a comma-separated part without '='
// belongs to the value before it (SELinux MLS categories: s0:c1,c2).
func splitKV(args []string) ([][2]string, error) {
	var out [][2]string
	for _, a := range args {
		for _, part := range strings.Split(a, ",") {
			k, v, ok := strings.Cut(part, "=")
			if !ok {
				if len(out) == 0 {
					return nil, fmt.Errorf("%q: want key=value", part)
				}
				out[len(out)-1][1] += "," + part
				continue
			}
			out = append(out, [2]string{strings.TrimSpace(k), v})
		}
	}
	return out, nil
}

var procKeys = []string{"pid", "comm", "uid", "gid", "groups", "selinux", "apparmor", "exe", "cgroup", "pidns", "caps", "dumpable"}

// setProcField sets the field key of p to val; dumpable, the target's
// flag, is nil for a subject.
func setProcField(p *policy.Process, dumpable *bool, key, val string) error {
	var err error
	switch key {
	case "pid":
		p.PID, err = strconv.Atoi(val)
		if err != nil {
			return fmt.Errorf("pid=%q: want a number", val)
		}
	case "comm":
		p.Comm = val
	case "uid":
		p.UID, err = resolveID(key, val, true)
	case "gid":
		p.GID, err = resolveID(key, val, false)
	case "groups":
		p.Groups = nil
		for _, g := range strings.FieldsFunc(val, func(r rune) bool { return r == ',' || r == ':' || r == '+' || r == ' ' }) {
			id, err := resolveID(key, g, false)
			if err != nil {
				return err
			}
			p.Groups = append(p.Groups, id)
		}
	case "selinux", "label", "context":
		p.SELinux = val
	case "apparmor":
		p.AppArmor = val
	case "exe":
		p.Exe.Path = val
		if d, i, ok := strings.Cut(val, ":"); ok && !strings.HasPrefix(val, "/") {
			dev, err1 := strconv.ParseUint(d, 0, 64)
			ino, err2 := strconv.ParseUint(i, 10, 64)
			if err1 != nil || err2 != nil {
				return fmt.Errorf("exe=%q: want a path or DEV:INO", val)
			}
			p.Exe.Dev, p.Exe.Ino, p.Exe.Path = dev, ino, ""
			return nil
		}
		dev, ino, serr := policy.SystemResolver{}.StatExe(val)
		if serr != nil {
			return fmt.Errorf("exe=%q: %w", val, serr)
		}
		p.Exe.Dev, p.Exe.Ino = dev, ino
	case "cgroup":
		p.Cgroup = val
	case "caps":
		p.CapPermitted = 0
		for _, name := range strings.FieldsFunc(val, func(r rune) bool { return r == ',' || r == '+' || r == ' ' }) {
			c, err := kernel.ParseCap(name)
			if err != nil {
				return fmt.Errorf("caps=%q: %w", val, err)
			}
			p.CapPermitted |= kernel.CapsOf(c)
		}
	case "pidns":
		p.PIDNS, err = strconv.ParseUint(val, 10, 64)
		if err != nil {
			return fmt.Errorf("pidns=%q: want a number", val)
		}
	case "dumpable":
		if dumpable == nil {
			return errors.New("dumpable is a target key")
		}
		*dumpable, err = strconv.ParseBool(val)
		if err != nil {
			return fmt.Errorf("dumpable=%q: want true or false", val)
		}
	default:
		return fmt.Errorf("unknown key %q (known: %s)", key, strings.Join(procKeys, ", "))
	}
	return err
}

// resolveID returns the id a uid, gid or groups value names: a number as
// it is, else a user (user) or group name looked up as policy files look
// their names up (policy.SystemResolver: the passwd and group databases).
func resolveID(key, val string, user bool) (uint32, error) {
	if n, err := strconv.ParseUint(val, 10, 32); err == nil {
		return uint32(n), nil
	}
	lookup, what := policy.SystemResolver{}.LookupGroup, "group"
	if user {
		lookup, what = policy.SystemResolver{}.LookupUser, "user"
	}
	id, err := lookup(val)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: want a number or a %s name of this machine: %w", key, val, what, err)
	}
	return id, nil
}
