package live

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/bpflsm"
	"github.com/procgate/procgate/internal/testenv"
	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/bpf"
	"github.com/procgate/procgate/procfs"
	"github.com/procgate/procgate/scenario"
)

// TestLiveBPF reads procgate's BPF rule set as the live model does on a
// system where procgate enforce runs: the rule set pinned on a bpffs
// (without the program: this machine refuses LSM programs, not maps),
// the processes' executables and cgroups read for its classes and its
// exemption, and the decisions they make.
func TestLiveBPF(t *testing.T) {
	needRoot(t)
	sys := testenv.SysWithBPF(t, "capability,bpf")
	if procfs.Cgroup2Mount("/sys") == "" {
		t.Fatal("no cgroup2 mount")
	}
	pinDir := sys + "/fs/bpf/procgate"

	sleep := exec.Command("sleep", "60")
	sleep.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 4242, Gid: 4242}}
	pid := startCmd(t, sleep, "sleep")
	var st unix.Stat_t
	if err := unix.Stat("/proc/"+itoa(pid)+"/exe", &st); err != nil {
		t.Fatal(err)
	}
	sleepExe := kernel.FileIDOfStat(st.Dev, st.Ino)
	cg, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	var path string
	for line := range strings.Lines(string(cg)) {
		if p, ok := strings.CutPrefix(strings.TrimSpace(line), "0::"); ok {
			path = p
		}
	}
	mine, err := bpflsm.CgroupID(filepath.Join(procfs.Cgroup2Mount("/sys"), path))
	if err != nil {
		t.Fatal(err)
	}

	pin := func(exempt uint64) {
		t.Helper()
		_ = os.RemoveAll(pinDir)
		rs := &bpf.RuleSet{
			Classes: []bpf.Class{
				{Name: "guarded", Clauses: []bpf.Clause{{Kind: bpf.KindUID, IDs: []bpf.IDRange{{Lo: 4242, Hi: 4242}}}}},
				{Name: "sleepers", Clauses: []bpf.Clause{{Kind: bpf.KindExe, Exes: []kernel.FileID{sleepExe}}}},
				// Selects no process here; its rule makes the
				// reader read each task's cgroup path.
				{Name: "nowhere", Clauses: []bpf.Clause{{Kind: bpf.KindCgroup, Cgroups: []bpf.CgroupSel{{Parent: 1, Level: 1, Name: "procgate-nowhere", Self: true}}}}},
			},
			Rules: []bpf.Rule{{Subject: -1, Target: 0, Access: bpf.Read}, {Subject: -1, Target: 1, Access: bpf.Attach},
				{Subject: -1, Target: 2, Access: bpf.Attach}},
			ExemptCgroup: exempt, Generation: exempt,
		}
		if err := bpflsm.PinRuleSet(rs, pinDir); err != nil {
			t.Fatal(err)
		}
	}
	// exe and mem, not environ: from 6.15 mm_access lets a
	// perfmon_capable caller (root here) read environ through a refused
	// READ check (kernel.Features.PerfmonMMAccess).
	exe, mem := access(t, "exe"), access(t, "mem")
	read := func() (*System, *kernel.Task, *kernel.Task) {
		t.Helper()
		s, err := ReadPIDs([]int{os.Getpid(), pid}, Options{Sys: sys})
		if err != nil {
			t.Fatal(err)
		}
		m, ok := s.World.LSM("bpf").(*bpf.Module)
		if !ok || len(m.Rules.Classes) != 3 {
			t.Fatalf("the world's modules lack the rule set: %v", s.World.LSMs)
		}
		self, target := s.World.TaskByPID(os.Getpid()), s.World.TaskByPID(pid)
		if target.MM == nil || target.MM.Exe == nil || *target.MM.Exe != sleepExe {
			t.Errorf("sleep's executable read as %+v, want %+v", target.MM, sleepExe)
		}
		if self.CgroupID != mine {
			t.Errorf("the test's cgroup read as %d, want %d", self.CgroupID, mine)
		}
		if want, err := procfs.CgroupNodes(procfs.Cgroup2Mount("/sys"), path); err != nil || !slices.Equal(self.Cgroup, want) {
			t.Errorf("the test's cgroup path read as %v, want %v (%v)", self.Cgroup, want, err)
		}
		return s, self, target
	}

	// Exempt: the test process is the rule set's exempt reader.
	pin(mine)
	s, self, target := read()
	if d := s.Decide(self, target, exe, true); !d.Allowed {
		t.Errorf("exempt reader -> exe: %v %+v", d.Result(), d.Steps)
	}
	// Not exempt: the protect rules hold for root too.
	pin(12345)
	s, self, target = read()
	if s.Kernel.BPF.Generation != 12345 {
		t.Errorf("generation read back %d", s.Kernel.BPF.Generation)
	}
	for _, tc := range []struct {
		a    Access
		want kernel.Errno
	}{{exe, kernel.EACCES}, {mem, kernel.EACCES}} {
		d := s.Decide(self, target, tc.a, true)
		if d.Allowed || d.Errno != tc.want || d.Layer != "bpf" {
			t.Errorf("root -> protected: %v in layer %s, want %v by bpf: %+v", d.Result(), d.Layer, tc.want, d.Steps)
		}
	}
	// A snapshot of the system keeps the program: the rule set and the
	// facts it reads (executables, cgroups) are written and read back,
	// and decide alike.
	out, err := scenario.Marshal(s.World, nil)
	if err != nil {
		t.Fatal(err)
	}
	back, err := scenario.Load("snapshot.yaml", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if back.World.LSM("bpf") == nil {
		t.Fatalf("the snapshot lost the program:\n%s", out)
	}
	for _, a := range []Access{exe, mem} {
		want, got := a.Evaluate(s.World, self, target, false), a.Evaluate(back.World, back.World.TaskByPID(self.PID), back.World.TaskByPID(target.PID), false)
		if got.Allowed != want.Allowed || got.Errno != want.Errno || got.Layer != want.Layer {
			t.Errorf("the snapshot answers %v by %s, the live system %v by %s", got.Result(), got.Layer, want.Result(), want.Layer)
		}
	}
	// Nothing pinned: no module.
	if err := os.RemoveAll(pinDir); err != nil {
		t.Fatal(err)
	}
	s, err = ReadPIDs([]int{pid}, Options{Sys: sys})
	if err != nil {
		t.Fatal(err)
	}
	if s.World.LSM("bpf") != nil || s.Kernel.BPF != nil {
		t.Errorf("a rule set without a pin: %v", s.World.LSMs)
	}
}

