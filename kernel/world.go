package kernel

import (
	"errors"
	"fmt"
	"slices"
)

// HidePID is the procfs hidepid= mount option (include/linux/proc_fs.h:
// enum proc_hidepid).
type HidePID uint8

// The hidepid values.
const (
	HidePIDOff        HidePID = 0 // HIDEPID_OFF
	HidePIDNoAccess   HidePID = 1 // HIDEPID_NO_ACCESS
	HidePIDInvisible  HidePID = 2 // HIDEPID_INVISIBLE
	HidePIDPtraceable HidePID = 4 // HIDEPID_NOT_PTRACEABLE
)

// String returns the mount option's spelling.
func (h HidePID) String() string {
	switch h {
	case HidePIDOff:
		return "off"
	case HidePIDNoAccess:
		return "noaccess"
	case HidePIDInvisible:
		return "invisible"
	case HidePIDPtraceable:
		return "ptraceable"
	}
	return fmt.Sprintf("hidepid%d", uint8(h))
}

// ParseHidePID parses "off", "noaccess", "invisible", "ptraceable" or the
// numbers 0, 1, 2, 4.
func ParseHidePID(s string) (HidePID, error) {
	switch s {
	case "off", "0", "":
		return HidePIDOff, nil
	case "noaccess", "1":
		return HidePIDNoAccess, nil
	case "invisible", "2":
		return HidePIDInvisible, nil
	case "ptraceable", "4":
		return HidePIDPtraceable, nil
	}
	return 0, fmt.Errorf("unknown hidepid value %q (want off, noaccess, invisible or ptraceable)", s)
}

// ProcOptions are the options of the procfs mount the caller looks through.
type ProcOptions struct {
	HidePID HidePID
	// GID is the gid= option: members see every process unless hidepid
	// is ptraceable. HasGID is false when the option is absent; GID is
	// then 0, as in the kernel, whose default group is GLOBAL_ROOT_GID.
	GID    KGID
	HasGID bool
}

// World is a kernel with its settings, user namespaces and tasks.
type World struct {
	// Release selects the release-dependent rules; Features holds them
	// and may be adjusted after FeaturesFor for a kernel with backports.
	Release  Release
	Features Features
	// LSMs are the active modules in order; the capability module first.
	LSMs []LSM
	// SuidDumpable is fs.suid_dumpable (0, 1 or 2).
	SuidDumpable int
	// Proc describes the /proc mount.
	Proc ProcOptions
	// Init is the initial user namespace; Namespaces lists every
	// namespace, Init included.
	Init       *UserNS
	Namespaces []*UserNS
	// Tasks lists every task.
	Tasks []*Task
	// Mutation is zero except in the verifier's mutation test, which
	// breaks one rule with it (see [Mutation]).
	Mutation Mutation

	byName map[string]*Task
	byPID  map[int]*Task
}

// NewWorld returns an empty world for release r with only the initial
// user namespace and no security modules; add the capability module
// (package kernel/lsm/capability) and others to LSMs.
func NewWorld(r Release) *World {
	init := NewInitUserNS()
	return &World{Release: r, Features: FeaturesFor(r), Init: init, Namespaces: []*UserNS{init}}
}

// AddTask appends t to the world and indexes it. Leader defaults to the
// task whose PID is t's TGID (or t itself).
func (w *World) AddTask(t *Task) {
	w.Tasks = append(w.Tasks, t)
	if w.byName == nil {
		w.byName = map[string]*Task{}
		w.byPID = map[int]*Task{}
	}
	if t.Name != "" {
		w.byName[t.Name] = t
	}
	if t.PID != 0 {
		w.byPID[t.PID] = t
	}
}

// Task returns the task with the given name, or nil.
func (w *World) Task(name string) *Task { return w.byName[name] }

// TaskByPID returns the task with the given pid, or nil.
func (w *World) TaskByPID(pid int) *Task { return w.byPID[pid] }

// LSM returns the active module with the given name, or nil.
func (w *World) LSM(name string) LSM {
	for _, m := range w.LSMs {
		if m.Name() == name {
			return m
		}
	}
	return nil
}

