package kernel

import (
	"fmt"
	"sort"
	"strings"
)

// Syscall is a system call (or request) that checks ptrace access.
type Syscall struct {
	// Name is the scenario spelling: "ptrace_attach", "process_vm_readv", …
	Name string
	// Mode is what the call passes to ptrace_may_access (0 for TRACEME,
	// which calls only the security_ptrace_traceme hook).
	Mode Mode
	// Source names the kernel function.
	Source string
}

var syscalls = map[string]*Syscall{
	"ptrace_attach":     {"ptrace_attach", AttachRealCreds, "kernel/ptrace.c:ptrace_attach"},
	"ptrace_seize":      {"ptrace_seize", AttachRealCreds, "kernel/ptrace.c:ptrace_attach (PTRACE_SEIZE)"},
	"ptrace_traceme":    {"ptrace_traceme", 0, "kernel/ptrace.c:ptrace_traceme"},
	"process_vm_readv":  {"process_vm_readv", AttachRealCreds, "mm/process_vm_access.c:process_vm_rw_core"},
	"process_vm_writev": {"process_vm_writev", AttachRealCreds, "mm/process_vm_access.c:process_vm_rw_core"},
	"pidfd_getfd":       {"pidfd_getfd", AttachRealCreds, "kernel/pid.c:__pidfd_fget"},
	"kcmp":              {"kcmp", ReadRealCreds, "kernel/kcmp.c:kcmp"},
	"get_robust_list":   {"get_robust_list", ReadRealCreds, "kernel/futex/syscalls.c:futex_get_robust_list_common"},
	"perf_event_open":   {"perf_event_open", ReadRealCreds, "kernel/events/core.c:perf_check_permission"},
	"process_madvise":   {"process_madvise", ReadFSCreds, "mm/madvise.c:process_madvise"},
	"migrate_pages":     {"migrate_pages", ReadRealCreds, "mm/mempolicy.c:kernel_migrate_pages"},
}

// Syscalls returns the syscall catalog sorted by name.
func Syscalls() []*Syscall {
	out := make([]*Syscall, 0, len(syscalls))
	for _, s := range syscalls {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// LookupSyscall returns the syscall with the given name.
func LookupSyscall(name string) (*Syscall, error) {
	if s, ok := syscalls[strings.ToLower(strings.TrimSpace(name))]; ok {
		return s, nil
	}
	names := make([]string, 0, len(syscalls))
	for n := range syscalls {
		names = append(names, n)
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
	switch sc.Name {
	case "ptrace_attach", "ptrace_seize":
		return w.ptraceAttach(e, c, t)
	case "ptrace_traceme":
		return w.ptraceTraceme(e, c, t)
	case "process_vm_readv", "process_vm_writev":
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
	case "pidfd_getfd":
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
	case "kcmp", "get_robust_list", "migrate_pages":
		ok, layer := w.ptraceCheck(e, c, t, sc.Mode, sc.Name)
		if !ok {
			return EPERM, layer
		}
		return OK, layer
	case "perf_event_open":
		if e.Capable(c, w.Init, CapPerfmon, false) || e.Capable(c, w.Init, CapSysAdmin, false) {
			tr.Add(LayerSyscall, Allow, "perf_check_permission: perfmon_capable() bypasses the ptrace check (perf_event_paranoid not modelled)")
			return OK, LayerSyscall
		}
		ok, layer := w.ptraceCheck(e, c, t, sc.Mode, "perf_event_open")
		if !ok {
			return EACCES, layer
		}
		return OK, layer
	case "process_madvise":
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
	last := LayerSyscall
	for _, m := range w.LSMs {
		if errno := m.PtraceTraceme(e, parent, child); errno != OK {
			return errno, Layer(m.Name())
		}
		last = Layer(m.Name())
	}
	return OK, last
}
