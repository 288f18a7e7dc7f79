package landlock_test

import (
	"testing"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/capability"
	"github.com/procgate/procgate/kernel/lsm/landlock"
)

func TestDomainAncestry(t *testing.T) {
	outer := &kernel.LandlockDomain{Name: "outer"}
	inner := &kernel.LandlockDomain{Name: "outer/inner", Parent: outer}
	sibling := &kernel.LandlockDomain{Name: "outer/sibling", Parent: outer}
	other := &kernel.LandlockDomain{Name: "other"}
	tests := []struct {
		name           string
		caller, target *kernel.LandlockDomain
		want           kernel.Errno
	}{
		{"unsandboxed caller", nil, inner, kernel.OK},
		{"same domain", outer, outer, kernel.OK},
		{"target nested in caller", outer, inner, kernel.OK},
		{"caller nested deeper", inner, outer, kernel.EPERM},
		{"sibling domains", inner, sibling, kernel.EPERM},
		{"sandboxed caller, free target", outer, nil, kernel.EPERM},
		{"unrelated domains", outer, other, kernel.EPERM},
	}
	for _, tc := range tests {
		for _, mode := range []kernel.Mode{kernel.ReadFSCreds, kernel.AttachRealCreds} {
			w := kernel.NewWorld(kernel.DefaultRelease)
			w.LSMs = []kernel.LSM{capability.New(), landlock.New(7)}
			mk := func(pid int, d *kernel.LandlockDomain) *kernel.Task {
				tk := &kernel.Task{Name: "t", PID: pid, TGID: pid, Landlock: d,
					Cred: kernel.Cred{UserNS: w.Init, CapEffective: kernel.CapSetAll, CapPermitted: kernel.CapSetAll},
					MM:   &kernel.MM{Dumpable: kernel.SuidDumpUser, UserNS: w.Init}}
				w.AddTask(tk)
				return tk
			}
			c, tg := mk(1, tc.caller), mk(2, tc.target)
			d := w.ExplainPtraceMayAccess(c, tg, mode)
			if d.Errno != tc.want {
				t.Errorf("%s (%s): %s, want %q", tc.name, mode, d.Result(), tc.want)
			}
			if d.Errno != kernel.OK && (d.Layer != "landlock" || len(d.Audit) != 1) {
				t.Errorf("%s: layer %s audit %q", tc.name, d.Layer, d.Audit)
			}
		}
	}
}
