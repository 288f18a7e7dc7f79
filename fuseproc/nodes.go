package fuseproc

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/gate"
	"github.com/procgate/procgate/policy"
)

// rootNode is the mount's root: process directories, self, and the
// pass-through of everything else.
type rootNode struct {
	fs.Inode
	fs *FS
}

var (
	_ fs.NodeLookuper  = (*rootNode)(nil)
	_ fs.NodeReaddirer = (*rootNode)(nil)
	_ fs.NodeGetattrer = (*rootNode)(nil)
)

func (n *rootNode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	setAttr(&out.Attr, 1, syscall.S_IFDIR|0o555, 0, 0)
	out.SetTimeout(passTimeout)
	return 0
}

func (n *rootNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if pid, ok := parsePID(name); ok {
		s, p, errno := n.fs.probe(ctx, pid)
		if errno != 0 {
			return nil, errno
		}
		in := n.fs.pidDir(ctx, n.EmbeddedInode(), s, pid, p)
		in.Operations().(*pidNode).fillAttr(&out.Attr, in.StableAttr().Ino)
		out.SetEntryTimeout(pidEntryTimeout)
		out.SetAttrTimeout(pidAttrTimeout)
		return in, 0
	}
	if name == "self" || name == "thread-self" {
		ino := uint64(selfIno)
		if name == "thread-self" {
			ino = threadSelfIno
		}
		in := n.NewInode(ctx, &selfNode{fs: n.fs, thread: ino == threadSelfIno}, fs.StableAttr{Mode: syscall.S_IFLNK, Ino: ino})
		setAttr(&out.Attr, ino, syscall.S_IFLNK|0o777, 0, 0)
		out.SetEntryTimeout(passTimeout)
		out.SetAttrTimeout(0)
		return in, 0
	}
	return lookupPass(ctx, n.EmbeddedInode(), n.fs.cfg.Proc, name, out)
}

// selfIno and threadSelfIno are self's and thread-self's inode numbers.
const (
	selfIno       = 2
	threadSelfIno = 3
)

func (n *rootNode) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	ps, errno := n.fs.list(ctx)
	if errno != 0 {
		return nil, errno
	}
	out := make([]fuse.DirEntry, 0, len(ps)+64)
	pass, err := passNames(n.fs.cfg.Proc)
	if err != nil {
		return nil, fs.ToErrno(err)
	}
	out = append(out, pass...)
	out = append(out, fuse.DirEntry{Name: "self", Mode: syscall.S_IFLNK, Ino: selfIno},
		fuse.DirEntry{Name: "thread-self", Mode: syscall.S_IFLNK, Ino: threadSelfIno})
	for _, r := range ps {
		out = append(out, fuse.DirEntry{Name: strconv.Itoa(r.PID), Mode: syscall.S_IFDIR})
	}
	return fs.NewListDirStream(out), 0
}

// selfNode is the symlink self: the caller's own pid, as its pid
// namespace numbers it; or thread-self: <pid>/task/<tid> of the calling
// thread, numbered the same way.
type selfNode struct {
	fs.Inode
	fs     *FS
	thread bool
}

var _ fs.NodeReadlinker = (*selfNode)(nil)

func (n *selfNode) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	s, errno := n.fs.self(ctx)
	if errno != 0 {
		return nil, errno
	}
	b := strconv.AppendInt(nil, int64(s.ownPID), 10)
	if n.thread {
		if s.ownTID == 0 {
			return nil, unix.ENOENT
		}
		b = append(b, "/task/"...)
		b = strconv.AppendInt(b, int64(s.ownTID), 10)
	}
	return b, 0
}

// pidNode is /<pid>/: one process, as the caller that looked it up names
// it.
type pidNode struct {
	fs.Inode
	fs  *FS
	key procKey
	// tid is the thread of task/<tid>/, 0 for the process's directory.
	tid int
	// owner is the directory's owner: uid<<32 | gid.
	owner atomic.Uint64
}

var (
	_ fs.NodeLookuper    = (*pidNode)(nil)
	_ fs.NodeReaddirer   = (*pidNode)(nil)
	_ fs.NodeGetattrer   = (*pidNode)(nil)
	_ fs.NodeOnForgetter = (*pidNode)(nil)
)

// OnForget forgets the process's inode with the kernel's last reference.
func (n *pidNode) OnForget() {
	if n.tid == 0 {
		n.fs.forget(n.key, n.EmbeddedInode())
	}
}

func (n *pidNode) setOwner(uid, gid uint32) { n.owner.Store(uint64(uid)<<32 | uint64(gid)) }

func (n *pidNode) ownerIDs() (uint32, uint32) {
	o := n.owner.Load()
	return uint32(o >> 32), uint32(o)
}

