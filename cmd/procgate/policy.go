package main

import (
	"errors"
	"fmt"
	"io"
	"os"

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
