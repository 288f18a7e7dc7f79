package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/procgate/procgate/policy"
)

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