func (n *pidNode) fillAttr(out *fuse.Attr, ino uint64) {
	uid, gid := n.ownerIDs()
	setAttr(out, ino, syscall.S_IFDIR|0o555, uid, gid)
	out.Nlink = uint32(len(entries)) + 2
}

// Getattr answers for the process as it is now: a process that exited,
// or that the caller may no longer see, is ENOENT.
func (n *pidNode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	s, p, errno := n.fs.probe(ctx, n.key.pid)
	if errno != 0 {
		return errno
	}
	if p.start != n.key.start || p.id != n.key.id || s.pidns != n.key.pidns {
		return unix.ENOENT
	}
	n.setOwner(p.ownerUID, p.ownerGID)
	n.fillAttr(&out.Attr, n.StableAttr().Ino)
	out.SetTimeout(pidAttrTimeout)
	return 0
}

func (n *pidNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if name == "task" && n.tid == 0 {
		ch := n.GetChild(name)
		if ch == nil {
			ch = n.NewInode(ctx, &taskNode{fs: n.fs, proc: n}, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: n.fs.nextIno()})
		}
		ch.Operations().(*taskNode).fill(&out.Attr)
		out.SetEntryTimeout(fileEntryTimeout)
		out.SetAttrTimeout(pidAttrTimeout)
		return ch, 0
	}
	e := byName[name]
	if e == nil {
		return nil, unix.ENOENT
	}
	ch := n.GetChild(name)
	if ch == nil {
		base := entryNode{fs: n.fs, pid: n, e: e, ino: n.fs.nextIno()}
		var node fs.InodeEmbedder
		switch e.shape {
		case shapeFile, shapeMem:
			node = &fileNode{entryNode: base}
		case shapeLink:
			node = &linkNode{entryNode: base}
		case shapeLinkDir, shapeTextDir:
			node = &listNode{entryNode: base}
		}
		ch = n.NewInode(ctx, node, fs.StableAttr{Mode: e.mode() &^ 0o7777, Ino: base.ino})
	}
	ch.Operations().(interface{ fill(*fuse.Attr) }).fill(&out.Attr)
	out.SetEntryTimeout(fileEntryTimeout)
	out.SetAttrTimeout(pidAttrTimeout)
	return ch, 0
}

func (n *pidNode) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	out := make([]fuse.DirEntry, 0, len(entries)+1)
	for i := range entries {
		out = append(out, fuse.DirEntry{Name: entries[i].name, Mode: entries[i].mode() &^ 0o7777})
	}
	if n.tid == 0 {
		out = append(out, fuse.DirEntry{Name: "task", Mode: syscall.S_IFDIR})
	}
	return fs.NewListDirStream(out), 0
}

// entryNode is what every entry of a process directory has.
type entryNode struct {
	fs  *FS
	pid *pidNode
	e   *entry
	ino uint64
}

func (n *entryNode) fill(out *fuse.Attr) {
	uid, gid := n.pid.ownerIDs()
	setAttr(out, n.ino, n.e.mode(), uid, gid)
}

// Getattr answers a file's or a link's attributes (the process's owner,
// the entry's mode); listNode has its own.
func (n *entryNode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.fill(&out.Attr)
	out.SetTimeout(pidAttrTimeout)
	return 0
}

// read reads the entry's item for the caller of ctx. A refusal is the
// errno the kernel's own check of the entry returns (attach-class
// entries included, which the core refuses with EPERM whatever the file).
func (n *entryNode) read(ctx context.Context, mem []gate.MemRange) (*gate.ItemResult, syscall.Errno) {
	_, ir, errno := n.fs.readItem(ctx, n.pid.key, n.pid.tid, n.e.item, mem)
	if (errno == unix.EACCES || errno == unix.EPERM) && n.e.denied != 0 {
		errno = n.e.denied
	}
	return ir, errno
}

// fileNode is a file of a process directory: decided and read at open.
type fileNode struct {
	fs.Inode
	entryNode
}

var (
	_ fs.NodeOpener    = (*fileNode)(nil)
	_ fs.NodeReader    = (*fileNode)(nil)
	_ fs.NodeGetattrer = (*fileNode)(nil)
)

// writing reports whether open flags ask to write (or create or
// truncate): nothing in the tree is writable.
func writing(flags uint32) bool {
	return flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND|syscall.O_CREAT) != 0
}

// content is an open file's content, read for its caller at open.
type content struct{ b []byte }

// read answers a read of the content at off.
func (c *content) read(dest []byte, off int64) fuse.ReadResult {
	if off < 0 || off >= int64(len(c.b)) {
		return fuse.ReadResultData(nil)
	}
	return fuse.ReadResultData(c.b[off:min(int64(len(c.b)), off+int64(len(dest)))])
}

