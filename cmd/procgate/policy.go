package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/procgate/procgate/policy"
)

// newPolicyCmd is `procgate policy`: check, explain and query policy
// files (the checkpolicy, audit2why and sesearch of procgate policy).
//
// Exit status: 0 success (for explain: the item is allowed); 1 a finding
// (a neverallow violated, warnings under --strict, explain: denied, why:
// the rule no longer exists); 2 invalid input, with file:line:column.
func newPolicyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Check, explain and query procgate policies",
		Long: `policy works on procgate policy files (docs/policy.md): check parses and
compiles them and proves their neverallow assertions, explain answers one
question and names the deciding rules, who-can and what-can search the rules,
why finds the rule behind an audit line, and default prints the built-in
policy.

Exit status: 0 success; 1 a finding (a neverallow violated, warnings with
--strict, a denial for explain); 2 invalid input (file:line:column).`,
	}
	cmd.AddCommand(newPolicyCheckCmd(), newPolicyExplainCmd(), newPolicyWhoCanCmd(),
		newPolicyWhatCanCmd(), newPolicyWhyCmd(), newPolicyDefaultCmd())
	return cmd
}

// loadPolicies parses and compiles files together. "-" is standard input;
// "default" (when no such file exists) is the built-in policy.
func loadPolicies(paths []string, stdin io.Reader) (*policy.Policy, error) {
	var files []*policy.File
	var errs policy.ErrorList
	for _, path := range paths {
		var src []byte
		var err error
		switch {
		case path == "-":
			src, err = io.ReadAll(stdin)
		case path == "default" && !exists(path):
			path, src = policy.DefaultName, policy.DefaultSource
		default:
			src, err = os.ReadFile(path)
		}
		if err != nil {
			return nil, &exitError{2, fmt.Errorf("policy: %w", err)}
		}
		f, err := policy.Parse(path, src)
		if err != nil {
			var l policy.ErrorList
			if errors.As(err, &l) {
				errs = append(errs, l...)
				continue
			}
			return nil, &exitError{2, err}
		}
		files = append(files, f)
	}
	if len(errs) > 0 {
		return nil, &exitError{2, errs}
	}
	p, err := policy.Compile(files...)
	if err != nil {
		if errors.Is(err, policy.ErrNeverallow) {
			return nil, &exitError{1, err}
		}
		return nil, &exitError{2, err}
	}
	return p, nil
}

