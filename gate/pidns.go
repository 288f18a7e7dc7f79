package gate

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/policy"
	"github.com/procgate/procgate/procfs"
)

// callerNS is the pid namespace of a caller that lives below the gate's
// own (a container): its requests name processes by their pids in it,
// it is answered only for the processes it can see, and its answers read
// as its own procfs would show them. Decisions stay on the gate's
// identities (host pids).
//
// The kernel translates (NS_GET_PID_FROM_PIDNS, NS_GET_PID_IN_PIDNS,
// Linux 6.11); on an older kernel the gate builds a table of the
// caller's processes from its own procfs (scan mode). Either way a
// translation is never trusted by itself: the process it names is
// pinned, and the pinned process is proven, under the pin, to be the
// one the caller named (verify).
type callerNS struct {
	ns *procfs.PIDNS
	// level is how many levels below the gate's namespace the caller's
	// is (len(NSpid)-1 in the gate's procfs); at least 1.
	level int
	// tables is set in scan mode.
	tables *nsTables
}

// openCallerNS opens the pid namespace of the caller pinned by p, whose
// status (read under the pin) gave nspid. It returns nil when the caller
// is in the gate's own namespace: the fast path, with no translation.
func (g *Gate) openCallerNS(p *procfs.Pin, nspid []int) (*callerNS, error) {
	if len(nspid) <= 1 {
		return nil, nil
	}
	ns, err := procfs.OpenPIDNS(p.Dir)
	if err != nil {
		return nil, err
	}
	c := &callerNS{ns: ns, level: len(nspid) - 1}
	if !g.pidTranslation {
		c.tables = &nsTables{}
	}
	return c, nil
}

// close releases the namespace. A nil callerNS is a no-op.
func (c *callerNS) close() {
	if c != nil {
		c.ns.Close()
	}
}

// probePIDTranslation reports whether the kernel translates pids between
// namespaces: the gate's own pid must translate to itself.
func probePIDTranslation(root *procfs.Root) bool {
	dir, err := root.OpenDir("self")
	if err != nil {
		return false
	}
	defer unix.Close(dir)
	ns, err := procfs.OpenPIDNS(dir)
	if err != nil {
		return false
	}
	defer ns.Close()
	pid, err := ns.PIDOf(os.Getpid())
	return err == nil && pid == os.Getpid()
}

// errNotTheOne reports that the process pinned for a caller's pid is not
// the one the caller's namespace gives that pid (the pid was reused, or
// a table was stale).
var errNotTheOne = fmt.Errorf("the process pinned is not the one the caller's pid namespace names: %w", unix.ESRCH)

// nsRequest translates the pids of one request of a namespaced caller.
type nsRequest struct {
	c     *callerNS
	root  *procfs.Root
	start time.Time
}

// hostPID returns the gate's pid of the task the caller calls pid (a
// process or a thread). fresh asks for a translation made after the
// request started (scan mode: a table built since).
func (r *nsRequest) hostPID(pid int, fresh bool) (int, error) {
	if r.c.tables == nil {
		return r.c.ns.HostPID(pid)
	}
	t, err := r.table(fresh)
	if err != nil {
		return 0, err
	}
	if h, ok := t.host[pid]; ok {
		return h, nil
	}
	if !fresh && t.built.Before(r.start) {
		return r.hostPID(pid, true) // a miss in an older table: look again once
	}
	return 0, unix.ESRCH
}

// pidOf returns the caller's pid of the gate's task host, 0 when the
// caller cannot see it (or the kernel refuses to say: never a pid of the
// gate's namespace).
func (r *nsRequest) pidOf(host int) int {
	if r.c.tables == nil {
		p, err := r.c.ns.PIDOf(host)
		if err != nil {
			return 0
		}
		return p
	}
	t, err := r.table(false)
	if err != nil {
		return 0
	}
	return t.own[host]
}

// list returns the processes the caller can see: its pids and the
// gate's, ordered by its pids.
func (r *nsRequest) list() (pids, hosts []int, err error) {
	if r.c.tables != nil {
		t, err := r.table(true)
		if err != nil {
			return nil, nil, err
		}
		return t.pids, t.hosts, nil
	}
	all, err := r.root.ListPIDs()
	if err != nil {
		return nil, nil, fmt.Errorf("gate: %w", err)
	}
	type pair struct{ pid, host int }
	var seen []pair
	for _, h := range all {
		p, err := r.c.ns.PIDOf(h)
		switch {
		case err == nil:
			seen = append(seen, pair{p, h})
		case !errors.Is(err, unix.ESRCH):
			return nil, nil, fmt.Errorf("gate: list the caller's processes: %w", err)
		}
	}
	slices.SortFunc(seen, func(a, b pair) int { return a.pid - b.pid })
	pids, hosts = make([]int, len(seen)), make([]int, len(seen))
	for i, s := range seen {
		pids[i], hosts[i] = s.pid, s.host
	}
	return pids, hosts, nil
}