// Open refuses writing, decides and reads the item for the caller, and
// keeps the content in the handle: each open is one decision, for the
// caller that opened. mem is decided at open (with a one-byte probe)
// and read at each read.
func (n *fileNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if writing(flags) {
		return nil, 0, unix.EROFS
	}
	if n.e.shape == shapeMem {
		// The first page is never mapped: the read fails after the
		// decision, which is all the probe wants.
		_, errno := n.read(ctx, []gate.MemRange{{Addr: 0, Len: 1}})
		if errno == unix.EACCES || errno == unix.EPERM || errno == unix.ENOENT {
			return nil, 0, errno
		}
		return &content{}, fuse.FOPEN_DIRECT_IO, 0
	}
	ir, errno := n.read(ctx, nil)
	if errno != 0 {
		return nil, 0, errno
	}
	b := fileBytes(ir)
	if n.e.derive != nil {
		b = n.e.derive(b)
	}
	return &content{b: b}, fuse.FOPEN_DIRECT_IO, 0
}

func (n *fileNode) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	c, ok := fh.(*content)
	if !ok {
		return nil, unix.EBADF
	}
	if n.e.shape == shapeMem {
		if off < 0 {
			return nil, unix.EIO
		}
		ir, errno := n.read(ctx, []gate.MemRange{{Addr: uint64(off), Len: uint64(len(dest))}})
		if errno != 0 {
			return nil, errno
		}
		if len(ir.Mem) == 0 {
			return fuse.ReadResultData(nil), 0
		}
		return fuse.ReadResultData(ir.Mem[0].Data), 0
	}
	return c.read(dest, off), 0
}

// fileBytes renders an item's value as its /proc file: text as it was
// read, a list (cmdline, environ) as NUL-terminated strings.
func fileBytes(ir *gate.ItemResult) []byte {
	if ir.List != nil {
		n := 0
		for _, s := range ir.List {
			n += len(s) + 1
		}
		b := make([]byte, 0, n)
		for _, s := range ir.List {
			b = append(b, s...)
			b = append(b, 0)
		}
		return b
	}
	return []byte(ir.Text)
}

// linkNode is exe, cwd or root: readlink answers the target's path only.
type linkNode struct {
	fs.Inode
	entryNode
}

var (
	_ fs.NodeReadlinker = (*linkNode)(nil)
	_ fs.NodeGetattrer  = (*linkNode)(nil)
)

func (n *linkNode) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	ir, errno := n.read(ctx, nil)
	if errno != 0 {
		return nil, errno
	}
	return []byte(ir.Text), 0
}

// listNode is fd/, fdinfo/, ns/, map_files/ or attr/: listed from the
// item's value, read for the caller at each listing and lookup.
type listNode struct {
	fs.Inode
	entryNode
}

var (
	_ fs.NodeLookuper  = (*listNode)(nil)
	_ fs.NodeReaddirer = (*listNode)(nil)
	_ fs.NodeGetattrer = (*listNode)(nil)
)

// Getattr gives fd/ the number of open descriptors as its size when the
// caller may read fd_count (as Linux 6.2 and later do), 0 otherwise.
func (n *listNode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.fill(&out.Attr)
	if n.e.item == policy.ItemFd {
		if _, ir, errno := n.fs.readItem(ctx, n.pid.key, n.pid.tid, policy.ItemFdCount, nil); errno == 0 {
			out.Size = uint64(ir.Count)
		} else if errno == unix.ENOENT {
			return errno
		}
	}
	out.SetTimeout(0)
	return 0
}

func (n *listNode) links(ctx context.Context) ([]gate.Link, syscall.Errno) {
	ir, errno := n.read(ctx, nil)
	if errno != 0 {
		return nil, errno
	}
	return ir.Links, 0
}

func (n *listNode) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	ls, errno := n.links(ctx)
	if errno != 0 {
		return nil, errno
	}
	mode := uint32(syscall.S_IFLNK)
	if n.e.shape == shapeTextDir {
		mode = syscall.S_IFREG
	}
	out := make([]fuse.DirEntry, 0, len(ls))
	for _, l := range ls {
		if strings.Contains(l.Name, "/") {
			continue
		}
		out = append(out, fuse.DirEntry{Name: l.Name, Mode: mode})
	}
	return fs.NewListDirStream(out), 0
}

