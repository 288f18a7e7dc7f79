package vm

import (
	"bytes"
	"io"
	"maps"
	"strings"
	"testing"

	"github.com/procgate/procgate/kernel/lsm/bpf"
	"github.com/procgate/procgate/oracle"
)

// A group key names the scope, the probe, both processes' credentials
// (verify's rendering, the same as in verify's reports), the relation and
// both answers; a masked and an unmasked stat differ.
func TestGroupKey(t *testing.T) {
	k := oracle.ProbeResult{Probe: oracle.ProbeStat, Result: "ok", Masked: true}
	m := oracle.ProbeResult{Probe: oracle.ProbeStat, Result: "ok"}
	res := oracle.VMRes{Step: "apparmor", Scope: 0, Case: oracle.Case{
		Prober: func() oracle.Creds { c := oracle.User(1000, 1000); c.AppArmor = "pg-rt"; return c }(),
		Target: oracle.User(2000, 2000),
	}}
	key := groupKey(res, k, m)
	for _, want := range []string{
		"scope 0", "probe stat",
		"prober {uid 1000/1000/1000/1000 gid 1000/1000/1000/1000 caps none/none dumpable 1 apparmor pg-rt}",
		// no label: unconfined
		"target {uid 2000/2000/2000/2000 gid 2000/2000/2000/2000 caps none/none dumpable 1}",
		"kernel ok (stat masked), model ok", "relation sibling", "landlock none",
	} {
		if !strings.Contains(key, want) {
			t.Errorf("group key %q lacks %q", key, want)
		}
	}
}

// selinuxRes is an SELinux VM result: a same-uid prober in domain prober
// against a target in pg_rt_t, one probe with the kernel's answer.
func selinuxRes(mode, prober, probe, answer string) oracle.VMRes {
	u := oracle.User(1000, 1000)
	label := func(c oracle.Creds, d string) oracle.Creds { c.SELinux = oracle.SELinuxContext(d); return c }
	ids := [4]uint32{1000, 1000, 1000, 1000}
	return oracle.VMRes{Step: "selinux", SELinuxMode: mode, Case: oracle.Case{
		Prober: label(u, prober), Target: label(u, "pg_rt_t"), Probes: []oracle.Probe{oracle.Probe(probe)},
	}, Result: oracle.Result{
		Target: oracle.Observed{Pid: 10, UID: ids, GID: ids, Dumpable: 1, InitNS: true},
		Prober: oracle.Observed{Pid: 11, UID: ids, GID: ids, Dumpable: 1, InitNS: true},
		Probes: []oracle.ProbeResult{{Probe: oracle.Probe(probe), Result: answer}},
	}}
}

