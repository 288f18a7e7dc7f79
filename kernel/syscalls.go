package kernel

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// SyscallID names one system call of the catalog. The zero value names
// none.
type SyscallID uint8

// The syscall catalog.
const (
	SyscallNone SyscallID = iota
	SyscallPtraceAttach
	SyscallPtraceSeize
	SyscallPtraceTraceme
	SyscallProcessVMReadv
	SyscallProcessVMWritev
	SyscallPidfdGetfd
	SyscallKcmp
	SyscallGetRobustList
	SyscallPerfEventOpen
	SyscallProcessMadvise
	SyscallMigratePages

	numSyscalls
)

// Syscall is a system call (or request) that checks ptrace access.
type Syscall struct {
	// ID names the call; Name is the scenario spelling: "ptrace_attach",
	// "process_vm_readv", …
	ID   SyscallID
	Name string
	// Mode is what the call passes to ptrace_may_access (0 for TRACEME,
	// which calls only the security_ptrace_traceme hook).
	Mode Mode
	// Locks are the target's locks the call takes (see [Lock]).
	Locks Lock
	// Source names the kernel function.
	Source string
}

// Class returns the class of the call's ptrace check (none for
// ptrace_traceme, which makes none).
func (s *Syscall) Class() Class { return s.Mode.Class() }

// Syscall returns the catalog's system call id names, or nil for
// [SyscallNone] and values outside the catalog.
func (id SyscallID) Syscall() *Syscall {
	if id == SyscallNone || id >= numSyscalls {
		return nil
	}
	return &syscalls[id]
}

// String returns the call's scenario spelling, or "syscall(N)" outside
// the catalog.
func (id SyscallID) String() string {
	if s := id.Syscall(); s != nil {
		return s.Name
	}
	return "syscall(" + strconv.Itoa(int(id)) + ")"
}

// syscalls is the syscall catalog, indexed by SyscallID.
var syscalls = func() [numSyscalls]Syscall {
	t := [numSyscalls]Syscall{
		SyscallPtraceAttach:    {Name: "ptrace_attach", Mode: AttachRealCreds, Locks: LockCredGuard, Source: "kernel/ptrace.c:ptrace_attach"},
		SyscallPtraceSeize:     {Name: "ptrace_seize", Mode: AttachRealCreds, Locks: LockCredGuard, Source: "kernel/ptrace.c:ptrace_attach (PTRACE_SEIZE)"},
		SyscallPtraceTraceme:   {Name: "ptrace_traceme", Source: "kernel/ptrace.c:ptrace_traceme"},
		SyscallProcessVMReadv:  {Name: "process_vm_readv", Mode: AttachRealCreds, Locks: LockExecUpdate | LockMmap, Source: "mm/process_vm_access.c:process_vm_rw_core"},
		SyscallProcessVMWritev: {Name: "process_vm_writev", Mode: AttachRealCreds, Locks: LockExecUpdate | LockMmap, Source: "mm/process_vm_access.c:process_vm_rw_core"},
		SyscallPidfdGetfd:      {Name: "pidfd_getfd", Mode: AttachRealCreds, Locks: LockExecUpdate, Source: "kernel/pid.c:__pidfd_fget"},
		SyscallKcmp:            {Name: "kcmp", Mode: ReadRealCreds, Locks: LockExecUpdate, Source: "kernel/kcmp.c:kcmp"},
		SyscallGetRobustList:   {Name: "get_robust_list", Mode: ReadRealCreds, Locks: LockExecUpdate, Source: "kernel/futex/syscalls.c:futex_get_robust_list_common"},
		SyscallPerfEventOpen:   {Name: "perf_event_open", Mode: ReadRealCreds, Source: "kernel/events/core.c:perf_check_permission"},
		SyscallProcessMadvise:  {Name: "process_madvise", Mode: ReadFSCreds, Locks: LockExecUpdate, Source: "mm/madvise.c:process_madvise"},
		SyscallMigratePages:    {Name: "migrate_pages", Mode: ReadRealCreds, Source: "mm/mempolicy.c:kernel_migrate_pages"},
	}
	for id := range t {
		t[id].ID = SyscallID(id)
	}
	return t
}()

