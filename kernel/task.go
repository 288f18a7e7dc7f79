package kernel

import "slices"

// Cred is a task's credentials (include/linux/cred.h:struct cred): the
// four uids and gids, supplementary groups, the effective and permitted
// capability sets and the user namespace the capabilities are valid in.
// The model does not distinguish a task's subjective and objective
// credentials: they differ only inside override_creds sections, which no
// ptrace path observes.
type Cred struct {
	UID, EUID, SUID, FSUID KUID
	GID, EGID, SGID, FSGID KGID
	// Groups are the supplementary groups (global ids).
	Groups []KGID
	// CapEffective must be a subset of CapPermitted.
	CapEffective, CapPermitted CapSet
	// UserNS is the namespace the capabilities are valid in; never nil.
	UserNS *UserNS
}

// InGroup reports whether g is the fsgid or a supplementary group
// (kernel/groups.c:in_group_p).
func (c *Cred) InGroup(g KGID) bool {
	return c.FSGID == g || slices.Contains(c.Groups, g)
}

// Dumpable is an mm's dumpable value (include/linux/sched/coredump.h).
type Dumpable uint8

// Dumpable values. Only [SuidDumpUser] counts as dumpable for ptrace.
const (
	SuidDumpDisable Dumpable = 0 // SUID_DUMP_DISABLE
	SuidDumpUser    Dumpable = 1 // SUID_DUMP_USER
	SuidDumpRoot    Dumpable = 2 // SUID_DUMP_ROOT
)

// MM is an address space (struct mm_struct) as far as access checks see
// it: whether it is dumpable and the user namespace it was created in. Two
// tasks share an address space when they point to the same MM (threads,
// vfork, CLONE_VM).
type MM struct {
	Dumpable Dumpable
	// UserNS is mm->user_ns: the namespace whose CAP_SYS_PTRACE overrides a
	// non-dumpable mm; never nil.
	UserNS *UserNS
	// Exe is mm->exe_file, the executable; nil when unknown. No rule of
	// the kernel's own reads it; a BPF program may (package lsm/bpf).
	Exe *FileID
}

// FileID names a file as the kernel does: the device of its super block
// (s_dev, the kernel's dev_t: MAJOR << 20 | MINOR) and its inode number.
type FileID struct{ Dev, Ino uint64 }

// MkDev is the kernel's dev_t of the device userspace calls major:minor
// (include/linux/kdev_t.h:MKDEV).
func MkDev(major, minor uint32) uint64 { return uint64(major)<<20 | uint64(minor) }

// FileIDOfStat names the file a stat describes as the kernel does: its
// st_dev, which userspace encodes otherwise (glibc's gnu_dev_major and
// gnu_dev_minor decode it), as the kernel's dev_t, and its inode.
func FileIDOfStat(dev, ino uint64) FileID {
	major := uint32((dev&0x00000000000fff00)>>8) | uint32((dev&0xfffff00000000000)>>32)
	minor := uint32(dev&0x00000000000000ff) | uint32((dev&0x00000ffffff00000)>>12)
	return FileID{Dev: MkDev(major, minor), Ino: ino}
}

// State is a task's life-cycle state as the checks see it.
type State uint8

// Task states.
const (
	// Running is any live task (running, sleeping or stopped).
	Running State = iota
	// Exiting is a task inside do_exit after exit_mm: it has no mm but is
	// not yet a zombie (exit_state is 0).
	Exiting
	// Zombie is a task that exited and waits to be reaped (exit_state set).
	Zombie
)

// String returns "running", "exiting" or "zombie".
func (s State) String() string {
	switch s {
	case Running:
		return "running"
	case Exiting:
		return "exiting"
	case Zombie:
		return "zombie"
	}
	return "state?"
}

// PtracerException is a Yama PR_SET_PTRACER exception, kept for the
// thread-group leader of the task that declared it
// (security/yama/yama_lsm.c:yama_ptracer_add).
type PtracerException struct {
	// Any is PR_SET_PTRACER_ANY: every task passing the other checks.
	Any bool
	// Tracer, when Any is false, may attach, as may its descendants.
	Tracer *Task
}

// LandlockDomain is one Landlock domain; nested domains point to the
// domain they were created in (struct landlock_ruleset hierarchy).
type LandlockDomain struct {
	Name   string
	Parent *LandlockDomain
}

