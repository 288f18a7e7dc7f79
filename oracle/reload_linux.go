package oracle

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/bpflsm"
	"github.com/procgate/procgate/kernel/lsm/bpf"
)

// hammerSpec is what the hammer role opens (each path in turn), and for
// how long.
type hammerSpec struct {
	Paths  []string `json:"paths"`
	Millis int      `json:"millis"`
}

// hammerCount is what the hammer saw of one path.
type hammerCount struct {
	Opens   int            `json:"opens"`
	Allowed int            `json:"allowed"`
	Errors  map[string]int `json:"errors,omitempty"`
}

// hammerReport is the hammer's one output line.
type hammerReport struct {
	Counts  []hammerCount `json:"counts"`
	Seconds float64       `json:"seconds"`
}

// runHammer opens (and reads a little of) each path in turn until the
// time is up, counting what the kernel answers, then writes the counts.
func runHammer(spec *childSpec) error {
	h := spec.Hammer
	if h == nil || len(h.Paths) == 0 {
		return errors.New("hammer without paths")
	}
	rep := hammerReport{Counts: make([]hammerCount, len(h.Paths))}
	for i := range rep.Counts {
		rep.Counts[i].Errors = map[string]int{}
	}
	var buf [64]byte
	start := time.Now()
	end := start.Add(time.Duration(h.Millis) * time.Millisecond)
	for time.Now().Before(end) {
		for range 64 {
			for i, p := range h.Paths {
				c := &rep.Counts[i]
				c.Opens++
				fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
				if err == nil {
					// environ is checked again at read (mm_access).
					_, err = unix.Read(fd, buf[:])
					unix.Close(fd)
				}
				if err != nil {
					c.Errors[errName(err)]++
					continue
				}
				c.Allowed++
			}
		}
	}
	rep.Seconds = time.Since(start).Seconds()
	return writeJSON(os.Stdout, rep)
}