// Syscalls returns the syscall catalog sorted by name.
func Syscalls() []*Syscall {
	out := make([]*Syscall, 0, numSyscalls-1)
	for id := SyscallNone + 1; id < numSyscalls; id++ {
		out = append(out, &syscalls[id])
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// LookupSyscall returns the syscall with the given name.
func LookupSyscall(name string) (*Syscall, error) {
	want := strings.ToLower(strings.TrimSpace(name))
	names := make([]string, 0, numSyscalls-1)
	for id := SyscallNone + 1; id < numSyscalls; id++ {
		if syscalls[id].Name == want {
			return &syscalls[id], nil
		}
		names = append(names, syscalls[id].Name)
	}
	sort.Strings(names)
	return nil, fmt.Errorf("unknown syscall %q (known: %s)", name, strings.Join(names, ", "))
}

// CheckSyscall answers whether caller's call succeeds against target as
// far as access checks go. For ptrace_traceme the target is the caller's
// parent, the would-be tracer. It does not allocate.
func (w *World) CheckSyscall(caller, target *Task, sc *Syscall) Decision {
	errno, layer := w.checkSyscall(Env{W: w}, caller, target, sc)
	return Decision{Allowed: errno == OK, Errno: errno, Layer: layer}
}

// ExplainSyscall is CheckSyscall with steps and audit records.
func (w *World) ExplainSyscall(caller, target *Task, sc *Syscall) Decision {
	t := &Trace{}
	errno, layer := w.checkSyscall(Env{W: w, T: t}, caller, target, sc)
	return Decision{Allowed: errno == OK, Errno: errno, Layer: layer, Steps: t.Steps, Audit: t.Audit}
}

func (w *World) checkSyscall(e Env, c, t *Task, sc *Syscall) (Errno, Layer) {
	tr := e.T
	if t == nil {
		tr.Add(LayerTarget, Deny, "no such process: ESRCH")
		return ESRCH, LayerTarget
	}
	switch sc.ID {
	case SyscallPtraceAttach, SyscallPtraceSeize:
		return w.ptraceAttach(e, c, t)
	case SyscallPtraceTraceme:
		return w.ptraceTraceme(e, c, t)
	case SyscallProcessVMReadv, SyscallProcessVMWritev:
		// process_vm_rw_core: mm_access, EACCES becomes EPERM.
		errno, layer := w.mmAccess(e, c, t, sc.Mode, nil)
		if errno == EACCES {
			tr.Add(LayerSyscall, Deny, "process_vm_rw_core reports mm_access's EACCES as EPERM")
			return EPERM, layer
		}
		if errno == OK {
			tr.Add(LayerSyscall, Allow, "the target's memory can be read or written")
		}
		return errno, layer
	case SyscallPidfdGetfd:
		ok, layer := w.ptraceCheck(e, c, t, sc.Mode, "pidfd_getfd")
		if !ok {
			return EPERM, layer
		}
		if t.State == Zombie {
			if w.Features.PidfdGetfdESRCH {
				tr.Add(LayerSyscall, Deny, "the zombie's file table is gone and it has PF_EXITING: ESRCH (v6.9+)")
				return ESRCH, LayerSyscall
			}
			tr.Add(LayerSyscall, Deny, "the zombie's file table is gone: EBADF (before v6.9)")
			return EBADF, LayerSyscall
		}
		if t.Kthread {
			tr.Add(LayerSyscall, Deny, "a kernel thread has no descriptors of its own: EBADF")
			return EBADF, LayerSyscall
		}
		tr.Add(LayerSyscall, Allow, "the descriptor is duplicated into the caller")
		return OK, layer
	case SyscallKcmp, SyscallGetRobustList, SyscallMigratePages:
		ok, layer := w.ptraceCheck(e, c, t, sc.Mode, sc.Name)
		if !ok {
			return EPERM, layer
		}
		return OK, layer
	case SyscallPerfEventOpen:
		if e.Capable(c, w.Init, CapPerfmon, false) || e.Capable(c, w.Init, CapSysAdmin, false) {
			tr.Add(LayerSyscall, Allow, "perf_check_permission: perfmon_capable() bypasses the ptrace check (perf_event_paranoid not modelled)")
			return OK, LayerSyscall
		}
		ok, layer := w.ptraceCheck(e, c, t, sc.Mode, "perf_event_open")
		if !ok {
			return EACCES, layer
		}
		return OK, layer
	case SyscallProcessMadvise:
		errno, layer := w.mmAccess(e, c, t, sc.Mode, nil)
		if errno != OK {
			return errno, layer
		}
		if c.MM != t.MM && !e.Capable(c, w.Init, CapSysNice, false) {
			tr.Add(LayerSyscall, Deny, "process_madvise on another mm needs CAP_SYS_NICE in the initial namespace (capable()): EPERM")
			return EPERM, LayerSyscall
		}
		return OK, layer
	}
	tr.Add(LayerSyscall, Deny, "syscall not modelled: failing closed")
	return EPERM, LayerSyscall
}

// ptraceAttach is kernel/ptrace.c:ptrace_attach's access part.
func (w *World) ptraceAttach(e Env, c, t *Task) (Errno, Layer) {
	tr := e.T
	if t.Kthread {
		tr.Add(LayerSyscall, Deny, "kernel threads cannot be traced (PF_KTHREAD): EPERM")
		return EPERM, LayerSyscall
	}
	if SameThreadGroup(c, t) {
		tr.Add(LayerSyscall, Deny, "a task cannot attach to its own thread group: EPERM")
		return EPERM, LayerSyscall
	}
	errno, layer := w.ptraceMayAccess(e, c, t, AttachRealCreds)
	if errno != OK {
		if tr.On() {
			tr.Addf(LayerSyscall, Deny, "ptrace returns __ptrace_may_access's %s unchanged", errno)
		}
		return errno, layer
	}
	if t.State == Zombie {
		tr.Add(LayerSyscall, Deny, "the target has exited (exit_state set): EPERM")
		return EPERM, LayerSyscall
	}
	if t.Tracer != nil {
		if tr.On() {
			tr.Addf(LayerSyscall, Deny, "the target is already traced by %s: EPERM", t.Tracer.Name)
		}
		return EPERM, LayerSyscall
	}
	tr.Add(LayerSyscall, Allow, "attached; the caller's credentials are saved as ptracer_cred")
	return OK, layer
}

// ptraceTraceme is kernel/ptrace.c:ptrace_traceme: only the
// security_ptrace_traceme hook, parent as tracer.
func (w *World) ptraceTraceme(e Env, child, parent *Task) (Errno, Layer) {
	tr := e.T
	if child.Tracer != nil {
		tr.Add(LayerSyscall, Deny, "the caller is already traced: EPERM")
		return EPERM, LayerSyscall
	}
	tr.Add(LayerSyscall, Info, "PTRACE_TRACEME makes no uid or dumpable check; only the security modules decide, with the parent as tracer")
	// security/security.c:security_ptrace_traceme. A module whose hook
	// does not apply (TracemeSkipper) is recorded as a skip and never
	// named as the layer that decided.
	last := LayerSyscall
	for _, m := range w.LSMs {
		layer := Layer(m.Name())
		if s, ok := m.(TracemeSkipper); ok {
			if why := s.TracemeSkip(parent, child); why != "" {
				tr.Add(layer, Skip, why)
				continue
			}
		}
		if errno := m.PtraceTraceme(e, parent, child); errno != OK {
			return errno, layer
		}
		last = layer
	}
	return OK, last
}
