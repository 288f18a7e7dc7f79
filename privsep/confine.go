package privsep

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/landlock-lsm/go-landlock/landlock"
	llsys "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"
	"kernel.org/pub/linux/libs/security/libcap/psx"
)

// Capabilities the reader (or the in-process daemon) keeps after
// binding: CAP_SYS_PTRACE (the ptrace checks of /proc files,
// process_vm_readv) and CAP_DAC_READ_SEARCH (0400 files such as environ
// and io of other users).
var keptCaps = []uintptr{unix.CAP_SYS_PTRACE, unix.CAP_DAC_READ_SEARCH}

// DropPrivileges keeps only CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH
// (effective and permitted; the bounding set, inheritable and ambient sets
// cleared of everything else) and sets no_new_privs, on every thread of
// the process (psx: with or without cgo). The privilege-separated reader,
// and the in-process daemon, run with it.
func DropPrivileges() error { return dropCaps(keptCaps) }

// DropAllPrivileges clears every capability set (effective, permitted,
// inheritable, ambient and bounding) and sets no_new_privs, on every
// thread: the privilege-separated front runs with it.
func DropAllPrivileges() error { return dropCaps(nil) }

func dropCaps(kept []uintptr) error {
	keep := map[uintptr]bool{}
	for _, c := range kept {
		keep[c] = true
	}
	last := uintptr(unix.CAP_LAST_CAP)
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			last = uintptr(n)
		}
	}
	// Every thread: capabilities and no_new_privs are per thread
	// (struct cred), and the Go runtime runs goroutines on any of them.
	// psx reaches the threads of a cgo binary too (through its
	// pthread_create wrapper), where syscall.AllThreadsSyscall cannot.
	// Six arguments, the unused ones zero: prctl refuses garbage in
	// arg3..arg5 for PR_SET_NO_NEW_PRIVS (kernel/sys.c), and psx's C
	// three-argument call leaves those registers undefined.
	all := func(trap, a1, a2, a3 uintptr) error {
		if _, _, e := psx.Syscall6(trap, a1, a2, a3, 0, 0, 0); e != 0 {
			return e
		}
		return nil
	}
	for c := uintptr(0); c <= last; c++ {
		if keep[c] {
			continue
		}
		if err := all(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, c, 0); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("privsep: drop capability %d from the bounding set: %w", c, err)
		}
	}
	if _, _, e := psx.Syscall6(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0, 0); e != 0 && e != unix.EINVAL {
		return fmt.Errorf("privsep: clear ambient capabilities: %w", e)
	}
	if err := all(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0); err != nil {
		return fmt.Errorf("privsep: set no_new_privs: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	for _, c := range kept {
		data[c/32].Effective |= 1 << (c % 32)
		data[c/32].Permitted |= 1 << (c % 32)
	}
	if err := all(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); err != nil {
		return fmt.Errorf("privsep: capset: %w", err)
	}
	return nil
}

// LandlockABI returns the kernel's Landlock ABI version, 0 when Landlock
// is not available (not built, or not enabled in the lsm= list).
func LandlockABI() int {
	v, err := llsys.LandlockGetABIVersion()
	if err != nil || v < 1 {
		return 0
	}
	return v
}

// ConfineFront confines the privilege-separated front once its
// listeners are bound and the reader is started: it drops every
// capability and sets no_new_privs (DropAllPrivileges), then, with
// useLandlock, enforces a Landlock domain with the best ABI the kernel
// offers (go-landlock's V11 in best-effort mode) and no rule at all:
// no file can be opened, created, executed or listed (ABI 1-3, 5), no
// TCP port bound or connected (ABI 4; listeners bound before stay
// usable), no pathname Unix socket connected (ABI 9), no UDP port used
// (ABI 10), no abstract Unix socket reached and no signal sent outside
// the domain (ABI 6). The one exception is removable: a directory in
// which files may be removed (the socket's, so that it can be unlinked
// at shutdown), "" for none.
//
// The front only accepts connections, reads their credentials, parses
// HTTP and talks to the reader over socket pairs it creates: none of
// that needs the filesystem. Landlock also scopes ptrace, which is why
// the reader, which reads other processes' ptrace-guarded files, runs
// without a domain.
//
// It returns the Landlock ABI enforced, 0 when the kernel has none (the
// caller must warn: the front then runs without capabilities but
// unconfined).
func ConfineFront(useLandlock bool, removable string) (int, error) {
	if err := DropAllPrivileges(); err != nil {
		return 0, err
	}
	if !useLandlock {
		return 0, nil
	}
	abi := LandlockABI()
	if abi == 0 {
		return 0, nil
	}
	var rules []landlock.Rule
	if removable != "" {
		rules = append(rules, landlock.PathAccess(landlock.AccessFSSet(llsys.AccessFSRemoveFile), removable).IgnoreIfMissing())
	}
	if err := landlock.V11.BestEffort().Restrict(rules...); err != nil {
		return abi, fmt.Errorf("privsep: landlock: %w", err)
	}
	return abi, nil
}

