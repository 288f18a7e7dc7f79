package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/procgate/procgate/audit"
	"github.com/procgate/procgate/bpflsm"
	"github.com/procgate/procgate/daemon"
	"github.com/procgate/procgate/gate"
	"github.com/procgate/procgate/kernel/lsm/bpf"
	"github.com/procgate/procgate/policy"
	"github.com/procgate/procgate/privsep"
)

func newEnforceCmd() *cobra.Command {
	var policyFile, pinDir, exemptCgroup, auditLog, auditFormat, metrics string
	var auditBurst, auditBudget int
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
conditions, exclusions, SELinux/AppArmor label selectors, cgroup patterns
other than a path or path/**) are refused with their positions.
--exempt-cgroup names the cgroup of procgate's own reader (the broker's or
the FUSE mount's service), whose reads the rules must not stop. The
program is pinned under --pin-dir and enforces until --detach, also after
this command exits.

Without --once, enforce stays in the foreground: SIGHUP reloads the policy
file and swaps the rule set in one map update (the old one stays on any
error); SIGTERM and SIGINT end the command and leave the program enforcing.
In the foreground it audits every denial the program reports (--audit-log,
the broker's record format with the writer "bpf": "bpf: denied { read }
for pid=… rule=protect@agent.pol:12 …", rate-limited by --audit-burst and
--audit-budget as the broker's) and serves the program's counters on
--metrics. Denials made while no enforce runs in the foreground wait in
the program's ring buffer (2,730 of them; more are only counted).
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
			format, err := privsep.AuditFormat(auditFormat)
			if err != nil {
				return &exitError{2, err}
			}
			rs, err := enforceOnce(out, load, pinDir, exempt)
			if err != nil {
				return err
			}
			if once {
				return nil
			}
			return enforceForeground(cmd.ErrOrStderr(), out, rs, func() (*bpf.RuleSet, error) { return enforceOnce(out, load, pinDir, exempt) }, pinDir, metrics,
				gate.AuditConfig{Path: auditLog, Format: format, Burst: auditBurst, Budget: auditBudget, Interval: time.Second, Writer: audit.TagBPF})
		},
	}
	cmd.Flags().StringVar(&policyFile, "policy", "", "policy file (default: the embedded default policy)")
	cmd.Flags().StringVar(&pinDir, "pin-dir", bpflsm.DefaultPinDir, "where the program's links and maps are pinned (bpffs)")
	cmd.Flags().StringVar(&exemptCgroup, "exempt-cgroup", "", "a cgroup v2 directory whose processes the rules do not restrict as callers: procgate's own reader (the broker's, the FUSE mount's service cgroup)")
	cmd.Flags().BoolVar(&status, "status", false, "report what is attached and exit")
	cmd.Flags().BoolVar(&detach, "detach", false, "remove the program and everything pinned, and exit")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the classes and restrictions the kernel program would enforce, and exit")
	cmd.Flags().BoolVar(&once, "once", false, "attach or reload, then exit (the program keeps enforcing)")
	cmd.Flags().StringVar(&auditLog, "audit-log", "", "audit log of the program's denials, or - for standard error (default: none; they are still counted)")
	cmd.Flags().StringVar(&auditFormat, "audit-format", "avc", "audit record format: avc or json")
	cmd.Flags().IntVar(&auditBurst, "audit-burst", 20, "records per subject uid per second; the rest are counted in one suppressed=N summary per second; 0 = no limit")
	cmd.Flags().IntVar(&auditBudget, "audit-budget", 40, "records per second of all subjects together; 0 = no limit")
	cmd.Flags().StringVar(&metrics, "metrics", "", "address for Prometheus metrics (host:port, or a path for a Unix socket)")
	cmd.MarkFlagsMutuallyExclusive("status", "detach", "once", "dry-run")
	// The audit log and the metrics are the foreground's.
	cmd.MarkFlagsMutuallyExclusive("once", "audit-log")
	cmd.MarkFlagsMutuallyExclusive("once", "metrics")
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

// enforceForeground audits the program's denials and serves its metrics
// until SIGTERM or SIGINT; SIGHUP reloads (the previous rule set stays
// on an error).
func enforceForeground(errOut, out io.Writer, rs *bpf.RuleSet, reload func() (*bpf.RuleSet, error), pinDir, metrics string, cfg gate.AuditConfig) error {
	aud, err := gate.NewAuditor(cfg)
	if err != nil {
		return &exitError{2, err}
	}
	defer aud.Close()
	da := newDenialAuditor(aud)
	da.loaded(rs)
	rd, err := bpflsm.OpenDenials(pinDir)
	if err != nil {
		fmt.Fprintf(errOut, "procgate: enforce: the program's denials cannot be audited: %v (a program attached by an older procgate reports none: --detach, then enforce again)\n", err)
	} else {
		go da.run(rd, errOut)
		defer rd.Close()
	}
	msrv, err := daemon.ServeMetrics(metrics, func(w io.Writer) error { return da.writeMetrics(w, pinDir) })
	if err != nil {
		return &exitError{2, err}
	}
	if msrv != nil {
		defer msrv.Close()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sig)
	for s := range sig {
		if s != syscall.SIGHUP {
			fmt.Fprintf(out, "%s: exiting; the program keeps enforcing (procgate enforce --detach removes it)\n", s)
			return nil
		}
		if err := aud.Reopen(); err != nil {
			fmt.Fprintln(errOut, "procgate: enforce: audit log reopen failed:", err)
		}
		next, err := reload()
		if err != nil {
			da.reloads[1].Add(1)
			fmt.Fprintln(errOut, "procgate: enforce: reload failed, the previous rule set stays:", err)
			continue
		}
		da.reloads[0].Add(1)
		da.loaded(next)
	}
	return nil
}

// enforceOnce compiles the policy and attaches the program with its
// rule set, or swaps the rule set of the program already attached; it
// returns the rule set.
func enforceOnce(out io.Writer, load func() (*policy.Policy, error), pinDir string, exempt uint64) (*bpf.RuleSet, error) {
	rs, err := kernelRules(load)
	if err != nil {
		return nil, err
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
			return nil, &exitError{1, err}
		}
		return nil, &exitError{2, err}
	}
	fmt.Fprintf(out, "%s: policy generation %d, %d classes, %d restrictions enforced by the kernel (pinned under %s)\n",
		verb, rs.Generation, len(rs.Classes), len(rs.Rules), pinDir)
	return rs, nil
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
	fmt.Fprintf(out, "attached: policy generation %d, %d classes of class bits; %d decisions, %d denials (%d not reported: ring buffer full), %d without a rule set, %d failed closed (%d preempted, %d without hashed rules, %d cgroups unserved)\n",
		st.Generation, st.Classes, st.Decisions, st.Denials, st.Lost, st.Unset, st.Preempted+st.Unslotted+st.CgroupUnserved, st.Preempted, st.Unslotted, st.CgroupUnserved)
	return nil
}

// printRuleSet lists what the program would enforce.
func printRuleSet(out io.Writer, rs *bpf.RuleSet) {
	l := rs.Layout()
	hashed := 0
	for _, h := range l.Hashed {
		if h {
			hashed++
		}
	}
	fmt.Fprintf(out, "%d classes, %d restrictions (policy generation %d): %d hashed (%d entries of %d), %d of %d class bits\n",
		len(rs.Classes), len(rs.Rules), rs.Generation, hashed, l.Pairs, bpf.MaxPairs, len(l.General), bpf.MaxClasses)
	for i, c := range rs.Classes {
		var cl []string
		for _, k := range c.Clauses {
			cl = append(cl, k.String())
		}
		fmt.Fprintf(out, "class %d %s: %s\n", i, c.Name, strings.Join(cl, "; "))
	}
	for i, r := range rs.Rules {
		who := "every subject"
		if r.Subject >= 0 {
			who = rs.Classes[r.Subject].Name
		}
		how := "class bits"
		if l.Hashed[i] {
			how = "hashed"
		}
		fmt.Fprintf(out, "deny %s %s access to %s (EPERM at the hook; %s)  # %s\n", who, r.Access, rs.Classes[r.Target].Name, how, r.Text)
	}
}
