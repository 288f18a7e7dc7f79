// Package kernel is a pure-Go model of the Linux decision "may this task
// read or attach to that one?": kernel/ptrace.c:__ptrace_may_access with its
// FSCREDS/REALCREDS selector, the dumpable rule against mm->user_ns, the
// security-module stack (commoncap first, then Yama, Landlock, SELinux,
// AppArmor, Smack in boot order), and the /proc/<pid>/ entries and system
// calls built on top of it (fs/proc/base.c, kernel/fork.c:mm_access, …).
//
// The package holds data and rules only: it reads no files and makes no
// system calls. A [World] describes a kernel (release, settings, active
// modules), its user namespaces and its tasks; [World.PtraceMayAccess],
// [World.CheckEntry] and [World.CheckSyscall] answer for a caller, a target
// and an access. Each answer is a [Decision]: allowed or the errno the caller
// would see, the layer that decided, and — when asked for with an explaining
// call — the ordered steps with a one-line reason each and the audit records
// the kernel would emit.
//
// Security modules implement [LSM]; each lives in its own package under
// kernel/lsm. The fast path (no explanation) does not allocate.
//
// Where a rule changed between releases, [Features] names the change and the
// release that brought it; [ParseRelease] and [FeaturesFor] select them.
package kernel
