// Package landlock is the Landlock security module's ptrace scoping
// (security/landlock/task.c). It treats READ and ATTACH alike: a
// sandboxed caller reaches only tasks in its own domain or nested in it.
package landlock

import (
	"fmt"

	"github.com/procgate/procgate/kernel"
)

// Module is Landlock. ABI is the Landlock ABI version; denials are logged
// from ABI 7 (Linux 6.15) on.
type Module struct {
	ABI int
}

var _ kernel.LSM = Module{}

// New returns Landlock at the given ABI version.
func New(abi int) Module { return Module{ABI: abi} }

// Name returns "landlock".
func (Module) Name() string { return "landlock" }

// scopeLE is domain_scope_le: parent is nil (unrestricted) or child's
// domain or one of its ancestors.
func scopeLE(parent, child *kernel.LandlockDomain) bool {
	if parent == nil {
		return true
	}
	for w := child; w != nil; w = w.Parent {
		if w == parent {
			return true
		}
	}
	return false
}

var _ kernel.PtraceSkipper = Module{}

// PtraceSkip implements kernel.PtraceSkipper: hook_ptrace_access_check
// checks nothing for a caller without a domain.
func (Module) PtraceSkip(tracer, _ *kernel.Task, _ kernel.Mode) string {
	if tracer.Landlock == nil {
		return "caller is not Landlock-restricted"
	}
	return ""
}

// TracemeSkip reports that hook_ptrace_traceme lets an unrestricted
// parent trace any child (domain_ptrace with no parent domain), checking
// nothing.
func (Module) TracemeSkip(parent, _ *kernel.Task) string {
	if parent.Landlock == nil {
		return "parent is not Landlock-restricted"
	}
	return ""
}

// PtraceAccessCheck is hook_ptrace_access_check.
func (m Module) PtraceAccessCheck(e kernel.Env, tracer, tracee *kernel.Task, mode kernel.Mode) kernel.Errno {
	if why := m.PtraceSkip(tracer, tracee, mode); why != "" {
		e.T.Add("landlock", kernel.Skip, why)
		return kernel.OK
	}
	if scopeLE(tracer.Landlock, tracee.Landlock) {
		if e.T.On() {
			e.T.Addf("landlock", kernel.Pass, "target's domain %s is the caller's domain %q or nested in it", name(tracee.Landlock), tracer.Landlock.Name)
		}
		return kernel.OK
	}
	if e.T.On() {
		e.T.Addf("landlock", kernel.Deny, "caller is sandboxed in domain %q and the target's domain %s is neither it nor nested in it (%s mode alike)", tracer.Landlock.Name, name(tracee.Landlock), mode)
		if !mode.NoAudit() && m.ABI >= 7 {
			e.T.AuditRecord(record(tracer.Landlock, tracee))
		}
	}
	return kernel.EPERM
}

// PtraceTraceme is hook_ptrace_traceme: the parent's domain must be the
// child's or an ancestor of it.
func (m Module) PtraceTraceme(e kernel.Env, parent, child *kernel.Task) kernel.Errno {
	if why := m.TracemeSkip(parent, child); why != "" {
		e.T.Add("landlock", kernel.Skip, why)
		return kernel.OK
	}
	if scopeLE(parent.Landlock, child.Landlock) {
		if e.T.On() {
			e.T.Add("landlock", kernel.Pass, "the parent's Landlock domain is the child's or encloses it")
		}
		return kernel.OK
	}
	if e.T.On() {
		e.T.Addf("landlock", kernel.Deny, "the parent is sandboxed in %s, which does not enclose the child's domain %s", name(parent.Landlock), name(child.Landlock))
		if m.ABI >= 7 {
			e.T.AuditRecord(record(parent.Landlock, child))
		}
	}
	return kernel.EPERM
}

// Capable allows: Landlock has no capable hook.
func (Module) Capable(kernel.Env, *kernel.Task, *kernel.UserNS, kernel.Cap, bool) kernel.Errno {
	return kernel.OK
}

func name(d *kernel.LandlockDomain) string {
	if d == nil {
		return "(none: unrestricted)"
	}
	return fmt.Sprintf("%q", d.Name)
}

// record is the LANDLOCK_ACCESS audit record (security/landlock/audit.c).
func record(d *kernel.LandlockDomain, object *kernel.Task) string {
	comm := object.Comm
	if comm == "" {
		comm = object.Name
	}
	return fmt.Sprintf("landlock: domain=%s blockers=ptrace opid=%d ocomm=%q", d.Name, object.PID, comm)
}
