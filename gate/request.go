package gate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/policy"
	"github.com/procgate/procgate/procfs"
	"golang.org/x/sys/unix"
)

// Request is a batch: processes × items.
type Request struct {
	// PIDs lists the processes, by their pids in the caller's pid
	// namespace; All selects every process the caller's namespace can
	// see instead.
	PIDs []int
	All  bool
	// Items lists the items wanted of each process.
	Items []Item
	// Mem lists the ranges read for the mem item.
	Mem []MemRange
	// Binary asks for the answer in binary records (ProcResult.AppendBinary),
	// which carry values byte for byte, instead of JSON lines.
	Binary bool
	// TID, with exactly one pid, asks for one thread of that process
	// (its task/<tid>/ entries), named as the caller's pid namespace
	// names it. The decision is the process's: threads share their
	// process's credentials and mm (a thread that changed its own
	// credentials with a raw setuid system call is decided as its
	// process).
	TID int
	// Threads asks for the process's thread ids (ProcResult.Threads),
	// as the caller's namespace names them: task/ is listed by the
	// kernel to anyone who may list the process directory.
	Threads bool
}

// chunk is how many processes one worker pins at a time.
const chunk = 32

// ErrCallerGone is returned when the caller exits during a request.
var ErrCallerGone = fmt.Errorf("gate: caller exited during the request: %w", unix.ESRCH)

// Read answers req for caller c, calling emit once per process (from one
// goroutine at a time, in no particular order). The whole request is
// decided with one policy. A caller in another pid namespace than the
// gate's names processes, and is answered, in its own numbering (see
// ProcResult.PID). It returns ErrCallerGone when the caller exits, the
// error of emit, or ctx's error.
func (g *Gate) Read(ctx context.Context, c *Caller, req *Request) func(emit func(*ProcResult) error) error {
	return func(emit func(*ProcResult) error) error {
		return g.read(ctx, c, req, emit)
	}
}

