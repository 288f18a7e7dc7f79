// Package live reads the running system into the model's world: every
// process's credentials, capability sets, parent, tracer, thread group and
// state from /proc/<pid>/status, its user namespace (with the chain of
// parents and owners from the NS_GET_PARENT and NS_GET_OWNER_UID ioctls and
// the id maps of a member), the dumpable flag inferred from the owner of
// its /proc files, security-module labels from attr/, and the kernel's
// settings (release, active modules, Yama scope, fs.suid_dumpable, the
// Landlock ABI, the hidepid= and gid= options of /proc).
//
// Every process is pinned with a pidfd while it is read: the pidfd is
// opened first, the /proc/<pid> directory second, every file is read
// through that directory, and the pidfd is then checked to still refer to
// a live process. A process that exits, or whose pid is reused, during
// the read is left out of a full read and reported as ESRCH by ReadPIDs;
// the world never mixes two processes.
//
// What cannot be read from user space (Landlock domains, Yama
// PR_SET_PTRACER exceptions, the policy of SELinux, AppArmor or Smack,
// and a few dumpable cases) is not guessed: [System.Unknowns] names each
// unknown a decision depends on, and [System.Decide] puts the list in
// [kernel.Decision.Unknown]. docs/live.md describes all of it.
package live
