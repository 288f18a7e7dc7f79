package scenario

import (
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/bpf"
)

var taskKeys = []string{"name", "pid", "tgid", "parent", "uid", "uids", "gid", "gids", "groups", "caps",
	"userns", "mm", "user_dumpable", "kthread", "state", "selinux", "apparmor", "smack", "landlock",
	"ptracer", "tracer", "comm", "cmdline", "pidns", "pidns_inode", "cgroup"}

type taskDef struct {
	node   *yaml.Node
	m      map[string]*yaml.Node
	t      *kernel.Task
	mmDone int // 0 not yet, 1 in progress, 2 done
}

func (l *loader) loadTasks(n *yaml.Node) {
	var defs []*taskDef
	nextPID := 1000
	// Pass 1: names, pids, credentials, namespaces — everything that does
	// not refer to another task.
	for _, item := range l.seq(n, "tasks") {
		m := l.mapping(item, "task", taskKeys...)
		t := &kernel.Task{Name: l.str(m["name"], "task.name")}
		if t.Name == "" {
			l.errf(item, "task: name is required")
			continue
		}
		if l.tasks[t.Name] != nil {
			l.errf(m["name"], "task %q defined twice", t.Name)
			continue
		}
		if v := m["pid"]; v != nil {
			x, _ := l.integer(v, "task.pid", 1, 1<<22)
			t.PID = int(x)
		} else {
			for l.byPID[nextPID] != nil {
				nextPID++
			}
			t.PID = nextPID
		}
		t.TGID = t.PID
		if v := m["tgid"]; v != nil {
			x, _ := l.integer(v, "task.tgid", 1, 1<<22)
			t.TGID = int(x)
		}
		if other := l.byPID[t.PID]; other != nil {
			if other.TGID != t.TGID {
				l.errf(m["pid"], "task %q: pid %d is also task %q, with a different tgid (%d vs %d)", t.Name, t.PID, other.Name, t.TGID, other.TGID)
			} else {
				l.errf(m["pid"], "task %q: pid %d is already task %q", t.Name, t.PID, other.Name)
			}
			continue
		}
		l.tasks[t.Name] = t
		l.byPID[t.PID] = t
		d := &taskDef{node: item, m: m, t: t}
		defs = append(defs, d)
		l.defs[t] = d
	}
	for _, d := range defs {
		l.taskCreds(d)
	}
	// Pass 2: thread groups, parents, tracers, exceptions, address spaces.
	for _, d := range defs {
		t, m := d.t, d.m
		if t.TGID != t.PID {
			leader := l.byPID[t.TGID]
			if leader == nil {
				l.errf(m["tgid"], "task %q: thread group %d has no leader task with pid %d", t.Name, t.TGID, t.TGID)
				continue
			}
			if leader.TGID != leader.PID {
				l.errf(m["tgid"], "task %q: task %q (pid %d) is itself a thread of %d", t.Name, leader.Name, leader.PID, leader.TGID)
				continue
			}
			t.Leader = leader
		} else {
			t.Leader = t
		}
	}
	for _, d := range defs {
		l.taskLinks(d)
	}
	l.threadParents(defs)
	l.parentCycles(defs)
	for _, d := range defs {
		l.taskMM(d)
	}
	for _, d := range defs {
		l.w.AddTask(d.t)
	}
}

