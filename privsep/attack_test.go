package privsep_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/internal/testenv"
	"github.com/procgate/procgate/privsep"
)

// The compromised-process roles replay a confined process's privilege
// drop exactly (the functions the reader and the front call), then try
// what an attacker in control of that process would, and print each
// outcome: "ok" or the errno's name.

// result names the outcome of an attempt.
func result(err error) string {
	if err == nil {
		return "ok"
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return unix.ErrnoName(e)
	}
	return err.Error()
}

func rawErr(_ uintptr, _ uintptr, e syscall.Errno) error {
	if e != 0 {
		return e
	}
	return nil
}

// compromisedReaderRole confines itself as the reader does, then
// attacks the root process PROCGATE_TEST_TARGET.
func compromisedReaderRole() int {
	target, _ := strconv.Atoi(os.Getenv("PROCGATE_TEST_TARGET"))
	pr, pw, err := os.Pipe() // a descriptor the reader was not given
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer pr.Close()
	audit := os.NewFile(3, "audit") // opened by the parent, as the front opens the reader's

	if err := privsep.ConfineMounts(); err != nil {
		fmt.Println(err)
		return 1
	}
	vm := os.Getenv("PROCGATE_TEST_VMREADV") == "1"
	// Standard output too: the role reports through it.
	if err := privsep.ConfineReader(privsep.Creds{UID: privsep.ReaderIDs, GID: privsep.ReaderIDs}, []int{1, 2, int(audit.Fd())}, vm); err != nil {
		fmt.Println(err)
		return 1
	}
	out := map[string]string{}
	var buf [8]byte
	local := []unix.Iovec{{Base: &buf[0], Len: 8}}
	remote := []unix.RemoteIovec{{Base: 0x400000, Len: 8}}
	out["ptrace_seize"] = result(rawErr(unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SEIZE, uintptr(target), 0, 0, 0, 0)))
	out["ptrace_attach"] = result(rawErr(unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_ATTACH, uintptr(target), 0, 0, 0, 0)))
	_, err = unix.ProcessVMWritev(target, local, remote, 0)
	out["process_vm_writev"] = result(err)
	_, err = unix.ProcessVMReadv(target, local, remote, 0)
	if errors.Is(err, unix.EFAULT) || errors.Is(err, unix.EIO) {
		err = nil // allowed: the address is simply not mapped
	}
	out["process_vm_readv"] = result(err)
	pidfd, err := unix.PidfdOpen(target, 0)
	out["pidfd_open"] = result(err)
	if err == nil {
		_, err = unix.PidfdGetfd(pidfd, 0, 0)
		out["pidfd_getfd"] = result(err)
		// Signal 0 to another uid's process: the kernel's EPERM, which a
		// pin's liveness check takes as alive; to itself, allowed.
		out["pidfd_send_signal 0"] = result(unix.PidfdSendSignal(pidfd, 0, nil, 0))
		if self, err := unix.PidfdOpen(os.Getpid(), 0); err == nil {
			out["pidfd_send_signal 0 to itself"] = result(unix.PidfdSendSignal(self, 0, nil, 0))
		}
		out["pidfd_send_signal SIGKILL"] = result(unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0))
	}
	out["kill"] = result(unix.Kill(target, unix.SIGKILL))
	out["tgkill"] = result(unix.Tgkill(target, target, unix.SIGKILL))
	out["kcmp"] = result(rawErr(unix.Syscall6(unix.SYS_KCMP, uintptr(os.Getpid()), uintptr(target), 0, 0, 0, 0)))
	var head, size uintptr
	out["get_robust_list"] = result(rawErr(unix.Syscall(unix.SYS_GET_ROBUST_LIST, uintptr(target), uintptr(unsafe.Pointer(&head)), uintptr(unsafe.Pointer(&size)))))
	f, err := os.OpenFile("/etc/passwd", os.O_WRONLY, 0)
	if err == nil {
		f.Close()
	}
	out["open /etc/passwd for writing"] = result(err)
	f, err = os.OpenFile(filepath.Join(os.Getenv("PROCGATE_TEST_DIR"), "new"), os.O_WRONLY|os.O_CREATE, 0o644)
	if err == nil {
		f.Close()
	}
	out["create a file"] = result(err)
	out["unlink"] = result(unix.Unlink(os.Getenv("PROCGATE_TEST_AUDIT")))
	out["mkdir"] = result(unix.Mkdir(filepath.Join(os.Getenv("PROCGATE_TEST_DIR"), "d"), 0o755))
	_, err = pw.Write([]byte("x"))
	out["write to a descriptor not given"] = result(err)
	out["execve"] = result(unix.Exec("/bin/true", []string{"true"}, nil))
	out["setuid 0"] = result(rawErr(unix.RawSyscall(unix.SYS_SETUID, 0, 0, 0)))
	// ioctl: namespace queries only (a pipe's FIONREAD stands for the rest).
	_, err = unix.IoctlGetInt(int(pr.Fd()), unix.TIOCINQ) // FIONREAD
	out["ioctl FIONREAD"] = result(err)
	if ns, err := os.Open("/proc/self/ns/pid"); err == nil {
		out["ioctl NS_GET_PID_IN_PIDNS"] = result(rawErr(unix.Syscall(unix.SYS_IOCTL, ns.Fd(), unix.NS_GET_PID_IN_PIDNS, uintptr(os.Getpid()))))
		ns.Close()
	}
	if ns, err := os.Open("/proc/self/ns/user"); err == nil {
		_, err = unix.IoctlGetUint32(int(ns.Fd()), unix.NS_GET_OWNER_UID)
		out["ioctl NS_GET_OWNER_UID"] = result(err)
		ns.Close()
	}
	out["unshare"] = result(unix.Unshare(unix.CLONE_NEWUSER))
	_, err = audit.Write([]byte("a record\n"))
	out["write the audit log"] = result(err)
	_, err = os.ReadFile("/proc/" + strconv.Itoa(target) + "/environ")
	out["read environ"] = result(err)
	_, err = os.ReadFile("/etc/shadow")
	out["read /etc/shadow"] = result(err)
	json.NewEncoder(os.Stdout).Encode(out)
	return 0
}

