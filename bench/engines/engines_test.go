package engines

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/ext"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/procgate/procgate/policy"
)

// The machine the policies are resolved for: names and executables.
var resolver = policy.MapResolver{
	Users:  map[string]uint32{"prometheus": 990},
	Groups: map[string]uint32{"debugger": 500},
	Exes: map[string]policy.Exe{
		"/usr/bin/node_exporter": {Dev: 1, Ino: 100},
		"/usr/bin/lsof":          {Dev: 1, Ino: 101},
		"/usr/sbin/lsof":         {Dev: 1, Ino: 104},
		"/usr/sbin/sshd":         {Dev: 1, Ino: 102},
	},
}

// regoPolicy is examples/policies/broker.pol in Rego, with the names
// resolved as above.
const regoPolicy = `package procgate

import rego.v1

default allow := false

node_exporter if {
	input.subject.uid == 990
	input.subject.exe.dev == 1
	input.subject.exe.ino == 100
}

lsof_tool if {
	input.subject.exe.dev == 1
	input.subject.exe.ino in {101, 104}
}

debuggers if input.subject.gid == 500

debuggers if 500 in input.subject.groups

sshd_all if {
	input.target.exe.dev == 1
	input.target.exe.ino == 102
}

sshd_all if split(input.target.selinux, ":")[2] == "sshd_t"

same_container if {
	input.subject.pidns != 0
	input.subject.pidns == input.target.pidns
	input.subject.cgroup != ""
	input.subject.cgroup == input.target.cgroup
}

attach_items := {"attach", "mem", "syscall", "stack", "personality"}

allow if {
	node_exporter
	input.target.dumpable
	input.item in {"status", "stat", "io", "fd_count"}
}

allow if {
	lsof_tool
	input.target.dumpable
	input.item in {"fd", "fdinfo", "fd_count"}
	same_container
}

allow if {
	debuggers
	input.target.dumpable
	input.item in attach_items
	input.subject.uid == input.target.uid
	not sshd_all
}
`

// celPolicy is the same policy as one CEL expression.
const celPolicy = `
(t.dumpable && (
  (s.uid == 990u && s.exe_dev == 1u && s.exe_ino == 100u && item in ["status", "stat", "io", "fd_count"]) ||
  (s.exe_dev == 1u && s.exe_ino in [101u, 104u] && item in ["fd", "fdinfo", "fd_count"] &&
     s.pidns != 0u && s.pidns == t.pidns && s.cgroup != "" && s.cgroup == t.cgroup) ||
  ((s.gid == 500u || 500u in s.groups) && item in ["attach", "mem", "syscall", "stack", "personality"] &&
     s.uid == t.uid &&
     !((t.exe_dev == 1u && t.exe_ino == 102u) || (t.selinux.split(":").size() > 2 && t.selinux.split(":")[2] == "sshd_t")))
))`

// question is one decision, in each engine's input form.
type question struct {
	name string
	s    *policy.Subject
	t    *policy.Target
	it   policy.Item
	want bool
}

var (
	hostNS = uint64(0xEFFFFFFC)
	gdb    = &policy.Subject{Process: policy.Process{UID: 1000, GID: 1000, Groups: []uint32{500}, Exe: policy.Exe{Dev: 1, Ino: 103}, PIDNS: hostNS, Cgroup: "/user.slice/u1000"}}
	nodeX  = &policy.Subject{Process: policy.Process{UID: 990, GID: 990, Exe: policy.Exe{Dev: 1, Ino: 100}, PIDNS: hostNS, Cgroup: "/system.slice/node_exporter.service"}}
	lsof   = &policy.Subject{Process: policy.Process{UID: 0, GID: 0, Exe: policy.Exe{Dev: 1, Ino: 101}, PIDNS: 4026532001, Cgroup: "/kubepods.slice/pod1/c1.scope"}}
	app    = &policy.Target{Process: policy.Process{UID: 1000, GID: 1000, PIDNS: hostNS, Cgroup: "/user.slice/u1000"}, Dumpable: true}
	sshd   = &policy.Target{Process: policy.Process{UID: 1000, GID: 1000, Exe: policy.Exe{Dev: 1, Ino: 102}, SELinux: "system_u:system_r:sshd_t:s0", PIDNS: hostNS}, Dumpable: true}
	pod    = &policy.Target{Process: policy.Process{UID: 33, GID: 33, PIDNS: 4026532001, Cgroup: "/kubepods.slice/pod1/c1.scope"}, Dumpable: true}
)

var questions = []question{
	{"debugger attaches same uid", gdb, app, policy.ItemAttach, true},
	{"debugger attaches sshd", gdb, sshd, policy.ItemMem, false},
	{"node_exporter reads io", nodeX, pod, policy.ItemIO, true},
	{"node_exporter reads environ", nodeX, app, policy.ItemEnviron, false},
	{"lsof reads fds in its container", lsof, pod, policy.ItemFd, true},
	{"lsof reads fds elsewhere", lsof, app, policy.ItemFd, false},
}