func (l *loader) taskCreds(d *taskDef) {
	t, m := d.t, d.m
	c := &t.Cred
	c.UserNS = l.w.Init
	if v := m["userns"]; v != nil {
		c.UserNS = l.nsRef(v, "task.userns")
	}
	t.Kthread = l.boolean(m["kthread"], "task.kthread")
	uids := l.ids(m["uid"], m["uids"], "uid")
	gids := l.ids(m["gid"], m["gids"], "gid")
	c.UID, c.EUID, c.SUID, c.FSUID = kernel.KUID(uids[0]), kernel.KUID(uids[1]), kernel.KUID(uids[2]), kernel.KUID(uids[3])
	c.GID, c.EGID, c.SGID, c.FSGID = kernel.KGID(gids[0]), kernel.KGID(gids[1]), kernel.KGID(gids[2]), kernel.KGID(gids[3])
	for _, g := range l.seq(m["groups"], "task.groups") {
		if x, ok := l.integer(g, "task.groups", 0, 1<<32-2); ok {
			c.Groups = append(c.Groups, kernel.KGID(x))
		}
	}
	// Default capabilities: all when the effective uid is root of the
	// task's namespace (or the task is a kernel thread), none otherwise.
	root, _ := c.UserNS.RootUID()
	if c.UserNS.IsInit() {
		root = 0
	}
	if c.EUID == root || t.Kthread {
		c.CapEffective, c.CapPermitted = kernel.CapSetAll, kernel.CapSetAll
	}
	if v := m["caps"]; v != nil {
		l.caps(v, c)
	}
	t.Comm = l.str(m["comm"], "task.comm")
	t.Cmdline = l.str(m["cmdline"], "task.cmdline")
	t.SELinux = l.str(m["selinux"], "task.selinux")
	t.PIDNS = l.str(m["pidns"], "task.pidns")
	if v := m["cgroup"]; v != nil {
		l.cgroup(t, v)
	}
	if v := m["pidns_inode"]; v != nil {
		ino, _ := l.integer(v, "task.pidns_inode", 1, 1<<32-1)
		t.PIDNSInode = uint32(ino)
	}
	t.AppArmor = l.str(m["apparmor"], "task.apparmor")
	t.Smack = l.str(m["smack"], "task.smack")
	if v := m["landlock"]; v != nil {
		var path []string
		for _, x := range l.seq(v, "task.landlock") {
			s := l.str(x, "task.landlock")
			if s == "" {
				l.errf(x, "task.landlock: domain names must not be empty")
			}
			path = append(path, s)
		}
		if len(path) > 0 {
			t.Landlock = l.domain(path)
		}
		if len(path) > 16 {
			l.errf(v, "task.landlock: %d nested domains; Landlock stops at 16", len(path))
		}
	}
	switch s := l.str(m["state"], "task.state"); s {
	case "", "running":
		t.State = kernel.Running
	case "exiting":
		t.State = kernel.Exiting
	case "zombie":
		t.State = kernel.Zombie
	default:
		l.errf(m["state"], "task.state: unknown state %q (want running, exiting or zombie)", s)
	}
}

// ids reads a shorthand id or a {real, effective, saved, fs} mapping; the
// shorthand and missing fields default to the real id (0 when absent).
func (l *loader) ids(short, long *yaml.Node, what string) [4]uint32 {
	var v [4]uint32
	if short != nil && long != nil {
		l.errf(long, "task: give either %s or %ss, not both", what, what)
	}
	if short != nil {
		x, _ := l.integer(short, "task."+what, 0, 1<<32-2)
		return [4]uint32{uint32(x), uint32(x), uint32(x), uint32(x)}
	}
	if long == nil {
		return v
	}
	m := l.mapping(long, "task."+what+"s", "real", "effective", "saved", "fs")
	keys := []string{"real", "effective", "saved", "fs"}
	set := [4]bool{}
	for i, k := range keys {
		if n := m[k]; n != nil {
			x, _ := l.integer(n, "task."+what+"s."+k, 0, 1<<32-2)
			v[i], set[i] = uint32(x), true
		}
	}
	if !set[0] {
		l.errf(long, "task.%ss: real is required", what)
	}
	// Missing effective/saved default to real; a missing fs id follows the
	// effective id, as setresuid keeps fsuid = euid.
	if !set[1] {
		v[1] = v[0]
	}
	if !set[2] {
		v[2] = v[0]
	}
	if !set[3] {
		v[3] = v[1]
	}
	return v
}

