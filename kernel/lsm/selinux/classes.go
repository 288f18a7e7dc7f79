package selinux

import (
	"slices"

	"github.com/procgate/procgate/internal/suggest"
)

// class is a security class known to the model, numbered as the index in
// classes (not the kernel's SECCLASS_* values, which depend on the
// policy).
type class uint8

// The classes the ptrace paths use (security/selinux/include/classmap.h).
const (
	classFile class = iota
	classDir
	classLnkFile
	classProcess
	classCapability
	classCapability2
	classCapUserns
	classCap2Userns
	numClasses
)

// commonFilePerms is COMMON_FILE_PERMS in classmap.h, in bit order.
var commonFilePerms = []string{
	"ioctl", "read", "write", "create", "getattr", "setattr", "lock",
	"relabelfrom", "relabelto", "append", "map", "unlink", "link", "rename",
	"execute", "quotaon", "mounton", "audit_access", "open", "execmod",
	"watch", "watch_mount", "watch_sb", "watch_with_perm", "watch_reads",
}

// capPerms are the capability class permissions: bit n is capability n.
var capPerms = []string{
	"chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill",
	"setgid", "setuid", "setpcap", "linux_immutable", "net_bind_service",
	"net_broadcast", "net_admin", "net_raw", "ipc_lock", "ipc_owner",
	"sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct",
	"sys_admin", "sys_boot", "sys_nice", "sys_resource", "sys_time",
	"sys_tty_config", "mknod", "lease", "audit_write", "audit_control",
	"setfcap",
}

// cap2Perms are the capability2 class permissions: bit n is capability
// 32+n.
var cap2Perms = []string{
	"mac_override", "mac_admin", "syslog", "wake_alarm", "block_suspend",
	"audit_read", "perfmon", "bpf", "checkpoint_restore",
}

// classInfo names a class and its permissions in bit order.
type classInfo struct {
	name  string
	perms []string
}

var classes = [numClasses]classInfo{
	classFile:        {"file", append(slices.Clone(commonFilePerms), "execute_no_trans", "entrypoint")},
	classDir:         {"dir", append(slices.Clone(commonFilePerms), "add_name", "remove_name", "reparent", "search", "rmdir")},
	classLnkFile:     {"lnk_file", commonFilePerms},
	classProcess:     {"process", processPerms},
	classCapability:  {"capability", capPerms},
	classCapability2: {"capability2", cap2Perms},
	classCapUserns:   {"cap_userns", capPerms},
	classCap2Userns:  {"cap2_userns", cap2Perms},
}

// processPerms is the process class in classmap.h order.
var processPerms = []string{
	"fork", "transition", "sigchld", "sigkill", "sigstop", "signull",
	"signal", "ptrace", "getsched", "setsched", "getsession", "getpgid",
	"setpgid", "getcap", "setcap", "share", "getattr", "setexec",
	"setfscreate", "noatsecure", "siginh", "setrlimit", "rlimitinh",
	"dyntransition", "setcurrent", "execmem", "execstack", "execheap",
	"setkeycreate", "setsockcreate", "getrlimit",
}

// Permission bits the hooks ask for.
const (
	fileRead      uint32 = 1 << 1  // FILE__READ (and DIR__READ, LNK_FILE__READ)
	fileWrite     uint32 = 1 << 2  // FILE__WRITE
	fileGetattr   uint32 = 1 << 4  // FILE__GETATTR
	dirSearch     uint32 = 1 << 28 // DIR__SEARCH
	processPtrace uint32 = 1 << 7  // PROCESS__PTRACE
)

func (c class) String() string { return classes[c].name }

// all returns the mask of every permission of the class.
func (c class) all() uint32 {
	n := len(classes[c].perms)
	if n >= 32 {
		return ^uint32(0)
	}
	return 1<<n - 1
}

// lookupClass returns the class with the given name.
func lookupClass(name string) (class, bool) {
	for i := range classes {
		if classes[i].name == name {
			return class(i), true
		}
	}
	return 0, false
}

func classNames() []string {
	out := make([]string, len(classes))
	for i := range classes {
		out[i] = classes[i].name
	}
	return out
}

// perm returns the bit of the named permission in the class.
func (c class) perm(name string) (uint32, bool) {
	i := slices.Index(classes[c].perms, name)
	if i < 0 {
		return 0, false
	}
	return 1 << i, true
}

// unknownPerm explains an unknown permission name.
func (c class) unknownPerm(name string) string {
	return "unknown permission " + quote(name) + " in class " + c.String() + suggest.DidYouMean(name, classes[c].perms, 3)
}

// permString formats a permission set as the AVC record does
// (security/selinux/avc.c:avc_dump_av): "{ read open }", unknown bits in
// hex.
func (c class) permString(av uint32) string {
	if av == 0 {
		return "null"
	}
	b := []byte{'{'}
	for i, p := range classes[c].perms {
		if av&(1<<i) != 0 {
			b = append(b, ' ')
			b = append(b, p...)
			av &^= 1 << i
		}
	}
	if av != 0 {
		b = append(b, " 0x"...)
		b = appendHex(b, av)
	}
	return string(append(b, " }"...))
}

func appendHex(b []byte, v uint32) []byte {
	const digits = "0123456789abcdef"
	var tmp [8]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = digits[v&15]
		v >>= 4
		if v == 0 {
			break
		}
	}
	return append(b, tmp[i:]...)
}

func quote(s string) string { return "\"" + s + "\"" }
