package report_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/procgate/procgate/policy"
	"github.com/procgate/procgate/report"
	"github.com/procgate/procgate/scenario"
)

// findingsWorld has one of each thing a finding is about: a helper with
// CAP_SYS_PTRACE (attach-privileged against root's daemon), two users
// under Yama 0 (attach-other-uid is not raised between equals without
// privilege, yama-zero is), a non-dumpable process of the user, and a
// rootless container owned by uid 1000 that uid 1001 reaches only
// through its capability.
const findingsWorld = `
kernel:
  release: "6.18.44"
  lsm: [capability, landlock, yama]
  yama: {ptrace_scope: 0}
usernamespaces:
  - {name: ctr, parent: init, owner: 1000, uid_map: [[0, 1000, 1], [1, 100000, 65536]], gid_map: [[0, 1000, 1], [1, 100000, 65536]]}
tasks:
  - {name: init, pid: 1, uid: 0, gid: 0}
  - {name: sshd, pid: 812, parent: init, uid: 0, gid: 0}
  - {name: alice-sh, pid: 2000, parent: init, uid: 1000, gid: 1000}
  - {name: alice-editor, pid: 2001, parent: init, uid: 1000, gid: 1000}
  - {name: alice-agent, pid: 2002, parent: init, uid: 1000, gid: 1000, mm: {dumpable: 0, userns: init}}
  - {name: bob-sh, pid: 3000, parent: init, uid: 1001, gid: 1001}
  - {name: bob-debugger, pid: 3001, parent: init, uid: 1001, gid: 1001, caps: [sys_ptrace]}
  - {name: ctr-init, pid: 4200, parent: init, userns: ctr, uid: 1000, gid: 1000}
  - {name: ctr-www, pid: 4400, parent: ctr-init, userns: ctr, uid: 100032, gid: 100032, caps: none}
  - {name: docker-app, pid: 5000, parent: init, uid: 1001, gid: 1001, pidns: "pid:[4026532301]"}
  - {name: docker-sidecar, pid: 5001, parent: init, uid: 1001, gid: 1001, pidns: "pid:[4026532301]"}
`

// TestFindings checks that each kind of finding is raised where it
// should be and nowhere else, ranked by severity, each with a story that
// ends the way the finding says.
func TestFindings(t *testing.T) {
	s, err := scenario.Load("findings.yaml", []byte(findingsWorld))
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Load("grant.pol", []byte("subject bob { uid 1001; }\ntarget anyp { }\nallow bob anyp : read { environ };\nallow bob anyp : attach;\n"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := report.Build(report.Input{Name: "findings", Source: "scenario", World: s.World}, report.Options{Policy: pol, PolicyName: "grant.pol"})
	if err != nil {
		t.Fatal(err)
	}
	type fk struct{ kind, caller, target string }
	got := map[fk]*report.Finding{}
	for _, f := range m.Findings {
		c, tg := m.Class(f.Principal), m.Class(f.Target)
		if c == nil || tg == nil {
			t.Fatalf("finding %d names unknown classes %s, %s", f.Rank, f.Principal, f.Target)
		}
		for _, cm := range membersOf(c) {
			for _, tm := range membersOf(tg) {
				got[fk{f.Kind, cm, tm}] = f
			}
		}
		if len(f.Story) == 0 || f.Answer == "" {
			t.Errorf("finding %d (%s) has no story", f.Rank, f.Title)
		}
		want := "allow"
		if f.Kind == report.KindBrokerExceeds {
			continue
		}
		if !strings.HasPrefix(f.Answer, want) {
			t.Errorf("finding %d (%s): the example's answer is %q, want allowed", f.Rank, f.Title, f.Answer)
		}
	}
	for _, tc := range []struct {
		kind, caller, target string
		want                 bool
		severity             report.Severity
	}{
		{report.KindAttachPrivileged, "bob-debugger", "sshd", true, report.High},
		{report.KindAttachPrivileged, "bob-debugger", "alice-sh", false, ""},
		{report.KindAttachOtherUID, "bob-debugger", "alice-sh", true, report.Medium},
		{report.KindAttachOtherUID, "bob-sh", "alice-sh", false, ""}, // the kernel refuses it
		{report.KindNondumpable, "bob-debugger", "alice-agent", true, report.High},
		{report.KindNondumpable, "alice-sh", "alice-agent", false, ""}, // same uid, yet not dumpable: refused
		{report.KindYamaZero, "alice-sh", "alice-editor", true, report.Medium},
		{report.KindYamaZero, "init", "sshd", false, ""}, // an administrator
		{report.KindContainer, "bob-debugger", "ctr-www", true, report.High},
		{report.KindContainer, "alice-sh", "ctr-www", false, ""},              // the owner of the namespace
		{report.KindContainer, "bob-sh", "docker-app", true, report.High},     // another pid namespace, same uid
		{report.KindContainer, "docker-sidecar", "docker-app", false, ""},     // the same pid namespace
		{report.KindContainer, "alice-sh", "docker-app", false, ""},           // the kernel refuses it
		{report.KindBrokerExceeds, "bob-sh", "alice-sh", true, report.Medium}, // mem is attach-class
		{report.KindBrokerExceeds, "alice-sh", "bob-sh", false, ""},
	} {
		f := got[fk{tc.kind, tc.caller, tc.target}]
		if (f != nil) != tc.want {
			t.Errorf("%s %s -> %s: raised %v, want %v", tc.kind, tc.caller, tc.target, f != nil, tc.want)
			continue
		}
		if f != nil && f.Severity != tc.severity {
			t.Errorf("%s %s -> %s: severity %s, want %s", tc.kind, tc.caller, tc.target, f.Severity, tc.severity)
		}
	}
	if f := got[fk{report.KindBrokerExceeds, "bob-sh", "alice-sh"}]; f != nil && !slices.Equal(f.Grants, []string{"environ", "attach", "mem", "syscall", "stack", "personality"}) {
		t.Errorf("broker-exceeds grants %v, want environ and the attach-class items", f.Grants)
	}
	for i := 1; i < len(m.Findings); i++ {
		a, b := m.Findings[i-1], m.Findings[i]
		if a.Rank != i || b.Rank != i+1 {
			t.Errorf("ranks %d, %d at %d", a.Rank, b.Rank, i)
		}
		if order(a.Severity) > order(b.Severity) {
			t.Errorf("finding %d (%s) ranked before %d (%s)", a.Rank, a.Severity, b.Rank, b.Severity)
		}
	}
	c := m.Count()
	n := 0
	for _, k := range report.Kinds {
		for _, v := range c.Findings[k] {
			n += v
		}
	}
	if n != len(m.Findings) {
		t.Errorf("counts %d findings, the report has %d", n, len(m.Findings))
	}
}

func membersOf(c *report.Class) []string {
	if c.Login != "" {
		return []string{"login:" + c.Login}
	}
	var out []string
	for _, m := range c.Members {
		out = append(out, m.Comm)
	}
	return out
}

func order(s report.Severity) int {
	return map[report.Severity]int{report.High: 0, report.Medium: 1, report.Low: 2}[s]
}
