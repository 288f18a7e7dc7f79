//go:build linux

package verify

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/live"
	"github.com/procgate/procgate/oracle"
	"github.com/procgate/procgate/scenario"
)

// Options configure [Run].
type Options struct {
	// Snapshot predicts every case a second time, from a live snapshot of
	// its processes taken while they are alive (see the package comment).
	Snapshot bool
	// Mutate, when set, is applied to every world the model predicts in,
	// after it is built and before any decision: a test breaks one model
	// rule with it to show that the comparison catches the change.
	Mutate func(w *kernel.World, caller, target *kernel.Task)
	// Progress, when set, is called as cases become ready to probe, with
	// the number ready so far and the total. It may be called from
	// several goroutines at once.
	Progress func(done, total int)
	// MaxDisagreements bounds how many disagreements of each source the
	// report keeps in full (each with a scenario file); the rest are only
	// counted. Default 20.
	MaxDisagreements int
}

// Source says which prediction disagreed with the kernel.
type Source string

// Prediction sources.
const (
	FromDescription Source = "description" // the world built from the case
	FromSnapshot    Source = "snapshot"    // the world read from /proc
)

// Disagreement is one probe where the kernel and the model answered
// differently.
type Disagreement struct {
	Source Source `json:"source"`
	// Case is the case as generated, with its index among the cases.
	Index int         `json:"index"`
	Case  oracle.Case `json:"case"`
	// Target and Prober are what the kernel held for the processes.
	Target oracle.Observed    `json:"target"`
	Prober oracle.Observed    `json:"prober"`
	Probe  oracle.Probe       `json:"probe"`
	Kernel oracle.ProbeResult `json:"kernel"`
	Model  oracle.ProbeResult `json:"model"`
	// Story is the model's step-by-step explanation of its answer.
	Story string `json:"story"`
	// Scenario is a scenario file that reproduces the disagreement with
	// procgate check: the world and one check expecting the kernel's
	// answer.
	Scenario string `json:"scenario"`
}

// Report is the outcome of a verification run.
type Report struct {
	// Kernel is the kernel the cases ran on.
	Kernel  Kernel   `json:"-"`
	Release string   `json:"release"`
	LSMs    []string `json:"lsms"`
	Cases   int      `json:"cases"`
	Refused int      `json:"refused"`
	// Refusals holds the first few refusal messages.
	Refusals []string `json:"refusals,omitempty"`
	// Probes counts the probe results compared; Agreed those equal to
	// the model's prediction from the description.
	Probes int `json:"probes"`
	Agreed int `json:"agreed"`
	// SnapshotProbes counts probe results predicted from a live
	// snapshot; SnapshotAgreed those equal; SnapshotUnknown those that
	// differ where the snapshot reported that the answer depends on
	// something user space cannot read (a Landlock domain, a Yama
	// exception).
	SnapshotProbes  int `json:"snapshot_probes"`
	SnapshotAgreed  int `json:"snapshot_agreed"`
	SnapshotUnknown int `json:"snapshot_unknown"`
	// SnapshotReads counts the live reads the snapshots made: one per
	// pair of processes and procfs instance, shared by the cases that
	// pair them.
	SnapshotReads int `json:"snapshot_reads"`
	// Processes counts the targets and probers the oracle started for
	// the run.
	Processes int `json:"processes"`
	// Disagreed counts every disagreeing probe result (both sources);
	// Disagreements holds the first ones in full.
	Disagreed     int            `json:"disagreed"`
	Disagreements []Disagreement `json:"disagreements,omitempty"`
	// Seconds is the wall time of the run, CasesPerSecond its rate.
	Seconds        float64 `json:"seconds"`
	CasesPerSecond float64 `json:"cases_per_second"`
	// Results are the kernel's answers, one per case in order, for a
	// caller that predicts them again with another model (the mutation
	// test does, without running the cases again).
	Results []oracle.Result `json:"-"`
}

// OK reports whether every case ran and every answer agreed.
func (r *Report) OK() bool {
	return r.Cases > 0 && r.Refused == 0 && r.Disagreed == 0
}

