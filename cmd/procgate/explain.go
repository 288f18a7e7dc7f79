package main

import (
	"github.com/spf13/cobra"
)

func newExplainCmd() *cobra.Command {
	o := checkOpts{cmd: "explain"}
	cmd := &cobra.Command{
		Use:   "explain --scenario FILE [--name CHECK]",
		Short: "Explain decisions step by step (check --explain)",
		Long: `explain prints each check of a scenario (or only the one named by --name) as
a numbered story: every step of the kernel's decision with its reason, the
answer and the audit records the kernel would emit.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.scenarios = append(o.scenarios, args...)
			o.explain = true
			return runCheck(cmd.OutOrStdout(), o)
		},
	}
	cmd.Flags().StringSliceVar(&o.scenarios, "scenario", nil, "scenario file")
	cmd.Flags().StringVar(&o.only, "name", "", "explain only the check with this name")
	return cmd
}
