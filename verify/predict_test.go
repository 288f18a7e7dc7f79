package verify

import (
	"testing"

	"github.com/procgate/procgate/oracle"
)

// TestSame pins the one comparison of kernel and model answers (this
// package's verifier and the VM's use it): probe, result and stat masking
// must all be equal; the detail text is the kernel's only and ignored.
func TestSame(t *testing.T) {
	stat := oracle.ProbeResult{Probe: oracle.ProbeStat, Result: "ok"}
	for _, tc := range []struct {
		name      string
		got, want oracle.ProbeResult
		same      bool
	}{
		{"equal", stat, stat, true},
		{"detail differs", oracle.ProbeResult{Probe: oracle.ProbeStat, Result: "ok", Detail: "startcode=0"}, stat, true},
		{"masked and unmasked stat", oracle.ProbeResult{Probe: oracle.ProbeStat, Result: "ok", Masked: true}, stat, false},
		{"errno differs", oracle.ProbeResult{Probe: oracle.ProbeMaps, Result: "EACCES"}, oracle.ProbeResult{Probe: oracle.ProbeMaps, Result: "EPERM"}, false},
		{"probe differs", oracle.ProbeResult{Probe: oracle.ProbeMaps, Result: "ok"}, oracle.ProbeResult{Probe: oracle.ProbeEnviron, Result: "ok"}, false},
	} {
		if got := Same(tc.got, tc.want); got != tc.same {
			t.Errorf("%s: Same = %v, want %v", tc.name, got, tc.same)
		}
	}
}

func TestAnswerString(t *testing.T) {
	for _, tc := range []struct {
		p    oracle.ProbeResult
		want string
	}{
		{oracle.ProbeResult{Probe: oracle.ProbeStat, Result: "ok", Masked: true}, "ok (stat masked)"},
		{oracle.ProbeResult{Probe: oracle.ProbeStat, Result: "ok"}, "ok"},
		{oracle.ProbeResult{Probe: oracle.ProbePtraceSeize, Result: "EPERM"}, "EPERM"},
	} {
		if got := AnswerString(tc.p); got != tc.want {
			t.Errorf("AnswerString(%+v) = %q, want %q", tc.p, got, tc.want)
		}
	}
}
