package kernel

import (
	"fmt"
	"sort"
	"strings"

	"github.com/procgate/procgate/internal/suggest"
)

// Check is the rule a /proc/<pid>/ entry applies after the VFS
// permission check.
type Check uint8

// The entry rules.
const (
	CheckNone         Check = iota // no rule beyond hidepid and DAC
	CheckMM                        // proc_mem_open → mm_access at open
	CheckAtRead                    // ptrace_may_access when read (io)
	CheckLockTrace                 // lock_trace when read (syscall, personality)
	CheckStack                     // CAP_SYS_ADMIN in init ns, then lock_trace
	CheckStat                      // masked fields (stat)
	CheckWchan                     // prints 0 when denied (wchan)
	CheckLink                      // proc_fd_access_allowed on readlink (exe, cwd, root)
	CheckFdDir                     // proc_fd_permission on the directory (fd/)
	CheckFdLink                    // search fd/, then proc_fd_access_allowed (fd/N)
	CheckFdinfo                    // proc_fdinfo_permission (fdinfo/, fdinfo/N)
	CheckMapFilesDir               // proc_fd_permission, then READ_FSCREDS in readdir
	CheckMapFilesLink              // lookup and readlink with READ_FSCREDS
	CheckMapFilesOpen              // following the link: CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN
	CheckNSLink                    // proc_ns_readlink / proc_ns_get_link
	CheckTimerslack                // CAP_SYS_NICE in the target's namespace unless self
	CheckPIDDir                    // /proc/<pid> itself: hidepid's getattr rule
)

// Entry is one file, directory or link under /proc/<pid>/ with the rule
// that guards it (fs/proc/base.c tgid_base_stuff and friends).
type Entry struct {
	// Name is the catalog name: "environ", "fd", "fd/N", "ns/NAME",
	// "map_files/RANGE", "map_files/RANGE:open", "." for the directory.
	Name string
	// Perm is the inode's mode bits; Dir and Link its type.
	Perm      uint16
	Dir, Link bool
	// Write is set for entries the model opens for writing (clear_refs).
	Write bool
	// Check is the rule after DAC; Mode the ptrace mode it asks for
	// (0 when none) and Errno what a ptrace denial returns.
	Check Check
	Mode  Mode
	Errno Errno
	// EmptyWithoutMM marks mm files that open and read empty for a task
	// without an mm instead of failing with ESRCH (maps, smaps, numa_maps).
	EmptyWithoutMM bool
	// Source names the kernel function that implements the rule.
	Source string
}

// Class returns "attach" for entries that ask for an ATTACH mode,
// "read" for READ, and "none" for entries without a ptrace check.
func (e *Entry) Class() string {
	switch {
	case e.Mode&ModeAttach != 0:
		return "attach"
	case e.Mode&ModeRead != 0:
		return "read"
	}
	return "none"
}

func plain(name string, perm uint16) *Entry {
	return &Entry{Name: name, Perm: perm, Check: CheckNone, Source: "fs/proc/base.c (no ptrace check)"}
}

