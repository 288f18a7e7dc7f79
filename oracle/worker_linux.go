package oracle

import (
	"context"
	"fmt"
	"os"
	"sync"
)

// worker runs one plan: its pooled targets and probers, then its
// single-pair cases, one prober at a time.
type worker struct {
	r       *Runner
	ctx     context.Context
	cases   []Case
	results []Result

	mu   sync.Mutex
	live map[*proc]bool
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

	// Start every target first, then collect their ready lines, so that
	// their start-up overlaps.
	var slots []*targetSlot
	for _, s := range pl.targets {
		if s.self {
			continue
		}
		s.req.stderr = &tailBuffer{}
		if s.p, s.err = w.r.start(s.req); s.err == nil {
			w.track(s.p)
		}
		slots = append(slots, s)
	}
	for _, s := range slots {
		if s.err == nil {
			s.err = s.p.awaitReady(w.r, w.r.opts.Timeout)
		}
	}
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
		w.runUnit(pl, u, p, err)
	}
	if next != nil {
		w.release(next)
	}
	// Close all targets at once: EOF on every stdin, then wait.
	var ps []*proc
	for _, s := range slots {
		if s.p != nil {
			s.p.stdin.Close()
			ps = append(ps, s.p)
		}
	}
	w.release(ps...)
	for _, i := range pl.single {
		if w.ctx.Err() != nil {
			break
		}
		w.runSingle(i)
	}
}

// startProber starts the prober of a pooled unit.
func (w *worker) startProber(u *unit) (*proc, error) {
	first := &w.cases[u.cases[0]]
	_, _, pOwn, _ := first.Landlock.layout()
	p, err := w.r.start(&spawnReq{role: roleProber, creds: first.Prober, landlock: pOwn, stderr: &tailBuffer{}})
	if err == nil {
		w.track(p)
	}
	return p, err
}

// runUnit waits for a pooled prober (started by startProber, which
// returned p and err) and probes all of its targets.
func (w *worker) runUnit(pl *plan, u *unit, p *proc, err error) {
	if err == nil {
		err = p.awaitReady(w.r, w.r.opts.Timeout)
	}
	if err != nil {
		for _, i := range u.cases {
			w.results[i].fail(fmt.Errorf("case %d %q: %w", i, w.cases[i].Name, err))
		}
		if p != nil {
			w.release(p)
		}
		return
	}
	defer w.release(p)
	targets := map[int]*proc{}
	var items []jobItem
	for _, i := range u.cases {
		c := &w.cases[i]
		s := pl.caseTarget[i]
		if s.err != nil {
			w.results[i].fail(fmt.Errorf("case %d %q: %w", i, c.Name, s.err))
			continue
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
			it.Pid, it.Marker = s.p.ready.Pid, s.p.ready.Marker
			targets[i] = s.p
		}
		if !w.onReady(i, targets[i], p) {
			continue
		}
		items = append(items, it)
	}
	w.probe(p, items, targets)
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

// runSingle runs a case that needs its own process tree: the prober as the
// target's parent, both spawned from one Landlock-restricted thread, or a
// target that exits before it is probed.
func (w *worker) runSingle(i int) {
	c := &w.cases[i]
	launcher, tOwn, pOwn, _ := c.Landlock.layout()
	errb := &tailBuffer{}
	tcreds := c.targetCreds()
	var t, p *proc
	var err error
	var spawn func() error
	var closeAfter []*os.File
	preq := &spawnReq{role: roleProber, creds: c.Prober, landlock: pOwn, inherited: launcher, stderr: errb}
	if c.Relation.norm() == RelParent {
		var cin, cout *os.File
		t, cin, cout, err = pipeProc(tcreds, errb)
		if err != nil {
			w.results[i].fail(fmt.Errorf("case %d %q: %w", i, c.Name, err))
			return
		}
		closeAfter = []*os.File{cin, cout}
		preq.child = &childSpec{Role: roleTarget, Creds: tcreds, Landlock: tOwn, Inherited: launcher}
		preq.extra = []*os.File{cin, cout}
		spawn = func() error {
			p, err = w.r.start(preq)
			return err
		}
	} else {
		treq := &spawnReq{role: roleTarget, creds: tcreds, landlock: tOwn, inherited: launcher, stderr: errb}
		if c.TargetExits {
			treq.exitCode = exitedTargetStatus
		}
		spawn = func() error {
			if t, err = w.r.start(treq); err != nil {
				return err
			}
			p, err = w.r.start(preq)
			return err
		}
	}
	if launcher {
		err = inLandlockDomain(spawn)
	} else {
		err = spawn()
	}
	for _, f := range closeAfter {
		f.Close()
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
