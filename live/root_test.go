package live

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/internal/proctest"
	"github.com/procgate/procgate/internal/testenv"
	"github.com/procgate/procgate/kernel"
)

// needRoot skips, loudly, tests that spawn processes with other
// credentials.
func needRoot(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t, "spawns processes with other credentials")
}

// startHelper runs the test binary in the creds role with env and waits
// until it is ready. It is stopped when the test ends.
func startHelper(t *testing.T, env ...string) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{roleEnv + "=creds"}, env...)...)
	_, stdout := proctest.StartRole(t, cmd, true)
	line, err := stdout.ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("helper %v: %q, %v", env, line, err)
	}
	return cmd.Process.Pid
}

// startCmd starts a command and waits until its comm is want (after the
// exec chain of unshare and similar).
func startCmd(t *testing.T, cmd *exec.Cmd, want string) int {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	pid := cmd.Process.Pid
	if err := proctest.WaitComm(pid, want, 500); err != nil {
		t.Fatal(err)
	}
	return pid
}

func readOne(t *testing.T, pid int) (*System, *kernel.Task) {
	t.Helper()
	s, err := ReadPIDs([]int{pid}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	task := s.World.TaskByPID(pid)
	if task == nil {
		t.Fatalf("pid %d not in the world", pid)
	}
	return s, task
}

func TestLiveCreds(t *testing.T) {
	needRoot(t)
	pid := startHelper(t, "PROCGATE_LIVE_UIDS=1000,1001,1002", "PROCGATE_LIVE_GIDS=2000,2001,2002", "PROCGATE_LIVE_DUMPABLE=1")
	s, task := readOne(t, pid)
	c := task.Cred
	if got := [4]kernel.KUID{c.UID, c.EUID, c.SUID, c.FSUID}; got != [4]kernel.KUID{1000, 1001, 1002, 1001} {
		t.Errorf("uids %v", got)
	}
	if got := [4]kernel.KGID{c.GID, c.EGID, c.SGID, c.FSGID}; got != [4]kernel.KGID{2000, 2001, 2002, 2001} {
		t.Errorf("gids %v", got)
	}
	if len(c.Groups) != 0 || c.CapEffective != 0 || c.CapPermitted != 0 || c.UserNS != s.World.Init {
		t.Errorf("groups %v caps %s/%s userns %s", c.Groups, c.CapEffective, c.CapPermitted, c.UserNS.Name)
	}
	if task.MM == nil || task.MM.Dumpable != kernel.SuidDumpUser || s.unknown[task] != 0 {
		t.Errorf("mm %+v uncertain %b, want dumpable 1 for certain", task.MM, s.unknown[task])
	}
	if task.Parent == nil || task.Parent.PID != os.Getpid() || task.Leader != task || task.State != kernel.Running {
		t.Errorf("parent %v leader %v state %v", task.Parent, task.Leader, task.State)
	}
	if !strings.HasSuffix(task.Name, fmt.Sprintf("[%d]", pid)) {
		t.Errorf("name %q", task.Name)
	}
}

func TestLiveDumpable(t *testing.T) {
	needRoot(t)
	pid := startHelper(t, "PROCGATE_LIVE_UIDS=1000,1000,1000", "PROCGATE_LIVE_GIDS=1000,1000,1000", "PROCGATE_LIVE_DUMPABLE=0")
	s, task := readOne(t, pid)
	if task.MM == nil || task.MM.Dumpable != kernel.SuidDumpDisable || s.unknown[task] != 0 {
		t.Errorf("non-dumpable uid 1000: mm %+v uncertain %b, want dumpable 0 for certain", task.MM, s.unknown[task])
	}
	// Root's files belong to root either way: dumpable is unknown.
	pid = startHelper(t, "PROCGATE_LIVE_DUMPABLE=0")
	s, task = readOne(t, pid)
	if s.unknown[task]&unkDumpable == 0 {
		t.Errorf("non-dumpable root: uncertain %b, want the dumpable flag marked unknown", s.unknown[task])
	}
	if u := s.Uncertainties(); len(u) == 0 || !strings.Contains(u[0], task.Name) {
		t.Errorf("Uncertainties %q do not name %s", u, task.Name)
	}
}

func TestLiveGroupsAndCaps(t *testing.T) {
	needRoot(t)
	cmd := exec.Command("sleep", "1000")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential:  &syscall.Credential{Uid: 1000, Gid: 1000, Groups: []uint32{4, 27}},
		AmbientCaps: []uintptr{unix.CAP_SYS_PTRACE},
	}
	pid := startCmd(t, cmd, "sleep")
	_, task := readOne(t, pid)
	c := task.Cred
	if !reflect.DeepEqual(c.Groups, []kernel.KGID{4, 27}) {
		t.Errorf("groups %v", c.Groups)
	}
	if want := kernel.CapsOf(kernel.CapSysPtrace); c.CapEffective != want || c.CapPermitted != want {
		t.Errorf("caps %s/%s, want sys_ptrace", c.CapEffective, c.CapPermitted)
	}
}

