// Package yama is the Yama security module's ptrace scoping
// (security/yama/yama_lsm.c). It restricts ATTACH modes and PTRACE_TRACEME
// only; READ is never affected.
package yama

import (
	"fmt"

	"github.com/procgate/procgate/kernel"
)

// Scope is kernel.yama.ptrace_scope.
type Scope int

// The scopes (YAMA_SCOPE_*).
const (
	Disabled   Scope = 0 // classic ptrace permissions
	Relational Scope = 1 // descendants, PR_SET_PTRACER, or CAP_SYS_PTRACE
	Capability Scope = 2 // CAP_SYS_PTRACE only
	NoAttach   Scope = 3 // nobody; cannot be lowered until reboot
)

// Module is Yama with its scope.
type Module struct {
	Scope Scope
}

var _ kernel.LSM = (*Module)(nil)

// New returns Yama at the given scope, which must be 0 to 3.
func New(scope int) (*Module, error) {
	if scope < 0 || scope > 3 {
		return nil, fmt.Errorf("yama ptrace_scope %d: want 0, 1, 2 or 3", scope)
	}
	return &Module{Scope: Scope(scope)}, nil
}

// Name returns "yama".
func (*Module) Name() string { return "yama" }

var _ kernel.PtraceSkipper = (*Module)(nil)

// PtraceSkip implements kernel.PtraceSkipper: yama_ptrace_access_check
// restricts only ATTACH modes, and nothing at YAMA_SCOPE_DISABLED.
func (m *Module) PtraceSkip(_, _ *kernel.Task, mode kernel.Mode) string {
	switch {
	case mode&kernel.ModeAttach == 0:
		return "READ mode: Yama restricts ATTACH only"
	case m.Scope == Disabled:
		return "ptrace_scope 0: no restriction beyond the classic ptrace permissions"
	}
	return ""
}

// PtraceAccessCheck is yama_ptrace_access_check.
func (m *Module) PtraceAccessCheck(e kernel.Env, tracer, tracee *kernel.Task, mode kernel.Mode) kernel.Errno {
	if why := m.PtraceSkip(tracer, tracee, mode); why != "" {
		e.T.Add("yama", kernel.Skip, why)
		return kernel.OK
	}
	rc := kernel.OK
	switch m.Scope {
	case Relational:
		switch {
		case kernel.IsDescendant(tracer, tracee):
			if e.T.On() {
				e.T.Addf("yama", kernel.Pass, "ptrace_scope 1: %s is a descendant of %s", tracee.Name, tracer.Name)
			}
		case exceptionFound(e, tracer, tracee):
		case e.Capable(tracer, tracee.Cred.UserNS, kernel.CapSysPtrace, false):
			if e.T.On() {
				e.T.Addf("yama", kernel.Pass, "ptrace_scope 1: caller holds CAP_SYS_PTRACE in the target's user namespace %q", tracee.Cred.UserNS.Name)
			}
		default:
			if e.T.On() {
				e.T.Addf("yama", kernel.Deny, "ptrace_scope 1: %s is not a descendant of %s, no PR_SET_PTRACER exception or existing trace covers it, and the caller lacks CAP_SYS_PTRACE in %q",
					tracee.Name, tracer.Name, tracee.Cred.UserNS.Name)
			}
			rc = kernel.EPERM
		}
	case Capability:
		if e.Capable(tracer, tracee.Cred.UserNS, kernel.CapSysPtrace, false) {
			if e.T.On() {
				e.T.Addf("yama", kernel.Pass, "ptrace_scope 2: caller holds CAP_SYS_PTRACE in %q", tracee.Cred.UserNS.Name)
			}
		} else {
			if e.T.On() {
				e.T.Addf("yama", kernel.Deny, "ptrace_scope 2: attaching needs CAP_SYS_PTRACE in the target's user namespace %q", tracee.Cred.UserNS.Name)
			}
			rc = kernel.EPERM
		}
	default:
		if e.T.On() {
			e.T.Add("yama", kernel.Deny, "ptrace_scope 3: no process may attach, not even root")
		}
		rc = kernel.EPERM
	}
	if rc != kernel.OK && !mode.NoAudit() && e.T.On() {
		e.T.AuditRecord(report("attach", tracee, tracer))
	}
	return rc
}

