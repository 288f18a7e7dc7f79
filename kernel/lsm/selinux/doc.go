// Package selinux is the SELinux security module's part in the ptrace
// decision (security/selinux/hooks.c), with a type-enforcement policy
// language subset, the access vector cache (security/selinux/avc.c) and
// AVC audit records in the kernel's text layout.
//
// # Hooks
//
// selinux_ptrace_access_check asks for file { read } on the target's
// domain when the mode has the READ bit and for process { ptrace }
// otherwise; selinux_ptrace_traceme asks process { ptrace } with the
// parent as source; selinux_capable asks the capability, capability2,
// cap_userns or cap2_userns class with the task as source and target.
// A denial is EACCES unless the module is permissive (globally, or the
// source domain is declared permissive), in which case access is granted
// and the AVC record says permissive=1.
//
// # Labels
//
// Task labels are full security contexts, user:role:type:level, read from
// [kernel.Task.SELinux]; the type is the third field. An empty label
// stands for the kernel's unlabeled initial SID and is printed as
// [UnlabeledContext], whose type is unlabeled_t. A label without a colon
// is taken as a bare type name. A type the policy does not declare is
// granted nothing.
//
// # Policy
//
// [Parse] reads a subset of the kernel policy language (.te): type,
// attribute, typeattribute, permissive, and the access-vector rules allow,
// auditallow, dontaudit and neverallow with the set syntax { a b -c }, *,
// ~x and self. Errors carry line and column ([Error]). The policy is
// compiled at load into an access-vector table keyed like the kernel's
// avtab (source type or attribute, target type or attribute, class); a
// decision ORs the entries over the attributes of both types
// (security/selinux/ss/services.c:context_struct_compute_av).
//
// # Cache
//
// Decisions are cached per (source SID, target SID, class), SIDs being
// interned label strings, and tagged with the policy sequence number;
// loading a policy ([Module.SetPolicy]) invalidates every entry. Lookups
// are lock-free and do not allocate. [Module.Stats] reports the
// counters the kernel shows in /sys/fs/selinux/avc/cache_stats.
//
// Divergence from the kernel: in permissive mode the kernel adds the
// denied permissions to the cached entry (avc_denied → avc_update_node),
// so each denial is logged about once until the entry is evicted. The
// model keeps the policy's decision in the cache so that every explained
// decision shows its permissive=1 record; answers are the same.
package selinux
