package report

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/procgate/procgate/kernel"
)

// Member is one process of a class.
type Member struct {
	PID  int    `json:"pid"`
	Comm string `json:"comm"`
}

// Class is a set of processes the model cannot tell apart: every input
// a decision reads from a caller (for a principal class) or from a
// target (for a target class) is the same for each member, so a pair's
// answer is the answer for the classes' representatives, unless the two
// processes are related (see [Relation]).
type Class struct {
	// ID is "p1", "p2", … for principals and "t1", … for targets, in
	// order of first appearance; it names the class inside one machine's
	// report. Key identifies it across machines and what-if runs.
	ID  string `json:"id"`
	Key string `json:"key"`
	// Label is a short human description: user, capabilities, namespace,
	// labels, and for targets the dumpable flag and tracer.
	Label string `json:"label"`
	// UID, EUID and GID are the real, effective and real group ids of
	// the members (global ids); Caps are their effective capabilities.
	UID  uint32 `json:"uid"`
	EUID uint32 `json:"euid"`
	GID  uint32 `json:"gid"`
	Caps string `json:"caps,omitempty"`
	// UserNS names the members' user namespace ("init" for the initial);
	// PIDNS their pid namespace when it is a descendant of the report's.
	UserNS string `json:"userns"`
	PIDNS  string `json:"pidns,omitempty"`
	// Login is set for a principal that no process holds: a login user
	// of the passwd database as a fresh login shell would run.
	Login string `json:"login,omitempty"`
	// Dumpable is the target members' dumpable flag (targets only; nil
	// for a task without an address space).
	Dumpable *int `json:"dumpable,omitempty"`
	// Privileged is set for a target class whose members hold a
	// capability or run as root: reaching one is reaching privilege.
	Privileged bool `json:"privileged,omitempty"`
	// Container is set when the members live in a user namespace other
	// than the initial one, or in a descendant pid namespace.
	Container bool `json:"container,omitempty"`
	// Members are the processes of the class, by pid.
	Members []Member `json:"members"`

	rep *kernel.Task
}

// Rep returns the representative the class's answers are computed for.
func (c *Class) Rep() *kernel.Task { return c.rep }

// keyBuilder writes a class key: every field a decision reads.
type keyBuilder struct{ strings.Builder }

func (b *keyBuilder) num(tag string, v uint64) {
	b.WriteString(tag)
	b.WriteString(strconv.FormatUint(v, 16))
	b.WriteByte(' ')
}

func (b *keyBuilder) str(tag, v string) {
	if v == "" {
		return
	}
	b.WriteString(tag)
	b.WriteString(strconv.Quote(v))
	b.WriteByte(' ')
}

// credKey is the part of a key both kinds of class share: credentials,
// capabilities, user namespace, security labels, Landlock domain, the
// executable, cgroup and pid namespace where procgate's BPF program
// reads them, and
// what kind of task it is.
func credKey(b *keyBuilder, t *kernel.Task) {
	c := &t.Cred
	fmt.Fprintf(b, "u%d/%d/%d/%d g%d/%d/%d/%d ", c.UID, c.EUID, c.SUID, c.FSUID, c.GID, c.EGID, c.SGID, c.FSGID)
	if len(c.Groups) > 0 {
		gs := slices.Clone(c.Groups)
		slices.Sort(gs)
		b.WriteString("G")
		for i, g := range gs {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.FormatUint(uint64(g), 10))
		}
		b.WriteByte(' ')
	}
	b.num("ce", uint64(c.CapEffective))
	b.num("cp", uint64(c.CapPermitted))
	b.str("ns", nsName(c.UserNS))
	b.str("se", t.SELinux)
	b.str("aa", t.AppArmor)
	b.str("sm", t.Smack)
	if t.Landlock != nil {
		b.str("ll", domainPath(t.Landlock))
	}
	b.str("pn", t.PIDNS)
	// What procgate's BPF program reads besides (set only where a rule
	// set needs it): the executable and the cgroup.
	if t.MM != nil && t.MM.Exe != nil {
		b.num("exe", t.MM.Exe.Dev)
		b.num(":", t.MM.Exe.Ino)
	}
	for _, c := range t.Cgroup {
		b.num("cg", c.ID)
		b.str("", c.Name)
	}
	if len(t.Cgroup) == 0 && t.CgroupID != 0 {
		b.num("cg", t.CgroupID)
	}
	if t.PIDNSInode != 0 {
		b.num("pni", uint64(t.PIDNSInode))
	}
	if t.Kthread {
		b.WriteString("kthread ")
	}
	if t.State != kernel.Running {
		b.WriteString(t.State.String() + " ")
	}
}

func nsName(ns *kernel.UserNS) string {
	if ns == nil {
		return ""
	}
	return ns.Name
}

