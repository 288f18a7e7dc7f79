package kernel_test

import (
	"flag"
	"fmt"
	"testing"

	"pgregory.net/rapid"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/capability"
	"github.com/procgate/procgate/kernel/lsm/landlock"
	"github.com/procgate/procgate/kernel/lsm/yama"
)

// A failing property prints the seed to reproduce it (-rapid.seed=N);
// it does not write fail files into the shared testdata tree.
func init() {
	if f := flag.Lookup("rapid.nofailfile"); f != nil {
		_ = f.Value.Set("true")
	}
}

// Random worlds for property tests. Every world is well formed (it passes
// World.Validate): effective ⊆ permitted, mm-less tasks are kernel threads,
// zombies or exiting tasks, threads share their leader's mm, parents form a
// forest, namespaces a tree.

var (
	propReleases = []kernel.Release{{4, 9, 0}, {5, 10, 0}, {6, 1, 0}, {6, 12, 0}, {6, 18, 20}, {6, 18, 44}}
	propIDs      = []uint32{0, 1000, 2000}
	propCaps     = []kernel.Cap{kernel.CapSysPtrace, kernel.CapDACReadSearch, kernel.CapDACOverride,
		kernel.CapSysAdmin, kernel.CapPerfmon, kernel.CapNetRaw}
	propModes = func() []kernel.Mode {
		var ms []kernel.Mode
		for _, rw := range []kernel.Mode{kernel.ModeRead, kernel.ModeAttach} {
			for _, cr := range []kernel.Mode{kernel.ModeFSCreds, kernel.ModeRealCreds} {
				ms = append(ms, rw|cr, rw|cr|kernel.ModeNoAudit)
			}
		}
		return ms
	}()
)

// propWorld is a generated world and what the generator decided about it.
type propWorld struct {
	w *kernel.World
	// yama is the Yama module when the world has one.
	yama *yama.Module
	// landlock tells whether the Landlock module is active.
	landlock bool
}

// GoString is what rapid prints for a drawn world.
func (p *propWorld) GoString() string { return p.String() }

// String summarises the world for rapid's failure reports.
func (p *propWorld) String() string {
	s := fmt.Sprintf("release %s lsm %v suid_dumpable %d hidepid %s", p.w.Release, lsmNames(p.w), p.w.SuidDumpable, p.w.Proc.HidePID)
	for _, ns := range p.w.Namespaces[1:] {
		s += fmt.Sprintf("\n  userns %s parent %s level %d owner %d", ns.Name, ns.Parent.Name, ns.Level, ns.Owner)
	}
	for _, t := range p.w.Tasks {
		s += "\n  " + describeTask(t)
	}
	return s
}

func lsmNames(w *kernel.World) []string {
	var out []string
	for _, m := range w.LSMs {
		out = append(out, m.Name())
	}
	return out
}

func describeTask(t *kernel.Task) string {
	c := &t.Cred
	s := fmt.Sprintf("%s pid %d tgid %d uids %d/%d/%d/%d gids %d/%d/%d/%d groups %v eff {%s} prm {%s} ns %s",
		t.Name, t.PID, t.TGID, c.UID, c.EUID, c.SUID, c.FSUID, c.GID, c.EGID, c.SGID, c.FSGID, c.Groups,
		c.CapEffective, c.CapPermitted, c.UserNS.Name)
	switch {
	case t.MM != nil:
		s += fmt.Sprintf(" mm{dumpable %d ns %s %p}", t.MM.Dumpable, t.MM.UserNS.Name, t.MM)
	case t.Kthread:
		s += " kthread"
	default:
		s += fmt.Sprintf(" %s user_dumpable=%v", t.State, t.UserDumpable)
	}
	if t.Parent != nil {
		s += " parent " + t.Parent.Name
	}
	if t.Tracer != nil {
		s += " tracer " + t.Tracer.Name
	}
	if x := t.Ptracer; x != nil {
		if x.Any {
			s += " ptracer any"
		} else {
			s += " ptracer " + x.Tracer.Name
		}
	}
	if t.Landlock != nil {
		s += " landlock " + t.Landlock.Name
	}
	return s
}