func (l *loader) caps(n *yaml.Node, c *kernel.Cred) {
	switch n.Kind {
	case yaml.ScalarNode:
		switch n.Value {
		case "all":
			c.CapEffective, c.CapPermitted = kernel.CapSetAll, kernel.CapSetAll
		case "none", "":
			c.CapEffective, c.CapPermitted = 0, 0
		default:
			l.errf(n, "task.caps: want all, none, a list, or {effective: [...], permitted: [...]}")
		}
	case yaml.SequenceNode:
		s := l.capList(n, "task.caps")
		c.CapEffective, c.CapPermitted = s, s
	default:
		m := l.mapping(n, "task.caps", "effective", "permitted")
		c.CapEffective = l.capList(m["effective"], "task.caps.effective")
		c.CapPermitted = l.capList(m["permitted"], "task.caps.permitted")
		if m["permitted"] == nil {
			c.CapPermitted = c.CapEffective
		}
		if !c.CapEffective.SubsetOf(c.CapPermitted) {
			l.errf(n, "task.caps: effective {%s} is not a subset of permitted {%s}", c.CapEffective, c.CapPermitted)
		}
	}
}

func (l *loader) capList(n *yaml.Node, what string) kernel.CapSet {
	if n != nil && n.Kind == yaml.ScalarNode {
		switch n.Value {
		case "all":
			return kernel.CapSetAll
		case "none", "":
			return 0
		}
	}
	var s kernel.CapSet
	for _, x := range l.seq(n, what) {
		c, err := kernel.ParseCap(l.str(x, what))
		if err != nil {
			l.errf(x, "%s: %v", what, err)
			continue
		}
		s |= kernel.CapsOf(c)
	}
	return s
}

func (l *loader) taskLinks(d *taskDef) {
	t, m := d.t, d.m
	if v := m["parent"]; v != nil {
		if p := l.str(v, "task.parent"); p != "" && p != "0" {
			t.Parent = l.taskRef(v, "task.parent")
			if t.Parent == t {
				l.errf(v, "task %q cannot be its own parent", t.Name)
				t.Parent = nil
			}
		}
	}
	if v := m["tracer"]; v != nil {
		t.Tracer = l.taskRef(v, "task.tracer")
		if t.Tracer != nil && kernel.SameThreadGroup(t.Tracer, t) {
			l.errf(v, "task %q cannot be traced by its own thread group", t.Name)
		}
	}
	if v := m["ptracer"]; v != nil {
		x := &kernel.PtracerException{}
		if l.str(v, "task.ptracer") == "any" {
			x.Any = true
		} else {
			x.Tracer = l.taskRef(v, "task.ptracer")
		}
		// The exception belongs to the thread-group leader (yama_ptracer_add).
		if t.Leader != nil {
			t.Leader.Ptracer = x
		} else {
			t.Ptracer = x
		}
	}
}

