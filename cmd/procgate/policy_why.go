package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/procgate/procgate/audit"
	"github.com/procgate/procgate/policy"
)

// newPolicyWhyCmd is `procgate policy why`: audit2why for a logged record.
func newPolicyWhyCmd() *cobra.Command {
	var files []string
	cmd := &cobra.Command{
		Use:   "why 'AUDIT RECORD' [--policy FILE]",
		Short: "Show the rule behind a logged decision",
		Long: `why parses one audit record as procgate writes it (docs/api.md, "Audit log
and metrics"): a line of the broker's audit log, AVC-shaped
("audit(…): broker: denied { read:environ } for … rule=… gen=N") or JSON,
or of procgate enforce's (writer bpf: "bpf: denied { read } for …"),
with or without a syslog or journal prefix, or the record printed by
policy explain --audit-line. It prints the decision and the rules the record
names with their source text, read from --policy or else from the file
named in the record; for a rate-limit summary, what it stands for.

Exit status: 0 success; 1 a named rule is no longer at that line (the
policy changed since the record was written); 2 the line is no record (the
message gives the column).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runWhy(cmd.OutOrStdout(), args[0], files)
		},
	}
	cmd.Flags().StringSliceVar(&files, "policy", nil, "the policy file(s) the record was decided by")
	return cmd
}

// runWhy explains one record (package audit) with the policy files that
// decided it.
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
		switch r.Scope {
		case audit.ScopeCaller:
			fmt.Fprintf(out, "%s: %d more decision(s) of uid %d, on any process and item, not logged (rate limit: the caller's burst), policy generation %d\n",
				r.Result(), r.Suppressed, r.Subject.UID, r.Generation)
		case audit.ScopeAll:
			fmt.Fprintf(out, "%s: %d more decision(s) of any caller, on any process and item, not logged (rate limit: the log's budget, shared by all callers), policy generation %d\n",
				r.Result(), r.Suppressed, r.Generation)
		default:
			fmt.Fprintf(out, "%s %s: %d more decision(s) for uid %d on uid %d not logged (rate limit), policy generation %d\n",
				r.Result(), audit.AccessName(r.Access, r.Item), r.Suppressed, r.Subject.UID, r.Target.UID, r.Generation)
		}
		fmt.Fprintln(out, "a summary names no rule")
		return nil
	}
	fmt.Fprintf(out, "%s %s: pid %d (%q, uid %d) on pid %d (%q, uid %d), policy generation %d\n",
		r.Result(), audit.AccessName(r.Access, r.Item), r.Subject.PID, r.Subject.Comm, r.Subject.UID, r.Target.PID, r.Target.Comm, r.Target.UID, r.Generation)
	if r.Writer == audit.TagBPF {
		fmt.Fprintln(out, "decided in the kernel by procgate's BPF LSM program (procgate enforce): the whole access class, at the ptrace hook")
	}
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