// compare predicts SELinux cases with the suite's policy and the mode
// each case ran in.
func TestCompareSELinux(t *testing.T) {
	run := &consoleRun{
		begin: &oracle.VMBegin{Release: "6.1.0-56-amd64", LSMs: []string{"lockdown", "capability", "landlock", "yama", "selinux", "bpf"}, LandlockABI: 2},
		end:   &oracle.VMEnd{Cases: 4},
		results: []oracle.VMRes{
			selinuxRes(oracle.SELinuxEnforcing, "pg_none_t", "ptrace_seize", "EACCES"),
			selinuxRes(oracle.SELinuxEnforcing, "pg_rt_t", "ptrace_seize", "ok"),
			selinuxRes(oracle.SELinuxPermissive, "pg_none_t", "ptrace_seize", "ok"),
			selinuxRes(oracle.SELinuxEnforcing, "pg_trace_t", "ptrace_seize", "EACCES"), // wrong on purpose
		},
	}
	s := &suite{name: SuiteSELinux, plan: oracle.VMSELinuxPlan(nil)}
	rep, err := compare(run, s)
	if err != nil {
		t.Fatal(err)
	}
	if rep.predictErrs != 0 {
		t.Fatalf("model errors: %s", rep.firstPredictErr)
	}
	if rep.disagreeCases != 1 || len(rep.groups) != 1 {
		t.Fatalf("%d disagreeing cases, groups %v; want only the pg_trace_t one", rep.disagreeCases, rep.groups)
	}
	key := rep.groups[0].key
	for _, want := range []string{"selinux enforcing", "selinux " + oracle.SELinuxContext("pg_trace_t"), "selinux " + oracle.SELinuxContext("pg_rt_t"), "kernel EACCES, model ok"} {
		if !strings.Contains(key, want) {
			t.Errorf("group key %q lacks %q", key, want)
		}
	}
	if k := rep.kernelOf(run.results[2]); k.SELinuxEnforcing || k.SELinux == "" {
		t.Errorf("permissive case predicted with %+v", k)
	}
	var out bytes.Buffer
	rep.print(&out)
	for _, want := range []string{"suite selinux:", "DISAGREE x1  scope 0, selinux enforcing, probe ptrace_seize", "total: 4 cases, 4 probe results, 1 cases disagree (1 probe results), 0 refused: 75.0% of cases agree"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

// A run without a BEGIN line cannot be compared; refusals are counted,
// not predicted.
func TestCompareRefusalsAndNoBegin(t *testing.T) {
	if _, err := compare(&consoleRun{errors: []string{"mount proc: EPERM"}}, &suite{name: SuiteAppArmor}); err == nil || !strings.Contains(err.Error(), "mount proc: EPERM") {
		t.Errorf("no BEGIN: %v", err)
	}
	refused := selinuxRes(oracle.SELinuxEnforcing, "pg_rt_t", "maps", "")
	refused.Result.Error = "prober: kernel credentials differ from the request"
	run := &consoleRun{
		begin:   &oracle.VMBegin{Release: "6.1.0-56-amd64", LSMs: []string{"capability", "selinux"}},
		results: []oracle.VMRes{refused},
	}
	rep, err := compare(run, &suite{name: SuiteSELinux, plan: oracle.VMSELinuxPlan(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if rep.refused != 1 || rep.probes != 0 || rep.steps[0].firstRefusal != refused.Result.Error {
		t.Errorf("refused %d probes %d first %q", rep.refused, rep.probes, rep.steps[0].firstRefusal)
	}
}

// TestCompareBPFStep: a step with procgate's program fails when its rule
// set decides none of the answers (agreement would show nothing of the
// program), and a boot fails when the reload-under-load check let an
// open through, did nothing, or could not run. The committed logs of the
// four kernels have a bpf step that passes both.
func TestCompareBPFStep(t *testing.T) {
	run, s, rep := compareLog(t, "vm-bookworm.log.gz")
	decided := -1
	for _, st := range rep.steps {
		if st.bpf {
			decided = st.bpfDecided
		}
	}
	if decided <= 0 || rep.predictErrs != 0 || rep.disagreeCases != 0 || len(run.end.BPFReload) != 1 || run.end.BPFReload[0].Allowed != 0 {
		t.Fatalf("the committed bookworm log: %d answers decided by the program, %d model errors (%s), %d disagreeing cases, reload %+v", decided, rep.predictErrs, rep.firstPredictErr, rep.disagreeCases, run.end.BPFReload)
	}
	for _, tc := range []struct {
		name string
		mut  func(r *consoleRun)
		want string
	}{
		{"an open slipped through a swap", func(r *consoleRun) { r.end.BPFReload[0].Allowed = 1 }, "1 of"},
		{"no opens", func(r *consoleRun) { r.end.BPFReload[0].Opens, r.end.BPFReload[0].Allowed = 0, 0 }, "nothing checked"},
		{"the check failed", func(r *consoleRun) { r.end.BPFReload[0].Err = "reload 1: EINVAL" }, "reload 1: EINVAL"},
		{"status refused", func(r *consoleRun) { r.end.BPFReload[0].StatusAllowed-- }, "status read"},
		{"pins left", func(r *consoleRun) { r.end.BPFReload[0].PinsLeft = true }, "detach left"},
		{"still enforcing after detach", func(r *consoleRun) { r.end.BPFReload[0].AfterDetachAllowed = 0 }, "after detach"},
		{"no broker check", func(r *consoleRun) { r.end.BPFReload[0].Broker = nil }, "no broker check"},
		{"a read through 10,000 rules", func(r *consoleRun) { r.end.BPFReload[0].LargeAllowed = 1 }, "rules the protected environ read 1 of"},
		{"no denial reports", func(r *consoleRun) { r.end.BPFReload[0].Audit = nil }, "no check of the program's denial reports"},
		{"a denial neither read nor counted", func(r *consoleRun) { a := *r.end.BPFReload[0].Audit; a.Lost--; r.end.BPFReload[0].Audit = &a }, "the program counted"},
		{"the broker refused a grant", func(r *consoleRun) { r.end.BPFReload[0].Broker.Items["environ"] = "EACCES" }, "did not serve environ"},
		{"the broker served past the program", func(r *consoleRun) { r.end.BPFReload[0].Broker.Items["maps"] = "ok" }, "neither its policy nor the kernel"},
		{"a direct read went through", func(r *consoleRun) { r.end.BPFReload[0].Broker.DirectAllowed = 1 }, "own reads"},
		{"the broker's reader without the rule set", func(r *consoleRun) {
			r.end.BPFReload[0].Broker.Reasons = map[string]string{"maps": "the kernel would refuse the caller (bpf: rule set unread)"}
		}, "could not read the program's rule set"},
		{"no enforce CLI check", func(r *consoleRun) { r.end.BPFReload[0].CLI = nil }, "no check of procgate enforce"},
		{"the CLI's policy let a read through", func(r *consoleRun) { c := *r.end.BPFReload[0].CLI; c.ProtectedAllowed = 1; r.end.BPFReload[0].CLI = &c }, "under the policy file"},
		{"SIGHUP did not reload", func(r *consoleRun) {
			c := *r.end.BPFReload[0].CLI
			c.Generations = []uint64{c.Generations[0], c.Generations[1], c.Generations[1]}
			r.end.BPFReload[0].CLI = &c
		}, "three in turn"},
		{"no audit records", func(r *consoleRun) { c := *r.end.BPFReload[0].CLI; c.AuditLines = 0; r.end.BPFReload[0].CLI = &c }, "audited none"},
		{"enforcement ended with the command", func(r *consoleRun) { c := *r.end.BPFReload[0].CLI; c.AfterExitAllowed = 2; r.end.BPFReload[0].CLI = &c }, "after enforce ended"},
		{"--detach left it attached", func(r *consoleRun) {
			c := *r.end.BPFReload[0].CLI
			c.Detached = "attached: policy generation 2"
			r.end.BPFReload[0].CLI = &c
		}, "after --detach"},
		{"the broker refused what the kernel gives", func(r *consoleRun) { r.end.BPFReload[0].Broker.Free = map[string]string{"exe": "EACCES"} }, "of an unrestricted process"},
		{"a rule set that decides nothing", func(r *consoleRun) {
			for i := range r.results {
				if r.results[i].BPF != nil {
					r.results[i].BPF = &bpf.RuleSet{Classes: []bpf.Class{{Name: "nobody", Clauses: []bpf.Clause{{Kind: bpf.KindUID, IDs: []bpf.IDRange{{Lo: 7777, Hi: 7777}}}}}}}
				}
			}
		}, "decides none"},
		{"cgroup selectors refused on 6.1", func(r *consoleRun) { r.end.BPFCgroupsRefused = "no ancestors[]" }, "cgroup selectors refused on"},
		{"cgroup classes that decide nothing", func(r *consoleRun) {
			for i := range r.results {
				if r.results[i].BPF != nil {
					r.results[i].BPF = oracle.WithoutCgroups(r.results[i].BPF)
				}
			}
		}, "cgroup classes decide none"},
	} {
		cp := *run
		end := *run.end
		end.BPFReload = append([]oracle.VMReload(nil), run.end.BPFReload...)
		if b := end.BPFReload[0].Broker; b != nil {
			nb := *b
			nb.Items = maps.Clone(b.Items)
			end.BPFReload[0].Broker = &nb
		}
		cp.end = &end
		cp.results = append([]oracle.VMRes(nil), run.results...)
		tc.mut(&cp)
		rep, err := compare(&cp, s)
		if err != nil {
			t.Fatal(err)
		}
		if rep.predictErrs == 0 || !strings.Contains(rep.firstPredictErr, tc.want) {
			t.Errorf("%s: %d model errors, first %q; want one about %q", tc.name, rep.predictErrs, rep.firstPredictErr, tc.want)
		}
	}
}

// TestCompareBPFCgroupsRefused: a kernel before 6.0 (bullseye's 5.10)
// must refuse the bpf step's cgroup selectors, and the step then runs
// and agrees without them.
func TestCompareBPFCgroupsRefused(t *testing.T) {
	run, s, rep := compareLog(t, "vm-bullseye.log.gz")
	if run.end.BPFCgroupsRefused == "" || rep.predictErrs != 0 || rep.disagreeCases != 0 {
		t.Fatalf("the committed bullseye log: refusal %q, %d model errors (%s), %d disagreeing cases", run.end.BPFCgroupsRefused, rep.predictErrs, rep.firstPredictErr, rep.disagreeCases)
	}
	end := *run.end
	end.BPFCgroupsRefused = ""
	run.end = &end
	rep, err := compare(run, s)
	if err != nil {
		t.Fatal(err)
	}
	if rep.predictErrs == 0 || !strings.Contains(rep.firstPredictErr, "took cgroup selectors") {
		t.Errorf("5.10 taking cgroup selectors: %d model errors, first %q", rep.predictErrs, rep.firstPredictErr)
	}
}

// compareLog compares a committed AppArmor boot's log with the model.
func compareLog(t *testing.T, name string) (*consoleRun, *suite, *report) {
	t.Helper()
	run, err := readConsole(bytes.NewReader(gunzipFile(t, "../verify/testdata/"+name)), io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &suite{name: SuiteAppArmor, plan: oracle.VMDefaultPlan()}
	rep, err := compare(run, s)
	if err != nil {
		t.Fatal(err)
	}
	return run, s, rep
}