// compromisedFrontRole confines itself as the front does, then tries to
// reach root's socket PROCGATE_TEST_SOCKET (0600), files, and the root
// process PROCGATE_TEST_TARGET.
func compromisedFrontRole() int {
	target, _ := strconv.Atoi(os.Getenv("PROCGATE_TEST_TARGET"))
	if _, err := privsep.ConfineFront(privsep.Creds{UID: privsep.FrontIDs, GID: privsep.FrontIDs}, true); err != nil {
		fmt.Println(err)
		return 1
	}
	out := map[string]string{}
	c, err := net.Dial("unix", os.Getenv("PROCGATE_TEST_SOCKET"))
	if err == nil {
		c.Close()
	}
	out["connect to root's socket"] = result(err)
	_, err = os.ReadFile("/etc/hostname")
	out["read a file"] = result(err)
	out["kill"] = result(unix.Kill(target, unix.SIGKILL))
	out["ptrace_seize"] = result(rawErr(unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SEIZE, uintptr(target), 0, 0, 0, 0)))
	out["setuid 0"] = result(rawErr(unix.RawSyscall(unix.SYS_SETUID, 0, 0, 0)))
	json.NewEncoder(os.Stdout).Encode(out)
	return 0
}

// runRole runs this binary in role (in a mount namespace of its own, as
// the reader is started) with env and the extra descriptors files (from
// 3 on), and returns what it printed.
func runRole(t *testing.T, role string, files []*os.File, env ...string) map[string]string {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.ExtraFiles = files
	cmd.Env = append(append(os.Environ(), envRole+"="+role), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", role, err, b)
	}
	out := map[string]string{}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s printed %q", role, b)
	}
	return out
}

func rootTarget(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	cmd.Env = []string{"SECRET=hunter2"}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}

func checkOutcomes(t *testing.T, who string, got, want map[string]string) {
	t.Helper()
	for k, w := range want {
		if g := got[k]; g != w {
			t.Errorf("%s: %s: %s, want %s", who, k, g, w)
		}
	}
}

