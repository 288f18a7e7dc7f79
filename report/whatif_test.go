package report

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/procgate/procgate/internal/testenv"
	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/yama"
	"github.com/procgate/procgate/live"
)

// diffEdgeID is what identifies a DiffEdge: the base report's class ids,
// the relation and the access.
type diffEdgeID struct {
	p, t   string
	rel    Relation
	access string
}

func (k diffEdgeID) String() string {
	return fmt.Sprintf("%s->%s %q %s", k.p, k.t, k.rel, k.access)
}

// changedPairs are the pairs of one diff edge that changed, with the
// model's decision after the change.
type changedPairs map[[2]int]kernel.Decision

// modelChange is a what-if applied to the world by the test itself, not
// by whatif.go: it changes w and returns the undo.
type modelChange func(w *kernel.World) (undo func())

// withYama swaps Yama's scope, adding the module after the capability
// module (and Landlock, which the kernel's lsm= order puts before it)
// when it is not active.
func withYama(s yama.Scope) modelChange {
	return func(w *kernel.World) func() {
		old := w.LSMs
		var lsms []kernel.LSM
		found := false
		for _, l := range old {
			if l.Name() == "yama" {
				l, found = &yama.Module{Scope: s}, true
			}
			lsms = append(lsms, l)
		}
		if !found {
			at := 1
			if len(lsms) > 1 && lsms[1].Name() == "landlock" {
				at = 2
			}
			lsms = slices.Insert(lsms, at, kernel.LSM(&yama.Module{Scope: s}))
		}
		w.LSMs = lsms
		return func() { w.LSMs = old }
	}
}

func withHidePID(h kernel.HidePID) modelChange {
	return func(w *kernel.World) func() {
		old := w.Proc.HidePID
		w.Proc.HidePID = h
		return func() { w.Proc.HidePID = old }
	}
}

func withSuidDumpable(n int) modelChange {
	return func(w *kernel.World) func() {
		old := w.SuidDumpable
		w.SuidDumpable = n
		// What exec would have done: set-id processes get the setting.
		var undo []func()
		done := map[*kernel.MM]bool{}
		for _, t := range w.Tasks {
			c := t.Cred
			if t.MM == nil || done[t.MM] || int(t.MM.Dumpable) != old ||
				c.UID == c.EUID && c.UID == c.SUID && c.GID == c.EGID && c.GID == c.SGID {
				continue
			}
			done[t.MM] = true
			mm, d := t.MM, t.MM.Dumpable
			mm.Dumpable = kernel.Dumpable(n)
			undo = append(undo, func() { mm.Dumpable = d })
		}
		return func() {
			w.SuidDumpable = old
			for _, u := range undo {
				u()
			}
		}
	}
}

// withoutCap removes c from every task of process pid.
func withoutCap(pid int, c kernel.Cap) modelChange {
	return func(w *kernel.World) func() {
		type saved struct {
			t        *kernel.Task
			eff, prm kernel.CapSet
		}
		var s []saved
		for _, t := range w.Tasks {
			if t.TGID == pid {
				s = append(s, saved{t, t.Cred.CapEffective, t.Cred.CapPermitted})
				t.Cred.CapEffective &^= kernel.CapsOf(c)
				t.Cred.CapPermitted &^= kernel.CapsOf(c)
			}
		}
		return func() {
			for _, x := range s {
				x.t.Cred.CapEffective, x.t.Cred.CapPermitted = x.eff, x.prm
			}
		}
	}
}

// callerOf is one principal of the base report: a process, or a login
// class's synthetic shell (pid 0).
type callerOf struct {
	pid  int
	task *kernel.Task
	cls  *Class
}

