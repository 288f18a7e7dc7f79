package kernel

import "strconv"

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

// Class is what an access asks ptrace_may_access for: to read the
// target's state, to attach to it (control it), or nothing. It is the
// READ/ATTACH split of include/linux/ptrace.h (commit 006ebb40d3d6,
// "Security: split proc ptrace checking into read vs. attach", v2.6.27)
// as a type, so that other layers (the policy's item classes) can be
// checked against it.
type Class string

// The classes.
const (
	ClassNone   Class = "none"   // no ptrace_may_access check
	ClassRead   Class = "read"   // PTRACE_MODE_READ
	ClassAttach Class = "attach" // PTRACE_MODE_ATTACH
)

// Class returns the class of mode: attach when the ATTACH bit is set,
// read when READ is, none for a zero mode.
func (m Mode) Class() Class {
	switch {
	case m&ModeAttach != 0:
		return ClassAttach
	case m&ModeRead != 0:
		return ClassRead
	}
	return ClassNone
}

// Lock is a set of the target's sleeping locks that an access takes, so
// that it waits for as long as another task (or the target itself, in
// execve or in a page fault) holds them. Readers of /proc that must not
// stall put such accesses under a deadline.
type Lock uint8

// The locks.
const (
	// LockMmap is the target's mm->mmap_lock, taken for reading by
	// access_remote_vm (mm/memory.c; environ_read, get_mm_cmdline and
	// mem_rw in fs/proc/base.c), by the seq_file walks of
	// fs/proc/task_mmu.c (m_start: per-VMA locks for maps since v6.17,
	// mmap_read_lock_killable before and for the others;
	// show_smaps_rollup; pagemap_read), by fs/proc/base.c's map_files
	// functions (proc_map_files_readdir, proc_map_files_lookup,
	// map_files_get_link) and by process_vm_rw_single_vec
	// (mm/process_vm_access.c, pin_user_pages_remote).
	LockMmap Lock = 1 << iota
	// LockExecUpdate is the target's signal->exec_update_lock, taken for
	// reading by mm_access (kernel/fork.c, so by every proc_mem_open
	// entry and process_vm_readv/writev), lock_trace (syscall,
	// personality, stack), do_io_accounting (io), __pidfd_fget and
	// kcmp_lock; execve holds it for writing in begin_new_exec
	// (fs/exec.c), where it can wait on the old mm's mmap lock. Before
	// v5.7 these paths took cred_guard_mutex instead.
	LockExecUpdate
	// LockCredGuard is the target's signal->cred_guard_mutex, taken by
	// ptrace_attach (kernel/ptrace.c) and held by an execve of the target
	// from prepare_bprm_creds to the end of the exec (fs/exec.c).
	LockCredGuard
	// LockNamespaceSem is the global namespace_sem, taken for reading
	// by the mount table walks (fs/namespace.c m_start: mounts,
	// mountinfo, mountstats); mount and unmount hold it for writing.
	LockNamespaceSem
)

// EntryID names one entry of the catalog. The zero value names none.
type EntryID uint8

// The catalog's entries, in the order of the catalog table.
const (
	EntryNone EntryID = iota
	EntryPIDDir
	EntryEnviron
	EntryAuxv
	EntryMem
	EntryMaps
	EntrySmaps
	EntryNumaMaps
	EntrySmapsRollup
	EntryPagemap
	EntryClearRefs
	EntryMountstats
	EntryKSMStat
	EntryKSMMergingPages
	EntryPatchState
	EntryIO
	EntrySyscall
	EntryPersonality
	EntryStack
	EntryStat
	EntryWchan
	EntryExe
	EntryCwd
	EntryRoot
	EntryFd
	EntryFdN
	EntryFdinfo
	EntryFdinfoN
	EntryMapFiles
	EntryMapFilesRange
	EntryMapFilesOpen
	EntryNS
	EntryNSName
	EntryAttr
	EntryAttrName
	EntryTimerslack
	EntryCmdline
	EntryStatus
	EntryStatm
	EntryLimits
	EntryComm
	EntrySched
	EntrySchedstat
	EntryCgroup
	EntryCpuset
	EntryOOMScore
	EntryOOMAdj
	EntryOOMScoreAdj
	EntryLoginuid
	EntrySessionid
	EntryTimers
	EntryMounts
	EntryMountinfo
	EntryUIDMap
	EntryGIDMap
	EntryProjidMap
	EntrySetgroups
	EntryCoredumpFilter
	EntryAutogroup
	EntryTimensOffsets
	EntryArchStatus
	EntryCPUResctrlGroups
	EntrySeccompCache

	numEntries
)

// Entry returns the catalog entry id names, or nil for [EntryNone] and
// values outside the catalog.
func (id EntryID) Entry() *Entry {
	if id == EntryNone || id >= numEntries {
		return nil
	}
	return &catalog[id]
}

// String returns the entry's catalog name, or "entry(N)" outside the
// catalog.
func (id EntryID) String() string {
	if e := id.Entry(); e != nil {
		return e.Name
	}
	return "entry(" + strconv.Itoa(int(id)) + ")"
}

// Entry is one file, directory or link under /proc/<pid>/ with the rule
// that guards it (fs/proc/base.c tgid_base_stuff and friends).
type Entry struct {
	// ID names the entry; Name is its catalog name: "environ", "fd",
	// "fd/N", "ns/NAME", "map_files/RANGE", "map_files/RANGE:open", "."
	// for the directory.
	ID   EntryID
	Name string
	// Within is the directory entry this one lives in ([EntryFd] for
	// fd/N), EntryNone for an entry of /proc/<pid> itself.
	Within EntryID
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
	// Locks are the target's locks opening and reading the entry take
	// (see [Lock] for where).
	Locks Lock
	// Source names the kernel function that implements the rule.
	Source string
}

// Class returns the class of the entry's ptrace check: attach for
// entries that ask for an ATTACH mode, read for READ, none for entries
// without one.
func (e *Entry) Class() Class { return e.Mode.Class() }
