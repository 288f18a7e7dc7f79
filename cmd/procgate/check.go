package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/procgate/procgate/internal/suggest"
	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/scenario"
)

// checkResult is one line of `procgate check --json` (design.md, Contracts).
type checkResult struct {
	Name    string        `json:"name"`
	Caller  string        `json:"caller"`
	Target  string        `json:"target"`
	Access  string        `json:"access"`
	Allowed bool          `json:"allowed"`
	Errno   kernel.Errno  `json:"errno"`
	Masked  bool          `json:"masked"`
	Layer   kernel.Layer  `json:"layer"`
	Steps   []kernel.Step `json:"steps"`
	Audit   []string      `json:"audit"`
	Unknown []string      `json:"unknown,omitempty"`
	Expect  string        `json:"expect"`
	Met     bool          `json:"met"`
}

type checkOpts struct {
	// cmd names the command in messages: "check" or "explain".
	cmd       string
	scenarios []string
	json      bool
	explain   bool
	only      string

	// The live form: --caller PID --target PID with one access.
	caller, target       int
	entry, syscall, mode string
}

func newCheckCmd() *cobra.Command {
	o := checkOpts{cmd: "check"}
	cmd := &cobra.Command{
		Use:   "check (--scenario FILE [FILE...] | --caller PID --target PID (--entry E | --syscall S | --mode M)) [--json] [--explain]",
		Short: "Evaluate the checks of scenario files, or one question about live processes",
		Long: `check evaluates every check of one or more scenario files and prints one
line per check, or a JSON report with --json. With --caller and --target it
reads the two live processes (pinned by pidfd) and answers one question about
them in the same formats; a live answer that depends on something user space
cannot read (a Landlock domain, a Yama exception) says so.

Exit status: 0 when every expectation is met (or none is given), 1 when one
is not, 2 on invalid input — a scenario file without checks included, since
it leaves nothing to check.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			// A shell glob after --scenario expands to further arguments.
			o.scenarios = append(o.scenarios, args...)
			if cmd.Flags().Changed("caller") || cmd.Flags().Changed("target") {
				if len(o.scenarios) > 0 {
					return &exitError{2, errors.New("check: give either --scenario or --caller/--target, not both")}
				}
				return runLiveCheck(cmd.OutOrStdout(), o.caller, o.target, o.entry, o.syscall, o.mode, o.json, o.explain)
			}
			if o.entry != "" || o.syscall != "" || o.mode != "" {
				return &exitError{2, errors.New("check: --entry, --syscall and --mode need --caller and --target")}
			}
			return runCheck(cmd.OutOrStdout(), o)
		},
	}
	cmd.Flags().StringSliceVar(&o.scenarios, "scenario", nil, "scenario file (repeatable; a shell glob expands to several)")
	cmd.Flags().BoolVar(&o.json, "json", false, "print a JSON report")
	cmd.Flags().BoolVar(&o.explain, "explain", false, "print each decision as a step-by-step story")
	cmd.Flags().StringVar(&o.only, "name", "", "evaluate only the check with this name")
	cmd.Flags().IntVar(&o.caller, "caller", 0, "live: the calling process's pid")
	cmd.Flags().IntVar(&o.target, "target", 0, "live: the target process's pid")
	cmd.Flags().StringVar(&o.entry, "entry", "", "live: a /proc/<pid>/ entry (environ, maps, fd/3, …)")
	cmd.Flags().StringVar(&o.syscall, "syscall", "", "live: a system call (ptrace_attach, process_vm_readv, …)")
	cmd.Flags().StringVar(&o.mode, "mode", "", "live: a ptrace mode (read_fscreds, attach_realcreds[,noaudit], …)")
	return cmd
}

func runCheck(out io.Writer, o checkOpts) error {
	if len(o.scenarios) == 0 {
		return &exitError{2, fmt.Errorf("%s: --scenario FILE is required", o.cmd)}
	}
	var results []checkResult
	var names []string
	unmet := 0
	found := false
	for _, path := range o.scenarios {
		s, err := scenario.LoadFile(path)
		if err != nil {
			return &exitError{2, err}
		}
		if err := s.RequireChecks(); err != nil {
			return &exitError{2, err}
		}
		for _, c := range s.Checks {
			names = append(names, c.Name)
			if o.only != "" && c.Name != o.only {
				continue
			}
			found = true
			d := s.Evaluate(c, o.json || o.explain)
			met := c.Met(d)
			if !met {
				unmet++
			}
			switch {
			case o.json:
				results = append(results, resultOf(c, d, met))
			case o.explain:
				writeStory(out, s.World, c, d, met)
			default:
				writeLine(out, c, d, met)
			}
		}
	}
	if o.only != "" && !found {
		return &exitError{2, fmt.Errorf("%s: no check named %q%s", o.cmd, o.only, suggest.DidYouMean(o.only, names, max(3, len(o.only)/3)))}
	}
	if o.json {
		if results == nil {
			results = []checkResult{}
		}
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"results": results}); err != nil {
			return err
		}
	}
	if unmet > 0 {
		return &exitError{1, fmt.Errorf("%d expectation(s) not met", unmet)}
	}
	return nil
}

func resultOf(c *scenario.Check, d kernel.Decision, met bool) checkResult {
	r := checkResult{
		Name: c.Name, Caller: c.Caller.Name, Target: c.Target.Name, Access: c.Access(),
		Allowed: d.Allowed, Errno: d.Errno, Masked: d.Masked, Layer: d.Layer,
		Steps: d.Steps, Audit: d.Audit, Unknown: d.Unknown, Expect: c.Expect, Met: met,
	}
	if r.Steps == nil {
		r.Steps = []kernel.Step{}
	}
	if r.Audit == nil {
		r.Audit = []string{}
	}
	return r
}

func writeLine(out io.Writer, c *scenario.Check, d kernel.Decision, met bool) {
	status := "ok  "
	switch {
	case c.Expect == "":
		status = "    "
	case !met:
		status = "FAIL"
	}
	exp := ""
	if c.Expect != "" {
		exp = " (expect " + c.Expect + ")"
	}
	fmt.Fprintf(out, "%s %s: %s -> %s %s: %s [%s]%s\n", status, c.Name, c.Caller.Name, c.Target.Name, c.Access(), d.Result(), d.Layer, exp)
}

// writeStory prints one decision as a readable, numbered story.
func writeStory(out io.Writer, w *kernel.World, c *scenario.Check, d kernel.Decision, met bool) {
	fmt.Fprintf(out, "%s\n", c.Name)
	fmt.Fprintf(out, "  Can %s (pid %d, %s) %s %s (pid %d, %s)?\n", c.Caller.Name, c.Caller.PID, credLine(c.Caller), verb(c), c.Target.Name, c.Target.PID, credLine(c.Target))
	fmt.Fprintf(out, "  Kernel %s; modules: %s\n", w.Release, moduleList(w))
	for i, s := range d.Steps {
		fmt.Fprintf(out, "  %2d. %-12s %-5s %s\n", i+1, s.Layer, s.Outcome, s.Reason)
	}
	answer := "allowed"
	if d.Masked {
		answer = "allowed, with fields masked"
	}
	if !d.Allowed {
		answer = "denied with " + d.Errno.String()
	}
	fmt.Fprintf(out, "  Answer: %s, decided by %s.\n", answer, d.Layer)
	if len(d.Audit) == 0 {
		fmt.Fprintf(out, "  Audit: no record.\n")
	}
	for _, a := range d.Audit {
		fmt.Fprintf(out, "  Audit: %s\n", a)
	}
	if c.Expect != "" {
		mark := "met"
		if !met {
			mark = "NOT MET"
		}
		fmt.Fprintf(out, "  Expected %s: %s.\n", c.Expect, mark)
	}
	fmt.Fprintln(out)
}

func verb(c *scenario.Check) string {
	switch {
	case c.Entry != nil:
		return fmt.Sprintf("open /proc/%d/%s of", c.Target.PID, c.EntryPath)
	case c.Syscall != nil:
		return "call " + c.Syscall.Name + " on"
	}
	return "pass ptrace_may_access(" + c.Mode.String() + ") against"
}

func credLine(t *kernel.Task) string {
	c := &t.Cred
	s := fmt.Sprintf("uid %d/%d/%d/%d gid %d/%d/%d/%d", c.UID, c.EUID, c.SUID, c.FSUID, c.GID, c.EGID, c.SGID, c.FSGID)
	if c.CapEffective != 0 || c.CapPermitted != 0 {
		s += fmt.Sprintf(" caps eff={%s} prm={%s}", c.CapEffective, c.CapPermitted)
	}
	if !c.UserNS.IsInit() {
		s += " userns " + c.UserNS.Name
	}
	return s
}

func moduleList(w *kernel.World) string {
	names := make([]string, len(w.LSMs))
	for i, m := range w.LSMs {
		names[i] = m.Name()
	}
	return strings.Join(names, ",")
}
