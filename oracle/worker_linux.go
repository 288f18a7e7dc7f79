package oracle

import (
	"context"
	"fmt"
	"os"
	"sync"
)

// worker runs one plan: its probers, one at a time, against the window's
// shared targets, then its single-pair cases.
type worker struct {
	r       *Runner
	ctx     context.Context
	cases   []Case
	results []Result
	win     *window

	mu   sync.Mutex
	live map[*proc]bool
	// exiting counts the releases under way in the background.
	exiting sync.WaitGroup
}

// spawn starts q, from the window's launcher thread when q starts in the
// launcher's Landlock domain.
func (w *worker) spawn(q *spawnReq) (*proc, error) {
	if !q.inherited {
		return w.r.start(q)
	}
	l, err := w.win.launcher()
	if err != nil {
		return nil, err
	}
	var p *proc
	l.do(func() { p, err = w.r.start(q) })
	return p, err
}

func (w *worker) track(p *proc) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.live == nil {
		w.live = map[*proc]bool{}
	}
	w.live[p] = true
	if w.ctx.Err() != nil {
		p.kill()
	}
}

// releaseLater releases ps in the background (a prober's exit and reaping
// need not hold up the next one); run waits for it before it returns.
func (w *worker) releaseLater(ps ...*proc) {
	w.exiting.Add(1)
	go func() {
		defer w.exiting.Done()
		w.release(ps...)
	}()
}

func (w *worker) release(ps ...*proc) {
	for _, p := range ps {
		p.close(w.r.opts.Timeout)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range ps {
		delete(w.live, p)
	}
}

func (w *worker) killAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for p := range w.live {
		p.kill()
	}
}

func (w *worker) run(pl *plan) {
	stop := context.AfterFunc(w.ctx, w.killAll)
	defer stop()
	defer w.exiting.Wait()
	// Start the next prober while the current one works, so that
	// spawning overlaps probing.
	var next *proc
	var nextErr error
	for k, u := range pl.units {
		if k == 0 {
			next, nextErr = w.startProber(u)
		}
		p, err := next, nextErr
		next, nextErr = nil, nil
		if w.ctx.Err() == nil && k+1 < len(pl.units) {
			next, nextErr = w.startProber(pl.units[k+1])
		}
		if w.ctx.Err() != nil {
			err = w.ctx.Err()
		}
		w.runUnit(u, p, err)
	}
	for _, i := range pl.single {
		if w.ctx.Err() != nil {
			break
		}
		w.runSingle(i)
	}
}

// startProber starts the prober of a pooled unit; a parent prober's
// children with it.
func (w *worker) startProber(u *unit) (*proc, error) {
	first := &w.cases[u.cases[0]]
	launcher, _, pOwn, _ := first.Landlock.layout()
	q := &spawnReq{role: roleProber, creds: first.Prober, landlock: pOwn, inherited: launcher, stderr: &tailBuffer{}}
	if u.parent {
		u.children = map[string]*proc{}
		for _, i := range u.cases {
			k := w.win.childKey[i]
			if u.children[k] != nil {
				continue
			}
			c := w.win.childReq[k]
			t, cin, cout, err := pipeProc(c.creds, q.stderr)
			if err != nil {
				closeFiles(q.extra)
				w.release(unitChildren(u)...)
				return nil, err
			}
			u.children[k] = t
			q.children = append(q.children, &childSpec{Role: roleTarget, Creds: c.creds, Landlock: c.landlock, Inherited: c.inherited})
			q.extra = append(q.extra, cin, cout)
		}
	}
	p, err := w.spawn(q)
	closeFiles(q.extra) // the prober's ends: it has its copies
	if err != nil {
		w.release(unitChildren(u)...)
		return nil, err
	}
	w.track(p)
	for _, t := range unitChildren(u) {
		w.track(t)
	}
	return p, nil
}

// unitChildren returns a parent unit's children (nil for other units).
func unitChildren(u *unit) []*proc {
	var ps []*proc
	for _, t := range u.children {
		ps = append(ps, t)
	}
	return ps
}

