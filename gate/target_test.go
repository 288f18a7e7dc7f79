package gate_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/gate"
	"github.com/procgate/procgate/internal/proctest"
	"github.com/procgate/procgate/internal/testenv"
	"github.com/procgate/procgate/live"
	"github.com/procgate/procgate/policy"
)

// startHelper starts a helper process (non-dumpable when asked; as uid
// when it is not 0) and returns its pid and the id of its second thread;
// it ends with the test.
func startHelper(t *testing.T, nondumpable bool, uid uint32) (pid, tid int) {
	t.Helper()
	return proctest.Start(t, proctest.Options{NonDumpable: nondumpable, UID: uid})
}

// readOne answers one request and returns the process answers by pid.
func readOne(t *testing.T, g *gate.Gate, c *gate.Caller, pids []int, items ...gate.Item) map[int]*gate.ProcResult {
	t.Helper()
	got := map[int]*gate.ProcResult{}
	err := g.Read(context.Background(), c, &gate.Request{PIDs: pids, Items: items})(func(r *gate.ProcResult) error {
		rc := *r
		got[r.PID] = &rc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// selfCaller returns a gate of policy pol and this process as its
// caller, both closed when the test ends.
func selfCaller(t testing.TB, pol gate.Policy) (*gate.Gate, *gate.Caller) {
	t.Helper()
	g, err := gate.New(gate.Config{Policy: pol})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	c, err := g.NewCaller(os.Getpid(), -1, uint32(os.Getuid()), uint32(os.Getgid()), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return g, c
}

// A pid that names a thread is not a process: refused with ESRCH, saying
// whose thread it is. A pid no task can have is ESRCH too.
func TestReadThreadAndMissingPIDs(t *testing.T) {
	g, c := selfCaller(t, compile(t, "subject everyone { }\ntarget any { }\nallow everyone any : read { status };\n"))
	pid, tid := startHelper(t, false, 0)
	const never = proctest.NeverPID
	got := readOne(t, g, c, []int{pid, tid, never}, policy.ItemStatus)
	if r := got[pid]; r == nil || r.Denial != nil || r.Items[0].Denial != nil || !strings.Contains(r.Items[0].Text, "\nPid:\t"+strconv.Itoa(pid)+"\n") {
		t.Errorf("process %d: %+v", pid, r)
	}
	want := fmt.Sprintf("pid %d is a thread of process %d, not a process", tid, pid)
	if r := got[tid]; r == nil || r.Denial == nil || r.Denial.Errno != unix.ESRCH || !strings.Contains(r.Denial.Reason, want) {
		t.Errorf("thread %d: %+v, want ESRCH %q", tid, r, want)
	}
	if r := got[never]; r == nil || r.Denial == nil || r.Denial.Errno != unix.ESRCH || !strings.Contains(r.Denial.Reason, "no such process") {
		t.Errorf("pid %d: %+v, want ESRCH", never, r)
	}
	// The JSON the broker writes says so too.
	b := got[tid].AppendJSON(nil)
	if !strings.Contains(string(b), `"errno":"ESRCH","code":3`) || !strings.Contains(string(b), want) {
		t.Errorf("JSON %s", b)
	}
}

// A caller known by a thread id (as a FUSE request names it) is its
// process; NewCaller, which takes processes, refuses the thread id.
func TestThreadCaller(t *testing.T) {
	g, err := gate.New(gate.Config{Policy: compile(t, "subject everyone { }\ntarget any { }\n")})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	pid, tid := startHelper(t, false, 0)
	c, err := g.NewThreadCaller(tid, 0, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.PID() != pid || c.Subject().PID != pid || c.Alive() != nil {
		t.Errorf("caller by thread %d: pid %d, subject pid %d; want its process %d", tid, c.PID(), c.Subject().PID, pid)
	}
	_, err = g.NewCaller(tid, -1, 0, 0, "")
	if !errors.Is(err, unix.ESRCH) || !strings.Contains(err.Error(), "is a thread of process "+strconv.Itoa(pid)) {
		t.Errorf("NewCaller(thread %d) = %v, want the thread refused", tid, err)
	}
	if _, err := g.NewThreadCaller(proctest.NeverPID, 0, 0, ""); !errors.Is(err, unix.ESRCH) {
		t.Errorf("NewThreadCaller of a missing task = %v, want ESRCH", err)
	}
}

// An end-to-end denial names what decided: a member of group procgate,
// under the default policy, reading io of a real non-dumpable process is
// told the target's non-dumpability kept the allow rule from granting;
// the same read of a dumpable process is granted. A caller outside the
// group asking for stat_full is told the kernel would mask stat.
func TestReasonsNameTheDecider(t *testing.T) {
	testenv.RequireRoot(t, "callers with other credentials")
	const uidMember, uidOther, uidTarget = 41021, 41022, 41023
	g, err := gate.New(gate.Config{Policy: defaultPolicy(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	caller := func(uid uint32, groups []uint32) *gate.Caller {
		cmd := exec.Command("sleep", "600")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid, Groups: groups}}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		var c *gate.Caller
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			// Identify it once it has exec'd (its credentials are then its own).
			comm, _ := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/comm")
			if strings.TrimSpace(string(comm)) == "sleep" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the caller did not exec")
			}
		}
		c, err := g.NewCaller(cmd.Process.Pid, -1, uid, uid, "")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c
	}
	member, other := caller(uidMember, []uint32{gidProcgate}), caller(uidOther, nil)
	// Targets of their own users: the dump owner tells the dumpable flag
	// only of a process not run by root (live.ReadPIDs, docs/live.md).
	nondumpable, _ := startHelper(t, true, uidTarget)
	dumpable, _ := startHelper(t, false, uidTarget+1)

	got := readOne(t, g, member, []int{nondumpable, dumpable}, policy.ItemIO)
	want := "policy: the target is not dumpable, and allow@default.pol:25 grants read { io } only to dumpable targets (it does not say 'when nondumpable') and the kernel would refuse the caller (dac)"
	if r := got[nondumpable]; r == nil || r.Denial != nil || r.Items[0].Denial == nil || r.Items[0].Denial.Errno != unix.EACCES || r.Items[0].Denial.Reason != want {
		t.Errorf("io of the non-dumpable process: %+v (%v), want EACCES %q", r, r.Items[0].Denial, want)
	}
	if r := got[dumpable]; r == nil || r.Denial != nil || r.Items[0].Denial != nil || !strings.Contains(r.Items[0].Text, "rchar:") {
		t.Errorf("io of the dumpable process: %+v, want it served", r)
	}

	got = readOne(t, g, other, []int{dumpable}, policy.ItemStatFull, policy.ItemStat)
	r := got[dumpable]
	if r == nil || r.Denial != nil {
		t.Fatalf("stat of %d: %+v", dumpable, r)
	}
	if d := r.Items[0].Denial; d == nil || d.Errno != unix.EACCES || !strings.HasSuffix(d.Reason, "the kernel would show the caller stat only masked (its [PT] fields zeroed: ids)") {
		t.Errorf("stat_full by a non-member: %v, want EACCES saying masked", d)
	}
	if it := r.Items[1]; it.Denial != nil || !it.Masked {
		t.Errorf("stat by a non-member: %+v, want it served masked", it)
	}
}

// The gate's roots come from its Config: a procfs that is not this pid
// namespace's is refused (its pids cannot be pinned), and the active
// modules are read under the sysfs root given — with AppArmor listed
// there, a caller's SO_PEERSEC label is its AppArmor label, without the
// mode suffix, as policy selectors match it.
func TestConfigRoots(t *testing.T) {
	pol := compile(t, "subject everyone { }\ntarget any { }\n")
	if _, err := gate.New(gate.Config{Policy: pol, Live: live.Options{Proc: t.TempDir()}}); err == nil || !strings.Contains(err.Error(), "pids cannot be pinned") {
		t.Errorf("a fixture procfs: %v, want it refused", err)
	}
	sys := t.TempDir()
	if err := os.MkdirAll(filepath.Join(sys, "kernel/security"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sys, "kernel/security/lsm"), []byte("lockdown,capability,apparmor\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, sys, label, want string
	}{
		{"apparmor listed", sys, "agent_profile (enforce)\x00", "agent_profile"},
		{"apparmor listed, unconfined", sys, "unconfined\n", "unconfined"},
		{"no module list", t.TempDir(), "agent_profile (enforce)", ""},
	} {
		g, err := gate.New(gate.Config{Policy: pol, Live: live.Options{Sys: tc.sys}})
		if err != nil {
			t.Fatal(err)
		}
		c, err := g.NewCaller(os.Getpid(), -1, uint32(os.Getuid()), uint32(os.Getgid()), tc.label)
		if err != nil {
			t.Fatal(err)
		}
		if s := c.Subject(); s.AppArmor != tc.want || s.SELinux != "" {
			t.Errorf("%s: subject labels %q/%q, want AppArmor %q", tc.name, s.SELinux, s.AppArmor, tc.want)
		}
		c.Close()
		g.Close()
	}
}

// The daemon's own processes are protected: a policy that grants io to
// everyone grants nothing on a process in Config.Protect (the front, the
// gate's own), whose items a caller gets only as the kernel would give
// them to it directly (status); another process of the same user is
// served.
func TestProtectedProcesses(t *testing.T) {
	testenv.RequireRoot(t, "callers and targets with other credentials")
	const uidCaller, uidTarget = 41031, 41032
	pol, err := policy.Load("all.pol", []byte("allow * * : read { io fdinfo };\n"))
	if err != nil {
		t.Fatal(err)
	}
	front, _ := startHelper(t, false, uidTarget)
	other, _ := startHelper(t, false, uidTarget)
	g, err := gate.New(gate.Config{Policy: pol, Protect: []int{front, os.Getpid()}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	callerPID, _ := startHelper(t, false, uidCaller)
	c, err := g.NewCaller(callerPID, -1, uidCaller, uidCaller, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := readOne(t, g, c, []int{front, os.Getpid(), other}, policy.ItemIO, policy.ItemFdinfo, policy.ItemStatus)
	for _, pid := range []int{front, os.Getpid()} {
		r := got[pid]
		if r == nil || r.Denial != nil {
			t.Fatalf("pid %d: %+v", pid, r)
		}
		for _, ir := range r.Items[:2] {
			if ir.Denial == nil || ir.Denial.Errno != unix.EACCES || !strings.Contains(ir.Denial.Reason, "one of procgate's own processes") {
				t.Errorf("%s of protected pid %d: %+v, want EACCES naming the protection", ir.Item, pid, ir.Denial)
			}
		}
		if st := r.Items[2]; st.Denial != nil || !strings.Contains(st.Text, "Name:") {
			t.Errorf("status of protected pid %d: %+v, want it served as the kernel serves it", pid, st.Denial)
		}
	}
	if r := got[other]; r == nil || r.Denial != nil || r.Items[0].Denial != nil || r.Items[1].Denial != nil {
		t.Errorf("an unprotected process of the same user: %+v", r)
	}
}
