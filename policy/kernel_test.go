package policy

import (
	"strings"
	"testing"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/bpf"
)

// TestKernelRules compiles a policy's restrictions for the kernel
// program and checks that the rule set decides as the policy's deny and
// protect rules do on the accesses the program sees.
func TestKernelRules(t *testing.T) {
	p := mustLoad(t, `subject root { uid 0; }
subject users { uid 1000-1999; not uid 1500; }
subject anyone { }
target agent { exe /usr/bin/gdb; gid 7; }
target users_t { uid 1000-1999; }
allow users users_t : read { status io };
protect agent : read;
deny root users_t : attach;
deny users * : attach;
neverallow * * : read { environ };
`)
	rs, err := p.KernelRules()
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Rules) != 3 {
		t.Fatalf("%d rules, want the 3 deny/protect rules: %+v", len(rs.Rules), rs.Rules)
	}
	// testResolver's /usr/bin/gdb: st_dev 1 (0:1), inode 103.
	self := kernel.FileIDOfStat(1, 103)
	root := bpf.Match{EUID: 0, EGID: 0}
	user := bpf.Match{EUID: 1200, EGID: 1200}
	user1500 := bpf.Match{EUID: 1500, EGID: 1500}
	agent := bpf.Match{EUID: 2000, EGID: 7, Exe: &self}
	wantRules(t, rs, []ruleCase{
		{"protect: root may not read the agent", root, agent, bpf.Read, "protect agent : read;"},
		{"protect: nor a user", user, agent, bpf.Read, "protect agent : read;"},
		{"protect is read only", root, agent, bpf.Attach, ""},
		{"root may not attach users", root, user, bpf.Attach, "deny root users_t : attach;"},
		{"root may read users", root, user, bpf.Read, ""},
		{"users may attach nobody", user, root, bpf.Attach, "deny users * : attach;"},
		{"uid 1500 is not in users", user1500, root, bpf.Attach, ""},
		{"allow rules restrict nothing", user, user, bpf.Read, ""},
	})
}

