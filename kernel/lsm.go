package kernel

import "slices"

// LSM is one security module's part in the decision: the three hooks the
// ptrace paths call (include/linux/lsm_hook_defs.h: ptrace_access_check,
// ptrace_traceme, capable). Each returns OK or the errno the module
// denies with. Hooks record their reasoning and audit records in e.T when
// it is non-nil and must not allocate when it is nil.
type LSM interface {
	// Name is the module's name as /sys/kernel/security/lsm lists it.
	Name() string
	// PtraceAccessCheck decides whether tracer may access tracee in mode.
	PtraceAccessCheck(e Env, tracer, tracee *Task, mode Mode) Errno
	// PtraceTraceme decides whether child may make parent its tracer.
	PtraceTraceme(e Env, parent, child *Task) Errno
	// Capable decides whether t may use capability c in namespace ns.
	// Modules run after the capability module, which holds the rule itself.
	Capable(e Env, t *Task, ns *UserNS, c Cap, noaudit bool) Errno
}

// Env is what a hook may use besides its arguments: the world (for
// settings and other tasks) and the trace of an explained decision.
type Env struct {
	W *World
	T *Trace
}

// Capable asks every active module, in order, whether t may use c in ns
// (security/security.c:security_capable). The capability module comes
// first and holds the rule; the first denial ends the walk. noaudit
// selects the ns_capable_noaudit variant.
func (e Env) Capable(t *Task, ns *UserNS, c Cap, noaudit bool) bool {
	for _, m := range e.W.LSMs {
		if m.Capable(e, t, ns, c, noaudit) != OK {
			return false
		}
	}
	return true
}

// PtraceSkipper is implemented by a module whose ptrace_access_check
// hook returns early, without checking anything, for some questions:
// Yama for READ modes and at ptrace_scope 0, Landlock for a caller
// without a domain, AppArmor for an unconfined tracer. PtraceSkip returns
// why the hook does not apply to the question, or "" when it does; the
// reason must be a constant (the fast path does not allocate). The
// module's PtraceAccessCheck must allow, and check nothing, exactly when
// PtraceSkip returns a reason.
//
// A module that skipped took no part in the answer: it is never the layer
// that decided it (see World.PtraceMayAccess).
type PtraceSkipper interface {
	PtraceSkip(tracer, tracee *Task, mode Mode) string
}

// TracemeSkipper is PtraceSkipper for the ptrace_traceme hook: Yama below
// ptrace_scope 2, Landlock for a parent without a domain. TracemeSkip
// returns why the hook does not apply (a constant), or "" when it does;
// the module's PtraceTraceme must allow, and check nothing, exactly then.
type TracemeSkipper interface {
	TracemeSkip(parent, child *Task) string
}

// NoLSMHooks can be embedded by a module that leaves some hooks alone;
// its methods allow everything.
type NoLSMHooks struct{}

// PtraceAccessCheck allows.
func (NoLSMHooks) PtraceAccessCheck(Env, *Task, *Task, Mode) Errno { return OK }

// PtraceTraceme allows.
func (NoLSMHooks) PtraceTraceme(Env, *Task, *Task) Errno { return OK }

// Capable allows.
func (NoLSMHooks) Capable(Env, *Task, *UserNS, Cap, bool) Errno { return OK }

// InodeClass is the kind of a /proc/<pid>/ inode, as the VFS hooks see it
// (security/selinux/hooks.c:inode_mode_to_security_class).
type InodeClass uint8

// Inode classes.
const (
	InodeFile    InodeClass = iota // a regular file: environ, maps, stat, …
	InodeDir                       // a directory: /proc/<pid>, fd, fdinfo, ns, …
	InodeSymlink                   // a symbolic link: exe, cwd, root, fd/N, ns/NAME
)

// String returns "file", "dir" or "lnk_file" (SELinux's class names).
func (c InodeClass) String() string {
	switch c {
	case InodeDir:
		return "dir"
	case InodeSymlink:
		return "lnk_file"
	}
	return "file"
}

// InodeAccess is what the VFS asks of an inode: security_inode_permission's
// MAY_READ, MAY_WRITE or MAY_EXEC (search, on a directory),
// security_inode_readlink (read, on a symlink) or security_inode_getattr.
type InodeAccess uint8

// Inode accesses.
const (
	InodeRead InodeAccess = iota
	InodeWrite
	InodeSearch
	InodeGetattr
)

// String returns the SELinux permission name: read, write, search, getattr.
func (a InodeAccess) String() string {
	switch a {
	case InodeWrite:
		return "write"
	case InodeSearch:
		return "search"
	case InodeGetattr:
		return "getattr"
	}
	return "read"
}

// ProcInodeChecker is implemented by modules that label the inodes of a
// task's /proc/<pid>/ directory with the task's own label
// (security_task_to_inode) and check the VFS's access to them: SELinux
// (selinux_inode_permission, selinux_inode_readlink,
// selinux_inode_getattr). The walk to an entry searches /proc/<pid> and
// any subdirectory, and the entry itself is then read, written, listed or
// read as a link; each step is one call, after the DAC check of the same
// inode passed. name is the inode's path below /proc/<pid> ("." for the
// directory itself), for explanations.
type ProcInodeChecker interface {
	ProcInodePermission(e Env, caller, target *Task, class InodeClass, access InodeAccess, name string) Errno
}

// procInodeLSM asks every module that checks /proc inodes; the first
// denial wins.
func (w *World) procInodeLSM(e Env, c, t *Task, class InodeClass, access InodeAccess, name string) (Errno, Layer) {
	for _, m := range w.LSMs {
		if pc, ok := m.(ProcInodeChecker); ok {
			if errno := pc.ProcInodePermission(e, c, t, class, access, name); errno != OK {
				return errno, Layer(m.Name())
			}
		}
	}
	return OK, ""
}

// noPtraceHooks are the modules NoPtraceHook names.
var noPtraceHooks = []string{"lockdown", "integrity", "ima", "evm", "safesetid", "loadpin", "ipe", "tomoyo"}

// NoPtraceHook reports whether the security module that lsm= (and
// /sys/kernel/security/lsm) names name registers neither
// ptrace_access_check nor ptrace_traceme, so takes no part in a ptrace
// access decision. The BPF LSM ("bpf") is not one of them: it takes part
// through the programs attached to those hooks.
func NoPtraceHook(name string) bool { return slices.Contains(noPtraceHooks, name) }

// NoPtraceHookModules lists the modules NoPtraceHook names.
func NoPtraceHookModules() []string { return slices.Clone(noPtraceHooks) }
