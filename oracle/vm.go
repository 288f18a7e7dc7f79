package oracle

import "github.com/procgate/procgate/kernel/lsm/bpf"

// The verification VM protocol. The host writes a [VMPlan] as JSON to
// [VMPlanPath] in an initramfs whose /init is a binary that calls
// [RunRoleIfRequested]; booted as PID 1, that binary mounts the pseudo
// file systems, loads the plan's AppArmor profiles, runs the plan's steps
// and prints one console line per event, each a prefix and one JSON
// object: [VMBegin], one [VMRes] per case, then [VMEnd] (or a
// VMErrorPrefix line with the error text), and powers the machine off.

// Console line prefixes printed by the VM's init.
const (
	VMBeginPrefix = "PROCGATE-VM-BEGIN "
	VMResPrefix   = "PROCGATE-VM-RES "
	VMEndPrefix   = "PROCGATE-VM-END "
	VMErrorPrefix = "PROCGATE-VM-ERROR "
)

// VMPlanPath is where the VM's init reads its plan. Its presence (with
// the process being PID 1) is what selects the VM mode.
const VMPlanPath = "/etc/procgate/vm-plan.json"

// VMPlan is what the VM's init runs.
type VMPlan struct {
	// AppArmor is profile text loaded with "apparmor_parser -r" before
	// the first step; empty loads nothing.
	AppArmor string `json:"apparmor,omitempty"`
	// SELinuxPolicy is a compiled (binary) SELinux policy that init
	// writes to /sys/fs/selinux/load before the first step; empty loads
	// nothing. The kernel must boot with selinux in lsm= and enforcing=0.
	SELinuxPolicy []byte `json:"selinux_policy,omitempty"`
	// SELinuxConf and SELinuxModel are for the host: the policy.conf
	// source that verify-vm compiles into SELinuxPolicy when that is
	// empty, and the type-enforcement text the model predicts with
	// (package kernel/lsm/selinux). The VM ignores them.
	SELinuxConf  string `json:"selinux_conf,omitempty"`
	SELinuxModel string `json:"selinux_model,omitempty"`
	// Workers is the number of cases run in parallel (default 2).
	Workers int `json:"workers,omitempty"`
	// TimeoutSeconds bounds each wait for a child (default 60: software
	// emulation is about 50 times slower than the host).
	TimeoutSeconds int `json:"timeout_seconds,omitempty"`
	// Steps run in order. Yama's scope 3 cannot be lowered again, so a
	// step at scope 3 must come after every step at a lower scope.
	Steps []VMStep `json:"steps"`
}

// VMStep is a set of cases run at one Yama scope.
type VMStep struct {
	Name string `json:"name"`
	// YamaScope is written to kernel.yama.ptrace_scope before the cases
	// run; -1 leaves the scope alone.
	YamaScope int `json:"yama_scope"`
	// SELinuxMode, SELinuxEnforcing or SELinuxPermissive, is written to
	// /sys/fs/selinux/enforce before the cases run; empty leaves it.
	SELinuxMode string `json:"selinux_mode,omitempty"`
	// BPF, when set, is the rule set procgate's BPF LSM program enforces
	// while the step's cases run (package bpflsm): init attaches the
	// program before them and detaches it after. The kernel must boot
	// with bpf in lsm=.
	BPF   *bpf.RuleSet `json:"bpf,omitempty"`
	Cases []Case       `json:"cases"`
}

// VMBegin describes the booted kernel.
type VMBegin struct {
	// Release is uname -r; Version is /proc/version, which carries the
	// distribution's package version (for Debian "… Debian 6.1.x-y …").
	Release string   `json:"release"`
	Version string   `json:"version"`
	Cmdline string   `json:"cmdline"`
	LSMs    []string `json:"lsms"`
	// LandlockABI is 0 without Landlock; YamaScope -1 without Yama.
	LandlockABI  int `json:"landlock_abi"`
	YamaScope    int `json:"yama_scope"`
	SuidDumpable int `json:"suid_dumpable"`
	// Uptime is /proc/uptime at the start of init, in seconds.
	Uptime float64 `json:"uptime"`
	// Cases is the number of cases in the plan.
	Cases int `json:"cases"`
}

