package gate

import (
	"errors"
	"fmt"
	"strconv"

	"golang.org/x/sys/unix"
)

// Pin holds one process fixed for the duration of a request: a pidfd
// and a descriptor of its /proc/<pid> directory opened after it.
//
// The proof that every file read through Dir belongs to the pidfd's
// process, and not to a later holder of the same pid:
//
//  1. pidfd_open(pid) returns a pidfd for the process P holding pid now.
//  2. /proc/<pid> is opened after step 1. A /proc/<pid> directory is
//     bound to the process it was looked up for, not to the number: files
//     opened through it belong to that process or fail with ESRCH/ENOENT.
//  3. Verify, after the last read, checks with pidfd_send_signal(0) that
//     P is still alive (a zombie still is: it holds its pid). P then held
//     the pid from step 1 to the check, so the directory opened in step 2
//     was P's, and so was every file read through it.
//
// A decision made on state read under a pin and followed by reads under
// the same pin, with a successful Verify after both, is about the process
// whose data is returned. Callers pinned through SO_PEERPIDFD are checked
// the same way.
type Pin struct {
	PID   int
	PidFD int
	Dir   int
}

// OpenPin pins pid: pidfd first, /proc/<pid> second. procFD is an
// O_PATH descriptor of the procfs root of the caller's pid namespace.
// It fails with ESRCH when the process does not exist.
func OpenPin(procFD, pid int) (*Pin, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("gate: pin pid %d: %w", pid, unix.ESRCH)
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.EINVAL) {
			// Not a thread-group leader: the gate serves processes.
			err = unix.ESRCH
		}
		return nil, fmt.Errorf("gate: pidfd_open %d: %w", pid, err)
	}
	return pinFromPidfd(procFD, pid, pidfd)
}

// PinFromPidfd pins the process of an existing pidfd (for example one
// from SO_PEERPIDFD) known to hold pid. It takes ownership of pidfd.
func PinFromPidfd(procFD, pid, pidfd int) (*Pin, error) {
	return pinFromPidfd(procFD, pid, pidfd)
}

func pinFromPidfd(procFD, pid, pidfd int) (*Pin, error) {
	dir, err := unix.Openat(procFD, strconv.Itoa(pid), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(pidfd)
		return nil, fmt.Errorf("gate: open /proc/%d: %w", pid, goneErr(err))
	}
	// Whether the directory is the pidfd's process is proven by Verify
	// after the last read through it (step 3), not here.
	return &Pin{PID: pid, PidFD: pidfd, Dir: dir}, nil
}

// Verify reports (as nil) that the pinned process is still alive, so
// that everything read through Dir so far was its. It returns an error
// wrapping ESRCH otherwise.
func (p *Pin) Verify() error {
	if err := unix.PidfdSendSignal(p.PidFD, 0, nil, 0); err != nil && !errors.Is(err, unix.EPERM) {
		return fmt.Errorf("gate: pid %d: process gone: %w", p.PID, unix.ESRCH)
	}
	return nil
}

// Close releases both descriptors.
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

// goneErr maps the errors a vanished process produces in /proc to ESRCH.
func goneErr(err error) error {
	if errors.Is(err, unix.ENOENT) {
		return unix.ESRCH
	}
	return err
}

// readFile reads name under dirfd into buf (growing it up to max bytes)
// and returns the bytes read.
func readFile(dirfd int, name string, buf []byte, max int) ([]byte, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			if cap(buf) >= max {
				return buf, nil // truncated at max
			}
			nb := make([]byte, len(buf), min(max, 2*cap(buf)+512))
			copy(nb, buf)
			buf = nb
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return nil, err
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

// readLink reads the link name under dirfd.
func readLink(dirfd int, name string) (string, error) {
	var b [unix.PathMax]byte
	n, err := unix.Readlinkat(dirfd, name, b[:])
	if err != nil {
		return "", err
	}
	return string(b[:n]), nil
}
