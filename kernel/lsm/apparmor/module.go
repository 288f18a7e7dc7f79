package apparmor

import (
	"strings"
	"sync/atomic"

	"github.com/procgate/procgate/kernel"
)

// Module is AppArmor with a set of loaded profiles. It is safe for
// concurrent use; the policy may be replaced while decisions run.
type Module struct {
	// LegacyNoPtraceMediation models policy compiled without ptrace
	// mediation (an ABI before ptrace rules): a profile then mediates
	// ptrace only if it has ptrace rules, and a profile without any falls
	// back to the legacy rule of profile_tracer_perm (same label, else
	// capability sys_ptrace in the profile). The default, false, is what
	// abi 3.0 policy does on Linux 6.1: every confined profile mediates
	// ptrace.
	LegacyNoPtraceMediation bool

	policy atomic.Pointer[Policy]
}

var _ kernel.LSM = (*Module)(nil)

// New returns AppArmor with the given profiles (nil: none loaded).
func New(p *Policy) *Module {
	m := &Module{}
	m.SetPolicy(p)
	return m
}

// Name returns "apparmor".
func (*Module) Name() string { return "apparmor" }

// SetPolicy replaces the loaded profiles.
func (m *Module) SetPolicy(p *Policy) {
	if p == nil {
		p = &Policy{profiles: map[string]*Profile{}}
	}
	m.policy.Store(p)
}

// Policy returns the loaded profiles.
func (m *Module) Policy() *Policy { return m.policy.Load() }

// label is a task's label resolved against the policy. prof is nil for
// unconfined.
type label struct {
	name string
	prof *Profile
}

// unknownProfiles stand in for labels that name no loaded profile: one
// enforce-mode profile without rules per name would allocate, so they
// share this one and keep their own name in label.name.
var unknownProfile = func() *Profile { p := &Profile{Name: "(not loaded)"}; p.compile(); return p }()

// resolve maps a task's label to its profile. "" and "unconfined" are
// unconfined; a " (mode)" suffix, as /proc/<pid>/attr/current shows it,
// is dropped.
func (m *Module) resolve(t *kernel.Task) label {
	name := t.AppArmor
	if i := strings.Index(name, " ("); i > 0 && strings.HasSuffix(name, ")") {
		name = name[:i]
	}
	if name == "" || name == "unconfined" {
		return label{name: "unconfined"}
	}
	p := m.policy.Load().profiles[name]
	if p == nil {
		return label{name: name, prof: unknownProfile}
	}
	if p.Mode == Unconfined {
		return label{name: name}
	}
	return label{name: name, prof: p}
}

// mediates reports whether a confined profile mediates ptrace
// (ANY_RULE_MEDIATES(&profile->rules, AA_CLASS_PTRACE)).
func (m *Module) mediates(p *Profile) bool {
	return !m.LegacyNoPtraceMediation || p.HasPtraceRules()
}

var _ kernel.PtraceSkipper = (*Module)(nil)

// PtraceSkip implements kernel.PtraceSkipper: for an unconfined tracer
// profile_tracer_perm returns 0 at once and profile_tracee_perm does not
// consult the target's profile (security/apparmor/task.c), so
// apparmor_ptrace_access_check checks nothing.
func (m *Module) PtraceSkip(tracer, _ *kernel.Task, _ kernel.Mode) string {
	if m.resolve(tracer).prof == nil {
		return "tracer is unconfined: its side passes and the target's profile is not consulted"
	}
	return ""
}

// PtraceAccessCheck is security/apparmor/lsm.c:apparmor_ptrace_access_check:
// read for READ modes, trace otherwise. NOAUDIT is ignored.
func (m *Module) PtraceAccessCheck(e kernel.Env, tracer, tracee *kernel.Task, mode kernel.Mode) kernel.Errno {
	if why := m.PtraceSkip(tracer, tracee, mode); why != "" {
		e.T.Add("apparmor", kernel.Skip, why)
		return kernel.OK
	}
	req := permTrace
	if mode.IsRead() {
		req = permRead
	}
	return m.mayPtrace(e, tracer, tracee, tracer, req)
}