var catalog = func() map[string]*Entry {
	es := []*Entry{
		{Name: ".", Perm: 0o555, Dir: true, Check: CheckPIDDir, Mode: ReadFSCreds, Errno: ENOENT, Source: "fs/proc/base.c:pid_getattr"},
		{Name: "environ", Perm: 0o400, Check: CheckMM, Mode: ReadFSCreds, Errno: EACCES, Source: "fs/proc/base.c:environ_open"},
		{Name: "auxv", Perm: 0o400, Check: CheckMM, Mode: ReadFSCreds, Errno: EACCES, Source: "fs/proc/base.c:auxv_open"},
		{Name: "mem", Perm: 0o600, Check: CheckMM, Mode: AttachFSCreds, Errno: EACCES, Source: "fs/proc/base.c:mem_open"},
		{Name: "maps", Perm: 0o444, Check: CheckMM, Mode: ReadFSCreds, Errno: EACCES, EmptyWithoutMM: true, Source: "fs/proc/task_mmu.c:proc_maps_open"},
		{Name: "smaps", Perm: 0o444, Check: CheckMM, Mode: ReadFSCreds, Errno: EACCES, EmptyWithoutMM: true, Source: "fs/proc/task_mmu.c:proc_maps_open"},
		{Name: "numa_maps", Perm: 0o444, Check: CheckMM, Mode: ReadFSCreds, Errno: EACCES, EmptyWithoutMM: true, Source: "fs/proc/task_mmu.c:proc_maps_open"},
		{Name: "smaps_rollup", Perm: 0o444, Check: CheckMM, Mode: ReadFSCreds, Errno: EACCES, Source: "fs/proc/task_mmu.c:smaps_rollup_open"},
		{Name: "pagemap", Perm: 0o400, Check: CheckMM, Mode: ReadFSCreds, Errno: EACCES, Source: "fs/proc/task_mmu.c:pagemap_open"},
		{Name: "clear_refs", Perm: 0o200, Write: true, Check: CheckNone, Source: "fs/proc/task_mmu.c:clear_refs_write (DAC only)"},
		{Name: "mountstats", Perm: 0o400, Check: CheckNone, Source: "fs/proc_namespace.c:mountstats_open (DAC only)"},
		{Name: "ksm_stat", Perm: 0o400, Check: CheckNone, Source: "fs/proc/base.c:proc_pid_ksm_stat (DAC only)"},
		{Name: "ksm_merging_pages", Perm: 0o400, Check: CheckNone, Source: "fs/proc/base.c:proc_pid_ksm_merging_pages (DAC only)"},
		{Name: "patch_state", Perm: 0o400, Check: CheckNone, Source: "fs/proc/base.c:proc_pid_patch_state (DAC only)"},
		{Name: "io", Perm: 0o400, Check: CheckAtRead, Mode: ReadFSCreds, Errno: EACCES, Source: "fs/proc/base.c:do_io_accounting"},
		{Name: "syscall", Perm: 0o400, Check: CheckLockTrace, Mode: AttachFSCreds, Errno: EPERM, Source: "fs/proc/base.c:proc_pid_syscall, lock_trace"},
		{Name: "personality", Perm: 0o400, Check: CheckLockTrace, Mode: AttachFSCreds, Errno: EPERM, Source: "fs/proc/base.c:proc_pid_personality, lock_trace"},
		{Name: "stack", Perm: 0o400, Check: CheckStack, Mode: AttachFSCreds, Errno: EPERM, Source: "fs/proc/base.c:proc_pid_stack"},
		{Name: "stat", Perm: 0o444, Check: CheckStat, Mode: ReadFSCreds | ModeNoAudit, Source: "fs/proc/array.c:do_task_stat"},
		{Name: "wchan", Perm: 0o444, Check: CheckWchan, Mode: ReadFSCreds, Source: "fs/proc/base.c:proc_pid_wchan"},
		{Name: "exe", Perm: 0o777, Link: true, Check: CheckLink, Mode: ReadFSCreds, Errno: EACCES, Source: "fs/proc/base.c:proc_pid_readlink, proc_fd_access_allowed"},
		{Name: "cwd", Perm: 0o777, Link: true, Check: CheckLink, Mode: ReadFSCreds, Errno: EACCES, Source: "fs/proc/base.c:proc_pid_readlink, proc_fd_access_allowed"},
		{Name: "root", Perm: 0o777, Link: true, Check: CheckLink, Mode: ReadFSCreds, Errno: EACCES, Source: "fs/proc/base.c:proc_pid_readlink, proc_fd_access_allowed"},
		{Name: "fd", Perm: 0o500, Dir: true, Check: CheckFdDir, Errno: EACCES, Source: "fs/proc/fd.c:proc_fd_permission"},
		{Name: "fd/N", Perm: 0o777, Link: true, Check: CheckFdLink, Mode: ReadFSCreds, Errno: EACCES, Source: "fs/proc/fd.c:proc_fd_permission; fs/proc/base.c:proc_pid_readlink"},
		{Name: "fdinfo", Perm: 0o555, Dir: true, Check: CheckFdinfo, Mode: ReadFSCreds, Errno: EACCES, Source: "fs/proc/fd.c:proc_fdinfo_permission"},
		{Name: "fdinfo/N", Perm: 0o444, Check: CheckFdinfo, Mode: ReadFSCreds, Errno: EACCES, Source: "fs/proc/fd.c:proc_fdinfo_permission"},
		{Name: "map_files", Perm: 0o500, Dir: true, Check: CheckMapFilesDir, Mode: ReadFSCreds, Errno: EACCES, Source: "fs/proc/base.c:proc_map_files_readdir"},
		{Name: "map_files/RANGE", Perm: 0o777, Link: true, Check: CheckMapFilesLink, Mode: ReadFSCreds, Errno: EACCES, Source: "fs/proc/base.c:proc_map_files_lookup, proc_pid_readlink"},
		{Name: "map_files/RANGE:open", Perm: 0o777, Link: true, Check: CheckMapFilesOpen, Mode: ReadFSCreds, Errno: EPERM, Source: "fs/proc/base.c:proc_map_files_get_link"},
		{Name: "ns", Perm: 0o511, Dir: true, Check: CheckNone, Errno: EACCES, Source: "fs/proc/namespaces.c (listing is DAC only)"},
		{Name: "ns/NAME", Perm: 0o777, Link: true, Check: CheckNSLink, Mode: ReadFSCreds, Errno: EACCES, Source: "fs/proc/namespaces.c:proc_ns_readlink"},
		{Name: "attr", Perm: 0o555, Dir: true, Check: CheckNone, Source: "fs/proc/base.c:proc_attr_dir_operations"},
		{Name: "attr/NAME", Perm: 0o666, Check: CheckNone, Source: "fs/proc/base.c:proc_pid_attr_read (reads unchecked by ptrace)"},
		{Name: "timerslack_ns", Perm: 0o666, Check: CheckTimerslack, Errno: EPERM, Source: "fs/proc/base.c:timerslack_ns_show"},
	}
	for n, p := range map[string]uint16{
		"cmdline": 0o444, "status": 0o444, "statm": 0o444, "limits": 0o444, "comm": 0o644,
		"sched": 0o644, "schedstat": 0o444, "cgroup": 0o444, "cpuset": 0o444,
		"oom_score": 0o444, "oom_adj": 0o644, "oom_score_adj": 0o644, "loginuid": 0o644,
		"sessionid": 0o444, "timers": 0o444, "mounts": 0o444, "mountinfo": 0o444,
		"uid_map": 0o644, "gid_map": 0o644, "projid_map": 0o644, "setgroups": 0o644,
		"coredump_filter": 0o644, "autogroup": 0o644, "timens_offsets": 0o644,
		"arch_status": 0o444, "cpu_resctrl_groups": 0o444, "seccomp_cache": 0o444,
	} {
		es = append(es, plain(n, p))
	}
	m := make(map[string]*Entry, len(es))
	for _, e := range es {
		m[e.Name] = e
	}
	return m
}()

