package procfs

import (
	"fmt"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/kernel"
)

// Cgroup2Mount returns where the cgroup v2 hierarchy is mounted under
// sys (a sysfs mount point, "/sys" on the running system): fs/cgroup
// (the unified layout) or fs/cgroup/unified (systemd's hybrid layout);
// "" when neither is.
func Cgroup2Mount(sys string) string {
	for _, d := range []string{"fs/cgroup", "fs/cgroup/unified"} {
		var fs unix.Statfs_t
		p := filepath.Join(sys, d)
		if unix.Statfs(p, &fs) == nil && fs.Type == unix.CGROUP2_SUPER_MAGIC {
			return p
		}
	}
	return ""
}

// rootCgroupID is the id of the cgroup v2 hierarchy's root (the first
// kernfs node of its tree: kernel/cgroup/cgroup.c).
const rootCgroupID = 1

// CgroupNodes returns the cgroup v2 path (as /proc/PID/cgroup's "0::"
// line gives it) as the kernel holds it: the directories from the root
// to the cgroup, each with its id (the inode number of its directory
// under mount, a cgroup2 mount) and name. The mount must show the whole
// hierarchy: under a cgroup namespace it shows a subtree, whose levels
// are not the kernel's.
func CgroupNodes(mount, path string) ([]kernel.CgroupNode, error) {
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("cgroup path %q: %w", path, ErrMalformed)
	}
	var names []string
	for _, s := range strings.Split(path, "/") {
		switch s {
		case "":
		case ".", "..":
			return nil, fmt.Errorf("cgroup path %q: %w", path, ErrMalformed)
		default:
			names = append(names, s)
		}
	}
	nodes := make([]kernel.CgroupNode, 0, len(names)+1)
	dir := mount
	for i := -1; i < len(names); i++ {
		name := ""
		if i >= 0 {
			name = names[i]
			dir = filepath.Join(dir, name)
		}
		var st unix.Stat_t
		if err := unix.Stat(dir, &st); err != nil {
			return nil, fmt.Errorf("cgroup %s: %w", dir, err)
		}
		if i < 0 && st.Ino != rootCgroupID {
			return nil, fmt.Errorf("cgroup mount %s is not the root of the hierarchy (id %d, a cgroup namespace's view): levels unknown", mount, st.Ino)
		}
		nodes = append(nodes, kernel.CgroupNode{ID: st.Ino, Name: name})
	}
	return nodes, nil
}
