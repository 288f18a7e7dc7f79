package gate

import (
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/procfs"
)

// The scan mode: on a kernel without pid translation ioctls (before
// Linux 6.11), the processes a caller's namespace can see are found by
// scanning the gate's procfs, and a pinned process is proven to be in
// the caller's namespace by walking up from its own (NS_GET_PARENT).

// inNamespace reports whether the process whose /proc directory is dir,
// depth levels below the gate's namespace, lives in c's namespace or
// below it, at c's level: its own namespace is c's, or c's namespace is
// its ancestor depth-c.level levels up.
func inNamespace(dir, depth int, c *callerNS) (bool, error) {
	if depth < c.level {
		return false, nil
	}
	if depth == c.level {
		l, err := procfs.ReadLink(dir, "ns/pid")
		if err != nil {
			return false, procfs.Gone(err)
		}
		ino, err := procfs.ParseNSLink([]byte(l), "pid")
		// The caller's namespace is held open: its inode number is its own.
		return err == nil && ino == c.ns.Ino(), err
	}
	ns, err := procfs.OpenPIDNS(dir)
	if err != nil {
		return false, err
	}
	defer ns.Close()
	levels, ok, err := ns.Below(c.ns)
	return ok && levels == depth-c.level, err
}

// nsTableTTL is how long a scan-mode table serves lookups; a miss in a
// table built before the request started builds a new one, once per
// request.
const nsTableTTL = time.Second

// nsTables holds the caller's latest scan-mode table.
type nsTables struct {
	mu  sync.Mutex
	cur *nsTable
}

// nsTable maps the processes a caller's namespace can see, built by
// scanning the gate's procfs: a hint, verified under each pin.
type nsTable struct {
	built       time.Time
	host        map[int]int // caller's pid → gate's
	own         map[int]int // gate's pid → caller's
	pids, hosts []int       // the processes, ordered by the caller's pids
}

// table returns the caller's table: one built since the request started
// when fresh, else one at most nsTableTTL old.
func (r *nsRequest) table(fresh bool) (*nsTable, error) {
	ts := r.c.tables
	ts.mu.Lock()
	defer ts.mu.Unlock()
	since := r.start.Add(-nsTableTTL)
	if fresh {
		since = r.start
	}
	if ts.cur != nil && !ts.cur.built.Before(since) {
		return ts.cur, nil
	}
	t, err := buildTable(r.root, r.c)
	if err != nil {
		return nil, err
	}
	ts.cur = t
	return t, nil
}

// buildTable scans the gate's procfs for the processes c's namespace
// can see: those with an NSpid entry at c's level whose namespace at
// that level is c's (identity, not the level: compared by inode while
// both namespaces are held open).
func buildTable(root *procfs.Root, c *callerNS) (*nsTable, error) {
	t := &nsTable{built: time.Now(), host: map[int]int{}, own: map[int]int{}}
	all, err := root.ListPIDs()
	if err != nil {
		return nil, fmt.Errorf("gate: %w", err)
	}
	// Verdicts per innermost namespace, each held open while the scan
	// runs so that no other namespace can take its inode number.
	seen := map[uint64]bool{}
	var held []*procfs.PIDNS
	defer func() {
		for _, n := range held {
			n.Close()
		}
	}()
	buf := make([]byte, 0, 4096)
	for _, h := range all {
		dir, err := root.OpenDir(strconv.Itoa(h))
		if err != nil {
			continue // exited
		}
		pid, ok := scanOne(dir, c, buf, seen, &held)
		unix.Close(dir)
		if ok {
			t.host[pid], t.own[h] = h, pid
			t.pids = append(t.pids, pid)
		}
	}
	slices.Sort(t.pids)
	t.hosts = make([]int, len(t.pids))
	for i, p := range t.pids {
		t.hosts[i] = t.host[p]
	}
	return t, nil
}

// scanOne returns the caller's pid of the process whose /proc directory
// is dir, when c's namespace can see it.
func scanOne(dir int, c *callerNS, buf []byte, seen map[uint64]bool, held *[]*procfs.PIDNS) (int, bool) {
	b, err := procfs.ReadFile(dir, "status", buf, 1<<16)
	if err != nil {
		return 0, false
	}
	ids, err := procfs.ParseNSIDs(b)
	if err != nil || len(ids.Pid) <= c.level {
		return 0, false
	}
	depth := len(ids.Pid) - 1
	if depth == c.level {
		ok, _ := inNamespace(dir, depth, c)
		return ids.Pid[c.level], ok
	}
	ns, err := procfs.OpenPIDNS(dir)
	if err != nil {
		return 0, false
	}
	ok, known := seen[ns.Ino()]
	if known {
		ns.Close()
	} else {
		levels, below, _ := ns.Below(c.ns)
		ok = below && levels == depth-c.level
		seen[ns.Ino()] = ok
		*held = append(*held, ns)
	}
	return ids.Pid[c.level], ok
}
