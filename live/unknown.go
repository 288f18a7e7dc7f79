package live

import (
	"fmt"
	"slices"
	"strings"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/bpf"
	"github.com/procgate/procgate/kernel/lsm/yama"
)

// Access is one question about a target: a /proc/<pid> entry, a system
// call, or a bare ptrace_may_access mode. Exactly one is set.
type Access struct {
	Entry   *kernel.Entry
	Syscall *kernel.Syscall
	Mode    kernel.Mode
}

// Evaluate answers the question in world w; explain fills in the steps
// and audit records.
func (a Access) Evaluate(w *kernel.World, caller, target *kernel.Task, explain bool) kernel.Decision {
	switch {
	case a.Entry != nil && explain:
		return w.ExplainEntry(caller, target, a.Entry)
	case a.Entry != nil:
		return w.CheckEntry(caller, target, a.Entry)
	case a.Syscall != nil && explain:
		return w.ExplainSyscall(caller, target, a.Syscall)
	case a.Syscall != nil:
		return w.CheckSyscall(caller, target, a.Syscall)
	case explain:
		return w.ExplainPtraceMayAccess(caller, target, a.Mode)
	}
	return w.PtraceMayAccess(caller, target, a.Mode)
}

// Decide answers the question for two tasks of the system and fills in
// Decision.Unknown with what the answer depends on that could not be
// read (see Unknowns).
func (s *System) Decide(caller, target *kernel.Task, a Access, explain bool) kernel.Decision {
	d := a.Evaluate(s.World, caller, target, explain)
	d.Unknown = s.Unknowns(caller, target, a)
	return d
}

// Unknowns lists, one sentence each, the inputs the decision depends on
// that cannot be read from user space. It asks "what if": it evaluates
// the question again with each unknown set to the value that could change
// the answer (a Landlock domain around the caller, a PR_SET_PTRACER
// exception, a denying module for each active but unmodelled one, the
// other dumpable value), and lists the unknown when the answer changes.
// An empty list means no unread input can change the answer.
//
// The what-if worlds are copies of the tasks involved; s.World is not
// modified, so Unknowns may run alongside other readers of it.
func (s *System) Unknowns(caller, target *kernel.Task, a Access) []string {
	w := s.World
	base := a.Evaluate(w, caller, target, false)
	var out []string
	// One copy of the tasks involved serves every what-if: each mutation
	// returns its undo, run after the evaluation.
	var cw *kernel.World
	var cc, ct *kernel.Task
	differs := func(mutate func(w *kernel.World, c, t *kernel.Task) (undo func())) (kernel.Decision, bool) {
		if cw == nil {
			cw, cc, ct = w.CloneFor(caller, target)
		}
		undo := mutate(cw, cc, ct)
		d := a.Evaluate(cw, cc, ct, false)
		undo()
		return d, d.Allowed != base.Allowed || d.Errno != base.Errno || d.Masked != base.Masked
	}
	traceme := a.Syscall != nil && a.Syscall.Name == "ptrace_traceme"

	if w.LSM("landlock") != nil {
		sandbox := func(x *kernel.Task) func() {
			old := x.Landlock
			x.Landlock = &kernel.LandlockDomain{Name: "unknown"}
			return func() { x.Landlock = old }
		}
		who, whom := caller, target
		var d kernel.Decision
		var changed bool
		if traceme {
			who, whom = target, caller
			d, changed = differs(func(_ *kernel.World, _, t *kernel.Task) func() { return sandbox(t) })
		} else {
			d, changed = differs(func(_ *kernel.World, c, _ *kernel.Task) func() { return sandbox(c) })
		}
		if changed {
			out = append(out, fmt.Sprintf("landlock: Landlock domains cannot be read from user space; if %s is sandboxed in a domain that does not enclose %s, the answer is %s",
				who.Name, whom.Name, d.Result()))
		}
	}
	if y, ok := w.LSM("yama").(*yama.Module); ok && y.Scope == yama.Relational {
		d, changed := differs(func(_ *kernel.World, _, t *kernel.Task) func() {
			l := t.GroupLeader()
			old := l.Ptracer
			l.Ptracer = &kernel.PtracerException{Any: true}
			return func() { l.Ptracer = old }
		})
		if changed {
			out = append(out, fmt.Sprintf("yama: PR_SET_PTRACER exceptions cannot be read from user space; if %s declared one that covers %s, the answer is %s",
				target.Name, caller.Name, d.Result()))
		}
	}
	tu := s.unknown[target]
	if tu&(unkDumpable|unkMMUserNS|unkDumpable02) != 0 && target.MM != nil {
		other := kernel.SuidDumpUser
		switch {
		case tu&unkDumpable02 != 0:
			other = kernel.SuidDumpRoot
		case target.MM.Dumpable == kernel.SuidDumpUser:
			other = kernel.SuidDumpDisable
		}
		if d, changed := differs(func(_ *kernel.World, _, t *kernel.Task) func() {
			old := t.MM.Dumpable
			t.MM.Dumpable = other
			return func() { t.MM.Dumpable = old }
		}); changed {
			why := "its /proc files belong to root either way"
			switch {
			case tu&unkDumpable02 != 0:
				why = "values 0 and 2 look alike in /proc, and release " + w.Release.String() + " treats them differently"
			case tu&unkMMUserNS != 0:
				why = "its /proc files belong neither to its euid nor to root of its user namespace (setns without exec, or credentials changed while read)"
			}
			out = append(out, fmt.Sprintf("dumpable: %s's dumpable flag cannot be read (%s); if it is %d, the answer is %s", target.Name, why, other, d.Result()))
		}
	}
	if tu&unkUserDumpable != 0 {
		if d, changed := differs(func(_ *kernel.World, _, t *kernel.Task) func() {
			t.UserDumpable = !t.UserDumpable
			return func() { t.UserDumpable = !t.UserDumpable }
		}); changed {
			out = append(out, fmt.Sprintf("user_dumpable: %s has no address space and whether it was dumpable when it lost it cannot be read; if it was, the answer is %s", target.Name, d.Result()))
		}
	}
	for _, x := range []*kernel.Task{caller, target} {
		if s.unknown[x]&unkUserNS != 0 {
			out = append(out, fmt.Sprintf("userns: the user namespace of %s could not be read; the initial one was assumed", x.Name))
		}
		if x == target {
			break
		}
	}
	if bm, ok := w.LSM("bpf").(*bpf.Module); ok {
		out = append(out, s.bpfUnknowns(bm.Rules, caller, target, traceme, differs)...)
	}
	tracer := caller
	if traceme {
		tracer = target
	}
	for _, m := range s.Unmodelled {
		if kernel.NoPtraceHook(m) || m == "apparmor" && tracer.AppArmor == "unconfined" {
			// An unconfined tracer is never restricted by AppArmor.
			continue
		}
		if d, changed := differs(func(w *kernel.World, _, _ *kernel.Task) func() {
			old := w.LSMs
			w.LSMs = append(slices.Clip(w.LSMs), denyModule(m))
			return func() { w.LSMs = old }
		}); changed {
			out = append(out, fmt.Sprintf("%s: the module is active but its policy is not read; it may deny this access (%s)", m, d.Result()))
		}
	}
	return out
}