func loadProcgate(tb testing.TB) *policy.Policy {
	src, err := os.ReadFile("../../examples/policies/broker.pol")
	if err != nil {
		tb.Fatal(err)
	}
	f, err := policy.Parse("broker.pol", src)
	if err != nil {
		tb.Fatal(err)
	}
	p, err := policy.CompileWith(resolver, f)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func regoInput(q question) map[string]any {
	proc := func(uid, gid uint32, groups []uint32, exe policy.Exe, selinux, cgroup string, pidns uint64) map[string]any {
		gs := make([]any, len(groups))
		for i, g := range groups {
			gs[i] = g
		}
		return map[string]any{"uid": uid, "gid": gid, "groups": gs, "exe": map[string]any{"dev": exe.Dev, "ino": exe.Ino},
			"selinux": selinux, "cgroup": cgroup, "pidns": pidns}
	}
	s, t := q.s, q.t
	tm := proc(t.UID, t.GID, t.Groups, t.Exe, t.SELinux, t.Cgroup, t.PIDNS)
	tm["dumpable"] = t.Dumpable
	return map[string]any{
		"subject": proc(s.UID, s.GID, s.Groups, s.Exe, s.SELinux, s.Cgroup, s.PIDNS),
		"target":  tm,
		"item":    q.it.String(),
	}
}

func celActivation(q question) map[string]any {
	s, t := q.s, q.t
	gs := make([]uint64, len(s.Groups))
	for i, g := range s.Groups {
		gs[i] = uint64(g)
	}
	return map[string]any{
		"s": map[string]any{"uid": uint64(s.UID), "gid": uint64(s.GID), "groups": gs, "exe_dev": s.Exe.Dev, "exe_ino": s.Exe.Ino,
			"selinux": s.SELinux, "cgroup": s.Cgroup, "pidns": s.PIDNS},
		"t": map[string]any{"uid": uint64(t.UID), "gid": uint64(t.GID), "exe_dev": t.Exe.Dev, "exe_ino": t.Exe.Ino,
			"selinux": t.SELinux, "cgroup": t.Cgroup, "pidns": t.PIDNS, "dumpable": t.Dumpable},
		"item": q.it.String(),
	}
}

func prepareRego(tb testing.TB) rego.PreparedEvalQuery {
	pq, err := rego.New(rego.Query("data.procgate.allow"), rego.Module("broker.rego", regoPolicy)).PrepareForEval(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return pq
}

func evalRego(tb testing.TB, pq rego.PreparedEvalQuery, input map[string]any) bool {
	rs, err := pq.Eval(context.Background(), rego.EvalInput(input))
	if err != nil || len(rs) != 1 || len(rs[0].Expressions) != 1 {
		tb.Fatalf("rego: %v %v", rs, err)
	}
	return rs[0].Expressions[0].Value == true
}

func prepareCEL(tb testing.TB) cel.Program {
	env, err := cel.NewEnv(
		cel.Variable("s", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("t", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("item", cel.StringType),
		ext.Strings(),
	)
	if err != nil {
		tb.Fatal(err)
	}
	ast, iss := env.Compile(celPolicy)
	if iss.Err() != nil {
		tb.Fatal(iss.Err())
	}
	prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		tb.Fatal(err)
	}
	return prg
}

func evalCEL(tb testing.TB, prg cel.Program, act map[string]any) bool {
	out, _, err := prg.Eval(act)
	if err != nil {
		tb.Fatalf("cel: %v", err)
	}
	return out.Value() == true
}

// TestEnginesAgree: the three encodings decide every question alike.
func TestEnginesAgree(t *testing.T) {
	p := loadProcgate(t)
	pq := prepareRego(t)
	prg := prepareCEL(t)
	for _, q := range questions {
		got := [3]bool{p.Decide(q.s, q.t, 0, q.it).Allowed, evalRego(t, pq, regoInput(q)), evalCEL(t, prg, celActivation(q))}
		if got != [3]bool{q.want, q.want, q.want} {
			t.Errorf("%s: procgate, rego, cel = %v, want %v", q.name, got, q.want)
		}
	}
}

func BenchmarkProcgate(b *testing.B) {
	p := loadProcgate(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		q := &questions[i%len(questions)]
		p.Decide(q.s, q.t, 0, q.it)
		i++
	}
}

func BenchmarkRego(b *testing.B) {
	pq := prepareRego(b)
	inputs := make([]map[string]any, len(questions))
	for i, q := range questions {
		inputs[i] = regoInput(q)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		evalRego(b, pq, inputs[i%len(inputs)])
		i++
	}
}

func BenchmarkCEL(b *testing.B) {
	prg := prepareCEL(b)
	acts := make([]map[string]any, len(questions))
	for i, q := range questions {
		acts[i] = celActivation(q)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		evalCEL(b, prg, acts[i%len(acts)])
		i++
	}
}

// TestRatios runs the three benchmarks side by side in one process and
// prints the ratios; it fails when procgate is not at least 100× faster
// than OPA and 10× faster than CEL.
func TestRatios(t *testing.T) {
	if testing.Short() {
		t.Skip("benchmarks in -short mode")
	}
	pg := testing.Benchmark(BenchmarkProcgate)
	rg := testing.Benchmark(BenchmarkRego)
	cl := testing.Benchmark(BenchmarkCEL)
	ns := func(r testing.BenchmarkResult) float64 { return float64(r.T.Nanoseconds()) / float64(r.N) }
	fmt.Printf("%-10s %12s %10s %10s\n", "engine", "ns/decision", "allocs", "vs procgate")
	for _, row := range []struct {
		name string
		r    testing.BenchmarkResult
	}{{"procgate", pg}, {"OPA/Rego", rg}, {"CEL", cl}} {
		fmt.Printf("%-10s %12.1f %10d %9.0f×\n", row.name, ns(row.r), row.r.AllocsPerOp(), ns(row.r)/ns(pg))
	}
	if r := ns(rg) / ns(pg); r < 100 {
		t.Errorf("procgate is only %.0f× faster than OPA (want ≥ 100×)", r)
	}
	if r := ns(cl) / ns(pg); r < 10 {
		t.Errorf("procgate is only %.0f× faster than CEL (want ≥ 10×)", r)
	}
}
