package fuseproc

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// What is not per-process passes through, read-only, to the daemon's
// procfs: the front reads it with its own (unprivileged) credentials.
// Names that are per-process there are not passed: process directories,
// self, thread-self, and the links into self/ that this tree does not
// serve; mounts → self/mounts resolves through the caller's own process
// directory, and net is served as the daemon's network namespace (as
// LXCFS does).

// passable reports whether the root-level name passes through, and
// whether its link is followed (net).
func passable(name string, mode uint32, proc string) (ok, follow bool) {
	if _, isPID := parsePID(name); isPID || name == "self" || name == "thread-self" {
		return false, false
	}
	if mode&syscall.S_IFMT == syscall.S_IFLNK {
		target, err := os.Readlink(filepath.Join(proc, name))
		switch {
		case err != nil || strings.HasPrefix(target, "thread-self/"):
			return false, false
		case name == "net":
			return true, true
		case strings.HasPrefix(target, "self/"):
			// Resolved through this tree's self (mounts → self/mounts).
			_, served := byName[strings.TrimPrefix(target, "self/")]
			return served, false
		}
	}
	return true, false
}

// lookupPass looks up name in the pass-through directory dir.
func lookupPass(ctx context.Context, parent *fs.Inode, dir, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if name == "." || name == ".." || strings.ContainsRune(name, '/') || strings.ContainsRune(name, 0) {
		return nil, unix.ENOENT
	}
	root := parent.IsRoot()
	path := filepath.Join(dir, name)
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		return nil, fs.ToErrno(err)
	}
	if root {
		ok, follow := passable(name, st.Mode, dir)
		if !ok {
			return nil, unix.ENOENT
		}
		if follow {
			if err := syscall.Stat(path, &st); err != nil {
				return nil, fs.ToErrno(err)
			}
		}
	}
	out.Attr.FromStat(&st)
	out.Attr.Ino = 0
	out.Attr.Mode &^= 0o222 // nothing is writable
	out.SetEntryTimeout(passTimeout)
	out.SetAttrTimeout(passTimeout)
	n := &passNode{path: path}
	return parent.NewInode(ctx, n, fs.StableAttr{Mode: st.Mode &^ 0o7777}), 0
}

// passNames lists the root-level names that pass through.
func passNames(proc string) ([]fuse.DirEntry, error) {
	ents, err := os.ReadDir(proc)
	if err != nil {
		return nil, err
	}
	out := make([]fuse.DirEntry, 0, 64)
	for _, e := range ents {
		name := e.Name()
		if _, isPID := parsePID(name); isPID {
			continue // no stat for each of thousands of processes
		}
		var st syscall.Stat_t
		if syscall.Lstat(filepath.Join(proc, name), &st) != nil {
			continue
		}
		ok, follow := passable(name, st.Mode, proc)
		if !ok {
			continue
		}
		mode := st.Mode &^ 0o7777
		if follow {
			mode = syscall.S_IFDIR
		}
		out = append(out, fuse.DirEntry{Name: name, Mode: mode})
	}
	return out, nil
}

// passNode is a pass-through file, directory or symlink.
type passNode struct {
	fs.Inode
	path string
}

var (
	_ fs.NodeLookuper   = (*passNode)(nil)
	_ fs.NodeReaddirer  = (*passNode)(nil)
	_ fs.NodeGetattrer  = (*passNode)(nil)
	_ fs.NodeOpener     = (*passNode)(nil)
	_ fs.NodeReader     = (*passNode)(nil)
	_ fs.NodeReleaser   = (*passNode)(nil)
	_ fs.NodeReadlinker = (*passNode)(nil)
)

func (n *passNode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	var st syscall.Stat_t
	if err := syscall.Stat(n.path, &st); err != nil {
		return fs.ToErrno(err)
	}
	out.Attr.FromStat(&st)
	out.Attr.Ino = n.StableAttr().Ino
	out.Attr.Mode &^= 0o222
	out.SetTimeout(passTimeout)
	return 0
}

func (n *passNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return lookupPass(ctx, n.EmbeddedInode(), n.path, name, out)
}

func (n *passNode) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	ents, err := os.ReadDir(n.path)
	if err != nil {
		return nil, fs.ToErrno(err)
	}
	out := make([]fuse.DirEntry, 0, len(ents))
	for _, e := range ents {
		out = append(out, fuse.DirEntry{Name: e.Name(), Mode: modeOf(e.Type())})
	}
	return fs.NewListDirStream(out), 0
}

// modeOf returns the S_IF* type bits of a directory entry's type.
func modeOf(t os.FileMode) uint32 {
	switch {
	case t&os.ModeDir != 0:
		return syscall.S_IFDIR
	case t&os.ModeSymlink != 0:
		return syscall.S_IFLNK
	}
	return syscall.S_IFREG
}

func (n *passNode) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	t, err := os.Readlink(n.path)
	if err != nil {
		return nil, fs.ToErrno(err)
	}
	return []byte(t), 0
}

// passFile is an open pass-through file.
type passFile struct{ fd int }

func (n *passNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if writing(flags) {
		return nil, 0, unix.EROFS
	}
	fd, err := unix.Open(n.path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, 0, fs.ToErrno(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, 0, fs.ToErrno(err)
	}
	if c, ok := fuse.FromContext(ctx); !ok || !mayRead(&st, c.Uid, c.Gid) {
		unix.Close(fd)
		return nil, 0, unix.EACCES
	}
	return &passFile{fd: fd}, fuse.FOPEN_DIRECT_IO, 0
}

// mayRead reports whether the caller's uid and gid may read a file of
// mode st by its permission bits (fs/namei.c generic_permission, without
// the supplementary groups a FUSE request does not carry: fail closed),
// root always. The front may hold more than the caller (its capabilities
// without privilege separation, root with --keep-privileges): what it
// passes through is what the caller could read itself.
func mayRead(st *unix.Stat_t, uid, gid uint32) bool {
	switch {
	case uid == 0:
		return true
	case uid == st.Uid:
		return st.Mode&0o400 != 0
	case gid == st.Gid:
		return st.Mode&0o040 != 0
	}
	return st.Mode&0o004 != 0
}

func (n *passNode) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	f, ok := fh.(*passFile)
	if !ok {
		return nil, unix.EBADF
	}
	k, err := unix.Pread(f.fd, dest, off)
	if err != nil {
		return nil, fs.ToErrno(err)
	}
	return fuse.ReadResultData(dest[:k]), 0
}

func (n *passNode) Release(ctx context.Context, fh fs.FileHandle) syscall.Errno {
	if f, ok := fh.(*passFile); ok {
		unix.Close(f.fd)
	}
	return 0
}

// Flush: see fileNode.Flush.
func (n *passNode) Flush(ctx context.Context, fh fs.FileHandle) syscall.Errno { return syscall.ENOSYS }
