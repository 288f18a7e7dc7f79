// Package gate is the one decision-and-read path shared by procgate's
// enforcement points (the broker, procgate serve; a mediated /proc): it
// pins a target, decides each requested item, reads what is granted, and
// writes audit records and metrics.
//
// # Pinning
//
// Every target is pinned with a pidfd, and every file is opened relative
// to a /proc/<pid> directory descriptor opened after the pidfd; once the
// last read is done the pidfd must still refer to a live process, which
// proves the directory (and so every value read) was that process's. A
// process that exits or whose pid is reused during a request is answered
// ESRCH and none of its values are returned; so is a pid that names a
// thread rather than a process ("pid N is a thread of process M"). See
// [procfs.Pin]. A caller known by a thread id (a FUSE request) is its
// process: [Gate.NewThreadCaller]. The procfs and sysfs roots are
// injectable ([Config].Live), with pins only in the procfs of the gate's
// own pid namespace.
//
// # Callers in other pid namespaces
//
// A caller below the gate's pid namespace (a container) names processes,
// and is answered, in its own namespace's numbering: [Request].PIDs and
// [ProcResult].PID are its pids, All lists what its namespace can see, a
// pid it cannot see is ESRCH whatever the gate's namespace holds, and the
// pids in status, stat, sched and a pidfd's fdinfo read as its own procfs
// prints them. Its namespace is found through its pinned /proc directory
// (ns/pid, held open for the caller's life), never through its mounts.
// The kernel translates (Linux 6.11); on older kernels a table built
// from the gate's procfs does. A translation is never trusted by itself:
// under the target's pin, its NSpid at the caller's level and its
// namespace's identity are checked before anything is answered.
// Decisions, the policy and audit records use the gate's identities. A
// caller in the gate's own namespace takes none of this path.
//
// # Deciding
//
// An item is granted when the kernel would let the caller read it
// directly (the model's [kernel.World.CheckEntry] with the caller as the
// caller, over a world read by [live.ReadPIDs]), or when the policy grants
// it and the caller's MAC layers (Landlock and Yama as modelled; SELinux,
// AppArmor and Smack fail closed unless the caller is unconfined by them)
// would allow the caller itself. Attach-class items need an attach rule.
// One request is decided by one policy: [Gate.SetPolicy] swaps it
// atomically between requests.
//
// The decision is one pure function, [Decide], over the model's [View] of
// the (caller, target) pair ([ComputeView], from any kernel.World: live,
// a scenario file, a snapshot) and the policy; the gate adds metrics and
// audit records around it. A denial carries the errno the model gives the
// caller, unchanged, and a reason that names the layer that decided: a
// deny rule, the target's non-dumpability that kept an allow rule from
// granting, the kernel's deciding layer, masking for stat_full, the MAC
// module.
//
// The model's views are cached per (caller, target) fingerprint: the
// credentials, capabilities, groups, parent, tracer, state, dump owner,
// user namespace and labels of both, as read under the pins. A change of
// any of them misses the cache; kernel settings are re-read when it
// expires. Requests for plain items only — files every caller may read
// on a procfs without hidepid, such as status, stat (masked), cmdline,
// limits — need no model at all.
//
// # Reading
//
// What an item opens comes from its kernel catalog entry
// ([policy.Item.KernelEntry]); the gate keeps only how to read it. Items
// whose read takes a lock of the target's (kernel.Entry.Locks) — its mmap
// lock (cmdline, environ, maps, smaps…, map_files, mem), its
// exec_update_lock (io, syscall, stack, personality) or namespace_sem
// (mountinfo) — are read on a duplicate descriptor, into a copy of the
// result, under a deadline, so a target stuck with its lock held cannot
// stall a request and a late read cannot change an answer; the number of
// reads still blocked in the kernel is bounded.
//
// A target that stalls must not stall anyone else ([StallLimits]): a
// process (pid and start time) whose read timed out has its lock-taking
// reads answered ETIMEDOUT at once, by a circuit breaker with a growing
// back-off and one probe read after it; the reads in flight, within their
// deadline or stuck past it, are bounded per process, per caller uid and
// in all, and a read beyond a bound is refused (EBUSY) before it starts;
// and the requests of one caller uid hold at most a share of the
// workers, so its reads waiting on its own stalled processes leave the
// others' free.
//
// # Audit and metrics
//
// [Auditor] writes one record per audited decision in the kernel's AVC
// shape or as JSON, rate-limited with suppressed=N summaries, never with
// the values read; [Metrics] exports decisions, latency, cache statistics
// and suppressed denials in the Prometheus text format.
package gate
