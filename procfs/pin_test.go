package procfs_test

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/internal/proctest"
	"github.com/procgate/procgate/procfs"
)

const neverPID = proctest.NeverPID

func openProc(t *testing.T) *procfs.Root {
	t.Helper()
	r, err := procfs.Open("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if !r.Own() {
		t.Fatalf("/proc is not this pid namespace's procfs (self=%q)", r.Self())
	}
	return r
}

// statusPid reads the Pid line of the status file under a pinned
// directory.
func statusPid(t *testing.T, p *procfs.Pin) int {
	t.Helper()
	b, err := procfs.ReadFile(p.Dir, "status", nil, 1<<16)
	if err != nil {
		t.Fatalf("read status of pinned %d: %v", p.PID, err)
	}
	st, err := procfs.ParseStatus(b)
	if err != nil {
		t.Fatal(err)
	}
	return st.Pid
}

func TestPinProcess(t *testing.T) {
	r := openProc(t)
	p, err := r.Pin(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.PID != os.Getpid() || p.TGID != os.Getpid() || statusPid(t, p) != os.Getpid() || p.Verify() != nil {
		t.Errorf("pin of this process: %+v, verify %v", p, p.Verify())
	}
	p.Close()
	p.Close() // a second close is harmless
}

// A pid that cannot exist, and ids that are no pids, are ESRCH.
func TestPinMissing(t *testing.T) {
	r := openProc(t)
	for _, pid := range []int{neverPID, 0, -1} {
		_, err := r.Pin(pid)
		var pe *procfs.Error
		if !errors.Is(err, unix.ESRCH) || !errors.As(err, &pe) || pe.PID != pid || !strings.Contains(err.Error(), "no such process") {
			t.Errorf("Pin(%d) = %v, want an *Error wrapping ESRCH", pid, err)
		}
	}
	if _, err := r.PinTask(neverPID); !errors.Is(err, unix.ESRCH) {
		t.Errorf("PinTask(%d) = %v, want ESRCH", neverPID, err)
	}
	if _, err := r.PinProcessOf(neverPID); !errors.Is(err, unix.ESRCH) {
		t.Errorf("PinProcessOf(%d) = %v, want ESRCH", neverPID, err)
	}
}

// A process that exits after it was pinned fails Verify and every read
// through its directory with ESRCH, whether or not its pid was reused
// meanwhile: the pin holds the process, not the number.
func TestPinVanished(t *testing.T) {
	r := openProc(t)
	cmd := exec.Command("sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p, err := r.Pin(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Verify(); err != nil {
		t.Fatalf("verify while alive: %v", err)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait() // reaped: the pid is free for reuse
	if err := p.Verify(); !errors.Is(err, unix.ESRCH) {
		t.Errorf("verify after exit: %v, want ESRCH", err)
	}
	if _, err := procfs.ReadFile(p.Dir, "status", nil, 4096); !errors.Is(procfs.Gone(err), unix.ESRCH) {
		t.Errorf("read through the dead process's directory: %v, want ESRCH", err)
	}
}

// A thread id is not a process: Pin refuses it naming the process,
// PinTask pins the thread and PinProcessOf its process.
func TestPinThread(t *testing.T) {
	r := openProc(t)
	pid, tid := startThreaded(t)
	_, err := r.Pin(tid)
	var te *procfs.ThreadError
	if !errors.As(err, &te) || te.TID != tid || te.TGID != pid || !errors.Is(err, unix.ESRCH) {
		t.Fatalf("Pin(thread %d of %d) = %v, want a ThreadError", tid, pid, err)
	}
	if want := "pid " + strconv.Itoa(tid) + " is a thread of process " + strconv.Itoa(pid) + ", not a process"; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
	if got, err := r.TGID(tid); err != nil || got != pid {
		t.Errorf("TGID(%d) = %d, %v; want %d", tid, got, err, pid)
	}

	p, err := r.PinTask(tid)
	if err != nil {
		t.Fatal(err)
	}
	if p.PID != tid || p.TGID != pid || statusPid(t, p) != tid || p.Verify() != nil {
		t.Errorf("PinTask(%d) = %+v: want the thread, pinned by its process", tid, p)
	}
	p.Close()

	p, err = r.PinProcessOf(tid)
	if err != nil {
		t.Fatal(err)
	}
	if p.PID != pid || p.TGID != pid || statusPid(t, p) != pid {
		t.Errorf("PinProcessOf(%d) = %+v: want its process %d", tid, p, pid)
	}
	p.Close()

	// A leader is its own process.
	if p, err = r.PinProcessOf(pid); err != nil || p.PID != pid {
		t.Errorf("PinProcessOf(leader %d) = %+v, %v", pid, p, err)
	}
	p.Close()
	// A thread of another process is not found under this one.
	if _, err := r.PinThread(tid, os.Getpid()); !errors.Is(err, unix.ESRCH) {
		t.Errorf("PinThread(%d, this process) = %v, want ESRCH", tid, err)
	}
}

// A directory that is not this namespace's procfs opens, lists and reads,
// but does not pin.
func TestRootFixture(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"12", "7", "self", "abc"} {
		if err := os.MkdirAll(dir+"/"+d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r, err := procfs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Own() {
		t.Fatal("a temporary directory taken for this namespace's procfs")
	}
	pids, err := r.ListPIDs()
	if err != nil || len(pids) != 2 || pids[0] != 7 || pids[1] != 12 {
		t.Errorf("ListPIDs = %v, %v; want [7 12]", pids, err)
	}
	if _, err := r.Pin(7); err == nil || errors.Is(err, unix.ESRCH) || !strings.Contains(err.Error(), "cannot be pinned") {
		t.Errorf("Pin in a fixture = %v, want a refusal to pin", err)
	}
	fd, err := r.OpenDir("12")
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	if _, err := r.OpenDir("13"); !errors.Is(err, unix.ESRCH) {
		t.Errorf("OpenDir(13) = %v, want ESRCH", err)
	}
}

func TestListPIDsAndThreads(t *testing.T) {
	r := openProc(t)
	pids, err := r.ListPIDs()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range pids {
		found = found || p == os.Getpid()
	}
	if !found {
		t.Errorf("this process is not among %d listed", len(pids))
	}
	pid, tid := startThreaded(t)
	threads := r.ListThreads(pid)
	has := false
	for _, x := range threads {
		has = has || x == tid
		if x == pid {
			t.Error("the leader is listed among its threads")
		}
	}
	if !has {
		t.Errorf("threads of %d: %v, want %d among them", pid, threads, tid)
	}
}
