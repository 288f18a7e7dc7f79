package kernel

// CheckEntry answers whether caller may open (or read, list, readlink) the
// entry of target's /proc/<pid>/ directory, as the procfs mount described
// by w.Proc shows it. It does not allocate.
func (w *World) CheckEntry(caller, target *Task, ent *Entry) Decision {
	errno, masked, layer := w.checkEntry(Env{W: w}, caller, target, ent)
	return Decision{Allowed: errno == OK, Errno: errno, Masked: masked, Layer: layer}
}

// ExplainEntry is CheckEntry with steps and audit records.
func (w *World) ExplainEntry(caller, target *Task, ent *Entry) Decision {
	t := &Trace{}
	errno, masked, layer := w.checkEntry(Env{W: w, T: t}, caller, target, ent)
	return Decision{Allowed: errno == OK, Errno: errno, Masked: masked, Layer: layer, Steps: t.Steps, Audit: t.Audit}
}

func (w *World) checkEntry(e Env, c, t *Task, ent *Entry) (Errno, bool, Layer) {
	tr := e.T
	if m := w.Mutation.Entry; m != nil && m.ID == ent.ID {
		ent = m // the mutation test only
	}
	if t == nil {
		tr.Add(LayerTarget, Deny, "no such process")
		return ESRCH, false, LayerTarget
	}
	// The /proc/<pid> directory: lookup and permission (hidepid).
	if errno := w.pidDirPermission(e, c, t, ent.Check == CheckPIDDir); errno != OK {
		return errno, false, LayerHidepid
	}
	if ent.Check == CheckPIDDir {
		// stat(2) of the directory: security_inode_getattr.
		if errno, l := w.procInodeLSM(e, c, t, InodeDir, InodeGetattr, "."); errno != OK {
			return errno, false, l
		}
		if tr.On() {
			tr.Addf(LayerHidepid, Allow, "/proc/%d is visible to the caller (hidepid=%s)", t.PID, w.Proc.HidePID)
		}
		return OK, false, LayerHidepid
	}
	// The walk searches /proc/<pid> (security_inode_permission MAY_EXEC,
	// after proc_pid_permission) and the entry's subdirectory, if any.
	if errno, l := w.procInodeLSM(e, c, t, InodeDir, InodeSearch, "."); errno != OK {
		return errno, false, l
	}
	sub := subdir(ent.Name)
	// The VFS permission check on the entry (or on the directory a link
	// lives in), which runs before any ptrace check.
	switch ent.Check {
	case CheckFdDir, CheckMapFilesDir:
		if !w.procFdPermission(e, c, t, ent.Name, ent.Perm, mayRead|mayExec) {
			return EACCES, false, LayerDAC
		}
	case CheckFdLink:
		if !w.procFdPermission(e, c, t, "fd", 0o500, mayExec) {
			return EACCES, false, LayerDAC
		}
		if errno, l := w.procInodeLSM(e, c, t, InodeDir, InodeSearch, sub); errno != OK {
			return errno, false, l
		}
	case CheckMapFilesLink, CheckMapFilesOpen:
		if !w.procFdPermission(e, c, t, "map_files", 0o500, mayExec) {
			return EACCES, false, LayerDAC
		}
		if errno, l := w.procInodeLSM(e, c, t, InodeDir, InodeSearch, sub); errno != OK {
			return errno, false, l
		}
	case CheckNSLink, CheckLink:
		// Symlinks carry no mode; ns/ (0511) is searchable by everyone.
		if sub != "" {
			if errno, l := w.procInodeLSM(e, c, t, InodeDir, InodeSearch, sub); errno != OK {
				return errno, false, l
			}
		}
	case CheckFdinfo:
		// Before v5.14 fdinfo/ was 0500 and fdinfo/N 0400: owner only.
		perm, dirPerm := ent.Perm, uint16(0o555)
		if !w.Features.FdinfoCheck {
			perm, dirPerm = ent.Perm&0o500, 0o500
		}
		// fdinfo/N of a task without a file table: the lookup fails
		// with ENOENT. Before v6.10 no ptrace check precedes it (it ran
		// at open), only the directory's search permission.
		noFiles := !ent.Dir && (t.State == Zombie || t.Kthread)
		if noFiles && !w.Features.FdinfoPermission {
			if !genericPermission(e, c, procInode(t, dirPerm, true, "fdinfo"), mayExec) {
				return EACCES, false, LayerDAC
			}
			if errno, l := w.procInodeLSM(e, c, t, InodeDir, InodeSearch, sub); errno != OK {
				return errno, false, l
			}
			tr.Add(LayerEntry, Deny, "the task has no open files: the lookup of fdinfo/N fails with ENOENT before the open-time ptrace check (before v6.10)")
			return ENOENT, false, LayerEntry
		}
		// proc_fdinfo_permission checks ptrace before generic_permission.
		if w.Features.FdinfoCheck {
			if ok, l := w.ptraceCheck(e, c, t, ent.Mode, "fdinfo"); !ok {
				return EACCES, false, l
			}
		}
		if sub != "" {
			if errno, l := w.procInodeLSM(e, c, t, InodeDir, InodeSearch, sub); errno != OK {
				return errno, false, l
			}
		}
		if noFiles {
			tr.Add(LayerEntry, Deny, "the task has no open files: the lookup of fdinfo/N fails with ENOENT")
			return ENOENT, false, LayerEntry
		}
		mask := mayRead
		if ent.Dir {
			mask |= mayExec
		}
		if !genericPermission(e, c, procInode(t, perm, ent.Dir, ent.Name), mask) {
			return EACCES, false, LayerDAC
		}
		if errno, l := w.entryInodeLSM(e, c, t, ent); errno != OK {
			return errno, false, l
		}
		if !w.Features.FdinfoCheck {
			if tr.On() {
				tr.Addf(LayerEntry, Skip, "release %s predates the fdinfo ptrace check (v5.14)", w.Release)
			}
		}
		return OK, false, LayerDAC
	default:
		mask := mayRead
		if ent.Write {
			mask = mayWrite
		}
		if ent.Dir {
			mask |= mayExec
		}
		if sub != "" {
			if errno, l := w.procInodeLSM(e, c, t, InodeDir, InodeSearch, sub); errno != OK {
				return errno, false, l
			}
		}
		if !genericPermission(e, c, procInode(t, ent.Perm, ent.Dir, ent.Name), mask) {
			return EACCES, false, LayerDAC
		}
	}
	if errno, l := w.entryInodeLSM(e, c, t, ent); errno != OK {
		return errno, false, l
	}
	return w.entryRule(e, c, t, ent)
}

