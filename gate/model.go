package gate

import (
	"slices"
	"strings"

	"github.com/procgate/procgate/kernel"
)

// KernelAnswer is the model's answer for one item: what the kernel would
// do if the caller opened the item's file itself.
type KernelAnswer struct {
	// Allowed and Masked are the decision (stat opens for everyone, with
	// its [PT] fields masked for a caller that fails the READ check).
	Allowed, Masked bool
	// Errno is what the caller would see when denied.
	Errno kernel.Errno
	// Layer is the step of the kernel's decision that decided.
	Layer kernel.Layer
}

// MACAnswer is the answer of the caller's mandatory access control layers
// for one item: whether they would let the caller itself access the
// target in the item's ptrace mode.
type MACAnswer struct {
	Denied bool
	// Module names the module that refused ("landlock", "yama",
	// "apparmor"…); Reason says why.
	Module, Reason string
}

// View is the model's answers for one (caller, target) pair, per item,
// and the facts the policy needs from the process tree. It does not
// depend on the policy: [Decide] combines it with one.
type View struct {
	// Dumpable reports whether the target's mm is dumpable
	// (SUID_DUMP_USER); Descendant whether the target descends from the
	// caller.
	Dumpable, Descendant bool
	// Protected marks a target that is one of the daemon's own processes
	// (the front, the reader): no policy rule grants anything on it, so
	// a caller gets only what the kernel would give it directly. The
	// daemon's heap pointers, descriptors and memory are nobody's
	// business (an fdinfo of the front's epoll shows pointers).
	Protected bool
	// Kernel and MAC are indexed by Item and hold an answer for every
	// item of the vocabulary (policy.Items).
	Kernel []KernelAnswer
	MAC    []MACAnswer
}

// ComputeView evaluates every item for caller c and target t in world w.
// unmodelled lists the active security modules that take part in ptrace
// decisions but are not in w (live.System.Unmodelled): they fail closed
// for a caller they confine. The same function serves a live world (the
// gate), a scenario file and a snapshot (the report).
func ComputeView(w *kernel.World, unmodelled []string, c, t *kernel.Task) *View {
	v := &View{
		Dumpable:   t.MM != nil && t.MM.Dumpable == kernel.SuidDumpUser,
		Descendant: c.TGID != t.TGID && kernel.IsDescendant(c, t),
		Kernel:     make([]KernelAnswer, numItems),
		MAC:        make([]MACAnswer, numItems),
	}
	bpfUnread := slices.Contains(unmodelled, "bpf")
	for i := range numItems {
		ck := &checks[i]
		var d kernel.Decision
		var mode kernel.Mode
		switch {
		case ck.entry != nil:
			d = w.CheckEntry(c, t, ck.entry)
			if d.Allowed && ck.list != nil {
				if d2 := w.CheckEntry(c, t, ck.list); !d2.Allowed {
					d = d2
				}
			}
			mode = ck.entry.Mode
		case ck.syscall != nil:
			d = w.CheckSyscall(c, t, ck.syscall)
			mode = ck.syscall.Mode
		default:
			d = kernel.Decision{Errno: kernel.EACCES, Layer: kernel.LayerEntry}
		}
		if d.Allowed && mode != 0 && bpfUnread && !kernel.SameThreadGroup(c, t) {
			// procgate's BPF program enforces a rule set the gate could
			// not read: what the kernel gives the caller directly is
			// unknown, and taken to be nothing (fail closed).
			d = kernel.Decision{Errno: kernel.EPERM, Layer: "bpf: rule set unread"}
		}
		v.Kernel[i] = KernelAnswer{Allowed: d.Allowed, Masked: d.Masked, Errno: d.Errno, Layer: d.Layer}
		v.MAC[i] = macCheck(w, unmodelled, c, t, mode)
	}
	return v
}

// macCheck asks the caller's mandatory access control layers whether
// they would let it access the target in mode. Modelled modules
// (Landlock, Yama) answer through their ptrace hooks; the capability
// module is DAC-like and is what the broker replaces, so it is skipped.
// Modules the model cannot load from a live system (SELinux, AppArmor,
// Smack) fail closed unless the caller is unconfined by them. procgate's
// own BPF program is not a bound either: it exempts the gate's reader so
// that the gate serves what its policy grants (docs/enforce.md), and the
// policy's deny and protect rules, which the program enforces on direct
// access, restrict the gate's grants themselves.
func macCheck(w *kernel.World, unmodelled []string, c, t *kernel.Task, mode kernel.Mode) MACAnswer {
	if mode == 0 {
		return MACAnswer{} // no ptrace hook runs for this entry
	}
	if kernel.SameThreadGroup(c, t) {
		return MACAnswer{}
	}
	env := kernel.Env{W: w}
	for _, m := range w.LSMs {
		if n := m.Name(); n == "capability" || n == "bpf" {
			continue
		}
		if e := m.PtraceAccessCheck(env, c, t, mode); e != kernel.OK {
			return MACAnswer{Denied: true, Module: m.Name(), Reason: m.Name() + " would deny the caller " + mode.String() + " access (" + e.String() + ")"}
		}
	}
	for _, m := range unmodelled {
		switch m {
		case "apparmor":
			if l := c.AppArmor; l != "" && l != "unconfined" {
				return MACAnswer{Denied: true, Module: m, Reason: "apparmor: caller is confined by " + l + ", whose ptrace rules are not modelled"}
			}
		case "selinux":
			if !selinuxUnconfined(c.SELinux) {
				return MACAnswer{Denied: true, Module: m, Reason: "selinux: the caller's domain " + c.SELinux + " is not modelled"}
			}
		case "smack":
			if c.Smack != "" && c.Smack != "_" && c.Smack != t.Smack {
				return MACAnswer{Denied: true, Module: m, Reason: "smack: caller label " + c.Smack + " is not modelled"}
			}
		}
	}
	return MACAnswer{}
}

// selinuxUnconfined reports whether an SELinux context is one of the
// unconfined domains, which every ptrace-read rule allows.
func selinuxUnconfined(ctx string) bool {
	for _, d := range []string{":unconfined_t:", ":kernel_t:", ":initrc_t:"} {
		if strings.Contains(ctx+":", d) {
			return true
		}
	}
	return false
}