// snap is the prediction from one live snapshot.
type snap struct {
	// plain are the answers in the world as read; excused says, per
	// probe, that plain equals answers or that the reader reported the
	// answer to depend on an input it cannot read.
	plain   []oracle.ProbeResult
	excused []bool
	// answers are the answers once the verifier supplies what it knows
	// and the reader cannot see: the case's Landlock domains and
	// PR_SET_PTRACER exception.
	answers []oracle.ProbeResult
	err     error
	// world is the world as read, shared by the cases of one pair of
	// processes (see pairReads), with the caller and target as read;
	// story builds a copy with the supplied facts for a disagreement.
	world          *kernel.World
	caller, target *kernel.Task
	c              oracle.Case
}

// story returns a copy of the tasks the case's decisions reach, with the
// facts the verifier supplied: the world a disagreement is explained and
// reproduced in.
func (s *snap) story() (*kernel.World, *kernel.Task, *kernel.Task, error) {
	w, c, t := s.world.CloneFor(s.caller, s.target)
	if err := supply(s.c, c, t); err != nil {
		return nil, nil, nil, err
	}
	return w, c, t, nil
}

// pairReads shares the live reads of one run between its cases: the
// cases that pair the same prober and target through the same procfs
// instance read them once. Pooled processes do not change once ready,
// and no case changes the world as read (each works on copies of the
// tasks it changes), so that many cases may use one read at once.
type pairReads struct {
	opts live.Options
	mu   sync.Mutex
	m    map[pairKey]*pairRead
	n    atomic.Int64 // reads made
}

// pairKey names the processes by their serial, not their pid, which a
// later process of the run may reuse.
type pairKey struct {
	prober, target uint64
	proc           string
}

type pairRead struct {
	once sync.Once
	sys  *live.System
	err  error
}

// read returns the live read of the case's processes, with the world's
// procfs options the case's.
func (r *pairReads) read(c oracle.Case, target, prober oracle.Observed) (*live.System, error) {
	pids := []int{prober.Pid}
	if target.Pid != prober.Pid && target.Pid != 0 {
		pids = append(pids, target.Pid)
	}
	e := &pairRead{}
	if prober.Serial != 0 && target.Serial != 0 {
		key := pairKey{prober.Serial, target.Serial, c.Proc}
		r.mu.Lock()
		if old := r.m[key]; old != nil {
			e = old
		} else {
			r.m[key] = e
		}
		r.mu.Unlock()
	}
	e.once.Do(func() {
		r.n.Add(1)
		e.sys, e.err = live.ReadPIDs(pids, r.opts)
		if e.err != nil {
			e.err = fmt.Errorf("live snapshot of pids %v: %w", pids, e.err)
			return
		}
		// The probes read through the case's procfs instance, not the
		// /proc the reader read: its options are part of the question.
		e.sys.World.Proc, e.err = ProcOptions(c.Proc)
	})
	return e.sys, e.err
}

// Verifier runs cases on the running kernel and compares them with the
// model. Its methods must not be called concurrently.
type Verifier struct {
	runner *oracle.Runner
	kernel Kernel
	mu     sync.Mutex
	hook   atomic.Pointer[func(int, oracle.Observed, oracle.Observed) error]
}

// New starts an oracle runner (see [oracle.NewRunner] for what it needs:
// root, and a binary, of any build, whose main calls
// [oracle.RunRoleIfRequested] first) and reads the kernel's settings.
// opts.OnReady must be nil: the verifier uses it.
func New(opts oracle.Options) (*Verifier, error) {
	if opts.OnReady != nil {
		return nil, errors.New("verify: oracle.Options.OnReady is the verifier's own")
	}
	v := &Verifier{}
	opts.OnReady = func(i int, target, prober oracle.Observed) error {
		if f := v.hook.Load(); f != nil {
			return (*f)(i, target, prober)
		}
		return nil
	}
	r, err := oracle.NewRunner(opts)
	if err != nil {
		return nil, err
	}
	k, err := HostKernel(r.Profile())
	if err != nil {
		r.Close()
		return nil, err
	}
	v.runner, v.kernel = r, k
	return v, nil
}

