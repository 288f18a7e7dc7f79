package fuseproc

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/gate"
	"github.com/procgate/procgate/policy"
	"github.com/procgate/procgate/privsep"
)

// HidePID says which process directories a caller sees, as procfs's
// hidepid= option does.
type HidePID uint8

// The hidepid modes.
const (
	// HidePIDOff shows every process of the caller's pid namespace.
	HidePIDOff HidePID = iota
	// HidePIDInvisible shows only the processes whose full stat the
	// caller may read: those the kernel lets it ptrace-read
	// (PTRACE_MODE_READ_FSCREDS, fs/proc/base.c has_pid_permissions),
	// and those the policy grants it stat_full of.
	HidePIDInvisible
	// HidePIDPtraceable is HidePIDInvisible (procfs's ptraceable mode
	// differs from invisible only by its gid= exemption, which the
	// policy's groups replace here).
	HidePIDPtraceable
)

// ParseHidePID parses off, invisible or ptraceable (or procfs's 0, 2, 4).
func ParseHidePID(s string) (HidePID, error) {
	switch s {
	case "off", "0", "":
		return HidePIDOff, nil
	case "invisible", "2":
		return HidePIDInvisible, nil
	case "ptraceable", "4":
		return HidePIDPtraceable, nil
	}
	return 0, fmt.Errorf("hidepid: want off, invisible or ptraceable, found %q", s)
}

// Config configures the file system.
type Config struct {
	// Backend answers the callers.
	Backend privsep.Backend
	// HidePID hides the processes a caller may not ptrace-read.
	HidePID HidePID
	// Proc is the procfs passed through for what is not per-process
	// (default /proc).
	Proc string
	// Log receives operational messages (refused callers); nil: none.
	Log *slog.Logger
}

// Timeouts the kernel is told. Process directories are looked up again
// on every path walk (each caller, each pid namespace, gets its own
// answer) and their attributes last a second. The entries inside a
// process directory are the same for every caller (the decision is made
// at open) and for the directory's life (it is one process's): their
// names are kept as long as their directory's entry is, which its next
// walk by a caller who names another process with it drops. The
// pass-through files are the same for every caller.
const (
	pidEntryTimeout  = 0
	pidAttrTimeout   = time.Second
	fileEntryTimeout = time.Hour
	passTimeout      = 10 * time.Second
)

// FS is the mediated /proc.
type FS struct {
	cfg      Config
	sessions *sessions
	root     *rootNode
	// dirs remembers the live process directories' inodes, by the
	// process (its pid namespace, pid, start time and identity), so that a process
	// keeps one inode number while it lives and a new process with a
	// reused pid gets another.
	mu   sync.Mutex
	dirs map[procKey]*fs.Inode
	ino  uint64
}

// procKey names a process as a caller names it.
type procKey struct {
	pidns uint64
	pid   int
	start uint64
	// id is the process's pidfs identity (0 before Linux 6.9, where the
	// start time, in clock ticks, must do).
	id uint64
}

// New returns the file system of cfg.
func New(cfg Config) *FS {
	if cfg.Proc == "" {
		cfg.Proc = "/proc"
	}
	f := &FS{cfg: cfg, sessions: newSessions(cfg.Backend, cfg.Log), dirs: make(map[procKey]*fs.Inode), ino: 1 << 40}
	f.root = &rootNode{fs: f}
	return f
}

// Root returns the root node, to mount.
func (f *FS) Root() fs.InodeEmbedder { return f.root }

// nextIno returns a fresh inode number for a synthesized node.
func (f *FS) nextIno() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ino++
	return f.ino
}

// probe asks the core about one process for the caller of ctx: whether
// its pid namespace holds it (and, under hidepid, whether the caller may
// see it), and the process's start time and owner. What the caller's
// session saw (in its life of at most sessionTTL) answers without
// asking: a process that exited meanwhile is found, but every file in
// it is then ENOENT at open.
func (f *FS) probe(ctx context.Context, pid int) (*session, seenProc, syscall.Errno) {
	s, errno := f.self(ctx)
	if errno != 0 {
		return nil, seenProc{}, errno
	}
	if p, ok := s.lookSeen(pid); ok {
		return s, p, 0
	}
	s, rs, err := f.sessions.read(ctx, &gate.Request{PIDs: []int{pid}, Items: []gate.Item{f.visibility()}})
	if err != nil {
		return nil, seenProc{}, errnoOf(err)
	}
	if len(rs) != 1 || rs[0].PID != pid {
		return nil, seenProc{}, unix.EIO
	}
	if !f.visible(&rs[0]) {
		return nil, seenProc{}, unix.ENOENT
	}
	s.remember(rs)
	return s, seenOf(&rs[0]), 0
}

// visibility is the item whose decision shows a process: stat, which
// every caller may read, or under hidepid stat_full (the kernel's
// PTRACE_MODE_READ_FSCREDS check, or a policy grant).
func (f *FS) visibility() gate.Item {
	if f.cfg.HidePID != HidePIDOff {
		return policy.ItemStatFull
	}
	return policy.ItemStat
}

