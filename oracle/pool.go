//go:build linux

package oracle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Options configure a Runner.
type Options struct {
	// Workers is the number of cases run in parallel; default 2. Workers
	// own disjoint sets of targets, so that no two probers touch (and
	// ptrace) the same target at once.
	Workers int
	// Timeout bounds each wait for a child (ready line, reply); default 15s.
	Timeout time.Duration
	// OnReady, when set, is called for every case once its target and
	// prober are both alive, verified and about to be probed, with their
	// pids: the place to snapshot the live processes (for example to build
	// the model's world from /proc and predict each probe). An error
	// refuses the case. It is called from several workers at once.
	OnReady func(index int, target, prober Observed) error
	// MaxTargets bounds the distinct pooled targets alive at once (per
	// window of cases; the workers share a window's targets, and each
	// prober-is-parent prober spawns its own); default 512. An idle
	// target holds about 1 MiB of its own memory.
	MaxTargets int
	// NoPool spawns a fresh target and prober for every case (about 4 ms
	// a case instead of well under 1 ms); for cross-checking the pool.
	NoPool bool
	// Cgroup, when set, is a cgroup v2 directory the Runner starts its
	// processes in (clone3 CLONE_INTO_CGROUP) instead of its own: a
	// runner exempt from a BPF LSM program's rules by its cgroup keeps
	// the processes it probes with out of the exemption.
	Cgroup string
}

// Runner spawns processes with requested credentials and probes them. A
// Runner must run as root in the initial user namespace, with all
// capabilities, in a binary whose main (or TestMain) calls
// RunRoleIfRequested first. Any build of it works: with or without cgo,
// PIE or not, with or without the race detector.
type Runner struct {
	opts    Options
	exe     string
	cleanup func()
	initNS  string
	profile KernelProfile
	procs   procMounts
	// serial numbers the spawned processes (Observed.Serial).
	serial atomic.Uint64
	// cgroupFD is Options.Cgroup open, -1 without one.
	cgroupFD int
}

// Spawned returns the number of targets and probers the Runner has
// started so far and seen ready (the helpers that create user namespaces
// are not counted).
func (r *Runner) Spawned() int { return int(r.serial.Load()) }

// NewRunner checks the environment (root with every capability, a
// binary every uid can read; copying the binary if needed) and returns a
// Runner. Call Close
// when done.
func NewRunner(opts Options) (*Runner, error) {
	if opts.Workers <= 0 {
		opts.Workers = 2
	}
	if opts.MaxTargets <= 0 {
		opts.MaxTargets = 512
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 15 * time.Second
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("oracle: the runner must run as root")
	}
	_, prm, err := capget()
	if err != nil {
		return nil, fmt.Errorf("oracle: %w", err)
	}
	if full := FullCaps(); prm&full != full {
		return nil, fmt.Errorf("oracle: the runner needs every capability of its bounding set (permitted %#x, bounding %#x)", prm, full)
	}
	initNS, err := os.Readlink("/proc/self/ns/user")
	if err != nil {
		return nil, fmt.Errorf("oracle: own user namespace: %w", err)
	}
	cgroupFD := -1
	if opts.Cgroup != "" {
		if cgroupFD, err = unix.Open(opts.Cgroup, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
			return nil, fmt.Errorf("oracle: cgroup %s: %w", opts.Cgroup, err)
		}
	}
	exe, cleanup, err := prepareBinary()
	if err != nil {
		if cgroupFD >= 0 {
			unix.Close(cgroupFD)
		}
		return nil, fmt.Errorf("oracle: %w", err)
	}
	if cgroupFD >= 0 {
		done := cleanup
		cleanup = func() { done(); unix.Close(cgroupFD) }
	}
	return &Runner{opts: opts, exe: exe, cleanup: cleanup, initNS: initNS, profile: readProfile(), cgroupFD: cgroupFD}, nil
}

// Close removes the copied binary, if any, and unmounts the procfs
// instances of cases with Proc options.
func (r *Runner) Close() error {
	r.procs.close()
	r.cleanup()
	return nil
}

// Profile returns the running kernel's profile, read at NewRunner.
func (r *Runner) Profile() KernelProfile { return r.profile }

// Executable returns the path of the binary the Runner re-executes.
func (r *Runner) Executable() string { return r.exe }

// unit is the work of one prober: one or more cases.
type unit struct {
	proberKey string
	cases     []int
	// parent: the prober spawns the cases' targets as its children
	// (RelParent), one per distinct target, before applying its own
	// credentials; children holds them once spawned, by target key.
	parent   bool
	children map[string]*proc
}