func TestLiveUserNamespace(t *testing.T) {
	needRoot(t)
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("no unshare:", err)
	}
	owned := func(args ...string) *exec.Cmd {
		cmd := exec.Command(unshare, append(args, "sleep", "1000")...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 1000, Gid: 1000, NoSetGroups: false}}
		return cmd
	}
	// A namespace made by uid 1000, without maps.
	pid := startCmd(t, owned("-U"), "sleep")
	s, task := readOne(t, pid)
	ns := task.Cred.UserNS
	if ns.IsInit() || ns.Parent != s.World.Init || ns.Level != 1 || ns.Owner != 1000 || len(ns.UIDMap) != 0 || len(ns.GIDMap) != 0 {
		t.Errorf("namespace %+v, want owner 1000 under init, unmapped", *ns)
	}
	if task.Cred.UID != 1000 || task.MM.UserNS != ns || task.MM.Dumpable != kernel.SuidDumpUser || s.unknown[task] != 0 {
		t.Errorf("task uid %d mm %+v uncertain %b", task.Cred.UID, task.MM, s.unknown[task])
	}
	if !slices.Contains(s.World.Namespaces, ns) {
		t.Error("namespace not listed in the world")
	}
	// With root mapped to 1000: euid 1000 is root of the namespace.
	pid = startCmd(t, owned("-Ur"), "sleep")
	s, task = readOne(t, pid)
	ns = task.Cred.UserNS
	want := []kernel.IDExtent{{Inside: 0, Outside: 1000, Count: 1}}
	if ns.Owner != 1000 || !reflect.DeepEqual(ns.UIDMap, want) || !reflect.DeepEqual(ns.GIDMap, want) {
		t.Errorf("namespace %+v, want 0 mapped to 1000", *ns)
	}
	if task.Cred.CapEffective == 0 || task.Cred.UID != 1000 {
		t.Errorf("root of the namespace: uid %d caps %s, want kuid 1000 with capabilities", task.Cred.UID, task.Cred.CapEffective)
	}
	if s.unknown[task]&unkDumpable == 0 {
		t.Errorf("uncertain %b: root of its namespace cannot be told dumpable or not", s.unknown[task])
	}
	if ns.Name != NSName(nsIno(t, pid)) {
		t.Errorf("namespace name %q", ns.Name)
	}
}

