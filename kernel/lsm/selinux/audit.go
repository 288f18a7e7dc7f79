package selinux

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/procgate/procgate/kernel"
)

// audited is the audit decision of security/selinux/include/avc.h:
// avc_audit_required: denied permissions are logged unless dontaudit
// cleared their auditdeny bits; granted ones only when auditallow set
// them.
func audited(requested uint32, d avDecision) (audited, denied uint32) {
	denied = requested &^ d.allowed
	if denied != 0 {
		return denied & d.auditdeny, denied
	}
	return requested & d.auditallow, 0
}

// record formats the AVC record the kernel would log, if any
// (security/selinux/avc.c:avc_audit_pre_callback, security/lsm_audit.c:
// dump_common_audit_data, avc_audit_post_callback):
//
//	avc:  denied  { read } for  pid=1234 comm="lsof" scontext=… tcontext=… tclass=file permissive=0
//
// The ptrace hooks pass no audit data, so there are no name=/path=
// fields; capability checks add "capability=N " before scontext.
func (m *Module) record(ssid, tsid sid, c class, requested uint32, d avDecision, rc kernel.Errno, current *kernel.Task, capNum int) (string, bool) {
	av, denied := audited(requested, d)
	if av == 0 {
		return "", false
	}
	var b strings.Builder
	b.WriteString("avc:  ")
	if denied != 0 {
		b.WriteString("denied")
	} else {
		b.WriteString("granted")
	}
	b.WriteString("  ")
	b.WriteString(c.permString(av))
	b.WriteString(" for  pid=")
	b.WriteString(strconv.Itoa(current.AuditPID()))
	b.WriteString(" comm=")
	b.WriteString(kernel.AuditString(current.AuditComm()))
	if capNum >= 0 {
		b.WriteString(" capability=")
		b.WriteString(strconv.Itoa(capNum))
		b.WriteString(" ")
	}
	b.WriteString(" scontext=")
	b.WriteString(m.sids.info(ssid).context)
	b.WriteString(" tcontext=")
	b.WriteString(m.sids.info(tsid).context)
	b.WriteString(" tclass=")
	b.WriteString(c.String())
	if denied != 0 {
		if rc == kernel.OK {
			b.WriteString(" permissive=1")
		} else {
			b.WriteString(" permissive=0")
		}
	}
	return b.String(), true
}

// explain adds the trace step.
func (m *Module) explain(t *kernel.Trace, ssid, tsid sid, c class, requested uint32, d avDecision, rc kernel.Errno, what string) {
	s, o := m.sids.info(ssid), m.sids.info(tsid)
	if s.typ == "" {
		s.typ = "(none)"
	}
	if o.typ == "" {
		o.typ = "(none)"
	}
	q := fmt.Sprintf("%s: %s → %s %s %s", what, s.typ, o.typ, c, c.permString(requested))
	denied := requested &^ d.allowed
	switch {
	case denied == 0:
		extra := ""
		if requested&d.auditallow != 0 {
			extra = "; an auditallow rule logs the grant"
		}
		t.Addf("selinux", kernel.Pass, "%s is allowed by the policy%s", q, extra)
	case rc == kernel.OK:
		why := "SELinux is permissive"
		if d.permissive {
			why = "domain " + s.typ + " is permissive"
		}
		t.Addf("selinux", kernel.Pass, "%s is not allowed, but %s: access granted, the denial is logged with permissive=1%s", q, why, hidden(requested, d))
	default:
		t.Addf("selinux", kernel.Deny, "%s is not allowed by any allow rule: EACCES%s", q, hidden(requested, d))
	}
}

func hidden(requested uint32, d avDecision) string {
	if av, _ := audited(requested, d); av == 0 {
		return " (a dontaudit rule hides the AVC record)"
	}
	return ""
}
