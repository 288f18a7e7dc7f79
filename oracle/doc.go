// Package oracle drives the running Linux kernel as a test oracle for
// procgate's model of ptrace_may_access.
//
// A [Runner] spawns real processes with requested credentials (uid/gid
// quadruples, supplementary groups, capability sets, dumpable flag,
// no_new_privs, user-namespace placement and Landlock domains), lets a prober
// process perform real operations against a target process (open /proc/PID
// files, readlink, getdents, process_vm_readv, kcmp, pidfd_getfd,
// PTRACE_SEIZE) and returns what the kernel answered: "ok" or an errno name.
//
// Every spawned process is verified before it is trusted: the orchestrator
// reads /proc/PID/status (this file has no ptrace check) and the dumpable flag
// the child reports, and refuses the case with an error when the kernel holds
// credentials other than the ones requested.
//
// # Use
//
//	func main() {
//		oracle.RunRoleIfRequested() // first: re-executed children run here
//		r, err := oracle.NewRunner(oracle.Options{})
//		if err != nil { ... }
//		defer r.Close()
//		res, err := r.Run(ctx, []oracle.Case{{
//			Target: oracle.User(2000, 2000),
//			Prober: oracle.User(1000, 1000),
//			Probes: []oracle.Probe{oracle.ProbeMaps, oracle.ProbePtraceSeize},
//		}})
//		// res[0].Probes: maps=EACCES, ptrace_seize=EPERM; res[0].Err == nil
//	}
//
// [Options.OnReady] is called for each case while its target and prober are
// alive, verified and not yet probed, with their pids and observed
// credentials: the place to snapshot the live processes for a prediction.
//
// # Processes
//
// A target applies its credentials, writes a ready line and blocks reading
// stdin (its fd 0 is what fd/0, fdinfo/0 and pidfd_getfd look at). A prober
// locks its OS thread (it is the tracer), applies its credentials, writes a
// ready line, then answers JSON job lines: for each target pid it runs the
// probes and returns the answers. PTRACE_SEIZE is followed by
// PTRACE_INTERRUPT, wait4(__WALL) and PTRACE_DETACH, so a target is left
// running for the next prober.
//
// Runner.Run pools processes: each distinct prober is spawned once and
// probes all its targets; each distinct target is spawned once per window
// of cases and shared by the workers, one prober at a time. A
// prober-is-parent prober spawns all its cases' targets as its children
// before applying its own credentials. The Landlock layouts shared, nested
// and nested-reverse spawn their processes from one orchestrator OS thread
// per window that is locked, restricted with landlock_restrict_self and
// left to die with its goroutine (pitfall P5: a Landlock domain belongs to
// a thread, and children inherit the forking thread's domain), so that
// every process of those cases starts in that one domain. Only a target
// that must exit before it is probed gets a pair of its own.
//
// User namespaces are created at spawn: a namespace "made by root" through
// SysProcAttr with Credential 0/0 (P2), a namespace "owned" by uid U through
// a helper role that runs as U and clones the child with CLONE_NEWUSER (P3).
//
// # Roles and re-execution
//
// The package re-executes the current binary (or its world-readable copy;
// roles that spawn further roles use /proc/self/exe) in a role
// selected by the PROCGATE_ORACLE_ROLE environment variable, with the role's
// JSON spec in PROCGATE_ORACLE_SPEC. Every binary that creates a Runner must
// call [RunRoleIfRequested] first thing in main (and in TestMain for test
// binaries); it returns at once when no role is requested.
//
// # Build requirements
//
// Any build works: with cgo (Go's default where a C compiler exists) or
// without, PIE or not, with or without the race detector. Per-thread
// credential changes (capset, setfsuid, prctl, Landlock) are applied to
// every thread through the psx package (kernel.org/.../libcap/psx): with
// cgo it uses libpsx, which reaches every pthread of the combined Go and C
// runtimes (it lists /proc/PID/task and signals each thread); without cgo
// it is syscall.AllThreadsSyscall. The process_vm_readv probe reads a
// marker at the address the target reports in its ready line, so the
// binary's load address does not matter. The binary must be readable by
// every spawned uid: an unreadable executable makes every exec
// non-dumpable. [NewRunner] copies the executable to a world-readable
// temporary directory when needed.
//
// A Runner must run as root in the initial user namespace with every
// capability of its bounding set. The package is Linux-only.
package oracle