// subdir returns the subdirectory of /proc/<pid> an entry lives in ("fd"
// for "fd/N"), or "" for an entry of /proc/<pid> itself.
func subdir(name string) string {
	for i := range len(name) {
		if name[i] == '/' {
			return name[:i]
		}
	}
	return ""
}

// entryInodeLSM is the security modules' check of the entry's own inode
// once its DAC check passed: read (or write) of a file, read of a
// directory being listed, read of a link (security_inode_readlink; for
// map_files/…:open, security_inode_follow_link, also a read).
func (w *World) entryInodeLSM(e Env, c, t *Task, ent *Entry) (Errno, Layer) {
	class, access := InodeFile, InodeRead
	switch {
	case ent.Dir:
		class = InodeDir
	case ent.Link:
		class = InodeSymlink
	case ent.Write:
		access = InodeWrite
	}
	return w.procInodeLSM(e, c, t, class, access, ent.Name)
}

// entryRule applies the entry's own rule after DAC.
func (w *World) entryRule(e Env, c, t *Task, ent *Entry) (Errno, bool, Layer) {
	tr := e.T
	switch ent.Check {
	case CheckNone:
		if tr.On() {
			tr.Addf(LayerEntry, Allow, "%s has no ptrace check (%s)", ent.Name, ent.Source)
		}
		return OK, false, LayerEntry
	case CheckFdDir:
		if tr.On() {
			tr.Add(LayerEntry, Allow, "listing fd/ makes no ptrace check: the directory's mode decides (fs/proc/fd.c:proc_readfd_common)")
		}
		return OK, false, LayerEntry
	case CheckMM:
		errno, layer := w.mmAccess(e, c, t, ent.Mode, ent)
		return errno, false, layer
	case CheckAtRead, CheckLink, CheckFdLink, CheckNSLink, CheckMapFilesDir, CheckMapFilesLink:
		if ok, l := w.ptraceCheck(e, c, t, ent.Mode, ent.Name); !ok {
			if ent.Check == CheckNSLink && w.Features.NSLinkEmpty {
				if tr.On() {
					tr.Addf(LayerEntry, Allow, "release %s loses the error: readlink returns an empty link instead of EACCES (\"proc: protect ptrace_may_access() with exec_update_lock (part 1)\", until \"proc: Fix broken error paths for namespace links\")", w.Release)
				}
				return OK, false, l
			}
			return ent.Errno, false, l
		}
		return w.afterCheck(e, t, ent)
	case CheckMapFilesOpen:
		if ok, l := w.ptraceCheck(e, c, t, ent.Mode, "map_files lookup"); !ok {
			return EACCES, false, l
		}
		if e.Capable(c, w.Init, CapCheckpointRestore, false) || e.Capable(c, w.Init, CapSysAdmin, false) {
			tr.Add(LayerEntry, Allow, "following a map_files link needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN in the initial namespace: held")
			return OK, false, LayerEntry
		}
		tr.Add(LayerEntry, Deny, "following a map_files link needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN in the initial namespace (checkpoint_restore_ns_capable)")
		return EPERM, false, LayerEntry
	case CheckLockTrace:
		ok, l := w.ptraceCheck(e, c, t, ent.Mode, ent.Name)
		if !ok {
			return EPERM, false, l
		}
		return OK, false, l
	case CheckStack:
		if !e.Capable(c, w.Init, CapSysAdmin, false) {
			tr.Add(LayerEntry, Deny, "stack: the opener needs CAP_SYS_ADMIN in the initial namespace (file_ns_capable)")
			return EACCES, false, LayerEntry
		}
		tr.Add(LayerEntry, Pass, "stack: the opener holds CAP_SYS_ADMIN in the initial namespace")
		ok, l := w.ptraceCheck(e, c, t, ent.Mode, ent.Name)
		if !ok {
			return EPERM, false, l
		}
		return OK, false, l
	case CheckStat, CheckWchan:
		ok, l := w.ptraceCheck(e, c, t, ent.Mode, ent.Name)
		if tr.On() {
			if ok {
				tr.Addf(LayerEntry, Allow, "%s shows every field", ent.Name)
			} else if ent.Check == CheckStat {
				tr.Add(LayerEntry, Allow, "stat opens but masks kstkesp/kstkeip, wchan, start_code/end_code (1), start_stack and the arg/env addresses, exit_code; NOAUDIT keeps the capability and module probes out of the logs")
			} else {
				tr.Add(LayerEntry, Allow, "wchan prints 0 (the check is audited)")
			}
		}
		return OK, !ok, l
	case CheckTimerslack:
		if c == t {
			tr.Add(LayerEntry, Allow, "timerslack_ns of oneself needs nothing")
			return OK, false, LayerEntry
		}
		if e.Capable(c, t.Cred.UserNS, CapSysNice, false) {
			if tr.On() {
				tr.Addf(LayerEntry, Allow, "timerslack_ns of another task needs CAP_SYS_NICE in its namespace %q: held", t.Cred.UserNS.Name)
			}
			return OK, false, LayerEntry
		}
		if tr.On() {
			tr.Addf(LayerEntry, Deny, "timerslack_ns of another task needs CAP_SYS_NICE in its namespace %q", t.Cred.UserNS.Name)
		}
		return EPERM, false, LayerEntry
	}
	tr.Add(LayerEntry, Deny, "entry rule not modelled: failing closed")
	return EACCES, false, LayerEntry
}