func drawCaps(t *rapid.T, label string) kernel.CapSet {
	var s kernel.CapSet
	for _, c := range propCaps {
		if rapid.IntRange(0, 3).Draw(t, label+"."+c.String()) == 0 {
			s |= kernel.CapsOf(c)
		}
	}
	return s
}

func drawID(t *rapid.T, label string) uint32 { return rapid.SampledFrom(propIDs).Draw(t, label) }

// genWorld draws a world; withYama and withLandlock force a module in or
// out, nil lets the generator choose.
func genWorld(withYama, withLandlock *bool) *rapid.Generator[*propWorld] {
	return rapid.Custom(func(t *rapid.T) *propWorld {
		rel := rapid.SampledFrom(propReleases).Draw(t, "release")
		w := kernel.NewWorld(rel)
		p := &propWorld{w: w}
		w.SuidDumpable = rapid.IntRange(0, 2).Draw(t, "suid_dumpable")
		w.Proc.HidePID = rapid.SampledFrom([]kernel.HidePID{kernel.HidePIDOff, kernel.HidePIDOff,
			kernel.HidePIDNoAccess, kernel.HidePIDInvisible, kernel.HidePIDPtraceable}).Draw(t, "hidepid")
		if rapid.Bool().Draw(t, "proc.gid") {
			w.Proc.GID, w.Proc.HasGID = kernel.KGID(drawID(t, "proc.gid.value")), true
		}

		// User namespaces: a tree under init.
		for i := range rapid.IntRange(0, 3).Draw(t, "namespaces") {
			parent := rapid.SampledFrom(w.Namespaces).Draw(t, "ns.parent")
			owner := drawID(t, "ns.owner")
			ns := &kernel.UserNS{
				Name: fmt.Sprintf("ns%d", i+1), Parent: parent, Level: parent.Level + 1,
				Owner: kernel.KUID(owner), Group: kernel.KGID(owner),
				UIDMap: []kernel.IDExtent{{Inside: 0, Outside: owner, Count: 1}},
				GIDMap: []kernel.IDExtent{{Inside: 0, Outside: owner, Count: 1}},
			}
			if rapid.Bool().Draw(t, "ns.identity") {
				ns.UIDMap = append(ns.UIDMap, kernel.IDExtent{Inside: 1000, Outside: 1000, Count: 1001})
				ns.GIDMap = append(ns.GIDMap, kernel.IDExtent{Inside: 1000, Outside: 1000, Count: 1001})
			}
			w.Namespaces = append(w.Namespaces, ns)
		}

		// Landlock domains: two top-level domains, one nested in the first.
		outer := &kernel.LandlockDomain{Name: "outer"}
		domains := []*kernel.LandlockDomain{nil, nil, outer, {Name: "outer/inner", Parent: outer}, {Name: "other"}}

		n := rapid.IntRange(1, 6).Draw(t, "tasks")
		var leaders []*kernel.Task
		for i := range n {
			tk := &kernel.Task{Name: fmt.Sprintf("t%d", i), PID: 100 + i}
			tk.TGID = tk.PID
			tk.Leader = tk
			if len(leaders) > 0 && rapid.IntRange(0, 3).Draw(t, "thread") == 0 {
				l := rapid.SampledFrom(leaders).Draw(t, "thread.leader")
				tk.TGID, tk.Leader = l.PID, l
			}
			c := &tk.Cred
			c.UID, c.EUID, c.SUID, c.FSUID = kernel.KUID(drawID(t, "uid")), kernel.KUID(drawID(t, "euid")), kernel.KUID(drawID(t, "suid")), kernel.KUID(drawID(t, "fsuid"))
			c.GID, c.EGID, c.SGID, c.FSGID = kernel.KGID(drawID(t, "gid")), kernel.KGID(drawID(t, "egid")), kernel.KGID(drawID(t, "sgid")), kernel.KGID(drawID(t, "fsgid"))
			if rapid.Bool().Draw(t, "groups") {
				c.Groups = []kernel.KGID{kernel.KGID(drawID(t, "group"))}
			}
			c.CapPermitted = drawCaps(t, "permitted")
			c.CapEffective = drawCaps(t, "effective") & c.CapPermitted
			c.UserNS = rapid.SampledFrom(w.Namespaces).Draw(t, "userns")
			tk.Landlock = rapid.SampledFrom(domains).Draw(t, "landlock")

			if tk.Leader != tk {
				// A thread shares its leader's address space (or lack of one)
				// and life-cycle state.
				tk.MM, tk.Kthread, tk.State, tk.UserDumpable = tk.Leader.MM, tk.Leader.Kthread, tk.Leader.State, tk.Leader.UserDumpable
			} else {
				if len(leaders) > 0 && rapid.Bool().Draw(t, "has.parent") {
					tk.Parent = rapid.SampledFrom(leaders).Draw(t, "parent")
				}
				switch rapid.IntRange(0, 5).Draw(t, "mm.kind") {
				case 0:
					tk.Kthread = true
				case 1:
					tk.State = kernel.Zombie
				case 2:
					tk.State = kernel.Exiting
				case 3:
					if other := leadersWithMM(leaders); len(other) > 0 {
						tk.MM = rapid.SampledFrom(other).Draw(t, "mm.share").MM // vfork, CLONE_VM
						break
					}
					fallthrough
				default:
					tk.MM = &kernel.MM{
						Dumpable: kernel.Dumpable(rapid.IntRange(0, 2).Draw(t, "dumpable")),
						UserNS:   rapid.SampledFrom(w.Namespaces).Draw(t, "mm.userns"),
					}
				}
				if tk.MM == nil {
					tk.UserDumpable = rapid.Bool().Draw(t, "user_dumpable")
				}
				leaders = append(leaders, tk)
			}
			w.AddTask(tk)
		}
		// Relations that may point forward: tracers and Yama exceptions.
		for _, tk := range w.Tasks {
			if rapid.IntRange(0, 4).Draw(t, "traced") == 0 {
				if tr := rapid.SampledFrom(w.Tasks).Draw(t, "tracer"); !kernel.SameThreadGroup(tr, tk) {
					tk.Tracer = tr
				}
			}
			if tk.Leader == tk {
				switch rapid.IntRange(0, 4).Draw(t, "ptracer") {
				case 0:
					tk.Ptracer = &kernel.PtracerException{Any: true}
				case 1:
					tk.Ptracer = &kernel.PtracerException{Tracer: rapid.SampledFrom(w.Tasks).Draw(t, "ptracer.task")}
				}
			}
		}

		w.LSMs = []kernel.LSM{capability.New()}
		if withLandlock == nil && rapid.Bool().Draw(t, "lsm.landlock") || withLandlock != nil && *withLandlock {
			w.LSMs = append(w.LSMs, landlock.New(rapid.SampledFrom([]int{2, 7}).Draw(t, "landlock.abi")))
			p.landlock = true
		}
		if withYama == nil && rapid.Bool().Draw(t, "lsm.yama") || withYama != nil && *withYama {
			m, err := yama.New(rapid.IntRange(0, 3).Draw(t, "yama.scope"))
			if err != nil {
				t.Fatal(err)
			}
			w.LSMs = append(w.LSMs, m)
			p.yama = m
		}
		if err := w.Validate(); err != nil {
			t.Fatalf("generator made an invalid world: %v\n%s", err, p)
		}
		return p
	})
}

