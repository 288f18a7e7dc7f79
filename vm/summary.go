package vm

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/procgate/procgate/kernel"
)

// KernelResult is the outcome of one kernel's boots: the summary line,
// the exit status and docs/kernels.md come from it. verify-vm saves it as
// WORK/KERNEL/summary.json.
type KernelResult struct {
	// Label names the kernel: its release, or its package version.
	Label string `json:"label"`
	// Release is the Debian release ("" when unknown), Distribution its
	// long name.
	Release      string `json:"release,omitempty"`
	Distribution string `json:"distribution,omitempty"`
	// Package and Version are the kernel image package and its version;
	// Upstream is the upstream release the model predicts for; Uname is
	// uname -r in the VM.
	Package  string `json:"package,omitempty"`
	Version  string `json:"version,omitempty"`
	Upstream string `json:"upstream,omitempty"`
	Uname    string `json:"uname,omitempty"`
	// Built lists the security modules the kernel's configuration builds
	// in (from boot/config-*; empty when unknown).
	Built map[string]bool `json:"built,omitempty"`
	// Suites are the boots; Modules count the cases by the module that
	// decides them (ModYama, …); Features are the release-dependent
	// rules, predicted and observed; Backports the distribution backports
	// the prediction applied.
	Suites    []SuiteResult           `json:"suites"`
	Modules   map[string]ModuleResult `json:"modules"`
	Features  []FeatureResult         `json:"features"`
	Backports []string                `json:"backports,omitempty"`
	// Notes say what was left out (a module the kernel lacks); Errors
	// what failed (a boot that did not finish).
	Notes  []string `json:"notes,omitempty"`
	Errors []string `json:"errors,omitempty"`
	// The counts over all suites, as in Totals.
	Counts
	// Seconds is the wall time of the kernel's boots (package extraction
	// included), Init how the init binary was linked ("static" or
	// "dynamic": the emulated dynamic loader slows every spawn); Date the
	// day of the run (UTC).
	Seconds float64 `json:"seconds"`
	Init    string  `json:"init,omitempty"`
	Date    string  `json:"date"`
}

// SuiteResult is one boot of a kernel.
type SuiteResult struct {
	Name          string   `json:"name"`
	LSMs          []string `json:"lsms,omitempty"`
	Cases         int      `json:"cases"`
	Probes        int      `json:"probes"`
	DisagreeCases int      `json:"disagree_cases"`
	Refused       int      `json:"refused"`
	// VMSeconds is the time the cases took in the VM, QemuSeconds the
	// boot's whole qemu run.
	VMSeconds   float64 `json:"vm_seconds"`
	QemuSeconds float64 `json:"qemu_seconds"`
}

// ModuleResult counts the cases of one kind.
type ModuleResult struct {
	Cases       int `json:"cases"`
	Disagree    int `json:"disagree"`
	Refused     int `json:"refused"`
	PredictErrs int `json:"predict_errors"`
}

// Agreement is the share of the kind's cases that ran and agree.
func (m ModuleResult) Agreement() float64 {
	return agreement(m.Cases, m.Refused, m.PredictErrs, m.Disagree)
}

// result sums a kernel's reports.
func (kr *kernelRun) result() *KernelResult {
	k := &KernelResult{Label: kr.label, Release: kr.release, Distribution: releaseNames[kr.release],
		Modules: map[string]ModuleResult{}, Notes: kr.notes, Errors: kr.errs,
		Seconds: kr.wall.Seconds(), Init: kr.init, Date: time.Now().UTC().Format("2006-01-02")}
	if kr.cfg.built != nil {
		k.Built = kr.cfg.built
	}
	if kr.deb != "" {
		if f := strings.Fields(debDesc(kr.deb)); len(f) == 2 {
			k.Package, k.Version = f[0], f[1]
		}
	}
	for _, r := range kr.reps {
		if b := r.begin; b != nil && k.Uname == "" {
			k.Uname, k.Upstream = b.Release, r.release.String()
			if k.Version == "" {
				k.Version = packageVersion(b.Version)
			}
			if k.Package == "" {
				k.Package = "linux-image-" + b.Release
			}
			for _, bp := range r.backports {
				k.Backports = append(k.Backports, fmt.Sprintf("%s=%v since Debian %s: %s", bp.Feature, bp.Value, bp.Since, bp.Change))
			}
		}
		sr := SuiteResult{Name: r.suite, Cases: r.cases, Probes: r.probes, DisagreeCases: r.disagreeCases, Refused: r.refused, QemuSeconds: r.vmWall.Seconds()}
		if r.begin != nil {
			sr.LSMs = r.begin.LSMs
		}
		if r.end != nil {
			sr.VMSeconds = r.end.Seconds
		}
		k.Suites = append(k.Suites, sr)
		k.Counts.add(r)
		for name, m := range r.modules {
			sum := k.Modules[name]
			sum.Cases += m.cases
			sum.Disagree += m.disagree
			sum.Refused += m.refused
			sum.PredictErrs += m.predictErrs
			k.Modules[name] = sum
		}
		if r.begin == nil || r.end == nil {
			k.Errors = append(k.Errors, fmt.Sprintf("suite %s did not finish: %s", r.suite, strings.Join(r.errors, "; ")))
		}
	}
	k.Features = featureResults(kr.reps)
	return k
}