// exitCode returns the exit status an error asks for.
func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return 2
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func newPolicyCheckCmd() *cobra.Command {
	var strict, quiet, combined bool
	cmd := &cobra.Command{
		Use:   "check FILE...",
		Short: "Parse and compile policy files, prove their neverallow assertions",
		Long: `check parses and compiles the files as one policy, prints what name
resolution found on this machine (users, groups and executables that do not
exist match no process: a warning, not an error), and for every neverallow
the proof: which deny or protect rule covers each allow rule that intersects
it. Each file is checked on its own unless --combined is given. Exit status:
0 clean, 1 a neverallow violated (or warnings with --strict), 2 invalid
input.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if combined {
				return runPolicyCheck(cmd.OutOrStdout(), cmd.InOrStdin(), args, strict, quiet)
			}
			// Each file on its own; the worst exit status wins.
			var worst error
			for _, path := range args {
				if !quiet {
					fmt.Fprintf(cmd.OutOrStdout(), "== %s\n", path)
				}
				err := runPolicyCheck(cmd.OutOrStdout(), cmd.InOrStdin(), []string{path}, strict, quiet)
				if err != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), "procgate:", err)
					if worst == nil || exitCode(err) > exitCode(worst) {
						worst = err
					}
				}
			}
			if worst != nil {
				return &exitError{exitCode(worst), errors.New("")}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&combined, "combined", false, "compile all files as one policy (as explain and who-can do)")
	cmd.Flags().BoolVar(&strict, "strict", false, "treat warnings as findings (exit 1)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only warnings and errors")
	return cmd
}

func runPolicyCheck(out io.Writer, in io.Reader, paths []string, strict, quiet bool) error {
	p, err := loadPolicies(paths, in)
	if err != nil {
		var ee *exitError
		var ne *policy.NeverallowError
		if errors.As(err, &ee) && errors.As(ee.Err, &ne) {
			for _, pr := range ne.Proofs {
				fmt.Fprintf(out, "proof: %s\n", pr)
			}
			return &exitError{1, fmt.Errorf("neverallow violated:\n%w", ne)}
		}
		return err
	}
	for _, w := range p.Warnings() {
		fmt.Fprintln(out, w)
	}
	if !quiet {
		for _, pr := range p.Proofs() {
			fmt.Fprintf(out, "proof: %s\n", pr)
		}
		nr := 0
		for _, f := range p.Files() {
			nr += len(f.Rules)
		}
		fmt.Fprintf(out, "ok: %d file(s), %d subject and %d target classes, %d rules, generation %d\n",
			len(p.Files()), len(p.ClassNames(policy.SubjectClass)), len(p.ClassNames(policy.TargetClass)), nr, p.Generation())
	}
	if strict && len(p.Warnings()) > 0 {
		return &exitError{1, fmt.Errorf("%d warning(s)", len(p.Warnings()))}
	}
	return nil
}

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

Process keys: uid, gid, groups (g1:g2 or g1+g2), selinux, apparmor, exe (a
path, stat'ed for its device and inode, or DEV:INO), cgroup, pidns, pid, comm;
for the target also dumpable (true|false, default true). Values that contain
commas (MLS levels) are kept whole.

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

var procKeys = []string{"pid", "comm", "uid", "gid", "groups", "selinux", "apparmor", "exe", "cgroup", "pidns", "dumpable"}

// setProcField sets the field key of p to val; dumpable, the target's
// flag, is nil for a subject.
func setProcField(p *policy.Process, dumpable *bool, key, val string) error {
	num32 := func() (uint32, error) {
		n, err := strconv.ParseUint(val, 10, 32)
		if err != nil {
			return 0, fmt.Errorf("%s=%q: want a number", key, val)
		}
		return uint32(n), nil
	}
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
		p.UID, err = num32()
	case "gid":
		p.GID, err = num32()
	case "groups":
		p.Groups = nil
		for _, g := range strings.FieldsFunc(val, func(r rune) bool { return r == ':' || r == '+' || r == ' ' }) {
			n, perr := strconv.ParseUint(g, 10, 32)
			if perr != nil {
				return fmt.Errorf("groups=%q: want numbers separated by ':' or '+'", val)
			}
			p.Groups = append(p.Groups, uint32(n))
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

func newPolicyWhoCanCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "who-can FILE... (read|attach) (TARGET-CLASS|ITEM)",
		Short: "List the allow rules that reach a target class or an item (sesearch)",
		Long: `who-can lists, for a target class (or attribute) or an item, every allow
rule that may grant it, with its conditions, the items deny and protect
rules always remove, and the rules that limit it under some conditions.`,
		Args: cobra.MinimumNArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			n := len(args)
			return runWhoCan(cmd.OutOrStdout(), cmd.InOrStdin(), args[:n-2], args[n-2], args[n-1])
		},
	}
}

func runWhoCan(out io.Writer, in io.Reader, paths []string, access, what string) error {
	var q policy.Query
	switch access {
	case "read":
		q.Items = policy.ReadItems
	case "attach":
		q.Items = policy.AttachItems
	default:
		return &exitError{2, fmt.Errorf("policy who-can: access %q: want read or attach", access)}
	}
	p, err := loadPolicies(paths, in)
	if err != nil {
		return err
	}
	if it, ierr := policy.ParseItem(what); ierr == nil {
		if it.Attach() != (access == "attach") {
			return &exitError{2, fmt.Errorf("policy who-can: item %s is not %s-class", what, access)}
		}
		q.Items = it.Set()
	} else {
		q.Target = what
	}
	gs, err := p.Search(q)
	if err != nil {
		return &exitError{2, fmt.Errorf("policy who-can: %w", err)}
	}
	writeGrants(out, gs)
	return nil
}

func newPolicyWhatCanCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "what-can FILE... SUBJECT-CLASS",
		Short: "List what a subject class may read or attach to (sesearch)",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			n := len(args)
			p, err := loadPolicies(args[:n-1], cmd.InOrStdin())
			if err != nil {
				return err
			}
			gs, err := p.Search(policy.Query{Subject: args[n-1]})
			if err != nil {
				return &exitError{2, fmt.Errorf("policy what-can: %w", err)}
			}
			writeGrants(cmd.OutOrStdout(), gs)
			return nil
		},
	}
}

func writeGrants(out io.Writer, gs []policy.Grant) {
	if len(gs) == 0 {
		fmt.Fprintln(out, "no allow rule matches (default deny)")
		return
	}
	for _, g := range gs {
		access := "read"
		if g.Items&policy.AttachItems != 0 {
			access = "attach"
		}
		line := fmt.Sprintf("%s %s : %s %s", g.Subject, g.Target, access, g.EffectiveItems)
		if g.EffectiveItems == 0 {
			line = fmt.Sprintf("%s %s : %s (nothing left)", g.Subject, g.Target, access)
		}
		if g.ConditionSummary != "" {
			line += " " + g.ConditionSummary
		}
		fmt.Fprintf(out, "%s  %s\n", g.Rule, line)
		if g.Removed != 0 {
			fmt.Fprintf(out, "    always removed: %s by %s\n", g.Removed, refs(g.RemovedBy))
		}
		if len(g.Limits) > 0 {
			fmt.Fprintf(out, "    limited by: %s\n", refs(g.Limits))
		}
		if len(g.AuditedBy) > 0 {
			fmt.Fprintf(out, "    logged by: %s\n", refs(g.AuditedBy))
		}
	}
}

func refs(rs []policy.RuleRef) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.String()
	}
	return strings.Join(parts, ", ")
}

func newPolicyWhyCmd() *cobra.Command {
	var files []string
	cmd := &cobra.Command{
		Use:   "why 'AUDIT LINE' [--policy FILE]",
		Short: "Show the rule behind a logged decision",
		Long: `why parses an audit line written by procgate (the AVC-shaped "procgate:
denied { read:environ } for ... rule=... gen=N" record) and prints the rules
it names with their source text, read from --policy or else from the file
named in the record. Exit status 1 when a named rule is no longer at that
line (the policy changed since the record was written).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runWhy(cmd.OutOrStdout(), args[0], files)
		},
	}
	cmd.Flags().StringSliceVar(&files, "policy", nil, "the policy file(s) the record was decided by")
	return cmd
}

