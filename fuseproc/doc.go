// Package fuseproc serves a mediated /proc over FUSE (procgate mount):
// unmodified tools — ps, top, lsof, exporters — read it as they read
// /proc, and every per-process file is answered by the enforcement core
// (package privsep's [privsep.Backend]) for the caller that asked, as
// the policy grants: the same pinning, deciding, reading, auditing and
// metrics as the HTTP broker.
//
// A FUSE request names the thread that made it, with its filesystem uid
// and gid. The front opens one core session per calling thread (keyed
// by its id and those ids, reopened after a short time), which resolves
// the thread to its process, pins it and reads its identity; a thread
// that cannot be pinned, or whose ids no longer match, is refused.
//
// The tree:
//
//   - /<pid>/ for each process the caller's pid namespace can see, named
//     as that namespace names it (hidden, with --hidepid, where the
//     caller may not read the process's full stat). Its entries are the
//     kernel catalog's /proc/<pid>/ entries that the policy knows as items
//     (package policy); each is decided and read when it is opened, and
//     its content is kept by the open file only. Directories of links
//     (fd, ns, map_files) and fdinfo are listed from the item's value.
//     task/<tid>/ holds the same entries for each thread, decided as the
//     process.
//   - self resolves to the caller's own pid, thread-self to its thread.
//   - every other name passes through, read-only, to the daemon's /proc
//     (meminfo, stat, uptime, loadavg, sys/, net/ …).
//
// Links (exe, cwd, root, fd/N) answer readlink with the target's path
// only: the kernel then resolves that path in the caller's own view, so
// the mount never gives a caller another process's filesystem view.
// Nothing is writable. File contents use direct I/O and per-process
// entries have zero entry timeouts, so no kernel cache carries what one
// caller read to another.
package fuseproc
