// Package smack is the Smack security module's ptrace checks
// (security/smack/smack_lsm.c, security/smack/smack_access.c).
//
// READ modes need the "r" access from the tracer's label to the
// tracee's; ATTACH modes depend on /smack/ptrace ([Ptrace]): the default
// needs "rw", exact needs identical labels unless the tracer holds
// CAP_SYS_PTRACE, draconian needs identical labels. PTRACE_TRACEME checks
// the parent against the child as ATTACH. Denials are EACCES and logged
// unless the mode carries NOAUDIT.
//
// Task labels are [kernel.Task.Smack]; an empty label is the floor
// label "_".
package smack

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/procgate/procgate/kernel"
)

// Ptrace is the /smack/ptrace setting (smack_ptrace_rule).
type Ptrace int

// The settings (SMACK_PTRACE_*).
const (
	PtraceDefault   Ptrace = 0 // ATTACH needs the rw access
	PtraceExact     Ptrace = 1 // ATTACH needs identical labels or CAP_SYS_PTRACE
	PtraceDraconian Ptrace = 2 // ATTACH needs identical labels
)

// String returns "default", "exact" or "draconian".
func (p Ptrace) String() string {
	switch p {
	case PtraceDefault:
		return "default"
	case PtraceExact:
		return "exact"
	case PtraceDraconian:
		return "draconian"
	}
	return "ptrace" + strconv.Itoa(int(p))
}

// Logging is /smack/logging (log_policy).
type Logging uint8

// Logging bits (SMACK_AUDIT_DENIED, SMACK_AUDIT_ACCEPT).
const (
	LogDenied   Logging = 1
	LogAccepted Logging = 2
)

// Module is Smack with its rules and settings. It is read-only after
// New and safe for concurrent use.
type Module struct {
	// Ptrace is the /smack/ptrace setting.
	Ptrace Ptrace
	// Logging is the /smack/logging setting; New sets LogDenied, the
	// kernel's default.
	Logging Logging
	// OnlyCap is /smack/onlycap: when not empty, only tasks with one of
	// these labels may use capabilities to override Smack
	// (smack_privileged_cred).
	OnlyCap []string

	rules *Rules
}

var _ kernel.LSM = (*Module)(nil)

// New returns Smack with the given /smack/ptrace value (0, 1 or 2) and
// rules (nil: no rules).
func New(ptrace int, rules *Rules) (*Module, error) {
	if ptrace < 0 || ptrace > 2 {
		return nil, fmt.Errorf("smack ptrace %d: want 0 (default), 1 (exact) or 2 (draconian)", ptrace)
	}
	if rules == nil {
		rules = &Rules{byPair: map[pair]Access{}}
	}
	return &Module{Ptrace: Ptrace(ptrace), Logging: LogDenied, rules: rules}, nil
}

// Name returns "smack".
func (*Module) Name() string { return "smack" }

// Rules returns the loaded rules.
func (m *Module) Rules() *Rules { return m.rules }

func labelOf(t *kernel.Task) string {
	if t.Smack == "" {
		return Floor
	}
	return t.Smack
}

// privileged is security/smack/smack_access.c:smack_privileged_cred:
// the capability in the initial namespace by commoncap's rule alone
// (cap_capable, not the whole module stack) and, when onlycap is set, a
// listed label. smack_privileged (current) also counts kernel threads.
func (m *Module) privileged(t *kernel.Task, c kernel.Cap, current bool, init *kernel.UserNS) bool {
	if current && t.Kthread {
		return true
	}
	if !t.Cred.HasCapIn(init, c) {
		return false
	}
	if len(m.OnlyCap) == 0 {
		return true
	}
	l := labelOf(t)
	for _, o := range m.OnlyCap {
		if o == l {
			return true
		}
	}
	return false
}

// PtraceAccessCheck is security/smack/smack_lsm.c:smack_ptrace_access_check.
func (m *Module) PtraceAccessCheck(e kernel.Env, tracer, tracee *kernel.Task, mode kernel.Mode) kernel.Errno {
	return m.ruleCheck(e, tracer, labelOf(tracee), tracer, mode, "smack_ptrace_access_check")
}

// PtraceTraceme is security/smack/smack_lsm.c:smack_ptrace_traceme: the
// parent against current (the child) as ATTACH, always audited.
func (m *Module) PtraceTraceme(e kernel.Env, parent, child *kernel.Task) kernel.Errno {
	return m.ruleCheck(e, parent, labelOf(child), child, kernel.ModeAttach, "smack_ptrace_traceme")
}

