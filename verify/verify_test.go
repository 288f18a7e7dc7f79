package verify

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/procgate/procgate/internal/testenv"
	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/oracle"
	"github.com/procgate/procgate/scenario"
)

func TestMain(m *testing.M) {
	oracle.RunRoleIfRequested()
	code := m.Run()
	if verifier != nil {
		verifier.Close()
	}
	os.Exit(code)
}

var (
	verifierOnce sync.Once
	verifier     *Verifier
	verifierErr  error
)

// needVerifier returns the shared Verifier, or skips loudly when not
// root.
func needVerifier(t testing.TB) *Verifier {
	t.Helper()
	testenv.RequireRoot(t, "verification against the kernel spawns processes with other credentials")
	verifierOnce.Do(func() { verifier, verifierErr = New(oracle.Options{}) })
	if verifierErr != nil {
		t.Fatalf("verify.New: %v", verifierErr)
	}
	return verifier
}

func logReport(t *testing.T, rep *Report) {
	t.Helper()
	t.Logf("%d cases (%d refused), %d probe answers: %d agree with the description, snapshot %d/%d agree (%d depend on unreadable input); %d disagreements; %.1f s, %.0f cases/s",
		rep.Cases, rep.Refused, rep.Probes, rep.Agreed, rep.SnapshotAgreed, rep.SnapshotProbes, rep.SnapshotUnknown, rep.Disagreed, rep.Seconds, rep.CasesPerSecond)
	for _, r := range rep.Refusals {
		t.Logf("refused: %s", r)
	}
	for i, d := range rep.Disagreements {
		if i == 10 {
			break
		}
		t.Logf("disagreement (%s) case %d %s: %s kernel=%s model=%s\n%s", d.Source, d.Index, describe(d.Case), d.Probe, AnswerString(d.Kernel), AnswerString(d.Model), d.Story)
	}
}

var (
	hostOnce  sync.Once
	hostRep   *Report
	hostCases []oracle.Case
	hostErr   error
)

// hostObservation runs the grid and a random sample on the running kernel
// once per test binary, predicting from the description and from a live
// snapshot: TestHostKernelAgrees checks the report, TestMutants predicts
// the kernel's answers (Report.Results) again with broken models.
func hostObservation(t *testing.T) (*Report, []oracle.Case) {
	t.Helper()
	v := needVerifier(t)
	hostOnce.Do(func() {
		n := 3000
		if testing.Short() {
			n = 600
		}
		hostCases = Generate(v.Kernel(), 1, n)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		hostRep, hostErr = v.Run(ctx, hostCases, Options{Snapshot: true})
	})
	if hostErr != nil {
		t.Fatal(hostErr)
	}
	return hostRep, hostCases
}

// TestHostKernelAgrees runs the grid and a random sample on the running
// kernel and requires every answer to agree, from the description and
// from the live snapshot.
func TestHostKernelAgrees(t *testing.T) {
	rep, _ := hostObservation(t)
	logReport(t, rep)
	if !rep.OK() {
		t.Errorf("the model disagrees with the running kernel (or cases were refused)")
	}
	if rep.SnapshotProbes != rep.Probes {
		t.Errorf("only %d of %d probe answers were predicted from a snapshot", rep.SnapshotProbes, rep.Probes)
	}
}

// TestSnapshotReadsShared checks that the snapshots read each pair of
// processes through each procfs instance once, and no pair twice: as
// many live reads as distinct (prober, target, procfs) triples among the
// cases, each process known by its serial, not its pid.
func TestSnapshotReadsShared(t *testing.T) {
	rep, cases := hostObservation(t)
	type key struct {
		p, t uint64
		proc string
	}
	pairs := map[key]bool{}
	procs := map[uint64]bool{}
	for i, res := range rep.Results {
		if res.Err != nil || res.Error != "" {
			continue
		}
		if res.Prober.Serial == 0 || res.Target.Serial == 0 {
			t.Fatalf("case %d: a process without a serial (prober %d, target %d)", i, res.Prober.Serial, res.Target.Serial)
		}
		pairs[key{res.Prober.Serial, res.Target.Serial, cases[i].Proc}] = true
		procs[res.Prober.Serial], procs[res.Target.Serial] = true, true
	}
	t.Logf("%d cases: %d live reads, %d processes spawned (%d probe or are probed)", len(cases), rep.SnapshotReads, rep.Processes, len(procs))
	if rep.SnapshotReads != len(pairs) {
		t.Errorf("%d live reads for %d distinct pairs of processes and procfs instances", rep.SnapshotReads, len(pairs))
	}
	if rep.Processes < len(procs) {
		t.Errorf("the report counts %d processes spawned, but %d took part in cases", rep.Processes, len(procs))
	}
}

