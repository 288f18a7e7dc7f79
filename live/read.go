package live

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/bpflsm"
	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/bpf"
	"github.com/procgate/procgate/kernel/lsm/capability"
	"github.com/procgate/procgate/kernel/lsm/landlock"
	"github.com/procgate/procgate/kernel/lsm/yama"
	"github.com/procgate/procgate/procfs"
)

// Options select what Read and ReadPIDs read.
type Options struct {
	// Proc is the procfs mount to read; "" means /proc. Processes are
	// pinned with pidfds only when this is the procfs of the reader's own
	// pid namespace; a different root (a test fixture) is read unpinned.
	Proc string
	// Sys is the sysfs mount; "" means /sys.
	Sys string
	// Threads adds every thread of every process, not only the
	// thread-group leaders.
	Threads bool
	// MountSecurityFS lets Read mount securityfs at
	// <Sys>/kernel/security when it is not mounted there, to read the
	// list of active security modules. It needs CAP_SYS_ADMIN; the mount
	// is left in place.
	MountSecurityFS bool
	// Tasks, when set, keeps what was read of each process for later
	// reads through the same cache (see TaskCache).
	Tasks *TaskCache
	// Kernel, when set, supplies the kernel-wide facts (release, modules,
	// sysctls, the procfs mount's options) instead of reading them: a
	// caller that reads a few processes at a time, many times in a row
	// (the verifier, once per case), reads them once with ReadKernel.
	Kernel *KernelInfo
	// BPF, when set, is the mirror of procgate's BPF LSM program's rule
	// set (OpenBPFMirror), mapped while the reader could still open it:
	// the rule set is read from it, without a bpf(2) call, and decoded
	// only when it changes.
	BPF *bpflsm.Mirror
}

// ProcessError reports a process (or thread) that could not be read. A
// process that does not exist, or exited (or whose pid was reused) while
// it was read, has Err ESRCH, so errors.Is(err, unix.ESRCH) holds. It is
// the /proc layer's error.
type ProcessError = procfs.Error

// uncertain marks what Read could not learn about a task.
type uncertain uint8

const (
	// unkDumpable: the dump owner cannot tell dumpable 1 from 0 (the
	// task's euid/egid are root of its mm's namespace).
	unkDumpable uncertain = 1 << iota
	// unkDumpable02: dumpable is 0 or 2, and the release is one where
	// the two differ (before 4.10).
	unkDumpable02
	// unkMMUserNS: the dump owner matches neither the task's ids nor root
	// of its namespace, so mm->user_ns is not the cred's namespace (setns
	// without exec) or the task changed credentials while it was read.
	unkMMUserNS
	// unkUserDumpable: a task without an mm whose saved user_dumpable
	// flag cannot be read.
	unkUserDumpable
	// unkUserNS: the task's user namespace could not be read (no
	// permission to read its ns/user link); the initial one is assumed.
	unkUserNS
	// unkExe: the task's executable could not be read (its exe link
	// asks the ptrace check), and procgate's BPF rule set names
	// executables.
	unkExe
	// unkCgroup: the task's cgroup could not be read, and procgate's
	// BPF rule set exempts one or names cgroups.
	unkCgroup
	// unkPIDNS: the task's pid namespace could not be read, and
	// procgate's BPF rule set names pid namespaces.
	unkPIDNS
)

// System is the running system read into the model: the world and what
// could not be read.
type System struct {
	// World holds the kernel's settings, user namespaces and tasks. Its
	// security modules are those the model can take from the running
	// system (capability, Yama, Landlock); see Unmodelled for the others.
	World *kernel.World
	// Kernel holds the settings as read.
	Kernel KernelInfo
	// Unmodelled lists active modules that take part in ptrace decisions
	// but whose policy Read cannot load (selinux, apparmor, smack): the
	// world leaves them out and decisions that they could change say so.
	Unmodelled []string
	// Notes are one-line remarks about what could not be read.
	Notes []string

	unknown map[*kernel.Task]uncertain
}

// TaskName is the name Read gives a task: its command name and pid, as
// audit records and Yama print them ("sshd[812]").
func TaskName(comm string, pid int) string {
	return comm + "[" + strconv.Itoa(pid) + "]"
}

