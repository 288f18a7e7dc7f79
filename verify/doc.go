// Package verify checks procgate's model of ptrace_may_access against a
// running kernel. It generates cases (a fixed grid and a seeded random
// sample over credentials, capabilities, dumpability, user namespaces,
// Landlock layouts and process relations), runs them on real processes
// through [oracle.Runner], and compares every answer — errno and the
// masking of /proc/PID/stat — with the model's prediction for the same
// world.
//
// Each case is predicted twice: from its description ([World] builds the
// model's world from the requested credentials and layout), and from a
// live snapshot of the spawned processes taken while they are alive
// ([live.ReadPIDs] from [oracle.Options.OnReady]), so that the live
// reader is verified with the model. A snapshot cannot see what user space
// cannot read (a Landlock domain, a Yama exception); a snapshot answer that
// differs from the kernel's is counted as a disagreement unless the
// snapshot itself reports that the answer depends on such an unknown
// ([live.System.Unknowns]), in which case it is counted apart.
//
// A disagreement carries a scenario file (package scenario) that
// reproduces it offline with procgate check.
package verify