// PtraceTraceme is security/apparmor/lsm.c:apparmor_ptrace_traceme: the
// parent as tracer, current (the child) as tracee, requesting trace.
func (m *Module) PtraceTraceme(e kernel.Env, parent, child *kernel.Task) kernel.Errno {
	return m.mayPtrace(e, parent, child, child, permTrace)
}

// mayPtrace is security/apparmor/task.c:aa_may_ptrace: both sides are
// checked and audited; the tracee side's error wins (xcheck).
func (m *Module) mayPtrace(e kernel.Env, tracerT, traceeT, current *kernel.Task, req uint8) kernel.Errno {
	tracer, tracee := m.resolve(tracerT), m.resolve(traceeT)
	err1 := m.tracerPerm(e, tracerT, tracer, tracee, current, req)
	err2 := m.traceePerm(e, tracee, tracer, current, req<<ptracePermShift)
	if err2 != kernel.OK {
		return err2
	}
	return err1
}

// tracerPerm is security/apparmor/task.c:profile_tracer_perm.
func (m *Module) tracerPerm(e kernel.Env, tracerT *kernel.Task, tracer, tracee label, current *kernel.Task, req uint8) kernel.Errno {
	if tracer.prof == nil {
		if e.T.On() {
			e.T.Add("apparmor", kernel.Skip, "tracer is unconfined: its side passes and the target's profile is not consulted")
		}
		return kernel.OK
	}
	if m.mediates(tracer.prof) {
		return m.ptracePerm(e, tracer, tracee.name, current, req, "tracer")
	}
	// Legacy: profile without ptrace rules in policy that does not mediate
	// ptrace.
	if tracer.name == tracee.name {
		if e.T.On() {
			e.T.Addf("apparmor", kernel.Pass, "profile %q has no ptrace rules (legacy policy): same label, allowed", tracer.name)
		}
		return kernel.OK
	}
	capErr := m.profileCapable(e, tracer, current, kernel.CapSysPtrace, false)
	err := capErr
	typ := ""
	switch {
	case err == kernel.OK && tracer.prof.AuditAll:
		typ = "AUDIT"
	case err != kernel.OK && tracer.prof.Mode == Complain:
		typ, err = "ALLOWED", kernel.OK
	case err != kernel.OK:
		typ = "DENIED"
	}
	if e.T.On() {
		e.T.Addf("apparmor", outcome(err), "profile %q has no ptrace rules (legacy policy): a different label needs capability sys_ptrace in the profile: %s",
			tracer.name, map[bool]string{true: "granted", false: "missing"}[capErr == kernel.OK])
		if typ != "" {
			e.T.AuditRecord(ptraceRecord(typ, tracer.name, current, 0, 0, tracee.name))
		}
	}
	return err
}

// traceePerm is security/apparmor/task.c:profile_tracee_perm.
func (m *Module) traceePerm(e kernel.Env, tracee, tracer label, current *kernel.Task, req uint8) kernel.Errno {
	switch {
	case tracee.prof == nil:
		if e.T.On() {
			e.T.Add("apparmor", kernel.Skip, "target is unconfined: no target-side check")
		}
		return kernel.OK
	case tracer.prof == nil:
		return kernel.OK
	case !m.mediates(tracee.prof):
		if e.T.On() {
			e.T.Addf("apparmor", kernel.Skip, "target profile %q has no ptrace rules (legacy policy): no target-side check", tracee.name)
		}
		return kernel.OK
	}
	return m.ptracePerm(e, tracee, tracer.name, current, req, "target")
}