// Read reads every process of the running system (thread-group leaders,
// and threads with Options.Threads), the user namespaces they live in and
// the kernel's settings. A process that exits while it is read is left
// out.
func Read(opts Options) (*System, error) {
	r, err := newReader(opts)
	if err != nil {
		return nil, err
	}
	defer r.close()
	pids, err := r.root.ListPIDs()
	if err != nil {
		return nil, err
	}
	return r.read(pids, false)
}

// ReadPIDs reads the given processes or threads and, so that relations
// such as Yama's descendant rule can be decided, their ancestors, their
// thread-group leaders and the tasks tracing them. A thread id is read as
// that thread, pinned by its process. When one of the given pids does
// not exist or exits while it is read, it returns a *ProcessError
// wrapping ESRCH.
func ReadPIDs(pids []int, opts Options) (*System, error) {
	r, err := newReader(opts)
	if err != nil {
		return nil, err
	}
	defer r.close()
	for _, p := range pids {
		if p <= 0 {
			return nil, &ProcessError{PID: p, Op: "read", Err: unix.ESRCH}
		}
	}
	return r.read(pids, true)
}

// reader holds the state of one Read.
type reader struct {
	opts Options
	root *procfs.Root
	// pin is set when the root is the procfs of the reader's own pid
	// namespace: tasks are then pinned while read.
	pin bool
	buf []byte

	initIno uint64
	ns      map[uint64]*kernel.UserNS
	// nsMaps records the namespaces whose maps were read from a member.
	nsMaps map[uint64]bool
	// labels are the attr/ files to read, per model field.
	labels labelFiles
	notes  []string
	// threadOf maps the thread ids found under a leader's task/ to it.
	threadOf map[int]int
	// afterRead runs between a task's reads and its verification (tests).
	afterRead func(pid int)
	// bpf is what the BPF rule set in force needs read of each task;
	// cgroups caches what was learned of each cgroup path seen.
	bpf     bpfNeeds
	cgroups map[string]cgroupFacts
}

// testHookAfterRead, when set by tests, runs after a task's files were
// read and before the pin is verified.
var testHookAfterRead func(pid int)

type labelFiles struct{ selinux, apparmor, smack bool }

// maxTaskFile bounds one file of a task read into the model (status,
// stat, uid_map…).
const maxTaskFile = 1 << 16

func newReader(opts Options) (*reader, error) {
	if opts.Proc == "" {
		opts.Proc = "/proc"
	}
	if opts.Sys == "" {
		opts.Sys = "/sys"
	}
	root, err := procfs.Open(opts.Proc)
	if err != nil {
		return nil, err
	}
	// Pin only when the pids in this procfs are the reader's own: the
	// pidfd of pid N must be the process /proc/N shows.
	if !root.Own() && root.Path() == "/proc" {
		self := root.Self()
		root.Close()
		return nil, fmt.Errorf("%s belongs to another pid namespace (it calls the reader %s, not %d): its pids cannot be pinned", opts.Proc, self, unix.Getpid())
	}
	return &reader{opts: opts, root: root, pin: root.Own(), buf: make([]byte, 0, 8192), ns: map[uint64]*kernel.UserNS{}, nsMaps: map[uint64]bool{}, threadOf: map[int]int{}, afterRead: testHookAfterRead}, nil
}

func (r *reader) close() { r.root.Close() }