// brokenCommoncap is the capability module with its subset rule removed:
// cap_ptrace_access_check always grants.
type brokenCommoncap struct{ kernel.LSM }

func (brokenCommoncap) PtraceAccessCheck(kernel.Env, *kernel.Task, *kernel.Task, kernel.Mode) kernel.Errno {
	return 0
}

// TestBrokenRuleIsCaught breaks one model rule (commoncap's capability
// subset rule) and requires the verification to catch it, with a
// scenario file that reproduces the kernel's answer under the real model.
func TestBrokenRuleIsCaught(t *testing.T) {
	v := needVerifier(t)
	cases := Grid(v.Kernel())
	rep, err := v.Run(context.Background(), cases, Options{
		Snapshot: true,
		Mutate: func(w *kernel.World, _, _ *kernel.Task) {
			if w.LSMs[0].Name() != "capability" {
				t.Fatalf("first module %s", w.LSMs[0].Name())
			}
			w.LSMs[0] = brokenCommoncap{w.LSMs[0]}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	logReport(t, rep)
	t.Logf("with commoncap's subset rule removed: %d of %d probe answers disagree", rep.Disagreed, rep.Probes)
	if rep.Disagreed == 0 || rep.OK() {
		t.Fatal("verify did not catch a broken model rule")
	}
	sources := map[Source]bool{}
	for _, d := range rep.Disagreements {
		sources[d.Source] = true
		s, err := scenario.Load("repro.yaml", []byte(d.Scenario))
		if err != nil {
			t.Fatalf("the reproduction does not load: %v\n%s", err, d.Scenario)
		}
		for _, c := range s.Checks {
			if got := scenario.Evaluate(s.World, c, false); !c.Met(got) {
				t.Errorf("the reproduction of case %d (%s) gives %s under the real model, want the kernel's %s\n%s", d.Index, d.Source, got.Result(), c.Expect, d.Scenario)
			}
		}
	}
	if !sources[FromDescription] || !sources[FromSnapshot] {
		t.Errorf("disagreements came from %v; want both the description and the snapshot", sources)
	}
}

// TestGenerate checks that the sample is deterministic, valid and as long
// as asked, and that it covers every relation and Landlock layout the
// kernel supports.
func TestGenerate(t *testing.T) {
	k := Kernel{Release: kernel.DefaultRelease, LSMs: []string{"capability", "landlock", "yama"}, YamaScope: 1, LandlockABI: 7}
	a := Generate(k, 7, 2000)
	b := Generate(k, 7, 2000)
	if len(a) != 2000 {
		t.Fatalf("%d cases, want 2000", len(a))
	}
	rels := map[oracle.Relation]bool{}
	layouts := map[oracle.Landlock]bool{}
	ns := map[oracle.NSKind]bool{}
	for i := range a {
		if a[i].Name != b[i].Name || describe(a[i]) != describe(b[i]) {
			t.Fatalf("case %d differs between two runs with one seed: %s / %s", i, describe(a[i]), describe(b[i]))
		}
		if err := a[i].Validate(); err != nil {
			t.Fatalf("case %d %s: %v", i, describe(a[i]), err)
		}
		rels[a[i].Relation] = true
		layouts[a[i].Landlock] = true
		ns[a[i].Prober.UserNS.Kind] = true
		ns[a[i].Target.UserNS.Kind] = true
	}
	for _, r := range []oracle.Relation{"", oracle.RelSelf, oracle.RelThread, oracle.RelParent, oracle.RelPtracerAny} {
		if !rels[r] {
			t.Errorf("no case with relation %q", r)
		}
	}
	for _, l := range []oracle.Landlock{"", oracle.LandlockProberOnly, oracle.LandlockTargetOnly, oracle.LandlockShared, oracle.LandlockNested, oracle.LandlockNestedReverse, oracle.LandlockSibling} {
		if !layouts[l] {
			t.Errorf("no case with Landlock layout %q", l)
		}
	}
	for _, n := range []oracle.NSKind{"", oracle.NSRoot, oracle.NSOwned} {
		if !ns[n] {
			t.Errorf("no case with user namespace kind %q", n)
		}
	}
	if c := Generate(Kernel{Release: kernel.DefaultRelease, LSMs: []string{"capability"}}, 7, 500); len(c) != 500 {
		t.Fatalf("%d cases", len(c))
	} else {
		for _, x := range c {
			if x.Relation == oracle.RelPtracerAny || (x.Landlock != "" && x.Landlock != oracle.LandlockNone) {
				t.Fatalf("case %s needs a module the kernel lacks", describe(x))
			}
		}
	}
}

// TestPredictFromDescription predicts a few cases whose answers the
// kernel-spec fixes, without running them.
func TestPredictFromDescription(t *testing.T) {
	k := Kernel{Release: kernel.DefaultRelease, LSMs: []string{"lockdown", "capability", "landlock"}, LandlockABI: 7}
	res := func(c oracle.Case) oracle.Result {
		r := oracle.Result{Prober: oracle.Observed{Pid: 200, InitNS: true}, Target: oracle.Observed{Pid: 300, InitNS: true}}
		if c.Relation == oracle.RelThread {
			r.Target.Tid = 201
		}
		for _, p := range oracle.AllProbes {
			r.Probes = append(r.Probes, oracle.ProbeResult{Probe: p})
		}
		return r
	}
	sp := oracle.CapMask(oracle.CapSysPtrace)
	tests := []struct {
		name string
		c    oracle.Case
		want map[oracle.Probe]string
	}{
		{"other user", oracle.Case{Prober: oracle.User(1000, 1000), Target: oracle.User(2000, 2000)},
			map[oracle.Probe]string{oracle.ProbeMaps: "EACCES", oracle.ProbeEnviron: "EACCES", oracle.ProbeVMReadv: "EPERM", oracle.ProbePtraceSeize: "EPERM", oracle.ProbeFdDir: "EACCES", oracle.ProbeKcmp: "EPERM"}},
		{"same user", oracle.Case{Prober: oracle.User(1000, 1000), Target: oracle.User(1000, 1000)},
			map[oracle.Probe]string{oracle.ProbeMaps: "ok", oracle.ProbeMem: "ok", oracle.ProbePtraceSeize: "ok"}},
		{"CAP_SYS_PTRACE only permitted", oracle.Case{Prober: oracle.User(1000, 1000).WithCaps(0, sp), Target: oracle.User(2000, 2000)},
			map[oracle.Probe]string{oracle.ProbeMaps: "EACCES", oracle.ProbePtraceSeize: "EPERM"}},
		{"CAP_SYS_PTRACE", oracle.Case{Prober: oracle.User(1000, 1000).WithCaps(sp, sp), Target: oracle.User(2000, 2000)},
			map[oracle.Probe]string{oracle.ProbeMaps: "ok", oracle.ProbeEnviron: "EACCES", oracle.ProbePtraceSeize: "ok"}},
		{"prober-only Landlock", oracle.Case{Prober: oracle.User(1000, 1000), Target: oracle.User(1000, 1000), Landlock: oracle.LandlockProberOnly},
			map[oracle.Probe]string{oracle.ProbeMaps: "EACCES", oracle.ProbePtraceSeize: "EPERM"}},
		{"same thread group", oracle.Case{Prober: oracle.User(1000, 1000).WithCaps(0, 0), Relation: oracle.RelThread},
			map[oracle.Probe]string{oracle.ProbeMem: "ok", oracle.ProbePtraceSeize: "EPERM"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Predict(k, tc.c, res(tc.c))
			if err != nil {
				t.Fatal(err)
			}
			for _, g := range got {
				if w, ok := tc.want[g.Probe]; ok && g.Result != w {
					t.Errorf("%s: model %s, want %s", g.Probe, g.Result, w)
				}
			}
		})
	}
}