// modelDiff decides every (principal, target process) pair of the base
// report m, every access, in w before and after change, and returns the
// pairs that lose and gain an access, grouped as a diff groups them (the
// base report's classes and relation), with the decision after the
// change; and how many pairs it decided.
func modelDiff(m *Machine, w *kernel.World, change modelChange) (removed, added map[diffEdgeID]changedPairs, pairs int) {
	var callers []callerOf
	for _, t := range processes(w) {
		if canAsk(t) {
			callers = append(callers, callerOf{t.PID, t, m.Principal(t.PID)})
		}
	}
	for _, c := range m.Principals {
		if c.Login != "" {
			callers = append(callers, callerOf{0, c.Rep(), c})
		}
	}
	targets := processes(w)
	// before[i][j] has bit a set when callers[i] may access targets[j].
	decide := func(f func(i, j int, a Access, d kernel.Decision)) {
		var wg sync.WaitGroup
		next := make(chan int)
		for range runtime.GOMAXPROCS(0) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					c := callers[i].task
					for j, t := range targets {
						if t == c {
							continue
						}
						for a := range NumAccess {
							f(i, j, a, a.Question().Evaluate(w, c, t, false))
						}
					}
				}
			}()
		}
		for i := range callers {
			next <- i
		}
		close(next)
		wg.Wait()
	}
	before := make([][]uint8, len(callers))
	for i := range before {
		before[i] = make([]uint8, len(targets))
	}
	decide(func(i, j int, a Access, d kernel.Decision) {
		if d.Allowed {
			before[i][j] |= 1 << a
		}
	})
	undo := change(w)
	type found struct {
		k    diffEdgeID
		pair [2]int
		d    kernel.Decision
		lost bool
	}
	var mu sync.Mutex
	var changes []found
	decide(func(i, j int, a Access, d kernel.Decision) {
		was := before[i][j]&(1<<a) != 0
		if was == d.Allowed {
			return
		}
		c, t := callers[i], targets[j]
		k := diffEdgeID{c.cls.ID, m.Target(t.PID).ID, m.Related(c.pid, t.PID), a.String()}
		mu.Lock()
		changes = append(changes, found{k, [2]int{c.pid, t.PID}, d, was})
		mu.Unlock()
	})
	undo()
	removed, added = map[diffEdgeID]changedPairs{}, map[diffEdgeID]changedPairs{}
	for _, x := range changes {
		into := added
		if x.lost {
			into = removed
		}
		if into[x.k] == nil {
			into[x.k] = changedPairs{}
		}
		into[x.k][x.pair] = x.d
	}
	for i := range callers {
		for j := range targets {
			if callers[i].task != targets[j] {
				pairs++
			}
		}
	}
	return removed, added, pairs
}

// checkDiff asserts that the diff's edges are exactly the model's changed
// pairs: the same edges, each with the model's number of pairs, an
// example among them and the layer that decides that example after the
// change; and that the per-principal counts add up. It returns the
// number of pairs removed and added.
func checkDiff(t *testing.T, d *Diff, removed, added map[diffEdgeID]changedPairs) (int, int) {
	t.Helper()
	bad := 0
	fail := func(format string, args ...any) {
		t.Helper()
		if bad++; bad <= 20 {
			t.Errorf(format, args...)
		}
	}
	per := map[string][2]int{}
	compare := func(what string, list []DiffEdge, want map[diffEdgeID]changedPairs, side int) int {
		seen := map[diffEdgeID]bool{}
		n := 0
		for _, x := range list {
			k := diffEdgeID{x.Principal, x.Target, x.Relation, x.Access}
			if seen[k] {
				fail("%s: edge %s listed twice", what, k)
			}
			seen[k] = true
			got := want[k]
			if len(got) != x.Pairs {
				fail("%s: edge %s stands for %d pairs; the model changes %d of its pairs %s", what, k, x.Pairs, len(got), pairList(got))
			}
			if dec, ok := got[x.Example]; !ok {
				fail("%s: edge %s: example %v is not a pair the model changes %s", what, k, x.Example, pairList(got))
			} else if dec.Layer != x.Layer {
				fail("%s: edge %s: layer %q, but the model's decision for the example %v is %s by %q", what, k, x.Layer, x.Example, dec.Result(), dec.Layer)
			}
			c := per[x.Principal]
			c[side] += x.Pairs
			per[x.Principal] = c
			n += x.Pairs
		}
		var keys []diffEdgeID
		for k := range want {
			if !seen[k] {
				keys = append(keys, k)
			}
		}
		slices.SortFunc(keys, func(a, b diffEdgeID) int { return cmp.Compare(a.String(), b.String()) })
		for _, k := range keys {
			fail("%s: the model changes %d pairs of edge %s %s, the diff lists no such edge", what, len(want[k]), k, pairList(want[k]))
		}
		return n
	}
	nr := compare("removed", d.Removed, removed, 0)
	na := compare("added", d.Added, added, 1)
	if len(d.ByPrincipal) != len(per) {
		fail("by_principal lists %d principals, the edges %d", len(d.ByPrincipal), len(per))
	}
	for _, x := range d.ByPrincipal {
		if c := per[x.Principal]; x.Removed != c[0] || x.Added != c[1] {
			fail("by_principal %s: removed %d added %d, the edges say %d and %d", x.Principal, x.Removed, x.Added, c[0], c[1])
		}
	}
	if bad > 20 {
		t.Errorf("… and %d more disagreements", bad-20)
	}
	return nr, na
}