func closeFiles(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}

// runUnit waits for a pooled prober (started by startProber, which
// returned p and err) and probes all of its targets: its own thread group
// and its children in one job, each shared target in a job of its own
// while it holds the target.
func (w *worker) runUnit(u *unit, p *proc, err error) {
	kids := unitChildren(u)
	if err == nil {
		err = p.awaitReady(w.r, w.r.opts.Timeout)
	}
	if err != nil {
		for _, i := range u.cases {
			w.results[i].fail(fmt.Errorf("case %d %q: %w", i, w.cases[i].Name, err))
		}
		if p != nil {
			kids = append(kids, p)
		}
		w.release(kids...) // the children first: their stdin, then the prober
		return
	}
	defer w.releaseLater(append(kids, p)...)
	kidErr := map[*proc]error{}
	for _, t := range kids {
		kidErr[t] = t.awaitReady(w.r, w.r.opts.Timeout)
	}
	own := map[int]*proc{}
	var ownItems []jobItem
	var shared []sharedItem
	for _, i := range u.cases {
		c := &w.cases[i]
		var t *proc
		var slot *targetSlot
		if u.parent {
			t = u.children[w.win.childKey[i]]
			if err := kidErr[t]; err != nil {
				w.results[i].fail(fmt.Errorf("case %d %q: %w", i, c.Name, err))
				continue
			}
		} else {
			slot = w.win.caseTarget[i]
			if slot.err != nil {
				w.results[i].fail(fmt.Errorf("case %d %q: %w", i, c.Name, slot.err))
				continue
			}
			t = slot.p
		}
		mnt, err := w.r.procs.path(c.Proc, p.ready.Pid)
		if err != nil {
			w.results[i].fail(fmt.Errorf("case %d %q: %w", i, c.Name, err))
			continue
		}
		it := jobItem{ID: i, Probes: c.probes(), Proc: mnt}
		switch c.Relation.norm() {
		case RelSelf:
			it.Self = true
		case RelThread:
			it.Thread = true
		default:
			it.Pid, it.Marker = t.ready.Pid, t.ready.Marker
		}
		if it.Self || it.Thread || u.parent {
			if it.Pid != 0 {
				own[i] = t
			}
			if w.onReady(i, own[i], p) {
				ownItems = append(ownItems, it)
			}
			continue
		}
		shared = append(shared, sharedItem{it, slot})
	}
	w.probe(p, ownItems, own)
	// The shared targets in batches of at most maxBatch: the targets free
	// now; when none is, wait for the first pending one while holding none.
	// Small batches keep the other workers' probers from waiting long.
	for len(shared) > 0 {
		var batch, rest []sharedItem
		for _, x := range shared {
			if len(batch) < maxBatch && x.slot.mu.TryLock() {
				batch = append(batch, x)
			} else {
				rest = append(rest, x)
			}
		}
		if len(batch) == 0 {
			rest[0].slot.mu.Lock()
			batch, rest = rest[:1], rest[1:]
		}
		var items []jobItem
		targets := map[int]*proc{}
		for _, x := range batch {
			if w.onReady(x.it.ID, x.slot.p, p) {
				items = append(items, x.it)
				targets[x.it.ID] = x.slot.p
			}
		}
		w.probe(p, items, targets)
		for _, x := range batch {
			x.slot.mu.Unlock()
		}
		shared = rest
	}
}

// maxBatch bounds the shared targets one job holds.
const maxBatch = 16

// sharedItem is a job item on a shared target.
type sharedItem struct {
	it   jobItem
	slot *targetSlot
}

// onReady calls the OnReady hook; false means the case was refused.
func (w *worker) onReady(i int, t, p *proc) bool {
	if w.r.opts.OnReady == nil {
		return true
	}
	tobs := p.obs
	if t != nil {
		tobs = t.obs
	}
	if err := w.r.opts.OnReady(i, tobs, p.obs); err != nil {
		w.results[i].fail(fmt.Errorf("case %d %q: OnReady: %w", i, w.cases[i].Name, err))
		return false
	}
	return true
}

