package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/procgate/procgate/live"
	"github.com/procgate/procgate/report"
	"github.com/procgate/procgate/scenario"
)

type reportOpts struct {
	scenario  string
	snapshots []string
	policy    string
	whatIf    []string
	output    string
	out       string
	passwd    string
	group     string
}

func newReportCmd() *cobra.Command {
	var o reportOpts
	cmd := &cobra.Command{
		Use:   "report [--scenario FILE | --snapshot FILE...] [--policy FILE] [--what-if KEY=VALUE]... [-o text|json|dot|html|openmetrics] [--out FILE]",
		Short: "Who can see, read or attach to whom: classes, edges, findings, what-if",
		Long: `report answers, for a whole machine, which principals can see, read or
attach to which processes, which layer of the kernel's decision says so and
what stays unknown. Principals are the distinct credentials of running
processes (and login users of the passwd database without a process);
targets are every process; both are grouped into classes the model cannot
tell apart, so the work grows with the classes, not the square of the
processes.

Without --scenario or --snapshot it reads the live machine (run it as root,
like snapshot). --snapshot takes files written by "procgate snapshot" on
several machines and reports on each and on the fleet merged. --policy adds
what the broker or the FUSE mount would grant on top of the kernel.
--what-if shows what a change would add or remove: yama=0..3,
suid_dumpable=0..2, hidepid=off|noaccess|invisible|ptraceable,
policy=FILE, drop-cap=PID:CAP.

Outputs: a terminal table (text), JSON (docs/report.md has the schema),
Graphviz DOT, one self-contained HTML page, or the OpenMetrics text of
node_exporter's textfile collector.

Exit status: 0 on success, 2 on invalid input.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runReport(cmd.OutOrStdout(), cmd.ErrOrStderr(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.scenario, "scenario", "", "report on a scenario file instead of the live machine")
	f.StringSliceVar(&o.snapshots, "snapshot", nil, "report on snapshot files of one or more machines (repeatable)")
	f.StringVar(&o.policy, "policy", "", "broker policy whose grants to add on top of the kernel")
	f.StringArrayVar(&o.whatIf, "what-if", nil, "a change to diff against: yama=N, suid_dumpable=N, hidepid=V, policy=FILE, drop-cap=PID:CAP (repeatable)")
	f.StringVarP(&o.output, "output", "o", "text", "format: text, json, dot, html or openmetrics")
	f.StringVar(&o.out, "out", "", "write to FILE instead of standard output")
	f.StringVar(&o.passwd, "passwd", "/etc/passwd", "live: the passwd database of login users")
	f.StringVar(&o.group, "group", "/etc/group", "live: the group database")
	return cmd
}

func runReport(stdout, stderr io.Writer, o reportOpts) error {
	write, ok := map[string]func(io.Writer, *report.Report) error{
		"text": report.WriteText, "json": report.WriteJSON, "dot": report.WriteDOT,
		"html": report.WriteHTML, "openmetrics": report.WriteOpenMetrics,
	}[o.output]
	if !ok {
		return &exitError{2, fmt.Errorf("report: -o %q: want text, json, dot, html or openmetrics", o.output)}
	}
	if o.scenario != "" && len(o.snapshots) > 0 {
		return &exitError{2, errors.New("report: give --scenario or --snapshot, not both")}
	}
	opts := report.Options{}
	if o.policy != "" {
		pol, err := report.LoadPolicy(o.policy)
		if err != nil {
			return &exitError{2, fmt.Errorf("report: %w", err)}
		}
		opts.Policy, opts.PolicyName = pol, o.policy
	}
	for _, s := range o.whatIf {
		wi, err := report.ParseWhatIf(s)
		if err != nil {
			return &exitError{2, fmt.Errorf("report: %w", err)}
		}
		opts.WhatIf = append(opts.WhatIf, wi)
	}
	var inputs []report.Input
	switch {
	case o.scenario != "":
		s, err := scenario.LoadFile(o.scenario)
		if err != nil {
			return &exitError{2, err}
		}
		inputs = append(inputs, report.Input{Name: filepath.Base(o.scenario), Source: "scenario", World: s.World})
	case len(o.snapshots) > 0:
		for _, path := range o.snapshots {
			s, err := scenario.LoadFile(path)
			if err != nil {
				return &exitError{2, err}
			}
			inputs = append(inputs, report.Input{Name: filepath.Base(path), Source: "snapshot", World: s.World, Live: &live.System{World: s.World}})
		}
	default:
		sys, err := live.Read(live.Options{MountSecurityFS: true})
		if err != nil {
			return liveReadError("report", err)
		}
		logins, err := report.ReadLogins(o.passwd, o.group)
		if err != nil {
			return &exitError{2, fmt.Errorf("report: %w", err)}
		}
		host, _ := os.Hostname()
		inputs = append(inputs, report.Input{Name: host, Source: "live", World: sys.World, Live: sys, Logins: logins})
	}
	bar := newProgress(stderr)
	var machines []*report.Machine
	for i, in := range inputs {
		if bar != nil {
			opts.Progress = func(done, total int) { bar.show(in.Name, i, len(inputs), done, total) }
		}
		m, err := report.Build(in, opts)
		if err != nil {
			return &exitError{2, fmt.Errorf("report: %w", err)}
		}
		machines = append(machines, m)
	}
	bar.done()
	r := report.New(machines, time.Now())
	var buf bytes.Buffer
	if err := write(&buf, r); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if o.out == "" {
		_, err := stdout.Write(buf.Bytes())
		return err
	}
	if err := os.WriteFile(o.out, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// progress draws a one-line progress bar on a terminal.
type progress struct {
	w    io.Writer
	last time.Time
}

// newProgress returns a bar on w, or nil when w is not a terminal.
func newProgress(w io.Writer) *progress {
	if !isTerminal(w) {
		return nil
	}
	return &progress{w: w}
}

func (p *progress) show(name string, machine, machines, done, total int) {
	if time.Since(p.last) < 100*time.Millisecond && done < total {
		return
	}
	p.last = time.Now()
	const width = 30
	n := width * done / max(total, 1)
	bar := make([]byte, width)
	for i := range bar {
		bar[i] = ' '
		if i < n {
			bar[i] = '#'
		}
	}
	fmt.Fprintf(p.w, "\r%s (%d/%d) [%s] %d/%d principal classes", name, machine+1, machines, bar, done, total)
}

func (p *progress) done() {
	if p != nil {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
