package policy

import (
	"fmt"
	"os/user"
	"strconv"
)

// Resolver turns the names in a policy into the numbers processes carry.
// [Compile] uses [SystemResolver]; tests and tools that compile a policy
// for another machine pass their own to [CompileWith].
type Resolver interface {
	// LookupUser returns the uid of a user name.
	LookupUser(name string) (uint32, error)
	// LookupGroup returns the gid of a group name.
	LookupGroup(name string) (uint32, error)
	// StatExe returns the device and inode of an executable file.
	StatExe(path string) (dev, ino uint64, err error)
	// CgroupID returns the id of a cgroup v2, by its path from the
	// hierarchy's root ("/system.slice"; "/" is the root, id 1).
	CgroupID(path string) (uint64, error)
}

// SystemResolver resolves names with this machine's user and group
// databases (os/user) and the file system (stat).
type SystemResolver struct{}

// LookupUser implements Resolver.LookupUser with os/user.
func (SystemResolver) LookupUser(name string) (uint32, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, err
	}
	id, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("user %q has uid %q: %w", name, u.Uid, err)
	}
	return uint32(id), nil
}

// LookupGroup implements Resolver.LookupGroup with os/user.
func (SystemResolver) LookupGroup(name string) (uint32, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, err
	}
	id, err := strconv.ParseUint(g.Gid, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("group %q has gid %q: %w", name, g.Gid, err)
	}
	return uint32(id), nil
}

// StatExe implements Resolver.StatExe with stat(2), following symbolic
// links as the kernel's exe link does.
func (SystemResolver) StatExe(path string) (dev, ino uint64, err error) {
	return statDevIno(path)
}

// MapResolver is a fixed [Resolver] for tests and for checking a policy
// written for another machine: names missing from the maps do not exist.
type MapResolver struct {
	Users, Groups map[string]uint32
	Exes          map[string]Exe
	Cgroups       map[string]uint64
}

// LookupUser implements Resolver.LookupUser.
func (m MapResolver) LookupUser(name string) (uint32, error) {
	if id, ok := m.Users[name]; ok {
		return id, nil
	}
	return 0, user.UnknownUserError(name)
}

// LookupGroup implements Resolver.LookupGroup.
func (m MapResolver) LookupGroup(name string) (uint32, error) {
	if id, ok := m.Groups[name]; ok {
		return id, nil
	}
	return 0, user.UnknownGroupError(name)
}

// StatExe implements Resolver.StatExe.
func (m MapResolver) StatExe(path string) (dev, ino uint64, err error) {
	if e, ok := m.Exes[path]; ok {
		return e.Dev, e.Ino, nil
	}
	return 0, 0, fmt.Errorf("stat %s: no such file", path)
}

// CgroupID implements Resolver.CgroupID.
func (m MapResolver) CgroupID(path string) (uint64, error) {
	if id, ok := m.Cgroups[path]; ok {
		return id, nil
	}
	return 0, fmt.Errorf("cgroup %s: no such cgroup", path)
}