// Capable allows: Smack has no capable hook.
func (*Module) Capable(kernel.Env, *kernel.Task, *kernel.UserNS, kernel.Cap, bool) kernel.Errno {
	return kernel.OK
}

// ruleCheck is security/smack/smack_lsm.c:smk_ptrace_rule_check. current
// is the task the hook runs in: its capabilities decide the
// CAP_MAC_OVERRIDE override of smk_tskacc and it is named in the record.
func (m *Module) ruleCheck(e kernel.Env, tracer *kernel.Task, object string, current *kernel.Task, mode kernel.Mode, fn string) kernel.Errno {
	subject := labelOf(tracer)
	audit := !mode.NoAudit()
	if mode&kernel.ModeAttach != 0 && (m.Ptrace == PtraceExact || m.Ptrace == PtraceDraconian) {
		rc := kernel.EACCES
		var why string
		switch {
		case subject == object:
			rc, why = kernel.OK, "labels are identical"
		case m.Ptrace == PtraceDraconian:
			why = "labels differ and /smack/ptrace is 2 (draconian): no override"
		case m.privileged(tracer, kernel.CapSysPtrace, false, e.W.Init):
			rc, why = kernel.OK, "labels differ, but the tracer holds CAP_SYS_PTRACE in the initial namespace (/smack/ptrace 1, exact)"
		default:
			why = "labels differ and the tracer lacks CAP_SYS_PTRACE (/smack/ptrace 1, exact)"
		}
		if e.T.On() {
			e.T.Addf("smack", outcome(rc), "ATTACH %q → %q: %s", subject, object, why)
			if audit {
				m.log(e.T, fn, subject, object, "", rc, current, tracer)
			}
		}
		return rc
	}
	req := MayRead
	if mode&kernel.ModeAttach != 0 {
		req = MayRead | MayWrite // smk_ptrace_mode: ATTACH → MAY_READWRITE
	}
	// smk_tskacc: the global rules, then CAP_MAC_OVERRIDE of current.
	rc, why, may := m.rules.access(subject, object, req)
	override := rc != kernel.OK && m.privileged(current, kernel.CapMacOverride, true, e.W.Init)
	if override {
		rc = kernel.OK
	}
	if e.T.On() {
		r := why.String(may)
		if override {
			r += ", overridden by " + current.Name + "'s CAP_MAC_OVERRIDE"
		}
		e.T.Addf("smack", outcome(rc), "%q → %q needs %s: %s", subject, object, req, r)
		if audit {
			m.log(e.T, fn, subject, object, req.String(), rc, current, tracer)
		}
	}
	return rc
}

// log is security/smack/smack_access.c:smack_log with
// smack_log_callback and lsm_audit's task fields:
//
//	lsm=SMACK fn=smack_ptrace_access_check action=denied subject="a" object="b" requested=rw pid=1 comm="x" opid=1 ocomm="x"
//
// requested is replaced by labels_differ for the exact and draconian
// checks; opid and ocomm name the tracer.
func (m *Module) log(t *kernel.Trace, fn, subject, object, request string, rc kernel.Errno, current, tracer *kernel.Task) {
	if rc != kernel.OK && m.Logging&LogDenied == 0 || rc == kernel.OK && m.Logging&LogAccepted == 0 {
		return
	}
	var b strings.Builder
	b.WriteString("lsm=SMACK fn=" + fn + " action=")
	if rc != kernel.OK {
		b.WriteString("denied")
	} else {
		b.WriteString("granted")
	}
	b.WriteString(" subject=" + kernel.AuditString(subject) + " object=" + kernel.AuditString(object))
	if request == "" {
		b.WriteString(" labels_differ")
	} else {
		b.WriteString(" requested=" + request)
	}
	b.WriteString(" pid=" + strconv.Itoa(current.AuditPID()) + " comm=" + kernel.AuditString(current.AuditComm()))
	if p := tracer.AuditPID(); p != 0 {
		b.WriteString(" opid=" + strconv.Itoa(p) + " ocomm=" + kernel.AuditString(tracer.AuditComm()))
	}
	t.AuditRecord(b.String())
}

func outcome(rc kernel.Errno) kernel.Outcome {
	if rc == kernel.OK {
		return kernel.Pass
	}
	return kernel.Deny
}
