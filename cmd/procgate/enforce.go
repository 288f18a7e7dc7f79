package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/procgate/procgate/bpflsm"
	"github.com/procgate/procgate/kernel/lsm/bpf"
	"github.com/procgate/procgate/policy"
)

func newEnforceCmd() *cobra.Command {
	var policyFile, pinDir, exemptCgroup string
	var status, detach, once, dryRun bool
	cmd := &cobra.Command{
		Use:   "enforce [--policy FILE]",
		Short: "Enforce the policy's restrictions in the kernel (BPF LSM)",
		Long: `enforce compiles the policy's deny and protect rules into procgate's BPF
LSM program and attaches it to the kernel's ptrace_access_check and
ptrace_traceme hooks: a restricted subject's ptrace attach fails with EPERM
and its /proc reads that ask the kernel's ptrace check (environ, maps, fd/,
the exe/cwd/root links, io, stat's masked fields…) fail as the kernel's own
rules fail them (EACCES, or masked fields); /proc/PID/status asks no check
and stays readable. Rules the program cannot evaluate (items, when
conditions, exclusions, label/cgroup/container selectors) are refused with
their positions. --exempt-cgroup names the cgroup of procgate's own reader
(the broker's or the FUSE mount's service), whose reads the rules must not
stop. The program is pinned under --pin-dir and enforces until
--detach, also after this command exits.

Without --once, enforce stays in the foreground: SIGHUP reloads the policy
file and swaps the rule set in one map update (the old one stays on any
error); SIGTERM and SIGINT end the command and leave the program enforcing.
Needs root, and a kernel with bpf in lsm= (CONFIG_BPF_LSM) that lets root
load LSM programs. Exit status: 0 enforcing (or --status/--detach done), 1
the kernel cannot enforce, 2 invalid input.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			switch {
			case status:
				return enforceStatus(out, pinDir)
			case detach:
				if err := bpflsm.Detach(pinDir); err != nil {
					return &exitError{1, err}
				}
				fmt.Fprintf(out, "detached: nothing pinned under %s\n", pinDir)
				return nil
			}
			var exempt uint64
			if exemptCgroup != "" {
				id, err := bpflsm.CgroupID(exemptCgroup)
				if err != nil {
					return &exitError{2, err}
				}
				exempt = id
			}
			if policyFile == "" {
				policyFile = "default"
			}
			load := func() (*policy.Policy, error) { return loadPolicies([]string{policyFile}, cmd.InOrStdin()) }
			if dryRun {
				rs, err := kernelRules(load)
				if err != nil {
					return err
				}
				printRuleSet(out, rs)
				return nil
			}
			if err := enforceOnce(out, load, pinDir, exempt); err != nil {
				return err
			}
			if once {
				return nil
			}
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
			for s := range sig {
				if s != syscall.SIGHUP {
					fmt.Fprintf(out, "%s: exiting; the program keeps enforcing (procgate enforce --detach removes it)\n", s)
					return nil
				}
				if err := enforceOnce(out, load, pinDir, exempt); err != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), "procgate: enforce: reload failed, the previous rule set stays:", err)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&policyFile, "policy", "", "policy file (default: the embedded default policy)")
	cmd.Flags().StringVar(&pinDir, "pin-dir", bpflsm.DefaultPinDir, "where the program's links and maps are pinned (bpffs)")
	cmd.Flags().StringVar(&exemptCgroup, "exempt-cgroup", "", "a cgroup v2 directory whose processes the rules do not restrict as callers: procgate's own reader (the broker's, the FUSE mount's service cgroup)")
	cmd.Flags().BoolVar(&status, "status", false, "report what is attached and exit")
	cmd.Flags().BoolVar(&detach, "detach", false, "remove the program and everything pinned, and exit")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the classes and restrictions the kernel program would enforce, and exit")
	cmd.Flags().BoolVar(&once, "once", false, "attach or reload, then exit (the program keeps enforcing)")
	cmd.MarkFlagsMutuallyExclusive("status", "detach", "once", "dry-run")
	cmd.MarkFlagsMutuallyExclusive("status", "policy")
	cmd.MarkFlagsMutuallyExclusive("detach", "policy")
	return cmd
}

// kernelRules loads the policy and compiles its restrictions for the
// kernel program.
func kernelRules(load func() (*policy.Policy, error)) (*bpf.RuleSet, error) {
	p, err := load()
	if err != nil {
		return nil, err
	}
	rs, err := p.KernelRules()
	if err != nil {
		return nil, &exitError{2, fmt.Errorf("the kernel program cannot enforce this policy:\n%w", err)}
	}
	return rs, nil
}

// enforceOnce compiles the policy and attaches the program with its
// rule set, or swaps the rule set of the program already attached.
func enforceOnce(out io.Writer, load func() (*policy.Policy, error), pinDir string, exempt uint64) error {
	rs, err := kernelRules(load)
	if err != nil {
		return err
	}
	rs.ExemptCgroup = exempt
	verb := "attached"
	st, _ := bpflsm.Stat(pinDir)
	if st.Attached {
		verb = "reloaded"
		err = bpflsm.Reload(rs, pinDir)
	} else {
		err = bpflsm.Attach(rs, pinDir)
	}
	if err != nil {
		if errors.Is(err, bpflsm.ErrUnsupported) {
			return &exitError{1, err}
		}
		return &exitError{2, err}
	}
	fmt.Fprintf(out, "%s: policy generation %d, %d classes, %d restrictions enforced by the kernel (pinned under %s)\n",
		verb, rs.Generation, len(rs.Classes), len(rs.Rules), pinDir)
	return nil
}

func enforceStatus(out io.Writer, pinDir string) error {
	st, err := bpflsm.Stat(pinDir)
	if err != nil {
		return &exitError{1, err}
	}
	if !st.Attached {
		fmt.Fprintf(out, "not attached (nothing pinned under %s)\n", pinDir)
		return nil
	}
	fmt.Fprintf(out, "attached: policy generation %d, %d classes; %d decisions, %d denials, %d without a rule set\n",
		st.Generation, st.Classes, st.Decisions, st.Denials, st.Unset)
	return nil
}

// printRuleSet lists what the program would enforce.
func printRuleSet(out io.Writer, rs *bpf.RuleSet) {
	fmt.Fprintf(out, "%d classes, %d restrictions (policy generation %d)\n", len(rs.Classes), len(rs.Rules), rs.Generation)
	for i, c := range rs.Classes {
		var cl []string
		for _, k := range c.Clauses {
			cl = append(cl, k.String())
		}
		fmt.Fprintf(out, "class %d %s: %s\n", i, c.Name, strings.Join(cl, "; "))
	}
	for _, r := range rs.Rules {
		who := "every subject"
		if r.Subject >= 0 {
			who = rs.Classes[r.Subject].Name
		}
		fmt.Fprintf(out, "deny %s %s access to %s (EPERM at the hook)  # %s\n", who, r.Access, rs.Classes[r.Target].Name, r.Text)
	}
}