// visible reports whether the caller sees the process answered in r.
func (f *FS) visible(r *gate.ProcResult) bool {
	if r.Denial != nil {
		return false
	}
	return f.cfg.HidePID == HidePIDOff || (len(r.Items) == 1 && r.Items[0].Denial == nil)
}

// pidDir returns the inode of process r's directory, as the caller of
// session s names it.
func (f *FS) pidDir(ctx context.Context, parent *fs.Inode, s *session, pid int, p seenProc) *fs.Inode {
	k := procKey{pidns: s.pidns, pid: pid, start: p.start, id: p.id}
	f.mu.Lock()
	defer f.mu.Unlock()
	if in := f.dirs[k]; in != nil {
		return in
	}
	n := &pidNode{fs: f, key: k}
	n.setOwner(p.ownerUID, p.ownerGID)
	f.ino++
	in := parent.NewInode(ctx, n, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: f.ino})
	f.dirs[k] = in
	return in
}

// forget drops a process directory the kernel forgot.
func (f *FS) forget(k procKey, in *fs.Inode) {
	f.mu.Lock()
	if f.dirs[k] == in {
		delete(f.dirs, k)
	}
	f.mu.Unlock()
}

// readItem reads item it of the process named by k (of its thread tid,
// when not 0) for the caller of ctx, with mem ranges for the mem item.
// A process that is not the one k names (it exited and its pid was
// reused, or the caller is in another pid namespace than the one that
// looked it up) is ENOENT.
func (f *FS) readItem(ctx context.Context, k procKey, tid int, it gate.Item, mem []gate.MemRange) (*gate.ProcResult, *gate.ItemResult, syscall.Errno) {
	return f.ask(ctx, k, &gate.Request{PIDs: []int{k.pid}, Items: []gate.Item{it}, Mem: mem, TID: tid})
}

// ask sends req, about the one process k names, for the caller of ctx,
// and returns its answer and its one item's.
func (f *FS) ask(ctx context.Context, k procKey, req *gate.Request) (*gate.ProcResult, *gate.ItemResult, syscall.Errno) {
	it := req.Items[0]
	s, rs, err := f.sessions.read(ctx, req)
	if err != nil {
		return nil, nil, errnoOf(err)
	}
	if len(rs) != 1 || rs[0].PID != k.pid {
		return nil, nil, unix.EIO
	}
	r := &rs[0]
	if r.Denial != nil || r.Start != k.start || r.ID != k.id || s.pidns != k.pidns {
		return nil, nil, unix.ENOENT
	}
	if len(r.Items) != 1 || r.Items[0].Item != it {
		return nil, nil, unix.EIO
	}
	ir := &r.Items[0]
	if ir.Denial != nil {
		return r, ir, errnoOf(ir.Denial.Errno)
	}
	return r, ir, 0
}

// list lists the processes the caller of ctx sees, and remembers them
// in its session.
func (f *FS) list(ctx context.Context) ([]gate.ProcResult, syscall.Errno) {
	s, rs, err := f.sessions.read(ctx, &gate.Request{All: true, Items: []gate.Item{f.visibility()}})
	if err != nil {
		return nil, errnoOf(err)
	}
	out := rs[:0]
	for i := range rs {
		if f.visible(&rs[i]) {
			out = append(out, rs[i])
		}
	}
	s.remember(out)
	return out, 0
}

// self returns the caller's session.
func (f *FS) self(ctx context.Context) (*session, syscall.Errno) {
	s, err := f.sessions.get(ctx)
	if err != nil {
		return nil, errnoOf(err)
	}
	f.sessions.put(s)
	return s, 0
}

// Serve runs the session sweeper until ctx ends, then closes every
// session.
func (f *FS) Serve(ctx context.Context) {
	f.sessions.sweep(ctx)
	f.sessions.closeAll()
}

// parsePID parses a process directory's name: a decimal pid without a
// sign or leading zero, as /proc names them.
func parsePID(name string) (int, bool) {
	if len(name) == 0 || len(name) > 10 || name[0] < '1' || name[0] > '9' {
		return 0, false
	}
	n, err := strconv.Atoi(name)
	if err != nil || n <= 0 || n > privsep.MaxPID {
		return 0, false
	}
	return n, true
}

// setAttr fills a synthesized node's attributes.
func setAttr(out *fuse.Attr, ino uint64, mode, uid, gid uint32) {
	out.Ino = ino
	out.Mode = mode
	out.Nlink = 1
	if mode&syscall.S_IFMT == syscall.S_IFDIR {
		out.Nlink = 2
	}
	out.Owner = fuse.Owner{Uid: uid, Gid: gid}
	t := uint64(bootTime.Unix())
	out.Atime, out.Mtime, out.Ctime = t, t, t
	out.Blksize = 1024
}

// bootTime stands for the times of synthesized nodes.
var bootTime = time.Now()