// domainPath names a Landlock domain with its ancestors, outermost
// first: two domains of the same name under different parents differ.
func domainPath(d *kernel.LandlockDomain) string {
	var parts []string
	for ; d != nil; d = d.Parent {
		parts = append(parts, d.Name)
	}
	slices.Reverse(parts)
	return strings.Join(parts, "/")
}

// principalKey is the key of t as a caller.
func principalKey(t *kernel.Task, uncertain uint8) string {
	var b keyBuilder
	credKey(&b, t)
	if uncertain != 0 {
		b.num("?", uint64(uncertain))
	}
	return b.String()
}

// targetKey is the key of t as a target: its credentials and what only
// a target's side of a decision reads (its address space's dumpable flag
// and user namespace, whether it is traced, its Yama exception, and what
// could not be read about it).
func targetKey(t *kernel.Task, uncertain uint8) string {
	var b keyBuilder
	credKey(&b, t)
	if t.MM != nil {
		b.num("d", uint64(t.MM.Dumpable))
		b.str("mmns", nsName(t.MM.UserNS))
	} else {
		b.WriteString("nomm ")
		if t.UserDumpable {
			b.WriteString("userdumpable ")
		}
	}
	if t.Tracer != nil {
		b.WriteString("traced ")
	}
	if x := t.GroupLeader().Ptracer; x != nil {
		if x.Any {
			b.WriteString("ptracer=any ")
		} else if x.Tracer != nil {
			b.num("ptracer=", uint64(x.Tracer.TGID))
		}
	}
	if uncertain != 0 {
		b.num("?", uint64(uncertain))
	}
	return b.String()
}

// newClass starts a class for representative t.
func newClass(id, key string, t *kernel.Task, target bool) *Class {
	c := &Class{ID: id, Key: key, rep: t,
		UID: uint32(t.Cred.UID), EUID: uint32(t.Cred.EUID), GID: uint32(t.Cred.GID),
		UserNS: nsName(t.Cred.UserNS), PIDNS: t.PIDNS}
	if t.Cred.CapEffective != 0 {
		c.Caps = t.Cred.CapEffective.String()
	}
	c.Container = t.Cred.UserNS != nil && !t.Cred.UserNS.IsInit() || t.PIDNS != ""
	if target {
		if t.MM != nil {
			d := int(t.MM.Dumpable)
			c.Dumpable = &d
		}
		c.Privileged = t.Cred.CapEffective != 0 || t.Cred.CapPermitted != 0 || t.Cred.EUID == 0 || t.Cred.UID == 0
	}
	c.Label = classLabel(t, target, c.Login)
	return c
}

// classLabel describes a class in a line.
func classLabel(t *kernel.Task, target bool, login string) string {
	c := &t.Cred
	var parts []string
	if login != "" {
		parts = append(parts, "login "+login)
	}
	ids := fmt.Sprintf("uid %d", c.EUID)
	if c.UID != c.EUID || c.SUID != c.EUID || c.FSUID != c.EUID {
		ids = fmt.Sprintf("uid %d/%d/%d/%d", c.UID, c.EUID, c.SUID, c.FSUID)
	}
	parts = append(parts, ids)
	if c.GID != c.EGID || c.SGID != c.EGID || c.FSGID != c.EGID {
		parts = append(parts, fmt.Sprintf("gid %d/%d/%d/%d", c.GID, c.EGID, c.SGID, c.FSGID))
	} else {
		parts = append(parts, fmt.Sprintf("gid %d", c.EGID))
	}
	if len(c.Groups) > 0 {
		parts = append(parts, fmt.Sprintf("%d groups", len(c.Groups)))
	}
	switch {
	case c.CapEffective == kernel.CapSetAll:
		parts = append(parts, "all caps")
	case c.CapEffective != 0:
		parts = append(parts, "caps "+c.CapEffective.String())
	}
	if c.UserNS != nil && !c.UserNS.IsInit() {
		parts = append(parts, "userns "+c.UserNS.Name)
	}
	if t.PIDNS != "" {
		parts = append(parts, "pidns "+t.PIDNS)
	}
	for _, l := range []struct{ what, v string }{{"selinux", t.SELinux}, {"apparmor", t.AppArmor}, {"smack", t.Smack}} {
		if l.v != "" && l.v != "unconfined" {
			parts = append(parts, l.what+" "+l.v)
		}
	}
	if t.Landlock != nil {
		parts = append(parts, "landlock "+t.Landlock.Name)
	}
	if t.Kthread {
		parts = append(parts, "kernel thread")
	}
	if t.State != kernel.Running {
		parts = append(parts, t.State.String())
	}
	if target {
		switch {
		case t.MM == nil:
		case t.MM.Dumpable != kernel.SuidDumpUser:
			parts = append(parts, fmt.Sprintf("dumpable %d", t.MM.Dumpable))
		}
		if t.Tracer != nil {
			parts = append(parts, "traced")
		}
		if x := t.GroupLeader().Ptracer; x != nil {
			parts = append(parts, "yama exception")
		}
	}
	return strings.Join(parts, ", ")
}
