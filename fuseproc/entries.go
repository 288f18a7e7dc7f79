package fuseproc

import (
	"sort"
	"strings"
	"syscall"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/policy"
)

// shape is how an entry of /proc/<pid>/ is served.
type shape uint8

const (
	shapeFile    shape = iota // a file: the item's text or list
	shapeLink                 // a symlink: the item's text
	shapeLinkDir              // a directory of symlinks: the item's links
	shapeTextDir              // a directory of files: the item's links (fdinfo)
	shapeMem                  // mem: read at offsets
)

// entry is one served entry of /proc/<pid>/.
type entry struct {
	name  string
	item  policy.Item
	shape shape
	// perm is the kernel's mode bits for the entry (its directory's for
	// a directory of links).
	perm uint32
	// denied is the errno the kernel's open of the entry returns when
	// its ptrace check fails (0: none of its own): a denial is answered
	// with it, whichever layer refused.
	denied syscall.Errno
	// derive, when set, makes the file's content from the item's
	// (mounts from mountinfo).
	derive func([]byte) []byte
}

// entries lists the served /proc/<pid>/ entries, sorted by name, and
// byName indexes them. They come from the one catalog of /proc entries
// (package kernel) through the policy's items: an entry is served when
// an item reads it. stat serves the stat item, which the core unmasks
// when the caller may read stat_full; fd/'s size is the fd_count item.
var entries, byName = func() ([]entry, map[string]*entry) {
	var out []entry
	seen := map[string]bool{}
	for _, it := range policy.Items() {
		e := it.KernelEntry()
		if e == nil || it == policy.ItemStatFull || it == policy.ItemFdCount {
			continue
		}
		en := entry{name: e.Name, item: it, perm: uint32(e.Perm), denied: syscall.Errno(e.Errno)}
		switch {
		case e.Within != kernel.EntryNone:
			dir := e.Within.Entry()
			en.name, en.perm = dir.Name, uint32(dir.Perm)
			en.shape = shapeLinkDir
			if !e.Link {
				en.shape = shapeTextDir
			}
		case e.Link:
			en.shape = shapeLink
		case it == policy.ItemMem:
			en.shape = shapeMem
		case e.Dir:
			continue
		}
		if strings.Contains(en.name, "/") || seen[en.name] {
			continue
		}
		seen[en.name] = true
		out = append(out, en)
	}
	// mounts has no item of its own: it is mountinfo, as the kernel
	// prints it in the older format (fs/proc_namespace.c show_vfsmnt).
	if m := kernel.EntryMounts.Entry(); !seen[m.Name] {
		out = append(out, entry{name: m.Name, item: policy.ItemMountinfo, perm: uint32(m.Perm), derive: mountsOf})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	idx := make(map[string]*entry, len(out))
	for i := range out {
		idx[out[i].name] = &out[i]
	}
	return out, idx
}()

// mode returns the entry's file mode (type and permission bits).
func (e *entry) mode() uint32 {
	switch e.shape {
	case shapeLink:
		return syscall.S_IFLNK | e.perm
	case shapeLinkDir, shapeTextDir:
		return syscall.S_IFDIR | e.perm
	}
	return syscall.S_IFREG | e.perm
}

// mountsOf turns a mountinfo file into a mounts file: per line, the
// source, the mount point, the type and the options ("rw" or "ro" of the
// superblock, then the mount's options and the superblock's), then "0 0"
// (fs/proc_namespace.c: show_mountinfo and show_vfsmnt print the same
// fields in these two layouts).
func mountsOf(info []byte) []byte {
	out := make([]byte, 0, len(info))
	for _, line := range strings.Split(string(info), "\n") {
		f := strings.Fields(line)
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if len(f) < 6 || sep < 0 || len(f) < sep+4 {
			continue
		}
		mnt, fstype, source, super := f[4], f[sep+1], f[sep+2], f[sep+3]
		opts := strings.Split(super, ",")
		mo := strings.Split(f[5], ",")
		all := []string{opts[0]}
		all = append(all, mo[1:]...)
		all = append(all, opts[1:]...)
		out = append(out, source+" "+mnt+" "+fstype+" "+strings.Join(all, ",")+" 0 0\n"...)
	}
	return out
}
