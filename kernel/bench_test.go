package kernel_test

import (
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/capability"
	"github.com/procgate/procgate/kernel/lsm/landlock"
	"github.com/procgate/procgate/kernel/lsm/yama"
)

// benchWorld has the capability, Landlock and Yama (scope 1) modules and
// two same-uid tasks, the caller the target's parent, both in one
// Landlock domain: every step of the check runs and passes.
func benchWorld(b testing.TB) (*kernel.World, *kernel.Task, *kernel.Task) {
	w := kernel.NewWorld(kernel.DefaultRelease)
	y, err := yama.New(1)
	if err != nil {
		b.Fatal(err)
	}
	w.LSMs = []kernel.LSM{capability.New(), landlock.New(7), y}
	dom := &kernel.LandlockDomain{Name: "sandbox"}
	mk := func(name string, pid int, parent *kernel.Task) *kernel.Task {
		t := &kernel.Task{Name: name, PID: pid, TGID: pid, Parent: parent,
			Cred: kernel.Cred{UID: 1000, EUID: 1000, SUID: 1000, FSUID: 1000, GID: 1000, EGID: 1000, SGID: 1000, FSGID: 1000, UserNS: w.Init},
			MM:   &kernel.MM{Dumpable: kernel.SuidDumpUser, UserNS: w.Init}, Landlock: dom}
		t.Leader = t
		w.AddTask(t)
		return t
	}
	c := mk("caller", 100, nil)
	t := mk("target", 101, c)
	return w, c, t
}

func BenchmarkPtraceMayAccess(b *testing.B) {
	w, c, t := benchWorld(b)
	benchModes(b, w, c, t)
}

// benchModes runs PtraceMayAccess(c, t) for a READ and an ATTACH mode as
// sub-benchmarks; every answer must be a grant.
func benchModes(b *testing.B, w *kernel.World, c, t *kernel.Task) {
	for _, mode := range []kernel.Mode{kernel.ReadFSCreds, kernel.AttachRealCreds} {
		b.Run(mode.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if d := w.PtraceMayAccess(c, t, mode); !d.Allowed {
					b.Fatal(d)
				}
			}
		})
	}
}

func BenchmarkCheckEntry(b *testing.B) {
	w, c, t := benchWorld(b)
	for _, name := range []string{"maps", "environ", "stat", "fd/0"} {
		ent, err := kernel.LookupEntry(name)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if d := w.CheckEntry(c, t, ent); !d.Allowed {
					b.Fatal(d)
				}
			}
		})
	}
}

func BenchmarkExplainEntry(b *testing.B) {
	w, c, t := benchWorld(b)
	ent, _ := kernel.LookupEntry("environ")
	b.ReportAllocs()
	for b.Loop() {
		if d := w.ExplainEntry(c, t, ent); !d.Allowed {
			b.Fatal(d)
		}
	}
}

// BenchmarkModelVsKernel decides the same question twice per iteration —
// once in the model, once by the running kernel through kcmp(2), which
// makes ptrace_may_access(PTRACE_MODE_READ_REALCREDS) on both tasks — and
// reports both costs and their ratio from the one run.
func BenchmarkModelVsKernel(b *testing.B) {
	w, c, t := benchWorld(b)
	self, parent := syscall.Getpid(), syscall.Getppid()
	const kcmpVM = 1 // KCMP_VM
	if _, _, errno := syscall.RawSyscall6(unix.SYS_KCMP, uintptr(self), uintptr(parent), kcmpVM, 0, 0, 0); errno != 0 && errno != syscall.EPERM {
		b.Skipf("kcmp unavailable: %v", errno)
	}
	var model, kern time.Duration
	for b.Loop() {
		t0 := time.Now()
		for range 100 {
			if d := w.PtraceMayAccess(c, t, kernel.ReadRealCreds); !d.Allowed {
				b.Fatal(d)
			}
		}
		t1 := time.Now()
		for range 100 {
			syscall.RawSyscall6(unix.SYS_KCMP, uintptr(self), uintptr(parent), kcmpVM, 0, 0, 0)
		}
		t2 := time.Now()
		model += t1.Sub(t0)
		kern += t2.Sub(t1)
	}
	n := float64(b.N) * 100
	b.ReportMetric(float64(model.Nanoseconds())/n, "model-ns/decision")
	b.ReportMetric(float64(kern.Nanoseconds())/n, "kernel-kcmp-ns/decision")
	b.ReportMetric(float64(kern)/float64(model), "kernel/model")
}
