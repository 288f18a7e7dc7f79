package kernel

import (
	"fmt"
	"math/bits"
	"strings"

	"github.com/procgate/procgate/internal/suggest"
)

// Cap is a capability number (include/uapi/linux/capability.h).
type Cap uint8

// The capabilities, numbered as in include/uapi/linux/capability.h.
const (
	CapChown Cap = iota
	CapDACOverride
	CapDACReadSearch
	CapFowner
	CapFsetid
	CapKill
	CapSetgid
	CapSetuid
	CapSetpcap
	CapLinuxImmutable
	CapNetBindService
	CapNetBroadcast
	CapNetAdmin
	CapNetRaw
	CapIPCLock
	CapIPCOwner
	CapSysModule
	CapSysRawio
	CapSysChroot
	CapSysPtrace
	CapSysPacct
	CapSysAdmin
	CapSysBoot
	CapSysNice
	CapSysResource
	CapSysTime
	CapSysTTYConfig
	CapMknod
	CapLease
	CapAuditWrite
	CapAuditControl
	CapSetfcap
	CapMacOverride
	CapMacAdmin
	CapSyslog
	CapWakeAlarm
	CapBlockSuspend
	CapAuditRead
	CapPerfmon
	CapBPF
	CapCheckpointRestore

	// CapLast is the highest capability this model knows (CAP_LAST_CAP).
	CapLast = CapCheckpointRestore
)

var capNames = [...]string{
	"chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill",
	"setgid", "setuid", "setpcap", "linux_immutable", "net_bind_service",
	"net_broadcast", "net_admin", "net_raw", "ipc_lock", "ipc_owner",
	"sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct",
	"sys_admin", "sys_boot", "sys_nice", "sys_resource", "sys_time",
	"sys_tty_config", "mknod", "lease", "audit_write", "audit_control",
	"setfcap", "mac_override", "mac_admin", "syslog", "wake_alarm",
	"block_suspend", "audit_read", "perfmon", "bpf", "checkpoint_restore",
}

// String returns the lower-case name without the CAP_ prefix, as audit
// records spell it (capname="sys_ptrace").
func (c Cap) String() string {
	if int(c) < len(capNames) {
		return capNames[c]
	}
	return fmt.Sprintf("cap%d", uint8(c))
}

// ParseCap parses a capability name with or without the CAP_ prefix, in
// any case ("sys_ptrace", "CAP_SYS_PTRACE"), or its number.
func ParseCap(s string) (Cap, error) {
	n := strings.ToLower(strings.TrimSpace(s))
	n = strings.TrimPrefix(n, "cap_")
	for i, name := range capNames {
		if name == n {
			return Cap(i), nil
		}
	}
	var num int
	if _, err := fmt.Sscanf(n, "%d", &num); err == nil && num >= 0 && num <= int(CapLast) && fmt.Sprint(num) == n {
		return Cap(num), nil
	}
	return 0, fmt.Errorf("unknown capability %q%s", s, suggestCap(n))
}

func suggestCap(n string) string {
	return suggest.DidYouMean(n, capNames[:], 3)
}

// CapSet is a set of capabilities, one bit per [Cap], as in kernel_cap_t.
type CapSet uint64

// CapSetAll is the full set of known capabilities (CAP_FULL_SET).
const CapSetAll = CapSet(1)<<(CapLast+1) - 1

// CapsOf returns the set holding exactly the given capabilities.
func CapsOf(cs ...Cap) CapSet {
	var s CapSet
	for _, c := range cs {
		s |= 1 << c
	}
	return s
}

// Has reports whether c is in the set (cap_raised).
func (s CapSet) Has(c Cap) bool { return s&(1<<c) != 0 }

// SubsetOf reports whether every capability in s is also in t
// (cap_issubset).
func (s CapSet) SubsetOf(t CapSet) bool { return s&^t == 0 }

// Caps lists the capabilities in the set, lowest first.
func (s CapSet) Caps() []Cap {
	out := make([]Cap, 0, bits.OnesCount64(uint64(s)))
	for v := uint64(s); v != 0; v &= v - 1 {
		out = append(out, Cap(bits.TrailingZeros64(v)))
	}
	return out
}

// String lists the set as comma-separated names, "all" for CapSetAll and
// "none" for the empty set.
func (s CapSet) String() string {
	switch s {
	case 0:
		return "none"
	case CapSetAll:
		return "all"
	}
	if s&^CapSetAll == 0 && bits.OnesCount64(uint64(s)) > int(CapLast+1)/2 {
		// Mostly full: name what is missing, as "all -sys_resource".
		missing := CapSetAll &^ s
		names := make([]string, 0, bits.OnesCount64(uint64(missing)))
		for _, c := range missing.Caps() {
			names = append(names, "-"+c.String())
		}
		return "all " + strings.Join(names, ",")
	}
	names := make([]string, 0, bits.OnesCount64(uint64(s)))
	for _, c := range s.Caps() {
		names = append(names, c.String())
	}
	return strings.Join(names, ",")
}
