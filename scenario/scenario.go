package scenario

import (
	"fmt"

	"github.com/procgate/procgate/kernel"
)

// Scenario is a loaded scenario file: the world and its checks.
type Scenario struct {
	// File is the name errors and reports use.
	File string
	// World is the kernel, namespaces and tasks the file describes.
	World *kernel.World
	// Checks are the questions, in file order.
	Checks []*Check

	// checksLine and checksCol locate the checks list (1:1 without one),
	// for RequireChecks.
	checksLine, checksCol int
}

// RequireChecks returns nil when the scenario asks at least one question,
// else an [ErrorList] saying there is nothing to check, positioned at the
// checks list (or at the start of a file without one). Loading accepts a
// scenario without checks — snapshot writes worlds without questions —
// so the commands that evaluate checks call this: for them such a file is
// invalid input, not a run where every expectation was met.
func (s *Scenario) RequireChecks() error {
	if len(s.Checks) > 0 {
		return nil
	}
	return ErrorList{{File: s.File, Line: s.checksLine, Col: s.checksCol,
		Msg: "no checks: the scenario asks no question, so there is nothing to check (add a checks: list; see docs/scenarios.md)"}}
}

// Check is one question: may Caller access Target through Entry, Syscall
// or Mode (exactly one is set)?
type Check struct {
	Name           string
	Caller, Target *kernel.Task
	// Entry is set for /proc entries; EntryPath keeps the spelling used
	// ("fd/3").
	Entry     *kernel.Entry
	EntryPath string
	// Syscall is set for system calls.
	Syscall *kernel.Syscall
	// Mode is set (non-zero) for bare ptrace_may_access questions.
	Mode kernel.Mode
	// Expect is "", "allow", "masked" or an errno name.
	Expect string
	// Line is the check's line in the file.
	Line int
}

// Access describes what the check asks for: "entry environ",
// "syscall ptrace_attach" or "mode read_fscreds".
func (c *Check) Access() string {
	switch {
	case c.Entry != nil:
		return "entry " + c.EntryPath
	case c.Syscall != nil:
		return "syscall " + c.Syscall.Name
	}
	return "mode " + c.Mode.String()
}

// Evaluate answers the check; explain fills in steps and audit records.
func (s *Scenario) Evaluate(c *Check, explain bool) kernel.Decision {
	return Evaluate(s.World, c, explain)
}

// Evaluate answers check c in world w.
func Evaluate(w *kernel.World, c *Check, explain bool) kernel.Decision {
	switch {
	case c.Entry != nil && explain:
		return w.ExplainEntry(c.Caller, c.Target, c.Entry)
	case c.Entry != nil:
		return w.CheckEntry(c.Caller, c.Target, c.Entry)
	case c.Syscall != nil && explain:
		return w.ExplainSyscall(c.Caller, c.Target, c.Syscall)
	case c.Syscall != nil:
		return w.CheckSyscall(c.Caller, c.Target, c.Syscall)
	case explain:
		return w.ExplainPtraceMayAccess(c.Caller, c.Target, c.Mode)
	}
	return w.PtraceMayAccess(c.Caller, c.Target, c.Mode)
}

// Met reports whether decision d meets the check's expectation (true
// when there is none).
func (c *Check) Met(d kernel.Decision) bool {
	return c.Expect == "" || c.Expect == d.Result()
}

// String names the check for messages.
func (c *Check) String() string {
	return fmt.Sprintf("%s: %s -> %s %s", c.Name, c.Caller.Name, c.Target.Name, c.Access())
}
