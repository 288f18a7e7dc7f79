package vm

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/verify"
)

// maxGroups bounds the disagreement groups a report prints.
const maxGroups = 60

// agreement is the share of cases that ran, were predicted and agree.
func agreement(cases, refused, predictErrs, disagree int) float64 {
	if checked := cases - refused - predictErrs; checked > 0 {
		return 100 * float64(checked-disagree) / float64(cases)
	}
	return 0
}

func (r *report) print(w io.Writer) {
	b := r.begin
	if r.kernelLabel != "" {
		fmt.Fprintf(w, "kernel %s, ", r.kernelLabel)
	}
	fmt.Fprintf(w, "suite %s:\n", r.suite)
	if r.pkgs != "" {
		fmt.Fprintf(w, "packages: %s\n", r.pkgs)
	}
	if b != nil {
		fmt.Fprintf(w, "kernel: %s (model release %s), LSMs %s, Landlock ABI %d, fs.suid_dumpable %d\n",
			b.Release, r.release, strings.Join(b.LSMs, ","), b.LandlockABI, b.SuidDumpable)
		for _, bp := range r.backports {
			fmt.Fprintf(w, "backport: %s=%v from Debian %s (%s)\n", bp.Feature, bp.Value, bp.Since, bp.Change)
		}
	}
	if r.bootWall > 0 && b != nil {
		fmt.Fprintf(w, "boot: %.1f s to init's first line (guest uptime %.1f s)\n", r.bootWall.Seconds(), b.Uptime)
	}
	if r.end != nil && r.end.LoadSeconds > 0 {
		fmt.Fprintf(w, "apparmor: %d profiles loaded in %.1f s\n", len(r.end.AppArmorProfiles), r.end.LoadSeconds)
	}
	if r.end != nil && r.end.SELinuxPolicyVersion != "" {
		fmt.Fprintf(w, "selinux: policy (%d bytes) loaded in %.2f s, kernel policy version %s\n", r.selinuxPolicyBytes, r.end.SELinuxLoadSeconds, r.end.SELinuxPolicyVersion)
	}
	for _, s := range r.steps {
		fmt.Fprintf(w, "  step %-18s yama %2d: %4d cases %5d probes, %d disagree (%d probes), %d refused",
			s.name, s.scope, s.cases, s.probes, s.disagree, s.disagreeProbes, s.refused)
		if s.selinuxMode != "" {
			fmt.Fprintf(w, ", selinux %s", s.selinuxMode)
		}
		if s.bpf {
			fmt.Fprintf(w, ", %d answers decided by procgate's BPF LSM program (%d by its cgroup classes)", s.bpfDecided, s.cgroupDecided)
		}
		if s.firstRefusal != "" {
			fmt.Fprintf(w, " (first: %s)", s.firstRefusal)
		}
		fmt.Fprintln(w)
	}
	if r.end != nil {
		if r.end.BPFCgroupsRefused != "" {
			fmt.Fprintf(w, "  cgroup selectors refused, the bpf step ran without them: %s\n", r.end.BPFCgroupsRefused)
		}
		for _, rl := range r.end.BPFReload {
			fmt.Fprintf(w, "  reload under load (step %s): %d rule-set swaps in %.1f s, %d reads of a protected environ, %d allowed, refusals %v; status read %d/%d; detach: pins left %v, environ then read %d/%d; per read of an unrestricted environ %.0f ns with the program, %.0f ns with %d rules (protected environ read %d/%d), %.0f ns without (emulated time)",
				rl.Step, rl.Reloads, rl.Seconds, rl.Opens, rl.Allowed, rl.Errors, rl.StatusAllowed, rl.StatusOpens, rl.PinsLeft, rl.AfterDetachAllowed, rl.AfterDetachOpens, rl.NsWith, rl.NsWithLarge, rl.LargeRules, rl.LargeAllowed, rl.LargeOpens, rl.NsWithout)
			if rl.Err != "" {
				fmt.Fprintf(w, " (error: %s)", rl.Err)
			}
			fmt.Fprintln(w)
			if a := rl.Audit; a != nil {
				fmt.Fprintf(w, "  denial reports (step %s): after the cases %d read + %d unreported = %d counted; after the load %d read + %d unreported (ring buffer full) of %d counted in all; generations %d-%d",
					rl.Step, a.CaseEvents, a.CaseLost, a.CaseDenials, a.LoadEvents, a.Lost, a.Denials, a.MinGen, a.MaxGen)
				if len(a.Bad) > 0 {
					fmt.Fprintf(w, "; misfits: %v", a.Bad)
				}
				fmt.Fprintln(w)
			}
			if c := rl.CLI; c != nil {
				fmt.Fprintf(w, "  procgate enforce (step %s): --status generations %v; foreground with a policy file: protected environ read %d/%d, %d denial records audited; SIGHUP: released environ read %d/%d, newly protected read %d/%d; SIGTERM: exit %d, still protected %d/%d; --detach: %q",
					rl.Step, c.Generations, c.ProtectedAllowed, c.ProtectedOpens, c.AuditLines, c.ReleasedAllowed, c.ReleasedOpens, c.SwappedAllowed, c.SwappedOpens, c.Exit, c.AfterExitAllowed, c.AfterExitOpens, c.Detached)
				if c.Err != "" {
					fmt.Fprintf(w, " (error: %s)", c.Err)
				}
				fmt.Fprintln(w)
			}
			if b := rl.Broker; b != nil {
				fmt.Fprintf(w, "  broker under the program (step %s): the protected process's items through procgate serve %v (read exit %d; refused: %v); the caller's own reads %d/%d; an unrestricted process's items %v",
					rl.Step, b.Items, b.Exit, b.Reasons, b.DirectAllowed, b.DirectOpens, b.Free)
				if len(b.FreeReasons) > 0 {
					fmt.Fprintf(w, " (refused: %v)", b.FreeReasons)
				}
				if b.Err != "" {
					fmt.Fprintf(w, " (error: %s)", b.Err)
				}
				fmt.Fprintln(w)
			}
		}
	}
	sort.SliceStable(r.groups, func(i, j int) bool { return r.groups[i].count > r.groups[j].count })
	for i, g := range r.groups {
		if i == maxGroups {
			fmt.Fprintf(w, "… and %d more groups of disagreements\n", len(r.groups)-maxGroups)
			break
		}
		fmt.Fprintf(w, "DISAGREE x%d  %s  (e.g. %s #%d %q)\n", g.count, g.key, g.example.Step, g.example.Index, g.example.Case.Name)
	}
	if r.firstPredictErr != "" {
		fmt.Fprintf(w, "model errors: %d (first: %s)\n", r.predictErrs, r.firstPredictErr)
	}
	fmt.Fprintf(w, "total: %d cases, %d probe results, %d cases disagree (%d probe results), %d refused: %.1f%% of cases agree\n",
		r.cases, r.probes, r.disagreeCases, r.disagreeProbes, r.refused, agreement(r.cases, r.refused, r.predictErrs, r.disagreeCases))
	if r.end != nil && r.end.Seconds > 0 {
		fmt.Fprintf(w, "speed: %d cases in %.1f s in the VM = %.2f cases/s", r.end.Cases, r.end.Seconds, float64(r.end.Cases)/r.end.Seconds)
		if r.vmWall > 0 {
			fmt.Fprintf(w, "; qemu ran %.1f s", r.vmWall.Seconds())
		}
		fmt.Fprintf(w, "; wall %.1f s\n", r.wall.Seconds())
	}
}