func (g *Gate) read(ctx context.Context, c *Caller, req *Request, emit func(*ProcResult) error) error {
	if err := c.Alive(); err != nil {
		return ErrCallerGone
	}
	pol := g.Policy() // one policy for the whole request
	var nr *nsRequest
	if c.ns != nil {
		nr = &nsRequest{c: c.ns, root: g.root, start: time.Now()}
	}
	pids := req.PIDs
	var hosts []int // the gate's pids of a namespaced caller's listing
	if req.All {
		var err error
		if nr != nil {
			pids, hosts, err = nr.list()
		} else {
			pids, err = g.listPIDs()
		}
		if err != nil {
			return err
		}
	}
	if len(pids) > 0 && len(pids) <= chunk {
		// One chunk: read it in this goroutine.
		return g.readOne(ctx, c, pol, req, work{pids, hosts, nr}, emit)
	}
	var emitMu sync.Mutex
	var firstErr error
	var errOnce sync.Once
	fail := func(err error) { errOnce.Do(func() { firstErr = err }) }
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	// The gate-wide bound (g.sem) is held only while a chunk is read, never
	// while its results wait to be written: a client that stops reading
	// its answer must not hold up everyone else's reads. The request's own
	// window bounds how many chunks it has read but not yet written.
	window := make(chan struct{}, 2*cap(g.sem))
	for start := 0; start < len(pids); start += chunk {
		part := work{pids: pids[start:min(start+chunk, len(pids))], ns: nr}
		if hosts != nil {
			part.hosts = hosts[start : start+len(part.pids)]
		}
		select {
		case window <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			if firstErr != nil {
				return firstErr
			}
			return ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-window }()
			release, err := g.worker(ctx, c)
			if err != nil {
				return
			}
			if ctx.Err() != nil {
				release()
				return
			}
			results, err := g.readChunk(c, pol, req, part)
			release()
			if err != nil {
				fail(err)
				cancel()
				return
			}
			emitMu.Lock()
			defer emitMu.Unlock()
			for i := range results {
				if ctx.Err() != nil {
					return
				}
				if err := emit(&results[i]); err != nil {
					fail(err)
					cancel()
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if err := c.Alive(); err != nil {
		return ErrCallerGone
	}
	return ctx.Err()
}

// work is a chunk of a request's processes: the pids as the caller
// names them and, for a caller in another pid namespace (ns), the gate's
// pids when its listing found them (hosts, else nil: translate).
type work struct {
	pids, hosts []int
	ns          *nsRequest
}

// readOne answers a request of at most one chunk of processes, with the
// same bound on concurrent work as read.
func (g *Gate) readOne(ctx context.Context, c *Caller, pol Policy, req *Request, w work, emit func(*ProcResult) error) error {
	release, err := g.worker(ctx, c)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		release()
		return err
	}
	results, err := g.readChunk(c, pol, req, w)
	release()
	if err != nil {
		return err
	}
	for i := range results {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := emit(&results[i]); err != nil {
			return err
		}
	}
	if err := c.Alive(); err != nil {
		return ErrCallerGone
	}
	return ctx.Err()
}

// listPIDs lists the processes of the gate's procfs.
func (g *Gate) listPIDs() ([]int, error) {
	pids, err := g.root.ListPIDs()
	if err != nil {
		return nil, fmt.Errorf("gate: %w", err)
	}
	return pids, nil
}

// target is one process being answered.
type target struct {
	pin  *procfs.Pin
	info *procInfo
	view *View
	err  error
	// task, for a request of one thread (Request.TID), is an O_PATH
	// descriptor of the thread's task/<tid> directory under the pin
	// (0: the process itself), and taskStatus the thread's status.
	task       int
	taskStatus string
}

// dir returns the directory the target's items are read in: the
// thread's, for a request of one thread, else the process's.
func (t *target) dir() int {
	if t.task > 0 {
		return t.task
	}
	return t.pin.Dir
}

// status returns the status text of what is answered: the thread's or
// the process's.
func (t *target) status() string {
	if t.task > 0 {
		return t.taskStatus
	}
	return t.info.statusRaw
}

// openTask opens the thread host (the gate's tid) of the pinned target
// for a request of one thread. A thread that is not the process's is
// ESRCH.
func (t *target) openTask(host int, buf []byte) error {
	name := "task/" + strconv.Itoa(host)
	fd, err := unix.Openat(t.pin.Dir, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("gate: thread %d of process %d: %w", host, t.pin.PID, procfs.Gone(err))
	}
	b, err := procfs.ReadFile(fd, "status", buf, 64<<10)
	if err != nil {
		unix.Close(fd)
		return fmt.Errorf("gate: thread %d of process %d: %w", host, t.pin.PID, procfs.Gone(err))
	}
	t.task, t.taskStatus = fd, string(b)
	return nil
}

// readChunk pins, decides and reads a few processes, and writes out
// their audit records: an answer never leaves before its record.
func (g *Gate) readChunk(c *Caller, pol Policy, req *Request, w work) ([]ProcResult, error) {
	mark := g.audit.mark()
	bp := g.bufs.Get().(*[]byte)
	defer g.bufs.Put(bp)
	pids := w.pids
	ts := make([]target, len(pids))
	defer func() {
		for i := range ts {
			ts[i].pin.Close()
			if ts[i].task > 0 {
				unix.Close(ts[i].task)
			}
		}
	}()
	var miss []int
	plain := g.plainRequest(c, pol, req)
	need := targetNeeds(pol)
	nk := newNSChunk(w.ns)
	for i, pid := range pids {
		t := &ts[i]
		if w.ns != nil {
			host := 0
			if w.hosts != nil {
				host = w.hosts[i]
			}
			t.pin, t.info, t.err = g.pinInNS(w.ns, pid, host, *bp, plain, need)
			if t.err != nil {
				continue
			}
			nk.memo[t.pin.PID] = pid
		} else {
			t.pin, t.err = g.root.Pin(pid)
			if t.err != nil {
				t.err = fmt.Errorf("gate: %w", t.err)
				continue
			}
			t.info, t.err = readProcInfo(t.pin, g.mods, *bp, plain, need)
			if t.err != nil {
				continue
			}
		}
		if req.TID != 0 {
			host := req.TID
			if w.ns != nil {
				if host, t.err = w.ns.hostPID(req.TID, false); t.err != nil {
					t.err = fmt.Errorf("gate: thread %d: %w", req.TID, t.err)
					continue
				}
			}
			if t.err = t.openTask(host, *bp); t.err != nil {
				continue
			}
		}
		if plain {
			// Every item is one the kernel gives any caller: no model.
			t.view = plainView
			continue
		}
		t.view = g.cache.get(pairKey{c.info.key, t.info.key})
		if t.view == nil {
			miss = append(miss, i)
		}
	}
	if len(miss) > 0 {
		infos := make([]*procInfo, len(miss))
		for j, i := range miss {
			infos[j] = ts[i].info
		}
		g.cache.reads.Add(1)
		stamp := g.cache.now()
		views, errs, err := g.buildViews(c.info, infos)
		if err != nil {
			if c.Alive() != nil {
				return nil, ErrCallerGone
			}
			if errors.Is(err, unix.EAGAIN) {
				return nil, fmt.Errorf("gate: the caller's credentials changed during the request: %w", unix.EAGAIN)
			}
			return nil, err
		}
		for j, i := range miss {
			if errs[j] != nil {
				ts[i].err = errs[j]
				if w.ns != nil {
					ts[i].err = w.ns.targetError(pids[i], errs[j])
				}
				continue
			}
			ts[i].view = views[j]
			g.cache.put(pairKey{c.info.key, ts[i].info.key}, views[j], stamp)
		}
	}
	out := make([]ProcResult, len(pids))
	for i := range ts {
		out[i] = g.answer(c, pol, req, &ts[i], pids[i], nk, bp)
	}
	if err := g.audit.flushSince(mark); err != nil {
		return nil, err
	}
	return out, nil
}

// plainView stands for the model's view when every requested item is
// plain: the kernel lets any caller read it (see itemCheck.plain).
var plainView = func() *View {
	v := &View{Kernel: make([]KernelAnswer, numItems), MAC: make([]MACAnswer, numItems)}
	for i := range numItems {
		if checks[i].plain {
			v.Kernel[i] = KernelAnswer{Allowed: true, Masked: checks[i].read.kind == kindStat, Layer: kernel.LayerDAC}
		} else {
			v.Kernel[i] = KernelAnswer{Errno: kernel.EACCES, Layer: kernel.LayerEntry}
			v.MAC[i] = MACAnswer{Denied: true, Reason: "not evaluated"}
		}
	}
	return v
}()

// plainRequest reports whether req asks only for plain items, so that
// targets need no model: the kernel allows them to every caller, and stat
// is served masked. When the policy could unmask stat (it grants
// stat_full), the model is needed after all.
func (g *Gate) plainRequest(c *Caller, pol Policy, req *Request) bool {
	if !g.hidepidOff {
		return false
	}
	for _, it := range req.Items {
		if !it.Valid() || !checks[it].plain {
			return false
		}
		if it == policy.ItemStat {
			any := policy.Target{}
			if pol.Decide(&c.subj, &any, 0, policy.ItemStatFull).Allowed {
				return false
			}
		}
	}
	return true
}

// answer decides and reads every item of one pinned process, then
// verifies the pin: if the process died meanwhile, nothing read is
// returned. pid is the process as the caller names it; nk, for a caller
// in another pid namespace, rewrites the pids in the values read.
func (g *Gate) answer(c *Caller, pol Policy, req *Request, t *target, pid int, nk *nsChunk, bp *[]byte) ProcResult {
	r := ProcResult{PID: pid}
	if t.err != nil {
		r.Denial = denialOf(t.err)
		return r
	}
	pi := t.info
	r.Start, r.Comm, r.UID = pi.start, pi.st.Name, pi.st.UIDs[1]
	dumpable := t.view.Dumpable
	if t.view == plainView {
		dumpable = pi.dumpableHint()
	}
	r.OwnerUID, r.OwnerGID = pi.key.ownUID, pi.key.ownGID // as the kernel owns its directory
	r.ID = t.pin.ID()
	if req.Threads {
		r.Threads = g.threads(t, nk)
	}
	tg := pi.target(dumpable)
	if g.protected(pi.st.Pid) { // the gate's pid, whatever the caller's numbering
		v := *t.view // views are shared
		v.Protected = true
		t.view = &v
	}
	var rel policy.Relation
	if t.view.Descendant {
		rel |= policy.RelDescendant
	}
	s := &c.subj
	var ids procfs.NSIDs // the target's NS* lists, for nk
	r.Items = make([]ItemResult, len(req.Items))
	for i, it := range req.Items {
		ir := &r.Items[i]
		ir.Item = it
		vd := g.decide(pol, s, &tg, rel, t.view, it)
		if !vd.Allowed {
			ir.Denial = &Denial{Errno: syscall.Errno(vd.Errno), Reason: vd.Reason}
			continue
		}
		ir.Masked = vd.Masked
		err := g.readItem(c, t, it, vd.Masked, req.Mem, ir, bp)
		if err == nil && nk != nil {
			if err = nk.value(t, it, ir, &ids); err != nil {
				*ir = ItemResult{Item: it}
				err = fmt.Errorf("%s: cannot show it in the caller's pid namespace: %w", it, unix.EIO)
			}
		}
		if err != nil {
			ir.Denial = denialOf(err)
			g.metrics.decision(false, SourceBroker, it)
		}
	}
	if err := t.pin.Verify(); err != nil {
		return ProcResult{PID: pid, Denial: &Denial{Errno: unix.ESRCH, Reason: "the process exited during the request"}}
	}
	return r
}

// threads lists the target's threads as the caller names them (nk, for a
// caller in another pid namespace; a thread it cannot name is left out).
func (g *Gate) threads(t *target, nk *nsChunk) []int {
	names, err := procfs.ReadDirNames(t.pin.Dir, "task")
	if err != nil {
		return nil
	}
	out := make([]int, 0, len(names))
	for _, n := range names {
		tid, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		if nk != nil {
			if tid = nk.r.pidOf(tid); tid == 0 {
				continue
			}
		}
		out = append(out, tid)
	}
	slices.Sort(out)
	return out
}

// protected reports whether pid is one of the daemon's own processes.
func (g *Gate) protected(pid int) bool {
	return slices.Contains(g.cfg.Protect, pid)
}

// decide is Decide with the gate's metrics and audit records.
func (g *Gate) decide(pol Policy, s *policy.Subject, t *policy.Target, rel policy.Relation, v *View, it Item) Verdict {
	vd := Decide(pol, s, t, rel, v, it)
	if !it.Valid() {
		return vd // counted nowhere: no such item
	}
	g.metrics.decision(vd.Allowed, vd.Source, it)
	if vd.Source == SourcePolicy {
		g.metrics.ruleDecision(pol, vd.Rule, vd.Allowed)
	}
	if !vd.Allowed {
		if vd.Audit {
			g.metrics.denialsAudited.Add(1)
		} else {
			g.metrics.denialsHidden.Add(1)
		}
	}
	// Audited grants (AuditConfig.Grants): every grant beyond what the
	// kernel gives the caller, as if an auditallow rule asked for it.
	grant := !vd.Audit && vd.Allowed && g.audit.grants() && beyondKernel(v, it, vd)
	if (vd.Audit || grant) && g.audit != nil {
		ev := &AuditEvent{
			Time: time.Now(), Granted: vd.Allowed, Item: it,
			PID: s.PID, Comm: s.Comm, UID: s.UID, SContext: firstNonEmpty(s.SELinux, s.AppArmor),
			TPID: t.PID, TComm: t.Comm, TUID: t.UID, TContext: firstNonEmpty(t.SELinux, t.AppArmor),
			Generation: pol.Generation(),
		}
		// The deciding rule is looked up (the policy's slow path) only
		// for a record that is written, not for one the rate limit
		// suppresses.
		g.audit.record(ev, func(ev *AuditEvent) {
			ruleItem := it
			if it == policy.ItemStat && grant && vd.Source != SourcePolicy {
				ruleItem = policy.ItemStatFull // stat unmasked: stat_full's rule
			}
			ev.Rule, ev.Reason = ruleOf(pol, s, t, rel, ruleItem)
			if !vd.Allowed && vd.Source != SourcePolicy {
				ev.Reason = vd.Reason
			}
		})
	}
	return vd
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
