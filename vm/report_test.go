package vm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/procgate/procgate/oracle"
	"github.com/procgate/procgate/scenario"
)

// yamaRun is a finished Yama boot of one same-uid sibling case at scope 1
// whose kernel answers are given: the model denies ptrace_seize and
// process_vm_readv (Yama's ATTACH check) and allows maps.
func yamaRun(seize, readv, maps string) *consoleRun {
	ids := [4]uint32{1000, 1000, 1000, 1000}
	obs := func(pid int) oracle.Observed {
		return oracle.Observed{Pid: pid, UID: ids, GID: ids, Dumpable: 1, InitNS: true}
	}
	return &consoleRun{
		begin: &oracle.VMBegin{Release: "6.1.0-56-amd64", LSMs: []string{"lockdown", "capability", "yama"}, YamaScope: 0, Cases: 1},
		end:   &oracle.VMEnd{Cases: 1},
		results: []oracle.VMRes{{Step: "yama1", Scope: 1, Index: 0, Case: oracle.Case{
			Name: "sibling", Prober: oracle.User(1000, 1000), Target: oracle.User(1000, 1000),
			Probes: []oracle.Probe{oracle.ProbePtraceSeize, oracle.ProbeVMReadv, oracle.ProbeMaps},
		}, Result: oracle.Result{Target: obs(10), Prober: obs(11), Probes: []oracle.ProbeResult{
			{Probe: oracle.ProbePtraceSeize, Result: seize}, {Probe: oracle.ProbeVMReadv, Result: readv}, {Probe: oracle.ProbeMaps, Result: maps},
		}}}},
	}
}

// Each group of disagreements gets a JSON file and a scenario file; the
// scenario loads and, checked with the model, fails its expectation,
// which is the kernel's answer.
func TestWriteScenarios(t *testing.T) {
	rep, err := compare(yamaRun("ok", "EPERM", "ok"), &suite{name: SuiteAppArmor, plan: oracle.VMPlan{}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.groups) != 1 || rep.disagreeProbes != 1 {
		t.Fatalf("groups %d, probes %d; want the ptrace_seize one", len(rep.groups), rep.disagreeProbes)
	}
	dir := t.TempDir()
	if err := rep.writeScenarios(dir); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "disagreement-001.json"))
	if err != nil {
		t.Fatal(err)
	}
	var j struct {
		Group        string
		Count        int
		KernelAnswer oracle.ProbeResult `json:"kernel_answer"`
		ModelAnswer  oracle.ProbeResult `json:"model_answer"`
	}
	if err := json.Unmarshal(raw, &j); err != nil || j.Count != 1 || j.KernelAnswer.Result != "ok" || j.ModelAnswer.Result != "EPERM" || j.Group != rep.groups[0].key {
		t.Errorf("json %+v, %v", j, err)
	}
	path := filepath.Join(dir, "disagreement-001.yaml")
	s, err := scenario.LoadFile(path)
	if err != nil {
		b, _ := os.ReadFile(path)
		t.Fatalf("reproduction does not load: %v\n%s", err, b)
	}
	if len(s.Checks) != 1 {
		t.Fatalf("%d checks", len(s.Checks))
	}
	c := s.Checks[0]
	if c.Expect != "allow" {
		t.Errorf("expectation %q, want the kernel's answer (allow)", c.Expect)
	}
	if d := s.Evaluate(c, false); c.Met(d) {
		t.Errorf("the model now meets the kernel's answer: %+v", d)
	}
	src, _ := os.ReadFile(path)
	if !strings.Contains(string(src), "verify-vm disagreement") || !strings.Contains(string(src), "the model answered EPERM") {
		t.Errorf("comment missing:\n%s", src)
	}
}

