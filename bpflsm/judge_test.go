package bpflsm

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/internal/testenv"
	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/bpf"
)

// judge is the program's decision (ptrace.bpf.c: judge) loaded as the
// socket filter bench_judge, which BPF_PROG_TEST_RUN runs on given ids:
// this machine refuses LSM programs, not socket filters, and the hooks
// run the same code on the ids they read from the tasks.
type judge struct {
	spec               *ebpf.CollectionSpec
	prog               *ebpf.Program
	rulesets, pairsets *ebpf.Map
	ids                *ebpf.Map
	epoch              uint64
	// cgroups are the cgroup selectors of the rule set in force, in the
	// program's order: a task's ids say which select it.
	cgroups []bpf.CgroupSel
}

func newJudge(tb testing.TB) *judge {
	testenv.RequireRoot(tb, "loading BPF programs needs CAP_SYS_ADMIN or CAP_BPF")
	inf := unix.Rlimit{Cur: unix.RLIM_INFINITY, Max: unix.RLIM_INFINITY}
	_ = unix.Setrlimit(unix.RLIMIT_MEMLOCK, &inf)
	spec, err := ptraceSpec()
	if err != nil {
		tb.Fatal(err)
	}
	var objs struct {
		Prog     *ebpf.Program `ebpf:"bench_judge"`
		Rulesets *ebpf.Map     `ebpf:"rulesets"`
		Pairsets *ebpf.Map     `ebpf:"pairsets"`
		IDs      *ebpf.Map     `ebpf:"bench_ids"`
		Counters *ebpf.Map     `ebpf:"counters"`
	}
	if err := spec.Copy().LoadAndAssign(&objs, nil); err != nil {
		tb.Fatalf("load bench_judge: %v", err)
	}
	tb.Cleanup(func() {
		for _, c := range []interface{ Close() error }{objs.Prog, objs.Rulesets, objs.Pairsets, objs.IDs, objs.Counters} {
			c.Close()
		}
	})
	return &judge{spec: spec, prog: objs.Prog, rulesets: objs.Rulesets, pairsets: objs.Pairsets, ids: objs.IDs}
}

// load puts rs in force, as Reload does.
func (j *judge) load(tb testing.TB, rs *bpf.RuleSet) {
	j.epoch++
	enc, err := encode(rs, j.epoch)
	if err != nil {
		tb.Fatal(err)
	}
	if err := install(j.spec, enc, j.rulesets, j.pairsets); err != nil {
		tb.Fatal(err)
	}
	j.cgroups = j.cgroups[:0]
	for _, e := range enc.val.Cgroup[:enc.val.Ncgroup] {
		j.cgroups = append(j.cgroups, decodeCgroup(e.Parent, e.Level, e.Flags, e.Name))
	}
}

// idsOf is m as the program reads it under the rule set in force (its
// cgroup as the bits of the selectors that select it: read_cgroups).
func (j *judge) idsOf(m bpf.Match) ptraceIds {
	x := ptraceIds{Euid: m.EUID, Egid: m.EGID, Ngroups: int64(len(m.Groups))}
	copy(x.Groups[:], m.Groups)
	if m.Exe != nil {
		x.Dev, x.Ino = m.Exe.Dev, m.Exe.Ino
	}
	x.Pidns = uint64(m.PIDNS)
	x.Capprm = uint64(m.CapPermitted)
	for i, c := range j.cgroups {
		if c.Selects(m.Cgroup) {
			x.Cgroups |= 1 << i
		}
	}
	return x
}

// set writes the subject's and the target's ids and the access.
func (j *judge) set(tb testing.TB, s, t bpf.Match, a bpf.Access) {
	for i, x := range []ptraceIds{j.idsOf(s), j.idsOf(t), {Euid: uint32(a)}} {
		if err := j.ids.Put(uint32(i), x); err != nil {
			tb.Fatal(err)
		}
	}
}

// denies runs the program once on the ids set.
func (j *judge) denies(tb testing.TB) bool {
	ret, err := j.prog.Run(&ebpf.RunOptions{Data: make([]byte, 14)})
	if err != nil {
		tb.Fatalf("run bench_judge: %v", err)
	}
	return ret == 1
}

