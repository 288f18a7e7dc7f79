package apparmor

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/procgate/procgate/kernel"
)

// ptraceRecord formats the record of security/apparmor/audit.c:audit_pre,
// security/lsm_audit.c:dump_common_audit_data and
// security/apparmor/task.c:audit_ptrace_cb:
//
//	apparmor="DENIED" operation="ptrace" class="ptrace" profile="p" pid=1 comm="c" requested_mask="read" denied_mask="read" peer="q"
//
// pid and comm are current's; request 0 (the legacy capability path)
// prints no masks.
func ptraceRecord(typ, profile string, current *kernel.Task, request, denied uint8, peer string) string {
	var b strings.Builder
	b.WriteString(`apparmor="` + typ + `" operation="ptrace" class="ptrace" profile=`)
	b.WriteString(kernel.AuditString(profile))
	writeTask(&b, current)
	if request != 0 {
		b.WriteString(` requested_mask="` + maskName(request) + `"`)
		if denied != 0 {
			b.WriteString(` denied_mask="` + maskName(denied) + `"`)
		}
	}
	b.WriteString(" peer=")
	b.WriteString(kernel.AuditString(peer))
	return b.String()
}

// capRecord formats the record of security/apparmor/capability.c:audit_cb:
//
//	apparmor="DENIED" operation="capable" class="cap" profile="p" pid=1 comm="c" capability=19  capname="sys_ptrace"
//
// (lsm_audit prints "capability=%d " with a trailing space).
func capRecord(typ, profile string, current *kernel.Task, c kernel.Cap, info string, err kernel.Errno) string {
	var b strings.Builder
	b.WriteString(`apparmor="` + typ + `" operation="capable" class="cap"`)
	if info != "" {
		b.WriteString(` info="` + info + `"`)
		if err != kernel.OK {
			fmt.Fprintf(&b, " error=-%d", uint16(err))
		}
	}
	b.WriteString(" profile=")
	b.WriteString(kernel.AuditString(profile))
	writeTask(&b, current)
	b.WriteString(" capability=" + strconv.Itoa(int(c)) + " ")
	b.WriteString(` capname="` + c.String() + `"`)
	return b.String()
}

func writeTask(b *strings.Builder, t *kernel.Task) {
	b.WriteString(" pid=" + strconv.Itoa(t.AuditPID()) + " comm=" + kernel.AuditString(t.AuditComm()))
}
