package live

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/yama"
)

// fixtureTask is one /proc/<pid> directory of a fixture tree.
type fixtureTask struct {
	pid    int
	status string
	// owner of fd/ (applied only when the test runs as root)
	ownUID, ownGID int
	label          string
	threads        map[int]string
}

// writeFixture builds a procfs-like tree with the kernel files Read
// looks at; namespace links all name the initial namespace.
func writeFixture(t *testing.T, tasks []fixtureTask) (proc, sys string) {
	t.Helper()
	root := t.TempDir()
	proc, sys = filepath.Join(root, "proc"), filepath.Join(root, "sys")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	write := func(path, content string) {
		t.Helper()
		must(os.MkdirAll(filepath.Dir(path), 0o755))
		must(os.WriteFile(path, []byte(content), 0o644))
	}
	write(filepath.Join(proc, "sys/kernel/yama/ptrace_scope"), "2\n")
	write(filepath.Join(proc, "sys/fs/suid_dumpable"), "1\n")
	write(filepath.Join(proc, "self/mountinfo"), "22 27 0:21 / "+proc+" rw,relatime - proc proc rw,hidepid=noaccess,gid=4\n")
	write(filepath.Join(proc, "self/uid_map"), "         0          0 4294967295\n")
	must(os.MkdirAll(filepath.Join(proc, "self/ns"), 0o755))
	must(os.Symlink("user:[4026531837]", filepath.Join(proc, "self/ns/user")))
	write(filepath.Join(sys, "kernel/security/lsm"), "lockdown,capability,yama,selinux,bpf\n")
	taskDir := func(dir string, ft fixtureTask, status string) {
		write(filepath.Join(dir, "status"), status)
		must(os.MkdirAll(filepath.Join(dir, "ns"), 0o755))
		must(os.Symlink("user:[4026531837]", filepath.Join(dir, "ns/user")))
		must(os.MkdirAll(filepath.Join(dir, "fd"), 0o500))
		if os.Geteuid() == 0 {
			must(os.Chown(filepath.Join(dir, "fd"), ft.ownUID, ft.ownGID))
		}
		if ft.label != "" {
			write(filepath.Join(dir, "attr/current"), ft.label+"\x00")
		}
	}
	for _, ft := range tasks {
		dir := filepath.Join(proc, itoa(ft.pid))
		taskDir(dir, ft, ft.status)
		for tid, st := range ft.threads {
			taskDir(filepath.Join(dir, "task", itoa(tid)), ft, st)
		}
	}
	return proc, sys
}

func itoa(n int) string { return strconv.Itoa(n) }

func status(name string, pid, tgid, ppid int, uid, gid string, capPrm, capEff string, extra string) string {
	return "Name:\t" + name + "\nState:\tS (sleeping)\nTgid:\t" + itoa(tgid) + "\nPid:\t" + itoa(pid) + "\nPPid:\t" + itoa(ppid) +
		"\nTracerPid:\t0\nUid:\t" + uid + "\nGid:\t" + gid + "\nGroups:\t\nKthread:\t0\nVmPeak:\t1 kB\nCapPrm:\t" + capPrm + "\nCapEff:\t" + capEff + "\n" + extra
}