// vmEnforceChecks checks, while procgate's program enforces rs, what the
// cases cannot: a reload under load (VMReload) and, after it, that the
// program's cost per check and that detaching removes everything.
// guarded is a uid rs protects from every reader.
func (r *Runner) vmEnforceChecks(step string, rs *bpf.RuleSet, guarded uint32, reloads int) VMReload {
	res := VMReload{Step: step}
	fail := func(err error) VMReload { res.Err = err.Error(); return res }
	var procs []*proc
	defer func() {
		for _, p := range procs {
			p.close(10 * time.Second)
		}
	}()
	// spawn starts a role as the cases' processes start (in the Runner's
	// cgroup, outside the exemption).
	spawn := func(q *spawnReq) (*proc, error) {
		q.stderr = &tailBuffer{}
		p, err := r.start(q)
		if err == nil {
			procs = append(procs, p)
		}
		return p, err
	}
	target := func(uid uint32) (int, error) {
		p, err := spawn(&spawnReq{role: roleTarget, creds: User(uid, uid)})
		if err == nil {
			err = p.awaitReady(r, r.opts.Timeout)
		}
		if err != nil {
			return 0, err
		}
		return p.ready.Pid, nil
	}
	hammer := func(millis int, paths ...string) (*proc, error) {
		return spawn(&spawnReq{role: roleHammer, hammer: &hammerSpec{Paths: paths, Millis: millis}})
	}
	report := func(p *proc, millis int) (hammerReport, error) {
		var rep hammerReport
		line, err := p.readLine(time.Duration(millis)*time.Millisecond + r.opts.Timeout)
		if err == nil {
			err = json.Unmarshal(line, &rep)
		}
		return rep, err
	}

	// The cases' denials, reported through the ring buffer.
	rd, err := bpflsm.OpenDenials(bpflsm.DefaultPinDir)
	if err != nil {
		return fail(err)
	}
	defer rd.Close()
	res.Audit = &VMAudit{}
	if err := res.Audit.drain(rd, rs, 0, &res.Audit.CaseEvents); err != nil {
		return fail(err)
	}
	st, err := bpflsm.Stat(bpflsm.DefaultPinDir)
	if err != nil {
		return fail(err)
	}
	res.Audit.CaseDenials, res.Audit.CaseLost = st.Denials, st.Lost
	pg, err := target(guarded)
	if err != nil {
		return fail(fmt.Errorf("start the protected target: %w", err))
	}
	pu, err := target(guarded + 1) // in no class of rs
	if err != nil {
		return fail(fmt.Errorf("start the unrestricted target: %w", err))
	}
	// The broker, in the exempt cgroup, serves what its policy grants
	// of the protected process, and only that.
	b := r.vmBrokerCheck(pg, pu, guarded, func(millis int, paths ...string) (hammerReport, error) {
		p, err := hammer(millis, paths...)
		if err != nil {
			return hammerReport{}, err
		}
		return report(p, millis)
	})
	res.Broker = &b
	// Reload under load: environ refused, status read, through every
	// swap.
	const millis = 3000
	hp, err := hammer(millis, procPath(pg, "environ"), procPath(pg, "status"))
	if err != nil {
		return fail(fmt.Errorf("start the hammer: %w", err))
	}
	gap := time.Duration(millis) * time.Millisecond / time.Duration(reloads+1)
	for i := range reloads {
		time.Sleep(gap)
		next := *rs
		next.Generation = rs.Generation + uint64(i) + 1
		if err := bpflsm.Reload(&next, bpflsm.DefaultPinDir); err != nil {
			return fail(fmt.Errorf("reload %d: %w", i+1, err))
		}
		res.Reloads++
	}
	rep, err := report(hp, millis)
	if err != nil || len(rep.Counts) != 2 {
		return fail(fmt.Errorf("hammer report: %v", err))
	}
	res.Opens, res.Allowed, res.Errors = rep.Counts[0].Opens, rep.Counts[0].Allowed, rep.Counts[0].Errors
	res.StatusOpens, res.StatusAllowed = rep.Counts[1].Opens, rep.Counts[1].Allowed
	res.Seconds = rep.Seconds
	// Their denials: every one of the protected process, by the protect
	// rule; those the full ring buffer had no room for are counted.
	if err := res.Audit.drain(rd, rs, pg, &res.Audit.LoadEvents); err != nil {
		return fail(err)
	}
	if st, err = bpflsm.Stat(bpflsm.DefaultPinDir); err != nil {
		return fail(err)
	}
	res.Audit.Denials, res.Audit.Lost = st.Denials, st.Lost
	rd.Close()
	// The program's cost: environ of a process no rule restricts, read
	// with the program attached and after detaching it.
	const benchMillis = 1000
	ns := func() (float64, error) {
		p, err := hammer(benchMillis, procPath(pu, "environ"))
		if err != nil {
			return 0, err
		}
		rep, err := report(p, benchMillis)
		if err != nil || len(rep.Counts) != 1 || rep.Counts[0].Allowed == 0 {
			return 0, fmt.Errorf("bench hammer: %v %+v", err, rep)
		}
		return rep.Seconds * 1e9 / float64(rep.Counts[0].Opens), nil
	}
	if res.NsWith, err = ns(); err != nil {
		return fail(err)
	}
	// The same with LargeRules more rules, hashed: the cost does not
	// grow with them, and the protected process stays protected.
	large := WithHashedRules(rs, VMLargeRules)
	large.Generation = rs.Generation + uint64(reloads) + 1
	if err := bpflsm.Reload(large, bpflsm.DefaultPinDir); err != nil {
		return fail(fmt.Errorf("reload %d rules: %w", len(large.Rules), err))
	}
	res.LargeRules = len(large.Rules)
	if res.NsWithLarge, err = ns(); err != nil {
		return fail(err)
	}
	// reads opens path for millis: the opens and those that read.
	reads := func(millis int, path string) (int, int, error) {
		p, err := hammer(millis, path)
		if err != nil {
			return 0, 0, err
		}
		rep, err := report(p, millis)
		if err != nil || len(rep.Counts) != 1 {
			return 0, 0, fmt.Errorf("reads of %s: %v", path, err)
		}
		return rep.Counts[0].Opens, rep.Counts[0].Allowed, nil
	}
	if res.LargeOpens, res.LargeAllowed, err = reads(200, procPath(pg, "environ")); err != nil {
		return fail(fmt.Errorf("under %d rules: %w", len(large.Rules), err))
	}
	// procgate enforce, the command, takes over and detaches at the end.
	cli := r.vmEnforceCLI(pg, pu, guarded, reads)
	res.CLI = &cli
	if err := bpflsm.Detach(bpflsm.DefaultPinDir); err != nil {
		return fail(fmt.Errorf("detach: %w", err))
	}
	if _, err := os.Stat(bpflsm.DefaultPinDir); !errors.Is(err, os.ErrNotExist) {
		res.PinsLeft = true
	}
	if res.NsWithout, err = ns(); err != nil {
		return fail(err)
	}
	// Detached: the protected process's environ reads again.
	if res.AfterDetachOpens, res.AfterDetachAllowed, err = reads(100, procPath(pg, "environ")); err != nil {
		return fail(fmt.Errorf("after detach: %w", err))
	}
	return res
}

