package policy

import (
	"strings"

	"github.com/procgate/procgate/kernel"
)

// Exe identifies an executable by the device and inode of the file the
// process runs (stat of /proc/<pid>/exe), with its path for messages. An
// `exe` selector compares Dev and Ino only: a path is spoofable through
// mount namespaces, an inode is not. A zero Ino matches no exe selector.
type Exe struct {
	Dev, Ino uint64
	Path     string
}

// Process is what the policy sees of a process, as the caller (the
// broker, the FUSE /proc) observed it. It is plain data, declared once and
// embedded by [Subject] and [Target], which stay distinct types: a subject
// cannot be passed where a target is asked for. The zero value is a
// process that matches only selectors that need nothing (such as an empty
// class).
type Process struct {
	// PID and Comm are informational: they appear in audit records, never
	// in decisions.
	PID  int
	Comm string
	// UID and GID are the effective ids, as SO_PEERCRED reports them (a
	// target whose real, effective and saved ids differ has changed
	// credentials and is non-dumpable anyway, so it falls under the
	// non-dumpable protection).
	UID, GID uint32
	// Groups are the supplementary groups (status "Groups:").
	Groups []uint32
	// SELinux is the full SELinux context ("system_u:system_r:sshd_t:s0"),
	// "" when SELinux is off. AppArmor is the AppArmor label, with or
	// without the " (enforce)" mode suffix, "" when AppArmor is off.
	SELinux, AppArmor string
	// Exe is the executable the process runs.
	Exe Exe
	// Cgroup is the cgroup v2 path ("/system.slice/sshd.service").
	Cgroup string
	// PIDNS is the inode of the process's pid namespace (0 = unknown).
	PIDNS uint64
	// CapPermitted is the permitted capability set (status "CapPrm"):
	// what cap selectors test. Not the effective set, which the process
	// lowers and raises at will within the permitted one.
	CapPermitted kernel.CapSet
}

// Subject is the process asking for access.
type Subject struct {
	Process
}

// Target is the process whose state is asked for.
type Target struct {
	Process
	// Dumpable is the mm's dumpable flag == SUID_DUMP_USER (prctl
	// PR_GET_DUMPABLE == 1). The zero value, false, is the safe one: a
	// non-dumpable target is protected unless a rule says nondumpable.
	Dumpable bool
}

// Relation is a set of facts that relate a subject to a target. Rules
// test them with `when`. Facts the policy can compute from [Subject] and
// [Target] are computed by [Relate]; the caller supplies only the facts
// that need the process tree ([RelDescendant]), and any other bit it
// passes is ignored, so a caller cannot grant itself a relation.
type Relation uint16

// The relational facts.
const (
	RelSameUID       Relation = 1 << iota // subject and target have the same (effective) uid
	RelSameGID                            // ... the same (effective) gid
	RelSameContainer                      // ... share a container (see option same_container)
	RelSameCgroup                         // ... are in the same cgroup
	RelSameLabel                          // ... carry the same SELinux context (or, without SELinux, the same confined AppArmor label)
	RelDescendant                         // the target descends from the subject (caller-supplied)
	RelNondumpable                        // the target is not dumpable

	// CallerRelations are the facts a caller may supply.
	CallerRelations = RelDescendant

	numRelations = 7
)

var relationNames = [numRelations]string{
	"same_uid", "same_gid", "same_container", "same_cgroup", "same_label", "descendant", "nondumpable",
}

// String returns the facts as the `when` conditions that name them,
// separated by commas.
func (r Relation) String() string {
	var parts []string
	for i := range numRelations {
		if r&(1<<i) != 0 {
			parts = append(parts, relationNames[i])
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ",")
}

// containerMode is how same_container compares.
type containerMode uint8

const (
	containerBoth   containerMode = iota // pid namespace and cgroup
	containerPIDNS                       // pid namespace only
	containerCgroup                      // cgroup only
)

// relate computes the facts; caller holds the bits the caller supplied.
func relate(s *Subject, t *Target, caller Relation, cm containerMode) Relation {
	r := caller & CallerRelations
	if s.UID == t.UID {
		r |= RelSameUID
	}
	if s.GID == t.GID {
		r |= RelSameGID
	}
	sameNS := s.PIDNS != 0 && s.PIDNS == t.PIDNS
	sameCg := s.Cgroup != "" && s.Cgroup == t.Cgroup
	if sameCg {
		r |= RelSameCgroup
	}
	switch cm {
	case containerBoth:
		if sameNS && sameCg {
			r |= RelSameContainer
		}
	case containerPIDNS:
		if sameNS {
			r |= RelSameContainer
		}
	case containerCgroup:
		if sameCg {
			r |= RelSameContainer
		}
	}
	if s.SELinux != "" {
		if s.SELinux == t.SELinux {
			r |= RelSameLabel
		}
	} else if a := aaProfile(s.AppArmor); a != "" && a != "unconfined" && a == aaProfile(t.AppArmor) {
		r |= RelSameLabel
	}
	if !t.Dumpable {
		r |= RelNondumpable
	}
	return r
}

// aaProfile strips the " (enforce)"/" (complain)" mode suffix of an
// AppArmor label.
func aaProfile(label string) string {
	if i := strings.LastIndex(label, " ("); i >= 0 && strings.HasSuffix(label, ")") {
		return label[:i]
	}
	return label
}

// selinuxType returns the type field of a context user:role:type[:level].
func selinuxType(ctx string) string {
	i := strings.IndexByte(ctx, ':')
	if i < 0 {
		return ""
	}
	rest := ctx[i+1:]
	j := strings.IndexByte(rest, ':')
	if j < 0 {
		return ""
	}
	rest = rest[j+1:]
	if k := strings.IndexByte(rest, ':'); k >= 0 {
		rest = rest[:k]
	}
	return rest
}

// view is the part of a process selectors look at.
type view struct {
	uid, gid          uint32
	groups            []uint32
	selinux, apparmor string
	exe               *Exe
	cgroup            string
	pidns             uint64
	capPrm            kernel.CapSet
}

func (p *Process) view() view {
	return view{p.UID, p.GID, p.Groups, p.SELinux, p.AppArmor, &p.Exe, p.Cgroup, p.PIDNS, p.CapPermitted}
}