// ptracePerm is security/apparmor/task.c:profile_ptrace_perm with
// security/apparmor/lib.c:aa_apply_modes_to_perms and aa_check_perms.
func (m *Module) ptracePerm(e kernel.Env, subj label, peer string, current *kernel.Task, req uint8, side string) kernel.Errno {
	p := subj.prof
	ps := p.match(peer)
	if p.AuditAll {
		ps.audit, ps.quiet = permAll, 0
	}
	denied := req & (^ps.allow | ps.deny)
	if denied == 0 {
		if e.T.On() {
			e.T.Addf("apparmor", kernel.Pass, "%s profile %q grants ptrace %s to peer %q", side, subj.name, maskName(req), peer)
			if req&ps.audit != 0 {
				e.T.AuditRecord(ptraceRecord("AUDIT", subj.name, current, req&ps.audit, 0, peer))
			}
		}
		return kernel.OK
	}
	err := kernel.EACCES
	typ := "DENIED"
	if p.Mode == Complain {
		typ = "ALLOWED"
	}
	logged := denied &^ ps.quiet
	if logged != 0 && typ == "ALLOWED" {
		err = kernel.OK
	}
	if e.T.On() {
		why := "no rule grants it"
		if denied&ps.deny != 0 {
			why = "a deny rule refuses it"
		}
		switch {
		case err == kernel.OK:
			e.T.Addf("apparmor", kernel.Pass, "%s profile %q does not grant ptrace %s to peer %q (%s), but it is in complain mode: allowed and logged", side, subj.name, maskName(req), peer, why)
		case logged == 0:
			e.T.Addf("apparmor", kernel.Deny, "%s profile %q refuses ptrace %s to peer %q (%s; deny rules are quiet, nothing is logged): EACCES", side, subj.name, maskName(req), peer, why)
		default:
			e.T.Addf("apparmor", kernel.Deny, "%s profile %q refuses ptrace %s to peer %q (%s): EACCES", side, subj.name, maskName(req), peer, why)
		}
		if logged != 0 {
			e.T.AuditRecord(ptraceRecord(typ, subj.name, current, req, logged, peer))
		}
	}
	return err
}

// Capable is security/apparmor/lsm.c:apparmor_capable: unconfined tasks
// pass; a confined profile needs a capability rule for c
// (security/apparmor/capability.c:profile_capable). The namespace does
// not matter. noaudit suppresses the record except in complain mode,
// where it is logged with info="optional: no audit".
func (m *Module) Capable(e kernel.Env, t *kernel.Task, ns *kernel.UserNS, c kernel.Cap, noaudit bool) kernel.Errno {
	l := m.resolve(t)
	if l.prof == nil {
		return kernel.OK
	}
	return m.profileCapable(e, l, t, c, noaudit)
}

// profileCapable is profile_capable with audit_caps (without its
// per-CPU duplicate suppression).
func (m *Module) profileCapable(e kernel.Env, l label, current *kernel.Task, c kernel.Cap, noaudit bool) kernel.Errno {
	p := l.prof
	err := kernel.EPERM
	if p.caps.allow.Has(c) && !p.caps.deny.Has(c) {
		err = kernel.OK
	}
	info := ""
	if noaudit {
		if p.Mode != Complain {
			if e.T.On() {
				e.T.Addf("apparmor", outcome(err), "profile %q %s capability %s (not audited)", l.name, grants(err), c)
			}
			return err
		}
		info = "optional: no audit"
	}
	typ := ""
	switch {
	case err == kernel.OK:
		if p.AuditAll || p.caps.audit.Has(c) {
			typ = "AUDIT"
		}
	case p.caps.quiet.Has(c) && !p.AuditAll:
	case p.Mode == Complain:
		typ = "ALLOWED"
	default:
		typ = "DENIED"
	}
	rc := err
	if typ == "ALLOWED" {
		rc = kernel.OK
	}
	if e.T.On() {
		if typ == "ALLOWED" {
			e.T.Addf("apparmor", kernel.Pass, "profile %q lacks capability %s but is in complain mode: allowed and logged", l.name, c)
		} else {
			e.T.Addf("apparmor", outcome(rc), "profile %q %s capability %s", l.name, grants(err), c)
		}
		if typ != "" {
			e.T.AuditRecord(capRecord(typ, l.name, current, c, info, err))
		}
	}
	return rc
}

func grants(err kernel.Errno) string {
	if err == kernel.OK {
		return "grants"
	}
	return "does not grant"
}

func outcome(err kernel.Errno) kernel.Outcome {
	if err == kernel.OK {
		return kernel.Pass
	}
	return kernel.Deny
}
