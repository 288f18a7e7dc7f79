package privsep

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"golang.org/x/sys/unix"
)

// Source says how a caller's identity was obtained, and so what the
// reader can verify of it by itself.
type Source uint8

// The sources of an identity.
const (
	// FromSocket: the peer credentials of a connected Unix socket
	// (SO_PEERCRED at connect time, SO_PEERPIDFD to pin the peer,
	// SO_PEERSEC for its label). The socket travels with the identity, so
	// a privilege-separated reader reads them again itself.
	FromSocket Source = iota + 1
	// FromThread: a thread id with the uid and gid the kernel reported
	// for it (a FUSE request carries the requesting thread's id, fsuid and
	// fsgid, and nothing else). The thread is resolved to its process,
	// which is pinned; the process must still hold that thread and the
	// thread those ids, else the caller is refused.
	FromThread
)

// String names the source for logs and whoami.
func (s Source) String() string {
	switch s {
	case FromSocket:
		return "socket"
	case FromThread:
		return "thread"
	}
	return fmt.Sprintf("source(%d)", uint8(s))
}

// Identity is a caller as a front observed it: who asked, and how that
// is known. Fronts build it (a socket's peer credentials, a FUSE
// request's header) and hand it to a [Backend], which pins the caller
// and reads the rest of its identity (groups, capabilities, labels,
// executable) itself.
type Identity struct {
	Source Source
	// PID is the caller's process (FromSocket) or thread (FromThread)
	// id, in the front's pid namespace.
	PID int
	// PidFD pins the process when the kernel gave one (SO_PEERPIDFD,
	// Linux 6.5+), -1 otherwise. The backend that receives the identity
	// owns it.
	PidFD int
	// UID and GID are the ids the kernel reported: the peer's effective
	// ids at connect time (FromSocket), the thread's filesystem ids
	// (FromThread).
	UID, GID uint32
	// Label is the SO_PEERSEC security label, "" when none or unknown.
	Label string
	// Conn is the caller's connection (FromSocket): a privilege-separated
	// reader is passed this socket and reads the credentials again from
	// it rather than taking the front's word.
	Conn *net.UnixConn
}

// Close releases the identity's pidfd if it still holds one.
func (id *Identity) Close() {
	closeFD(id.PidFD)
	id.PidFD = -1
}

// PeerOf reads the identity of the peer of a Unix socket connection:
// SO_PEERCRED (pid, uid, gid at connect time), SO_PEERPIDFD to pin the
// peer, SO_PEERSEC for its LSM label. A peer whose pid this pid
// namespace cannot see (pid 0) is refused with ESRCH.
func PeerOf(c *net.UnixConn) (Identity, error) {
	id := Identity{Source: FromSocket, PidFD: -1, Conn: c}
	rc, err := c.SyscallConn()
	if err != nil {
		return id, fmt.Errorf("privsep: peer credentials: %w", err)
	}
	var serr error
	cerr := rc.Control(func(fd uintptr) { serr = peerOfFD(int(fd), &id) })
	if cerr != nil {
		return id, fmt.Errorf("privsep: peer credentials: %w", cerr)
	}
	if serr == nil && id.PID <= 0 {
		serr = fmt.Errorf("the peer's pid is not visible in this pid namespace: %w", unix.ESRCH)
	}
	if serr != nil {
		id.Close()
		return id, fmt.Errorf("privsep: peer credentials: %w", serr)
	}
	return id, nil
}

// peerOfFD fills id from the socket fd's peer credentials.
func peerOfFD(fd int, id *Identity) error {
	uc, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return fmt.Errorf("SO_PEERCRED: %w", err)
	}
	id.PID, id.UID, id.GID = int(uc.Pid), uc.Uid, uc.Gid
	if pfd, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PEERPIDFD); err == nil {
		id.PidFD = pfd
		unix.CloseOnExec(pfd)
	} else if !errors.Is(err, unix.ENOPROTOOPT) && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("SO_PEERPIDFD: %w", err)
	}
	if l, err := unix.GetsockoptString(fd, unix.SOL_SOCKET, unix.SO_PEERSEC); err == nil {
		id.Label = strings.TrimRight(l, "\x00\n")
	}
	return nil
}

// closeFD closes fd when it is valid.
func closeFD(fd int) {
	if fd >= 0 {
		unix.Close(fd)
	}
}
