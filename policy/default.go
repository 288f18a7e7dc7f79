package policy

import _ "embed"

// DefaultSource is the text of the default policy (default.pol, also
// shipped as examples/policies/default.pol): members of group procgate
// read status, stat_full, io, fd, fd_count, fdinfo, exe, cwd, root,
// limits, cgroup and ns of every dumpable process; nobody gets environ,
// maps, mem or attach.
//
//go:embed default.pol
var DefaultSource []byte

// DefaultName is the file name positions in the default policy carry.
const DefaultName = "default.pol"

// Default compiles the default policy on this machine. When the group
// procgate does not exist its selector matches no process and the policy
// grants nothing; [Policy.Warnings] says so.
func Default() (*Policy, error) {
	return Load(DefaultName, DefaultSource)
}
