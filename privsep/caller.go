package privsep

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/gate"
	"github.com/procgate/procgate/live"
)

// newCaller pins the caller id and reads its identity through g. It
// takes id.PidFD.
//
// A thread identity (FromThread) is resolved to the process the thread
// belongs to, which is pinned; the thread must then still belong to the
// pinned process and still carry the filesystem ids the kernel reported
// for it, or the caller is refused: a thread that exited, and whose id
// was reused, is never taken for the new holder of the id.
func newCaller(g *gate.Gate, id *Identity) (*gate.Caller, error) {
	pidfd := id.PidFD
	id.PidFD = -1
	switch id.Source {
	case FromSocket:
		return g.NewCaller(id.PID, pidfd, id.UID, id.GID, id.Label)
	case FromThread:
		closeFD(pidfd)
		return threadCaller(g, id.PID, id.UID, id.GID)
	}
	closeFD(pidfd)
	return nil, fmt.Errorf("privsep: caller identity of unknown source %v", id.Source)
}

// threadCaller resolves thread tid to its process, pins the process and
// checks that tid is still one of its threads with filesystem ids uid
// and gid.
func threadCaller(g *gate.Gate, tid int, uid, gid uint32) (*gate.Caller, error) {
	if tid <= 0 {
		return nil, fmt.Errorf("privsep: caller thread %d is not visible in this pid namespace: %w", tid, unix.ESRCH)
	}
	st, err := threadStatus("/proc/"+strconv.Itoa(tid)+"/status", tid)
	if err != nil {
		return nil, err
	}
	c, err := g.NewCaller(st.Tgid, -1, uid, gid, "")
	if err != nil {
		return nil, err
	}
	// Read through the process's directory, then check the pin: the
	// thread read is then the pinned process's.
	st2, err := threadStatus("/proc/"+strconv.Itoa(st.Tgid)+"/task/"+strconv.Itoa(tid)+"/status", tid)
	if err == nil {
		err = c.Alive()
	}
	if err == nil && (st2.Tgid != st.Tgid || st2.UIDs[3] != uid || st2.GIDs[3] != gid) {
		err = fmt.Errorf("privsep: caller thread %d: its process or filesystem ids (%d/%d) differ from the request's (%d/%d): %w",
			tid, st2.UIDs[3], st2.GIDs[3], uid, gid, unix.EAGAIN)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// threadStatus reads and parses a thread's status file; a thread that
// does not exist is ESRCH.
func threadStatus(path string, tid int) (live.Status, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH) {
			err = unix.ESRCH
		}
		return live.Status{}, fmt.Errorf("privsep: caller thread %d: %w", tid, err)
	}
	st, err := live.ParseStatus(b)
	if err != nil {
		return live.Status{}, fmt.Errorf("privsep: caller thread %d: %w", tid, err)
	}
	return st, nil
}