// VMAudit is the check of the denials the program reports through its
// ring buffer (what procgate enforce audits): every denial is either read
// or counted as unreported, each read names a rule of the rule set in
// force, and under the reload load each is the protected process's.
type VMAudit struct {
	// CaseEvents were read after the cases, when the program's counters
	// said CaseDenials and CaseLost.
	CaseEvents  int    `json:"case_events"`
	CaseDenials uint64 `json:"case_denials"`
	CaseLost    uint64 `json:"case_lost"`
	// LoadEvents were read after the broker check and the reloads under
	// load, when the counters said Denials and Lost.
	LoadEvents int    `json:"load_events"`
	Denials    uint64 `json:"denials"`
	Lost       uint64 `json:"lost"`
	// Bad lists the denials read that did not fit (at most 5).
	Bad []string `json:"bad,omitempty"`
	// MinGen and MaxGen bound the rule-set generations the denials
	// carried.
	MinGen uint64 `json:"min_gen"`
	MaxGen uint64 `json:"max_gen"`
}

// drain reads the denials waiting in rd into *n, checking each against
// rs (and, when target is not 0, that it is of that process and by a
// protect rule).
func (a *VMAudit) drain(rd *bpflsm.Denials, rs *bpf.RuleSet, target int, n *int) error {
	l := rs.Layout()
	for {
		rd.SetDeadline(time.Now().Add(200 * time.Millisecond))
		d, err := rd.Read()
		if errors.Is(err, bpflsm.ErrNoDenial) {
			return nil
		}
		if err != nil {
			return err
		}
		*n++
		if a.MinGen == 0 || d.Generation < a.MinGen {
			a.MinGen = d.Generation
		}
		a.MaxGen = max(a.MaxGen, d.Generation)
		bad := ""
		switch r := l.DecideClasses(d.Rule, d.SubjectClasses, d.TargetClasses, d.Access); {
		case r == nil:
			bad = "names no rule of the rule set"
		case target != 0 && (d.TTGID != target || r.Subject != -1 || d.Access != bpf.Read):
			bad = fmt.Sprintf("is not the protected process's (%d) by its protect rule", target)
		}
		if bad != "" && len(a.Bad) < 5 {
			a.Bad = append(a.Bad, fmt.Sprintf("%+v %s", d, bad))
		}
	}
}

// Check returns why the audit check failed, or nil.
func (a *VMAudit) Check() error {
	var errs []error
	if a.CaseEvents == 0 {
		errs = append(errs, errors.New("the cases' denials reported none"))
	}
	if uint64(a.CaseEvents)+a.CaseLost != a.CaseDenials {
		errs = append(errs, fmt.Errorf("after the cases: %d denials read and %d unreported, the program counted %d", a.CaseEvents, a.CaseLost, a.CaseDenials))
	}
	if a.LoadEvents == 0 || uint64(a.CaseEvents+a.LoadEvents)+a.Lost != a.Denials {
		errs = append(errs, fmt.Errorf("after the load: %d+%d denials read and %d unreported, the program counted %d", a.CaseEvents, a.LoadEvents, a.Lost, a.Denials))
	}
	for _, b := range a.Bad {
		errs = append(errs, errors.New("a denial "+b))
	}
	return errors.Join(errs...)
}
