package privsep

import (
	"fmt"

	"github.com/procgate/procgate/gate"
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
		return g.NewThreadCaller(id.PID, id.UID, id.GID, id.Label)
	}
	closeFD(pidfd)
	return nil, fmt.Errorf("privsep: caller identity of unknown source %v", id.Source)
}