// afterCheck reports what a permitted link or read finds on a task that
// is exiting or dead.
func (w *World) afterCheck(e Env, t *Task, ent *Entry) (Errno, bool, Layer) {
	tr := e.T
	switch ent.Check {
	case CheckLink:
		if ent.Name == "exe" && t.MM == nil {
			tr.Add(LayerEntry, Deny, "the task has no mm, so no executable: ENOENT")
			return ENOENT, false, LayerEntry
		}
		if ent.Name != "exe" && t.State == Zombie {
			tr.Add(LayerEntry, Deny, "a zombie has no fs_struct: ENOENT")
			return ENOENT, false, LayerEntry
		}
	case CheckFdLink:
		if t.State == Zombie || t.Kthread {
			tr.Add(LayerEntry, Deny, "the task has no open files: ENOENT")
			return ENOENT, false, LayerEntry
		}
	}
	if tr.On() {
		tr.Addf(LayerEntry, Allow, "%s: permitted (%s)", ent.Name, ent.Source)
	}
	return OK, false, LayerEntry
}

// ptraceCheck runs ptrace_may_access, records that the entry asks for it,
// and returns whether it passed and the layer that decided.
func (w *World) ptraceCheck(e Env, c, t *Task, mode Mode, what string) (bool, Layer) {
	if e.T.On() {
		e.T.Addf(LayerEntry, Info, "%s asks ptrace_may_access(%s)", what, mode)
	}
	errno, l := w.ptraceMayAccess(e, c, t, mode)
	return errno == OK, l
}

