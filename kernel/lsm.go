package kernel

// LSM is one security module's part in the decision: the three hooks the
// ptrace paths call (include/linux/lsm_hook_defs.h: ptrace_access_check,
// ptrace_traceme, capable). Each returns OK or the errno the module
// denies with. Hooks record their reasoning and audit records in e.T when
// it is non-nil and must not allocate when it is nil.
type LSM interface {
	// Name is the module's name as /sys/kernel/security/lsm lists it.
	Name() string
	// PtraceAccessCheck decides whether tracer may access tracee in mode.
	PtraceAccessCheck(e Env, tracer, tracee *Task, mode Mode) Errno
	// PtraceTraceme decides whether child may make parent its tracer.
	PtraceTraceme(e Env, parent, child *Task) Errno
	// Capable decides whether t may use capability c in namespace ns.
	// Modules run after the capability module, which holds the rule itself.
	Capable(e Env, t *Task, ns *UserNS, c Cap, noaudit bool) Errno
}

// Env is what a hook may use besides its arguments: the world (for
// settings and other tasks) and the trace of an explained decision.
type Env struct {
	W *World
	T *Trace
}

// Capable asks every active module, in order, whether t may use c in ns
// (security/security.c:security_capable). The capability module comes
// first and holds the rule; the first denial ends the walk. noaudit
// selects the ns_capable_noaudit variant.
func (e Env) Capable(t *Task, ns *UserNS, c Cap, noaudit bool) bool {
	for _, m := range e.W.LSMs {
		if m.Capable(e, t, ns, c, noaudit) != OK {
			return false
		}
	}
	return true
}

// NoLSMHooks can be embedded by a module that leaves some hooks alone;
// its methods allow everything.
type NoLSMHooks struct{}

// PtraceAccessCheck allows.
func (NoLSMHooks) PtraceAccessCheck(Env, *Task, *Task, Mode) Errno { return OK }

// PtraceTraceme allows.
func (NoLSMHooks) PtraceTraceme(Env, *Task, *Task) Errno { return OK }

// Capable allows.
func (NoLSMHooks) Capable(Env, *Task, *UserNS, Cap, bool) Errno { return OK }
