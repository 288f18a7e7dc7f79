package oracle

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
	"kernel.org/pub/linux/libs/security/libcap/psx"
)

// prSetPtracerAny is PR_SET_PTRACER_ANY ((unsigned long)-1).
const prSetPtracerAny = ^uintptr(0)

var fullCaps = sync.OnceValue(func() uint64 {
	last := 1<<(unix.CAP_LAST_CAP+1) - 1
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n >= 0 && n < 63 {
			last = 1<<(uint(n)+1) - 1
		}
	}
	// A root child's permitted set after exec is the bounding set, which
	// a container may have trimmed.
	b, err = os.ReadFile("/proc/self/status")
	if err != nil {
		return uint64(last)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "CapBnd:"); ok {
			if m, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64); err == nil {
				return m & uint64(last)
			}
		}
	}
	return uint64(last)
})

// FullCaps returns the capabilities a root process spawned by the oracle
// holds after exec: the kernel's capabilities (cap_last_cap) that are in the
// bounding set. It is the permitted set of [Root] in tests; on a machine
// whose bounding set is trimmed it lacks the removed capabilities.
func FullCaps() uint64 { return fullCaps() }

// allThreads runs a syscall on every thread of the process (per-thread
// credentials: capset, setfs*id, keepcaps, NNP, landlock_restrict_self).
// It goes through psx, which works in every build: with cgo it signals
// every pthread of the combined Go and C runtimes (libpsx), without cgo it
// is syscall.AllThreadsSyscall (P4).
func allThreads(name string, trap uintptr, a ...uintptr) (uintptr, error) {
	var args [6]uintptr
	copy(args[:], a)
	r, _, errno := psx.Syscall6(trap, args[0], args[1], args[2], args[3], args[4], args[5])
	if errno != 0 {
		return r, fmt.Errorf("%s: %w", name, errno)
	}
	return r, nil
}

func capget() (eff, prm uint64, err error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0, 0, fmt.Errorf("capget: %w", err)
	}
	eff = uint64(data[0].Effective) | uint64(data[1].Effective)<<32
	prm = uint64(data[0].Permitted) | uint64(data[1].Permitted)<<32
	return eff, prm, nil
}

// capsetAll sets the effective and permitted sets (inheritable empty) on
// every thread.
func capsetAll(eff, prm uint64) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := [2]unix.CapUserData{
		{Effective: uint32(eff), Permitted: uint32(prm)},
		{Effective: uint32(eff >> 32), Permitted: uint32(prm >> 32)},
	}
	_, err := allThreads(fmt.Sprintf("capset(eff=%#x, prm=%#x)", eff, prm), unix.SYS_CAPSET,
		uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])))
	return err
}

// landlockRulesetAttr is struct landlock_ruleset_attr cut to its first field:
// the kernel accepts any size that covers handled_access_fs.
type landlockRulesetAttr struct {
	HandledAccessFS uint64
}

// landlockRuleset creates a ruleset that handles only MAKE_CHAR, so that it
// cannot interfere with /proc probes: only its ptrace scoping
// (security/landlock/task.c:hook_ptrace_access_check) matters.
func landlockRuleset() (int, error) {
	attr := landlockRulesetAttr{HandledAccessFS: unix.LANDLOCK_ACCESS_FS_MAKE_CHAR}
	fd, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET,
		uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr), 0)
	if errno != 0 {
		return -1, fmt.Errorf("landlock_create_ruleset: %w", errno)
	}
	return int(fd), nil
}

// landlockRestrictThread puts only the calling OS thread in a new domain
// (the caller must hold runtime.LockOSThread and never unlock it).
func landlockRestrictThread() error {
	fd, err := landlockRuleset()
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if _, _, errno := unix.RawSyscall(unix.SYS_LANDLOCK_RESTRICT_SELF, uintptr(fd), 0, 0); errno != 0 {
		return fmt.Errorf("landlock_restrict_self: %w", errno)
	}
	return nil
}

// landlockRestrictAll restricts every thread. Each thread gets its own domain
// (P5), all nested under whatever domain the process already had.
func landlockRestrictAll() error {
	fd, err := landlockRuleset()
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	_, err = allThreads("landlock_restrict_self", unix.SYS_LANDLOCK_RESTRICT_SELF, uintptr(fd), 0)
	return err
}