// TestCompromisedReader: a reader taken over by an attacker, replayed
// from its exact privilege drop, cannot attach to, write into, take the
// descriptors of, or signal a root process, nor write, create or remove
// a file, write to a descriptor it was not given, exec or regain root;
// it can still do its job: read other processes' /proc files, pin them,
// write its audit log — and read memory only when the policy has an
// attach rule.
func TestCompromisedReader(t *testing.T) {
	testenv.RequireRoot(t, "replays the reader's privilege drop from root")
	target := rootTarget(t)
	dir := t.TempDir()
	env := []string{"PROCGATE_TEST_TARGET=" + strconv.Itoa(target), "PROCGATE_TEST_DIR=" + dir, "PROCGATE_TEST_AUDIT=" + filepath.Join(dir, "audit.log")}
	refused := map[string]string{
		"ptrace_seize": "EPERM", "ptrace_attach": "EPERM", "process_vm_writev": "EPERM",
		"pidfd_getfd": "EPERM", "pidfd_send_signal SIGKILL": "EPERM", "kill": "EPERM", "tgkill": "EPERM",
		"kcmp": "EPERM", "get_robust_list": "EPERM",
		"open /etc/passwd for writing": "EPERM", "create a file": "EPERM", "unlink": "EPERM", "mkdir": "EPERM",
		"write to a descriptor not given": "EPERM", "execve": "EPERM", "setuid 0": "EPERM", "unshare": "EPERM",
		"ioctl FIONREAD": "EPERM",
	}
	allowed := map[string]string{
		"pidfd_open": "ok", "pidfd_send_signal 0": "EPERM", "pidfd_send_signal 0 to itself": "ok", "write the audit log": "ok",
		"read environ": "ok", "read /etc/shadow": "ok", // CAP_DAC_READ_SEARCH: reading is its job
		"ioctl NS_GET_PID_IN_PIDNS": "ok", // translating pids for callers in containers
		"ioctl NS_GET_OWNER_UID":    "ok", // the live model's user namespaces
	}
	audit, err := os.OpenFile(filepath.Join(dir, "audit.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer audit.Close()
	files := []*os.File{audit}
	got := runRole(t, "compromised-reader", files, env...)
	checkOutcomes(t, "reader", got, refused)
	checkOutcomes(t, "reader", got, allowed)
	checkOutcomes(t, "reader", got, map[string]string{"process_vm_readv": "EPERM"})
	got = runRole(t, "compromised-reader", files, append(env, "PROCGATE_TEST_VMREADV=1")...)
	checkOutcomes(t, "reader with an attach rule", got, map[string]string{"process_vm_readv": "ok", "process_vm_writev": "EPERM", "ptrace_seize": "EPERM"})
	if b, _ := os.ReadFile(filepath.Join(dir, "audit.log")); string(b) != "a record\na record\n" {
		t.Errorf("audit log %q", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "new")); err == nil {
		t.Error("the confined reader created a file")
	}
	if err := unix.Kill(target, 0); err != nil {
		t.Errorf("the target was signalled: %v", err)
	}
}

// TestCompromisedFront: a front taken over by an attacker, replayed from
// its exact privilege drop, is not root: it cannot connect to a socket
// only root may use (Landlock below ABI 9 does not forbid it, the uid
// does), open files, signal or trace a root process, or regain root.
func TestCompromisedFront(t *testing.T) {
	testenv.RequireRoot(t, "replays the front's privilege drop from root")
	target := rootTarget(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	sock := filepath.Join(dir, "root.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	os.Chmod(sock, 0o600)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	got := runRole(t, "compromised-front", nil, "PROCGATE_TEST_TARGET="+strconv.Itoa(target), "PROCGATE_TEST_SOCKET="+sock)
	checkOutcomes(t, "front", got, map[string]string{
		"connect to root's socket": "EACCES", "read a file": "EACCES", "kill": "EPERM", "ptrace_seize": "EPERM", "setuid 0": "EPERM",
	})
}