// Counts are the case and probe counts of one or more suites.
type Counts struct {
	// Cases, Probes: the cases that ran and their probe results.
	Cases  int `json:"cases"`
	Probes int `json:"probes"`
	// Refused: cases the VM's oracle refused to run (credentials not as
	// requested, a setup error).
	Refused int `json:"refused"`
	// DisagreeCases, DisagreeProbes: cases with a probe answer that
	// differs from the model's, and those probe answers.
	DisagreeCases  int `json:"disagree_cases"`
	DisagreeProbes int `json:"disagree_probes"`
	// PredictErrs: cases the model could not predict.
	PredictErrs int `json:"predict_errors"`
}

// add adds a suite's counts.
func (c *Counts) add(r *report) {
	c.Cases += r.cases
	c.Probes += r.probes
	c.Refused += r.refused
	c.DisagreeCases += r.disagreeCases
	c.DisagreeProbes += r.disagreeProbes
	c.PredictErrs += r.predictErrs
}

// Totals sums the reports of a run's suites.
type Totals struct {
	// Suites is the number of boots (or saved logs) compared.
	Suites int
	Counts
	// Unfinished names the suites whose VM printed no BEGIN or END line,
	// and the kernels that could not be booted, with the errors; "" when
	// every suite finished.
	Unfinished string
	// Kernels are the per-kernel results, in the order they ran.
	Kernels []*KernelResult
}

