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
// the kernel change that introduced it. FeaturesFor derives them from an
// upstream release; FeaturesForPackage from a distribution's kernel
// package (its upstream release plus the known backports, [Backports]);
// a scenario can state them explicitly (kernel.features, keys
// [FeatureNames]).
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
	// the 7.1 merge window; Debian carries it as its own patch in 5.10,
	// 6.1 and 6.12, see [Backports]). Before it, the step was skipped for
	// mm-less tasks (v4.10 until the fix).
	UserDumpable bool
	// PerfmonMMAccess: mm_access lets a perfmon_capable() caller (CAP_PERFMON
	// or CAP_SYS_ADMIN in the initial namespace) read any mm with a READ
	// mode ("mm,procfs: allow read-only remote mm access under
	// CAP_PERFMON", v6.15; observed on 6.18.44, absent on Debian's 5.10,
	// 6.1 and 6.12).
	PerfmonMMAccess bool
	// ProcMemESRCH: environ, auxv, mem, smaps_rollup and pagemap fail
	// with ESRCH at open for a task without an mm instead of opening an
	// empty file ("proc: fix the issue of proc_mem_open returning NULL",
	// 65c66047259f, 2025; in 6.12.y from 6.12.59, and in later series;
	// maps and smaps still open empty — observed on 6.18.44 and Debian's
	// 6.12.118, absent on Debian's 6.1.192).
	ProcMemESRCH bool
	// FdinfoCheck: fdinfo/ and fdinfo/N require READ_FSCREDS and are
	// world-readable (0555, 0444) otherwise (7bc3fa0172a4 "procfs: allow
	// reading fdinfo with PTRACE_MODE_READ", v5.14, checks fdinfo/N;
	// 1927e498aee1 "procfs: prevent unprivileged processes accessing
	// fdinfo dir", v5.18 and 5.17.9, the directory: the model applies
	// both from v5.14; moved into .permission by 0a960ba49869, v6.10).
	// Before it the two are owner-only (0500, 0400: task_dump_owner
	// decides) and make no ptrace check (observed on Debian's 5.10.262).
	FdinfoCheck bool
	// FdinfoPermission: the fdinfo check runs in the inode's .permission,
	// so stat-less operations such as inotify_add_watch are refused too
	// (0a960ba49869, v6.10; in 6.1.y from 6.1.178). The model reads it
	// for fdinfo/N of a task without a file table: ENOENT after the
	// ptrace check with it, ahead of the (open-time) check without.
	FdinfoPermission bool
	// PidfdGetfdESRCH: pidfd_getfd on a task whose files are gone (it is
	// exiting or a zombie) reports ESRCH instead of EBADF, after the
	// ptrace check ("pidfd: getfd should always report ESRCH if a task is
	// exiting", v6.9; in stable 5.10.259, 6.1.176 and 6.12.94 through
	// "pidfd: refuse access to tasks that have started exiting harder" —
	// observed on Debian's 5.10.262 and 6.1.192).
	PidfdGetfdESRCH bool
	// NSLinkEmpty: readlink of /proc/PID/ns/NAME succeeds with an empty
	// link (0 bytes) when ptrace_may_access denies it, instead of failing
	// with EACCES: "proc: protect ptrace_may_access() with
	// exec_update_lock (part 1)" (stable 5.10.261, 6.1.178, 6.12.97)
	// stores down_read_killable's 0 in the result that held -EACCES;
	// "proc: Fix broken error paths for namespace links" (6.1.183,
	// 6.12.101) restores the error. Observed on Debian's 5.10.262 (no
	// fix in 5.10.y up to it). Other series: not known; state it in a
	// scenario.
	NSLinkEmpty bool
}

// FeatureNames are the scenario keys of the Features fields
// (kernel.features), in declaration order.
var FeatureNames = []string{
	"mm_user_ns", "user_dumpable", "perfmon_mm_access", "proc_mem_esrch",
	"fdinfo_check", "fdinfo_permission", "pidfd_getfd_esrch", "ns_link_empty",
}

