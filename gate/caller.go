package gate

import (
	"fmt"
	"strconv"
	"sync/atomic"

	"github.com/procgate/procgate/policy"
	"github.com/procgate/procgate/procfs"
	"golang.org/x/sys/unix"
)

// Caller is a connected client: pinned, with its identity as the policy
// sees it.
type Caller struct {
	pin  *procfs.Pin
	info *procInfo
	subj policy.Subject
	// ns is the caller's pid namespace when it is not the gate's own
	// (nil: the gate's, no translation).
	ns *callerNS
	// cache holds the caller's cached views until Close.
	cache atomic.Pointer[viewCache]
	// task is "task/<tid>" for a caller known by a thread other than its
	// main one (NewThreadCaller), which must still be one of its threads.
	task string
	// ownTID is that thread's id as its own pid namespace numbers it (0
	// for a caller known by its process).
	ownTID int
}

// NewCaller pins the caller pid (with pidfd from SO_PEERPIDFD when it is
// >= 0, which NewCaller then owns) and reads its identity. uid and gid are
// the socket's peer credentials, label its SO_PEERSEC label ("" if none).
// pid must be a process; a thread id is refused (see NewThreadCaller).
func (g *Gate) NewCaller(pid, pidfd int, uid, gid uint32, label string) (*Caller, error) {
	var p *procfs.Pin
	var err error
	if pidfd >= 0 {
		p, err = g.root.PinPidfd(pid, pidfd)
	} else {
		p, err = g.root.Pin(pid)
	}
	if err != nil {
		return nil, fmt.Errorf("gate: caller: %w", err)
	}
	return g.newCaller(p, uid, gid, label)
}

// NewThreadCaller is NewCaller for a caller known by the id of one of its
// threads (a FUSE request names the thread that made it): it pins the
// process tid belongs to, which is then the caller. uid and gid are the
// credentials the request carries — the thread's filesystem ids — and
// label its security label ("" if none). The thread must still belong to
// the pinned process and still carry those ids, or the caller is refused
// (EAGAIN): a thread that exited, and whose id was reused, is never taken
// for the new holder of the id.
func (g *Gate) NewThreadCaller(tid int, uid, gid uint32, label string) (*Caller, error) {
	p, err := g.root.PinProcessOf(tid)
	if err != nil {
		return nil, fmt.Errorf("gate: caller: %w", err)
	}
	var buf [4096]byte
	b, err := procfs.ReadFile(p.Dir, "task/"+strconv.Itoa(tid)+"/status", buf[:0], len(buf))
	var st procfs.Status
	if err == nil {
		st, err = procfs.ParseStatus(b)
	}
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("gate: caller thread %d: %w", tid, procfs.Gone(err))
	}
	if st.Pid != tid || st.UIDs[3] != uid || st.GIDs[3] != gid {
		p.Close()
		return nil, fmt.Errorf("gate: caller thread %d: its filesystem ids %d/%d differ from the request's %d/%d: %w",
			tid, st.UIDs[3], st.GIDs[3], uid, gid, unix.EAGAIN)
	}
	// newCaller verifies the pin after its reads, which proves the
	// thread's status was read from the pinned process.
	c, err := g.newCaller(p, uid, gid, label)
	if err != nil {
		return nil, err
	}
	if tid != p.PID {
		c.task = "task/" + strconv.Itoa(tid)
	}
	c.ownTID = tid
	if len(st.NSpid) > 1 {
		c.ownTID = st.NSpid[len(st.NSpid)-1]
	}
	return c, nil
}

// newCaller reads the identity of the caller pinned by p, which it owns.
func (g *Gate) newCaller(p *procfs.Pin, uid, gid uint32, label string) (*Caller, error) {
	bp := g.bufs.Get().(*[]byte)
	defer g.bufs.Put(bp)
	pi, err := readProcInfo(p, g.mods, *bp, false, allNeeds)
	var ns *callerNS
	if err == nil {
		ns, err = g.openCallerNS(p, pi.st.NSpid)
	}
	if err == nil {
		err = p.Verify()
	}
	if err != nil {
		ns.close()
		p.Close()
		return nil, fmt.Errorf("gate: caller: %w", err)
	}
	c := &Caller{pin: p, info: pi, subj: pi.subject(uid, gid), ns: ns}
	g.cache.ref(pi.key)
	c.cache.Store(g.cache)
	if label = procfs.ParseLabel([]byte(label)); label != "" {
		switch {
		case g.mods.selinux:
			c.subj.SELinux = label
		case g.mods.apparmor:
			c.subj.AppArmor = label
		}
	}
	return c, nil
}

// Subject returns the caller as the policy sees it.
func (c *Caller) Subject() policy.Subject { return c.subj }

// PID returns the caller's pid in the gate's pid namespace.
func (c *Caller) PID() int { return c.pin.PID }

// OwnPID returns the caller's pid as its own pid namespace numbers it
// (the last of its NSpid): what it is told about itself.
func (c *Caller) OwnPID() int {
	if nspid := c.info.st.NSpid; len(nspid) > 1 {
		return nspid[len(nspid)-1]
	}
	return c.pin.PID
}

// OwnTID returns the id of the thread the caller was known by
// (NewThreadCaller) as its own pid namespace numbers it, 0 for a caller
// known by its process.
func (c *Caller) OwnTID() int { return c.ownTID }

// Alive returns nil while the pinned caller is alive and, for a caller
// known by one of its threads, while that thread is still one of its
// own: a thread id is unique while the thread lives, so an id that
// another process took over after the thread exited is never answered
// as this caller.
func (c *Caller) Alive() error {
	if err := c.pin.Verify(); err != nil {
		return err
	}
	if c.task != "" {
		if err := unix.Faccessat(c.pin.Dir, c.task, unix.F_OK, 0); err != nil {
			return fmt.Errorf("gate: caller thread %s: %w", c.task, procfs.Gone(err))
		}
	}
	return nil
}

// Close releases the caller's pin (and pid namespace) and, with the
// caller's last connection, its cached views.
func (c *Caller) Close() {
	c.pin.Close()
	c.ns.close()
	if vc := c.cache.Swap(nil); vc != nil {
		vc.unref(c.info.key)
	}
}