// TestKernelRulesRefused: what the program cannot evaluate is an error
// at the rule's or the class's position.
func TestKernelRulesRefused(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"items", "subject s { uid 0; }\ntarget t { uid 1; }\ndeny s t : read { environ };\n", "p.pol:3:1: deny: the kernel program cannot restrict single items ({ environ })"},
		{"when", "subject s { uid 0; }\ntarget t { uid 1; }\ndeny s t : attach when same_uid;\n", "p.pol:3:1: deny: the kernel program evaluates no when conditions"},
		{"exclusion", "subject s { uid 0-9; }\nsubject u { uid 1; }\ntarget t { uid 1; }\ndeny { s -u } t : attach;\n", "cannot exclude classes"},
		{"label selector", "subject s { type sshd_t; }\ntarget t { uid 1; }\ndeny s t : attach;\n", "p.pol:1:1: class s: the kernel program reads only uid, gid, group, exe, cgroup, container and cap selectors, not type"},
		{"cgroup pattern", "subject s { uid 0; }\ntarget t { cgroup /system.slice/*; }\nprotect t : read;\n", `p.pol:2:1: class t: cgroup "/system.slice/*": the kernel program selects a cgroup by its path (/a/b) or its descendants (/a/b/**), not by a pattern`},
		{"cgroup parent missing", "target t { cgroup /nowhere/x.service; }\nprotect t : read;\n", `p.pol:1:1: class t: cgroup "/nowhere/x.service": its parent /nowhere must exist when the rule set is loaded`},
		{"cgroup root alone", "target t { cgroup /; }\nprotect t : read;\n", "the root cgroup alone cannot be selected in the kernel"},
		{"cgroup name too long", "target t { cgroup /system.slice/" + strings.Repeat("x", 63) + "; }\nprotect t : read;\n", "names of up to 62 bytes"},
	} {
		f, err := Parse("p.pol", []byte(tc.src))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		p, err := CompileWith(testResolver, f)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		_, err = p.KernelRules()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestKernelRulesCgroups: cgroup paths and subtrees become selectors of
// a name under the parent's resolved id, decided as the program does.
func TestKernelRulesCgroups(t *testing.T) {
	p := mustLoad(t, `target ssh { cgroup /system.slice/ssh.service; }
target pods { cgroup /kubepods/**; }
subject all { cgroup /**; }
subject outside { not cgroup /system.slice/**; uid 0; }
protect ssh : read;
deny outside pods : attach;
deny all ssh : attach;
`)
	rs, err := p.KernelRules()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]bpf.CgroupSel{
		"target ssh":      {{Parent: 20, Level: 2, Name: "ssh.service", Self: true}},
		"target pods":     {{Parent: 1, Level: 1, Name: "kubepods", Below: true}},
		"subject all":     {{Root: true}},
		"subject outside": {{Parent: 1, Level: 1, Name: "system.slice", Below: true}},
	}
	for _, c := range rs.Classes {
		var got []bpf.CgroupSel
		for _, cl := range c.Clauses {
			got = append(got, cl.Cgroups...)
		}
		if w, ok := want[c.Name]; !ok || len(got) != len(w) || len(got) > 0 && got[0] != w[0] {
			t.Errorf("class %s: cgroups %+v, want %+v", c.Name, got, w)
		}
	}
	path := func(nodes ...any) []kernel.CgroupNode {
		out := []kernel.CgroupNode{{ID: 1}}
		for i := 0; i < len(nodes); i += 2 {
			out = append(out, kernel.CgroupNode{ID: uint64(nodes[i].(int)), Name: nodes[i+1].(string)})
		}
		return out
	}
	ssh := path(20, "system.slice", 21, "ssh.service")
	sshChild := path(20, "system.slice", 21, "ssh.service", 22, "inner")
	pod := path(30, "kubepods", 31, "pod1")
	kubepods := path(30, "kubepods")
	rootMatch := bpf.Match{EUID: 0, Cgroup: path()}
	wantRules(t, rs, []ruleCase{
		{"ssh.service is protected", rootMatch, bpf.Match{EUID: 5, Cgroup: ssh}, bpf.Read, "protect ssh : read;"},
		{"a cgroup below it is not", rootMatch, bpf.Match{EUID: 5, Cgroup: sshChild}, bpf.Read, ""},
		{"ssh.service made again (new id) still is", rootMatch, bpf.Match{EUID: 5, Cgroup: path(20, "system.slice", 99, "ssh.service")}, bpf.Read, "protect ssh : read;"},
		{"a pod is kubepods/**", rootMatch, bpf.Match{Cgroup: pod}, bpf.Attach, "deny outside pods : attach;"},
		{"kubepods itself is not", rootMatch, bpf.Match{Cgroup: kubepods}, bpf.Attach, ""},
		{"a subject in system.slice is not outside", bpf.Match{EUID: 0, Cgroup: ssh}, bpf.Match{Cgroup: pod}, bpf.Attach, ""},
		{"/** holds every cgroup", bpf.Match{EUID: 7, Cgroup: pod}, bpf.Match{Cgroup: ssh}, bpf.Attach, "deny all ssh : attach;"},
		{"an unknown cgroup is in no class", bpf.Match{EUID: 7}, bpf.Match{Cgroup: ssh}, bpf.Attach, ""},
		{"a recreated parent is not the one resolved", rootMatch, bpf.Match{EUID: 5, Cgroup: path(77, "system.slice", 21, "ssh.service")}, bpf.Read, ""},
	})
}

