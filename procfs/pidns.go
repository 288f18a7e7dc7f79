package procfs

import (
	"errors"
	"fmt"
	"strconv"

	"golang.org/x/sys/unix"
)

// PIDNS is an open pid namespace: a descriptor of its nsfs file (the
// ns/pid link of a process's /proc directory). While it is open the
// namespace cannot be freed, so its inode number — which names it —
// cannot be given to another namespace. Its methods ask the kernel to
// translate pids between it and the pid namespace of the process that
// calls them (fs/nsfs.c ns_ioctl).
type PIDNS struct {
	fd  int
	ino uint64
}

// OpenPIDNS opens the pid namespace of the process whose /proc
// directory is dirfd: its ns/pid link, the namespace the process was
// created in (task_active_pid_ns), which never changes for the life of
// the process. Opening the link of another process needs
// PTRACE_MODE_READ over it (CAP_SYS_PTRACE for the gate). A process that
// exited is ESRCH.
func OpenPIDNS(dirfd int) (*PIDNS, error) {
	fd, err := unix.Openat(dirfd, "ns/pid", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open ns/pid: %w", Gone(err))
	}
	return newPIDNS(fd)
}

func newPIDNS(fd int) (*PIDNS, error) {
	var sb unix.Stat_t
	if err := unix.Fstat(fd, &sb); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("stat pid namespace: %w", err)
	}
	return &PIDNS{fd: fd, ino: sb.Ino}, nil
}

// Ino returns the namespace's inode number, as the ns/pid links name it
// ("pid:[4026531836]", see [ParseNSLink]).
func (n *PIDNS) Ino() uint64 { return n.ino }

// Close releases the descriptor. A nil namespace is a no-op.
func (n *PIDNS) Close() {
	if n != nil && n.fd >= 0 {
		unix.Close(n.fd)
		n.fd = -1
	}
}

// ErrNoPIDTranslation is wrapped by the translations of a kernel that
// has no pid translation ioctls (before Linux 6.11): ENOTTY.
var ErrNoPIDTranslation = errors.New("the kernel cannot translate pids between namespaces (NS_GET_PID_*_PIDNS, Linux 6.11)")

// HostPID returns the pid, in the caller's pid namespace, of the task
// whose pid in n is pid (NS_GET_PID_FROM_PIDNS: find_task_by_pid_ns,
// which finds only tasks of n or of the namespaces below it). A task n
// has no pid for is ESRCH. pid may name a thread.
func (n *PIDNS) HostPID(pid int) (int, error) {
	return n.ioctl(unix.NS_GET_PID_FROM_PIDNS, pid, "NS_GET_PID_FROM_PIDNS")
}

// PIDOf returns the pid in n of the task whose pid in the caller's
// namespace is host (NS_GET_PID_IN_PIDNS: task_pid_nr_ns), ESRCH when n
// cannot see the task (it lives in a namespace that is not n nor below
// it). host may name a thread.
func (n *PIDNS) PIDOf(host int) (int, error) {
	return n.ioctl(unix.NS_GET_PID_IN_PIDNS, host, "NS_GET_PID_IN_PIDNS")
}

// TGIDOf is PIDOf for the thread-group id: the pid in n of the process
// task host belongs to (NS_GET_TGID_IN_PIDNS: task_tgid_nr_ns).
func (n *PIDNS) TGIDOf(host int) (int, error) {
	return n.ioctl(unix.NS_GET_TGID_IN_PIDNS, host, "NS_GET_TGID_IN_PIDNS")
}

func (n *PIDNS) ioctl(req uint, pid int, name string) (int, error) {
	if pid <= 0 {
		return 0, unix.ESRCH
	}
	// The pid is the ioctl's argument itself, and the answer its return
	// value: no x/sys helper has that shape.
	v, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(n.fd), uintptr(req), uintptr(pid))
	switch {
	case e == 0 && int(v) > 0:
		return int(v), nil
	case e == 0:
		return 0, unix.ESRCH
	case e == unix.ENOTTY:
		return 0, fmt.Errorf("%s: %w (%w)", name, ErrNoPIDTranslation, e)
	}
	return 0, e // ESRCH, or EPERM from a seccomp filter
}

// Parent opens the parent of n (NS_GET_PARENT, Linux 4.9). Above the
// caller's own pid namespace the kernel refuses with EPERM
// (kernel/pid_namespace.c pidns_get_parent), so a walk up from any
// namespace the caller can see ends with EPERM right after the caller's.
func (n *PIDNS) Parent() (*PIDNS, error) {
	fd, err := unix.IoctlRetInt(n.fd, unix.NS_GET_PARENT)
	if err != nil {
		return nil, fmt.Errorf("NS_GET_PARENT of pid namespace %d: %w", n.ino, err)
	}
	return newPIDNS(fd)
}

// Below reports whether n is anc or lies below it, and how many levels
// below (0 for anc itself). It walks up with NS_GET_PARENT, holding each
// namespace open while it compares inode numbers, until it meets anc or
// the top of what the caller can see (EPERM). Both namespaces must stay
// open during the call, so that neither inode number can be reused.
func (n *PIDNS) Below(anc *PIDNS) (levels int, ok bool, err error) {
	if n.ino == anc.ino {
		return 0, true, nil
	}
	cur := n
	defer func() {
		if cur != n {
			cur.Close()
		}
	}()
	for depth := 1; ; depth++ {
		p, err := cur.Parent()
		if errors.Is(err, unix.EPERM) {
			return 0, false, nil // the top of the caller's view
		}
		if err != nil {
			return 0, false, err
		}
		if cur != n {
			cur.Close()
		}
		cur = p
		if cur.ino == anc.ino {
			return depth, true, nil
		}
		if depth > maxPIDNSLevel {
			return 0, false, fmt.Errorf("pid namespace %d: more than %d levels: %w", n.ino, maxPIDNSLevel, ErrMalformed)
		}
	}
}

// maxPIDNSLevel is MAX_PID_NS_LEVEL (include/linux/pid_namespace.h): a
// pid namespace is at most 32 levels deep.
const maxPIDNSLevel = 32

// String returns "pid:[4026531836]", as the ns/pid link names it.
func (n *PIDNS) String() string { return "pid:[" + strconv.FormatUint(n.ino, 10) + "]" }
