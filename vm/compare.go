package vm

import (
	"fmt"
	"strings"
	"time"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/bpf"
	"github.com/procgate/procgate/oracle"
	"github.com/procgate/procgate/verify"
)

// group is one kind of disagreement: the cases whose probe, credentials,
// layout and answers render to the same key.
type group struct {
	key     string
	count   int
	example oracle.VMRes // the first case of the group
	kernel  oracle.ProbeResult
	model   oracle.ProbeResult
}

// stepStats counts one step of a plan.
type stepStats struct {
	name                             string
	scope                            int
	selinuxMode                      string
	cases, probes, disagree, refused int
	disagreeProbes                   int
	firstRefusal                     string
	predictErrs                      int
	// bpf marks a step with procgate's BPF LSM program attached;
	// bpfDecided counts its probe answers that the program's rule set
	// decides (the model's answer differs without it).
	bpf        bool
	bpfDecided int
	// cgroupDecided counts those its cgroup classes decide.
	cgroupDecided int
}

// report is the comparison of one boot with the model.
type report struct {
	suite                         string
	kernelLabel                   string
	pkgs                          string
	begin                         *oracle.VMBegin
	end                           *oracle.VMEnd
	release                       kernel.Release
	features                      kernel.Features   // the model's, for the package
	backports                     []kernel.Backport // applied to features
	featureStats                  map[string]*featureStat
	modules                       map[string]*moduleStat
	steps                         []*stepStats
	groups                        []*group
	cases, probes, refused        int
	disagreeCases, disagreeProbes int
	predictErrs                   int
	firstPredictErr               string
	bootWall, vmWall, wall        time.Duration
	errors                        []string
	selinuxPolicyBytes            int
	// kernelOf describes the kernel a case ran on, for the model.
	kernelOf func(res oracle.VMRes) verify.Kernel
}

// compare predicts every probe of every case with the model and groups
// the disagreements.
func compare(run *consoleRun, s *suite) (*report, error) {
	rep := &report{begin: run.begin, end: run.end, bootWall: run.bootWall, vmWall: run.vmWall,
		suite: s.name, errors: run.errors, selinuxPolicyBytes: len(s.plan.SELinuxPolicy)}
	if run.begin == nil {
		return rep, fmt.Errorf("the VM printed no %sline (%s)", oracle.VMBeginPrefix, strings.Join(run.errors, "; "))
	}
	rel, err := release(run.begin)
	if err != nil {
		return rep, err
	}
	rep.release = rel
	rep.features = kernel.FeaturesFor(rel)
	if v := packageVersion(run.begin.Version); v != "" {
		if f, _, applied, err := kernel.FeaturesForPackage("debian", v); err == nil {
			rep.features, rep.backports = f, applied
		}
	}
	rep.featureStats = map[string]*featureStat{}
	rep.modules = map[string]*moduleStat{}
	rep.kernelOf = func(res oracle.VMRes) verify.Kernel {
		k := verify.Kernel{
			Release: rel, LSMs: run.begin.LSMs, YamaScope: res.Scope,
			LandlockABI: run.begin.LandlockABI, SuidDumpable: run.begin.SuidDumpable, AppArmor: s.plan.AppArmor,
			BPF: res.BPF,
		}
		if k.Has("selinux") {
			k.SELinux = s.plan.SELinuxModel
			k.SELinuxEnforcing = res.SELinuxMode == oracle.SELinuxEnforcing
		}
		return k
	}
	groups := map[string]*group{}
	byStep := map[string]*stepStats{}
	for _, res := range run.results {
		st := byStep[res.Step]
		if st == nil {
			st = &stepStats{name: res.Step, scope: res.Scope, selinuxMode: res.SELinuxMode}
			byStep[res.Step] = st
			rep.steps = append(rep.steps, st)
		}
		st.cases++
		rep.cases++
		mod := rep.module(res)
		mod.cases++
		if res.Result.Error != "" {
			mod.refused++
			st.refused++
			rep.refused++
			if st.firstRefusal == "" {
				st.firstRefusal = res.Result.Error
			}
			continue
		}
		st.probes += len(res.Result.Probes)
		rep.probes += len(res.Result.Probes)
		w, caller, target, err := verify.World(rep.kernelOf(res), res.Case, res.Result)
		var pred []oracle.ProbeResult
		if err == nil {
			w.Features = rep.features
			pred, err = verify.PredictWorld(w, caller, target, res.Result.Probes)
		}
		if err == nil && len(pred) != len(res.Result.Probes) {
			err = fmt.Errorf("model gave %d answers for %d probes", len(pred), len(res.Result.Probes))
		}
		if err == nil {
			err = rep.observeFeatures(w, caller, target, res.Result.Probes, pred)
		}
		if err == nil && res.BPF != nil {
			st.bpf = true
			err = bpfDecided(rep.kernelOf(res), rep.features, res, pred, st)
		}
		if err != nil {
			mod.predictErrs++
			st.predictErrs++
			rep.predictErrs++
			if rep.firstPredictErr == "" {
				rep.firstPredictErr = fmt.Sprintf("%s #%d %q: %v", res.Step, res.Index, res.Case.Name, err)
			}
			continue
		}
		bad := false
		for i, got := range res.Result.Probes {
			want := pred[i]
			if verify.Same(got, want) {
				continue
			}
			bad = true
			st.disagreeProbes++
			rep.disagreeProbes++
			key := groupKey(res, got, want)
			g := groups[key]
			if g == nil {
				g = &group{key: key, example: res, kernel: got, model: want}
				groups[key] = g
				rep.groups = append(rep.groups, g)
			}
			g.count++
		}
		if bad {
			mod.disagree++
			st.disagree++
			rep.disagreeCases++
		}
	}
	if run.end != nil {
		for _, rl := range run.end.BPFReload {
			var bad string
			switch {
			case rl.Err != "":
				bad = rl.Err
			case rl.Allowed > 0:
				bad = fmt.Sprintf("%d of %d opens of a protected process's environ succeeded during %d rule-set swaps", rl.Allowed, rl.Opens, rl.Reloads)
			case rl.Opens == 0 || rl.Reloads == 0:
				bad = fmt.Sprintf("nothing checked (%d opens, %d swaps)", rl.Opens, rl.Reloads)
			case rl.StatusAllowed != rl.StatusOpens:
				bad = fmt.Sprintf("status read %d of %d times under the program (it asks no ptrace check)", rl.StatusAllowed, rl.StatusOpens)
			case rl.PinsLeft:
				bad = "detach left the pin directory"
			case rl.AfterDetachOpens == 0 || rl.AfterDetachAllowed != rl.AfterDetachOpens:
				bad = fmt.Sprintf("after detach the protected environ read %d of %d times", rl.AfterDetachAllowed, rl.AfterDetachOpens)
			case rl.LargeRules == 0 || rl.LargeOpens == 0 || rl.LargeAllowed != 0:
				bad = fmt.Sprintf("under %d rules the protected environ read %d of %d times", rl.LargeRules, rl.LargeAllowed, rl.LargeOpens)
			case rl.Broker == nil:
				bad = "no broker check"
			case rl.Audit == nil:
				bad = "no check of the program's denial reports"
			case rl.CLI == nil:
				bad = "no check of procgate enforce"
			default:
				if err := rl.Broker.Check(); err != nil {
					bad = "broker: " + err.Error()
				} else if err := rl.Audit.Check(); err != nil {
					bad = "denial reports: " + err.Error()
				} else if err := rl.CLI.Check(); err != nil {
					bad = "procgate enforce: " + err.Error()
				}
			}
			if bad != "" {
				rep.checkFailed(fmt.Sprintf("step %s: reload under load: %s", rl.Step, bad))
			}
		}
	}
	for _, st := range rep.steps {
		if !st.bpf {
			continue
		}
		if st.bpfDecided == 0 && st.probes > 0 {
			// Agreement would show nothing of the program.
			st.predictErrs++
			rep.checkFailed(fmt.Sprintf("step %s: procgate's BPF LSM rule set decides none of its %d probe answers", st.name, st.probes))
		}
		// Cgroup selectors need struct cgroup's ancestors[] (6.0): the
		// kernels before refuse them, those from take them and decide
		// with them.
		refused := run.end != nil && run.end.BPFCgroupsRefused != ""
		switch old := !rep.release.AtLeast(6, 0, 0); {
		case old && !refused:
			rep.checkFailed(fmt.Sprintf("step %s: a %s kernel took cgroup selectors (it has no struct cgroup ancestors[])", st.name, rep.release))
		case !old && refused:
			rep.checkFailed(fmt.Sprintf("step %s: cgroup selectors refused on %s: %s", st.name, rep.release, run.end.BPFCgroupsRefused))
		case !old && st.cgroupDecided == 0 && st.probes > 0:
			rep.checkFailed(fmt.Sprintf("step %s: the rule set's cgroup classes decide none of its %d probe answers", st.name, st.probes))
		}
	}
	return rep, nil
}

