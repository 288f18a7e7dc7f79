package kernel_test

import (
	"testing"

	"github.com/procgate/procgate/kernel"
)

// TestFastPathDoesNotAllocate runs every entry, syscall and mode, allowed
// and denied, and requires zero allocations on the non-explaining path.
func TestFastPathDoesNotAllocate(t *testing.T) {
	w, caller, target := benchWorld(t)
	other := &kernel.Task{Name: "other", PID: 300, TGID: 300,
		Cred: kernel.Cred{UID: 2000, EUID: 2000, SUID: 2000, FSUID: 2000, GID: 2000, EGID: 2000, SGID: 2000, FSGID: 2000, UserNS: w.Init},
		MM:   &kernel.MM{Dumpable: kernel.SuidDumpDisable, UserNS: w.Init}}
	other.Leader = other
	kthread := &kernel.Task{Name: "kthreadd", PID: 2, TGID: 2, Kthread: true,
		Cred: kernel.Cred{CapEffective: kernel.CapSetAll, CapPermitted: kernel.CapSetAll, UserNS: w.Init}}
	kthread.Leader = kthread
	w.AddTask(other)
	w.AddTask(kthread)
	targets := []*kernel.Task{target, other, kthread, caller}
	for _, hide := range []kernel.HidePID{kernel.HidePIDOff, kernel.HidePIDInvisible, kernel.HidePIDPtraceable} {
		w.Proc.HidePID = hide
		for _, tg := range targets {
			for _, ent := range kernel.Entries() {
				if n := testing.AllocsPerRun(10, func() { w.CheckEntry(caller, tg, ent) }); n != 0 {
					t.Errorf("hidepid=%s CheckEntry(%s, %s): %v allocs", hide, tg.Name, ent.Name, n)
				}
			}
			for _, sc := range kernel.Syscalls() {
				if n := testing.AllocsPerRun(10, func() { w.CheckSyscall(caller, tg, sc) }); n != 0 {
					t.Errorf("CheckSyscall(%s, %s): %v allocs", tg.Name, sc.Name, n)
				}
			}
			for _, m := range []kernel.Mode{kernel.ReadFSCreds, kernel.ReadRealCreds | kernel.ModeNoAudit, kernel.AttachFSCreds, kernel.AttachRealCreds, kernel.ModeRead} {
				if n := testing.AllocsPerRun(10, func() { w.PtraceMayAccess(caller, tg, m) }); n != 0 {
					t.Errorf("PtraceMayAccess(%s, %s): %v allocs", tg.Name, m, n)
				}
			}
		}
	}
}
