package privsep

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
	"kernel.org/pub/linux/libs/security/libcap/psx"
)

// Creds are the user and group ids a confined process of the daemon
// runs as: not root, and not an account anything else runs as, so that
// no other process may signal it, and it may write no root-owned file.
type Creds struct {
	UID, GID uint32
}

// The accounts the daemon's processes run as, and the ids taken when
// the account does not exist: an unprivileged id no account uses by
// default, from the top of the range below systemd's dynamic users
// (61184–65519).
const (
	FrontUser  = "procgate-front"
	ReaderUser = "procgate-reader"
	FrontIDs   = 61182
	ReaderIDs  = 61183
)

// maxUserName bounds a configured user name.
const maxUserName = 256

// LookupCreds resolves name — a user name, or a numeric uid[:gid] — to
// the credentials to run as. An empty name takes the account def when
// it exists, else uid and gid fallback. Root (uid 0) is refused: the
// point is to leave it.
func LookupCreds(name, def string, fallback uint32) (Creds, error) {
	if name == "" {
		if u, err := user.Lookup(def); err == nil {
			return credsOf(u)
		}
		return Creds{fallback, fallback}, nil
	}
	if len(name) > maxUserName {
		return Creds{}, fmt.Errorf("privsep: user name of %d bytes", len(name))
	}
	if us, gs, ok := strings.Cut(name, ":"); isNumber(us) && (!ok || isNumber(gs)) {
		uid, err := strconv.ParseUint(us, 10, 32)
		gid := uid
		if err == nil && ok {
			gid, err = strconv.ParseUint(gs, 10, 32)
		}
		if err != nil {
			return Creds{}, fmt.Errorf("privsep: user %q: %w", name, err)
		}
		return checkNotRoot(name, Creds{uint32(uid), uint32(gid)})
	}
	u, err := user.Lookup(name)
	if err != nil {
		return Creds{}, fmt.Errorf("privsep: user %q: %w", name, err)
	}
	return credsOf(u)
}

func credsOf(u *user.User) (Creds, error) {
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return Creds{}, fmt.Errorf("privsep: user %s: %w", u.Username, err)
	}
	return checkNotRoot(u.Username, Creds{uint32(uid), uint32(gid)})
}

func checkNotRoot(name string, c Creds) (Creds, error) {
	if c.UID == 0 || c.GID == 0 {
		return Creds{}, fmt.Errorf("privsep: user %q has uid or gid 0: the daemon's processes leave root", name)
	}
	return c, nil
}

func isNumber(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Capabilities the reader (or the in-process daemon) keeps: CAP_SYS_PTRACE
// (the ptrace checks of /proc files, process_vm_readv) and
// CAP_DAC_READ_SEARCH (0400 files such as environ and io of other users).
var keptCaps = []uintptr{unix.CAP_SYS_PTRACE, unix.CAP_DAC_READ_SEARCH}

// DropPrivileges keeps only CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH
// (effective and permitted; the bounding set, inheritable and ambient
// sets cleared of everything else), becomes to (no supplementary
// groups), makes the process non-dumpable and sets no_new_privs, on every
// thread of the process (psx: with or without cgo). The reader, and the
// in-process daemon, run with it.
func DropPrivileges(to Creds) error { return dropCaps(keptCaps, &to) }

// DropAllPrivileges clears every capability set (effective, permitted,
// inheritable, ambient and bounding), becomes to, makes the process
// non-dumpable and sets no_new_privs, on every thread: the
// privilege-separated front runs with it.
func DropAllPrivileges(to Creds) error { return dropCaps(nil, &to) }

// dropCaps drops every capability but kept and, when to is not nil,
// becomes to, keeping kept across the change of uid.
func dropCaps(kept []uintptr, to *Creds) error {
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
	// Every thread: credentials are per thread (struct cred), and the Go
	// runtime runs goroutines on any of them. psx reaches the threads of
	// a cgo binary too (through its pthread_create wrapper), where
	// syscall.AllThreadsSyscall cannot. Six arguments, the unused ones
	// zero: prctl refuses garbage in arg3..arg5 for PR_SET_NO_NEW_PRIVS
	// (kernel/sys.c), and psx's C three-argument call leaves those
	// registers undefined.
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
		if in, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, c, 0, 0, 0); err == nil && in == 0 {
			continue // not in the bounding set (a systemd unit's CapabilityBoundingSet)
		}
		if err := all(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, c, 0); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("privsep: drop capability %d from the bounding set: %w", c, err)
		}
	}
	if err := all(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("privsep: clear ambient capabilities: %w", err)
	}
	if to != nil {
		// Keep the permitted set across the change of uid
		// (kernel/capability.c, security/commoncap.c:cap_emulate_setxuid);
		// the effective set is emptied by it and restored below.
		if err := all(unix.SYS_PRCTL, unix.PR_SET_KEEPCAPS, 1, 0); err != nil {
			return fmt.Errorf("privsep: keep capabilities across setuid: %w", err)
		}
		if err := all(unix.SYS_SETGROUPS, 0, 0, 0); err != nil {
			return fmt.Errorf("privsep: drop supplementary groups: %w", err)
		}
		if err := all(unix.SYS_SETRESGID, uintptr(to.GID), uintptr(to.GID), uintptr(to.GID)); err != nil {
			return fmt.Errorf("privsep: setresgid %d: %w", to.GID, err)
		}
		if err := all(unix.SYS_SETRESUID, uintptr(to.UID), uintptr(to.UID), uintptr(to.UID)); err != nil {
			return fmt.Errorf("privsep: setresuid %d: %w", to.UID, err)
		}
		if err := all(unix.SYS_PRCTL, unix.PR_SET_KEEPCAPS, 0, 0); err != nil {
			return fmt.Errorf("privsep: clear keep-capabilities: %w", err)
		}
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
	// Nobody of the new uid may ptrace it or read its memory; changing
	// uid already made it so (fs/exec.c would_dump, kernel/cred.c
	// commit_creds), this says it for every path.
	if err := all(unix.SYS_PRCTL, unix.PR_SET_DUMPABLE, 0, 0); err != nil {
		return fmt.Errorf("privsep: set non-dumpable: %w", err)
	}
	if err := all(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0); err != nil {
		return fmt.Errorf("privsep: set no_new_privs: %w", err)
	}
	return nil
}
