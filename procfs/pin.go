package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"

	"golang.org/x/sys/unix"
)

// Pin holds one task fixed while it is read: a pidfd of its process and
// a descriptor of its /proc directory opened after the pidfd.
//
// The proof that every file read through Dir belongs to the pidfd's
// process, and not to a later holder of the same pid:
//
//  1. pidfd_open(pid) returns a pidfd for the process P holding pid now.
//  2. /proc/<pid> is opened after step 1. A /proc/<pid> directory is
//     bound to the task it was looked up for, not to the number: files
//     opened through it belong to that task or fail with ESRCH/ENOENT.
//  3. Verify, after the last read, checks with pidfd_send_signal(0) that
//     P is still alive (a zombie still is: it holds its pid). P then held
//     the pid from step 1 to the check, so the directory opened in step 2
//     was P's, and so was every file read through it.
//
// A thread is pinned through its process: the pidfd is the process's and
// the directory /proc/<tgid>/task/<tid>, whose lookup fails unless tid is
// a thread of that process at the time, which step 3 places inside P's
// life. A decision made on state read under a pin and followed by reads
// under the same pin, with a successful Verify after both, is about the
// task whose data is returned.
type Pin struct {
	// PID is the task pinned; TGID its process (PID for a process).
	PID, TGID int
	// PidFD is a pidfd of the process; Dir an O_PATH descriptor of the
	// task's /proc directory.
	PidFD, Dir int
}

// Error is a failed operation on one task's /proc directory. A task
// that does not exist, or exited (or whose pid was reused) while it was
// read, has Err ESRCH, so errors.Is(err, unix.ESRCH) holds.
type Error struct {
	PID int
	Op  string
	Err error
}

// Error returns "pid 42: pidfd_open: no such process".
func (e *Error) Error() string {
	return fmt.Sprintf("pid %d: %s: %v", e.PID, e.Op, e.Err)
}

// Unwrap returns the underlying error (an errno).
func (e *Error) Unwrap() error { return e.Err }

// ThreadError is returned when a process is asked for by the id of one
// of its threads other than the leader. pidfd_open answers such an id
// with ENOENT (EINVAL before Linux 6.15), and the /proc/<tid> directory
// the kernel still resolves (hidden from listings) is the thread's, not
// the process's. It unwraps to ESRCH: there is no process with that pid.
type ThreadError struct {
	TID, TGID int
}

// Error returns "pid 43 is a thread of process 42, not a process".
func (e *ThreadError) Error() string {
	return fmt.Sprintf("pid %d is a thread of process %d, not a process", e.TID, e.TGID)
}

// Unwrap returns ESRCH.
func (e *ThreadError) Unwrap() error { return unix.ESRCH }

// Pin pins process pid: pidfd first, /proc/<pid> second. It returns a
// *ThreadError when pid is a thread of another process, and an *Error
// wrapping ESRCH when no task has pid.
func (r *Root) Pin(pid int) (*Pin, error) {
	if err := r.pinnable(pid); err != nil {
		return nil, err
	}
	// A thread id answers ENOENT (or EINVAL), and so may a pid whose
	// thread exits and whose number a new process takes between the two
	// looks below: then look again.
	for range 3 {
		pidfd, err := unix.PidfdOpen(pid, 0)
		if err == nil {
			return r.pinDir(pid, pid, pidfd, strconv.Itoa(pid))
		}
		if !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
			return nil, &Error{pid, "pidfd_open", err}
		}
		tgid, err := r.TGID(pid)
		if err != nil {
			return nil, err
		}
		if tgid != pid {
			return nil, &ThreadError{TID: pid, TGID: tgid}
		}
	}
	return nil, &Error{pid, "pidfd_open", unix.ESRCH}
}

// PinPidfd pins the process of an existing pidfd (for example one from
// SO_PEERPIDFD) known to hold pid. It takes ownership of pidfd.
func (r *Root) PinPidfd(pid, pidfd int) (*Pin, error) {
	if err := r.pinnable(pid); err != nil {
		unix.Close(pidfd)
		return nil, err
	}
	return r.pinDir(pid, pid, pidfd, strconv.Itoa(pid))
}

// PinTask pins task tid, a process or a thread: its Dir is the task's
// own directory (/proc/<tgid>/task/<tid> for a thread), pinned by its
// process.
func (r *Root) PinTask(tid int) (*Pin, error) {
	p, err := r.Pin(tid)
	var te *ThreadError
	if errors.As(err, &te) {
		return r.PinThread(tid, te.TGID)
	}
	return p, err
}