// Task is one task (thread) as the checks see it.
type Task struct {
	// Name identifies the task in scenarios and explanations.
	Name string
	// PID is the task's id; TGID the id of its thread group (its leader's
	// PID). Both are in the initial pid namespace.
	PID, TGID int
	// Comm is the command name for audit records; defaults to Name.
	Comm string
	// Cmdline is what Yama prints for the task; defaults to Comm.
	Cmdline string
	// Parent is the real parent (of the thread-group leader); nil for init
	// and for tasks reparented out of the modelled world.
	Parent *Task
	// Leader is the thread-group leader; a leader points to itself.
	Leader *Task
	// Cred holds the task's credentials.
	Cred Cred
	// MM is nil for kernel threads and for tasks past exit_mm.
	MM *MM
	// UserDumpable is task->user_dumpable, saved by exit_mm: whether the mm
	// was SUID_DUMP_USER when the task lost it (CVE-2026-46333 fix).
	UserDumpable bool
	// Kthread is PF_KTHREAD.
	Kthread bool
	// State is running, exiting (no mm yet not a zombie) or zombie.
	State State
	// Tracer is the task ptrace-attached to this one, if any.
	Tracer *Task
	// Ptracer is the Yama exception declared by this task's thread group.
	Ptracer *PtracerException

	// Security-module labels. Empty means "unlabelled" for modules that
	// are active; see each module for its default.
	SELinux  string
	AppArmor string
	Smack    string
	// Landlock is the innermost Landlock domain, nil when unrestricted.
	Landlock *LandlockDomain

	// PIDNS names the pid namespace the task lives in when it is a
	// descendant of the one the world's pids are numbered in; "" for that
	// one. No access check reads it (pids are already global here): it
	// tells the report which processes are in containers.
	PIDNS string
	// PIDNSInode is the inode of the task's pid namespace (its ns/pid
	// link, "pid:[4026531836]"; the initial one's is PROC_PID_INIT_INO,
	// 0xEFFFFFFC); 0 when unknown. Only procgate's BPF program reads it
	// (the policy's container selectors).
	PIDNSInode uint32
	// CgroupID is the id of the task's cgroup v2 (the inode number of its
	// directory); 0 when unknown. No rule of the kernel's own reads it;
	// procgate's BPF program exempts one cgroup (package lsm/bpf).
	CgroupID uint64
	// Cgroup is the task's cgroup v2 and its ancestors, by level: the
	// root's first (level 0), the task's own last (its id CgroupID); nil
	// when unknown. Only procgate's BPF program reads it (its cgroup
	// selectors).
	Cgroup []CgroupNode
}

// CgroupNode is one cgroup v2 directory: its id (the directory's inode
// number) and its name (the last element of its path; "" for the root).
type CgroupNode struct {
	ID   uint64
	Name string
}

// SameThreadGroup reports whether a and b belong to one thread group
// (include/linux/sched/signal.h:same_thread_group).
func SameThreadGroup(a, b *Task) bool { return a.TGID == b.TGID }

// IsLeader reports whether t leads its thread group.
func (t *Task) IsLeader() bool { return t.PID == t.TGID }

// GroupLeader returns t's thread-group leader (t itself when unknown).
func (t *Task) GroupLeader() *Task {
	if t.Leader != nil {
		return t.Leader
	}
	return t
}

// IsDescendant reports whether child is parent or one of its descendants,
// walking real parents by thread-group leader
// (security/yama/yama_lsm.c:task_is_descendant).
func IsDescendant(parent, child *Task) bool {
	if parent == nil || child == nil {
		return false
	}
	p := parent.GroupLeader()
	seen := 0
	for w := child; w != nil && w.PID > 0; w = w.Parent {
		w = w.GroupLeader()
		if w == p {
			return true
		}
		if seen++; seen > 1<<16 {
			return false // a cycle; World validation rejects these
		}
	}
	return false
}

// AuditPID is the pid audit records print for t: its thread-group id
// (task_tgid_nr), or its pid when the tgid is not set.
func (t *Task) AuditPID() int {
	if t.TGID != 0 {
		return t.TGID
	}
	return t.PID
}

// AuditComm is the command name audit records print for t: Comm, or
// Name when Comm is not set.
func (t *Task) AuditComm() string {
	if t.Comm != "" {
		return t.Comm
	}
	return t.Name
}
