package kernel

import "fmt"

// Access bits for the VFS permission check (include/linux/fs.h MAY_*).
const (
	mayExec  = 0x1
	mayWrite = 0x2
	mayRead  = 0x4
)

// DumpOwner returns the owner of a /proc/<pid>/ inode of task t with the
// given permission bits (fs/proc/base.c:task_dump_owner): kernel threads
// are owned by global root; otherwise the task's euid/egid, except that
// for a task without an mm, or whose mm is not SUID_DUMP_USER, every inode
// other than a 0555 directory belongs to root of mm->user_ns (global root
// when unmapped or when there is no mm).
func DumpOwner(t *Task, perm uint16, dir bool) (KUID, KGID) {
	if t.Kthread {
		return 0, 0
	}
	uid, gid := t.Cred.EUID, t.Cred.EGID
	if dir && perm == 0o555 {
		return uid, gid
	}
	if t.MM == nil {
		return 0, 0
	}
	if t.MM.Dumpable != SuidDumpUser {
		uid, gid = 0, 0
		if u, ok := t.MM.UserNS.RootUID(); ok {
			uid = u
		}
		if g, ok := t.MM.UserNS.RootGID(); ok {
			gid = g
		}
	}
	return uid, gid
}

// inode is what the permission check needs of a /proc inode.
type inode struct {
	perm uint16
	dir  bool
	uid  KUID
	gid  KGID
	pid  int    // for explanations
	what string // the entry, for explanations: "environ", "fd/"
}

func (in inode) String() string { return fmt.Sprintf("/proc/%d/%s", in.pid, in.what) }

// genericPermission is fs/namei.c:generic_permission for the caller c:
// owner, group or other bits by fsuid and in_group_p, then the
// CAP_DAC_READ_SEARCH and CAP_DAC_OVERRIDE overrides, which need the
// capability in the caller's namespace and the inode's ids mapped there
// (capable_wrt_inode_uidgid).
func genericPermission(e Env, c *Task, in inode, mask int) bool {
	cr := &c.Cred
	var bits uint16
	var whose string
	switch {
	case cr.FSUID == in.uid:
		bits, whose = in.perm>>6&7, "owner"
	case cr.InGroup(in.gid):
		bits, whose = in.perm>>3&7, "group"
	default:
		bits, whose = in.perm&7, "other"
	}
	if int(bits)&mask == mask {
		if e.T.On() {
			e.T.Addf(LayerDAC, Pass, "%s is %04o owned by %d:%d; the caller (fsuid %d) gets the %s bits %s", in, in.perm, in.uid, in.gid, cr.FSUID, whose, rwx(bits))
		}
		return true
	}
	capOK := func(cp Cap) bool {
		ns := cr.UserNS
		return e.Capable(c, ns, cp, false) && ns.MapsUID(in.uid) && ns.MapsGID(in.gid)
	}
	via := ""
	if in.dir {
		if mask&mayWrite == 0 && capOK(CapDACReadSearch) {
			via = "CAP_DAC_READ_SEARCH"
		} else if capOK(CapDACOverride) {
			via = "CAP_DAC_OVERRIDE"
		}
	} else {
		if mask&^mayRead == 0 && capOK(CapDACReadSearch) {
			via = "CAP_DAC_READ_SEARCH"
		} else if (mask&mayExec == 0 || in.perm&0o111 != 0) && capOK(CapDACOverride) {
			via = "CAP_DAC_OVERRIDE"
		}
	}
	if e.T.On() {
		if via != "" {
			e.T.Addf(LayerDAC, Pass, "%s is %04o owned by %d:%d; the %s bits %s do not allow %s, but the caller holds %s", in, in.perm, in.uid, in.gid, whose, rwx(bits), rwx(uint16(mask)), via)
		} else {
			e.T.Addf(LayerDAC, Deny, "%s is %04o owned by %d:%d; the caller (fsuid %d) gets the %s bits %s, not %s, and holds neither CAP_DAC_READ_SEARCH nor CAP_DAC_OVERRIDE over it", in, in.perm, in.uid, in.gid, cr.FSUID, whose, rwx(bits), rwx(uint16(mask)))
		}
	}
	return via != ""
}

func rwx(b uint16) string {
	s := []byte("---")
	if b&4 != 0 {
		s[0] = 'r'
	}
	if b&2 != 0 {
		s[1] = 'w'
	}
	if b&1 != 0 {
		s[2] = 'x'
	}
	return string(s)
}

// procInode returns the inode of entry ent of task t.
func procInode(t *Task, perm uint16, dir bool, what string) inode {
	uid, gid := DumpOwner(t, perm, dir)
	return inode{perm: perm, dir: dir, uid: uid, gid: gid, pid: t.PID, what: what}
}