// PinThread pins thread tid of process tgid: the process's pidfd and the
// directory /proc/<tgid>/task/<tid>. It fails with ESRCH when tgid is no
// process or tid none of its threads.
func (r *Root) PinThread(tid, tgid int) (*Pin, error) {
	if err := r.pinnable(tgid); err != nil {
		return nil, err
	}
	pidfd, err := unix.PidfdOpen(tgid, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EINVAL) {
			err = unix.ESRCH // tgid leads no process any more
		}
		return nil, &Error{tid, "pidfd_open of its process " + strconv.Itoa(tgid), err}
	}
	return r.pinDir(tid, tgid, pidfd, strconv.Itoa(tgid)+"/task/"+strconv.Itoa(tid))
}

// PinProcessOf pins the process task tid belongs to (tid itself when it
// is a process): for a caller known by a thread id, such as the sender
// of a FUSE request. After pinning the process it checks, under the pin,
// that tid is one of its threads; Verify then proves it was so while the
// process was alive.
func (r *Root) PinProcessOf(tid int) (*Pin, error) {
	p, err := r.Pin(tid)
	var te *ThreadError
	if !errors.As(err, &te) {
		return p, err
	}
	if p, err = r.Pin(te.TGID); err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstatat(p.Dir, "task/"+strconv.Itoa(tid), &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		p.Close()
		return nil, &Error{tid, "find it among the threads of process " + strconv.Itoa(te.TGID), Gone(err)}
	}
	return p, nil
}

// TGID returns the thread-group id of task pid from its status file
// (which the kernel resolves for a thread id too, although /proc lists
// only processes). A task that does not exist is an *Error wrapping
// ESRCH.
func (r *Root) TGID(pid int) (int, error) {
	// The Tgid line is among the first (fs/proc/array.c
	// task_state); the whole file may not fit, and need not.
	var buf [1024]byte
	b, err := ReadFile(r.fd, strconv.Itoa(pid)+"/status", buf[:0], len(buf))
	if err != nil {
		return 0, &Error{pid, "read status", Gone(err)}
	}
	for line := range bytes.SplitSeq(b, []byte{'\n'}) {
		if v, ok := bytes.CutPrefix(line, []byte("Tgid:")); ok {
			if tgid, ok := atoi(trimSpace(v)); ok {
				return tgid, nil
			}
			break
		}
	}
	return 0, &Error{pid, "read status", fmt.Errorf("no Tgid line in its first %d bytes: %w", len(b), ErrMalformed)}
}

// pinnable checks that pid can be pinned in r.
func (r *Root) pinnable(pid int) error {
	if pid <= 0 {
		return &Error{pid, "pin", unix.ESRCH}
	}
	if !r.own {
		return &Error{pid, "pin", fmt.Errorf("%s is not the procfs of this pid namespace (it names the pinner %q, not %d): pids cannot be pinned", r.path, r.Self(), unix.Getpid())}
	}
	return nil
}

func (r *Root) pinDir(pid, tgid, pidfd int, rel string) (*Pin, error) {
	dir, err := unix.Openat(r.fd, rel, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(pidfd)
		return nil, &Error{pid, "open " + r.path + "/" + rel, Gone(err)}
	}
	// Whether the directory is the pidfd's process's is proven by Verify
	// after the last read through it, not here.
	return &Pin{PID: pid, TGID: tgid, PidFD: pidfd, Dir: dir}, nil
}

// Verify reports (as nil) that the pinned process is still alive, so
// that everything read through Dir so far was its. It returns an *Error
// wrapping ESRCH otherwise.
func (p *Pin) Verify() error {
	if err := unix.PidfdSendSignal(p.PidFD, 0, nil, 0); err != nil && !errors.Is(err, unix.EPERM) {
		return &Error{p.PID, "the process exited", unix.ESRCH}
	}
	return nil
}

// Close releases both descriptors. A nil pin is a no-op.
func (p *Pin) Close() {
	if p == nil {
		return
	}
	if p.Dir >= 0 {
		unix.Close(p.Dir)
		p.Dir = -1
	}
	if p.PidFD >= 0 {
		unix.Close(p.PidFD)
		p.PidFD = -1
	}
}
