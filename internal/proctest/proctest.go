// Package proctest holds what tests that need real processes share: the
// test binary's helper role (a process with a second thread, optionally
// non-dumpable, optionally run as another user), pid namespaces of a
// test's own, nested if asked ([StartPIDNS]), and a pid no task can
// have.
package proctest

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// NeverPID is a pid no task can have: pids are below pid_max, which is at
// most PID_MAX_LIMIT, 4194304 on 64-bit kernels (include/linux/threads.h).
// A test that needs a missing process uses it: the pid of a process that
// exited and was reaped may be taken again at any moment, by another
// process or by a thread.
const NeverPID = 1 << 22

const (
	roleEnv        = "PROCGATE_PROCTEST_ROLE"
	nondumpableEnv = "PROCGATE_PROCTEST_NONDUMPABLE"
)

// RunRoleIfRequested runs the helper role and exits when the test binary
// was started as a helper by [Start] or as the init of a pid namespace
// by [StartPIDNS]; otherwise it returns at once. Call it first in
// TestMain.
func RunRoleIfRequested() {
	switch os.Getenv(roleEnv) {
	case "thread":
	case "pidns":
		os.Exit(runPIDNS())
	default:
		return
	}
	if os.Getenv(nondumpableEnv) != "" {
		if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
			fmt.Fprintln(os.Stderr, "helper: PR_SET_DUMPABLE:", err)
			os.Exit(2)
		}
	}
	fmt.Printf("ready %d\n", lockedThread(nil))
	_, _ = io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// LockedThread returns the id of a thread of this process other than the
// leader, which a goroutine locked to it keeps until the test ends.
func LockedThread(t testing.TB) int {
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	return lockedThread(stop)
}

// ExitedThread returns the id of a thread of this process that has
// exited: an id no task holds (until the kernel hands it out again).
func ExitedThread(t testing.TB) int {
	t.Helper()
	stop := make(chan struct{})
	tid := lockedThread(stop)
	close(stop) // its goroutine ends locked, and its thread with it
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, err := os.Stat("/proc/self/task/" + strconv.Itoa(tid)); err != nil {
			return tid
		}
		if time.Now().After(deadline) {
			t.Fatalf("thread %d did not exit", tid)
		}
	}
}

// lockedThread locks goroutines to threads until one is not the leader
// (one locked while it runs on the leader keeps the leader, so the next
// cannot get it) and returns that thread's id. The goroutines end, and
// their threads with them, when stop closes (never for a nil stop).
func lockedThread(stop <-chan struct{}) int {
	tids := make(chan int)
	lock := func() {
		runtime.LockOSThread()
		tids <- unix.Gettid()
		<-stop
	}
	for {
		go lock()
		if tid := <-tids; tid != os.Getpid() {
			return tid
		}
	}
}

// Options are what a helper is.
type Options struct {
	// NonDumpable makes the helper non-dumpable (prctl PR_SET_DUMPABLE 0,
	// as a setuid program is).
	NonDumpable bool
	// UID, when not 0, runs the helper as that uid and gid (the test must
	// be root).
	UID uint32
}

// Start starts the test binary as a helper (its TestMain must call
// [RunRoleIfRequested]): a process with a second thread. It returns the
// process's pid and the thread's id; the helper ends with the test.
func Start(t testing.TB, o Options) (pid, tid int) {
	t.Helper()
	bin := os.Args[0]
	if o.UID != 0 {
		bin = publicBinary(t)
	}
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), roleEnv+"=thread")
	if o.NonDumpable {
		cmd.Env = append(cmd.Env, nondumpableEnv+"=1")
	}
	if o.UID != 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: o.UID, Gid: o.UID}}
	}
	_, out := StartRole(t, cmd, true)
	line, err := out.ReadString('\n')
	if _, serr := fmt.Sscanf(strings.TrimSpace(line), "ready %d", &tid); err != nil || serr != nil || tid == cmd.Process.Pid {
		t.Fatalf("helper said %q: %v %v", line, err, serr)
	}
	return cmd.Process.Pid, tid
}

// StartRole starts cmd, a helper role of the test binary, and returns
// its standard input and output. When the test ends its input is closed
// (a helper waits for that to exit), then, with kill, it is killed, and
// it is waited for.
func StartRole(t testing.TB, cmd *exec.Cmd, kill bool) (io.WriteCloser, *bufio.Reader) {
	t.Helper()
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close()
		if kill {
			_ = cmd.Process.Kill()
		}
		_ = cmd.Wait()
	})
	return in, bufio.NewReader(out)
}

var (
	publicOnce sync.Once
	publicDir  string
	publicPath string
	publicErr  error
)

// publicBinary returns a copy of the test binary that every user may run
// (the build directory is its builder's own).
func publicBinary(t testing.TB) string {
	t.Helper()
	publicOnce.Do(func() {
		if publicDir, publicErr = os.MkdirTemp("", "procgate-proctest-"); publicErr != nil {
			return
		}
		if publicErr = os.Chmod(publicDir, 0o755); publicErr != nil {
			return
		}
		src, err := os.ReadFile(os.Args[0])
		if err != nil {
			publicErr = err
			return
		}
		publicPath = filepath.Join(publicDir, filepath.Base(os.Args[0]))
		publicErr = os.WriteFile(publicPath, src, 0o755)
	})
	if publicErr != nil {
		t.Fatal(publicErr)
	}
	return publicPath
}

// Cleanup removes what Start left behind (the public copy of the test
// binary); call it in TestMain after the tests ran.
func Cleanup() {
	if publicDir != "" {
		os.RemoveAll(publicDir)
	}
}

// WaitComm waits until process pid runs a program whose command name is
// want (after an exec chain such as setpriv or unshare), reading its
// comm up to tries times, 2 ms apart.
func WaitComm(pid int, want string, tries int) error {
	for range tries {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
		if err == nil && strings.TrimSpace(string(b)) == want {
			return nil
		}
		time.Sleep(2 * time.Millisecond)
	}
	return fmt.Errorf("pid %d never became %q", pid, want)
}