// TestKernelRulesContainers: container selectors become clauses on the
// pid namespace's inode, host being the initial namespace's.
func TestKernelRulesContainers(t *testing.T) {
	p := mustLoad(t, `target host_t { container host; }
target boxed { container any; }
target one { container 4026532301; }
subject outside { not container any; }
subject everywhere { container any host; }
protect host_t : attach;
protect boxed : read;
protect one : attach;
deny outside host_t : read;
deny everywhere host_t : read;
`)
	rs, err := p.KernelRules()
	if err != nil {
		t.Fatal(err)
	}
	const init, ns = 0xEFFFFFFC, 4026532301
	host, boxed, other := bpf.Match{PIDNS: init}, bpf.Match{PIDNS: ns}, bpf.Match{PIDNS: ns + 1}
	wantRules(t, rs, []ruleCase{
		{"host is the initial namespace", other, host, bpf.Attach, "protect host_t : attach;"},
		{"a container is not the host", other, boxed, bpf.Read, "protect boxed : read;"},
		{"any container", host, other, bpf.Read, "protect boxed : read;"},
		{"the host is in no container", boxed, host, bpf.Read, "deny everywhere host_t : read;"},
		{"one namespace", host, boxed, bpf.Attach, "protect one : attach;"},
		{"another namespace is not it", host, other, bpf.Attach, ""},
		{"not container any: the host", host, host, bpf.Read, "deny outside host_t : read;"},
	})
}

// TestCapSelector: a cap selector holds a process whose permitted set has
// one of its capabilities, in the policy and in the kernel program alike.
func TestCapSelector(t *testing.T) {
	p := mustLoad(t, `subject tracers { cap sys_ptrace CAP_SYS_ADMIN; }
subject plain { not cap sys_ptrace; uid 1000; }
target privileged { cap sys_admin; }
target users { uid 1000; }
allow tracers users : read { environ };
allow plain users : read { status };
protect privileged : attach;
deny tracers users : attach;
`)
	rs, err := p.KernelRules()
	if err != nil {
		t.Fatal(err)
	}
	admin, ptracer := kernel.CapsOf(kernel.CapSysAdmin), kernel.CapsOf(kernel.CapSysPtrace)
	for _, tc := range []struct {
		name      string
		subj, tgt kernel.CapSet
		environ   bool
		attachBy  string
	}{
		{"a ptrace holder", ptracer, 0, true, "deny tracers users : attach;"},
		{"an admin", admin, 0, true, "deny tracers users : attach;"},
		{"neither", 0, 0, false, ""},
		{"a privileged target", 0, admin, false, "protect privileged : attach;"},
	} {
		subj := &Subject{Process: Process{UID: 1000, GID: 1000, CapPermitted: tc.subj}}
		tgt := &Target{Process: Process{UID: 1000, GID: 1000, CapPermitted: tc.tgt}, Dumpable: true}
		if got := p.Decide(subj, tgt, 0, ItemEnviron).Allowed; got != tc.environ {
			t.Errorf("%s: environ %v, want %v", tc.name, got, tc.environ)
		}
		got := ""
		if r := rs.Decide(bpf.Match{EUID: 1000, CapPermitted: tc.subj}, bpf.Match{EUID: 1000, CapPermitted: tc.tgt}, bpf.Attach); r != nil {
			got = r.Text
		}
		if got != tc.attachBy {
			t.Errorf("%s: the kernel program's attach: %q, want %q", tc.name, got, tc.attachBy)
		}
	}
	if _, err := Load("p.pol", []byte("subject s { cap sys_ptrase; }\n")); err == nil || !strings.Contains(err.Error(), "p.pol:1:17") || !strings.Contains(err.Error(), "sys_ptrace") {
		t.Errorf("an unknown capability: %v", err)
	}
}

// ruleCase is a question to a kernel rule set and the text of the rule
// that must answer it ("" for none).
type ruleCase struct {
	name            string
	subject, target bpf.Match
	a               bpf.Access
	want            string
}

// wantRules asks rs each case's question.
func wantRules(t *testing.T, rs *bpf.RuleSet, cases []ruleCase) {
	t.Helper()
	for _, tc := range cases {
		got := ""
		if r := rs.Decide(tc.subject, tc.target, tc.a); r != nil {
			got = r.Text
		}
		if got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