func leadersWithMM(ls []*kernel.Task) []*kernel.Task {
	var out []*kernel.Task
	for _, l := range ls {
		if l.MM != nil {
			out = append(out, l)
		}
	}
	return out
}

func ptr(b bool) *bool { return &b }

// access is one question a property asks of a world.
type access struct {
	name  string
	entry *kernel.Entry
	sc    *kernel.Syscall
	mode  kernel.Mode
}

func (a access) String() string { return a.name }

// allAccesses lists every entry of the catalog, every syscall and every
// well-formed mode.
func allAccesses() []access {
	var out []access
	for _, e := range kernel.Entries() {
		out = append(out, access{name: "entry " + e.Name, entry: e})
	}
	for _, s := range kernel.Syscalls() {
		out = append(out, access{name: "syscall " + s.Name, sc: s})
	}
	for _, m := range propModes {
		out = append(out, access{name: "mode " + m.String(), mode: m})
	}
	return out
}

func (a access) eval(w *kernel.World, c, t *kernel.Task, explain bool) kernel.Decision {
	switch {
	case a.entry != nil && explain:
		return w.ExplainEntry(c, t, a.entry)
	case a.entry != nil:
		return w.CheckEntry(c, t, a.entry)
	case a.sc != nil && explain:
		return w.ExplainSyscall(c, t, a.sc)
	case a.sc != nil:
		return w.CheckSyscall(c, t, a.sc)
	case explain:
		return w.ExplainPtraceMayAccess(c, t, a.mode)
	}
	return w.PtraceMayAccess(c, t, a.mode)
}