// TestReadFixture reads a fixture tree unpinned: kernel settings, module
// list, labels, relations and the dumpable inference.
func TestReadFixture(t *testing.T) {
	me := os.Geteuid()
	u := itoa(me)
	ids := u + "\t" + u + "\t" + u + "\t" + u
	tasks := []fixtureTask{
		{pid: 1, status: status("init", 1, 1, 0, "0\t0\t0\t0", "0\t0\t0\t0", "000001ffffffffff", "000001ffffffffff", ""), label: "system_u:system_r:init_t:s0"},
		{pid: 50, status: status("shell", 50, 50, 1, ids, ids, "0", "0", ""), ownUID: me, ownGID: me, label: "unconfined_u:unconfined_r:unconfined_t:s0",
			threads: map[int]string{51: status("shell", 51, 50, 1, ids, ids, "0", "0", "")}},
		// fd/ owned by root while the task runs as another user: non-dumpable.
		{pid: 60, status: status("agent", 60, 60, 50, "1000\t1000\t1000\t1000", "1000\t1000\t1000\t1000", "0", "0", "")},
		{pid: 70, status: "Name:\tkworker\nState:\tI (idle)\nTgid:\t70\nPid:\t70\nPPid:\t2\nTracerPid:\t0\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nKthread:\t1\nCapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\n"},
	}
	proc, sys := writeFixture(t, tasks)
	s, err := Read(Options{Proc: proc, Sys: sys, Threads: true})
	if err != nil {
		t.Fatal(err)
	}
	w := s.World
	if got := strings.Join(s.Kernel.LSMs, ","); got != "lockdown,capability,yama,selinux,bpf" {
		t.Errorf("LSMs %q", got)
	}
	if y, ok := w.LSM("yama").(*yama.Module); !ok || y.Scope != 2 {
		t.Errorf("yama module %v, want scope 2", w.LSM("yama"))
	}
	if len(s.Unmodelled) != 1 || s.Unmodelled[0] != "selinux" {
		t.Errorf("unmodelled %v, want [selinux]", s.Unmodelled)
	}
	if w.SuidDumpable != 1 || w.Proc.HidePID != kernel.HidePIDNoAccess || !w.Proc.HasGID || w.Proc.GID != 4 {
		t.Errorf("settings: suid_dumpable %d, proc %+v", w.SuidDumpable, w.Proc)
	}
	if len(w.Tasks) != 5 {
		t.Fatalf("%d tasks, want 5 (4 leaders, 1 thread)", len(w.Tasks))
	}
	init, shell, thread, agent, kw := w.TaskByPID(1), w.TaskByPID(50), w.TaskByPID(51), w.TaskByPID(60), w.TaskByPID(70)
	if init.Name != "init[1]" || init.SELinux != "system_u:system_r:init_t:s0" || init.Cred.CapPermitted != kernel.CapSetAll {
		t.Errorf("init: %+v", init)
	}
	if shell.Parent != init || agent.Parent != shell || thread.Leader != shell || thread.MM != shell.MM || shell.MM == nil {
		t.Errorf("relations: shell.Parent %v agent.Parent %v thread.Leader %v", shell.Parent, agent.Parent, thread.Leader)
	}
	if shell.MM.Dumpable != kernel.SuidDumpUser {
		t.Errorf("shell dumpable %d, want 1 (fd/ owned by its euid)", shell.MM.Dumpable)
	}
	if !kw.Kthread || kw.MM != nil || kw.State != kernel.Running {
		t.Errorf("kworker: kthread %v mm %v state %v", kw.Kthread, kw.MM, kw.State)
	}
	if me == 0 {
		if agent.MM.Dumpable != kernel.SuidDumpDisable || s.unknown[agent] != 0 {
			t.Errorf("agent: dumpable %d (uncertain %b), want 0: fd/ is root's", agent.MM.Dumpable, s.unknown[agent])
		}
		if init.MM.Dumpable != kernel.SuidDumpUser || s.unknown[init]&unkDumpable == 0 {
			t.Errorf("init: dumpable %d, uncertain %b; want 1 and uncertain (root either way)", init.MM.Dumpable, s.unknown[init])
		}
	} else {
		t.Log("not root: fixture owners cannot be set; the root-owned cases are not checked")
	}
}

// A fixture read of a missing pid reports ESRCH.
func TestReadFixtureMissing(t *testing.T) {
	proc, sys := writeFixture(t, nil)
	_, err := ReadPIDs([]int{12345}, Options{Proc: proc, Sys: sys})
	if err == nil || !strings.Contains(err.Error(), "no such process") {
		t.Errorf("got %v, want no such process", err)
	}
}
