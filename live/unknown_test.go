package live

import (
	"strings"
	"testing"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/scenario"
)

const unknownWorld = `
kernel:
  release: "6.18.44"
  lsm: [capability, landlock, yama]
  yama: {ptrace_scope: 1}
tasks:
  - {name: shell, pid: 2000, uid: 1000, gid: 1000, caps: none}
  - {name: gdb, pid: 2100, parent: shell, uid: 1000, gid: 1000, caps: none, apparmor: unconfined}
  - {name: child, pid: 2101, parent: gdb, uid: 1000, gid: 1000, caps: none}
  - {name: editor, pid: 2200, parent: shell, uid: 1000, gid: 1000, caps: none}
  - {name: confined, pid: 2300, parent: shell, uid: 1000, gid: 1000, caps: none, apparmor: "/usr/bin/tool"}
  - {name: root, pid: 1, uid: 0, gid: 0}
  - {name: rootnocaps, pid: 3000, uid: 0, gid: 0, caps: none}
  - {name: rootdaemon, pid: 3001, uid: 0, gid: 0, caps: none}
`

// system wraps a scenario world as if it had been read live.
func system(t *testing.T, unmodelled ...string) *System {
	t.Helper()
	s, err := scenario.Load("unknown.yaml", []byte(unknownWorld))
	if err != nil {
		t.Fatal(err)
	}
	return &System{World: s.World, Unmodelled: unmodelled, unknown: map[*kernel.Task]uncertain{}}
}

func access(t *testing.T, what string) Access {
	t.Helper()
	if e, err := kernel.LookupEntry(what); err == nil {
		return Access{Entry: e}
	}
	sc, err := kernel.LookupSyscall(what)
	if err != nil {
		t.Fatal(err)
	}
	return Access{Syscall: sc}
}

func hasUnknown(list []string, prefix string) bool {
	for _, u := range list {
		if strings.HasPrefix(u, prefix+":") {
			return true
		}
	}
	return false
}

func TestUnknowns(t *testing.T) {
	s := system(t, "selinux", "apparmor")
	w := s.World
	tests := []struct {
		caller, target, access string
		allowed                bool
		want, notWant          []string
	}{
		// Allowed through the modules: Landlock and MAC could deny it;
		// Yama does not matter (the child is a descendant).
		{"gdb", "child", "ptrace_attach", true, []string{"landlock", "selinux"}, []string{"yama", "apparmor"}},
		// Denied by Yama: only an exception could allow it; Landlock and
		// MAC can only deny, so they do not matter.
		{"gdb", "editor", "ptrace_attach", false, []string{"yama"}, []string{"landlock", "selinux", "apparmor"}},
		// A confined caller: AppArmor matters too.
		{"confined", "editor", "maps", true, []string{"landlock", "selinux", "apparmor"}, []string{"yama"}},
		// Denied by the uid check: nothing unknown matters.
		{"shell", "root", "environ", false, nil, []string{"landlock", "yama", "selinux", "apparmor"}},
		// Same thread group: no module runs.
		{"gdb", "gdb", "mem", true, nil, []string{"landlock", "yama", "selinux", "apparmor"}},
		// status has no ptrace check.
		{"shell", "root", "status", true, nil, []string{"landlock", "yama", "selinux"}},
	}
	for _, tt := range tests {
		c, tg := w.Task(tt.caller), w.Task(tt.target)
		d := s.Decide(c, tg, access(t, tt.access), false)
		if d.Allowed != tt.allowed {
			t.Errorf("%s -> %s %s: allowed %v, want %v", tt.caller, tt.target, tt.access, d.Allowed, tt.allowed)
		}
		for _, p := range tt.want {
			if !hasUnknown(d.Unknown, p) {
				t.Errorf("%s -> %s %s: unknowns %q lack %s", tt.caller, tt.target, tt.access, d.Unknown, p)
			}
		}
		for _, p := range tt.notWant {
			if hasUnknown(d.Unknown, p) {
				t.Errorf("%s -> %s %s: unknowns %q name %s, which cannot change the answer", tt.caller, tt.target, tt.access, d.Unknown, p)
			}
		}
	}
	// The what-ifs leave the world alone.
	for _, x := range w.Tasks {
		if x.Landlock != nil || x.Ptracer != nil {
			t.Errorf("task %s changed: landlock %v ptracer %v", x.Name, x.Landlock, x.Ptracer)
		}
	}
	if len(w.LSMs) != 3 {
		t.Errorf("world modules changed: %d", len(w.LSMs))
	}
}

func TestUnknownDumpable(t *testing.T) {
	s := system(t)
	w := s.World
	root, nocaps, daemon := w.Task("root"), w.Task("rootnocaps"), w.Task("rootdaemon")
	s.unknown[daemon] = unkDumpable
	// Root callers and targets without capabilities: same ids, no caps
	// to compare, so dumpable decides.
	d := s.Decide(nocaps, daemon, access(t, "exe"), false)
	if !d.Allowed || !hasUnknown(d.Unknown, "dumpable") {
		t.Errorf("rootnocaps -> rootdaemon exe: %v (%q), want allow with a dumpable unknown", d.Result(), d.Unknown)
	}
	// A caller with CAP_SYS_PTRACE passes either way.
	d = s.Decide(root, daemon, access(t, "exe"), false)
	if hasUnknown(d.Unknown, "dumpable") {
		t.Errorf("root -> rootdaemon: %q", d.Unknown)
	}
	if u := s.Uncertainties(); len(u) != 1 || !strings.Contains(u[0], "rootdaemon") {
		t.Errorf("Uncertainties %q", u)
	}
	s.unknown[root] = unkUserNS
	d = s.Decide(nocaps, root, access(t, "maps"), false)
	if !hasUnknown(d.Unknown, "userns") {
		t.Errorf("unreadable namespace not reported: %q", d.Unknown)
	}
}

// TRACEME asks about the parent's domain, not the caller's.
func TestUnknownTraceme(t *testing.T) {
	s := system(t)
	w := s.World
	d := s.Decide(w.Task("child"), w.Task("gdb"), access(t, "ptrace_traceme"), false)
	if !d.Allowed || len(d.Unknown) != 1 || !strings.Contains(d.Unknown[0], "if gdb[") && !strings.Contains(d.Unknown[0], "if gdb is sandboxed") {
		t.Errorf("traceme: %v %q", d.Result(), d.Unknown)
	}
}
