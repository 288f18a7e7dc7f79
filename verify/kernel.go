package verify

import (
	"fmt"
	"slices"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/apparmor"
	"github.com/procgate/procgate/kernel/lsm/bpf"
	"github.com/procgate/procgate/kernel/lsm/capability"
	"github.com/procgate/procgate/kernel/lsm/landlock"
	"github.com/procgate/procgate/kernel/lsm/selinux"
	"github.com/procgate/procgate/kernel/lsm/yama"
	"github.com/procgate/procgate/oracle"
)

// Kernel describes the kernel the cases ran on: everything the model needs
// besides the processes.
type Kernel struct {
	// Release selects the release-dependent rules.
	Release kernel.Release
	// LSMs is /sys/kernel/security/lsm in order. Modules without ptrace
	// hooks (lockdown, …) are ignored, and so is bpf unless BPF is set;
	// capability always runs first.
	LSMs []string
	// YamaScope is kernel.yama.ptrace_scope (used when yama is in LSMs).
	YamaScope int
	// LandlockABI is the Landlock ABI version (used when landlock is in
	// LSMs).
	LandlockABI int
	// SuidDumpable is fs.suid_dumpable.
	SuidDumpable int
	// AppArmor is the text of the loaded AppArmor profiles (used when
	// apparmor is in LSMs).
	AppArmor string
	// SELinux is the type-enforcement part of the loaded SELinux policy,
	// in the model's policy subset (package kernel/lsm/selinux), and
	// SELinuxEnforcing its mode (used when selinux is in LSMs).
	SELinux          string
	SELinuxEnforcing bool
	// BPF is the rule set of procgate's BPF LSM program (package
	// kernel/lsm/bpf) while it is attached (used when bpf is in LSMs);
	// nil when it is not: no other BPF LSM program is modelled.
	BPF *bpf.RuleSet
}

// HostKernel describes the kernel an oracle runner runs on.
func HostKernel(p oracle.KernelProfile) (Kernel, error) {
	rel, err := kernel.ParseRelease(p.Release)
	if err != nil {
		return Kernel{}, fmt.Errorf("kernel release %q: %w", p.Release, err)
	}
	k := Kernel{Release: rel, LSMs: p.LSMs, YamaScope: p.YamaScope, LandlockABI: p.LandlockABI, SuidDumpable: p.SuidDumpable}
	if k.SuidDumpable < 0 {
		k.SuidDumpable = 0
	}
	if k.LSMs == nil {
		return Kernel{}, fmt.Errorf("the active security modules are unknown (securityfs is not mounted at /sys/kernel/security)")
	}
	return k, nil
}

// modules builds the model's module stack for k.
func (k Kernel) modules() ([]kernel.LSM, error) {
	mods := []kernel.LSM{capability.New()}
	for _, name := range k.LSMs {
		switch {
		case name == "capability":
		case name == "landlock":
			mods = append(mods, landlock.New(k.LandlockABI))
		case name == "yama":
			m, err := yama.New(k.YamaScope)
			if err != nil {
				return nil, err
			}
			mods = append(mods, m)
		case name == "selinux":
			if k.SELinux == "" {
				return nil, fmt.Errorf("security module selinux is active but the verifier was given no policy for it")
			}
			p, err := selinux.Parse(k.SELinux)
			if err != nil {
				return nil, fmt.Errorf("selinux policy: %w", err)
			}
			mods = append(mods, selinux.New(p, k.SELinuxEnforcing))
		case name == "apparmor":
			var pol *apparmor.Policy
			if k.AppArmor != "" {
				p, err := apparmor.Parse(k.AppArmor)
				if err != nil {
					return nil, fmt.Errorf("apparmor profiles: %w", err)
				}
				pol = p
			}
			mods = append(mods, apparmor.New(pol))
		case name == "bpf":
			if k.BPF != nil {
				mods = append(mods, &bpf.Module{Rules: k.BPF})
			}
		case kernel.NoPtraceHook(name):
		default:
			// SELinux or Smack with a policy the verifier did not load:
			// predicting would be guessing.
			return nil, fmt.Errorf("security module %q is active but its policy is not modelled by the verifier", name)
		}
	}
	return mods, nil
}

// Has reports whether the named module is active.
func (k Kernel) Has(name string) bool { return slices.Contains(k.LSMs, name) }
