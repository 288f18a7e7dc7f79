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
// ESRCH and none of its values are returned. See [Pin].
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
// Items whose read can wait on a lock the target holds — its mmap lock
// (cmdline, environ, maps, smaps…, mem) or its cred_guard_mutex (syscall,
// stack, personality) — are read on a duplicate descriptor, into a copy of
// the result, under a deadline, so a target stuck with its lock held
// cannot stall a request and a late read cannot change an answer; the
// number of reads still blocked in the kernel is bounded.
//
// # Audit and metrics
//
// [Auditor] writes one record per audited decision in the kernel's AVC
// shape or as JSON, rate-limited with suppressed=N summaries, never with
// the values read; [Metrics] exports decisions, latency, cache statistics
// and suppressed denials in the Prometheus text format.
package gate