// pairs calls f for every (caller, target) pair of the world.
func pairs(w *kernel.World, f func(c, t *kernel.Task)) {
	for _, c := range w.Tasks {
		for _, t := range w.Tasks {
			f(c, t)
		}
	}
}

func same(a, b kernel.Decision) bool {
	return a.Allowed == b.Allowed && a.Errno == b.Errno && a.Masked == b.Masked && a.Layer == b.Layer
}

func show(d kernel.Decision) string {
	return fmt.Sprintf("%s (layer %s)", d.Result(), d.Layer)
}

// Property 1: a thread group never denies itself a well-formed mode, and
// an ill-formed mode is denied even then (the WARN comes first).
func TestPropertySameThreadGroupAllowed(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		p := genWorld(nil, nil).Draw(t, "world")
		pairs(p.w, func(c, tg *kernel.Task) {
			if !kernel.SameThreadGroup(c, tg) {
				return
			}
			for _, m := range propModes {
				if d := p.w.PtraceMayAccess(c, tg, m); !d.Allowed {
					t.Fatalf("%s -> %s %s: %s, want allow within one thread group", c.Name, tg.Name, m, show(d))
				}
			}
			for _, m := range []kernel.Mode{kernel.ModeRead, kernel.ModeAttach | kernel.ModeFSCreds | kernel.ModeRealCreds} {
				if d := p.w.PtraceMayAccess(c, tg, m); d.Allowed || d.Layer != kernel.LayerMode {
					t.Fatalf("%s -> %s ill-formed %s: %s, want a denial at the mode step", c.Name, tg.Name, m, show(d))
				}
			}
		})
	})
}

// Property 2: without MAC modules (capability, optionally Landlock) the
// core check treats READ and ATTACH alike, so ATTACH allowed ⇒ READ allowed
// with the same creds selector.
func TestPropertyAttachImpliesReadWithoutMAC(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		p := genWorld(ptr(false), nil).Draw(t, "world")
		pairs(p.w, func(c, tg *kernel.Task) {
			for _, creds := range []kernel.Mode{kernel.ModeFSCreds, kernel.ModeRealCreds} {
				for _, na := range []kernel.Mode{0, kernel.ModeNoAudit} {
					at := p.w.PtraceMayAccess(c, tg, kernel.ModeAttach|creds|na)
					rd := p.w.PtraceMayAccess(c, tg, kernel.ModeRead|creds|na)
					if at.Allowed && !rd.Allowed {
						t.Fatalf("%s -> %s: ATTACH %s allowed but READ %s", c.Name, tg.Name, creds|na, show(rd))
					}
				}
			}
		})
	})
}