// Lookup finds one link (or fdinfo file), read for the caller now; the
// node holds its value, and is never cached (entry timeout 0).
func (n *listNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	ls, errno := n.links(ctx)
	if errno != 0 {
		return nil, errno
	}
	for _, l := range ls {
		if l.Name != name {
			continue
		}
		v := &valueNode{text: l.Target, link: n.e.shape == shapeLinkDir}
		uid, gid := n.pid.ownerIDs()
		mode := uint32(syscall.S_IFLNK | 0o777)
		if !v.link {
			mode = syscall.S_IFREG | 0o444
		}
		ino := n.fs.nextIno()
		setAttr(&out.Attr, ino, mode, uid, gid)
		out.SetEntryTimeout(0)
		out.SetAttrTimeout(0)
		v.attr = out.Attr
		return n.NewInode(ctx, v, fs.StableAttr{Mode: mode &^ 0o7777, Ino: ino}), 0
	}
	return nil, unix.ENOENT
}

// valueNode is one link or fdinfo file, holding what was read for the
// caller that looked it up. Another caller's path walk looks it up
// again (entry timeout 0) and gets its own node.
type valueNode struct {
	fs.Inode
	text string
	link bool
	attr fuse.Attr
}

var (
	_ fs.NodeReadlinker = (*valueNode)(nil)
	_ fs.NodeOpener     = (*valueNode)(nil)
	_ fs.NodeReader     = (*valueNode)(nil)
	_ fs.NodeGetattrer  = (*valueNode)(nil)
)

func (n *valueNode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Attr = n.attr
	out.SetTimeout(0)
	return 0
}

func (n *valueNode) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	if !n.link {
		return nil, unix.EINVAL
	}
	return []byte(n.text), 0
}

func (n *valueNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if writing(flags) {
		return nil, 0, unix.EROFS
	}
	return &content{b: []byte(n.text)}, fuse.FOPEN_DIRECT_IO, 0
}

func (n *valueNode) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	c, ok := fh.(*content)
	if !ok {
		return nil, unix.EBADF
	}
	return c.read(dest, off), 0
}

// Flush answers ENOSYS once, which tells the kernel never to send FLUSH
// again (fs/fuse/file.c fuse_flush: fc->no_flush): nothing is written,
// so a close has nothing to flush, and each close saves a round trip.
func (n *fileNode) Flush(ctx context.Context, fh fs.FileHandle) syscall.Errno { return syscall.ENOSYS }

// Flush: see fileNode.Flush.
func (n *valueNode) Flush(ctx context.Context, fh fs.FileHandle) syscall.Errno { return syscall.ENOSYS }

// taskNode is <pid>/task/: the process's threads, each a directory of
// the same entries, answered for that thread.
type taskNode struct {
	fs.Inode
	fs   *FS
	proc *pidNode
}

var (
	_ fs.NodeLookuper  = (*taskNode)(nil)
	_ fs.NodeReaddirer = (*taskNode)(nil)
	_ fs.NodeGetattrer = (*taskNode)(nil)
)

func (n *taskNode) fill(out *fuse.Attr) {
	uid, gid := n.proc.ownerIDs()
	setAttr(out, n.StableAttr().Ino, syscall.S_IFDIR|0o555, uid, gid)
}

func (n *taskNode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.fill(&out.Attr)
	out.SetTimeout(pidAttrTimeout)
	return 0
}

// Readdir lists the threads, as the caller's pid namespace names them.
func (n *taskNode) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	r, _, errno := n.fs.ask(ctx, n.proc.key, &gate.Request{PIDs: []int{n.proc.key.pid}, Items: []gate.Item{n.fs.visibility()}, Threads: true})
	if r == nil && errno != 0 {
		return nil, errno
	}
	out := make([]fuse.DirEntry, 0, len(r.Threads))
	for _, tid := range r.Threads {
		out = append(out, fuse.DirEntry{Name: strconv.Itoa(tid), Mode: syscall.S_IFDIR})
	}
	return fs.NewListDirStream(out), 0
}

// Lookup finds one thread of the process (checked now, for the caller:
// entry timeout 0).
func (n *taskNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	tid, ok := parsePID(name)
	if !ok {
		return nil, unix.ENOENT
	}
	if r, _, errno := n.fs.ask(ctx, n.proc.key, &gate.Request{PIDs: []int{n.proc.key.pid}, Items: []gate.Item{n.fs.visibility()}, TID: tid}); r == nil && errno != 0 {
		return nil, errno
	}
	ch := n.GetChild(name)
	if ch == nil {
		t := &pidNode{fs: n.fs, key: n.proc.key, tid: tid}
		t.setOwner(n.proc.ownerIDs())
		ch = n.NewInode(ctx, t, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: n.fs.nextIno()})
	}
	ch.Operations().(*pidNode).fillAttr(&out.Attr, ch.StableAttr().Ino)
	out.SetEntryTimeout(pidEntryTimeout)
	out.SetAttrTimeout(pidAttrTimeout)
	return ch, 0
}
