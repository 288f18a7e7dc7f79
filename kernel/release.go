package kernel

import (
	"fmt"
	"strconv"
	"strings"
)

// Release is a kernel version, major.minor.patch. Suffixes such as
// "-amd64" are ignored.
type Release struct {
	Major, Minor, Patch int
}

// DefaultRelease is the newest release the model has been verified on.
var DefaultRelease = Release{6, 18, 44}

// ParseRelease parses "6.18.44", "6.1.0-56-amd64" or "6.18.44-fc-v657".
func ParseRelease(s string) (Release, error) {
	v := strings.TrimSpace(s)
	if i := strings.IndexAny(v, "-+ "); i >= 0 {
		v = v[:i]
	}
	parts := strings.Split(v, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return Release{}, fmt.Errorf("bad kernel release %q: want major.minor[.patch]", s)
	}
	var n [3]int
	for i, p := range parts {
		x, err := strconv.Atoi(p)
		if err != nil || x < 0 {
			return Release{}, fmt.Errorf("bad kernel release %q: %q is not a number", s, p)
		}
		n[i] = x
	}
	return Release{n[0], n[1], n[2]}, nil
}

// String returns "major.minor.patch".
func (r Release) String() string { return fmt.Sprintf("%d.%d.%d", r.Major, r.Minor, r.Patch) }

// AtLeast reports whether r is major.minor.patch or newer.
func (r Release) AtLeast(major, minor, patch int) bool {
	if r.Major != major {
		return r.Major > major
	}
	if r.Minor != minor {
		return r.Minor > minor
	}
	return r.Patch >= patch
}

// Features are the release-dependent rules of the model. Each field names
// the kernel change that introduced it.
type Features struct {
	// MMUserNS: the dumpable override is CAP_SYS_PTRACE in mm->user_ns and
	// only SUID_DUMP_USER passes (bfedb589252c, v4.10). Before it, any
	// non-zero dumpable value passed and an mm-less task counted as
	// non-dumpable.
	MMUserNS bool
	// UserDumpable: a task without an mm passes the dumpable step only if
	// its mm was SUID_DUMP_USER when it lost it, or the caller has
	// CAP_SYS_PTRACE in the initial namespace (31e62c2ebbfd, "ptrace:
	// slightly saner 'get_dumpable()' logic", CVE-2026-46333; 6.18.31 and
	// the 7.1 merge window). Before it, the step was skipped for mm-less
	// tasks (v4.10 until the fix).
	UserDumpable bool
	// PerfmonMMAccess: mm_access lets a perfmon_capable() caller (CAP_PERFMON
	// or CAP_SYS_ADMIN in the initial namespace) read any mm with a READ
	// mode ("mm,procfs: allow read-only remote mm access under
	// CAP_PERFMON", v6.15; observed on 6.18.44, absent on 6.1).
	PerfmonMMAccess bool
	// ProcMemESRCH: environ, auxv, mem, smaps_rollup and pagemap fail
	// with ESRCH at open for a task without an mm instead of opening an
	// empty file (65c66047259f, 2025, in 6.12.y and later; maps and smaps
	// still open empty — observed on 6.18.44).
	ProcMemESRCH bool
	// FdinfoCheck: fdinfo/ and fdinfo/N require READ_FSCREDS (7bc3fa0172a4,
	// v5.14; moved into .permission by 0a960ba49869, v6.10).
	FdinfoCheck bool
	// FdinfoPermission: the fdinfo check runs in the inode's .permission,
	// so stat-less operations such as inotify_add_watch are refused too
	// (0a960ba49869, v6.10 and stable backports).
	FdinfoPermission bool
	// PidfdGetfdESRCH: pidfd_getfd on a task whose files are gone (it is
	// exiting or a zombie) reports ESRCH instead of EBADF ("pidfd: getfd
	// should always report ESRCH if a task is exiting", v6.9).
	PidfdGetfdESRCH bool
}

// FeaturesFor returns the rules that apply to release r.
func FeaturesFor(r Release) Features {
	return Features{
		MMUserNS:         r.AtLeast(4, 10, 0),
		UserDumpable:     userDumpableFixed(r),
		PerfmonMMAccess:  r.AtLeast(6, 15, 0),
		ProcMemESRCH:     r.AtLeast(6, 12, 0),
		FdinfoCheck:      r.AtLeast(5, 14, 0),
		FdinfoPermission: r.AtLeast(6, 10, 0),
		PidfdGetfdESRCH:  r.AtLeast(6, 9, 0),
	}
}

// userDumpableFixed reports whether r carries the CVE-2026-46333 fix:
// 6.18.31 and later in the 6.18 series, and every release from 7.1 on.
// Other stable series are treated as unfixed; a scenario can state the
// feature explicitly when its kernel carries a backport.
func userDumpableFixed(r Release) bool {
	if r.Major == 6 && r.Minor == 18 {
		return r.Patch >= 31
	}
	return r.AtLeast(7, 1, 0)
}