// exceptionFound is ptracer_exception_found: an existing trace by the
// caller's thread group, or a PR_SET_PTRACER exception naming the caller
// or one of its ancestors, or PR_SET_PTRACER_ANY.
func exceptionFound(e kernel.Env, tracer, tracee *kernel.Task) bool {
	if p := tracee.Tracer; p != nil && kernel.SameThreadGroup(p, tracer) {
		if e.T.On() {
			e.T.Addf("yama", kernel.Pass, "ptrace_scope 1: %s already traces %s", p.Name, tracee.Name)
		}
		return true
	}
	x := tracee.GroupLeader().Ptracer
	if x == nil {
		return false
	}
	if x.Any {
		if e.T.On() {
			e.T.Addf("yama", kernel.Pass, "ptrace_scope 1: %s declared PR_SET_PTRACER_ANY", tracee.GroupLeader().Name)
		}
		return true
	}
	if kernel.IsDescendant(x.Tracer, tracer) {
		if e.T.On() {
			e.T.Addf("yama", kernel.Pass, "ptrace_scope 1: %s declared PR_SET_PTRACER %s, and %s is it or its descendant", tracee.GroupLeader().Name, x.Tracer.Name, tracer.Name)
		}
		return true
	}
	return false
}

// TracemeSkip reports that yama_ptrace_traceme restricts nothing below
// ptrace_scope 2 (its switch has no case for 0 and 1).
func (m *Module) TracemeSkip(_, _ *kernel.Task) string {
	if m.Scope < Capability {
		return "ptrace_scope 0 or 1: Yama does not restrict PTRACE_TRACEME"
	}
	return ""
}

// PtraceTraceme is yama_ptrace_traceme. Denials are always logged.
func (m *Module) PtraceTraceme(e kernel.Env, parent, child *kernel.Task) kernel.Errno {
	if why := m.TracemeSkip(parent, child); why != "" {
		e.T.Add("yama", kernel.Skip, why)
		return kernel.OK
	}
	rc := kernel.OK
	switch m.Scope {
	case Capability:
		if !e.Capable(parent, child.Cred.UserNS, kernel.CapSysPtrace, false) {
			if e.T.On() {
				e.T.Addf("yama", kernel.Deny, "ptrace_scope 2: the parent needs CAP_SYS_PTRACE in %q for PTRACE_TRACEME", child.Cred.UserNS.Name)
			}
			rc = kernel.EPERM
		}
	case NoAttach:
		if e.T.On() {
			e.T.Add("yama", kernel.Deny, "ptrace_scope 3: PTRACE_TRACEME is refused")
		}
		rc = kernel.EPERM
	}
	if rc == kernel.OK {
		if e.T.On() {
			e.T.Addf("yama", kernel.Pass, "ptrace_scope %d allows PTRACE_TRACEME", m.Scope)
		}
		return rc
	}
	if e.T.On() {
		e.T.AuditRecord(report("traceme", child, parent))
	}
	return rc
}

// Capable allows: Yama has no capable hook.
func (*Module) Capable(kernel.Env, *kernel.Task, *kernel.UserNS, kernel.Cap, bool) kernel.Errno {
	return kernel.OK
}

// report is the line report_access prints (rate-limited printk).
func report(access string, target, agent *kernel.Task) string {
	return fmt.Sprintf("ptrace %s of %q[%d] was attempted by %q[%d]", access, cmdline(target), target.PID, cmdline(agent), agent.PID)
}

func cmdline(t *kernel.Task) string {
	switch {
	case t.Cmdline != "":
		return t.Cmdline
	case t.Comm != "":
		return t.Comm
	}
	return t.Name
}
