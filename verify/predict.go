package verify

import (
	"fmt"
	"sync"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/oracle"
)

// Access is the model's question for a probe: a /proc/<pid>/ entry or a
// system call.
type Access struct {
	Entry   *kernel.Entry
	Path    string // the entry path, e.g. "fd/0"
	Syscall *kernel.Syscall
}

// AccessOf maps an oracle probe to the model's question. The probes are a
// small fixed set asked thousands of times per run: each is looked up
// once (a probe that names a system call misses the entry table first,
// and the miss computes a spelling suggestion).
func AccessOf(p oracle.Probe) (Access, error) {
	if a, ok := accessOf.Load(p); ok {
		return a.(Access), nil
	}
	a, err := lookupAccess(p)
	if err == nil {
		accessOf.Store(p, a)
	}
	return a, err
}

// accessOf memoizes AccessOf's answers, by probe.
var accessOf sync.Map

func lookupAccess(p oracle.Probe) (Access, error) {
	if e, err := kernel.LookupEntry(string(p)); err == nil {
		return Access{Entry: e, Path: string(p)}, nil
	}
	if s, err := kernel.LookupSyscall(string(p)); err == nil {
		return Access{Syscall: s}, nil
	}
	return Access{}, fmt.Errorf("probe %q has no entry or system call in the model", p)
}

// Decide answers the question in w.
func (a Access) Decide(w *kernel.World, caller, target *kernel.Task, explain bool) kernel.Decision {
	if a.Syscall != nil {
		if explain {
			return w.ExplainSyscall(caller, target, a.Syscall)
		}
		return w.CheckSyscall(caller, target, a.Syscall)
	}
	if explain {
		return w.ExplainEntry(caller, target, a.Entry)
	}
	return w.CheckEntry(caller, target, a.Entry)
}

// Answer turns a decision into the oracle's form: "ok" or the errno name,
// and the stat masking.
func Answer(p oracle.Probe, d kernel.Decision) oracle.ProbeResult {
	r := oracle.ProbeResult{Probe: p, Result: "ok", Masked: d.Masked}
	if !d.Allowed {
		r.Result = d.Errno.String()
	}
	return r
}

// Same reports whether the kernel's and the model's answers agree: the
// same probe, the same result (errno or "ok"), and the same stat masking.
// It is the one comparison of both verifiers (this package's and the VM's).
func Same(got, want oracle.ProbeResult) bool {
	return got.Probe == want.Probe && got.Result == want.Result && got.Masked == want.Masked
}

// AnswerString renders an answer for reports: the result, and "(stat
// masked)" when the stat fields were masked.
func AnswerString(p oracle.ProbeResult) string {
	if p.Masked {
		return p.Result + " (stat masked)"
	}
	return p.Result
}

// Predict answers every probe of a case with the model, from the case's
// description (see [World]).
func Predict(k Kernel, c oracle.Case, r oracle.Result) ([]oracle.ProbeResult, error) {
	w, caller, target, err := World(k, c, r)
	if err != nil {
		return nil, err
	}
	return PredictWorld(w, caller, target, r.Probes)
}

// PredictWorld answers each probe of the given results' list for caller
// and target in w.
func PredictWorld(w *kernel.World, caller, target *kernel.Task, probes []oracle.ProbeResult) ([]oracle.ProbeResult, error) {
	out := make([]oracle.ProbeResult, 0, len(probes))
	for _, pr := range probes {
		a, err := AccessOf(pr.Probe)
		if err != nil {
			return nil, err
		}
		out = append(out, Answer(pr.Probe, a.Decide(w, caller, target, false)))
	}
	return out, nil
}