// Kernel describes the running kernel as the model sees it.
func (v *Verifier) Kernel() Kernel { return v.kernel }

// Close stops the runner.
func (v *Verifier) Close() error { return v.runner.Close() }

// Run runs the cases and compares every answer with the model's. The
// returned error is for a run that could not be made at all; refused
// cases and disagreements are in the report.
func (v *Verifier) Run(ctx context.Context, cases []oracle.Case, opts Options) (*Report, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	k := v.kernel
	if opts.MaxDisagreements <= 0 {
		opts.MaxDisagreements = 20
	}
	rep := &Report{Kernel: k, Release: v.runner.Profile().Release, LSMs: k.LSMs, Cases: len(cases)}
	snaps := make([]*snap, len(cases))
	kept := map[Source]int{}
	keep := func(src Source) bool {
		kept[src]++
		return kept[src] <= opts.MaxDisagreements
	}
	var ready atomic.Int64
	var mu sync.Mutex
	// The kernel-wide facts are read once per run, and so is each
	// process; the world is built once per pair of processes.
	reads := &pairReads{m: map[pairKey]*pairRead{}}
	if opts.Snapshot {
		ki, err := live.ReadKernel(live.Options{})
		if err != nil {
			return nil, fmt.Errorf("verify: live snapshot: %w", err)
		}
		reads.opts.Kernel = &ki
		// The processes of a run do not change once ready: each (and
		// each ancestor) is read once.
		reads.opts.Tasks = live.NewTaskCache()
	}
	onReady := func(i int, target, prober oracle.Observed) error {
		if opts.Snapshot && i >= 0 && i < len(cases) {
			s := snapshot(cases[i], target, prober, reads, opts.Mutate)
			mu.Lock()
			snaps[i] = s
			mu.Unlock()
		}
		if opts.Progress != nil {
			opts.Progress(int(ready.Add(1)), len(cases))
		}
		return nil
	}
	v.hook.Store(&onReady)
	defer v.hook.Store(nil)
	start := time.Now()
	spawned := v.runner.Spawned()
	results, err := v.runner.Run(ctx, cases)
	if err != nil {
		return nil, err
	}
	rep.Processes = v.runner.Spawned() - spawned
	rep.SnapshotReads = int(reads.n.Load())
	rep.Results = results
	rep.Seconds = time.Since(start).Seconds()
	if rep.Seconds > 0 {
		rep.CasesPerSecond = float64(len(cases)) / rep.Seconds
	}
	for i := range results {
		res := &results[i]
		c := cases[i]
		if res.Err != nil || res.Error != "" {
			rep.Refused++
			if len(rep.Refusals) < 5 {
				rep.Refusals = append(rep.Refusals, fmt.Sprintf("case %d %q: %s", i, c.Name, res.Error))
			}
			continue
		}
		rep.Probes += len(res.Probes)
		w, caller, target, err := World(k, c, *res)
		if err != nil {
			return nil, fmt.Errorf("case %d %q: %w", i, c.Name, err)
		}
		if opts.Mutate != nil {
			opts.Mutate(w, caller, target)
		}
		pred, err := PredictWorld(w, caller, target, res.Probes)
		if err != nil {
			return nil, fmt.Errorf("case %d %q: %w", i, c.Name, err)
		}
		for j, got := range res.Probes {
			if Same(got, pred[j]) {
				rep.Agreed++
				continue
			}
			rep.Disagreed++
			if keep(FromDescription) {
				rep.Disagreements = append(rep.Disagreements, disagreement(FromDescription, i, c, res, got, pred[j], w, caller, target))
			}
		}
		s := snaps[i]
		if s == nil {
			continue
		}
		snaps[i] = nil
		if s.err != nil {
			// A snapshot that could not be read is a failure of the live
			// reader: the processes were alive and verified.
			rep.Disagreed++
			if keep(FromSnapshot) {
				d := disagreement(FromSnapshot, i, c, res, res.Probes[0], oracle.ProbeResult{Probe: res.Probes[0].Probe, Result: "snapshot failed"}, w, caller, target)
				d.Story = s.err.Error()
				rep.Disagreements = append(rep.Disagreements, d)
			}
			continue
		}
		for j, got := range res.Probes {
			if j >= len(s.answers) || s.answers[j].Probe != got.Probe {
				return nil, fmt.Errorf("case %d: snapshot answers do not line up with the probes", i)
			}
			rep.SnapshotProbes++
			ok := Same(got, s.answers[j])
			// As read, the world may lack what user space cannot see;
			// then the reader must say that the answer depends on it.
			plainOK := Same(got, s.plain[j]) || s.excused[j]
			if ok && plainOK {
				rep.SnapshotAgreed++
				if !Same(got, s.plain[j]) {
					rep.SnapshotUnknown++
				}
				continue
			}
			rep.Disagreed++
			if !keep(FromSnapshot) {
				continue
			}
			model := s.answers[j]
			sw, sc, st, err := s.story()
			if err != nil {
				return nil, fmt.Errorf("case %d: %w", i, err)
			}
			d := disagreement(FromSnapshot, i, c, res, got, model, sw, sc, st)
			if ok {
				d.Model = s.plain[j]
				d.Story = "the world as read answers " + AnswerString(s.plain[j]) + " and the reader did not report an unreadable input the answer depends on\n" + d.Story
			}
			rep.Disagreements = append(rep.Disagreements, d)
		}
	}
	return rep, nil
}

