package kernel_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/apparmor"
	"github.com/procgate/procgate/kernel/lsm/capability"
	"github.com/procgate/procgate/kernel/lsm/landlock"
	"github.com/procgate/procgate/kernel/lsm/selinux"
	"github.com/procgate/procgate/kernel/lsm/yama"
)

// macPolicy10k returns a type-enforcement policy of 10,000 access-vector
// rules over 1,000 types and 20 attributes, and an AppArmor policy of
// 1,000 profiles that grant each other by glob and exact peer.
func macPolicy10k() (te, aa string) {
	var b strings.Builder
	for i := range 20 {
		fmt.Fprintf(&b, "attribute attr%d;\n", i)
	}
	for i := range 1000 {
		fmt.Fprintf(&b, "type t%d_t, attr%d;\n", i, i%20)
	}
	for i := range 9998 {
		switch i % 4 {
		case 0:
			fmt.Fprintf(&b, "allow t%d_t t%d_t:file read;\n", i%1000, (i*7+3)%1000)
		case 1:
			fmt.Fprintf(&b, "allow attr%d t%d_t:process { ptrace getattr };\n", i%20, (i*13)%1000)
		case 2:
			fmt.Fprintf(&b, "dontaudit t%d_t attr%d:file read;\n", i%1000, i%20)
		default:
			fmt.Fprintf(&b, "allow { t%d_t t%d_t } self:capability sys_ptrace;\n", i%1000, (i+1)%1000)
		}
	}
	b.WriteString("allow t1_t t2_t:{ file process } { read ptrace };\n")
	b.WriteString("allow t1_t self:capability sys_ptrace;\n")
	b.WriteString("allow t1_t t2_t:dir search;\n")
	te = b.String()
	b.Reset()
	for i := range 1000 {
		fmt.Fprintf(&b, "profile app%d {\n  ptrace (read, trace) peer=app{%d,%d}*,\n  ptrace (readby, tracedby) peer=app%d,\n  capability sys_ptrace,\n}\n", i, i+1, i+2, i-1)
	}
	return te, b.String()
}

// BenchmarkDecisionMAC is one decision with every module of a
// fully-fledged distribution kernel active — capability, Landlock, Yama
// (scope 1), SELinux with 10,000 rules and AppArmor with 1,000 profiles —
// between two same-uid tasks in sibling domains: every hook runs and
// grants. The SELinux answer comes from its AVC cache after the first
// decision. The "miss" variant reloads the SELinux policy before each
// decision, which empties the cache.
func BenchmarkDecisionMAC(b *testing.B) {
	te, aa := macPolicy10k()
	sp, err := selinux.Parse(te)
	if err != nil {
		b.Fatal(err)
	}
	ap, err := apparmor.Parse(aa)
	if err != nil {
		b.Fatal(err)
	}
	y, err := yama.New(1)
	if err != nil {
		b.Fatal(err)
	}
	se := selinux.New(sp, true)
	w := kernel.NewWorld(kernel.DefaultRelease)
	w.LSMs = []kernel.LSM{capability.New(), landlock.New(7), y, se, apparmor.New(ap)}
	mk := func(name string, pid int, parent *kernel.Task, label, profile string) *kernel.Task {
		t := &kernel.Task{Name: name, PID: pid, TGID: pid, Parent: parent,
			Cred:    kernel.Cred{UID: 1000, EUID: 1000, SUID: 1000, FSUID: 1000, GID: 1000, EGID: 1000, SGID: 1000, FSGID: 1000, UserNS: w.Init},
			MM:      &kernel.MM{Dumpable: kernel.SuidDumpUser, UserNS: w.Init},
			SELinux: label, AppArmor: profile}
		t.Leader = t
		w.AddTask(t)
		return t
	}
	c := mk("caller", 100, nil, "user_u:user_r:t1_t:s0", "app1")
	t := mk("target", 101, c, "system_u:system_r:t2_t:s0", "app2")
	benchModes(b, w, c, t)
	b.Run("entry_maps", func(b *testing.B) {
		e, err := kernel.LookupEntry("maps")
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if d := w.CheckEntry(c, t, e); !d.Allowed {
				b.Fatal(d)
			}
		}
	})
	b.Run("miss", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			se.SetPolicy(sp)
			w.PtraceMayAccess(c, t, kernel.ReadFSCreds)
		}
	})
	st := se.Stats()
	b.Logf("SELinux AVC: %+v", st)
}

// TestDecisionMACDoesNotAllocate holds the zero-allocation property with
// SELinux and AppArmor in the stack.
func TestDecisionMACDoesNotAllocate(t *testing.T) {
	te, aa := macPolicy10k()
	sp, err := selinux.Parse(te)
	if err != nil {
		t.Fatal(err)
	}
	ap, err := apparmor.Parse(aa)
	if err != nil {
		t.Fatal(err)
	}
	w := kernel.NewWorld(kernel.DefaultRelease)
	w.LSMs = []kernel.LSM{capability.New(), selinux.New(sp, true), apparmor.New(ap)}
	mk := func(name string, pid, uid int, label, profile string) *kernel.Task {
		id := kernel.KUID(uid)
		g := kernel.KGID(uid)
		tk := &kernel.Task{Name: name, PID: pid, TGID: pid,
			Cred:    kernel.Cred{UID: id, EUID: id, SUID: id, FSUID: id, GID: g, EGID: g, SGID: g, FSGID: g, UserNS: w.Init},
			MM:      &kernel.MM{Dumpable: kernel.SuidDumpUser, UserNS: w.Init},
			SELinux: label, AppArmor: profile}
		tk.Leader = tk
		w.AddTask(tk)
		return tk
	}
	a := mk("a", 100, 1000, "u:r:t1_t:s0", "app1")
	b := mk("b", 101, 1000, "u:r:t2_t:s0", "app2")
	o := mk("o", 102, 2000, "u:r:t5_t:s0", "app7")
	for _, pair := range [][2]*kernel.Task{{a, b}, {b, a}, {a, o}, {o, a}} {
		for _, m := range []kernel.Mode{kernel.ReadFSCreds, kernel.AttachRealCreds} {
			w.PtraceMayAccess(pair[0], pair[1], m)
			if n := testing.AllocsPerRun(100, func() { w.PtraceMayAccess(pair[0], pair[1], m) }); n != 0 {
				t.Errorf("%s → %s %s: %v allocs", pair[0].Name, pair[1].Name, m, n)
			}
		}
		// Entries add SELinux's VFS checks on the /proc/<pid> inodes.
		for _, name := range []string{"maps", "stat", "exe", "fd", "fd/0", "ns/user", "."} {
			ent, err := kernel.LookupEntry(name)
			if err != nil {
				t.Fatal(err)
			}
			w.CheckEntry(pair[0], pair[1], ent)
			if n := testing.AllocsPerRun(100, func() { w.CheckEntry(pair[0], pair[1], ent) }); n != 0 {
				t.Errorf("%s → %s %s: %v allocs", pair[0].Name, pair[1].Name, name, n)
			}
		}
	}
}
