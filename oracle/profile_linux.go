package oracle

import (
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// KernelProfile describes the running kernel, for choosing model switches
// (kernel release, active LSMs, Landlock ABI, Yama scope).
type KernelProfile struct {
	Release string `json:"release"`
	// LSMs is /sys/kernel/security/lsm split on commas; nil when securityfs
	// is not mounted.
	LSMs []string `json:"lsms,omitempty"`
	// LandlockABI is 0 when Landlock is not active.
	LandlockABI int `json:"landlock_abi"`
	// YamaScope is kernel.yama.ptrace_scope, or -1 without Yama.
	YamaScope    int    `json:"yama_scope"`
	SuidDumpable int    `json:"suid_dumpable"`
	CapLastCap   int    `json:"cap_last_cap"`
	FullCaps     uint64 `json:"full_caps"`
}

// readProfile reads the running kernel's profile.
func readProfile() KernelProfile {
	p := KernelProfile{YamaScope: -1, SuidDumpable: -1, FullCaps: FullCaps()}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		p.Release = unix.ByteSliceToString(u.Release[:])
	}
	if b, err := os.ReadFile("/sys/kernel/security/lsm"); err == nil {
		p.LSMs = strings.Split(strings.TrimSpace(string(b)), ",")
	}
	// landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)
	if v, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION); errno == 0 {
		p.LandlockABI = int(v)
	}
	p.YamaScope = readInt("/proc/sys/kernel/yama/ptrace_scope", -1)
	p.SuidDumpable = readInt("/proc/sys/fs/suid_dumpable", -1)
	p.CapLastCap = readInt("/proc/sys/kernel/cap_last_cap", -1)
	return p
}

func readInt(path string, def int) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return def
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return def
	}
	return n
}
