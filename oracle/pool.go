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
	"time"
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
	// window of cases; each worker may hold its own copy); default 128.
	MaxTargets int
	// NoPool spawns a fresh target and prober for every case (about 4 ms
	// a case instead of well under 1 ms); for cross-checking the pool.
	NoPool bool
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
}

// NewRunner checks the environment (root with every capability, a
// binary every uid can read; copying the binary if needed) and returns a
// Runner. Call Close
// when done.
func NewRunner(opts Options) (*Runner, error) {
	if opts.Workers <= 0 {
		opts.Workers = 2
	}
	if opts.MaxTargets <= 0 {
		opts.MaxTargets = 128
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
	exe, cleanup, err := prepareBinary()
	if err != nil {
		return nil, fmt.Errorf("oracle: %w", err)
	}
	return &Runner{opts: opts, exe: exe, cleanup: cleanup, initNS: initNS, profile: readProfile()}, nil
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
}

// plan is the cases assigned to one worker.
type plan struct {
	targets    map[string]*targetSlot // pooled targets, by key
	caseTarget map[int]*targetSlot    // the pooled target of each case
	units      []*unit                // pooled: one prober each
	single     []int                  // cases with their own processes
}

type targetSlot struct {
	req  *spawnReq
	self bool // RelSelf/RelThread: no process
	p    *proc
	err  error
}

// Run runs the cases and returns one Result per case, in order. A case the
// oracle could not run faithfully has Result.Err set; Run's own error is
// reserved for the context being cancelled.
//
// Pooling: cases whose processes need no particular process tree (relation
// sibling or ptracer-any, Landlock none, prober-only, target-only or
// sibling) share processes: each distinct prober is spawned once (or once
// per chunk of cases, to balance the workers) and probes all of its targets
// in one job; each distinct target is spawned once per worker that needs it
// and stays blocked on stdin until the worker is done. The other cases
// (prober-is-parent; Landlock shared, nested and nested-reverse; an
// exiting target) spawn their own pair.
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
		if launcher || c.Relation.norm() == RelParent || c.TargetExits || (r.opts.NoPool && !c.selfRelation()) {
			single = append(single, i)
			continue
		}
		k := "self"
		if !c.selfRelation() {
			req := &spawnReq{role: roleTarget, creds: c.targetCreds(), landlock: tOwn}
			b, _ := json.Marshal(req.spec())
			k = string(b)
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
		r.runWindow(ctx, cases, results, r.plan(cases, idx, sg, caseTarget, targetReq))
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

// plan spreads pooled cases idx and single-pair cases over the workers.
// Prober groups are split into chunks so that the workers finish together,
// then each chunk goes to the least loaded worker (a prober spawn costs
// about as much as probing a dozen targets). Each worker spawns its own
// copy of the targets its chunks need, so no target is probed by two
// probers at once.
func (r *Runner) plan(cases []Case, idx, single []int, caseTarget []string, targetReq map[string]*spawnReq) []*plan {
	plans := make([]*plan, r.opts.Workers)
	for i := range plans {
		plans[i] = &plan{targets: map[string]*targetSlot{}, caseTarget: map[int]*targetSlot{}}
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
			u = &unit{proberKey: pk}
			byProber[pk] = u
			units = append(units, u)
		}
		u.cases = append(u.cases, i)
	}
	chunk := max(32, (len(idx)+4*len(plans)-1)/(4*len(plans)))
	var parts []*unit
	for _, u := range units {
		for len(u.cases) > chunk {
			parts = append(parts, &unit{proberKey: u.proberKey, cases: u.cases[:chunk]})
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
		pl := plans[w]
		load[w] += spawnCost + len(u.cases)
		pl.units = append(pl.units, u)
		for _, i := range u.cases {
			k := caseTarget[i]
			if pl.targets[k] == nil {
				if k == "self" {
					pl.targets[k] = &targetSlot{self: true}
				} else {
					pl.targets[k] = &targetSlot{req: &spawnReq{role: roleTarget, creds: targetReq[k].creds, landlock: targetReq[k].landlock}}
					load[w] += spawnCost / 2
				}
			}
			pl.caseTarget[i] = pl.targets[k]
		}
	}
	return plans
}

// runWindow runs one plan per worker, in parallel.
func (r *Runner) runWindow(ctx context.Context, cases []Case, results []Result, plans []*plan) {
	var wg sync.WaitGroup
	for _, pl := range plans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &worker{r: r, ctx: ctx, cases: cases, results: results}
			w.run(pl)
		}()
	}
	wg.Wait()
}

// proberKey identifies the prober a case needs in a pool.
func (r *Runner) proberKey(c *Case) string {
	_, _, pOwn, _ := c.Landlock.layout()
	b, _ := json.Marshal((&spawnReq{role: roleProber, creds: c.Prober, landlock: pOwn}).spec())
	return string(b)
}
