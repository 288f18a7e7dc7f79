package yama_test

import (
	"strings"
	"testing"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/capability"
	"github.com/procgate/procgate/kernel/lsm/yama"
)

// family builds init → shell → {gdb → child, sibling}, all uid 1000, plus
// root with CAP_SYS_PTRACE, under Yama at the given scope.
func family(t *testing.T, scope int) (*kernel.World, map[string]*kernel.Task) {
	t.Helper()
	w := kernel.NewWorld(kernel.DefaultRelease)
	y, err := yama.New(scope)
	if err != nil {
		t.Fatal(err)
	}
	w.LSMs = []kernel.LSM{capability.New(), y}
	ts := map[string]*kernel.Task{}
	mk := func(name string, pid int, parent string, uid kernel.KUID, caps kernel.CapSet) {
		tk := &kernel.Task{Name: name, PID: pid, TGID: pid, Parent: ts[parent],
			Cred: kernel.Cred{UID: uid, EUID: uid, SUID: uid, FSUID: uid, GID: kernel.KGID(uid), EGID: kernel.KGID(uid), SGID: kernel.KGID(uid), FSGID: kernel.KGID(uid),
				CapEffective: caps, CapPermitted: caps, UserNS: w.Init},
			MM: &kernel.MM{Dumpable: kernel.SuidDumpUser, UserNS: w.Init}}
		tk.Leader = tk
		ts[name] = tk
		w.AddTask(tk)
	}
	mk("init", 1, "", 0, kernel.CapSetAll)
	mk("shell", 10, "init", 1000, 0)
	mk("gdb", 11, "shell", 1000, 0)
	mk("child", 12, "gdb", 1000, 0)
	mk("grandchild", 13, "child", 1000, 0)
	mk("sibling", 14, "shell", 1000, 0)
	mk("root", 15, "init", 0, kernel.CapsOf(kernel.CapSysPtrace))
	return w, ts
}

func TestYamaScopes(t *testing.T) {
	tests := []struct {
		scope          int
		caller, target string
		mode           kernel.Mode
		want           kernel.Errno
	}{
		{0, "gdb", "sibling", kernel.AttachRealCreds, kernel.OK},
		{1, "gdb", "child", kernel.AttachRealCreds, kernel.OK},
		{1, "gdb", "grandchild", kernel.AttachRealCreds, kernel.OK},
		{1, "gdb", "sibling", kernel.AttachRealCreds, kernel.EPERM},
		{1, "gdb", "sibling", kernel.ReadFSCreds, kernel.OK},
		{1, "child", "gdb", kernel.AttachFSCreds, kernel.EPERM},
		{1, "root", "sibling", kernel.AttachRealCreds, kernel.OK},
		{2, "gdb", "child", kernel.AttachRealCreds, kernel.EPERM},
		{2, "root", "child", kernel.AttachRealCreds, kernel.OK},
		{2, "gdb", "child", kernel.ReadRealCreds, kernel.OK},
		{3, "root", "child", kernel.AttachRealCreds, kernel.EPERM},
		{3, "root", "child", kernel.ReadFSCreds, kernel.OK},
	}
	for _, tc := range tests {
		w, ts := family(t, tc.scope)
		d := w.ExplainPtraceMayAccess(ts[tc.caller], ts[tc.target], tc.mode)
		if d.Errno != tc.want {
			t.Errorf("scope %d %s -> %s %s: %s (layer %s), want %q", tc.scope, tc.caller, tc.target, tc.mode, d.Result(), d.Layer, tc.want)
		}
		if d.Errno != kernel.OK && d.Layer != "yama" {
			t.Errorf("scope %d %s -> %s: decided by %s, want yama", tc.scope, tc.caller, tc.target, d.Layer)
		}
	}
}

func TestYamaExceptions(t *testing.T) {
	w, ts := family(t, 1)
	sib := ts["sibling"]
	sib.Ptracer = &kernel.PtracerException{Tracer: ts["shell"]}
	if d := w.PtraceMayAccess(ts["gdb"], sib, kernel.AttachRealCreds); !d.Allowed {
		t.Errorf("a descendant of the declared tracer is refused: %+v", d)
	}
	sib.Ptracer = &kernel.PtracerException{Tracer: ts["child"]}
	if d := w.PtraceMayAccess(ts["gdb"], sib, kernel.AttachRealCreds); d.Allowed {
		t.Error("an ancestor of the declared tracer is allowed")
	}
	sib.Ptracer = &kernel.PtracerException{Any: true}
	if d := w.PtraceMayAccess(ts["child"], sib, kernel.AttachRealCreds); !d.Allowed {
		t.Error("PR_SET_PTRACER_ANY refused")
	}
	sib.Ptracer = nil
	sib.Tracer = ts["gdb"]
	if d := w.PtraceMayAccess(ts["gdb"], sib, kernel.AttachRealCreds); !d.Allowed {
		t.Error("the existing tracer is refused process_vm_readv-style access")
	}
}

func TestYamaAuditHonoursNoAudit(t *testing.T) {
	w, ts := family(t, 1)
	d := w.ExplainPtraceMayAccess(ts["gdb"], ts["sibling"], kernel.AttachFSCreds)
	if len(d.Audit) != 1 || !strings.Contains(d.Audit[0], `ptrace attach of "sibling"[14] was attempted by "gdb"[11]`) {
		t.Errorf("audit = %q", d.Audit)
	}
	d = w.ExplainPtraceMayAccess(ts["gdb"], ts["sibling"], kernel.AttachFSCreds|kernel.ModeNoAudit)
	if len(d.Audit) != 0 {
		t.Errorf("NOAUDIT logged %q", d.Audit)
	}
}

func TestYamaTraceme(t *testing.T) {
	sc, _ := kernel.LookupSyscall("ptrace_traceme")
	for scope, want := range map[int]kernel.Errno{0: kernel.OK, 1: kernel.OK, 2: kernel.EPERM, 3: kernel.EPERM} {
		w, ts := family(t, scope)
		d := w.ExplainSyscall(ts["child"], ts["gdb"], sc)
		if d.Errno != want {
			t.Errorf("scope %d TRACEME under an unprivileged parent: %s, want %q", scope, d.Result(), want)
		}
		if want != kernel.OK && len(d.Audit) != 1 {
			t.Errorf("scope %d: TRACEME denials are always logged: %q", scope, d.Audit)
		}
	}
	if _, err := yama.New(4); err == nil {
		t.Error("scope 4 accepted")
	}
}