func pairList(p changedPairs) string {
	var s []string
	for k := range p {
		s = append(s, fmt.Sprint(k))
	}
	slices.Sort(s)
	if len(s) > 8 {
		s = append(s[:8], "…")
	}
	return "[" + strings.Join(s, " ") + "]"
}

// whatIfCase is one what-if with the test's own version of the change.
type whatIfCase struct {
	spec   string
	change modelChange
}

var yamaCases = []whatIfCase{
	{"yama=0", withYama(yama.Disabled)},
	{"yama=1", withYama(yama.Relational)},
	{"yama=2", withYama(yama.Capability)},
	{"yama=3", withYama(yama.NoAttach)},
}

var hidepidCases = []whatIfCase{
	{"hidepid=noaccess", withHidePID(kernel.HidePIDNoAccess)},
	{"hidepid=invisible", withHidePID(kernel.HidePIDInvisible)},
	{"hidepid=ptraceable", withHidePID(kernel.HidePIDPtraceable)},
	{"hidepid=off", withHidePID(kernel.HidePIDOff)},
}

// runWhatIf builds the report with the what-if and checks its diff pair
// by pair against the model. It returns the diff and the numbers of
// pairs decided, removed and added.
func runWhatIf(t *testing.T, in Input, wc whatIfCase) (*Diff, int, int, int) {
	t.Helper()
	m, err := Build(in, Options{WhatIf: []WhatIf{mustWhatIf(t, wc.spec)}})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.WhatIf) != 1 || m.WhatIf[0].Change != wc.spec {
		t.Fatalf("what-if %s: diffs %+v", wc.spec, m.WhatIf)
	}
	removed, added, pairs := modelDiff(m, in.World, wc.change)
	nr, na := checkDiff(t, m.WhatIf[0], removed, added)
	return m.WhatIf[0], pairs, nr, na
}

// TestWhatIfYamaReach: on a machine at Yama scope 0 with descendants, a
// tracer, exceptions, CAP_SYS_PTRACE, threads and a shared address
// space, yama=1 removes exactly the attach pairs the model says
// disappear, and adds nothing.
func TestWhatIfYamaReach(t *testing.T) {
	w := loadWorld(t, "testdata/reach.yaml")
	logins := []Login{{Name: "bob", UID: 1500, GID: 1500, Groups: []uint32{1500}}}
	d, pairs, nr, na := runWhatIf(t, Input{Name: "reach", Source: "scenario", World: w, Logins: logins}, yamaCases[1])
	if na != 0 || nr == 0 {
		t.Errorf("yama 0 -> 1: %d pairs removed, %d added; want some removed and none added", nr, na)
	}
	for _, x := range d.Removed {
		if x.Access != AttachReal.String() && x.Access != AttachFS.String() || x.Layer != "yama" {
			t.Errorf("yama 0 -> 1 removed %s by %q: want attach accesses, denied by yama (%+v)", x.Access, x.Layer, x)
		}
	}
	// What must stay: the relations Yama's scope 1 lets through.
	m, err := Build(Input{Name: "reach", Source: "scenario", World: w}, Options{WhatIf: []WhatIf{mustWhatIf(t, "yama=1")}})
	if err != nil {
		t.Fatal(err)
	}
	lost := map[string]bool{}
	for _, x := range m.WhatIf[0].Removed {
		lost[x.Principal+" "+x.Target+" "+string(x.Relation)] = true
	}
	for _, p := range [][2]string{{"gdb", "debuggee"}, {"gdb", "crashy"}, {"shell", "debuggee"}, {"editor", "anyone"}, {"monitor", "editor"}, {"init", "shell"}} {
		c, tg := w.Task(p[0]), w.Task(p[1])
		k := m.Principal(c.PID).ID + " " + m.Target(tg.PID).ID + " " + string(m.Related(c.PID, tg.PID))
		if lost[k] {
			t.Errorf("yama=1 removes %s -> %s (edge %s), which scope 1 allows", p[0], p[1], k)
		}
	}
	if !lost[m.Principal(w.Task("gdb").PID).ID+" "+m.Target(w.Task("editor").PID).ID+" "] {
		t.Error("yama=1 does not remove gdb -> editor (unrelated, same uid)")
	}
	t.Logf("yama 0 -> 1: %d pairs × %d accesses decided; %d pair-accesses removed in %d edges", pairs, NumAccess, nr, len(d.Removed))
}

