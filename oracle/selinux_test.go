package oracle

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/procgate/procgate/kernel/lsm/selinux"
)

func TestVMSELinuxPlan(t *testing.T) {
	plan := VMSELinuxPlan([]byte{0x8c, 0xff, 0x7c, 0xf9})
	if _, err := selinux.Parse(plan.SELinuxModel); err != nil {
		t.Fatalf("the model cannot parse the VM policy: %v", err)
	}
	domains := map[string]bool{seUnconfined: true}
	for _, d := range VMSELinuxDomains {
		domains[d] = true
		if !strings.Contains(plan.SELinuxModel, "type "+d+", domain;") {
			t.Errorf("domain %s is not declared in the model text", d)
		}
	}
	total := 0
	modes := map[string]int{}
	for _, s := range plan.Steps {
		modes[s.SELinuxMode] += len(s.Cases)
		for i := range s.Cases {
			c := &s.Cases[i]
			total++
			if err := c.Validate(); err != nil {
				t.Errorf("%s #%d %q: %v", s.Name, i, c.Name, err)
			}
			for _, ctx := range []string{c.Prober.SELinux, c.Target.SELinux} {
				if ctx == "" && c.selfRelation() {
					continue
				}
				if !domains[SELinuxType(ctx)] {
					t.Errorf("%s #%d %q: context %q is not a domain of the policy", s.Name, i, c.Name, ctx)
				}
			}
		}
	}
	if total < 150 || modes[SELinuxEnforcing] < 140 || modes[SELinuxPermissive] == 0 {
		t.Errorf("%d cases (%v): want at least 150, most enforcing, some permissive", total, modes)
	}
	// The binary policy travels as base64 in the plan's JSON.
	b, err := json.Marshal(plan)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"selinux_policy":"jP98+Q=="`) {
		t.Errorf("policy not base64 in the plan: %.200s", b)
	}
	var back VMPlan
	if err := json.Unmarshal(b, &back); err != nil || string(back.SELinuxPolicy) != string(plan.SELinuxPolicy) || len(back.Steps) != 2 {
		t.Fatalf("plan does not survive JSON: %v", err)
	}
}

// The model text holds every rule of the full policy over the classes the
// model knows, and none over other classes.
func TestVMSELinuxModelIsPolicySubset(t *testing.T) {
	model, conf := VMSELinuxModel(), VMSELinuxPolicyConf()
	for line := range strings.Lines(model) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !inPolicy(conf, line) {
			t.Errorf("model line %q is not in the compiled policy", line)
		}
		for _, c := range []string{":fd ", ":filesystem ", ":security ", "fifo_file", "chr_file"} {
			if strings.Contains(line, c) {
				t.Errorf("model line %q uses a class the model does not know", line)
			}
		}
	}
	for _, want := range []string{"allow pg_rt_t domain:process ptrace;", "permissive pg_perm_t;", "dontaudit pg_audit_t domain:file read;",
		"allow pg_sel_t { domain -pg_none_t -pg_sel_t }:process ptrace;", "allow pg_read_t self:process ptrace;"} {
		if !strings.Contains(model, want+"\n") {
			t.Errorf("model lacks %q", want)
		}
	}
	for _, want := range []string{"class fd { use }", "sid kernel system_u:system_r:kernel_t", "genfscon proc / system_u:object_r:file_t",
		"user system_u roles { system_r };", "allow domain domain:fifo_file *;"} {
		if !strings.Contains(conf, want) {
			t.Errorf("policy.conf lacks %q", want)
		}
	}
}

// checkpolicy, when installed (scripts/vm-verify.sh installs it), compiles
// the policy as verify-vm does.
func TestVMSELinuxPolicyCompiles(t *testing.T) {
	cp, err := exec.LookPath("checkpolicy")
	if err != nil {
		t.Skip("checkpolicy not installed (make verify-vm installs it and compiles the policy)")
	}
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "policy.conf"), filepath.Join(dir, "policy.33")
	if err := os.WriteFile(src, []byte(VMSELinuxPolicyConf()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(cp, "-c", "33", "-U", "allow", "-o", dst, src).CombinedOutput(); err != nil {
		t.Fatalf("checkpolicy: %v\n%s", err, out)
	}
}

func TestSELinuxLabels(t *testing.T) {
	for _, tc := range []struct {
		want, got string
		ok        bool
	}{
		{"", "", true},
		{"", "system_u:system_r:kernel_t", true},
		{"system_u:system_r:pg_rt_t", "system_u:system_r:pg_rt_t\x00", true},
		{"system_u:system_r:pg_rt_t", "system_u:system_r:pg_rt_t\n", true},
		{"system_u:system_r:pg_rt_t", "system_u:system_r:kernel_t", false},
		{"system_u:system_r:pg_rt_t", "", false},
	} {
		if ok := selinuxMatches(tc.want, tc.got); ok != tc.ok {
			t.Errorf("selinuxMatches(%q, %q) = %v", tc.want, tc.got, ok)
		}
	}
	for _, ctx := range []string{"", "u:r:t", "system_u:system_r:pg_rt_t:s0"} {
		if err := validSELinuxContext(ctx); err != nil {
			t.Errorf("validSELinuxContext(%q) = %v", ctx, err)
		}
	}
	for _, ctx := range []string{"pg_rt_t", "u::t", "u:r:t x", "u:r:t\n"} {
		if err := validSELinuxContext(ctx); err == nil {
			t.Errorf("validSELinuxContext(%q) accepted", ctx)
		}
	}
	if SELinuxType("system_u:system_r:pg_rt_t") != "pg_rt_t" || SELinuxType("x") != "" {
		t.Error("SELinuxType")
	}
	user := User(1, 1)
	for _, c := range []Case{
		{Prober: labelled(user, "pg_rt_t"), Target: user, Relation: RelParent},
		{Prober: func() Creds { c := labelled(user, "pg_rt_t"); c.AppArmor = "p"; return c }(), Target: user},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("case %+v accepted", c)
		}
	}
}

// Without SELinux a labelled case cannot run faithfully: it must be
// refused, never run unlabelled.
func TestSELinuxCaseRefusedWithoutSELinux(t *testing.T) {
	r := needRunner(t)
	if selinuxActive() {
		t.Skip("!!!!!!!! SKIPPED: SELinux is active here; the VM suite (make verify-vm) covers labelled cases !!!!!!!!")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	u := User(1000, 1000)
	res, err := r.Run(ctx, []Case{
		{Name: "labelled prober", Prober: labelled(u, "pg_rt_t"), Target: u, Probes: []Probe{ProbeMaps}},
		{Name: "labelled target", Prober: u, Target: labelled(u, "pg_rt_t"), Probes: []Probe{ProbeMaps}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range res {
		if res[i].Err == nil || !strings.Contains(strings.ToLower(res[i].Error), "selinux") {
			t.Errorf("case %q: err %v, want a refusal naming selinux", res[i].Name, res[i].Err)
		}
	}
}

// inPolicy reports whether a model line is a line of conf, or a rule of
// conf with the same source, target and permissions over more classes.
func inPolicy(conf, line string) bool {
	if strings.Contains(conf, line+"\n") {
		return true
	}
	i := strings.LastIndex(line, ":")
	if i < 0 || !strings.HasPrefix(line, "allow ") {
		return false
	}
	head, tail := line[:i+1], line[i+1:]
	perms := tail
	if strings.HasPrefix(tail, "{") {
		perms = tail[strings.Index(tail, "}")+1:]
	} else if j := strings.Index(tail, " "); j >= 0 {
		perms = tail[j:]
	}
	for l := range strings.Lines(conf) {
		if strings.HasPrefix(l, head+"{") && strings.HasSuffix(strings.TrimSpace(l), perms) {
			return true
		}
	}
	return false
}