func (r *reader) note(format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

// readFile reads name under dirfd into the reader's buffer.
func (r *reader) readFile(dirfd int, name string) ([]byte, error) {
	b, err := procfs.ReadFile(dirfd, name, r.buf, maxTaskFile)
	if cap(b) > cap(r.buf) {
		r.buf = b[:0]
	}
	return b, err
}

// rawTask is one task as read, before the world is built.
type rawTask struct {
	st        procfs.Status
	leader    bool // st.Pid == st.Tgid
	nsIno     uint64
	nsErr     error
	ownUID    uint32
	ownGID    uint32
	ownErr    error
	pfKthread bool // PF_KTHREAD from stat, when status has no Kthread line
	selinux   string
	apparmr   string
	smack     string
	pidns     string // set for a task in a descendant pid namespace
	// What procgate's BPF rule set needs of the task (bpfNeeds says
	// which were read): its cgroup v2 id and its executable.
	bpf    bpfNeeds
	cgroup uint64
	cgPath []kernel.CgroupNode
	cgErr  error
	// pidnsIno is the inode of its pid namespace (pidnsErr when it
	// could not be read).
	pidnsIno uint32
	pidnsErr error
	exe      *kernel.FileID
	exeErr   error
}

// read reads pids; closure adds parents, leaders and tracers, and makes
// a missing pid an error.
func (r *reader) read(pids []int, closure bool) (*System, error) {
	var k KernelInfo
	if r.opts.Kernel != nil {
		k = *r.opts.Kernel
		k.LSMs = slices.Clone(k.LSMs)
	} else {
		var err error
		if k, err = r.readKernel(); err != nil {
			return nil, err
		}
	}
	r.bpf = needsOf(k.BPF)
	for _, m := range k.LSMs {
		switch m {
		case "selinux":
			r.labels.selinux = true
		case "apparmor":
			r.labels.apparmor = true
		case "smack":
			r.labels.smack = true
		}
	}
	if err := r.readInitNS(); err != nil {
		return nil, err
	}
	raws := make(map[int]*rawTask, len(pids))
	requested := map[int]bool{}
	queued := map[int]bool{}
	var queue []int
	push := func(p int) {
		if p > 0 && raws[p] == nil && !queued[p] {
			queued[p] = true
			queue = append(queue, p)
		}
	}
	for _, p := range pids {
		push(p)
		if closure {
			requested[p] = true
		}
	}
	for len(queue) > 0 {
		for len(queue) > 0 {
			pid := queue[0]
			queue = queue[1:]
			rt, err := r.readTask(pid)
			if err != nil {
				if requested[pid] {
					return nil, err
				}
				if !isGone(err) {
					r.note("pid %d left out: %v", pid, err)
				}
				continue // exited while being read: left out
			}
			raws[pid] = rt
			if r.opts.Threads && rt.leader {
				for _, tid := range r.root.ListThreads(pid) {
					r.threadOf[tid] = pid
					push(tid)
				}
			}
		}
		// Leaders and tracers are needed in every read (a tracer may be a
		// thread); parents only when reading a subset.
		for _, rt := range raws {
			push(rt.st.Tgid)
			push(rt.st.TracerPid)
			if closure {
				push(rt.st.PPid)
			}
		}
	}
	return r.build(k, raws)
}

// taskNS makes sure the reader knows rt's user namespace (rt.nsIno, read
// from the task whose /proc directory is dirfd): its owner, maps and
// parents.
func (r *reader) taskNS(pid, dirfd int, rt *rawTask) error {
	ino := rt.nsIno
	if rt.nsErr != nil {
		return nil
	}
	if _, ok := r.ns[ino]; !ok {
		if err := r.resolveNS(pid, dirfd, ino); err != nil {
			if r.pin && isGone(err) {
				return &ProcessError{PID: pid, Op: "read user namespace", Err: procfs.Gone(err)}
			}
			rt.nsErr = err
		}
	} else if !r.nsMaps[ino] && ino != r.initIno {
		r.readMaps(dirfd, ino)
	}
	return nil
}

// isGone reports whether err means the process is no longer there.
func isGone(err error) bool {
	return errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOENT)
}