// checkFailed counts a failed check of the boot with the model's errors
// (which fail it) and keeps the first message.
func (r *report) checkFailed(msg string) {
	r.predictErrs++
	if r.firstPredictErr == "" {
		r.firstPredictErr = msg
	}
}

// bpfDecided counts the answers of a case run with procgate's program
// attached that its rule set decides: the model's answer without the
// program differs.
func bpfDecided(k verify.Kernel, f kernel.Features, res oracle.VMRes, pred []oracle.ProbeResult, st *stepStats) error {
	predict := func(rs *bpf.RuleSet) ([]oracle.ProbeResult, error) {
		k.BPF = rs
		w, caller, target, err := verify.World(k, res.Case, res.Result)
		if err != nil {
			return nil, err
		}
		w.Features = f
		return verify.PredictWorld(w, caller, target, res.Result.Probes)
	}
	without, err := predict(nil)
	if err != nil {
		return err
	}
	// The answers the rule set's cgroup classes decide: the model's
	// answer without them differs.
	noCgroups, err := predict(oracle.WithoutCgroups(res.BPF))
	if err != nil {
		return err
	}
	for i := range pred {
		if i < len(without) && !verify.Same(pred[i], without[i]) {
			st.bpfDecided++
		}
		if i < len(noCgroups) && !verify.Same(pred[i], noCgroups[i]) {
			st.cgroupDecided++
		}
	}
	return nil
}

// groupKey renders what makes disagreements alike: the Yama scope and
// SELinux mode, the probe, both processes' credentials, the relation and
// Landlock layout, and both answers.
func groupKey(res oracle.VMRes, got, want oracle.ProbeResult) string {
	c := res.Case
	rel := string(c.Relation)
	if rel == "" {
		rel = string(oracle.RelSibling)
	}
	ll := string(c.Landlock)
	if ll == "" {
		ll = string(oracle.LandlockNone)
	}
	mode := ""
	if res.SELinuxMode != "" {
		mode = " selinux " + res.SELinuxMode + ","
	}
	if c.TargetExits {
		rel += " (target exited: a zombie)"
	}
	return fmt.Sprintf("scope %d,%s probe %s: prober {%s} target {%s} relation %s landlock %s: kernel %s, model %s",
		res.Scope, mode, got.Probe, verify.CredString(c.Prober), verify.CredString(c.Target), rel, ll,
		verify.AnswerString(got), verify.AnswerString(want))
}
