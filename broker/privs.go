package broker

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"github.com/landlock-lsm/go-landlock/landlock"
	"golang.org/x/sys/unix"
)

// Capabilities the broker keeps after binding: CAP_SYS_PTRACE (the
// ptrace checks of /proc files, process_vm_readv) and CAP_DAC_READ_SEARCH
// (0400 files such as environ and io of other users).
var keptCaps = []uintptr{unix.CAP_SYS_PTRACE, unix.CAP_DAC_READ_SEARCH}

// DropPrivileges keeps only CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH
// (effective and permitted; the bounding set, inheritable and ambient sets
// cleared of everything else) and sets no_new_privs, on every thread of
// the process. It needs a build without cgo (AllThreadsSyscall).
func DropPrivileges() error {
	keep := map[uintptr]bool{}
	for _, c := range keptCaps {
		keep[c] = true
	}
	last := uintptr(unix.CAP_LAST_CAP)
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			last = uintptr(n)
		}
	}
	all := func(trap, a1, a2, a3 uintptr) error {
		if _, _, e := syscall.AllThreadsSyscall(trap, a1, a2, a3); e != 0 {
			return e
		}
		return nil
	}
	for c := uintptr(0); c <= last; c++ {
		if keep[c] {
			continue
		}
		if err := all(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, c, 0); err != nil && !errors.Is(err, unix.EINVAL) {
			if errors.Is(err, unix.ENOTSUP) {
				return errors.New("broker: dropping privileges needs a build without cgo (CGO_ENABLED=0)")
			}
			return fmt.Errorf("broker: drop capability %d from the bounding set: %w", c, err)
		}
	}
	if _, _, e := syscall.AllThreadsSyscall6(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0, 0); e != 0 && e != syscall.EINVAL {
		return fmt.Errorf("broker: clear ambient capabilities: %w", e)
	}
	if err := all(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0); err != nil {
		return fmt.Errorf("broker: set no_new_privs: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	for _, c := range keptCaps {
		data[c/32].Effective |= 1 << (c % 32)
		data[c/32].Permitted |= 1 << (c % 32)
	}
	if err := all(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); err != nil {
		return fmt.Errorf("broker: capset: %w", err)
	}
	return nil
}

// RestrictFilesystem confines the broker's own filesystem access with
// Landlock: read-only /proc and /sys, read-write for the given paths
// (the audit log's directory, the socket's directory), nothing else.
//
// Landlock also scopes ptrace: a Landlock-restricted process passes
// ptrace_may_access only for targets in its own domain or nested ones,
// and neither root nor CAP_SYS_PTRACE lifts that. A restricted broker
// therefore cannot read the ptrace-guarded items (io, exe, cwd, fd,
// environ, maps…) of any process outside its sandbox; only status, stat,
// statm, cmdline, limits and cgroup remain. The broker applies it only
// when asked (procgate serve --landlock), for deployments that serve
// those items alone.
func RestrictFilesystem(rw ...string) error {
	rules := []landlock.Rule{landlock.RODirs("/proc", "/sys", "/etc").IgnoreIfMissing()}
	for _, p := range rw {
		if p != "" {
			rules = append(rules, landlock.RWDirs(p).IgnoreIfMissing())
		}
	}
	if err := landlock.V5.BestEffort().RestrictPaths(rules...); err != nil {
		return fmt.Errorf("broker: landlock: %w", err)
	}
	return nil
}

// ActivationListener returns the listening socket passed by systemd
// socket activation (LISTEN_PID/LISTEN_FDS, fd 3), or nil when there is
// none.
func ActivationListener() (net.Listener, error) {
	if os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) {
		return nil, nil
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n < 1 {
		return nil, nil
	}
	os.Unsetenv("LISTEN_PID")
	os.Unsetenv("LISTEN_FDS")
	os.Unsetenv("LISTEN_FDNAMES")
	unix.CloseOnExec(3)
	f := os.NewFile(3, "systemd-socket")
	l, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("broker: socket activation: %w", err)
	}
	if _, ok := l.(*net.UnixListener); !ok {
		l.Close()
		return nil, errors.New("broker: socket activation: fd 3 is not a Unix socket")
	}
	return l, nil
}

// Listen creates the broker's socket at path: its directory (0755) if
// missing, a stale socket removed, the socket itself world-connectable
// (0666; the policy decides what each caller gets).
func Listen(path string) (net.Listener, error) {
	dir := path[:max(strings.LastIndexByte(path, '/'), 0)]
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("broker: socket directory: %w", err)
		}
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("broker: %s exists and is not a socket", path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("broker: another broker is listening on %s", path)
		}
		os.Remove(path)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("broker: listen: %w", err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		l.Close()
		return nil, fmt.Errorf("broker: chmod socket: %w", err)
	}
	return l, nil
}
