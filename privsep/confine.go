package privsep

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/landlock-lsm/go-landlock/landlock"
	llsys "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"
)

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
// listeners are bound and the reader is started: it becomes to, drops
// every capability and sets no_new_privs (DropAllPrivileges), then, with
// useLandlock, enforces a Landlock domain with the best ABI the kernel
// offers (go-landlock's V11 in best-effort mode) and no rule at all:
// no file can be opened, created, executed or listed (ABI 1-3, 5), no
// TCP port bound or connected (ABI 4; listeners bound before stay
// usable), no pathname Unix socket connected (ABI 9), no UDP port used
// (ABI 10), no abstract Unix socket reached and no signal sent outside
// the domain (ABI 6). (So the front cannot remove its socket at
// shutdown; the next start replaces the stale socket.)
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
//
// readOnly lists directories the front must still read (the FUSE front's
// pass-through of /proc): the domain grants reading files and listing
// directories beneath them, nothing else.
func ConfineFront(to Creds, useLandlock bool, readOnly ...string) (int, error) {
	if err := DropAllPrivileges(to); err != nil {
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
	if len(readOnly) > 0 {
		rules = append(rules, landlock.RODirs(readOnly...))
	}
	if err := landlock.V11.BestEffort().Restrict(rules...); err != nil {
		return abi, fmt.Errorf("privsep: landlock: %w", err)
	}
	return abi, nil
}

// LandlockGaps lists what the front's Landlock domain cannot forbid on a
// kernel of Landlock ABI abi (0: no Landlock): the daemon warns of each.
func LandlockGaps(abi int) []string {
	var gaps []string
	for _, g := range []struct {
		abi  int
		what string
	}{
		{1, "opening, creating and executing files"},
		{4, "binding and connecting TCP ports"},
		{6, "reaching abstract Unix sockets and signalling processes outside the domain"},
		{9, "connecting to pathname Unix sockets (the front's uid and file modes still apply)"},
		{10, "using UDP ports"},
	} {
		if abi < g.abi {
			gaps = append(gaps, fmt.Sprintf("%s (Landlock ABI %d; this kernel has %d)", g.what, g.abi, abi))
		}
	}
	return gaps
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
// read-only. It is for the reader, which [StartReader] starts in a mount
// namespace of its own, so nothing outside the reader changes; it
// refuses to run in the mount namespace of its parent. It needs
// CAP_SYS_ADMIN and no file open for writing on those mounts: call it
// before [DropPrivileges], with the audit log opened by the parent.
//
// It is the reader's stand-in for Landlock, which the reader cannot use:
// a Landlock domain limits ptrace_may_access to processes in the same or
// a nested domain (security/landlock/task.c, hook_ptrace_access_check),
// so a Landlocked reader could no longer read other processes' /proc
// entries. Read-only mounts, the reader's own uid and its seccomp filter
// each keep it from writing files; CAP_DAC_READ_SEARCH still lets it
// read any file.
func ConfineMounts() error {
	self, err1 := os.Stat("/proc/self/ns/mnt")
	parent, err2 := os.Stat("/proc/" + strconv.Itoa(os.Getppid()) + "/ns/mnt")
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("privsep: confine mounts: %w", err)
	}
	if os.SameFile(self, parent) {
		return errors.New("privsep: confine mounts: the reader shares its parent's mount namespace")
	}
	if err := unix.MountSetattr(unix.AT_FDCWD, "/", unix.AT_RECURSIVE, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}); err != nil {
		return fmt.Errorf("privsep: confine mounts: read-only /: %w", err)
	}
	return nil
}