// Validate reports states the kernel cannot be in: effective capabilities
// outside the permitted set, a task without credentials' namespace,
// threads whose leader is missing, namespaces whose levels disagree with
// their parents, a capability module that is not first. It returns every
// problem found, joined.
func (w *World) Validate() error {
	var errs []error
	if len(w.LSMs) == 0 || w.LSMs[0].Name() != "capability" {
		errs = append(errs, errors.New("the capability module must be active and first"))
	}
	if w.SuidDumpable < 0 || w.SuidDumpable > 2 {
		errs = append(errs, fmt.Errorf("fs.suid_dumpable %d: want 0, 1 or 2", w.SuidDumpable))
	}
	for _, ns := range w.Namespaces {
		if ns.Parent == nil {
			if ns != w.Init {
				errs = append(errs, fmt.Errorf("user namespace %q has no parent", ns.Name))
			}
			continue
		}
		if ns.Level != ns.Parent.Level+1 {
			errs = append(errs, fmt.Errorf("user namespace %q: level %d under parent level %d", ns.Name, ns.Level, ns.Parent.Level))
		}
		if ns.Level > 32 {
			errs = append(errs, fmt.Errorf("user namespace %q: nested %d deep, the kernel stops at 32", ns.Name, ns.Level))
		}
	}
	for _, t := range w.Tasks {
		if t.Cred.UserNS == nil {
			errs = append(errs, fmt.Errorf("task %q: credentials have no user namespace", t.Name))
		}
		if !t.Cred.CapEffective.SubsetOf(t.Cred.CapPermitted) {
			errs = append(errs, fmt.Errorf("task %q: effective capabilities {%s} not a subset of permitted {%s}",
				t.Name, t.Cred.CapEffective, t.Cred.CapPermitted))
		}
		if t.MM != nil && t.MM.UserNS == nil {
			errs = append(errs, fmt.Errorf("task %q: mm has no user namespace", t.Name))
		}
		if t.MM != nil && t.MM.Dumpable > SuidDumpRoot {
			errs = append(errs, fmt.Errorf("task %q: dumpable %d: want 0, 1 or 2", t.Name, t.MM.Dumpable))
		}
		if t.MM != nil && (t.Kthread || t.State != Running) {
			errs = append(errs, fmt.Errorf("task %q: a %s task has no mm", t.Name, map[bool]string{true: "kernel", false: t.State.String()}[t.Kthread]))
		}
		if t.Leader != nil && t.Leader.PID != t.TGID {
			errs = append(errs, fmt.Errorf("task %q: leader pid %d is not its tgid %d", t.Name, t.Leader.PID, t.TGID))
		}
	}
	return errors.Join(errs...)
}

// CloneFor copies the tasks a decision between c and t can reach (their
// parents, leaders, tracers and Yama exceptions' tracers, transitively)
// and their address spaces into a new world with w's settings, and
// returns it with the copies of c and t. The copy may be changed without
// changing w (a what-if, a verifier's supplied facts); the user
// namespaces and Landlock domains are shared, not copied. Decisions
// never look tasks up by name or pid, so the copy has no index.
func (w *World) CloneFor(c, t *Task) (*World, *Task, *Task) {
	m := map[*Task]*Task{}
	var order []*Task
	var visit func(x *Task)
	visit = func(x *Task) {
		if x == nil || m[x] != nil {
			return
		}
		cp := *x
		m[x] = &cp
		order = append(order, x)
		visit(x.Parent)
		visit(x.Leader)
		visit(x.Tracer)
		if x.Ptracer != nil {
			visit(x.Ptracer.Tracer)
		}
	}
	visit(c)
	visit(t)
	nw := &World{
		Release: w.Release, Features: w.Features, LSMs: slices.Clone(w.LSMs),
		SuidDumpable: w.SuidDumpable, Proc: w.Proc, Init: w.Init, Namespaces: w.Namespaces,
		Mutation: w.Mutation,
	}
	mms := map[*MM]*MM{}
	for _, old := range order {
		cp := m[old]
		cp.Parent, cp.Leader, cp.Tracer = m[old.Parent], m[old.Leader], m[old.Tracer]
		if old.Ptracer != nil {
			x := *old.Ptracer
			x.Tracer = m[x.Tracer]
			cp.Ptracer = &x
		}
		if old.MM != nil {
			if mms[old.MM] == nil {
				mm := *old.MM
				mms[old.MM] = &mm
			}
			cp.MM = mms[old.MM]
		}
		nw.Tasks = append(nw.Tasks, cp)
	}
	return nw, m[c], m[t]
}