func runWhy(out io.Writer, line string, files []string) error {
	rec, err := policy.ParseAuditLine(line)
	if err != nil {
		return &exitError{2, fmt.Errorf("policy why: %w", err)}
	}
	r := &rec.Record
	if !r.Time.IsZero() {
		fmt.Fprintf(out, "record %d, %s\n", r.Serial, r.Time.Format(time.RFC3339Nano))
	}
	if r.IsSummary() {
		fmt.Fprintf(out, "%s %s: %d more decision(s) for uid %d on uid %d not logged (rate limit), policy generation %d\n",
			r.Result(), rec.Item.AccessName(), r.Suppressed, r.Subject.UID, r.Target.UID, r.Generation)
		fmt.Fprintln(out, "a summary names no rule")
		return nil
	}
	fmt.Fprintf(out, "%s %s: pid %d (%q, uid %d) on pid %d (%q, uid %d), policy generation %d\n",
		r.Result(), rec.Item.AccessName(), r.Subject.PID, r.Subject.Comm, r.Subject.UID, r.Target.PID, r.Target.Comm, r.Target.UID, r.Generation)
	if r.Reason != "" {
		fmt.Fprintf(out, "reason: %s\n", printable(r.Reason))
	}
	type named struct {
		ref   policy.RuleRef
		label string
	}
	var refs []named
	if rec.Default {
		fmt.Fprintln(out, "no allow rule applied (default deny)")
		if rec.Nearest.Effect != 0 {
			refs = append(refs, named{rec.Nearest, "nearest allow rule that did not apply"})
		}
	}
	for _, ref := range rec.Rules {
		refs = append(refs, named{ref, "rule"})
	}
	byFile := map[string]*policy.Policy{}
	missing := 0
	for _, n := range refs {
		ref := printable(n.ref.String())
		srcs := files
		if len(srcs) == 0 {
			srcs = []string{n.ref.Pos.File}
		}
		key := strings.Join(srcs, "\x00")
		p, ok := byFile[key]
		if !ok {
			p, err = loadPolicies(srcs, strings.NewReader(""))
			if err != nil {
				fmt.Fprintf(out, "%s %s: cannot load the policy: %v\n", n.label, ref, err)
				missing++
				continue
			}
			byFile[key] = p
		}
		if got, ok := p.RuleAt(n.ref.Pos.File, n.ref.Pos.Line); ok && got.Effect == n.ref.Effect {
			fmt.Fprintf(out, "%s %s: %s\n", n.label, ref, got.Text)
			continue
		}
		fmt.Fprintf(out, "%s %s: no %s rule at that line now: the policy changed since the record was written\n", n.label, ref, n.ref.Effect)
		missing++
	}
	if missing > 0 {
		return &exitError{1, fmt.Errorf("%d rule(s) not found", missing)}
	}
	return nil
}

// printable returns s as it is when it holds only printable characters,
// else quoted: text from a log line must not drive the terminal.
func printable(s string) string {
	for _, c := range s {
		if !unicode.IsPrint(c) {
			return strconv.Quote(s)
		}
	}
	return s
}

func newPolicyDefaultCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "default",
		Short: "Print the built-in default policy",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := cmd.OutOrStdout().Write(policy.DefaultSource)
			return err
		},
	}
}
