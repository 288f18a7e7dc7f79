package daemon

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// needed are the capabilities the daemon must start with: the reading
// ones the gate keeps, those to become its unprivileged users, and the
// one to empty the bounding set (needed only while it holds more than
// the reading ones).
var needed = []struct {
	cap  uint
	name string
	why  string
	keep bool // needed with --keep-privileges too
}{
	{unix.CAP_SYS_PTRACE, "CAP_SYS_PTRACE", "read other processes' ptrace-guarded /proc files", true},
	{unix.CAP_DAC_READ_SEARCH, "CAP_DAC_READ_SEARCH", "read other users' 0400 /proc files", true},
	{unix.CAP_SETUID, "CAP_SETUID", "become the front's and the reader's users", false},
	{unix.CAP_SETGID, "CAP_SETGID", "become the front's and the reader's groups", false},
	{unix.CAP_SETPCAP, "CAP_SETPCAP", "drop the other capabilities from the bounding set", false},
}

// CheckPrivileges reports, as one clear error, that the daemon lacks a
// capability it needs: it must run as root (or with those capabilities).
// With keep, only the reading capabilities are needed; CAP_SETPCAP only
// while the bounding set holds a capability the daemon does not keep.
func CheckPrivileges(keep bool) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("daemon: read this process's capabilities: %w", err)
	}
	var missing []string
	for _, n := range needed {
		if keep && !n.keep || n.cap == unix.CAP_SETPCAP && !boundingBeyondKept() {
			continue
		}
		if data[n.cap/32].Effective&(1<<(n.cap%32)) == 0 {
			missing = append(missing, n.name+" (to "+n.why+")")
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("needs root: running as uid %d without %s; run it as root, with sudo, or as the systemd unit in deploy/ does",
		unix.Geteuid(), strings.Join(missing, ", "))
}

// boundingBeyondKept reports whether the bounding set holds a capability
// other than the two the reader keeps.
func boundingBeyondKept() bool {
	for c := 0; c <= unix.CAP_LAST_CAP; c++ {
		if c == unix.CAP_SYS_PTRACE || c == unix.CAP_DAC_READ_SEARCH {
			continue
		}
		if in, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0); err == nil && in == 1 {
			return true
		}
	}
	return false
}