// TestJudgeMatchesModel runs the program's decision, in the kernel, on
// random rule sets (classes of every kind, hashed and not) and random
// processes, and requires the model's answer (kernel/lsm/bpf) for every
// one: the hooks' code, checked natively where they cannot be attached.
func TestJudgeMatchesModel(t *testing.T) {
	j := newJudge(t)
	r := rand.New(rand.NewPCG(5, 10))
	exes := []kernel.FileID{{Dev: kernel.MkDev(8, 1), Ino: 42}, {Dev: kernel.MkDev(8, 1), Ino: 43}, {Dev: kernel.MkDev(0, 30), Ino: 42}}
	denied, runs := 0, 0
	for i := range 150 {
		rs := randomRuleSet(r, exes)
		j.load(t, rs)
		for range 40 {
			s, tg := randomMatch(r, exes), randomMatch(r, exes)
			for _, a := range []bpf.Access{bpf.Read, bpf.Attach} {
				j.set(t, s, tg, a)
				want := rs.Decide(s, tg, a) != nil
				if got := j.denies(t); got != want {
					t.Fatalf("rule set %d (%d classes, %d rules, %d hashed): %+v -> %+v %s: the program denies %v, the model %v\n%+v",
						i, len(rs.Classes), len(rs.Rules), rs.Layout().Pairs, s, tg, a, got, want, rs)
				}
				runs++
				if want {
					denied++
				}
			}
		}
	}
	t.Logf("%d decisions, %d denials: the program and the model agree", runs, denied)
	if denied == 0 || denied == runs {
		t.Errorf("%d of %d decisions denied: the sample shows nothing", denied, runs)
	}
}

// bigRuleSet is n hashed rules (uid i+1000 may not read uid i+50000) and
// the VM's rule set of class bits besides them, with the exempt cgroup
// and exe classes.
func bigRuleSet(n int) *bpf.RuleSet {
	rs := &bpf.RuleSet{}
	for i := range n {
		rs.Classes = append(rs.Classes,
			bpf.Class{Name: "s", Clauses: []bpf.Clause{{Kind: bpf.KindUID, IDs: []bpf.IDRange{{Lo: uint32(1000 + i), Hi: uint32(1000 + i)}}}}},
			bpf.Class{Name: "t", Clauses: []bpf.Clause{{Kind: bpf.KindUID, IDs: []bpf.IDRange{{Lo: uint32(50000 + i), Hi: uint32(50000 + i)}}}}})
		rs.Rules = append(rs.Rules, bpf.Rule{Subject: 2 * i, Target: 2*i + 1, Access: bpf.Read})
	}
	return rs
}

// BenchmarkJudge times the program's decision in the kernel
// (BPF_PROG_TEST_RUN, JIT-compiled, ns per run as the kernel measures
// it), with no rule set's worth of rules and with 10,000: an allowed
// question (the common case) and a denied one.
func BenchmarkJudge(b *testing.B) {
	j := newJudge(b)
	exe := kernel.FileID{Dev: kernel.MkDev(8, 1), Ino: 42}
	for _, n := range []int{0, 10, 10000} {
		rs := bigRuleSet(n)
		j.load(b, rs)
		for _, q := range []struct {
			name string
			s, t bpf.Match
		}{
			{"allowed", bpf.Match{EUID: 7, EGID: 7, Exe: &exe}, bpf.Match{EUID: 8, EGID: 8, Exe: &exe}},
			{"denied", bpf.Match{EUID: 1000 + uint32(n)/2, EGID: 7, Exe: &exe}, bpf.Match{EUID: 50000 + uint32(n)/2, EGID: 8, Exe: &exe}},
		} {
			if n == 0 && q.name == "denied" {
				continue
			}
			b.Run(fmt.Sprintf("rules=%d/%s", n, q.name), func(b *testing.B) {
				j.set(b, q.s, q.t, bpf.Read)
				if want := rs.Decide(q.s, q.t, bpf.Read) != nil; j.denies(b) != want {
					b.Fatalf("the program and the model disagree")
				}
				const repeat = 100000
				var total float64
				for b.Loop() {
					_, d, err := j.prog.Benchmark(make([]byte, 14), repeat, nil)
					if err != nil {
						b.Fatal(err)
					}
					total += float64(d.Nanoseconds())
				}
				b.ReportMetric(total/float64(b.N), "ns/judge")
			})
		}
	}
}

