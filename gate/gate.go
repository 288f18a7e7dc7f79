package gate

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/live"
	"github.com/procgate/procgate/policy"
	"github.com/procgate/procgate/procfs"
)

// Config configures a Gate.
type Config struct {
	// Policy is the policy to start with; required.
	Policy Policy
	// Audit receives audited decisions; nil disables audit records.
	Audit *Auditor
	// Metrics receives counters; nil allocates fresh ones.
	Metrics *Metrics
	// ReadTimeout bounds each read of a file that takes the target's
	// mmap lock (cmdline, environ, maps, smaps…); default 2s.
	ReadTimeout time.Duration
	// MaxStuckReads bounds the reads past their deadline still blocked
	// in the kernel; when reached, further mmap-lock reads are refused
	// with EBUSY. Default 64.
	MaxStuckReads int
	// Stall bounds what a target that stops answering can cost other
	// callers and other targets: reads per target and per caller uid,
	// workers per caller uid, and the breaker's back-off.
	Stall StallLimits
	// MaxValue bounds one item's value in bytes; default 4 MiB.
	MaxValue int
	// Workers bounds how many processes the gate works on at once across
	// all requests; default 4×GOMAXPROCS.
	Workers int
	// CacheTTL is how long the model's views are reused before kernel
	// settings are read again; default 10s.
	CacheTTL time.Duration
	// Live are the options for reading the model's world. Its Proc (""
	// means /proc) is also where the gate pins processes and reads the
	// procfs mount's options (Proc/self/mountinfo), and its Sys ("" means
	// /sys) where it reads the active security modules
	// (Sys/kernel/security/lsm): one root for the model and the gate.
	// Proc must be the procfs of the gate's own pid namespace, or pids
	// could not be pinned.
	Live live.Options
	// Protect lists the pids of the daemon's own processes (the gate's,
	// and the front of a privilege-separated daemon). No policy rule
	// grants anything on a protected process: a caller gets only what the
	// kernel would give it directly.
	Protect []int
}

// Gate decides and reads process state for callers: the one path shared
// by the enforcement points.
type Gate struct {
	cfg     Config
	root    *procfs.Root
	policy  atomic.Pointer[policyBox]
	cache   *viewCache
	metrics *Metrics
	audit   *Auditor
	sem     chan struct{}
	stuck   chan struct{}
	stall   *stalls
	shares  *workerShares
	mods    labelMods
	bufs    sync.Pool
	// hidepidOff reports that /proc has no hidepid= option, so plain
	// items are readable by every caller.
	hidepidOff bool
	// pidTranslation reports that the kernel translates pids between
	// pid namespaces (Linux 6.11); without it, callers in other pid
	// namespaces are served from tables (see callerNS).
	pidTranslation bool
}

type policyBox struct{ p Policy }

// New returns a gate using the procfs of the current pid namespace.
func New(cfg Config) (*Gate, error) {
	if cfg.Policy == nil {
		return nil, errors.New("gate: no policy")
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 2 * time.Second
	}
	if cfg.MaxStuckReads <= 0 {
		cfg.MaxStuckReads = 64
	}
	if cfg.MaxValue <= 0 {
		cfg.MaxValue = 4 << 20
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4 * runtime.GOMAXPROCS(0)
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = 10 * time.Second
	}
	cfg.Stall = cfg.Stall.withDefaults(cfg.Workers, cfg.MaxStuckReads)
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	root, err := procfs.Open(cfg.Live.Proc)
	if err != nil {
		return nil, fmt.Errorf("gate: %w", err)
	}
	if !root.Own() {
		root.Close()
		return nil, fmt.Errorf("gate: %s is not the procfs of this pid namespace (self=%q): pids cannot be pinned", root.Path(), root.Self())
	}
	g := &Gate{
		cfg: cfg, root: root, cache: newViewCache(cfg.CacheTTL, 1<<16),
		metrics: cfg.Metrics, audit: cfg.Audit,
		sem: make(chan struct{}, cfg.Workers), stuck: make(chan struct{}, cfg.MaxStuckReads),
		stall: newStalls(cfg.Stall, cfg.ReadTimeout), shares: newWorkerShares(cfg.Stall.WorkersPerUID),
	}
	g.bufs.New = func() any { b := make([]byte, 0, 8192); return &b }
	g.policy.Store(&policyBox{cfg.Policy})
	g.pidTranslation = probePIDTranslation(root)
	if _, pm, found, err := root.Mountinfo(); err == nil && found {
		g.hidepidOff = pm.Options.HidePID == kernel.HidePIDOff
	}
	lsms, _ := procfs.ReadLSMs(cfg.Live.Sys) // none readable: no labels to read
	for _, m := range lsms {
		switch m {
		case "selinux":
			g.mods.selinux = true
		case "apparmor":
			g.mods.apparmor = true
		case "smack":
			g.mods.smack = true
		}
	}
	m := g.metrics
	m.Gauge("procgate_view_cache_entries", func() float64 { return float64(g.cache.size()) })
	m.Gauge("procgate_view_cache_lookups_total", func() float64 { return float64(g.cache.hits.Load() + g.cache.misses.Load()) })
	m.Gauge("procgate_view_cache_hits_total", func() float64 { return float64(g.cache.hits.Load()) })
	m.Gauge("procgate_view_cache_misses_total", func() float64 { return float64(g.cache.misses.Load()) })
	m.Gauge("procgate_view_cache_reclaims_total", func() float64 { return float64(g.cache.evicted.Load()) })
	m.Gauge("procgate_model_reads_total", func() float64 { return float64(g.cache.reads.Load()) })
	m.Gauge("procgate_policy_generation", func() float64 { return float64(g.Policy().Generation()) })
	registerAuditMetrics(m, g.audit)
	g.stallGauges()
	return g, nil
}

// Close releases the gate's descriptors.
func (g *Gate) Close() error { return g.root.Close() }

// Metrics returns the gate's metrics.
func (g *Gate) Metrics() *Metrics { return g.metrics }

// Policy returns the policy in force.
func (g *Gate) Policy() Policy { return g.policy.Load().p }

// SetPolicy replaces the policy atomically: a request in progress keeps
// deciding with the policy it started with, a later one uses p. The
// model's cached views stay valid (they do not depend on the policy).
func (g *Gate) SetPolicy(p Policy) { g.policy.Store(&policyBox{p}) }

// FlushCache drops the model's cached views (kernel settings are read
// again on the next request).
func (g *Gate) FlushCache() { g.cache.flush() }

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
	return g.newCaller(p, uid, gid, label)
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

// Alive returns nil while the pinned caller is alive.
func (c *Caller) Alive() error { return c.pin.Verify() }

// Close releases the caller's pin (and pid namespace) and, with the
// caller's last connection, its cached views.
func (c *Caller) Close() {
	c.pin.Close()
	c.ns.close()
	if vc := c.cache.Swap(nil); vc != nil {
		vc.unref(c.info.key)
	}
}

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
		views, errs, err := buildViews(g.cfg.Live, c.info, infos)
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
			g.cache.put(pairKey{c.info.key, ts[i].info.key}, views[j])
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

// DefaultMemoryLimit is the soft limit on the Go runtime's memory that
// procgate serve sets (debug.SetMemoryLimit, in cmd/procgate/serve.go:
// keep the two equal) unless GOMEMLIMIT is set; the broker's benchmarks
// run with it. It keeps the daemon's resident memory small on machines
// with many processes (docs/benchmarks.md, "Broker").
const DefaultMemoryLimit = 40 << 20