func nsIno(t *testing.T, pid int) uint64 {
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/user", pid), &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// A pid no task has is ESRCH: one that cannot exist (proctest.NeverPID),
// and one whose process
// exited and was reaped. A reaped pid may be taken again by a new task
// at once (by another test's process, or a thread): then it is no longer
// a vanished pid, and the case is tried again with another.
func TestLiveVanished(t *testing.T) {
	check := func(pid int) error {
		_, err := ReadPIDs([]int{pid}, Options{})
		var pe *ProcessError
		if !errors.Is(err, unix.ESRCH) || !errors.As(err, &pe) || pe.PID != pid {
			return fmt.Errorf("reading pid %d: %v, want a ProcessError wrapping ESRCH", pid, err)
		}
		if !strings.Contains(err.Error(), "no such process") {
			return fmt.Errorf("message %q", err)
		}
		return nil
	}
	if err := check(proctest.NeverPID); err != nil {
		t.Error(err)
	}
	for attempt := 0; ; attempt++ {
		cmd := exec.Command("sleep", "1000")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pid := cmd.Process.Pid
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		err := check(pid)
		if err == nil {
			return
		}
		if _, serr := os.Stat("/proc/" + strconv.Itoa(pid)); serr != nil || attempt == 4 {
			t.Fatal(err) // not reused: a real failure
		}
		t.Logf("pid %d was reused at once; trying another", pid)
	}
}

// A thread id is read as that thread, pinned by its process: it has its
// own task, led by the process's.
func TestLiveThreadID(t *testing.T) {
	pid, tid := startThreaded(t)
	s, err := ReadPIDs([]int{tid}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	th, leader := s.World.TaskByPID(tid), s.World.TaskByPID(pid)
	if th == nil || leader == nil || th.TGID != pid || th.Leader != leader || th == leader || th.MM != leader.MM {
		t.Fatalf("thread %d of %d: task %+v, leader %+v", tid, pid, th, leader)
	}
}

// A process that exits between its reads and the pin check is reported
// as ESRCH (ReadPIDs) or left out (Read), never half-read.
func TestLiveVanishesMidRead(t *testing.T) {
	for _, full := range []bool{false, true} {
		cmd := exec.Command("sleep", "1000")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pid := cmd.Process.Pid
		killed := false
		testHookAfterRead = func(p int) {
			if p == pid && !killed {
				killed = true
				_ = cmd.Process.Kill()
				_ = cmd.Wait() // reaped: the pid is free for reuse
			}
		}
		var s *System
		var err error
		if full {
			s, err = Read(Options{})
		} else {
			s, err = ReadPIDs([]int{pid}, Options{})
		}
		testHookAfterRead = nil
		if !killed {
			t.Fatalf("full=%v: the hook never ran for pid %d", full, pid)
		}
		switch {
		case full && err != nil:
			t.Errorf("full read: %v", err)
		case full && s.World.TaskByPID(pid) != nil:
			t.Errorf("full read kept pid %d, which exited while read", pid)
		case !full && !errors.Is(err, unix.ESRCH):
			t.Errorf("ReadPIDs: %v, want ESRCH", err)
		}
	}
}

func TestLiveKernel(t *testing.T) {
	s, err := Read(Options{})
	if err != nil {
		t.Fatal(err)
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	k := s.Kernel
	if k.Release != unix.ByteSliceToString(u.Release[:]) {
		t.Errorf("release %q", k.Release)
	}
	if !slices.Contains(k.LSMs, "capability") || s.World.LSMs[0].Name() != "capability" {
		t.Errorf("modules %v, world %v", k.LSMs, s.World.LSMs)
	}
	if k.LandlockABI != LandlockABI() {
		t.Errorf("landlock ABI %d", k.LandlockABI)
	}
	if slices.Contains(k.LSMs, "landlock") != (s.World.LSM("landlock") != nil) {
		t.Errorf("landlock listed %v, modelled %v", slices.Contains(k.LSMs, "landlock"), s.World.LSM("landlock") != nil)
	}
	if k.YamaScope >= 0 && s.World.LSM("yama") == nil && slices.Contains(k.LSMs, "yama") {
		t.Error("yama active but not modelled")
	}
	self := s.World.TaskByPID(os.Getpid())
	if self == nil || self.Cred.UID != kernel.KUID(os.Getuid()) {
		t.Fatalf("the reader itself: %+v", self)
	}
	t.Logf("kernel %s, modules %v (%s), landlock ABI %d, yama %d, %d tasks, %d namespaces; notes %q",
		k.Release, k.LSMs, k.LSMSource, k.LandlockABI, k.YamaScope, len(s.World.Tasks), len(s.World.Namespaces), s.Notes)
}

func TestLiveThreads(t *testing.T) {
	s, err := ReadPIDs([]int{os.Getpid()}, Options{Threads: true})
	if err != nil {
		t.Fatal(err)
	}
	leader := s.World.TaskByPID(os.Getpid())
	threads := 0
	for _, x := range s.World.Tasks {
		if x.TGID == leader.PID && x != leader {
			threads++
			if x.Leader != leader || x.MM != leader.MM {
				t.Errorf("thread %s: leader %v, shares mm %v", x.Name, x.Leader, x.MM == leader.MM)
			}
		}
	}
	if threads == 0 {
		t.Error("no threads of the test process read (a Go program has several)")
	}
}

// The live world marks Landlock as unknown for an allowed decision.
func TestLiveUnknownLandlock(t *testing.T) {
	needRoot(t)
	pid := startHelper(t)
	s, task := readOne(t, pid)
	if s.World.LSM("landlock") == nil {
		t.Skip("Landlock is not active")
	}
	me := s.World.TaskByPID(os.Getpid())
	d := s.Decide(me, task, Access{Entry: mustEntry(t, "exe")}, false)
	if !d.Allowed || !hasUnknown(d.Unknown, "landlock") {
		t.Errorf("root reads its child's exe: %s, unknowns %q; want allow, depending on Landlock", d.Result(), d.Unknown)
	}
}

func mustEntry(t *testing.T, name string) *kernel.Entry {
	e, err := kernel.LookupEntry(name)
	if err != nil {
		t.Fatal(err)
	}
	return e
}