// TestWhatIfDeterministic builds the same what-if ten times: the diff,
// its examples and layers included, is the same every time (it was not
// when related pairs were visited in map order).
func TestWhatIfDeterministic(t *testing.T) {
	// yama=2 takes attach from every descendant pair: shell -> editor and
	// shell -> editor2 are one diff edge of two related pairs.
	w := loadWorld(t, "testdata/reach.yaml")
	var first []DiffEdge
	for i := range 10 {
		m, err := Build(Input{Name: "reach", Source: "scenario", World: w}, Options{WhatIf: []WhatIf{mustWhatIf(t, "yama=2")}})
		if err != nil {
			t.Fatal(err)
		}
		got := m.WhatIf[0].Removed
		if len(got) == 0 {
			t.Fatal("yama=2 removes nothing")
		}
		if i == 0 {
			first = got
		} else if !slices.Equal(got, first) {
			t.Fatalf("build %d: the diff differs from the first build's:\n%+v\n%+v", i, got, first)
		}
	}
}

// TestWhatIfScenarios checks every Yama, hidepid and suid_dumpable
// what-if on every scenario, pair by pair. (The model reads
// fs.suid_dumpable in no decision: the kernel applies it when a process
// execs a set-id program, so the what-if gives set-id processes the new
// value, as exec would have.)
func TestWhatIfScenarios(t *testing.T) {
	total, changed := 0, 0
	for _, path := range scenarioFiles(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			w := loadWorld(t, path)
			var cases []whatIfCase
			cases = append(cases, yamaCases...)
			cases = append(cases, hidepidCases...)
			cases = append(cases, whatIfCase{"suid_dumpable=2", withSuidDumpable(2)}, whatIfCase{"suid_dumpable=1", withSuidDumpable(1)}, whatIfCase{"suid_dumpable=0", withSuidDumpable(0)})
			for _, wc := range cases {
				base := settingsOf(w)
				d, pairs, nr, na := runWhatIf(t, Input{Name: filepath.Base(path), Source: "scenario", World: w}, wc)
				total += pairs
				changed += nr + na
				if settingsOf(w) != base {
					t.Fatalf("%s: the world is left changed: %+v, was %+v", wc.spec, settingsOf(w), base)
				}
				// Raising Yama from 0, or hiding pids where none were
				// hidden, only takes away.
				if (strings.HasPrefix(wc.spec, "yama=") && base.Yama <= 0 || wc.spec != "hidepid=off" && strings.HasPrefix(wc.spec, "hidepid=") && base.HidePID == "off") && na != 0 {
					t.Errorf("%s from %+v adds %d pairs: %+v", wc.spec, base, na, d.Added)
				}
				t.Logf("%s: %d pairs, %d removed, %d added", wc.spec, pairs, nr, na)
			}
		})
	}
	t.Logf("%d pairs × %d accesses decided twice; %d pair-accesses changed, each matched to the diff", total, NumAccess, changed)
}