// Failure says why the kernel's run failed: a disagreement, a refused or
// unpredicted case, fewer than minCases cases, a release-dependent rule
// the kernel does not show as predicted, or a boot that did not finish.
func (k *KernelResult) Failure(minCases int) error {
	if len(k.Errors) > 0 {
		return errors.New(strings.Join(k.Errors, "; "))
	}
	return failure(k.Cases, k.Refused, k.DisagreeCases, k.PredictErrs, minCases, k.Features)
}

// Line is the kernel's summary line (without the minimum-cases check,
// which the command applies).
func (k *KernelResult) Line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "kernel %s", k.Label)
	var id []string
	if k.Distribution != "" {
		id = append(id, k.Distribution)
	}
	if k.Package != "" {
		id = append(id, strings.TrimSpace(k.Package+" "+k.Version))
	}
	if k.Upstream != "" {
		id = append(id, "upstream "+k.Upstream)
	}
	if len(id) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(id, ", "))
	}
	var suites []string
	for _, s := range k.Suites {
		suites = append(suites, s.Name)
	}
	fmt.Fprintf(&b, ": %d boots (%s), %d cases, %d probe results, %d cases disagree, %d refused: %.1f%% of cases agree; %s",
		len(k.Suites), strings.Join(suites, ", "), k.Cases, k.Probes, k.DisagreeCases, k.Refused,
		agreement(k.Cases, k.Refused, k.PredictErrs, k.DisagreeCases), featureLine(k.Features))
	for _, n := range k.Notes {
		fmt.Fprintf(&b, "; %s", n)
	}
	fmt.Fprintf(&b, "; wall %.1f s", k.Seconds)
	if err := k.Failure(0); err != nil {
		fmt.Fprintf(&b, ": FAIL (%v)", err)
	} else {
		b.WriteString(": OK")
	}
	return b.String()
}

// save writes the result as JSON.
func (k *KernelResult) save(path string) error {
	b, err := json.MarshalIndent(k, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// loadSummaries reads WORK/*/summary.json, ordered as Releases, then by
// label.
func loadSummaries(work string) ([]*KernelResult, error) {
	files, _ := filepath.Glob(filepath.Join(work, "*", "summary.json"))
	var out []*KernelResult
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		k := &KernelResult{}
		if err := json.Unmarshal(b, k); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		out = append(out, k)
	}
	rank := func(k *KernelResult) int {
		if i := slices.Index(Releases, k.Release); i >= 0 {
			return i
		}
		return len(Releases)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if rank(out[i]) != rank(out[j]) {
			return rank(out[i]) < rank(out[j])
		}
		return out[i].Label < out[j].Label
	})
	if len(out) == 0 {
		return nil, fmt.Errorf("no summary.json in %s/*/: run verify-vm first", work)
	}
	return out, nil
}

// moduleColumns are the security-module columns of docs/kernels.md: the
// kind of case counted, and the kernel option that builds the module.
var moduleColumns = []struct{ title, kind, lsm string }{
	{"Yama 0–3", ModYama, "yama"},
	{"AppArmor", ModAppArmor, "apparmor"},
	{"SELinux", ModSELinux, "selinux"},
	{"Landlock", ModLandlock, "landlock"},
	{"Smack", "", "smack"},
}

