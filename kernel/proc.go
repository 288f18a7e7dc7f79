package kernel

import (
	"fmt"
	"sort"
	"strings"

	"github.com/procgate/procgate/internal/suggest"
)

const (
	mmOpen    = LockExecUpdate            // proc_mem_open → mm_access
	mmRead    = LockExecUpdate | LockMmap // and the read walks the mm
	mountWalk = LockNamespaceSem
)

// catalog is the one table of /proc/<pid>/ entries, indexed by EntryID.
var catalog = [numEntries]Entry{
	EntryPIDDir:          {Name: ".", Perm: 0o555, Dir: true, Check: CheckPIDDir, Mode: ReadFSCreds, Errno: ENOENT, Source: "fs/proc/base.c:pid_getattr"},
	EntryEnviron:         {Name: "environ", Perm: 0o400, Check: CheckMM, Mode: ReadFSCreds, Errno: EACCES, Locks: mmRead, Source: "fs/proc/base.c:environ_open"},
	EntryAuxv:            {Name: "auxv", Perm: 0o400, Check: CheckMM, Mode: ReadFSCreds, Errno: EACCES, Locks: mmOpen, Source: "fs/proc/base.c:auxv_open"},
	EntryMem:             {Name: "mem", Perm: 0o600, Check: CheckMM, Mode: AttachFSCreds, Errno: EACCES, Locks: mmRead, Source: "fs/proc/base.c:mem_open"},
	EntryMaps:            {Name: "maps", Perm: 0o444, Check: CheckMM, Mode: ReadFSCreds, Errno: EACCES, EmptyWithoutMM: true, Locks: mmRead, Source: "fs/proc/task_mmu.c:proc_maps_open"},
	EntrySmaps:           {Name: "smaps", Perm: 0o444, Check: CheckMM, Mode: ReadFSCreds, Errno: EACCES, EmptyWithoutMM: true, Locks: mmRead, Source: "fs/proc/task_mmu.c:proc_maps_open"},
	EntryNumaMaps:        {Name: "numa_maps", Perm: 0o444, Check: CheckMM, Mode: ReadFSCreds, Errno: EACCES, EmptyWithoutMM: true, Locks: mmRead, Source: "fs/proc/task_mmu.c:proc_maps_open"},
	EntrySmapsRollup:     {Name: "smaps_rollup", Perm: 0o444, Check: CheckMM, Mode: ReadFSCreds, Errno: EACCES, Locks: mmRead, Source: "fs/proc/task_mmu.c:smaps_rollup_open"},
	EntryPagemap:         {Name: "pagemap", Perm: 0o400, Check: CheckMM, Mode: ReadFSCreds, Errno: EACCES, Locks: mmRead, Source: "fs/proc/task_mmu.c:pagemap_open"},
	EntryClearRefs:       {Name: "clear_refs", Perm: 0o200, Write: true, Check: CheckNone, Source: "fs/proc/task_mmu.c:clear_refs_write (DAC only)"},
	EntryMountstats:      {Name: "mountstats", Perm: 0o400, Check: CheckNone, Locks: mountWalk, Source: "fs/proc_namespace.c:mountstats_open (DAC only)"},
	EntryKSMStat:         {Name: "ksm_stat", Perm: 0o400, Check: CheckNone, Source: "fs/proc/base.c:proc_pid_ksm_stat (DAC only)"},
	EntryKSMMergingPages: {Name: "ksm_merging_pages", Perm: 0o400, Check: CheckNone, Source: "fs/proc/base.c:proc_pid_ksm_merging_pages (DAC only)"},
	EntryPatchState:      {Name: "patch_state", Perm: 0o400, Check: CheckNone, Source: "fs/proc/base.c:proc_pid_patch_state (DAC only)"},
	EntryIO:              {Name: "io", Perm: 0o400, Check: CheckAtRead, Mode: ReadFSCreds, Errno: EACCES, Locks: LockExecUpdate, Source: "fs/proc/base.c:do_io_accounting"},
	EntrySyscall:         {Name: "syscall", Perm: 0o400, Check: CheckLockTrace, Mode: AttachFSCreds, Errno: EPERM, Locks: LockExecUpdate, Source: "fs/proc/base.c:proc_pid_syscall, lock_trace"},
	EntryPersonality:     {Name: "personality", Perm: 0o400, Check: CheckLockTrace, Mode: AttachFSCreds, Errno: EPERM, Locks: LockExecUpdate, Source: "fs/proc/base.c:proc_pid_personality, lock_trace"},
	EntryStack:           {Name: "stack", Perm: 0o400, Check: CheckStack, Mode: AttachFSCreds, Errno: EPERM, Locks: LockExecUpdate, Source: "fs/proc/base.c:proc_pid_stack"},
	EntryStat:            {Name: "stat", Perm: 0o444, Check: CheckStat, Mode: ReadFSCreds | ModeNoAudit, Source: "fs/proc/array.c:do_task_stat"},
	EntryWchan:           {Name: "wchan", Perm: 0o444, Check: CheckWchan, Mode: ReadFSCreds, Source: "fs/proc/base.c:proc_pid_wchan"},
	EntryExe:             {Name: "exe", Perm: 0o777, Link: true, Check: CheckLink, Mode: ReadFSCreds, Errno: EACCES, Source: "fs/proc/base.c:proc_pid_readlink, proc_fd_access_allowed"},
	EntryCwd:             {Name: "cwd", Perm: 0o777, Link: true, Check: CheckLink, Mode: ReadFSCreds, Errno: EACCES, Source: "fs/proc/base.c:proc_pid_readlink, proc_fd_access_allowed"},
	EntryRoot:            {Name: "root", Perm: 0o777, Link: true, Check: CheckLink, Mode: ReadFSCreds, Errno: EACCES, Source: "fs/proc/base.c:proc_pid_readlink, proc_fd_access_allowed"},
	EntryFd:              {Name: "fd", Perm: 0o500, Dir: true, Check: CheckFdDir, Errno: EACCES, Source: "fs/proc/fd.c:proc_fd_permission"},
	EntryFdN:             {Name: "fd/N", Within: EntryFd, Perm: 0o777, Link: true, Check: CheckFdLink, Mode: ReadFSCreds, Errno: EACCES, Source: "fs/proc/fd.c:proc_fd_permission; fs/proc/base.c:proc_pid_readlink"},
	EntryFdinfo:          {Name: "fdinfo", Perm: 0o555, Dir: true, Check: CheckFdinfo, Mode: ReadFSCreds, Errno: EACCES, Source: "fs/proc/fd.c:proc_fdinfo_permission"},
	EntryFdinfoN:         {Name: "fdinfo/N", Within: EntryFdinfo, Perm: 0o444, Check: CheckFdinfo, Mode: ReadFSCreds, Errno: EACCES, Source: "fs/proc/fd.c:proc_fdinfo_permission"},
	EntryMapFiles:        {Name: "map_files", Perm: 0o500, Dir: true, Check: CheckMapFilesDir, Mode: ReadFSCreds, Errno: EACCES, Locks: LockMmap, Source: "fs/proc/base.c:proc_map_files_readdir"},
	EntryMapFilesRange:   {Name: "map_files/RANGE", Within: EntryMapFiles, Perm: 0o777, Link: true, Check: CheckMapFilesLink, Mode: ReadFSCreds, Errno: EACCES, Locks: LockMmap, Source: "fs/proc/base.c:proc_map_files_lookup, proc_pid_readlink"},
	EntryMapFilesOpen:    {Name: "map_files/RANGE:open", Within: EntryMapFiles, Perm: 0o777, Link: true, Check: CheckMapFilesOpen, Mode: ReadFSCreds, Errno: EPERM, Locks: LockMmap, Source: "fs/proc/base.c:proc_map_files_get_link"},
	EntryNS:              {Name: "ns", Perm: 0o511, Dir: true, Check: CheckNone, Errno: EACCES, Source: "fs/proc/namespaces.c (listing is DAC only)"},
	EntryNSName:          {Name: "ns/NAME", Within: EntryNS, Perm: 0o777, Link: true, Check: CheckNSLink, Mode: ReadFSCreds, Errno: EACCES, Source: "fs/proc/namespaces.c:proc_ns_readlink"},
	EntryAttr:            {Name: "attr", Perm: 0o555, Dir: true, Check: CheckNone, Source: "fs/proc/base.c:proc_attr_dir_operations"},
	EntryAttrName:        {Name: "attr/NAME", Within: EntryAttr, Perm: 0o666, Check: CheckNone, Source: "fs/proc/base.c:proc_pid_attr_read (reads unchecked by ptrace)"},
	EntryTimerslack:      {Name: "timerslack_ns", Perm: 0o666, Check: CheckTimerslack, Errno: EPERM, Source: "fs/proc/base.c:timerslack_ns_show"},

	// Files with no ptrace check: hidepid and DAC decide.
	EntryCmdline:          plain("cmdline", 0o444, LockMmap),
	EntryStatus:           plain("status", 0o444, 0),
	EntryStatm:            plain("statm", 0o444, 0),
	EntryLimits:           plain("limits", 0o444, 0),
	EntryComm:             plain("comm", 0o644, 0),
	EntrySched:            plain("sched", 0o644, 0),
	EntrySchedstat:        plain("schedstat", 0o444, 0),
	EntryCgroup:           plain("cgroup", 0o444, 0),
	EntryCpuset:           plain("cpuset", 0o444, 0),
	EntryOOMScore:         plain("oom_score", 0o444, 0),
	EntryOOMAdj:           plain("oom_adj", 0o644, 0),
	EntryOOMScoreAdj:      plain("oom_score_adj", 0o644, 0),
	EntryLoginuid:         plain("loginuid", 0o644, 0),
	EntrySessionid:        plain("sessionid", 0o444, 0),
	EntryTimers:           plain("timers", 0o444, 0),
	EntryMounts:           plain("mounts", 0o444, mountWalk),
	EntryMountinfo:        plain("mountinfo", 0o444, mountWalk),
	EntryUIDMap:           plain("uid_map", 0o644, 0),
	EntryGIDMap:           plain("gid_map", 0o644, 0),
	EntryProjidMap:        plain("projid_map", 0o644, 0),
	EntrySetgroups:        plain("setgroups", 0o644, 0),
	EntryCoredumpFilter:   plain("coredump_filter", 0o644, 0),
	EntryAutogroup:        plain("autogroup", 0o644, 0),
	EntryTimensOffsets:    plain("timens_offsets", 0o644, 0),
	EntryArchStatus:       plain("arch_status", 0o444, 0),
	EntryCPUResctrlGroups: plain("cpu_resctrl_groups", 0o444, 0),
	EntrySeccompCache:     plain("seccomp_cache", 0o444, 0),
}

func plain(name string, perm uint16, locks Lock) Entry {
	return Entry{Name: name, Perm: perm, Check: CheckNone, Locks: locks, Source: "fs/proc/base.c (no ptrace check)"}
}

// byName indexes the catalog by name; init also gives every entry its ID.
var byName = func() map[string]*Entry {
	m := make(map[string]*Entry, numEntries)
	for id := EntryPIDDir; id < numEntries; id++ {
		e := &catalog[id]
		e.ID = id
		m[e.Name] = e
	}
	return m
}()

// Entries returns the catalog, sorted by name.
func Entries() []*Entry {
	out := make([]*Entry, 0, len(byName))
	for _, e := range byName {
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
	if e, ok := byName[p]; ok {
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
		if e, ok := byName[key]; ok {
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
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return suggest.DidYouMean(p, names, 3)
}
