package daemon

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// needed are the capabilities the daemon must start with: the reading
// ones the gate keeps, and those it needs to give up the rest.
var needed = []struct {
	cap  uint
	name string
	why  string
	keep bool // needed with --keep-privileges too
}{
	{unix.CAP_SYS_PTRACE, "CAP_SYS_PTRACE", "read other processes' ptrace-guarded /proc files", true},
	{unix.CAP_DAC_READ_SEARCH, "CAP_DAC_READ_SEARCH", "read other users' 0400 /proc files", true},
	{unix.CAP_SETPCAP, "CAP_SETPCAP", "drop the other capabilities from the bounding set", false},
}

// CheckPrivileges reports, as one clear error, that the daemon lacks a
// capability it needs: it must run as root (or with those capabilities).
// With keep, only the reading capabilities are needed.
func CheckPrivileges(keep bool) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("daemon: read this process's capabilities: %w", err)
	}
	var missing []string
	for _, n := range needed {
		if keep && !n.keep {
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