// writeKernelsMD writes docs/kernels.md from the summaries in work.
func writeKernelsMD(path, work string) error {
	ks, err := loadSummaries(work)
	if err != nil {
		return err
	}
	return os.WriteFile(path, []byte(kernelsMD(ks)), 0o644)
}

// kernelsMD renders the kernel table.
func kernelsMD(ks []*KernelResult) string {
	var b strings.Builder
	b.WriteString(`# Kernels verified under qemu

<!-- Generated by procgate verify-vm --kernels-md docs/kernels.md from the
     last run of each kernel (.cache/vm/KERNEL/summary.json). Do not edit: run make verify-vm,
     then make kernels-md. -->

Each row is one Debian ` + "`linux-image-amd64`" + ` kernel booted under qemu (TCG) with
procgate as init, as ` + "`make verify-vm`" + ` runs it ([verification-vm.md](verification-vm.md)).
A security-module column counts the cases that module decides (with the share
that agrees with the model); "not built" means the kernel's configuration
lacks the module. A feature column is a release-dependent rule of the model
(` + "`kernel.Features`" + `, the scenario key): the value the kernel showed, and in
parentheses the cases that tell the two values apart; **bold** marks a value
that differs from the model's prediction for the package (upstream release
plus the known distribution backports, ` + "`kernel.Backports`" + `), "—" a rule no case
tells apart. A kernel that failed has a FAILED note under the table;
verification-vm.md explains the known failures.

`)
	b.WriteString("| kernel | package | upstream |")
	for _, m := range moduleColumns {
		b.WriteString(" " + m.title + " |")
	}
	b.WriteString(" feature cases |")
	for _, f := range kernel.FeatureNames {
		b.WriteString(" `" + f + "` |")
	}
	b.WriteString(" all cases | wall (TCG) | run |\n|")
	for range 3 + len(moduleColumns) + 1 + len(kernel.FeatureNames) + 3 {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	var notes []string
	for _, k := range ks {
		name := k.Distribution
		if name == "" {
			name = k.Label
		}
		fmt.Fprintf(&b, "| %s | %s %s | %s |", name, k.Package, k.Version, k.Upstream)
		for _, m := range moduleColumns {
			mr, ran := k.Modules[m.kind]
			switch {
			case k.Built != nil && !k.Built[m.lsm]:
				b.WriteString(" not built |")
			case m.kind == "" || !ran:
				b.WriteString(" built, no cases |")
			default:
				fmt.Fprintf(&b, " %d (%s) |", mr.Cases, pct(mr.Agreement()))
			}
		}
		fr := k.Modules[ModFeatures]
		fmt.Fprintf(&b, " %d (%s) |", fr.Cases, pct(fr.Agreement()))
		for _, name := range kernel.FeatureNames {
			var f *FeatureResult
			for i := range k.Features {
				if k.Features[i].Name == name {
					f = &k.Features[i]
				}
			}
			switch {
			case f == nil || f.Observed == "untested":
				b.WriteString(" — |")
			case !f.Matches():
				fmt.Fprintf(&b, " **%s** (%d; predicted %s) |", f.Observed, f.Cases, yesNo(f.Predicted))
			default:
				fmt.Fprintf(&b, " %s (%d) |", f.Observed, f.Cases)
			}
		}
		init := ""
		if k.Init != "" {
			init = ", " + k.Init + " init"
		}
		fmt.Fprintf(&b, " %d (%s) | %.0f s%s | %s |\n", k.Cases, pct(agreement(k.Cases, k.Refused, k.PredictErrs, k.DisagreeCases)), k.Seconds, init, k.Date)
		for _, bp := range k.Backports {
			notes = append(notes, fmt.Sprintf("%s: backport %s", name, bp))
		}
		for _, n := range k.Notes {
			notes = append(notes, fmt.Sprintf("%s: %s", name, n))
		}
		if err := k.Failure(0); err != nil {
			notes = append(notes, fmt.Sprintf("%s: FAILED: %v", name, err))
		}
	}
	if len(notes) > 0 {
		b.WriteString("\n")
		for _, n := range notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	return b.String()
}

func pct(p float64) string {
	if p == 100 {
		return "100%"
	}
	return fmt.Sprintf("%.1f%%", p)
}