// taskMM sets the address space: kernel threads and dead tasks have none;
// threads share their leader's; "mm: {share: task}" shares another's
// (vfork, CLONE_VM); otherwise a new one, dumpable 1 by default, in the
// task's namespace.
func (l *loader) taskMM(d *taskDef) {
	switch d.mmDone {
	case 1:
		l.errf(d.m["mm"], "task %q: mm.share forms a cycle", d.t.Name)
		return
	case 2:
		return
	}
	d.mmDone = 1
	defer func() { d.mmDone = 2 }()
	t, m := d.t, d.m
	v := m["mm"]
	t.UserDumpable = l.boolean(m["user_dumpable"], "task.user_dumpable")
	noMM := t.Kthread || t.State != kernel.Running
	thread := t.Leader != nil && t.Leader != t
	if v != nil && v.Kind == yaml.ScalarNode && v.Value == "none" && (!thread || noMM) {
		return // a running thread's "none" is checked against its leader's mm below
	}
	if noMM {
		if v != nil {
			why := "a " + t.State.String() + " task"
			if t.Kthread {
				why = "a kernel thread"
			}
			l.errf(v, "task %q is %s and has no mm; use user_dumpable to say whether its mm was dumpable when it exited", t.Name, why)
		}
		return
	}
	if m["user_dumpable"] != nil {
		l.errf(m["user_dumpable"], "task %q has an mm: user_dumpable applies only to kernel threads and exited tasks; use mm.dumpable", t.Name)
	}
	if thread {
		if ld := l.defs[t.Leader]; ld != nil {
			l.taskMM(ld)
		}
		t.MM = t.Leader.MM
		if t.MM == nil {
			l.errf(d.node, "task %q: its leader %q has no mm, so a running thread cannot exist", t.Name, t.Leader.Name)
			return
		}
		if v != nil {
			l.threadMM(d, v)
		}
		return
	}
	mm := &kernel.MM{Dumpable: kernel.SuidDumpUser, UserNS: t.Cred.UserNS}
	if v != nil {
		mmKeys := l.mapping(v, "task.mm", "dumpable", "userns", "share", "exe")
		if s := mmKeys["share"]; s != nil {
			if len(mmKeys) > 1 {
				l.errf(s, "task.mm: share takes the other task's mm as it is; give no other keys")
			}
			if o := l.taskRef(s, "task.mm.share"); o != nil {
				if o.Leader != nil && o.Leader != o {
					o = o.Leader
				}
				if od := l.defs[o]; od != nil {
					l.taskMM(od)
				}
				if o.MM == nil {
					l.errf(s, "task.mm.share: task %q has no mm", o.Name)
				}
				t.MM = o.MM
			}
			return
		}
		if x := mmKeys["dumpable"]; x != nil {
			dv, _ := l.integer(x, "task.mm.dumpable", 0, 2)
			mm.Dumpable = kernel.Dumpable(dv)
		}
		if x := mmKeys["userns"]; x != nil {
			mm.UserNS = l.nsRef(x, "task.mm.userns")
		}
		if x := mmKeys["exe"]; x != nil {
			mm.Exe = l.exe(x)
		}
	}
	t.MM = mm
}

// exe reads an executable as procgate's BPF rule set names it: "dev
// 8:1 ino 42" (the kernel's device numbers and the inode).
func (l *loader) exe(n *yaml.Node) *kernel.FileID {
	cl, err := bpf.ParseClause("exe " + l.str(n, "task.mm.exe"))
	if err != nil || len(cl.Exes) != 1 {
		l.errf(n, "task.mm.exe: want dev MAJOR:MINOR ino N, not %q", n.Value)
		return nil
	}
	return &cl.Exes[0]
}

// cgroup reads a task's cgroup v2: {path: /a/b, ids: [1, 20, 21]} (the
// id of each directory from the root), or {id: 21} alone.
func (l *loader) cgroup(t *kernel.Task, n *yaml.Node) {
	c := l.mapping(n, "task.cgroup", "path", "ids", "id")
	if v := c["id"]; v != nil {
		if c["path"] != nil || c["ids"] != nil {
			l.errf(v, "task.cgroup: give id alone, or path and ids")
			return
		}
		id, _ := l.integer(v, "task.cgroup.id", 1, 1<<62)
		t.CgroupID = uint64(id)
		return
	}
	path := l.str(c["path"], "task.cgroup.path")
	if !strings.HasPrefix(path, "/") {
		l.errf(n, "task.cgroup.path: want an absolute cgroup path, not %q", path)
		return
	}
	names := []string{""}
	for _, s := range strings.Split(path, "/") {
		if s != "" {
			names = append(names, s)
		}
	}
	ids := l.seq(c["ids"], "task.cgroup.ids")
	if len(ids) != len(names) {
		l.errf(n, "task.cgroup: %d ids for the %d directories of %s (the root's first)", len(ids), len(names), path)
		return
	}
	for i, v := range ids {
		id, _ := l.integer(v, "task.cgroup.ids", 1, 1<<62)
		t.Cgroup = append(t.Cgroup, kernel.CgroupNode{ID: uint64(id), Name: names[i]})
	}
	t.CgroupID = t.Cgroup[len(t.Cgroup)-1].ID
}
