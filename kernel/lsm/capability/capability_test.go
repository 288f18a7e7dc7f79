package capability_test

import (
	"testing"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/capability"
)

// TestSubsetRule covers security/commoncap.c:cap_ptrace_access_check: the
// effective set counts for FSCREDS, the permitted set for REALCREDS.
func TestSubsetRule(t *testing.T) {
	raw := kernel.CapsOf(kernel.CapNetRaw)
	tests := []struct {
		name                            string
		callerEff, callerPrm, targetPrm kernel.CapSet
		mode                            kernel.Mode
		want                            kernel.Errno
	}{
		{"no caps either side", 0, 0, 0, kernel.ReadFSCreds, kernel.OK},
		{"target holds a cap the caller lacks", 0, 0, raw, kernel.ReadFSCreds, kernel.EPERM},
		{"caller has it permitted only, FSCREDS", 0, raw, raw, kernel.ReadFSCreds, kernel.EPERM},
		{"caller has it permitted only, REALCREDS", 0, raw, raw, kernel.AttachRealCreds, kernel.OK},
		{"caller has it effective", raw, raw, raw, kernel.AttachFSCreds, kernel.OK},
		{"CAP_SYS_PTRACE overrides", kernel.CapsOf(kernel.CapSysPtrace), kernel.CapsOf(kernel.CapSysPtrace), kernel.CapSetAll, kernel.ReadFSCreds, kernel.OK},
	}
	for _, tc := range tests {
		w := kernel.NewWorld(kernel.DefaultRelease)
		w.LSMs = []kernel.LSM{capability.New()}
		mk := func(pid int, eff, prm kernel.CapSet) *kernel.Task {
			tk := &kernel.Task{Name: "t", PID: pid, TGID: pid,
				Cred: kernel.Cred{UID: 1000, EUID: 1000, SUID: 1000, FSUID: 1000, GID: 1000, EGID: 1000, SGID: 1000, FSGID: 1000, UserNS: w.Init, CapEffective: eff, CapPermitted: prm},
				MM:   &kernel.MM{Dumpable: kernel.SuidDumpUser, UserNS: w.Init}}
			w.AddTask(tk)
			return tk
		}
		c, tg := mk(1, tc.callerEff, tc.callerPrm), mk(2, tc.targetPrm, tc.targetPrm)
		if d := w.ExplainPtraceMayAccess(c, tg, tc.mode); d.Errno != tc.want {
			t.Errorf("%s: %s (layer %s), want %q", tc.name, d.Result(), d.Layer, tc.want)
		}
	}
}