// readTask pins pid, reads its files through a directory descriptor
// opened after the pin, and verifies that the pin still holds (see
// [procfs.Pin]). A thread id is pinned through its process and read
// under /proc/<tgid>/task/<tid>, whose lookup fails unless the tid is a
// thread of that process.
func (r *reader) readTask(pid int) (*rawTask, error) {
	if !r.pin {
		rel := strconv.Itoa(pid)
		if tgid, ok := r.threadOf[pid]; ok {
			rel = strconv.Itoa(tgid) + "/task/" + rel
		}
		dirfd, err := r.root.OpenDir(rel)
		if err != nil {
			return nil, &ProcessError{PID: pid, Op: "open " + rel, Err: err}
		}
		defer unix.Close(dirfd)
		return r.readFiles(pid, dirfd)
	}
	var p *procfs.Pin
	var err error
	tgid, thread := r.threadOf[pid]
	if thread {
		p, err = r.root.PinThread(pid, tgid)
	} else {
		p, err = r.root.PinTask(pid)
	}
	if err != nil {
		return nil, err
	}
	defer p.Close()
	var id uint64 // the cache's key; threads (pinned by their process) are not cached
	if !thread {
		id = r.opts.Tasks.id(p)
	}
	if rt := r.opts.Tasks.get(id); rt != nil && rt.bpf == r.bpf {
		// The namespace objects belong to this read: resolve them as
		// readFiles would have.
		if err := r.taskNS(pid, p.Dir, rt); err != nil {
			return nil, err
		}
		if err := p.Verify(); err != nil {
			return nil, err
		}
		return rt, nil
	}
	rt, err := r.readFiles(pid, p.Dir)
	if err != nil {
		return nil, err
	}
	if r.afterRead != nil {
		r.afterRead(pid)
	}
	if err := p.Verify(); err != nil {
		return nil, err
	}
	r.opts.Tasks.put(id, rt)
	return rt, nil
}

// readFiles reads status, ns/user, the dump owner and labels of the task
// whose /proc directory is dirfd.
func (r *reader) readFiles(pid, dirfd int) (*rawTask, error) {
	b, err := r.readFile(dirfd, "status")
	if err != nil {
		return nil, &ProcessError{PID: pid, Op: "read status", Err: procfs.Gone(err)}
	}
	st, err := procfs.ParseStatus(b)
	if err != nil {
		return nil, &ProcessError{PID: pid, Op: "parse status", Err: err}
	}
	if st.Pid != pid {
		return nil, &ProcessError{PID: pid, Op: "read status", Err: fmt.Errorf("status is for pid %d: %w", st.Pid, procfs.ErrMalformed)}
	}
	rt := &rawTask{st: st, leader: st.Pid == st.Tgid}
	// The user namespace: the link names its inode.
	if l, err := procfs.ReadLink(dirfd, "ns/user"); err != nil {
		switch {
		case !r.pin && errors.Is(err, unix.ENOENT):
			rt.nsIno = r.initIno // a fixture without namespace links
		case r.pin && isGone(err):
			return nil, &ProcessError{PID: pid, Op: "readlink ns/user", Err: procfs.Gone(err)}
		default:
			rt.nsErr = err
		}
	} else if ino, err := procfs.ParseNSLink([]byte(l), "user"); err != nil {
		rt.nsErr = err
	} else {
		rt.nsIno = ino
		if err := r.taskNS(pid, dirfd, rt); err != nil {
			return nil, err
		}
	}
	// The dump owner: the owner of a non-0555 entry (fd/ is 0500).
	var sb unix.Stat_t
	if err := unix.Fstatat(dirfd, "fd", &sb, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if r.pin && isGone(err) {
			return nil, &ProcessError{PID: pid, Op: "stat fd/", Err: procfs.Gone(err)}
		}
		rt.ownErr = err
	} else {
		rt.ownUID, rt.ownGID = sb.Uid, sb.Gid
	}
	if !st.HasKthread {
		b, err := r.readFile(dirfd, "stat")
		if err != nil {
			return nil, &ProcessError{PID: pid, Op: "read stat", Err: procfs.Gone(err)}
		}
		sf, err := procfs.ParseStat(b)
		if err != nil {
			return nil, &ProcessError{PID: pid, Op: "parse stat", Err: err}
		}
		rt.pfKthread = sf.Kthread()
	}
	if r.bpf != 0 {
		if err := r.readBPFFacts(pid, dirfd, rt); err != nil {
			return nil, err
		}
	}
	if r.labels.selinux {
		rt.selinux = procfs.ReadLabel(dirfd, "attr/current", r.buf)
	}
	if r.labels.apparmor {
		rt.apparmr = procfs.ReadLabel(dirfd, "attr/apparmor/current", r.buf)
	}
	if r.labels.smack {
		rt.smack = procfs.ReadLabel(dirfd, "attr/smack/current", r.buf)
	}
	// A task with more than one pid lives in a descendant pid namespace
	// (a container): its ns/pid link names which ("pid:[4026532301]").
	// procgate's BPF rule set may need the namespace of every task. The
	// link asks the ptrace check (READ_FSCREDS): a reader without the
	// privilege leaves it unknown.
	if len(st.NSpid) > 1 || r.bpf&needPIDNS != 0 {
		l, err := procfs.ReadLink(dirfd, "ns/pid")
		if len(st.NSpid) > 1 {
			rt.pidns = l
			if err != nil {
				rt.pidns = "pid:[?]"
			}
		}
		if r.bpf&needPIDNS != 0 {
			var ino uint64
			if err == nil {
				ino, err = procfs.ParseNSLink([]byte(l), "pid")
			}
			rt.pidnsIno, rt.pidnsErr = uint32(ino), err
		}
	}
	return rt, nil
}