// snapshot reads the case's live processes (once per pair: reads) and
// predicts every probe.
func snapshot(c oracle.Case, target, prober oracle.Observed, reads *pairReads, mutate func(*kernel.World, *kernel.Task, *kernel.Task)) *snap {
	sys, err := reads.read(c, target, prober)
	if err != nil {
		return &snap{err: err}
	}
	w := sys.World
	caller := w.TaskByPID(prober.Pid)
	tgt := w.TaskByPID(target.Pid)
	if caller == nil || tgt == nil {
		return &snap{err: fmt.Errorf("live snapshot of pids %d and %d: a process is missing from the world", prober.Pid, target.Pid)}
	}
	if c.Relation == oracle.RelThread {
		// The probed thread is chosen by the prober when it probes; the
		// snapshot models it as a thread of the prober's group.
		th := *caller
		th.Name, th.PID, th.Leader = caller.Name+"-thread", 0, caller
		tgt = &th
	}
	if mutate != nil {
		// The read is shared: break the rule in a copy.
		w, caller, tgt = w.CloneFor(caller, tgt)
		mutate(w, caller, tgt)
	}
	// The same tasks with what the reader cannot see supplied by the
	// verifier.
	fc, ft := supplied(caller, tgt)
	if err := supply(c, fc, ft); err != nil {
		return &snap{err: err}
	}
	probes := probesOf(c)
	s := &snap{world: w, caller: caller, target: tgt, c: c,
		plain: make([]oracle.ProbeResult, 0, len(probes)), answers: make([]oracle.ProbeResult, 0, len(probes)), excused: make([]bool, 0, len(probes))}
	for _, p := range probes {
		a, err := AccessOf(p)
		if err != nil {
			return &snap{err: err}
		}
		la := live.Access{Entry: a.Entry, Syscall: a.Syscall}
		plain := Answer(p, la.Evaluate(w, caller, tgt, false))
		full := Answer(p, la.Evaluate(w, fc, ft, false))
		s.plain = append(s.plain, plain)
		s.answers = append(s.answers, full)
		// Where the supplied facts change the answer, the reader must
		// have said that the answer depends on something it cannot read.
		s.excused = append(s.excused, Same(plain, full) || len(sys.Unknowns(caller, tgt, la)) > 0)
	}
	return s
}