// verify proves, under the pin p of the process the gate read (its
// status st), that the caller's namespace calls it pid: its NSpid at the
// caller's level is pid, and that level's namespace is the caller's
// (sibling namespaces at one level number their processes from 1 too).
// It returns errNotTheOne otherwise.
func (r *nsRequest) verify(p *procfs.Pin, st *procfs.Status, pid int) error {
	lv := r.c.level
	if len(st.NSpid) <= lv || st.NSpid[lv] != pid {
		return errNotTheOne
	}
	if r.c.tables == nil {
		// The kernel's answer for the pinned process: it holds its pid
		// until the pin is verified after the last read.
		if got, err := r.c.ns.PIDOf(p.PID); err != nil || got != pid {
			return errNotTheOne
		}
		return nil
	}
	ok, err := inNamespace(p.Dir, len(st.NSpid)-1, r.c)
	if err != nil {
		return fmt.Errorf("%w (%v)", errNotTheOne, err)
	}
	if !ok {
		return errNotTheOne
	}
	return nil
}

// targetError restates, in the caller's numbering, why the process it
// calls pid is not answered: the errors of pinning and reading name the
// gate's pids, which the caller must never learn.
func (r *nsRequest) targetError(pid int, err error) error {
	var te *procfs.ThreadError
	if errors.As(err, &te) {
		if tgid := r.pidOf(te.TGID); tgid > 0 {
			return fmt.Errorf("gate: %w", &procfs.ThreadError{TID: pid, TGID: tgid})
		}
		return fmt.Errorf("gate: pid %d: %w", pid, unix.ESRCH)
	}
	switch {
	case errors.Is(err, errChanged):
		return fmt.Errorf("gate: pid %d: %w", pid, errChangedErr)
	case errors.Is(err, unix.ESRCH):
		return fmt.Errorf("gate: pid %d: %w", pid, unix.ESRCH)
	}
	var e unix.Errno
	if !errors.As(err, &e) {
		e = unix.EIO
	}
	return fmt.Errorf("gate: pid %d: %w", pid, e)
}

// pinInNS pins the process the caller calls pid, reads it and proves
// under the pin that it is that process (verify); host is its pid in the
// gate's namespace when the request's listing found it, 0 to translate.
// A pin that proves wrong is dropped and pid translated again, once.
// Every error names the caller's pid only.
func (g *Gate) pinInNS(r *nsRequest, pid, host int, buf []byte, lite bool, need policy.Needs) (*procfs.Pin, *procInfo, error) {
	for attempt := 0; ; attempt++ {
		if host == 0 {
			var err error
			if host, err = r.hostPID(pid, attempt > 0); err != nil {
				return nil, nil, r.targetError(pid, err)
			}
		}
		p, err := g.root.Pin(host)
		if err != nil {
			return nil, nil, r.targetError(pid, err)
		}
		pi, err := readProcInfo(p, g.mods, buf, lite, need)
		if err == nil {
			err = r.verify(p, &pi.st, pid)
		}
		if err == nil {
			return p, pi, nil
		}
		p.Close()
		if attempt > 0 || !errors.Is(err, errNotTheOne) {
			return nil, nil, r.targetError(pid, err)
		}
		host = 0
	}
}

// nsChunk rewrites the values answered in one chunk of a request of a
// namespaced caller. It remembers the translations it makes, and those
// of the chunk's targets, proven under their pins.
type nsChunk struct {
	r    *nsRequest
	memo map[int]int // gate's pid → caller's pid (0: invisible)
}

func newNSChunk(r *nsRequest) *nsChunk {
	if r == nil {
		return nil
	}
	return &nsChunk{r: r, memo: make(map[int]int)}
}

// pid maps a pid of the gate's namespace to the caller's.
func (k *nsChunk) pid(host int) int {
	p, ok := k.memo[host]
	if !ok {
		p = k.r.pidOf(host)
		k.memo[host] = p
	}
	return p
}

// value rewrites the pids in the value of item it read from t, as the
// caller's own procfs would show them: status, stat and stat_full,
// sched, and the fdinfo of pidfds. ids caches the target's NS* lists.
// Other items hold no pids of the gate's namespace.
func (k *nsChunk) value(t *target, it Item, ir *ItemResult, ids *procfs.NSIDs) error {
	m := procfs.PIDMap{Level: k.r.c.level, PID: k.pid}
	own := func() error {
		if ids.Pid != nil {
			return nil
		}
		var err error
		*ids, err = procfs.ParseNSIDs([]byte(t.status()))
		return err
	}
	switch it {
	case policy.ItemStatus:
		b, got, err := m.Status([]byte(ir.Text))
		if err != nil {
			return err
		}
		ir.Text, *ids = string(b), got
	case policy.ItemStat, policy.ItemStatFull:
		if err := own(); err != nil {
			return err
		}
		b, err := m.Stat([]byte(ir.Text), *ids)
		if err != nil {
			return err
		}
		ir.Text = string(b)
	case policy.ItemSched:
		if err := own(); err != nil {
			return err
		}
		ir.Text = string(m.Sched([]byte(ir.Text), *ids))
	case policy.ItemFdinfo:
		for i := range ir.Links {
			ir.Links[i].Target = string(m.FDInfo([]byte(ir.Links[i].Target)))
		}
	}
	return nil
}