// Entries returns the catalog, sorted by name.
func Entries() []*Entry {
	out := make([]*Entry, 0, len(catalog))
	for _, e := range catalog {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// LookupEntry returns the catalog entry for a path under /proc/<pid>/:
// "environ", "fd/3" (→ fd/N), "fdinfo/0", "ns/user" (→ ns/NAME),
// "map_files/7f00-7f10" (→ map_files/RANGE), "map_files/7f00-7f10:open",
// "attr/current". A trailing slash is ignored.
func LookupEntry(path string) (*Entry, error) {
	p := strings.TrimSuffix(strings.TrimPrefix(path, "/"), "/")
	if p == "" {
		p = "."
	}
	if e, ok := catalog[p]; ok {
		return e, nil
	}
	dir, rest, ok := strings.Cut(p, "/")
	if ok && rest != "" && !strings.Contains(rest, "/") {
		key := ""
		switch dir {
		case "fd", "fdinfo":
			if isDigits(rest) {
				key = dir + "/N"
			}
		case "ns", "attr":
			key = dir + "/NAME"
		case "map_files":
			key = "map_files/RANGE"
			if strings.HasSuffix(rest, ":open") {
				key += ":open"
			}
		}
		if e, ok := catalog[key]; ok {
			return e, nil
		}
	}
	return nil, fmt.Errorf("unknown /proc/<pid> entry %q%s", path, suggestEntry(p))
}

func isDigits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func suggestEntry(p string) string {
	names := make([]string, 0, len(catalog))
	for n := range catalog {
		names = append(names, n)
	}
	sort.Strings(names)
	return suggest.DidYouMean(p, names, 3)
}