// supply gives the caller and the target of case c (copies the verifier
// may change) what the live reader cannot see: the case's Landlock
// domains, its PR_SET_PTRACER exception and the dumpable flags. The
// dumpable flag is read from the owner of the /proc files, which cannot
// tell 0 from 1 for a task whose euid is root of its namespace; the
// answers as read check the inference.
func supply(c oracle.Case, caller, target *kernel.Task) error {
	if err := landlockLayout(c.Landlock, caller, target); err != nil {
		return err
	}
	if c.Relation == oracle.RelPtracerAny || c.Target.PtracerAny {
		target.Ptracer = &kernel.PtracerException{Any: true}
	}
	if c.Relation != oracle.RelSelf && c.Relation != oracle.RelThread && target.MM != nil {
		target.MM.Dumpable = dumpableOf(c.Target)
	}
	if caller.MM != nil {
		caller.MM.Dumpable = dumpableOf(c.Prober)
	}
	return nil
}

// supplied returns copies of the caller and the target (one copy when
// they are the same task) that the verifier may change without changing
// the world as read.
func supplied(caller, target *kernel.Task) (*kernel.Task, *kernel.Task) {
	cp := func(t *kernel.Task) *kernel.Task {
		x := *t
		if t.MM != nil {
			mm := *t.MM
			x.MM = &mm
		}
		return &x
	}
	fc := cp(caller)
	if target == caller {
		return fc, fc
	}
	return fc, cp(target)
}

func dumpableOf(c oracle.Creds) kernel.Dumpable {
	if c.Dumpable == 1 {
		return kernel.SuidDumpUser
	}
	return kernel.SuidDumpDisable
}

func probesOf(c oracle.Case) []oracle.Probe {
	if len(c.Probes) == 0 {
		return oracle.AllProbes
	}
	return c.Probes
}

// disagreement builds the full record of one disagreeing probe.
func disagreement(src Source, i int, c oracle.Case, res *oracle.Result, got, want oracle.ProbeResult, w *kernel.World, caller, target *kernel.Task) Disagreement {
	d := Disagreement{Source: src, Index: i, Case: c, Target: res.Target, Prober: res.Prober, Probe: got.Probe, Kernel: got, Model: want}
	a, err := AccessOf(got.Probe)
	if err != nil {
		d.Story = err.Error()
		return d
	}
	dec := a.Decide(w, caller, target, true)
	var b strings.Builder
	for n, st := range dec.Steps {
		fmt.Fprintf(&b, "%2d. %-10s %-5s %s\n", n+1, st.Layer, st.Outcome, st.Reason)
	}
	d.Story = b.String()
	if sc, err := Reproduce(w, caller, target, got, fmt.Sprintf("verify disagreement (%s prediction): case %d %q\n%s\nthe expectation is the kernel's answer; the model answered %s",
		src, i, c.Name, describe(c), AnswerString(want))); err == nil {
		d.Scenario = string(sc)
	} else {
		d.Scenario = "# cannot write the world as a scenario: " + err.Error() + "\n"
	}
	return d
}

// Reproduce writes a scenario file with the world and one check: the
// probe from caller to target, expecting the kernel's answer.
func Reproduce(w *kernel.World, caller, target *kernel.Task, kernelAnswer oracle.ProbeResult, comment string) ([]byte, error) {
	a, err := AccessOf(kernelAnswer.Probe)
	if err != nil {
		return nil, err
	}
	if caller.Name == "" || target.Name == "" {
		return nil, errors.New("unnamed task")
	}
	chk := &scenario.Check{Name: "verify: " + string(kernelAnswer.Probe), Caller: caller, Target: target,
		Entry: a.Entry, Syscall: a.Syscall, EntryPath: strings.TrimSuffix(a.Path, "/")}
	switch {
	case !kernelAnswer.OK():
		chk.Expect = kernelAnswer.Result
	case kernelAnswer.Masked:
		chk.Expect = "masked"
	default:
		chk.Expect = "allow"
	}
	return scenario.MarshalWithComment(w, []*scenario.Check{chk}, comment)
}