// mmAccess is kernel/fork.c:mm_access as /proc's proc_mem_open uses it
// (mode already carries FSCREDS).
func (w *World) mmAccess(e Env, c, t *Task, mode Mode, ent *Entry) (Errno, Layer) {
	tr := e.T
	if t.MM == nil {
		if ent != nil && (ent.EmptyWithoutMM || !w.Features.ProcMemESRCH) {
			if tr.On() {
				tr.Addf(LayerMM, Allow, "the task has no mm (%s): %s opens and reads empty, with no ptrace check", noMMWhy(t), ent.Name)
			}
			return OK, LayerMM
		}
		if tr.On() {
			tr.Addf(LayerMM, Deny, "the task has no mm (%s): ESRCH", noMMWhy(t))
		}
		return ESRCH, LayerMM
	}
	if t.MM == c.MM {
		tr.Add(LayerMM, Allow, "the caller shares the target's mm (thread, vfork or CLONE_VM): no ptrace check")
		return OK, LayerMM
	}
	errno, layer := w.ptraceMayAccess(e, c, t, mode)
	if errno == OK {
		return OK, layer
	}
	if mode.IsRead() && w.Features.PerfmonMMAccess {
		if e.Capable(c, w.Init, CapPerfmon, false) || e.Capable(c, w.Init, CapSysAdmin, false) {
			if tr.On() {
				tr.Addf(LayerMM, Allow, "mm_access READ shortcut (v6.15+): the caller is perfmon_capable (CAP_PERFMON or CAP_SYS_ADMIN in the initial namespace), which bypasses the ptrace check")
			}
			return OK, LayerMM
		}
	}
	if tr.On() {
		tr.Addf(LayerMM, Deny, "mm_access turns the %s denial into EACCES", layer)
	}
	return EACCES, layer
}

func noMMWhy(t *Task) string {
	switch {
	case t.Kthread:
		return "kernel thread"
	case t.State == Zombie:
		return "zombie"
	case t.State == Exiting:
		return "exiting, past exit_mm"
	}
	return "no address space"
}

// procFdPermission is fs/proc/fd.c:proc_fd_permission: generic_permission
// on the directory, with the same thread group always allowed.
func (w *World) procFdPermission(e Env, c, t *Task, name string, perm uint16, mask int) bool {
	if genericPermission(e, c, procInode(t, perm, true, name), mask) {
		return true
	}
	if SameThreadGroup(c, t) {
		e.T.Add(LayerDAC, Pass, "proc_fd_permission: the caller is in the target's thread group, which overrides the directory's mode")
		return true
	}
	return false
}

func gidOrigin(set bool) string {
	if set {
		return "the gid= option"
	}
	return "the default without gid="
}

// pidDirPermission applies hidepid= to the lookup and permission of
// /proc/<pid> (fs/proc/base.c:proc_pid_lookup, proc_pid_permission,
// pid_getattr, has_pid_permissions). getattr selects pid_getattr's rule
// (stat of the directory itself) instead of proc_pid_permission's.
func (w *World) pidDirPermission(e Env, c, t *Task, getattr bool) Errno {
	tr := e.T
	h := w.Proc.HidePID
	if h == HidePIDOff {
		return OK
	}
	if h == HidePIDPtraceable {
		if ok, _ := w.ptraceCheck(e, c, t, ReadFSCreds, "hidepid=ptraceable lookup"); ok {
			tr.Add(LayerHidepid, Pass, "hidepid=ptraceable: the caller passes READ_FSCREDS, so the process is visible")
			return OK
		}
		// proc_pid_lookup hides the process; but a dentry already in the
		// dcache (another process looked /proc/<pid> up) skips the
		// lookup, and proc_pid_permission then answers EPERM.
		tr.Add(LayerHidepid, Deny, "hidepid=ptraceable: the caller fails READ_FSCREDS, so proc_pid_lookup hides /proc/<pid> (gid= is ignored): ENOENT — or EPERM from proc_pid_permission when another process's lookup left the dentry in the dcache")
		return ENOENT
	}
	min := HidePIDNoAccess
	if getattr {
		min = HidePIDInvisible
	}
	if h < min {
		if tr.On() {
			tr.Addf(LayerHidepid, Pass, "hidepid=%s does not hide the directory's attributes", h)
		}
		return OK
	}
	// Without gid= the group is GLOBAL_ROOT_GID: proc_fs_info is zeroed
	// (fs/proc/root.c), so members of group 0 see every process.
	if c.Cred.InGroup(w.Proc.GID) {
		if tr.On() {
			tr.Addf(LayerHidepid, Pass, "hidepid=%s: the caller is in the gid=%d group (%s), which sees every process", h, w.Proc.GID, gidOrigin(w.Proc.HasGID))
		}
		return OK
	}
	if ok, _ := w.ptraceCheck(e, c, t, ReadFSCreds, "hidepid"); ok {
		if tr.On() {
			tr.Addf(LayerHidepid, Pass, "hidepid=%s: the caller passes READ_FSCREDS", h)
		}
		return OK
	}
	if h == HidePIDInvisible || getattr {
		if tr.On() {
			tr.Addf(LayerHidepid, Deny, "hidepid=%s: the caller fails READ_FSCREDS and is not in the gid= group: ENOENT", h)
		}
		return ENOENT
	}
	if tr.On() {
		tr.Addf(LayerHidepid, Deny, "hidepid=%s: the caller fails READ_FSCREDS and is not in the gid= group: EPERM", h)
	}
	return EPERM
}
