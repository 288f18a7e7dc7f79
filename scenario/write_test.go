package scenario

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/capability"
)

// rich exercises every task and kernel key the writer handles.
const rich = `
kernel:
  release: "6.18.44"
  lsm: [capability, landlock, yama, lockdown]
  yama: {ptrace_scope: 1}
  landlock: {abi: 6}
  suid_dumpable: 2
  proc: {hidepid: invisible, gid: 27}
  features: {user_dumpable: false}
usernamespaces:
  - {name: ctr, parent: init, owner: 1000, uid_map: [[0, 1000, 1], [1, 100000, 65536]], gid_map: [[0, 1000, 1], [1, 100000, 65536]]}
  - {name: inner, parent: ctr, owner: 100000, group: 100005, uid_map: [[0, 100000, 10]], gid_map: []}
  - {name: empty, parent: init, owner: 1001, uid_map: [], gid_map: []}
tasks:
  - {name: init, pid: 1, uid: 0, gid: 0}
  - {name: kthreadd, pid: 2, uid: 0, gid: 0, kthread: true}
  - {name: kworker, pid: 3, parent: kthreadd, uid: 0, gid: 0, kthread: true}
  - {name: shell, pid: 2000, parent: init, uid: 1000, gid: 1000, groups: [4, 27], caps: none}
  - {name: gdb, pid: 2100, parent: shell, uid: 1000, gid: 1000, caps: {effective: [sys_ptrace], permitted: [sys_ptrace, net_raw]}}
  - {name: gdb-thread, pid: 2102, tgid: 2100, uid: 1000, gid: 1000, caps: none}
  - {name: debuggee, pid: 2101, parent: gdb, uid: 1000, gid: 1000, tracer: gdb-thread, caps: none}
  - {name: crashy, pid: 2300, parent: shell, uid: 1000, gid: 1000, ptracer: gdb, caps: none, comm: "crashy: main", cmdline: "crashy --flag"}
  - {name: open-door, pid: 2301, parent: shell, uid: 1000, gid: 1000, ptracer: any, caps: none}
  - name: setuid
    pid: 2400
    parent: shell
    uids: {real: 1000, effective: 0, saved: 0, fs: 0}
    gids: {real: 1000, effective: 1000, saved: 1000, fs: 1000}
    caps: all
    mm: {dumpable: 2, userns: init}
  - {name: secret, pid: 2500, parent: init, uid: 1000, gid: 1000, caps: none, mm: {dumpable: 0, userns: init}}
  - {name: vforked, pid: 2501, parent: secret, uid: 1000, gid: 1000, caps: none, mm: {share: secret}}
  - {name: zombie, pid: 2600, parent: shell, uid: 1000, gid: 1000, state: zombie, user_dumpable: true, caps: none}
  - {name: exiting, pid: 2601, parent: shell, uid: 1000, gid: 1000, state: exiting, caps: none}
  - {name: nomm, pid: 2602, parent: shell, uid: 1000, gid: 1000, caps: none, mm: none}
  - {name: sandboxed, pid: 2700, parent: shell, uid: 1000, gid: 1000, landlock: [outer], caps: none}
  - {name: nested, pid: 2701, parent: sandboxed, uid: 1000, gid: 1000, landlock: [outer, inner], caps: none}
  - {name: ctr-init, pid: 4200, parent: init, userns: ctr, uid: 1000, gid: 1000, caps: all}
  - {name: ctr-www, pid: 4400, parent: ctr-init, userns: ctr, uid: 100032, gid: 100032, caps: none, mm: {dumpable: 0, userns: ctr}}
  - {name: deep, pid: 4500, parent: ctr-init, userns: inner, uid: 100000, gid: 100005, caps: all}
  - {name: lonely, pid: 4600, parent: init, userns: empty, uid: 1001, gid: 1001, caps: none}
  - {name: "odd: [name] #1", pid: 4700, parent: init, uid: 33, gid: 33, caps: none, selinux: "system_u:system_r:httpd_t:s0", apparmor: "/usr/sbin/nginx", smack: "_"}
checks:
  - {name: gdb attaches to its child, caller: gdb, target: debuggee, syscall: ptrace_attach, expect: EPERM}
  - {name: fd entry, caller: shell, target: crashy, entry: fd/3}
  - {name: a mode, caller: shell, target: crashy, mode: "attach_realcreds,noaudit", expect: allow}
`

