package kernel

import "fmt"

// Layer names the step of a decision: a part of the core check, a
// security module, or a /proc or system-call rule around it.
type Layer string

// Layers of the core check and of the rules around it. Security modules
// use their own names ("capability", "yama", "selinux", …).
const (
	LayerMode        Layer = "mode"         // the FSCREDS/REALCREDS selector
	LayerThreadGroup Layer = "thread-group" // same thread group
	LayerIDs         Layer = "ids"          // uid/gid triple or CAP_SYS_PTRACE
	LayerDumpable    Layer = "dumpable"     // dumpable or CAP_SYS_PTRACE in mm->user_ns
	LayerTarget      Layer = "target"       // the target's existence and state
	LayerHidepid     Layer = "hidepid"      // the procfs hidepid= option
	LayerDAC         Layer = "dac"          // file owner and mode, CAP_DAC_*
	LayerMM          Layer = "mm"           // mm_access: shared mm, perfmon, no mm
	LayerEntry       Layer = "entry"        // a /proc entry's own rule
	LayerSyscall     Layer = "syscall"      // a system call's own rule
)

// Outcome is how one step ended.
type Outcome string

// Step outcomes.
const (
	Pass  Outcome = "pass"  // the step allowed; later steps still run
	Allow Outcome = "allow" // the step allowed and ended the decision
	Deny  Outcome = "deny"  // the step denied and ended the decision
	Skip  Outcome = "skip"  // the step did not apply
	Info  Outcome = "info"  // a fact worth knowing, not a check
)

// Step is one line of an explanation.
type Step struct {
	Layer   Layer   `json:"layer"`
	Outcome Outcome `json:"outcome"`
	Reason  string  `json:"reason"`
}

// Trace collects the steps and audit records of one explained decision.
// A nil *Trace records nothing; the fast path passes nil and so never
// allocates.
type Trace struct {
	Steps []Step
	Audit []string
}

// On reports whether the trace records. Callers test it before building a
// reason string, so that the fast path formats nothing.
func (t *Trace) On() bool { return t != nil }

// Add records a step.
func (t *Trace) Add(l Layer, o Outcome, reason string) {
	if t != nil {
		t.Steps = append(t.Steps, Step{l, o, reason})
	}
}

// Addf records a step with a formatted reason. Guard calls with On.
func (t *Trace) Addf(l Layer, o Outcome, format string, args ...any) {
	if t != nil {
		t.Steps = append(t.Steps, Step{l, o, fmt.Sprintf(format, args...)})
	}
}

// AuditRecord records one line the kernel would log.
func (t *Trace) AuditRecord(line string) {
	if t != nil {
		t.Audit = append(t.Audit, line)
	}
}

// Decision is the answer to one access question.
type Decision struct {
	// Allowed is true when the access succeeds (possibly masked).
	Allowed bool `json:"allowed"`
	// Errno is what the caller sees when denied; OK when allowed.
	Errno Errno `json:"errno"`
	// Masked is set for stat and wchan, which never fail but hide fields
	// from a caller that fails the READ check.
	Masked bool `json:"masked"`
	// Layer is the step that decided: for a denial (or a masked answer)
	// the step that denied; for an allowed answer the last step that
	// passed or allowed. A security module whose ptrace_access_check
	// hook skipped the question (PtraceSkipper) is never the layer.
	Layer Layer `json:"layer"`
	// Steps and Audit are filled only by the explaining calls.
	Steps []Step   `json:"steps,omitempty"`
	Audit []string `json:"audit,omitempty"`
	// Unknown lists inputs the decision depended on that are not known
	// (for example a Landlock domain read from a live system). A decision
	// with unknowns is the model's best answer, not a certainty.
	Unknown []string `json:"unknown,omitempty"`
}

// Result returns "allow", "masked" or the errno name.
func (d Decision) Result() string {
	switch {
	case d.Allowed && d.Masked:
		return "masked"
	case d.Allowed:
		return "allow"
	}
	return d.Errno.String()
}