// BenchmarkHook times the hooks' decision as they make it, the ids read
// from the tasks (the benchmark's process and its parent, root both)
// through BTF pointers as from 5.11 (reads=btf) or with the probe reads
// of 5.10 (reads=probe): one judgement per run of
// bench_hook (a raw tracepoint program run by BPF_PROG_TEST_RUN), timed
// inside with bpf_ktime_get_ns less the clock's own cost, with no rules
// and with 10,000 hashed ones, on a question they leave alone and on one
// they deny (which also reports the denial to the ring buffer).
func BenchmarkHook(b *testing.B) {
	testenv.RequireRoot(b, "loading BPF programs needs CAP_SYS_ADMIN or CAP_BPF")
	j := newJudge(b)
	var objs struct {
		BTF   *ebpf.Program `ebpf:"bench_hook_btf"`
		Probe *ebpf.Program `ebpf:"bench_hook_probe"`
		Out   *ebpf.Map     `ebpf:"bench_out"`
	}
	if err := j.spec.Copy().LoadAndAssign(&objs, &ebpf.CollectionOptions{MapReplacements: map[string]*ebpf.Map{
		"rulesets": j.rulesets, "pairsets": j.pairsets, "bench_ids": j.ids,
	}}); err != nil {
		b.Fatalf("load bench_hook: %v", err)
	}
	defer objs.BTF.Close()
	defer objs.Probe.Close()
	defer objs.Out.Close()
	root := func(rs *bpf.RuleSet) *bpf.RuleSet {
		rs.Classes = append(rs.Classes, bpf.Class{Name: "root", Clauses: []bpf.Clause{{Kind: bpf.KindUID, IDs: []bpf.IDRange{{Lo: 0, Hi: 0}}}}})
		rs.Rules = append(rs.Rules, bpf.Rule{Subject: len(rs.Classes) - 1, Target: len(rs.Classes) - 1, Access: bpf.Read})
		return rs
	}
	// cgroups adds 8 cgroup selectors (the most a rule set holds), in
	// classes whose rules concern no process here: the program reads
	// both tasks' cgroups and compares every selector.
	cgroups := func(rs *bpf.RuleSet) *bpf.RuleSet {
		var sels []bpf.CgroupSel
		for i := range bpf.MaxCgroups {
			sels = append(sels, bpf.CgroupSel{Parent: 1, Level: uint32(1 + i%3), Name: fmt.Sprintf("procgate-bench-%d.service", i), Self: true})
		}
		rs.Classes = append(rs.Classes, bpf.Class{Name: "cgroups", Clauses: []bpf.Clause{{Kind: bpf.KindCgroup, Cgroups: sels}}})
		rs.Rules = append(rs.Rules, bpf.Rule{Subject: len(rs.Classes) - 1, Target: len(rs.Classes) - 1, Access: bpf.Read})
		return rs
	}
	type benchCase struct {
		name   string
		rs     *bpf.RuleSet
		denied bool
		prog   *ebpf.Program
	}
	var cases []benchCase
	for _, reads := range []struct {
		name string
		prog *ebpf.Program
	}{{"btf", objs.BTF}, {"probe", objs.Probe}} {
		cases = append(cases,
			benchCase{"reads=" + reads.name + "/rules=0/allowed", bigRuleSet(0), false, reads.prog},
			benchCase{"reads=" + reads.name + "/rules=10000/allowed", bigRuleSet(10000), false, reads.prog},
			benchCase{"reads=" + reads.name + "/rules=10001/denied", root(bigRuleSet(10000)), true, reads.prog},
			benchCase{"reads=" + reads.name + "/rules=10001/cgroups=8/allowed", cgroups(bigRuleSet(10000)), false, reads.prog})
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			j.load(b, c.rs)
			prog := c.prog
			if err := j.ids.Put(uint32(2), ptraceIds{Euid: uint32(bpf.Read)}); err != nil {
				b.Fatal(err)
			}
			if err := objs.Out.Put(uint32(0), ptraceBenchOut{}); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := prog.Run(&ebpf.RunOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			var out ptraceBenchOut
			if err := objs.Out.Lookup(uint32(0), &out); err != nil {
				b.Fatal(err)
			}
			if out.Judged == 0 || (out.Denied == out.Judged) != c.denied || out.Denied != 0 && out.Denied != out.Judged {
				b.Fatalf("%d of %d judgements denied, want denied %v", out.Denied, out.Judged, c.denied)
			}
			b.ReportMetric(float64(out.Ns-min(out.Empty, out.Ns))/float64(out.Judged), "ns/judge")
		})
	}
}