// TestWhatIfDropCap: dropping a capability removes what it granted as a
// caller and adds what it blocked as a target (the capability subset
// rule), class splits included.
func TestWhatIfDropCap(t *testing.T) {
	w := loadWorld(t, "testdata/reach.yaml")
	logins := []Login{
		{Name: "mon", UID: 3000, GID: 3000},                         // the monitor's ids without its capability
		{Name: "bob", UID: 1500, GID: 1500, Groups: []uint32{1500}}, // nobody's
	}
	in := Input{Name: "reach", Source: "scenario", World: w, Logins: logins}
	for _, tc := range []struct {
		spec         string
		pid          int
		cap          kernel.Cap
		removed, add bool
	}{
		{"drop-cap=3000:sys_ptrace", 3000, kernel.CapSysPtrace, true, true},  // the monitor loses its reach; its own uid's login gains the monitor
		{"drop-cap=800:sys_ptrace", 800, kernel.CapSysPtrace, true, false},   // sshd leaves init's class; callers with CAP_SYS_PTRACE pass the subset rule anyway
		{"drop-cap=1011:net_raw", 1011, kernel.CapNetRaw, false, true},       // pinger becomes reachable by its uid
		{"drop-cap=4000:sys_ptrace", 4000, kernel.CapSysPtrace, true, false}, // container root; its namespace's owner reaches it anyway
		{"drop-cap=1010:setuid", 1010, kernel.CapSetuid, false, false},       // passwd keeps CAP_SYS_PTRACE, which passes where the subset rule no longer would
	} {
		t.Run(tc.spec, func(t *testing.T) {
			_, pairs, nr, na := runWhatIf(t, in, whatIfCase{tc.spec, withoutCap(tc.pid, tc.cap)})
			if (nr > 0) != tc.removed || (na > 0) != tc.add {
				t.Errorf("%s: %d removed, %d added; want removed %v, added %v", tc.spec, nr, na, tc.removed, tc.add)
			}
			t.Logf("%s: %d pairs, %d removed, %d added", tc.spec, pairs, nr, na)
		})
	}
}

// maxLivePairsProcs bounds the live world TestWhatIfYamaLive decides
// every pair of.
const maxLivePairsProcs = 400

// TestWhatIfYamaLive: yama=1 on this machine's processes, pair by pair,
// with two unrelated processes of one user and one of another started
// first, so that Yama has attach pairs to take away.
func TestWhatIfYamaLive(t *testing.T) {
	testenv.RequireRoot(t, "starts processes under other uids and reads every process")
	var mine []int
	for _, uid := range []uint32{1000, 1000, 1001} {
		cmd := exec.Command("sleep", "1000")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
		mine = append(mine, cmd.Process.Pid)
	}
	start := time.Now()
	sys, err := live.Read(live.Options{})
	if err != nil {
		t.Fatal(err)
	}
	whole := len(processes(sys.World))
	if whole > maxLivePairsProcs {
		// Every pair is decided twice per access: on a busy machine,
		// read a fixed sample of its processes (with their ancestors,
		// leaders and tracers) and the test's own.
		var pids []int
		for _, x := range processes(sys.World) {
			pids = append(pids, x.PID)
		}
		rand.New(rand.NewPCG(7, 7)).Shuffle(len(pids), func(i, j int) { pids[i], pids[j] = pids[j], pids[i] })
		pids = append(pids[:maxLivePairsProcs-len(mine)], mine...)
		for range 100 {
			sys, err = live.ReadPIDs(pids, live.Options{})
			var pe *live.ProcessError
			if !errors.As(err, &pe) || !slices.Contains(pids[:len(pids)-len(mine)], pe.PID) {
				break
			}
			pids = slices.DeleteFunc(pids, func(p int) bool { return p == pe.PID }) // it exited meanwhile
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%d processes: the what-if is checked on %d of them (with their ancestors: %d)", whole, len(pids), len(processes(sys.World)))
	}
	for _, pid := range mine {
		if sys.World.TaskByPID(pid) == nil {
			t.Fatalf("pid %d, started by the test, is not in the live world", pid)
		}
	}
	in := Input{Name: "live", Source: "live", World: sys.World, Live: sys}
	s := settingsOf(sys.World)
	wc := yamaCases[1]
	if s.Yama >= 1 {
		wc = yamaCases[0] // already restricted: lowering it shows the same pairs, added
	}
	d, pairs, nr, na := runWhatIf(t, in, wc)
	switch {
	case s.Yama <= 0 && (na != 0 || nr == 0):
		t.Errorf("%s from Yama %d: %d pairs removed, %d added; want some removed (the test's two uid 1000 processes) and none added", wc.spec, s.Yama, nr, na)
	case s.Yama == 1 && na == 0:
		t.Errorf("%s from Yama 1 adds nothing", wc.spec)
	}
	t.Logf("live (%d processes, Yama %d): %s: %d pairs × %d accesses decided twice, %d removed and %d added in %d+%d edges, %v",
		len(processes(sys.World)), s.Yama, wc.spec, pairs, NumAccess, nr, na, len(d.Removed), len(d.Added), time.Since(start).Round(time.Millisecond))
}