// Field returns the field of f that the scenario key name (one of
// FeatureNames) selects, or nil.
func (f *Features) Field(name string) *bool {
	switch name {
	case "mm_user_ns":
		return &f.MMUserNS
	case "user_dumpable":
		return &f.UserDumpable
	case "perfmon_mm_access":
		return &f.PerfmonMMAccess
	case "proc_mem_esrch":
		return &f.ProcMemESRCH
	case "fdinfo_check":
		return &f.FdinfoCheck
	case "fdinfo_permission":
		return &f.FdinfoPermission
	case "pidfd_getfd_esrch":
		return &f.PidfdGetfdESRCH
	case "ns_link_empty":
		return &f.NSLinkEmpty
	}
	return nil
}

// FeaturesFor returns the rules that apply to upstream release r
// (stable releases included).
func FeaturesFor(r Release) Features {
	return Features{
		MMUserNS:         r.AtLeast(4, 10, 0),
		UserDumpable:     userDumpableFixed(r),
		PerfmonMMAccess:  r.AtLeast(6, 15, 0),
		ProcMemESRCH:     inSeries(r, 6, 12, 59, -1) || r.AtLeast(6, 13, 0),
		FdinfoCheck:      r.AtLeast(5, 14, 0),
		FdinfoPermission: inSeries(r, 6, 1, 178, -1) || r.AtLeast(6, 10, 0),
		PidfdGetfdESRCH:  inSeries(r, 5, 10, 259, -1) || inSeries(r, 6, 1, 176, -1) || r.AtLeast(6, 9, 0),
		NSLinkEmpty:      inSeries(r, 5, 10, 261, -1) || inSeries(r, 6, 1, 178, 183) || inSeries(r, 6, 12, 97, 101),
	}
}

// inSeries reports whether r is in the stable series major.minor with a
// patch level from since up to (not including) until; until -1 means no
// end.
func inSeries(r Release, major, minor, since, until int) bool {
	return r.Major == major && r.Minor == minor && r.Patch >= since && (until < 0 || r.Patch < until)
}

// userDumpableFixed reports whether r carries the CVE-2026-46333 fix:
// 6.18.31 and later in the 6.18 series, and every release from 7.1 on.
// Other stable series are treated as unfixed; a distribution kernel with
// a backport is in [Backports], and a scenario can state the feature
// explicitly.
func userDumpableFixed(r Release) bool {
	if r.Major == 6 && r.Minor == 18 {
		return r.Patch >= 31
	}
	return r.AtLeast(7, 1, 0)
}

// Backport is a release-dependent rule that a distribution's kernel
// packages carry although their upstream release does not: a patch of
// the distribution's own (a stable update that brings it is FeaturesFor's
// business).
type Backport struct {
	// Distribution is the distribution ("debian"); Series the upstream
	// series its packages follow (major.minor); Since the first package
	// version carrying the patch and Until the first without it again
	// ("": none).
	Distribution string
	Series       Release
	Since, Until string
	// Feature is the Features field the patch sets (a FeatureNames key)
	// and Value its value.
	Feature string
	Value   bool
	// Change names the patch; Evidence says where it was seen.
	Change, Evidence string
}

// Backports are the known distribution backports. Each entry was observed
// by procgate verify-vm on the package named in its evidence (see
// docs/kernels.md), besides the package's changelog.
var Backports = []Backport{
	{
		Distribution: "debian", Series: Release{5, 10, 0}, Since: "5.10.251-5", Feature: "user_dumpable", Value: true,
		Change:   "ptrace: slightly saner 'get_dumpable()' logic (31e62c2ebbfd, CVE-2026-46333)",
		Evidence: "bullseye linux 5.10.251-5 changelog (a Debian patch, not a stable update); observed on 5.10.262-1",
	},
	{
		Distribution: "debian", Series: Release{6, 1, 0}, Since: "6.1.172-1", Feature: "user_dumpable", Value: true,
		Change:   "ptrace: slightly saner 'get_dumpable()' logic (31e62c2ebbfd, CVE-2026-46333)",
		Evidence: "bookworm linux 6.1.172-1 changelog (a Debian patch); observed on 6.1.192-3",
	},
	{
		Distribution: "debian", Series: Release{6, 12, 0}, Since: "6.12.88-1", Feature: "user_dumpable", Value: true,
		Change:   "ptrace: slightly saner 'get_dumpable()' logic (31e62c2ebbfd, CVE-2026-46333)",
		Evidence: "trixie linux 6.12.88-1 changelog (a Debian patch; bookworm-backports' 6.12 packages are built from it); observed on 6.12.118-1 and 6.12.95-1~bpo12+1",
	},
}