func (t *Totals) add(r *report) {
	t.Suites++
	t.Counts.add(r)
	if r.begin == nil || r.end == nil {
		t.Unfinished += fmt.Sprintf("suite %s: %s; ", r.suite, strings.Join(r.errors, "; "))
	}
}

// print writes one summary line per kernel, then one over all suites
// when there are several.
func (t *Totals) print(w io.Writer, wall time.Duration) {
	for _, k := range t.Kernels {
		fmt.Fprintln(w, k.Line())
	}
	if t.Suites < 2 {
		return
	}
	what := fmt.Sprintf("all %d suites", t.Suites)
	if len(t.Kernels) > 1 {
		what = fmt.Sprintf("all %d kernels, %d suites", len(t.Kernels), t.Suites)
	}
	fmt.Fprintf(w, "%s: %d cases, %d probe results, %d cases disagree (%d probe results), %d refused: %.1f%% of cases agree; wall %.1f s\n",
		what, t.Cases, t.Probes, t.DisagreeCases, t.DisagreeProbes, t.Refused, agreement(t.Cases, t.Refused, t.PredictErrs, t.DisagreeCases), wall.Seconds())
}

// Failure returns nil when every case of a finished run ran and agrees
// with the model, every kernel showed the release-dependent rules the
// model predicts for it, and at least minCases ran (on each kernel when
// the run names kernels); otherwise it says what failed.
func (t *Totals) Failure(minCases int) error {
	if len(t.Kernels) == 0 {
		return failure(t.Cases, t.Refused, t.DisagreeCases, t.PredictErrs, minCases, nil)
	}
	var errs []error
	for _, k := range t.Kernels {
		if err := k.Failure(minCases); err != nil {
			errs = append(errs, fmt.Errorf("kernel %s: %w", k.Label, err))
		}
	}
	return errors.Join(errs...)
}

func failure(cases, refused, disagree, predictErrs, minCases int, features []FeatureResult) error {
	switch {
	case refused > 0 || disagree > 0 || predictErrs > 0:
		return fmt.Errorf("%d disagreeing, %d refused and %d unpredicted of %d cases", disagree, refused, predictErrs, cases)
	case cases < minCases:
		return fmt.Errorf("only %d cases ran, want at least %d", cases, minCases)
	}
	for _, f := range features {
		if !f.Matches() {
			return fmt.Errorf("feature %s observed %s, the model predicts %s", f.Name, f.Observed, yesNo(f.Predicted))
		}
	}
	return nil
}

// writeScenarios writes two files per disagreement group, built from the
// group's first case: a JSON file with the kernel description, case and
// result, which verify.Predict reproduces even when the world cannot be
// written as a scenario (a module without a scenario writer), and a
// scenario file with the model's world for the case and one check
// expecting the kernel's answer.
func (r *report) writeScenarios(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var errs []error
	seen := map[string]bool{}
	note := func(err error) {
		if !seen[err.Error()] {
			seen[err.Error()] = true
			errs = append(errs, err)
		}
	}
	for i, g := range r.groups {
		res := g.example
		base := filepath.Join(dir, fmt.Sprintf("disagreement-%03d", i+1))
		raw, err := json.MarshalIndent(map[string]any{
			"group": g.key, "count": g.count, "kernel": r.kernelOf(res), "step": res.Step,
			"case": res.Case, "result": res.Result, "kernel_answer": g.kernel, "model_answer": g.model,
		}, "", "  ")
		if err == nil {
			err = os.WriteFile(base+".json", append(raw, '\n'), 0o644)
		}
		if err != nil {
			note(err)
		}
		b, err := scenarioFor(r.kernelOf(res), r.features, g)
		if err != nil {
			note(err)
			continue
		}
		if err := os.WriteFile(base+".yaml", b, 0o644); err != nil {
			note(err)
		}
	}
	return errors.Join(errs...)
}

// scenarioFor writes the world of a group's first case with one check:
// the probe, expecting the kernel's answer (verify.Reproduce).
func scenarioFor(k verify.Kernel, f kernel.Features, g *group) ([]byte, error) {
	res := g.example
	w, caller, target, err := verify.World(k, res.Case, res.Result)
	if err != nil {
		return nil, err
	}
	w.Features = f
	comment := fmt.Sprintf("verify-vm disagreement (%d probe results): %s\ncase: %s #%d %q\nthe expectation is the kernel's answer; the model answered %s",
		g.count, g.key, res.Step, res.Index, res.Case.Name, verify.AnswerString(g.model))
	return verify.Reproduce(w, caller, target, g.kernel, comment)
}