// probe runs a job on prober p and files the results.
func (w *worker) probe(p *proc, items []jobItem, targets map[int]*proc) {
	if len(items) == 0 {
		return
	}
	reps, err := p.job(items, w.r.opts.Timeout)
	if err != nil {
		for _, it := range items {
			w.results[it.ID].fail(fmt.Errorf("case %d %q: %w", it.ID, w.cases[it.ID].Name, err))
		}
		return
	}
	got := map[int]bool{}
	for _, rep := range reps {
		if rep.ID < 0 || rep.ID >= len(w.results) {
			continue
		}
		res := &w.results[rep.ID]
		res.Prober = p.obs
		if t := targets[rep.ID]; t != nil {
			res.Target = t.obs
		} else { // the prober's own thread group
			res.Target = p.obs
			res.Target.Tid = rep.Tid
		}
		res.Probes = rep.Probes
		got[rep.ID] = true
	}
	for _, it := range items {
		if !got[it.ID] {
			w.results[it.ID].fail(fmt.Errorf("case %d %q: prober %d sent no reply for it", it.ID, w.cases[it.ID].Name, p.ready.Pid))
		}
	}
}

// runSingle runs a case that needs its own pair: a target that exits
// before it is probed (kept as a zombie of the runner), or any case when
// the pool is off (Options.NoPool).
func (w *worker) runSingle(i int) {
	c := &w.cases[i]
	launcher, tOwn, pOwn, _ := c.Landlock.layout()
	errb := &tailBuffer{}
	tcreds := c.targetCreds()
	var t, p *proc
	var err error
	preq := &spawnReq{role: roleProber, creds: c.Prober, landlock: pOwn, inherited: launcher, stderr: errb}
	if c.Relation.norm() == RelParent {
		var cin, cout *os.File
		t, cin, cout, err = pipeProc(tcreds, errb)
		if err != nil {
			w.results[i].fail(fmt.Errorf("case %d %q: %w", i, c.Name, err))
			return
		}
		preq.children = []*childSpec{{Role: roleTarget, Creds: tcreds, Landlock: tOwn, Inherited: launcher}}
		preq.extra = []*os.File{cin, cout}
		p, err = w.spawn(preq)
		closeFiles(preq.extra)
	} else {
		treq := &spawnReq{role: roleTarget, creds: tcreds, landlock: tOwn, inherited: launcher, stderr: errb}
		if c.TargetExits {
			treq.exitCode = exitedTargetStatus
		}
		if t, err = w.spawn(treq); err == nil {
			p, err = w.spawn(preq)
		}
	}
	var ps []*proc
	for _, x := range []*proc{t, p} { // the target is closed first
		if x != nil {
			w.track(x)
			ps = append(ps, x)
		}
	}
	defer w.release(ps...)
	if err == nil {
		err = t.awaitReady(w.r, w.r.opts.Timeout)
	}
	if err == nil {
		err = p.awaitReady(w.r, w.r.opts.Timeout)
	}
	if err != nil {
		w.results[i].fail(fmt.Errorf("case %d %q: %w", i, c.Name, err))
		return
	}
	if !w.onReady(i, t, p) {
		return
	}
	if c.TargetExits {
		if err := t.exitToZombie(w.r.opts.Timeout); err != nil {
			w.results[i].fail(fmt.Errorf("case %d %q: %w", i, c.Name, err))
			return
		}
	}
	mnt, err := w.r.procs.path(c.Proc, p.ready.Pid)
	if err != nil {
		w.results[i].fail(fmt.Errorf("case %d %q: %w", i, c.Name, err))
		return
	}
	w.probe(p, []jobItem{{ID: i, Pid: t.ready.Pid, Marker: t.ready.Marker, Probes: c.probes(), Proc: mnt}}, map[int]*proc{i: t})
}
