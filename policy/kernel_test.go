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
	for _, tc := range []struct {
		name            string
		subject, target bpf.Match
		a               bpf.Access
		want            string
	}{
		{"protect: root may not read the agent", root, agent, bpf.Read, "protect agent : read;"},
		{"protect: nor a user", user, agent, bpf.Read, "protect agent : read;"},
		{"protect is read only", root, agent, bpf.Attach, ""},
		{"root may not attach users", root, user, bpf.Attach, "deny root users_t : attach;"},
		{"root may read users", root, user, bpf.Read, ""},
		{"users may attach nobody", user, root, bpf.Attach, "deny users * : attach;"},
		{"uid 1500 is not in users", user1500, root, bpf.Attach, ""},
		{"allow rules restrict nothing", user, user, bpf.Read, ""},
	} {
		got := ""
		if r := rs.Decide(tc.subject, tc.target, tc.a); r != nil {
			got = r.Text
		}
		if got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
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
		{"label selector", "subject s { type sshd_t; }\ntarget t { uid 1; }\ndeny s t : attach;\n", "p.pol:1:1: class s: the kernel program reads only uid, gid, group and exe selectors, not type"},
		{"cgroup selector", "subject s { uid 0; }\ntarget t { cgroup /system.slice/*; }\nprotect t : read;\n", "not cgroup"},
	} {
		p, err := Load("p.pol", []byte(tc.src))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		_, err = p.KernelRules()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}