// build turns the raw tasks into the world.
func (r *reader) build(k KernelInfo, raws map[int]*rawTask) (*System, error) {
	rel, err := kernel.ParseRelease(k.Release)
	if err != nil {
		return nil, fmt.Errorf("kernel release: %w", err)
	}
	w := kernel.NewWorld(rel)
	w.Init = r.ns[r.initIno]
	w.Namespaces = r.namespaces()
	w.SuidDumpable = k.SuidDumpable
	w.Proc = k.Proc.Options
	sys := &System{World: w, Kernel: k, unknown: map[*kernel.Task]uncertain{}}
	w.LSMs = []kernel.LSM{capability.New()}
	for _, m := range k.LSMs {
		switch {
		case m == "bpf" && k.BPF != nil:
			w.LSMs = append(w.LSMs, bpf.ModuleOf(k.BPF))
		case m == "bpf" && k.BPFUnreadable != "":
			sys.Unmodelled = append(sys.Unmodelled, m)
		case m == "capability" || m == "bpf" || kernel.NoPtraceHook(m):
			// bpf: no procgate rule set pinned (other BPF LSM
			// programs are not read).
		case m == "landlock":
			if k.LandlockABI > 0 {
				w.LSMs = append(w.LSMs, landlock.New(k.LandlockABI))
			} else {
				w.LSMs = append(w.LSMs, landlock.New(1))
				r.note("landlock is listed but its ABI version cannot be read; assumed 1")
			}
		case m == "yama":
			if k.YamaScope < 0 {
				return nil, errNoYamaScope
			}
			y, err := yama.New(k.YamaScope)
			if err != nil {
				return nil, err
			}
			w.LSMs = append(w.LSMs, y)
		default:
			sys.Unmodelled = append(sys.Unmodelled, m)
		}
	}
	if len(sys.Unmodelled) > 0 {
		r.note("active modules not modelled (their policy is not read): %v; decisions they could change are marked", sys.Unmodelled)
	}

	pids := make([]int, 0, len(raws))
	for p := range raws {
		pids = append(pids, p)
	}
	sort.Ints(pids)
	tasks := make(map[int]*kernel.Task, len(raws))
	for _, p := range pids {
		rt := raws[p]
		st := &rt.st
		t := &kernel.Task{Name: TaskName(st.Name, st.Pid), PID: st.Pid, TGID: st.Tgid, Comm: st.Name}
		c := &t.Cred
		c.UID, c.EUID, c.SUID, c.FSUID = kernel.KUID(st.UIDs[0]), kernel.KUID(st.UIDs[1]), kernel.KUID(st.UIDs[2]), kernel.KUID(st.UIDs[3])
		c.GID, c.EGID, c.SGID, c.FSGID = kernel.KGID(st.GIDs[0]), kernel.KGID(st.GIDs[1]), kernel.KGID(st.GIDs[2]), kernel.KGID(st.GIDs[3])
		if len(st.Groups) > 0 {
			c.Groups = make([]kernel.KGID, len(st.Groups))
			for i, g := range st.Groups {
				c.Groups[i] = kernel.KGID(g)
			}
		}
		c.CapEffective = kernel.CapSet(st.CapEff) & kernel.CapSetAll
		c.CapPermitted = kernel.CapSet(st.CapPrm) & kernel.CapSetAll
		c.UserNS = r.ns[rt.nsIno]
		if c.UserNS == nil || rt.nsErr != nil {
			c.UserNS = w.Init
			sys.unknown[t] |= unkUserNS
		}
		t.Kthread = st.Kthread || (!st.HasKthread && rt.pfKthread)
		switch {
		case st.State == 'Z' || st.State == 'X':
			t.State = kernel.Zombie
		case !st.HasMM && !t.Kthread:
			t.State = kernel.Exiting
		default:
			t.State = kernel.Running
		}
		t.SELinux, t.AppArmor, t.Smack = rt.selinux, rt.apparmr, rt.smack
		t.PIDNS = rt.pidns
		t.CgroupID, t.Cgroup = rt.cgroup, rt.cgPath
		if rt.cgErr != nil {
			sys.unknown[t] |= unkCgroup
		}
		t.PIDNSInode = rt.pidnsIno
		if rt.pidnsErr != nil {
			sys.unknown[t] |= unkPIDNS
		}
		tasks[p] = t
	}
	// Relations and address spaces.
	for _, p := range pids {
		rt, t := raws[p], tasks[p]
		t.Leader = tasks[rt.st.Tgid]
		if t.Leader == nil {
			t.Leader = t // leader exited while read: the thread stands alone
			t.TGID = t.PID
		}
		if rt.st.PPid > 0 {
			t.Parent = tasks[rt.st.PPid]
		}
		if rt.st.TracerPid > 0 {
			t.Tracer = tasks[rt.st.TracerPid]
		}
	}
	for _, p := range pids {
		rt, t := raws[p], tasks[p]
		if t.Kthread || t.State != kernel.Running {
			if !t.Kthread && w.Features.UserDumpable {
				sys.unknown[t] |= unkUserDumpable
			}
			continue
		}
		if t.Leader != t {
			continue
		}
		t.MM = &kernel.MM{Dumpable: kernel.SuidDumpUser, UserNS: t.Cred.UserNS, Exe: rt.exe}
		sys.unknown[t] |= inferDumpable(w, t, rt)
		if rt.exeErr != nil {
			sys.unknown[t] |= unkExe
		}
	}
	for _, p := range pids {
		t := tasks[p]
		if t.Leader != t && t.Leader.MM != nil && t.State == kernel.Running && !t.Kthread {
			t.MM = t.Leader.MM
		}
		if sys.unknown[t] == 0 {
			delete(sys.unknown, t)
		}
		w.AddTask(t)
	}
	sys.Notes = r.notes
	if err := w.Validate(); err != nil {
		return nil, fmt.Errorf("the world read is inconsistent: %w", err)
	}
	return sys, nil
}

