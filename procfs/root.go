package procfs

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"golang.org/x/sys/unix"
)

// Root is an open procfs mount: a descriptor of its root directory, and
// whether its pids are those of the opener's pid namespace, which is
// what pinning needs (the pidfd of pid N must be the process /proc/N
// shows).
type Root struct {
	path string
	fd   int
	own  bool
}

// Open opens the procfs mounted at path ("" means /proc). A directory
// that is not a procfs of the opener's pid namespace (another
// namespace's procfs, or a fixture tree in a test) opens too, but cannot
// pin: see [Root.Own].
func Open(path string) (*Root, error) {
	if path == "" {
		path = "/proc"
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("procfs: %w", err)
	}
	fd, err := unix.Open(abs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("procfs: open %s: %w", abs, err)
	}
	r := &Root{path: abs, fd: fd}
	if self, err := ReadLink(fd, "self"); err == nil && self == strconv.Itoa(os.Getpid()) {
		r.own = true
	}
	return r, nil
}

// Path returns the absolute path the root was opened at.
func (r *Root) Path() string { return r.path }

// FD returns the root's O_PATH directory descriptor, valid until Close.
func (r *Root) FD() int { return r.fd }

// Own reports whether the root is the procfs of the opener's own pid
// namespace (its "self" link names the opener), so that its processes
// can be pinned.
func (r *Root) Own() bool { return r.own }

// Self returns what the root's "self" link names ("" when it has none):
// the opener's pid in the namespace of the procfs.
func (r *Root) Self() string {
	s, _ := ReadLink(r.fd, "self")
	return s
}

// Close releases the root's descriptor.
func (r *Root) Close() error { return unix.Close(r.fd) }

// ListPIDs lists the processes of the root (its numeric entries, which
// name thread-group leaders only), sorted.
func (r *Root) ListPIDs() ([]int, error) {
	names, err := ReadDirNames(r.fd, ".")
	if err != nil {
		return nil, fmt.Errorf("procfs: list processes: %w", err)
	}
	return numeric(names, 0), nil
}

// ListThreads lists the threads of process pid (its task/ directory),
// the leader excluded, sorted. A process that exits meanwhile has none.
func (r *Root) ListThreads(pid int) []int {
	names, err := ReadDirNames(r.fd, strconv.Itoa(pid)+"/task")
	if err != nil {
		return nil
	}
	return numeric(names, pid)
}

// OpenDir opens the directory rel (relative to the root, such as "42" or
// "42/task/43") with O_PATH, unpinned: for a root that cannot pin. A
// missing directory is ESRCH.
func (r *Root) OpenDir(rel string) (int, error) {
	fd, err := unix.Openat(r.fd, rel, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, Gone(err)
	}
	return fd, nil
}

// numeric returns the positive numbers among names other than skip,
// sorted.
func numeric(names []string, skip int) []int {
	out := make([]int, 0, len(names))
	for _, n := range names {
		if v, ok := atoi([]byte(n)); ok && v > 0 && v != skip {
			out = append(out, v)
		}
	}
	sort.Ints(out)
	return out
}