// envSelfTest names a file the front tries to open once confined,
// logging the outcome: a test hook (docs/api.md) that shows the
// confinement from outside without giving callers any new endpoint.
const envSelfTest = "PROCGATE_FRONT_SELFTEST_OPEN"

// SelfTestConfinement, when PROCGATE_FRONT_SELFTEST_OPEN names a file,
// tries to open it and to connect to a TCP port on the loopback
// interface, and logs both outcomes (never any content).
func SelfTestConfinement(log *slog.Logger) {
	path := os.Getenv(envSelfTest)
	if path == "" {
		return
	}
	os.Unsetenv(envSelfTest)
	openErr := "none (opened)"
	if f, err := os.Open(path); err != nil {
		openErr = err.Error()
	} else {
		f.Close()
	}
	dialErr := "none (connected)"
	if c, err := (&net.Dialer{Timeout: time.Second}).Dial("tcp4", "127.0.0.1:9"); err != nil {
		dialErr = err.Error()
	} else {
		c.Close()
	}
	log.Info("front self-test", "open", openErr, "tcp_connect", dialErr)
}

// ConfineMounts makes every mount of this process's mount namespace
// read-only except writable, a directory that stays writable ("" for
// none: the audit log's directory, so that a rotated log can be
// reopened). It is for the reader, which [StartReader] starts in a mount
// namespace of its own, so nothing outside the reader changes; it
// refuses to run in the mount namespace of its parent. It needs
// CAP_SYS_ADMIN: call it before [DropPrivileges].
//
// It is the reader's stand-in for Landlock, which the reader cannot use:
// a Landlock domain limits ptrace_may_access to processes in the same or
// a nested domain (security/landlock/task.c, hook_ptrace_access_check),
// so a Landlocked reader could no longer read other processes' /proc
// entries. Read-only mounts keep a reader that keeps uid 0 from writing
// root-owned files; CAP_DAC_READ_SEARCH still lets it read any file.
func ConfineMounts(writable string) error {
	self, err1 := os.Stat("/proc/self/ns/mnt")
	parent, err2 := os.Stat("/proc/" + strconv.Itoa(os.Getppid()) + "/ns/mnt")
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("privsep: confine mounts: %w", err)
	}
	if os.SameFile(self, parent) {
		return errors.New("privsep: confine mounts: the reader shares its parent's mount namespace")
	}
	if writable != "" {
		if writable == "/" {
			return errors.New("privsep: confine mounts: the audit log's directory is /; it cannot stay writable alone")
		}
		// Its own mount, so that it can stay writable under a read-only
		// parent.
		if err := unix.Mount(writable, writable, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("privsep: confine mounts: bind %s: %w", writable, err)
		}
	}
	if err := unix.MountSetattr(unix.AT_FDCWD, "/", unix.AT_RECURSIVE, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}); err != nil {
		return fmt.Errorf("privsep: confine mounts: read-only /: %w", err)
	}
	if writable != "" {
		if err := unix.MountSetattr(unix.AT_FDCWD, writable, 0, &unix.MountAttr{Attr_clr: unix.MOUNT_ATTR_RDONLY}); err != nil {
			return fmt.Errorf("privsep: confine mounts: writable %s: %w", writable, err)
		}
	}
	return nil
}