// VMRes is the outcome of one case of a step.
type VMRes struct {
	Step string `json:"step"`
	// Scope is the Yama scope the case ran at (read back after setting
	// it), -1 without Yama.
	Scope int `json:"scope"`
	// SELinuxMode is SELinux's mode read back after setting it
	// (SELinuxEnforcing or SELinuxPermissive), empty without SELinux.
	SELinuxMode string `json:"selinux_mode,omitempty"`
	// BPF is the rule set procgate's BPF LSM program enforced while the
	// case ran; nil when no program was attached.
	BPF    *bpf.RuleSet `json:"bpf,omitempty"`
	Index  int          `json:"index"`
	Case   Case         `json:"case"`
	Result Result       `json:"result"`
}

// VMEnd closes a run.
type VMEnd struct {
	Cases   int `json:"cases"`
	Refused int `json:"refused"`
	// Seconds is the time spent running the steps (not booting or
	// loading the profiles).
	Seconds float64 `json:"seconds"`
	// AppArmorProfiles are the profiles the kernel had loaded
	// (/sys/kernel/security/apparmor/profiles).
	AppArmorProfiles []string `json:"apparmor_profiles,omitempty"`
	// LoadSeconds is the time apparmor_parser took.
	LoadSeconds float64 `json:"load_seconds"`
	// SELinuxPolicyVersion is /sys/fs/selinux/policyvers and
	// SELinuxLoadSeconds the time the policy load took.
	SELinuxPolicyVersion string  `json:"selinux_policy_version,omitempty"`
	SELinuxLoadSeconds   float64 `json:"selinux_load_seconds,omitempty"`
	// BPFReload is the reload-under-load check of the steps that attach
	// procgate's BPF LSM program, one per such step.
	BPFReload []VMReload `json:"bpf_reload,omitempty"`
	// BPFCgroupsRefused is why procgate's BPF LSM program refused the
	// step's cgroup selectors (a kernel before 6.0: bpflsm.Servable),
	// which then ran without them; "" where it took them.
	BPFCgroupsRefused string `json:"bpf_cgroups_refused,omitempty"`
}

// VMReload is what init checks of procgate's BPF LSM program beyond the
// cases, in a step that attaches it. While a root process outside the
// exempt cgroup opens a protected process's /proc/PID/environ and
// /proc/PID/status in a tight loop, init swaps the rule set Reloads times
// (each a new generation of the same rules): Allowed must be 0 — no open
// slips through a swap — and StatusAllowed must equal StatusOpens (status
// asks no ptrace check). Then the cost of the program: NsWith and
// NsWithout are the loop's time per open and read of an unrestricted
// process's environ with the program attached and after detaching it (in
// the VM's emulated time). After detaching, PinsLeft must be false and
// the protected process's environ must read again.
type VMReload struct {
	Step    string `json:"step"`
	Reloads int    `json:"reloads"`
	// Opens counts the loop's attempts on environ, Allowed those that
	// read, and Errors the refusals by errno name.
	Opens         int            `json:"opens"`
	Allowed       int            `json:"allowed"`
	Errors        map[string]int `json:"errors,omitempty"`
	StatusOpens   int            `json:"status_opens,omitempty"`
	StatusAllowed int            `json:"status_allowed,omitempty"`
	Seconds       float64        `json:"seconds"`
	NsWith        float64        `json:"ns_with,omitempty"`
	NsWithout     float64        `json:"ns_without,omitempty"`
	// LargeRules is the size of the rule set reloaded last (the step's
	// and VMLargeRules hashed ones); NsWithLarge the cost per read under
	// it, and LargeOpens/LargeAllowed the protected environ's reads
	// under it (none may read).
	LargeRules         int     `json:"large_rules,omitempty"`
	NsWithLarge        float64 `json:"ns_with_large,omitempty"`
	LargeOpens         int     `json:"large_opens,omitempty"`
	LargeAllowed       int     `json:"large_allowed,omitempty"`
	PinsLeft           bool    `json:"pins_left,omitempty"`
	AfterDetachOpens   int     `json:"after_detach_opens,omitempty"`
	AfterDetachAllowed int     `json:"after_detach_allowed,omitempty"`
	// Broker is the broker check, run before the reloads.
	Broker *VMBroker `json:"broker,omitempty"`
	// Audit is the check of the program's reports of its denials.
	Audit *VMAudit `json:"audit,omitempty"`
	// CLI is the check of procgate enforce, the command, run last: it
	// detaches the program (Detach after it finds nothing).
	CLI *VMEnforceCLI `json:"cli,omitempty"`
	// Err is why the check could not run.
	Err string `json:"err,omitempty"`
}