// denyModule stands in for an active module whose policy is unknown, at
// its most restrictive: it denies every ptrace hook with EACCES, the errno
// SELinux, AppArmor and Smack deny with.
type denyModule string

func (m denyModule) Name() string { return string(m) }

func (m denyModule) PtraceAccessCheck(kernel.Env, *kernel.Task, *kernel.Task, kernel.Mode) kernel.Errno {
	return m.errno()
}

func (m denyModule) PtraceTraceme(kernel.Env, *kernel.Task, *kernel.Task) kernel.Errno {
	return m.errno()
}

// errno is the module's denial: procgate's BPF program denies with
// EPERM (package kernel/lsm/bpf).
func (m denyModule) errno() kernel.Errno {
	if m == "bpf" {
		return kernel.EPERM
	}
	return kernel.EACCES
}

func (denyModule) Capable(kernel.Env, *kernel.Task, *kernel.UserNS, kernel.Cap, bool) kernel.Errno {
	return kernel.OK
}

// Uncertainties lists, one sentence per kind, the tasks about which Read
// could not learn everything, in pid order: a dumpable flag that cannot
// be told apart, a user namespace that could not be read, and so on.
func (s *System) Uncertainties() []string {
	kinds := []struct {
		bit  uncertain
		what string
	}{
		{unkDumpable, "dumpable flag assumed 1 (their /proc files belong to root either way)"},
		{unkDumpable02, "dumpable flag 0 or 2 (alike in /proc; this release treats them differently)"},
		{unkMMUserNS, "address space's user namespace assumed to be the credentials' (the owner of their /proc files fits neither)"},
		{unkUserDumpable, "saved user_dumpable flag unknown (no address space)"},
		{unkUserNS, "user namespace unreadable, the initial one assumed"},
		{unkExe, "executable unreadable (procgate's BPF rule set names executables; none of them assumed)"},
		{unkCgroup, "cgroup unreadable (procgate's BPF rule set exempts one or names cgroups; none of them assumed)"},
		{unkPIDNS, "pid namespace unreadable (procgate's BPF rule set names pid namespaces; none of them assumed)"},
	}
	var out []string
	for _, k := range kinds {
		var names []string
		for _, t := range s.World.Tasks {
			if s.unknown[t]&k.bit != 0 {
				names = append(names, t.Name)
			}
		}
		if len(names) > 0 {
			out = append(out, fmt.Sprintf("%s: %s", k.what, strings.Join(names, ", ")))
		}
	}
	return out
}

