package policy

import (
	"errors"

	"github.com/procgate/procgate/procfs"
)

// CgroupID implements Resolver.CgroupID under this machine's cgroup2
// mount (procfs.Cgroup2Mount), which must show the whole hierarchy.
func (SystemResolver) CgroupID(path string) (uint64, error) {
	mount := procfs.Cgroup2Mount("/sys")
	if mount == "" {
		return 0, errors.New("no cgroup2 mount at /sys/fs/cgroup or /sys/fs/cgroup/unified")
	}
	nodes, err := procfs.CgroupNodes(mount, path)
	if err != nil {
		return 0, err
	}
	return nodes[len(nodes)-1].ID, nil
}
