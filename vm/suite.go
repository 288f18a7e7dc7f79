package vm

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/procgate/procgate/oracle"
)

// The built-in suites, one boot each (Options.Suites).
const (
	SuiteAppArmor = "apparmor" // Yama at scopes 0-3 and AppArmor: console vm.log
	SuiteSELinux  = "selinux"  // SELinux (and Yama 0): console vm-selinux.log
)

// DefaultSuites are the suites a run boots when Options.Suites is empty.
var DefaultSuites = []string{SuiteAppArmor, SuiteSELinux}

// The LSM order a boot pins with lsm=, less the modules the kernel lacks
// (Landlock before 5.13). SELinux cannot be stacked with AppArmor on
// 5.10-6.12, so an SELinux suite boots with selinuxLSMs (and enforcing=0:
// init loads the policy, then enforces).
const (
	appArmorLSMs = "landlock,lockdown,yama,apparmor,bpf"
	selinuxLSMs  = "landlock,lockdown,yama,selinux,bpf"
)

// suite is one boot: a plan, with the kernel command line it needs and
// the policy texts the model predicts with.
type suite struct {
	name string
	plan oracle.VMPlan
	// cfg is the booted kernel's configuration: which modules lsm= can
	// name (the zero value: all).
	cfg kernelConfig
}

func (s *suite) selinux() bool { return len(s.plan.SELinuxPolicy) > 0 || s.plan.SELinuxModel != "" }

// cmdline is the kernel command line of the suite's boot.
func (s *suite) cmdline() string {
	lsms, extra := appArmorLSMs, ""
	if s.selinux() {
		lsms, extra = selinuxLSMs, " enforcing=0"
	}
	return "console=ttyS0 quiet lsm=" + s.cfg.lsmParam(lsms) + extra + " panic=-1 mitigations=off"
}

// logName is the console log's file name in the work directory.
func (s *suite) logName() string {
	if s.name == SuiteAppArmor {
		return "vm.log"
	}
	return "vm-" + s.name + ".log"
}

// suites returns the boots to run: planFile's, or the built-in suites
// names lists.
func suites(planFile string, names []string) ([]*suite, error) {
	if planFile != "" {
		b, err := os.ReadFile(planFile)
		if err != nil {
			return nil, err
		}
		var plan oracle.VMPlan
		if err := json.Unmarshal(b, &plan); err != nil {
			return nil, fmt.Errorf("%s: %w", planFile, err)
		}
		if (len(plan.SELinuxPolicy) > 0 || plan.SELinuxConf != "") && plan.SELinuxModel == "" {
			return nil, fmt.Errorf("%s: an SELinux plan needs selinux_model, the policy text the model predicts with", planFile)
		}
		name := strings.TrimSuffix(filepath.Base(planFile), filepath.Ext(planFile))
		return []*suite{{name: name, plan: plan}}, nil
	}
	var out []*suite
	for _, n := range names {
		s, err := builtinSuite(n)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, errors.New("no suite to run")
	}
	return out, nil
}

// builtinSuite returns a built-in suite by name. The SELinux suite
// carries its policy.conf, compiled before the boot (compileSELinux).
func builtinSuite(name string) (*suite, error) {
	switch name {
	case SuiteAppArmor:
		return &suite{name: name, plan: oracle.VMDefaultPlan()}, nil
	case SuiteSELinux:
		plan := oracle.VMSELinuxPlan(nil)
		plan.SELinuxConf = oracle.VMSELinuxPolicyConf()
		return &suite{name: name, plan: plan}, nil
	}
	return nil, fmt.Errorf("unknown suite %q (want %s or %s)", name, SuiteAppArmor, SuiteSELinux)
}

// suiteForLog picks the suite a saved log belongs to: an SELinux one when
// the VM ran SELinux, otherwise an AppArmor one; the built-in suite when
// none of those asked for fits.
func suiteForLog(run *consoleRun, from []*suite) *suite {
	sel := run.begin != nil && slices.Contains(run.begin.LSMs, "selinux")
	for _, s := range from {
		if s.selinux() == sel {
			return s
		}
	}
	if sel {
		return &suite{name: SuiteSELinux, plan: oracle.VMSELinuxPlan(nil)}
	}
	return &suite{name: SuiteAppArmor, plan: oracle.VMDefaultPlan()}
}

// compileSELinux compiles policy.conf text with checkpolicy into a
// version-33 binary policy (5.10, 6.1 and 6.12 all load it; bookworm's
// checkpolicy writes no newer one) with
// handle_unknown allow, so that the classes and permissions the policy
// does not declare are allowed. The source and the binary are kept in
// WORK/selinux.
func compileSELinux(work, checkpolicy, conf string) ([]byte, error) {
	if conf == "" {
		return nil, errors.New("the SELinux plan has neither a compiled policy nor its policy.conf")
	}
	dir := filepath.Join(work, "selinux")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	src, dst := filepath.Join(dir, "policy.conf"), filepath.Join(dir, "policy.33")
	if err := os.WriteFile(src, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	if out, err := exec.Command(checkpolicy, checkpolicyArgs(src, dst)...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%s (is checkpolicy installed?): %w: %s", checkpolicy, err, strings.TrimSpace(string(out)))
	}
	return os.ReadFile(dst)
}

// checkpolicyArgs compiles src (a non-MLS policy.conf) to dst: policy
// version 33, unknown classes and permissions allowed.
func checkpolicyArgs(src, dst string) []string {
	return []string{"-c", "33", "-U", "allow", "-o", dst, src}
}