// inferDumpable sets t.MM.Dumpable from the owner of /proc/<pid>/fd:
// task_dump_owner gives a 0500 directory the task's euid/egid when the mm
// is SUID_DUMP_USER, and root of mm->user_ns (global root when unmapped)
// otherwise. mm->user_ns is taken to be the credentials' namespace.
func inferDumpable(w *kernel.World, t *kernel.Task, rt *rawTask) uncertain {
	if rt.ownErr != nil {
		return unkDumpable
	}
	ru, rg := kernel.KUID(0), kernel.KGID(0)
	if u, ok := t.MM.UserNS.RootUID(); ok {
		ru = u
	}
	if g, ok := t.MM.UserNS.RootGID(); ok {
		rg = g
	}
	own := [2]uint32{rt.ownUID, rt.ownGID}
	ids := [2]uint32{uint32(t.Cred.EUID), uint32(t.Cred.EGID)}
	root := [2]uint32{uint32(ru), uint32(rg)}
	switch {
	case own == ids && ids == root:
		t.MM.Dumpable = kernel.SuidDumpUser
		return unkDumpable
	case own == ids:
		t.MM.Dumpable = kernel.SuidDumpUser
		return 0
	case own == root:
		t.MM.Dumpable = kernel.SuidDumpDisable
		if !w.Features.MMUserNS {
			return unkDumpable02
		}
		return 0
	}
	t.MM.Dumpable = kernel.SuidDumpDisable
	return unkMMUserNS
}