// Property 3: Yama restricts ATTACH only; for every READ mode, every entry
// that is not attach-class and every READ syscall, the answer with Yama at
// any scope equals the answer without it.
func TestPropertyYamaNeverChangesRead(t *testing.T) {
	var reads []access
	for _, a := range allAccesses() {
		switch {
		case a.entry != nil && a.entry.Class() != "attach",
			a.sc != nil && a.sc.Mode != 0 && a.sc.Mode.IsRead(),
			a.entry == nil && a.sc == nil && a.mode.IsRead():
			reads = append(reads, a)
		}
	}
	rapid.Check(t, func(t *rapid.T) {
		p := genWorld(ptr(true), nil).Draw(t, "world")
		withYama := p.w.LSMs
		without := make([]kernel.LSM, 0, len(withYama))
		for _, m := range withYama {
			if m.Name() != "yama" {
				without = append(without, m)
			}
		}
		pairs(p.w, func(c, tg *kernel.Task) {
			for _, a := range reads {
				p.w.LSMs = withYama
				dy := a.eval(p.w, c, tg, false)
				p.w.LSMs = without
				dn := a.eval(p.w, c, tg, false)
				p.w.LSMs = withYama
				if dy.Result() != dn.Result() {
					t.Fatalf("%s -> %s %s: %s with Yama scope %d, %s without", c.Name, tg.Name, a, show(dy), p.yama.Scope, show(dn))
				}
			}
		})
	})
}

// Property 4: taking CAP_SYS_PTRACE away from the caller (effective and
// permitted) never turns a denial into an allow. PTRACE_TRACEME is left
// out: there the caller is the tracee, whose permitted set must be a subset
// of its parent's, so fewer capabilities can only help it.
func TestPropertyDroppingSysPtraceNeverGrants(t *testing.T) {
	var as []access
	for _, a := range allAccesses() {
		if a.sc != nil && a.sc.Name == "ptrace_traceme" {
			continue
		}
		as = append(as, a)
	}
	rapid.Check(t, func(t *rapid.T) {
		p := genWorld(nil, nil).Draw(t, "world")
		pairs(p.w, func(c, tg *kernel.Task) {
			if !c.Cred.CapPermitted.Has(kernel.CapSysPtrace) {
				return
			}
			saved := c.Cred
			for _, a := range as {
				with := a.eval(p.w, c, tg, false)
				c.Cred.CapEffective &^= kernel.CapsOf(kernel.CapSysPtrace)
				c.Cred.CapPermitted &^= kernel.CapsOf(kernel.CapSysPtrace)
				without := a.eval(p.w, c, tg, false)
				c.Cred = saved
				if !with.Allowed && without.Allowed {
					t.Fatalf("%s -> %s %s: %s with CAP_SYS_PTRACE, %s without", c.Name, tg.Name, a, show(with), show(without))
				}
			}
		})
	})
}

// Property 5: decisions do not depend on the order of the world's task and
// namespace lists, and the explaining path answers as the fast path does.
func TestPropertyOrderIndependentAndExplainMatchesFast(t *testing.T) {
	as := allAccesses()
	rapid.Check(t, func(t *rapid.T) {
		p := genWorld(nil, nil).Draw(t, "world")
		w := p.w
		s := &kernel.World{Release: w.Release, Features: w.Features, LSMs: w.LSMs, SuidDumpable: w.SuidDumpable, Proc: w.Proc, Init: w.Init}
		s.Namespaces = rapid.Permutation(w.Namespaces).Draw(t, "namespaces")
		for _, tk := range rapid.Permutation(w.Tasks).Draw(t, "tasks") {
			s.AddTask(tk)
		}
		for _, tk := range w.Tasks {
			if s.Task(tk.Name) != tk || s.TaskByPID(tk.PID) != tk {
				t.Fatalf("rebuilt index lost %s", tk.Name)
			}
		}
		pairs(w, func(c, tg *kernel.Task) {
			for _, a := range as {
				fast := a.eval(w, c, tg, false)
				if d := a.eval(s, c, tg, false); !same(fast, d) {
					t.Fatalf("%s -> %s %s: %s in file order, %s shuffled", c.Name, tg.Name, a, show(fast), show(d))
				}
				if d := a.eval(w, c, tg, true); !same(fast, d) {
					t.Fatalf("%s -> %s %s: fast path %s, explained %s", c.Name, tg.Name, a, show(fast), show(d))
				}
			}
		})
	})
}

