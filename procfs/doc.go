// Package procfs is procgate's one layer for reading /proc: the model's
// live reader (package live) and the enforcement points' gate (package
// gate) both go through it.
//
// It opens a procfs mount as a [Root] at any path (the real /proc, or a
// fixture tree in tests), lists its processes, and pins a process — or a
// thread through its process — with a pidfd before opening its directory
// ([Pin]), so that a recycled pid is never confused with the process
// decided on. Files, links and security labels are read relative to a
// pinned directory with bounded buffers ([ReadFile], [ReadLink],
// [ReadLabel]); a process that vanished is reported as ESRCH ([Gone],
// [Error]), and a pid that names a thread rather than a process as a
// [ThreadError]. It also reads the active security modules from sysfs
// ([ReadLSMs]) and the procfs mount's options from mountinfo
// ([Root.Mountinfo]), and parses the /proc files procgate reads
// ([ParseStatus], [ParseStat], [ParseNSLink], [ParseIDMap],
// [ParseMountinfo], [ParseLSMList], [ParseLabel], [ParseNSIDs]).
//
// For readers in other pid namespaces it holds a pid namespace open
// ([PIDNS]: the kernel's translations of pids to and from it, and the
// walk up its ancestors) and rewrites the pids in the files it reads as
// such a reader's own procfs prints them ([PIDMap]).
package procfs
