// Package capability is the capability security module, commoncap
// (security/commoncap.c), as the ptrace paths use it. It is always active
// and always first.
package capability

import "github.com/procgate/procgate/kernel"

// Module is the commoncap module. Its zero value is ready to use.
type Module struct{}

var _ kernel.LSM = Module{}

// New returns the module.
func New() Module { return Module{} }

// Name returns "capability".
func (Module) Name() string { return "capability" }

// PtraceAccessCheck is security/commoncap.c:cap_ptrace_access_check: in
// one user namespace the target's permitted set must be a subset of the
// caller's effective set (FSCREDS) or permitted set (REALCREDS); otherwise
// the caller needs CAP_SYS_PTRACE in the target's namespace, checked with
// ns_capable, which audits whatever the mode says.
func (Module) PtraceAccessCheck(e kernel.Env, tracer, tracee *kernel.Task, mode kernel.Mode) kernel.Errno {
	cc, tc := &tracer.Cred, &tracee.Cred
	callerCaps, set := cc.CapPermitted, "permitted"
	if mode.FSCreds() {
		callerCaps, set = cc.CapEffective, "effective"
	}
	if cc.UserNS == tc.UserNS && tc.CapPermitted.SubsetOf(callerCaps) {
		if e.T.On() {
			e.T.Addf("capability", kernel.Pass, "target's permitted capabilities {%s} are a subset of the caller's %s set {%s}", tc.CapPermitted, set, callerCaps)
		}
		return kernel.OK
	}
	if e.Capable(tracer, tc.UserNS, kernel.CapSysPtrace, false) {
		if e.T.On() {
			e.T.Addf("capability", kernel.Pass, "%s; caller holds CAP_SYS_PTRACE in the target's user namespace %q", subsetReason(cc, tc, callerCaps, set), tc.UserNS.Name)
		}
		return kernel.OK
	}
	if e.T.On() {
		e.T.Addf("capability", kernel.Deny, "%s and caller lacks CAP_SYS_PTRACE in the target's user namespace %q", subsetReason(cc, tc, callerCaps, set), tc.UserNS.Name)
	}
	return kernel.EPERM
}

func subsetReason(cc, tc *kernel.Cred, callerCaps kernel.CapSet, set string) string {
	if cc.UserNS != tc.UserNS {
		return "caller (user namespace " + quote(cc.UserNS.Name) + ") and target (" + quote(tc.UserNS.Name) + ") are in different user namespaces, so the subset rule does not apply,"
	}
	return "target's permitted capabilities {" + tc.CapPermitted.String() + "} are not a subset of the caller's " + set + " set {" + callerCaps.String() + "}"
}

func quote(s string) string { return "\"" + s + "\"" }

// PtraceTraceme is security/commoncap.c:cap_ptrace_traceme: the parent
// must share the child's user namespace and hold every capability the
// child permits itself, or hold CAP_SYS_PTRACE in the child's namespace.
func (Module) PtraceTraceme(e kernel.Env, parent, child *kernel.Task) kernel.Errno {
	pc, cc := &parent.Cred, &child.Cred
	if pc.UserNS == cc.UserNS && cc.CapPermitted.SubsetOf(pc.CapPermitted) {
		if e.T.On() {
			e.T.Addf("capability", kernel.Pass, "child's permitted capabilities {%s} are a subset of the parent's {%s}", cc.CapPermitted, pc.CapPermitted)
		}
		return kernel.OK
	}
	if e.Capable(parent, cc.UserNS, kernel.CapSysPtrace, false) {
		if e.T.On() {
			e.T.Addf("capability", kernel.Pass, "parent holds CAP_SYS_PTRACE in the child's user namespace %q", cc.UserNS.Name)
		}
		return kernel.OK
	}
	if e.T.On() {
		e.T.Addf("capability", kernel.Deny, "child's permitted capabilities {%s} are not within the parent's {%s} (or the namespaces differ) and the parent lacks CAP_SYS_PTRACE in %q",
			cc.CapPermitted, pc.CapPermitted, cc.UserNS.Name)
	}
	return kernel.EPERM
}

// Capable is security/commoncap.c:cap_capable.
func (Module) Capable(e kernel.Env, t *kernel.Task, ns *kernel.UserNS, c kernel.Cap, noaudit bool) kernel.Errno {
	if t.Cred.HasCapIn(ns, c) {
		return kernel.OK
	}
	return kernel.EPERM
}