// TestUnknownBPF: a task whose executable could not be read is assumed
// to run none that the rule set names, and the answer says what it
// would be if it ran one; a caller whose cgroup could not be read, what
// it would be in the exempt one. An unreadable rule set is a module that
// may deny anything (EPERM).
func TestUnknownBPF(t *testing.T) {
	exe := kernel.FileID{Dev: kernel.MkDev(8, 1), Ino: 42}
	s := system(t)
	w := s.World
	w.LSMs = append(w.LSMs, &bpf.Module{Rules: &bpf.RuleSet{
		Classes:      []bpf.Class{{Name: "agent", Clauses: []bpf.Clause{{Kind: bpf.KindExe, Exes: []kernel.FileID{exe}}}}},
		Rules:        []bpf.Rule{{Subject: -1, Target: 0, Access: bpf.Read, Text: "protect agent : read"}},
		ExemptCgroup: 9,
	}})
	root, daemon := w.Task("rootnocaps"), w.Task("rootdaemon")
	environ := access(t, "environ")
	d := s.Decide(root, daemon, environ, false)
	if !d.Allowed || hasUnknown(d.Unknown, "bpf") {
		t.Fatalf("root -> rootdaemon: %v %q", d.Result(), d.Unknown)
	}
	s.unknown[daemon] = unkExe
	d = s.Decide(root, daemon, environ, false)
	if !d.Allowed || !strings.Contains(bpfUnknown(d.Unknown), "dev 8:1 ino 42") {
		t.Errorf("unknown executable: %v %q", d.Result(), d.Unknown)
	}
	// The target runs the agent: denied unless the caller is exempt.
	daemon.MM.Exe = &exe
	delete(s.unknown, daemon)
	s.unknown[root] = unkCgroup
	d = s.Decide(root, daemon, environ, false)
	if d.Allowed || !strings.Contains(bpfUnknown(d.Unknown), "exempt") {
		t.Errorf("unknown cgroup: %v %q", d.Result(), d.Unknown)
	}

	// Cgroup and pid namespace selectors: the target's unknown cgroup or
	// namespace, and the selection that would protect it.
	daemon.MM.Exe = nil
	sel := bpf.CgroupSel{Parent: 20, Level: 2, Name: "agent.service", Self: true}
	w.LSMs[len(w.LSMs)-1] = &bpf.Module{Rules: &bpf.RuleSet{
		Classes: []bpf.Class{
			{Name: "agents", Clauses: []bpf.Clause{{Kind: bpf.KindCgroup, Cgroups: []bpf.CgroupSel{sel}}}},
			{Name: "boxed", Clauses: []bpf.Clause{{Kind: bpf.KindPIDNS, IDs: []bpf.IDRange{{Lo: 4026532301, Hi: 4026532301}}}}},
		},
		Rules: []bpf.Rule{{Subject: -1, Target: 0, Access: bpf.Read}, {Subject: -1, Target: 1, Access: bpf.Read}},
	}}
	for _, tc := range []struct {
		bit  uncertain
		want string
	}{
		{unkCgroup, "bpf: the cgroup of rootdaemon could not be read; if cgroup parent 20 level 2 agent.service selects it, the answer is EACCES"},
		{unkPIDNS, "bpf: the pid namespace of rootdaemon could not be read; if it is pid:[4026532301], the answer is EACCES"},
	} {
		s.unknown = map[*kernel.Task]uncertain{daemon: tc.bit}
		d = s.Decide(root, daemon, environ, false)
		if !d.Allowed || bpfUnknown(d.Unknown) != tc.want {
			t.Errorf("unknown %b: %v %q, want %q", tc.bit, d.Result(), d.Unknown, tc.want)
		}
	}

	s = system(t, "bpf")
	w = s.World
	d = s.Decide(w.Task("rootnocaps"), w.Task("rootdaemon"), environ, false)
	if !d.Allowed || !strings.Contains(bpfUnknown(d.Unknown), "not read") {
		t.Errorf("unreadable rule set: %v %q", d.Result(), d.Unknown)
	}
}

// bpfUnknown returns the unknowns about procgate's BPF program, joined.
func bpfUnknown(list []string) string {
	var out []string
	for _, u := range list {
		if strings.HasPrefix(u, "bpf:") {
			out = append(out, u)
		}
	}
	return strings.Join(out, "; ")
}
