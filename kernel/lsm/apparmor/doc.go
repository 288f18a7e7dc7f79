// Package apparmor is the AppArmor security module's ptrace mediation
// (security/apparmor/lsm.c, security/apparmor/task.c) with a parser for
// the ptrace and capability rules of apparmor.d(5) profiles.
//
// # Semantics (as observed on Linux 6.1 with abi 3.0 policy)
//
// apparmor_ptrace_access_check requests read when the mode has the READ
// bit and trace otherwise; apparmor_ptrace_traceme requests trace with the
// parent as tracer. aa_may_ptrace checks both sides (xcheck_labels): the
// tracer's profile must grant read or trace to the tracee's label
// (profile_tracer_perm), and the tracee's profile must grant readby or
// tracedby to the tracer's label (profile_tracee_perm). An unconfined
// tracer passes its side and skips the tracee's; an unconfined tracee
// skips its side. "trace" does not imply "read".
//
// Policy compiled for an ABI that knows ptrace (abi/3.0 and later)
// mediates ptrace in every profile, including profiles without a single
// ptrace rule: such a profile denies everything, even towards itself and
// even with "capability sys_ptrace". The kernel's legacy fallback (same
// label, else CAP_SYS_PTRACE in the profile) applies only to profiles
// that do not mediate ptrace; set [Module.LegacyNoPtraceMediation] to
// model policy compiled without ptrace mediation, in which case a profile
// mediates ptrace only if it has ptrace rules.
//
// deny rules win over allow rules and are quiet unless written "audit
// deny"; "audit" allow rules log AUDIT records; profiles in complain mode
// (flags=(complain)) are allowed but log ALLOWED records
// (security/apparmor/lib.c:aa_check_perms). A rule denial is EACCES.
// PTRACE_MODE_NOAUDIT is ignored by the ptrace hooks.
//
// # Labels
//
// A task's label is [kernel.Task.AppArmor]: "" or "unconfined" is
// unconfined; any other value names a profile, optionally followed by the
// mode suffix /proc/<pid>/attr/current shows (" (enforce)"). Label stacks
// and policy namespaces are not modelled. A label naming a profile that
// is not loaded is treated as a profile without rules in enforce mode.
//
// # Profiles
//
// [Parse] accepts "abi <…>," lines and profiles written
// "profile NAME [ATTACHMENT] [flags=(…)] { … }" or "/path [flags=(…)] { … }".
// Inside a profile it models "[audit] [deny|allow] ptrace [perms] [peer=AARE],"
// and "[audit] [deny|allow] capability [names],". Every other rule kind
// (file, network, signal, dbus, unix, mount, …) is accepted and ignored up
// to its trailing comma; nested profiles, hats, includes and variables are
// rejected with an error. AARE peers support *, **, ?, [...], {a,b} and
// backslash escapes.
package apparmor