// applyCreds turns the calling process (root, or root of a fresh user
// namespace with all of its capabilities) into c, in the order the kernel
// allows:
//  1. PR_SET_KEEPCAPS, so setresuid keeps the permitted set (only when
//     c keeps capabilities or step 4 or 5 needs them);
//  2. setgroups, setresgid, setresuid (all threads, via the syscall package);
//  3. capset effective = permitted, so the next steps are allowed (only
//     when one of them is needed);
//  4. setfsgid, setfsuid (only when c's fs ids are not its effective
//     ids, which setresgid and setresuid already made them);
//  5. optional Landlock, while CAP_SYS_ADMIN is effective (no NNP needed);
//  6. the final capset to the requested sets;
//
// Each step on every thread is a signal to each of the process's threads
// and a wait for all of them: the steps a credential set does not need
// are skipped, a third of a role's start-up in a run of the verifier.
//  7. PR_SET_DUMPABLE, after the last credential change (P1: commit_creds
//     resets dumpable to fs.suid_dumpable when euid/egid/fsuid/fsgid change);
//  8. optional PR_SET_NO_NEW_PRIVS;
//  9. optional PR_SET_PTRACER_ANY (Yama).
func applyCreds(c Creds, landlock bool) error {
	fsIDs := c.FSUID != c.EUID || c.FSGID != c.EGID
	if c.CapPrm != 0 || fsIDs || landlock {
		if _, err := allThreads("prctl(PR_SET_KEEPCAPS)", unix.SYS_PRCTL, unix.PR_SET_KEEPCAPS, 1); err != nil {
			return err
		}
	}
	if c.UserNS.kind() != NSOwned { // setgroups is denied there (P3)
		groups := make([]int, len(c.Groups))
		for i, g := range c.Groups {
			groups[i] = int(g)
		}
		if err := syscall.Setgroups(groups); err != nil {
			return fmt.Errorf("setgroups(%v): %w", c.Groups, err)
		}
	}
	if err := syscall.Setresgid(int(c.RGID), int(c.EGID), int(c.SGID)); err != nil {
		return fmt.Errorf("setresgid(%d, %d, %d): %w", c.RGID, c.EGID, c.SGID, err)
	}
	if err := syscall.Setresuid(int(c.RUID), int(c.EUID), int(c.SUID)); err != nil {
		return fmt.Errorf("setresuid(%d, %d, %d): %w", c.RUID, c.EUID, c.SUID, err)
	}
	// Not capget: AppArmor's capget hook masks the reported sets with the
	// profile's capability rules, while the credentials keep the full set.
	prm, err := permittedCaps()
	if err != nil {
		return err
	}
	if c.CapPrm&^prm != 0 {
		return fmt.Errorf("requested permitted caps %#x not held (have %#x)", c.CapPrm, prm)
	}
	if fsIDs || landlock {
		if err := capsetAll(prm, prm); err != nil {
			return err
		}
	}
	if fsIDs {
		// setfs[ug]id return the previous id, never an error: verify
		// compares the result with the request.
		if _, err := allThreads("setfsgid", unix.SYS_SETFSGID, uintptr(c.FSGID)); err != nil {
			return err
		}
		if _, err := allThreads("setfsuid", unix.SYS_SETFSUID, uintptr(c.FSUID)); err != nil {
			return err
		}
	}
	if landlock {
		if err := landlockRestrictAll(); err != nil {
			return err
		}
	}
	if err := capsetAll(c.CapEff, c.CapPrm); err != nil {
		return err
	}
	if _, _, errno := unix.RawSyscall(unix.SYS_PRCTL, unix.PR_SET_DUMPABLE, uintptr(c.Dumpable), 0); errno != 0 {
		return fmt.Errorf("prctl(PR_SET_DUMPABLE, %d): %w", c.Dumpable, errno)
	}
	if c.NoNewPrivs {
		if _, err := allThreads("prctl(PR_SET_NO_NEW_PRIVS)", unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1); err != nil {
			return err
		}
	}
	if c.PtracerAny {
		if _, _, errno := unix.RawSyscall6(unix.SYS_PRCTL, unix.PR_SET_PTRACER, prSetPtracerAny, 0, 0, 0, 0); errno != 0 {
			return fmt.Errorf("prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY) (is Yama active?): %w", errno)
		}
	}
	return nil
}
