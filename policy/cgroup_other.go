//go:build !linux

package policy

import "errors"

// CgroupID implements Resolver.CgroupID: cgroups are Linux's.
func (SystemResolver) CgroupID(path string) (uint64, error) {
	return 0, errors.New("cgroup " + path + ": no cgroups on this system")
}
