package kernel

// Mutation breaks one rule of the model on purpose. It is for the
// verifier's mutation test only (package verify, mutation_test.go): the
// test sets it on the worlds it predicts in, to show that comparing the
// model with the real kernel catches the broken rule. Its zero value —
// the only value anywhere else — changes nothing; each check it adds is
// one comparison on the path it guards and allocates nothing.
//
// The rules a Mutation can break are the ones no other hook reaches: a
// Features flag is flipped on [World.Features] and a security module's
// hook is wrapped in [World.LSMs] directly.
type Mutation struct {
	// Skip lists steps of __ptrace_may_access to treat as passed.
	Skip PtraceSteps
	// SwapCreds swaps PTRACE_MODE_FSCREDS and PTRACE_MODE_REALCREDS in
	// every well-formed mode given to __ptrace_may_access, so that each
	// caller compares the other ids and, in commoncap, the other
	// capability set.
	SwapCreds bool
	// Entry, when set, stands in for the catalog entry with the same ID
	// in CheckEntry and ExplainEntry: a copy of it with its Perm, Mode or
	// Errno changed. The catalog itself is never edited.
	Entry *Entry
}

// PtraceSteps is a set of steps of kernel/ptrace.c:__ptrace_may_access
// that a [Mutation] skips.
type PtraceSteps uint8

// The steps.
const (
	// SkipThreadGroup removes the same_thread_group() shortcut: a thread
	// of the caller's group is checked like any other task.
	SkipThreadGroup PtraceSteps = 1 << iota
	// SkipIDs removes the comparison of the caller's uid and gid (fs or
	// real) with the target's real, effective and saved ids and its
	// ptrace_has_cap() override: every caller passes it.
	SkipIDs
	// SkipDumpable removes the dumpable check (get_dumpable(mm) !=
	// SUID_DUMP_USER && !ptrace_has_cap(mm->user_ns); task_still_dumpable
	// in trees with 31e62c2ebbfd): every target passes it.
	SkipDumpable
	// SkipCommoncap leaves the capability module out of
	// security_ptrace_access_check (security/commoncap.c:
	// cap_ptrace_access_check, the permitted-subset rule). Its capable()
	// hook still runs.
	SkipCommoncap
)