// FeaturesForPackage returns the rules of a distribution's kernel package
// version ("6.1.192-3" for Debian): FeaturesFor its upstream release, with
// the Backports that apply to that version, which it returns too.
func FeaturesForPackage(distribution, version string) (Features, Release, []Backport, error) {
	r, err := ParseRelease(version)
	if err != nil {
		return Features{}, Release{}, nil, err
	}
	f := FeaturesFor(r)
	var applied []Backport
	for _, b := range Backports {
		if b.Distribution != strings.ToLower(distribution) || b.Series.Major != r.Major || b.Series.Minor != r.Minor {
			continue
		}
		if CompareDebianVersions(version, b.Since) < 0 || (b.Until != "" && CompareDebianVersions(version, b.Until) >= 0) {
			continue
		}
		p := f.Field(b.Feature)
		if p == nil {
			return Features{}, Release{}, nil, fmt.Errorf("backport %q sets unknown feature %q", b.Change, b.Feature)
		}
		*p = b.Value
		applied = append(applied, b)
	}
	return f, r, applied, nil
}

// CompareDebianVersions compares two Debian package versions
// ([epoch:]upstream[-revision]) as dpkg does: negative when a sorts
// before b, 0 when equal, positive after. "~" sorts before everything,
// even the end of the string ("6.12.95-1~bpo12+1" < "6.12.95-1").
func CompareDebianVersions(a, b string) int {
	ea, ua, ra := splitDebianVersion(a)
	eb, ub, rb := splitDebianVersion(b)
	if ea != eb {
		if ea < eb {
			return -1
		}
		return 1
	}
	if c := verrevcmp(ua, ub); c != 0 {
		return c
	}
	return verrevcmp(ra, rb)
}

func splitDebianVersion(v string) (epoch int, upstream, revision string) {
	if i := strings.IndexByte(v, ':'); i >= 0 {
		epoch, _ = strconv.Atoi(v[:i])
		v = v[i+1:]
	}
	if i := strings.LastIndexByte(v, '-'); i >= 0 {
		return epoch, v[:i], v[i+1:]
	}
	return epoch, v, ""
}

// verrevcmp is dpkg's lib/dpkg/version.c:verrevcmp.
func verrevcmp(a, b string) int {
	order := func(c byte) int {
		switch {
		case c >= '0' && c <= '9':
			return 0
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
			return int(c)
		case c == '~':
			return -1
		case c != 0:
			return int(c) + 256
		}
		return 0
	}
	at := func(s string, i int) byte {
		if i < len(s) {
			return s[i]
		}
		return 0
	}
	isDigit := func(c byte) bool { return c >= '0' && c <= '9' }
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		firstDiff := 0
		for (i < len(a) && !isDigit(a[i])) || (j < len(b) && !isDigit(b[j])) {
			ac, bc := order(at(a, i)), order(at(b, j))
			if ac != bc {
				return ac - bc
			}
			i++
			j++
		}
		for at(a, i) == '0' {
			i++
		}
		for at(b, j) == '0' {
			j++
		}
		for isDigit(at(a, i)) && isDigit(at(b, j)) {
			if firstDiff == 0 {
				firstDiff = int(a[i]) - int(b[j])
			}
			i++
			j++
		}
		if isDigit(at(a, i)) {
			return 1
		}
		if isDigit(at(b, j)) {
			return -1
		}
		if firstDiff != 0 {
			return firstDiff
		}
	}
	return 0
}