// questions are every entry, syscall and well-formed mode.
func questions() []*Check {
	var qs []*Check
	for _, e := range kernel.Entries() {
		qs = append(qs, &Check{Entry: e, EntryPath: e.Name})
	}
	for _, s := range kernel.Syscalls() {
		qs = append(qs, &Check{Syscall: s})
	}
	for _, m := range []kernel.Mode{kernel.ReadFSCreds, kernel.ReadRealCreds, kernel.AttachFSCreds, kernel.AttachRealCreds} {
		qs = append(qs, &Check{Mode: m}, &Check{Mode: m | kernel.ModeNoAudit})
	}
	return qs
}

// sameAnswers requires b to answer every question for every pair of
// tasks as a does, explanations and audit records included. Tasks are
// matched by name.
func sameAnswers(t *testing.T, a, b *kernel.World) {
	t.Helper()
	if len(a.Tasks) != len(b.Tasks) {
		t.Fatalf("%d tasks written, %d loaded", len(a.Tasks), len(b.Tasks))
	}
	n, bad := 0, 0
	for _, c := range a.Tasks {
		for _, tg := range a.Tasks {
			c2, t2 := b.Task(c.Name), b.Task(tg.Name)
			if c2 == nil || t2 == nil {
				t.Fatalf("task %q or %q lost", c.Name, tg.Name)
			}
			for _, q := range questions() {
				q1, q2 := *q, *q
				q1.Caller, q1.Target = c, tg
				q2.Caller, q2.Target = c2, t2
				d1, d2 := Evaluate(a, &q1, true), Evaluate(b, &q2, true)
				n++
				if !reflect.DeepEqual(d1, d2) {
					bad++
					if bad <= 5 {
						t.Errorf("%s -> %s %s:\n written: %+v\n loaded:  %+v", c.Name, tg.Name, q1.Access(), d1, d2)
					}
				}
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d decisions differ", bad, n)
	}
}

func roundTrip(t *testing.T, name string, src []byte) {
	t.Helper()
	s, err := Load(name, src)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Marshal(s.World, s.Checks)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := Load(name+" (written)", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	sameAnswers(t, s.World, s2.World)
	if len(s.Checks) != len(s2.Checks) {
		t.Fatalf("%d checks written, %d loaded", len(s.Checks), len(s2.Checks))
	}
	for i, c := range s.Checks {
		c2 := s2.Checks[i]
		if c.Name != c2.Name || c.Access() != c2.Access() || c.Expect != c2.Expect || c.Caller.Name != c2.Caller.Name || c.Target.Name != c2.Target.Name {
			t.Errorf("check %d: wrote %v (expect %q), loaded %v (expect %q)", i, c, c.Expect, c2, c2.Expect)
		}
	}
	// Writing is a fixed point: what was loaded is written identically.
	again, err := Marshal(s2.World, s2.Checks)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, again) {
		t.Errorf("writing is not stable:\n--- first\n%s\n--- second\n%s", out, again)
	}
}

func TestMarshalRoundTripRich(t *testing.T) {
	roundTrip(t, "rich.yaml", []byte(rich))
}

func TestMarshalRoundTripExamples(t *testing.T) {
	files, err := filepath.Glob("../examples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	// The spec cases cover every security module's configuration.
	spec, err := filepath.Glob("../kernel/testdata/spec/*.yaml")
	if err != nil || len(spec) == 0 {
		t.Fatalf("no spec scenarios: %v", err)
	}
	files = append(files, spec...)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			roundTrip(t, f, src)
		})
	}
}

