package policy

import (
	"errors"
	"strings"
	"testing"

	"github.com/procgate/procgate/audit"
)

// The record an explanation produces: the rule= field names the access
// rules, else none with the nearest allow rule, then the audit rules; the
// label is the SELinux context, else the AppArmor label; the generation
// and the reason are carried.
func TestExplanationRecord(t *testing.T) {
	p := mustLoad(t, brokerPolicy)
	confined := &Subject{Process: Process{PID: 14, Comm: "gdb", UID: 1000, GID: 1000, Groups: []uint32{500}, AppArmor: "gdb (enforce)"}}
	nodeTgt := &Target{Process: Process{PID: 24, Comm: "app", UID: 1000}, Dumpable: true}
	for _, tc := range []struct {
		name    string
		s       *Subject
		t       *Target
		it      Item
		rule    string
		context string
	}{
		{"grant with its auditallow", alice, appA, ItemMem, "allow@t.pol:13+auditallow@t.pol:14", ""},
		{"protect", alice, sshdA, ItemAttach, "protect@t.pol:15", ""},
		{"default denial, nearest allow", lsofPod, appA, ItemFd, "none(allow@t.pol:12)", ""},
		{"default denial under dontaudit", nodeExp, nodeTgt, ItemEnviron, "none+dontaudit@t.pol:11", ""},
		{"nothing near", bob, appA, ItemEnviron, "none", ""},
		{"AppArmor label", confined, appA, ItemAttach, "allow@t.pol:13+auditallow@t.pol:14", "gdb (enforce)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := p.Explain(tc.s, tc.t, 0, tc.it)
			r := e.Record()
			access, name := tc.it.AuditAccess()
			if r.Rule != tc.rule || r.Generation != p.Generation() || r.Reason != e.Reason || r.Granted != e.Allowed ||
				r.Access != access || r.Item != name || r.Subject.Context != tc.context ||
				r.Subject.PID != tc.s.PID || r.Subject.Comm != tc.s.Comm || r.Target.UID != tc.t.UID || !r.Time.IsZero() {
				t.Errorf("Record() = %+v\nwant rule %q, context %q", r, tc.rule, tc.context)
			}
			line := e.AuditLine()
			if !strings.HasPrefix(line, "broker: "+r.Result()+" { "+tc.it.AccessName()+" } for pid=") {
				t.Errorf("AuditLine() = %q", line)
			}
		})
	}
}

// Unknown items, items of the other class and unknown effects are
// refused at their column.
func TestParseAuditLineVocabulary(t *testing.T) {
	const tail = ` for pid=1 comm="a" uid=2 tpid=3 tcomm="b" tuid=4 rule=RULE gen=5 permissive=0`
	line := func(access, rule string) string {
		return "broker: denied { " + access + " }" + strings.Replace(tail, "RULE", rule, 1)
	}
	if rec, err := ParseAuditLine(line("read:environ", "none(allow@a.pol:3)+dontaudit@a.pol:4")); err != nil || rec.Item != ItemEnviron ||
		!rec.Default || rec.Nearest.String() != "allow@a.pol:3" || len(rec.Rules) != 1 || rec.Rules[0].Effect != DontAudit {
		t.Fatalf("ParseAuditLine = %+v, %v", rec, err)
	}
	for _, tc := range []struct {
		line string
		col  int
		msg  string
	}{
		{line("read:envron", "none"), 18, `unknown item "envron" (did you mean "environ"?)`},
		{line("read:mem", "none"), 18, "mem is not read-class"},
		{line("attach:io", "none"), 18, "io is not attach-class"},
		{line("read:io", "allow@a.pol:3+permit@a.pol:4"), 82, `unknown effect "permit"`},
		{`{"result":"denied","access":"read","item":"envron","uid":1,"tuid":2,"suppressed":3,"gen":1}`, 43, `unknown item "envron"`},
	} {
		_, err := ParseAuditLine(tc.line)
		var se *audit.SyntaxError
		if !errors.As(err, &se) || se.Col != tc.col || !strings.Contains(se.Msg, tc.msg) {
			t.Errorf("ParseAuditLine(%q) = %v\nwant column %d: …%s…", tc.line, err, tc.col, tc.msg)
		}
	}
}