// plan is the cases assigned to one worker.
type plan struct {
	units  []*unit // pooled: one prober each
	single []int   // cases with their own processes
}

// window is one window of pooled cases: the targets every worker shares,
// and the launcher domain of the cases whose processes start in one.
type window struct {
	targets    map[string]*targetSlot // pooled targets, by key
	caseTarget map[int]*targetSlot    // the pooled target of each case
	// childKey is the target key of each prober-is-parent case, and
	// childReq the spawn request of each such key.
	childKey map[int]string
	childReq map[string]*spawnReq

	launchOnce sync.Once
	launch     *launcher
	launchErr  error
}

// launcher returns the window's launcher, started on first use: every
// process of the window that starts in a launcher's Landlock domain starts
// in this one, whichever worker spawns it.
func (win *window) launcher() (*launcher, error) {
	win.launchOnce.Do(func() { win.launch, win.launchErr = newLauncher() })
	return win.launch, win.launchErr
}

// targetSlot is a pooled target. Workers share it; mu serializes the
// probers that probe it, so that no two touch (and ptrace) it at once.
type targetSlot struct {
	req  *spawnReq
	self bool // RelSelf/RelThread: no process
	p    *proc
	err  error
	mu   sync.Mutex
}

// Run runs the cases and returns one Result per case, in order. A case the
// oracle could not run faithfully has Result.Err set; Run's own error is
// reserved for the context being cancelled.
//
// Pooling: cases share processes. Each distinct target is spawned once per
// window of cases and stays blocked on stdin until the window is done; the
// workers share it, one prober at a time. Each distinct prober is spawned
// once (or once per chunk of cases, to balance the workers) and probes its
// targets one by one. A prober-is-parent prober spawns its cases' targets
// as its own children (one per distinct target). The Landlock layouts that
// need a launcher domain (shared, nested, nested-reverse) spawn their
// probers and targets from one Landlock-restricted thread per window, so
// they all start in that launcher domain: the relation between any prober
// and target there is the one a fresh launcher would give the pair. Only a
// case whose target exits before it is probed spawns its own pair.
func (r *Runner) Run(ctx context.Context, cases []Case) ([]Result, error) {
	results := make([]Result, len(cases))
	var single []int
	targetReq := map[string]*spawnReq{}
	caseTarget := make([]string, len(cases))
	byTarget := map[string][]int{}
	var targetOrder []string
	for i := range cases {
		c := &cases[i]
		results[i] = Result{Index: i, Name: c.Name}
		if err := c.Validate(); err != nil {
			results[i].fail(fmt.Errorf("case %d %q: invalid: %w", i, c.Name, err))
			continue
		}
		launcher, tOwn, _, _ := c.Landlock.layout()
		if c.TargetExits || (r.opts.NoPool && !c.selfRelation()) {
			single = append(single, i)
			continue
		}
		k := "self"
		if !c.selfRelation() {
			req := &spawnReq{role: roleTarget, creds: c.targetCreds(), landlock: tOwn, inherited: launcher}
			b, _ := json.Marshal(req.spec())
			k = string(b)
			if c.Relation.norm() == RelParent {
				k = childPrefix + k // its prober's child, not a pooled target
			}
			targetReq[k] = req
		}
		caseTarget[i] = k
		if byTarget[k] == nil {
			targetOrder = append(targetOrder, k)
		}
		byTarget[k] = append(byTarget[k], i)
	}
	// Windows of at most MaxTargets distinct targets bound the number of
	// live processes; the single-pair cases go with the first window.
	var windows [][]int
	for len(targetOrder) > 0 || len(windows) == 0 {
		n := min(len(targetOrder), r.opts.MaxTargets)
		var idx []int
		for _, k := range targetOrder[:n] {
			idx = append(idx, byTarget[k]...)
		}
		windows = append(windows, idx)
		targetOrder = targetOrder[n:]
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for wi, idx := range windows {
		if ctx.Err() != nil {
			break
		}
		var sg []int
		if wi == 0 {
			sg = single
		}
		win, plans := r.plan(cases, idx, sg, caseTarget, targetReq)
		r.runWindow(ctx, cases, results, win, plans)
	}
	if err := ctx.Err(); err != nil {
		for i := range results {
			if results[i].Probes == nil && results[i].Err == nil {
				results[i].fail(fmt.Errorf("case %d %q: %w", i, cases[i].Name, err))
			}
		}
		return results, fmt.Errorf("oracle: run interrupted: %w", err)
	}
	return results, nil
}

// plan makes the window of pooled cases idx (its targets) and spreads
// them and the single-pair cases over the workers. Prober groups are split
// into chunks so that the workers finish together, then each chunk goes
// to the least loaded worker (a prober spawn costs about as much as
// probing a dozen targets).
func (r *Runner) plan(cases []Case, idx, single []int, caseTarget []string, targetReq map[string]*spawnReq) (*window, []*plan) {
	win := &window{targets: map[string]*targetSlot{}, caseTarget: map[int]*targetSlot{}, childKey: map[int]string{}, childReq: map[string]*spawnReq{}}
	plans := make([]*plan, r.opts.Workers)
	for i := range plans {
		plans[i] = &plan{}
	}
	for n, i := range single {
		plans[n%len(plans)].single = append(plans[n%len(plans)].single, i)
	}
	byProber := map[string]*unit{}
	var units []*unit
	for _, i := range idx {
		pk := r.proberKey(&cases[i])
		u := byProber[pk]
		if u == nil {
			u = &unit{proberKey: pk, parent: cases[i].Relation.norm() == RelParent}
			byProber[pk] = u
			units = append(units, u)
		}
		u.cases = append(u.cases, i)
		k := caseTarget[i]
		switch {
		case u.parent:
			win.childKey[i], win.childReq[k] = k, targetReq[k]
		case win.targets[k] == nil && k == "self":
			win.targets[k] = &targetSlot{self: true}
		case win.targets[k] == nil:
			q := *targetReq[k] // the slot's own: runWindow gives it a stderr
			win.targets[k] = &targetSlot{req: &q}
		}
		if !u.parent {
			win.caseTarget[i] = win.targets[k]
		}
	}
	chunk := max(32, (len(idx)+4*len(plans)-1)/(4*len(plans)))
	var parts []*unit
	for _, u := range units {
		for len(u.cases) > chunk {
			parts = append(parts, &unit{proberKey: u.proberKey, cases: u.cases[:chunk], parent: u.parent})
			u.cases = u.cases[chunk:]
		}
		parts = append(parts, u)
	}
	slices.SortStableFunc(parts, func(a, b *unit) int { return len(b.cases) - len(a.cases) })
	const spawnCost = 12
	load := make([]int, len(plans))
	for _, u := range parts {
		w := 0
		for j := range load {
			if load[j] < load[w] {
				w = j
			}
		}
		load[w] += spawnCost + len(u.cases)
		plans[w].units = append(plans[w].units, u)
	}
	return win, plans
}

// runWindow starts the window's targets, runs one plan per worker, in
// parallel, then ends the targets.
func (r *Runner) runWindow(ctx context.Context, cases []Case, results []Result, win *window, plans []*plan) {
	w0 := &worker{r: r, ctx: ctx, cases: cases, results: results, win: win}
	stop := context.AfterFunc(ctx, w0.killAll)
	defer stop()
	defer func() {
		if win.launch != nil {
			win.launch.close()
		}
	}()
	// Start every target first, then collect their ready lines, so that
	// their start-up overlaps.
	var slots []*targetSlot
	for _, s := range win.targets {
		if s.self {
			continue
		}
		s.req.stderr = &tailBuffer{}
		if s.p, s.err = w0.spawn(s.req); s.err == nil {
			w0.track(s.p)
		}
		slots = append(slots, s)
	}
	for _, s := range slots {
		if s.err == nil {
			s.err = s.p.awaitReady(r, r.opts.Timeout)
		}
	}
	var wg sync.WaitGroup
	for _, pl := range plans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &worker{r: r, ctx: ctx, cases: cases, results: results, win: win}
			w.run(pl)
		}()
	}
	wg.Wait()
	// Close all targets at once: EOF on every stdin, then wait.
	var ps []*proc
	for _, s := range slots {
		if s.p != nil {
			s.p.stdin.Close()
			ps = append(ps, s.p)
		}
	}
	w0.release(ps...)
}

// proberKey identifies the prober a case needs in a pool: its spec, and
// whether it is its targets' parent.
func (r *Runner) proberKey(c *Case) string {
	launcher, _, pOwn, _ := c.Landlock.layout()
	b, _ := json.Marshal((&spawnReq{role: roleProber, creds: c.Prober, landlock: pOwn, inherited: launcher}).spec())
	if c.Relation.norm() == RelParent {
		return childPrefix + string(b)
	}
	return string(b)
}

// childPrefix marks the keys of a prober-is-parent case: its target is
// its prober's child, and its prober spawns no other kind.
const childPrefix = "parent:"
