package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/procgate/procgate/oracle"
	"github.com/procgate/procgate/verify"
)

type verifyOpts struct {
	cases      int
	seed       uint64
	workers    int
	json       bool
	noSnapshot bool
	out        string
	progress   string
	timeout    time.Duration
	keep       int
}

func newVerifyCmd() *cobra.Command {
	var o verifyOpts
	cmd := &cobra.Command{
		Use:   "verify [--cases N] [--seed S] [--json]",
		Short: "Check the model against the running kernel with real processes",
		Long: `verify spawns real target and prober processes with generated credentials
(uid/gid quadruples, groups, capabilities, dumpable, no_new_privs, user
namespaces, Landlock domains, process relations), lets each prober perform
the real operations against its target (/proc files, readlink, getdents,
process_vm_readv, kcmp, pidfd_getfd, PTRACE_SEIZE) and compares every
answer with the model's prediction for the same world: once from the case's
description and once from a live snapshot of the processes.

The cases are a fixed grid followed by a random sample drawn from --seed.
It needs root. Exit status: 0 when every case ran and every answer agrees,
1 on a disagreement or a refused case (each disagreement is printed with a
scenario file that reproduces it offline), 2 on a setup error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runVerify(cmd.OutOrStdout(), cmd.ErrOrStderr(), o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.cases, "cases", 10000, "number of cases (the grid, then random ones)")
	f.Uint64Var(&o.seed, "seed", 1, "seed of the random sample")
	f.IntVar(&o.workers, "workers", 0, "cases run in parallel (default 2)")
	f.BoolVar(&o.json, "json", false, "print the report as JSON")
	f.BoolVar(&o.noSnapshot, "no-snapshot", false, "predict from the description only, not also from a live snapshot")
	f.StringVar(&o.out, "out", "", "write each disagreement's reproducing scenario into this directory")
	f.StringVar(&o.progress, "progress", "auto", "progress bar on standard error: auto (on a terminal), always or never")
	f.DurationVar(&o.timeout, "timeout", 30*time.Minute, "give up after this long")
	f.IntVar(&o.keep, "keep", 20, "disagreements of each prediction to report in full (the rest are counted)")
	return cmd
}

func runVerify(stdout, stderr io.Writer, o verifyOpts) error {
	if o.cases <= 0 {
		return &exitError{2, fmt.Errorf("verify: --cases %d: want at least 1", o.cases)}
	}
	if os.Geteuid() != 0 {
		return &exitError{2, fmt.Errorf("verify: needs root (it spawns processes under other uids and capabilities)")}
	}
	v, err := verify.New(oracle.Options{Workers: o.workers})
	if err != nil {
		return &exitError{2, fmt.Errorf("verify: %w", err)}
	}
	defer v.Close()
	cases := verify.Generate(v.Kernel(), o.seed, o.cases)

	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	opts := verify.Options{Snapshot: !o.noSnapshot, MaxDisagreements: o.keep}
	bar := newProgressBar(stderr, o.progress)
	if bar != nil {
		opts.Progress = bar.update
	}
	// Every case builds and drops a few small worlds: a GC target of 400%
	// costs about 65 MiB more at 10,000 cases and saves 5-9% of the run's
	// CPU (docs/benchmarks.md).
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	rep, err := v.Run(ctx, cases, opts)
	if bar != nil {
		bar.done()
	}
	if err != nil {
		return &exitError{2, fmt.Errorf("verify: %w", err)}
	}
	if o.out != "" {
		if err := writeReproductions(o.out, rep); err != nil {
			return &exitError{2, fmt.Errorf("verify: %w", err)}
		}
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printVerifyReport(stdout, rep, o)
	}
	if !rep.OK() {
		return &exitError{1, nil}
	}
	return nil
}

func printVerifyReport(w io.Writer, rep *verify.Report, o verifyOpts) {
	fmt.Fprintf(w, "kernel %s, security modules %s\n", rep.Release, strings.Join(rep.LSMs, ","))
	fmt.Fprintf(w, "cases: %d (seed %d), refused: %d\n", rep.Cases, o.seed, rep.Refused)
	for _, r := range rep.Refusals {
		fmt.Fprintf(w, "  refused: %s\n", r)
	}
	pct := func(a, b int) float64 {
		if b == 0 {
			return 0
		}
		return 100 * float64(a) / float64(b)
	}
	fmt.Fprintf(w, "model from the description: %d/%d probe answers agree (%.2f%%)\n", rep.Agreed, rep.Probes, pct(rep.Agreed, rep.Probes))
	if rep.SnapshotProbes > 0 {
		fmt.Fprintf(w, "model from a live snapshot: %d/%d agree (%.2f%%); %d of them only once the verifier supplied what user space cannot read, which the reader reported\n",
			rep.SnapshotAgreed, rep.SnapshotProbes, pct(rep.SnapshotAgreed, rep.SnapshotProbes), rep.SnapshotUnknown)
	}
	fmt.Fprintf(w, "speed: %d cases in %.1f s, %.0f cases/s; %d processes spawned", rep.Cases, rep.Seconds, rep.CasesPerSecond, rep.Processes)
	if rep.SnapshotProbes > 0 {
		fmt.Fprintf(w, ", %d live reads", rep.SnapshotReads)
	}
	fmt.Fprintln(w)
	for _, d := range rep.Disagreements {
		fmt.Fprintf(w, "\nDISAGREEMENT (%s prediction) case %d %q, probe %s: kernel %s, model %s\n", d.Source, d.Index, d.Case.Name, d.Probe, verify.AnswerString(d.Kernel), verify.AnswerString(d.Model))
		fmt.Fprintf(w, "%s", indent(d.Story, "  "))
		fmt.Fprintf(w, "  reproduce with procgate check --scenario FILE, where FILE is:\n%s", indent(d.Scenario, "    "))
	}
	if extra := rep.Disagreed - len(rep.Disagreements); extra > 0 {
		fmt.Fprintf(w, "\n... and %d more disagreeing probe answers\n", extra)
	}
	if rep.OK() {
		fmt.Fprintln(w, "result: the model agrees with the running kernel on every answer")
	} else {
		fmt.Fprintf(w, "result: FAILED: %d disagreeing probe answers, %d refused cases\n", rep.Disagreed, rep.Refused)
	}
}

func indent(s, prefix string) string {
	if s == "" {
		return ""
	}
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return prefix + strings.Join(lines, "\n"+prefix) + "\n"
}

func writeReproductions(dir string, rep *verify.Report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for n, d := range rep.Disagreements {
		name := filepath.Join(dir, fmt.Sprintf("disagreement-%02d-case%d-%s-%s.yaml", n+1, d.Index, d.Source, strings.NewReplacer("/", "_").Replace(string(d.Probe))))
		if err := os.WriteFile(name, []byte(d.Scenario), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// progressBar draws "[#####.....] done/total" on a terminal.
type progressBar struct {
	w    io.Writer
	mu   sync.Mutex
	last time.Time
	n    int
}

func newProgressBar(w io.Writer, mode string) *progressBar {
	switch mode {
	case "never":
		return nil
	case "always":
	default:
		if !isTerminal(w) {
			return nil
		}
	}
	return &progressBar{w: w}
}

func (b *progressBar) update(done, total int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if done < b.n || (time.Since(b.last) < 100*time.Millisecond && done < total) {
		return
	}
	b.n, b.last = done, time.Now()
	const width = 40
	fill := width * done / max(total, 1)
	fmt.Fprintf(b.w, "\r[%s%s] %d/%d cases", strings.Repeat("#", fill), strings.Repeat(".", width-fill), done, total)
}

func (b *progressBar) done() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.n > 0 {
		fmt.Fprintln(b.w)
	}
}