// Uncertain returns a bit set of what could not be read about t (its
// dumpable flag, its user namespace, …): zero when everything was read.
// Two tasks with different sets may get different Unknowns for the same
// question, so callers that group tasks (the report) key on it.
func (s *System) Uncertain(t *kernel.Task) uint8 { return uint8(s.unknown[t]) }

// whatIf is one value a fact the program reads could have had: set
// gives it to a task and returns the undo.
type whatIf struct {
	set  func(y *kernel.Task) (undo func())
	text string // "if it is dev 8:1 ino 42"
}

// bpfWhatIfs lists, per fact procgate's BPF rule set reads, the values
// its classes name: executables, cgroup selections, pid namespaces.
func bpfWhatIfs(rs *bpf.RuleSet) (exes, cgroups, pidns []whatIf) {
	seen := map[string]bool{}
	add := func(list *[]whatIf, text string, set func(y *kernel.Task) func()) {
		if !seen[text] {
			seen[text] = true
			*list = append(*list, whatIf{set, text})
		}
	}
	for _, c := range rs.Classes {
		for _, cl := range c.Clauses {
			for _, e := range cl.Exes {
				add(&exes, "if it is "+bpf.Clause{Kind: bpf.KindExe, Exes: []kernel.FileID{e}}.String(), func(y *kernel.Task) func() {
					if y.MM == nil {
						return func() {}
					}
					old := y.MM.Exe
					y.MM.Exe = &e
					return func() { y.MM.Exe = old }
				})
			}
			for _, g := range cl.Cgroups {
				path := g.Example()
				add(&cgroups, "if "+bpf.Clause{Kind: bpf.KindCgroup, Cgroups: []bpf.CgroupSel{g}}.String()+" selects it", func(y *kernel.Task) func() {
					old := y.Cgroup
					y.Cgroup = path
					return func() { y.Cgroup = old }
				})
			}
			if cl.Kind != bpf.KindPIDNS {
				continue
			}
			for _, r := range cl.IDs {
				add(&pidns, fmt.Sprintf("if it is pid:[%d]", r.Lo), func(y *kernel.Task) func() {
					old := y.PIDNSInode
					y.PIDNSInode = r.Lo
					return func() { y.PIDNSInode = old }
				})
			}
		}
	}
	return exes, cgroups, pidns
}

// bpfUnknowns asks what procgate's BPF rule set would answer if the facts
// it reads that could not be read were otherwise: each executable, cgroup
// selection and pid namespace its classes name, for a task whose
// executable, cgroup or pid namespace is unknown, and the exempt cgroup,
// for a caller whose cgroup is unknown.
func (s *System) bpfUnknowns(rs *bpf.RuleSet, caller, target *kernel.Task, traceme bool,
	differs func(func(w *kernel.World, c, t *kernel.Task) func()) (kernel.Decision, bool)) []string {
	var out []string
	exes, cgroups, pidns := bpfWhatIfs(rs)
	for _, f := range []struct {
		bit    uncertain
		what   string
		values []whatIf
	}{{unkExe, "executable", exes}, {unkCgroup, "cgroup", cgroups}, {unkPIDNS, "pid namespace", pidns}} {
		for i, x := range []*kernel.Task{caller, target} {
			if s.unknown[x]&f.bit == 0 {
				continue
			}
			for _, v := range f.values {
				d, changed := differs(func(_ *kernel.World, c, t *kernel.Task) func() { return v.set([]*kernel.Task{c, t}[i]) })
				if changed {
					out = append(out, fmt.Sprintf("bpf: the %s of %s could not be read; %s, the answer is %s", f.what, x.Name, v.text, d.Result()))
					break
				}
			}
		}
	}
	if !traceme && rs.ExemptCgroup != 0 && s.unknown[caller]&unkCgroup != 0 {
		if d, changed := differs(func(_ *kernel.World, c, _ *kernel.Task) func() {
			old := c.CgroupID
			c.CgroupID = rs.ExemptCgroup
			return func() { c.CgroupID = old }
		}); changed {
			out = append(out, fmt.Sprintf("bpf: the cgroup of %s could not be read; if it is the exempt one (%d), the answer is %s", caller.Name, rs.ExemptCgroup, d.Result()))
		}
	}
	return out
}