// Property 6: every explained decision tells a consistent story: at least
// one step; a denial ends with a deny step and has a deny step in the layer
// the decision names; an allowed decision does not end with a deny step; a
// masked answer is an allowed one.
func TestPropertyExplainConsistent(t *testing.T) {
	as := allAccesses()
	rapid.Check(t, func(t *rapid.T) {
		p := genWorld(nil, nil).Draw(t, "world")
		pairs(p.w, func(c, tg *kernel.Task) {
			for _, a := range as {
				d := a.eval(p.w, c, tg, true)
				if err := storyConsistent(d); err != nil {
					t.Fatalf("%s -> %s %s: %v\n%s", c.Name, tg.Name, a, err, steps(d))
				}
			}
		})
	})
}

func storyConsistent(d kernel.Decision) error {
	if len(d.Steps) == 0 {
		return fmt.Errorf("%s with no steps", show(d))
	}
	if d.Masked && !d.Allowed {
		return fmt.Errorf("masked but denied: %s", show(d))
	}
	if d.Allowed != (d.Errno == kernel.OK) {
		return fmt.Errorf("allowed=%v with errno %q", d.Allowed, d.Errno)
	}
	last := d.Steps[len(d.Steps)-1]
	if d.Allowed {
		if last.Outcome == kernel.Deny {
			return fmt.Errorf("allowed, but the last step denies: %+v", last)
		}
		return nil
	}
	if last.Outcome != kernel.Deny {
		return fmt.Errorf("denied with %s, but the last step is %+v", d.Errno, last)
	}
	for _, s := range d.Steps {
		if s.Outcome == kernel.Deny && s.Layer == d.Layer {
			return nil
		}
	}
	return fmt.Errorf("denied by layer %s, but no step of that layer denies", d.Layer)
}

func steps(d kernel.Decision) string {
	s := ""
	for i, st := range d.Steps {
		s += fmt.Sprintf("  %2d. %-12s %-5s %s\n", i+1, st.Layer, st.Outcome, st.Reason)
	}
	return s
}

// Property 7: nothing panics, for any world, entry, syscall or mode —
// ill-formed modes (every byte value) and missing targets included.
func TestPropertyNoPanic(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		p := genWorld(nil, nil).Draw(t, "world")
		w := p.w
		entries, scs := kernel.Entries(), kernel.Syscalls()
		pairs(w, func(c, tg *kernel.Task) {
			m := kernel.Mode(rapid.Uint8().Draw(t, "mode"))
			_ = w.PtraceMayAccess(c, tg, m)
			_ = w.ExplainPtraceMayAccess(c, tg, m)
			for _, e := range entries {
				_ = w.CheckEntry(c, tg, e)
				_ = w.ExplainEntry(c, tg, e)
			}
			for _, s := range scs {
				_ = w.CheckSyscall(c, tg, s)
				_ = w.ExplainSyscall(c, tg, s)
			}
		})
		c := rapid.SampledFrom(w.Tasks).Draw(t, "caller")
		for _, e := range entries {
			if d := w.ExplainEntry(c, nil, e); d.Errno != kernel.ESRCH {
				t.Fatalf("entry %s of a missing target: %s, want ESRCH", e.Name, show(d))
			}
		}
		for _, s := range scs {
			if d := w.ExplainSyscall(c, nil, s); d.Errno != kernel.ESRCH {
				t.Fatalf("syscall %s on a missing target: %s, want ESRCH", s.Name, show(d))
			}
		}
	})
}
