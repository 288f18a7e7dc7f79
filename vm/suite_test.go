package vm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/procgate/procgate/oracle"
)

func TestSuites(t *testing.T) {
	ss, err := suites("", []string{SuiteAppArmor, SuiteSELinux})
	if err != nil || len(ss) != 2 {
		t.Fatalf("suites = %v, %v", ss, err)
	}
	aa, se := ss[0], ss[1]
	if aa.selinux() || !strings.Contains(aa.cmdline(), "lsm="+appArmorLSMs+" ") || strings.Contains(aa.cmdline(), "enforcing") || aa.logName() != "vm.log" {
		t.Errorf("apparmor suite: selinux %v, cmdline %q, log %s", aa.selinux(), aa.cmdline(), aa.logName())
	}
	if !se.selinux() || !strings.Contains(se.cmdline(), "lsm="+selinuxLSMs+" enforcing=0 ") || se.logName() != "vm-selinux.log" {
		t.Errorf("selinux suite: selinux %v, cmdline %q, log %s", se.selinux(), se.cmdline(), se.logName())
	}
	if se.plan.SELinuxConf == "" || se.plan.SELinuxModel == "" || len(se.plan.SELinuxPolicy) != 0 {
		t.Error("the selinux suite should carry its policy.conf and model text, compiled later")
	}
	if _, err := suites("", []string{"smack"}); err == nil {
		t.Error("unknown suite accepted")
	}
	if _, err := suites("", nil); err == nil {
		t.Error("no suite accepted")
	}
	if got := strings.Join(checkpolicyArgs("a.conf", "b.33"), " "); got != "-c 33 -U allow -o b.33 a.conf" {
		t.Errorf("checkpolicy args %q", got)
	}
	// A saved log is matched to its suite by the LSMs the VM ran.
	run := &consoleRun{begin: &oracle.VMBegin{LSMs: []string{"capability", "yama", "selinux"}}}
	if s := suiteForLog(run, ss[:1]); s.name != SuiteSELinux || s.plan.SELinuxModel == "" {
		t.Errorf("suiteForLog(selinux log) = %s", s.name)
	}
	run.begin.LSMs = []string{"capability", "apparmor"}
	if s := suiteForLog(run, ss); s.name != SuiteAppArmor {
		t.Errorf("suiteForLog(apparmor log) = %s", s.name)
	}
	// A plan file for SELinux needs the model's text.
	dir := t.TempDir()
	planFile := filepath.Join(dir, "mine.json")
	if err := os.WriteFile(planFile, []byte(`{"selinux_conf":"x","steps":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := suites(planFile, nil); err == nil {
		t.Error("an SELinux plan without selinux_model accepted")
	}
	// A plan file is one suite named after the file.
	if err := os.WriteFile(planFile, []byte(`{"steps":[{"name":"s","yama_scope":1,"cases":[{"name":"c"}]}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if ss, err := suites(planFile, []string{SuiteSELinux}); err != nil || len(ss) != 1 || ss[0].name != "mine" || len(ss[0].plan.Steps[0].Cases) != 1 {
		t.Errorf("plan file suites = %v, %v", ss, err)
	}
}