func TestTotalsFailure(t *testing.T) {
	for _, tc := range []struct {
		name string
		t    Totals
		min  int
		want string // "" for no failure
	}{
		{"all agree", Totals{Suites: 2, Counts: Counts{Cases: 400}}, 300, ""},
		{"disagreement", Totals{Counts: Counts{Cases: 400, DisagreeCases: 1}}, 300, "1 disagreeing, 0 refused and 0 unpredicted of 400 cases"},
		{"refusal", Totals{Counts: Counts{Cases: 400, Refused: 2}}, 300, "0 disagreeing, 2 refused"},
		{"unpredicted", Totals{Counts: Counts{Cases: 400, PredictErrs: 1}}, 300, "1 unpredicted"},
		{"too few", Totals{Counts: Counts{Cases: 10}}, 300, "only 10 cases ran, want at least 300"},
	} {
		err := tc.t.Failure(tc.min)
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: Failure = %v, want %q", tc.name, err, tc.want)
		}
	}
}

// writeLog writes a console log of run as the VM prints it.
func writeLog(t *testing.T, run *consoleRun) string {
	t.Helper()
	var b bytes.Buffer
	line := func(prefix string, v any) {
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("[    1.0] noise " + prefix + string(j) + "\r\n")
	}
	if run.begin != nil {
		line(oracle.VMBeginPrefix, run.begin)
	}
	for _, r := range run.results {
		line(oracle.VMResPrefix, r)
	}
	if run.end != nil {
		line(oracle.VMEndPrefix, run.end)
	}
	path := filepath.Join(t.TempDir(), "vm.log")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// Run compares saved logs: a report per log, reproductions of the
// disagreements in Out, and an error for a log whose VM did not finish.
func TestRunFromLog(t *testing.T) {
	good := writeLog(t, yamaRun("EPERM", "EPERM", "ok"))
	bad := writeLog(t, yamaRun("ok", "EPERM", "ok"))
	unfinished := yamaRun("EPERM", "EPERM", "ok")
	unfinished.end = nil
	cut := writeLog(t, unfinished)
	for _, tc := range []struct {
		name       string
		logs       []string
		unfinished bool
		disagree   int
		suites     int
		out        []string
	}{
		{"agreeing log", []string{good}, false, 0, 1, []string{"suite apparmor:", "step yama1", "total: 1 cases, 3 probe results, 0 cases disagree"}},
		{"both logs", []string{good, bad}, false, 1, 2, []string{"DISAGREE x1  scope 1, probe ptrace_seize", "all 2 suites: 2 cases, 6 probe results, 1 cases disagree (1 probe results), 0 refused: 50.0% of cases agree", "reproductions of the first case"}},
		{"unfinished", []string{cut}, true, 0, 1, []string{"total: 1 cases"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			out := t.TempDir()
			tot, err := Run(context.Background(), &stdout, &stderr, Options{FromLog: tc.logs, Out: out})
			if tc.unfinished != errors.Is(err, ErrUnfinished) {
				t.Fatalf("err %v, want unfinished %v", err, tc.unfinished)
			}
			if err != nil && !tc.unfinished {
				t.Fatal(err)
			}
			if tot.Suites != tc.suites || tot.DisagreeCases != tc.disagree {
				t.Errorf("totals %+v", tot)
			}
			for _, want := range tc.out {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, stdout.String())
				}
			}
			yamls, _ := filepath.Glob(filepath.Join(out, SuiteAppArmor, "*.yaml"))
			if len(yamls) != tc.disagree {
				t.Errorf("%d reproductions, want %d", len(yamls), tc.disagree)
			}
		})
	}
	if _, err := Run(context.Background(), &bytes.Buffer{}, &bytes.Buffer{}, Options{}); err == nil || !strings.Contains(err.Error(), "--kernel-deb") {
		t.Errorf("no packages, no logs: %v", err)
	}
	if _, err := Run(context.Background(), &bytes.Buffer{}, &bytes.Buffer{}, Options{FromLog: []string{filepath.Join(t.TempDir(), "none.log")}}); err == nil {
		t.Error("a missing log was accepted")
	}
}
