package broker

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"golang.org/x/sys/unix"
)

// Peer is a socket peer's identity as the kernel reports it.
type Peer struct {
	PID      int
	UID, GID uint32
	// PidFD is the SO_PEERPIDFD descriptor (Linux 6.5+), -1 when the
	// kernel does not offer it.
	PidFD int
	// Label is the SO_PEERSEC security label, "" when none.
	Label string
}

// PeerOf reads the peer credentials of a Unix socket connection:
// SO_PEERCRED (pid, uid, gid at connect time), SO_PEERPIDFD to pin the
// peer, SO_PEERSEC for its LSM label.
func PeerOf(c *net.UnixConn) (Peer, error) {
	p := Peer{PidFD: -1}
	rc, err := c.SyscallConn()
	if err != nil {
		return p, fmt.Errorf("broker: peer credentials: %w", err)
	}
	var serr error
	cerr := rc.Control(func(fd uintptr) {
		uc, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if err != nil {
			serr = fmt.Errorf("SO_PEERCRED: %w", err)
			return
		}
		p.PID, p.UID, p.GID = int(uc.Pid), uc.Uid, uc.Gid
		if pfd, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PEERPIDFD); err == nil {
			p.PidFD = pfd
			unix.CloseOnExec(pfd)
		} else if !errors.Is(err, unix.ENOPROTOOPT) && !errors.Is(err, unix.EINVAL) {
			serr = fmt.Errorf("SO_PEERPIDFD: %w", err)
			return
		}
		if l, err := unix.GetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_PEERSEC); err == nil {
			p.Label = strings.TrimRight(l, "\x00\n")
		}
	})
	if cerr != nil {
		return p, fmt.Errorf("broker: peer credentials: %w", cerr)
	}
	if serr != nil {
		if p.PidFD >= 0 {
			unix.Close(p.PidFD)
		}
		return p, fmt.Errorf("broker: peer credentials: %w", serr)
	}
	if p.PID <= 0 {
		if p.PidFD >= 0 {
			unix.Close(p.PidFD)
		}
		return p, fmt.Errorf("broker: peer credentials: the peer's pid is not visible in this pid namespace: %w", unix.ESRCH)
	}
	return p, nil
}
