package live

import (
	"errors"
	"fmt"
	"sort"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/procfs"
)

// NSName is the name Read gives the user namespace with the given inode
// number: "userns-4026532281". The initial namespace is "init".
func NSName(ino uint64) string { return "userns-" + strconv.FormatUint(ino, 10) }

// readInitNS names the reader's own user namespace "init": it is the
// top of every chain the reader can walk (NS_GET_PARENT fails with EPERM
// above it).
func (r *reader) readInitNS() error {
	l, err := procfs.ReadLink(r.root.FD(), "self/ns/user")
	if err != nil {
		if r.pin {
			return fmt.Errorf("read the reader's user namespace: %w", err)
		}
		// A fixture procfs without namespace links: everything is init.
		r.initIno = 0
		r.ns[0] = kernel.NewInitUserNS()
		return nil
	}
	ino, err := procfs.ParseNSLink([]byte(l), "user")
	if err != nil {
		return err
	}
	r.initIno = ino
	r.ns[ino] = kernel.NewInitUserNS()
	return nil
}

// resolveNS adds the namespace ino, of the task whose /proc directory is
// dirfd, with its owner, maps and chain of parents. The task is pinned by
// the caller.
func (r *reader) resolveNS(pid, dirfd int, ino uint64) error {
	fd, err := unix.Openat(dirfd, "ns/user", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	var sb unix.Stat_t
	if err := unix.Fstat(fd, &sb); err != nil {
		unix.Close(fd)
		return err
	}
	if sb.Ino != ino {
		unix.Close(fd)
		return fmt.Errorf("pid %d: ns/user changed from %d to %d while read: %w", pid, ino, sb.Ino, unix.ESRCH)
	}
	if err := r.walkNS(fd, ino); err != nil {
		return err
	}
	r.readMaps(dirfd, ino)
	return nil
}

// walkNS adds the namespace open at fd (inode ino) and its ancestors up
// to a known one. It closes fd.
func (r *reader) walkNS(fd int, ino uint64) error {
	type link struct {
		ns  *kernel.UserNS
		ino uint64
	}
	var chain []link
	ok := false
	defer func() {
		unix.Close(fd)
		if !ok { // leave no half-linked namespace behind
			for _, l := range chain {
				delete(r.ns, l.ino)
			}
		}
	}()
	for {
		if known := r.ns[ino]; known != nil {
			// Link the new chain (innermost first) below the known one.
			parent := known
			for i := len(chain) - 1; i >= 0; i-- {
				chain[i].ns.Parent = parent
				chain[i].ns.Level = parent.Level + 1
				parent = chain[i].ns
			}
			ok = true
			return nil
		}
		owner, err := unix.IoctlGetUint32(fd, unix.NS_GET_OWNER_UID)
		if err != nil {
			return fmt.Errorf("NS_GET_OWNER_UID on user namespace %d: %w", ino, err)
		}
		ns := &kernel.UserNS{Name: NSName(ino), Owner: kernel.KUID(owner), Group: kernel.KGID(owner)}
		// Until a member's maps are read: the loader's default map.
		ns.UIDMap = []kernel.IDExtent{{Inside: 0, Outside: owner, Count: 1}}
		ns.GIDMap = []kernel.IDExtent{{Inside: 0, Outside: owner, Count: 1}}
		r.ns[ino] = ns
		chain = append(chain, link{ns, ino})
		pfd, err := unix.IoctlRetInt(fd, unix.NS_GET_PARENT)
		if err != nil {
			if errors.Is(err, unix.EPERM) {
				// Above the reader's own namespace: cannot happen for a
				// namespace that is not the reader's own, since the
				// reader's is an ancestor of every namespace it can see.
				return fmt.Errorf("user namespace %d: NS_GET_PARENT: %w (not below the reader's namespace)", ino, err)
			}
			return fmt.Errorf("user namespace %d: NS_GET_PARENT: %w", ino, err)
		}
		unix.Close(fd)
		fd = pfd
		var sb unix.Stat_t
		if err := unix.Fstat(fd, &sb); err != nil {
			return fmt.Errorf("stat parent of user namespace %d: %w", ino, err)
		}
		ino = sb.Ino
	}
}

// readMaps reads uid_map and gid_map of a member of namespace ino.
func (r *reader) readMaps(dirfd int, ino uint64) {
	ns := r.ns[ino]
	if ns == nil || ns.IsInit() {
		return
	}
	var maps [2][]kernel.IDExtent
	for i, name := range []string{"uid_map", "gid_map"} {
		b, err := r.readFile(dirfd, name)
		if err != nil {
			return // tried again with the next member
		}
		m, err := procfs.ParseIDMap(b)
		if err != nil {
			r.note("user namespace %s: %s: %v", ns.Name, name, err)
			return
		}
		maps[i] = m
	}
	ns.UIDMap, ns.GIDMap = maps[0], maps[1]
	if ns.UIDMap == nil {
		ns.UIDMap = []kernel.IDExtent{}
	}
	if ns.GIDMap == nil {
		ns.GIDMap = []kernel.IDExtent{}
	}
	r.nsMaps[ino] = true
}

// namespaces lists every namespace found, init first, then by level and
// inode, and notes those whose maps could not be read.
func (r *reader) namespaces() []*kernel.UserNS {
	type entry struct {
		ino uint64
		ns  *kernel.UserNS
	}
	var es []entry
	for ino, ns := range r.ns {
		if ino == r.initIno {
			continue
		}
		es = append(es, entry{ino, ns})
		if !r.nsMaps[ino] {
			r.note("user namespace %s has no member that could be read: its id maps are assumed to map 0 to its owner", ns.Name)
		}
	}
	sort.Slice(es, func(i, j int) bool {
		if es[i].ns.Level != es[j].ns.Level {
			return es[i].ns.Level < es[j].ns.Level
		}
		return es[i].ino < es[j].ino
	})
	out := []*kernel.UserNS{r.ns[r.initIno]}
	for _, e := range es {
		out = append(out, e.ns)
	}
	return out
}