func TestMarshalComment(t *testing.T) {
	w := kernel.NewWorld(kernel.DefaultRelease)
	w.LSMs = []kernel.LSM{capability.New()}
	w.AddTask(&kernel.Task{Name: "a", PID: 10, TGID: 10, Cred: kernel.Cred{UserNS: w.Init}})
	out, err := MarshalWithComment(w, nil, "snapshot of host\nsecond line\n")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(out), "# snapshot of host\n# second line\nkernel:\n") {
		t.Errorf("comment not at the top:\n%s", out)
	}
	if _, err := Load("c.yaml", out); err != nil {
		t.Fatal(err)
	}
}

// A task with no name or a clashing one gets "pid-N".
func TestMarshalNamesTasks(t *testing.T) {
	w := kernel.NewWorld(kernel.DefaultRelease)
	w.LSMs = []kernel.LSM{capability.New()}
	a := &kernel.Task{PID: 10, TGID: 10, Cred: kernel.Cred{UserNS: w.Init}}
	b := &kernel.Task{Name: "x", PID: 11, TGID: 11, Cred: kernel.Cred{UserNS: w.Init}, Parent: a}
	c := &kernel.Task{Name: "x", PID: 12, TGID: 12, Cred: kernel.Cred{UserNS: w.Init}}
	for _, x := range []*kernel.Task{a, b, c} {
		w.AddTask(x)
	}
	out, err := Marshal(w, []*Check{{Caller: c, Target: a, Mode: kernel.ReadFSCreds}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Load("n.yaml", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if s.World.Task("pid-10") == nil || s.World.Task("x") == nil || s.World.Task("pid-12") == nil {
		t.Errorf("names not assigned:\n%s", out)
	}
	if got := s.World.Task("x").Parent; got == nil || got.PID != 10 {
		t.Errorf("parent lost:\n%s", out)
	}
	if s.Checks[0].Caller.PID != 12 {
		t.Errorf("check caller: %v", s.Checks[0])
	}
}

type opaque struct{ capability.Module }

func (opaque) Name() string { return "opaque" }

func TestMarshalRefusesUnwritableModule(t *testing.T) {
	w := kernel.NewWorld(kernel.DefaultRelease)
	w.LSMs = []kernel.LSM{capability.New(), opaque{}}
	if _, err := Marshal(w, nil); err == nil || !strings.Contains(err.Error(), `"opaque"`) {
		t.Errorf("Marshal with an unwritable module: %v, want an error naming it", err)
	}
	w.LSMs = nil
	if _, err := Marshal(w, nil); err == nil {
		t.Error("Marshal without modules: no error")
	}
}

func TestMarshalRefusesForeignTask(t *testing.T) {
	w := kernel.NewWorld(kernel.DefaultRelease)
	w.LSMs = []kernel.LSM{capability.New()}
	stranger := &kernel.Task{Name: "s", PID: 99, TGID: 99, Cred: kernel.Cred{UserNS: w.Init}}
	w.AddTask(&kernel.Task{Name: "a", PID: 10, TGID: 10, Cred: kernel.Cred{UserNS: w.Init}, Tracer: stranger})
	if _, err := Marshal(w, nil); err == nil {
		t.Error("a tracer outside the world was written")
	}
}

// TestMarshalPIDNS writes and loads a task's pid namespace, which no
// decision reads and so no answer would miss.
func TestMarshalPIDNS(t *testing.T) {
	src := "kernel: {release: \"6.18.44\"}\ntasks:\n  - {name: app, pid: 5000, uid: 1000, gid: 1000, pidns: \"pid:[4026532301]\"}\n  - {name: host, pid: 5001, uid: 1000, gid: 1000}\n"
	s, err := Load("pidns.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	out, err := Marshal(s.World, nil)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := Load("pidns.yaml (written)", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got := s2.World.Task("app").PIDNS; got != "pid:[4026532301]" {
		t.Errorf("app's pidns after a round trip: %q\n%s", got, out)
	}
	if got := s2.World.Task("host").PIDNS; got != "" {
		t.Errorf("host's pidns after a round trip: %q", got)
	}
}
