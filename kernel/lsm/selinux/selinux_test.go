package selinux_test

import (
	"strings"
	"testing"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/capability"
	"github.com/procgate/procgate/kernel/lsm/selinux"
)

// world builds a world with the capability module and SELinux.
type world struct {
	w *kernel.World
	m *selinux.Module
}

func newWorld(t testing.TB, policy string, enforcing bool) *world {
	t.Helper()
	p, err := selinux.Parse(policy)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	w := kernel.NewWorld(kernel.DefaultRelease)
	m := selinux.New(p, enforcing)
	w.LSMs = []kernel.LSM{capability.New(), m}
	return &world{w, m}
}

// task adds a task with uid/gid uid, the given label and capabilities, in
// namespace ns (nil: the initial one).
func (w *world) task(name string, pid int, uid kernel.KUID, label string, caps kernel.CapSet, ns *kernel.UserNS) *kernel.Task {
	if ns == nil {
		ns = w.w.Init
	}
	g := kernel.KGID(uid)
	tk := &kernel.Task{Name: name, PID: pid, TGID: pid, SELinux: label,
		Cred: kernel.Cred{UID: uid, EUID: uid, SUID: uid, FSUID: uid, GID: g, EGID: g, SGID: g, FSGID: g,
			CapEffective: caps, CapPermitted: caps, UserNS: ns},
		MM: &kernel.MM{Dumpable: kernel.SuidDumpUser, UserNS: ns}}
	tk.Leader = tk
	w.w.AddTask(tk)
	return tk
}

const basePolicy = `
# Case 26: file read without process ptrace.
type c_t;
type t_t;
type dbg_t;
type quiet_t;
type loud_t;
allow c_t t_t:file read;
allow dbg_t t_t:process ptrace;
auditallow dbg_t t_t:process ptrace;
dontaudit quiet_t t_t:{ file process } { read ptrace };
`

func TestPtraceAccessCheck(t *testing.T) {
	tests := []struct {
		name      string
		enforcing bool
		policy    string
		caller    string
		mode      kernel.Mode
		want      kernel.Errno
		audit     string // substring of the only record; "" means no record
	}{
		{"file read grants READ", true, basePolicy, "c_t", kernel.ReadFSCreds, kernel.OK, ""},
		{"file read does not grant ATTACH", true, basePolicy, "c_t", kernel.AttachRealCreds, kernel.EACCES,
			`avc:  denied  { ptrace } for  pid=100 comm="tool" scontext=user_u:user_r:c_t:s0 tcontext=system_u:system_r:t_t:s0 tclass=process permissive=0`},
		{"process ptrace does not grant READ", true, basePolicy, "dbg_t", kernel.ReadRealCreds, kernel.EACCES,
			`avc:  denied  { read } for  pid=100 comm="tool" scontext=user_u:user_r:dbg_t:s0 tcontext=system_u:system_r:t_t:s0 tclass=file permissive=0`},
		{"auditallow logs a granted record", true, basePolicy, "dbg_t", kernel.AttachFSCreds, kernel.OK,
			`avc:  granted  { ptrace } for  pid=100 comm="tool" scontext=user_u:user_r:dbg_t:s0 tcontext=system_u:system_r:t_t:s0 tclass=process`},
		{"dontaudit hides the record of a denial", true, basePolicy, "quiet_t", kernel.ReadFSCreds, kernel.EACCES, ""},
		{"dontaudit hides the ATTACH denial too", true, basePolicy, "quiet_t", kernel.AttachFSCreds, kernel.EACCES, ""},
		{"NOAUDIT does not silence SELinux", true, basePolicy, "loud_t", kernel.ReadFSCreds | kernel.ModeNoAudit, kernel.EACCES, "tclass=file permissive=0"},
		{"permissive mode grants and logs permissive=1", false, basePolicy, "c_t", kernel.AttachRealCreds, kernel.OK, "tclass=process permissive=1"},
		{"permissive domain grants and logs permissive=1", true, basePolicy + "permissive c_t;", "c_t", kernel.AttachRealCreds, kernel.OK, "tclass=process permissive=1"},
		{"permissive target domain does not help", true, basePolicy + "permissive t_t;", "c_t", kernel.AttachRealCreds, kernel.EACCES, "permissive=0"},
		{"permissive and dontaudit: allowed, silent", false, basePolicy, "quiet_t", kernel.AttachRealCreds, kernel.OK, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, tc.policy, tc.enforcing)
			c := w.task("tool", 100, 1000, "user_u:user_r:"+tc.caller+":s0", 0, nil)
			tg := w.task("service", 200, 1000, "system_u:system_r:t_t:s0", 0, nil)
			d := w.w.ExplainPtraceMayAccess(c, tg, tc.mode)
			if d.Errno != tc.want {
				t.Fatalf("PtraceMayAccess = %s (layer %s), want %q; steps %+v", d.Result(), d.Layer, tc.want, d.Steps)
			}
			if tc.want != kernel.OK && d.Layer != "selinux" {
				t.Errorf("layer = %s, want selinux", d.Layer)
			}
			switch {
			case tc.audit == "" && len(d.Audit) != 0:
				t.Errorf("audit = %q, want none", d.Audit)
			case tc.audit != "" && (len(d.Audit) != 1 || !strings.Contains(d.Audit[0], tc.audit)):
				t.Errorf("audit = %q, want one record containing %q", d.Audit, tc.audit)
			}
			// The fast path agrees.
			if f := w.w.PtraceMayAccess(c, tg, tc.mode); f.Errno != d.Errno {
				t.Errorf("fast path %s, explained %s", f.Result(), d.Result())
			}
		})
	}
}

func TestAttributesAndSets(t *testing.T) {
	const policy = `
attribute domain;
attribute debugger;
type a_t, domain;
type b_t, domain;
type c_t;
type d_t;
typeattribute c_t domain, debugger;
allow debugger { domain -b_t }:process ptrace;
allow ~{ c_t d_t } *:file read;
allow d_t self:process ptrace;
allow d_t { self a_t }:file read;
`
	tests := []struct {
		src, tgt string
		mode     kernel.Mode
		want     kernel.Errno
	}{
		{"c_t", "a_t", kernel.AttachFSCreds, kernel.OK},     // debugger → domain
		{"c_t", "c_t", kernel.AttachFSCreds, kernel.OK},     // c_t is in domain too
		{"c_t", "b_t", kernel.AttachFSCreds, kernel.EACCES}, // -b_t
		{"a_t", "b_t", kernel.AttachFSCreds, kernel.EACCES}, // a_t is no debugger
		{"a_t", "d_t", kernel.ReadFSCreds, kernel.OK},       // ~{c_t d_t} → *
		{"b_t", "c_t", kernel.ReadFSCreds, kernel.OK},
		{"c_t", "a_t", kernel.ReadFSCreds, kernel.EACCES}, // complement excludes c_t
		{"d_t", "d_t", kernel.AttachFSCreds, kernel.OK},   // self
		{"d_t", "a_t", kernel.AttachFSCreds, kernel.EACCES},
		{"d_t", "d_t", kernel.ReadFSCreds, kernel.OK}, // { self a_t }
		{"d_t", "a_t", kernel.ReadFSCreds, kernel.OK},
		{"d_t", "b_t", kernel.ReadFSCreds, kernel.EACCES},
	}
	w := newWorld(t, policy, true)
	for i, tc := range tests {
		c := w.task("c", 1000+2*i, 1000, "u:r:"+tc.src+":s0", 0, nil)
		tg := w.task("t", 1001+2*i, 1000, "u:r:"+tc.tgt+":s0", 0, nil)
		if d := w.w.PtraceMayAccess(c, tg, tc.mode); d.Errno != tc.want {
			t.Errorf("%s → %s %s: %s, want %q", tc.src, tc.tgt, tc.mode, d.Result(), tc.want)
		}
	}
	for _, tc := range []struct {
		src, tgt, class, perm string
		want                  bool
	}{
		{"c_t", "a_t", "process", "ptrace", true},
		{"c_t", "b_t", "process", "ptrace", false},
		{"d_t", "d_t", "process", "ptrace", true},
		{"nosuch_t", "a_t", "file", "read", false},
		{"a_t", "a_t", "nosuchclass", "read", false},
		{"a_t", "a_t", "file", "nosuchperm", false},
	} {
		if got := w.m.Allowed(tc.src, tc.tgt, tc.class, tc.perm); got != tc.want {
			t.Errorf("Allowed(%s, %s, %s, %s) = %v, want %v", tc.src, tc.tgt, tc.class, tc.perm, got, tc.want)
		}
	}
}

// TestUnlabeled: an empty label is the unlabeled context; an undeclared
// type is granted nothing.
func TestUnlabeled(t *testing.T) {
	w := newWorld(t, "type unlabeled_t;\ntype c_t;\nallow c_t unlabeled_t:file read;", true)
	c := w.task("tool", 100, 1000, "u:r:c_t:s0", 0, nil)
	un := w.task("unlabeled", 200, 1000, "", 0, nil)
	odd := w.task("odd", 300, 1000, "u:r:undeclared_t:s0", 0, nil)
	if d := w.w.ExplainPtraceMayAccess(c, un, kernel.ReadFSCreds); !d.Allowed {
		t.Errorf("c_t reading an unlabeled task: %s %+v", d.Result(), d.Steps)
	}
	d := w.w.ExplainPtraceMayAccess(un, c, kernel.ReadFSCreds)
	if d.Allowed || len(d.Audit) != 1 || !strings.Contains(d.Audit[0], "scontext="+selinux.UnlabeledContext+" ") {
		t.Errorf("unlabeled caller: %s %q", d.Result(), d.Audit)
	}
	if d := w.w.PtraceMayAccess(c, odd, kernel.ReadFSCreds); d.Allowed {
		t.Error("a task whose type the policy does not declare was readable")
	}
}

func TestTraceme(t *testing.T) {
	w := newWorld(t, "type parent_t;\ntype child_t;\nallow parent_t child_t:process ptrace;", true)
	parent := w.task("gdb", 100, 1000, "u:r:parent_t:s0", 0, nil)
	child := w.task("prog", 101, 1000, "u:r:child_t:s0", 0, nil)
	child.Parent = parent
	sc, err := kernel.LookupSyscall("ptrace_traceme")
	if err != nil {
		t.Fatal(err)
	}
	if d := w.w.ExplainSyscall(child, parent, sc); !d.Allowed {
		t.Errorf("TRACEME with parent_t → child_t ptrace: %s %+v", d.Result(), d.Steps)
	}
	// Reversed roles: the child's domain may not trace the parent's.
	other := w.task("other", 102, 1000, "u:r:child_t:s0", 0, nil)
	kid := w.task("kid", 103, 1000, "u:r:parent_t:s0", 0, nil)
	d := w.w.ExplainSyscall(kid, other, sc)
	if d.Errno != kernel.EACCES || d.Layer != "selinux" {
		t.Fatalf("TRACEME under a child_t parent: %s (layer %s)", d.Result(), d.Layer)
	}
	// The record names current, the child.
	if len(d.Audit) != 1 || !strings.Contains(d.Audit[0], `pid=103 comm="kid" scontext=u:r:child_t:s0 tcontext=u:r:parent_t:s0 tclass=process`) {
		t.Errorf("audit = %q", d.Audit)
	}
}

// TestCapabilityAVC: the CAP_SYS_PTRACE checks of the core and of
// commoncap reach SELinux as capability (initial namespace) or cap_userns
// (others).
func TestCapabilityAVC(t *testing.T) {
	const policy = `
type admin_t;
type capable_t;
type t_t;
allow { admin_t capable_t } t_t:{ file process } { read ptrace };
allow capable_t self:{ capability cap_userns } sys_ptrace;
`
	tests := []struct {
		name   string
		caller string
		userns bool
		want   kernel.Errno
		audit  string
	}{
		{"init namespace, capability denied", "admin_t", false, kernel.EPERM,
			`avc:  denied  { sys_ptrace } for  pid=100 comm="root" capability=19  scontext=u:r:admin_t:s0 tcontext=u:r:admin_t:s0 tclass=capability permissive=0`},
		{"init namespace, capability allowed", "capable_t", false, kernel.OK, ""},
		{"child namespace, cap_userns denied", "admin_t", true, kernel.EPERM, "capability=19  scontext=u:r:admin_t:s0 tcontext=u:r:admin_t:s0 tclass=cap_userns permissive=0"},
		{"child namespace, cap_userns allowed", "capable_t", true, kernel.OK, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, policy, true)
			ns := w.w.Init
			if tc.userns {
				ns = &kernel.UserNS{Name: "child", Parent: w.w.Init, Level: 1, Owner: 1000, Group: 1000,
					UIDMap: []kernel.IDExtent{{Inside: 0, Outside: 1000, Count: 1}}, GIDMap: []kernel.IDExtent{{Inside: 0, Outside: 1000, Count: 1}}}
				w.w.Namespaces = append(w.w.Namespaces, ns)
			}
			c := w.task("root", 100, 0, "u:r:"+tc.caller+":s0", kernel.CapsOf(kernel.CapSysPtrace), nil)
			tg := w.task("service", 200, 1000, "u:r:t_t:s0", 0, ns)
			d := w.w.ExplainPtraceMayAccess(c, tg, kernel.AttachRealCreds)
			if d.Errno != tc.want {
				t.Fatalf("got %s (layer %s), want %q: %+v", d.Result(), d.Layer, tc.want, d.Steps)
			}
			if tc.audit == "" {
				if len(d.Audit) != 0 {
					t.Errorf("audit = %q", d.Audit)
				}
				return
			}
			if len(d.Audit) == 0 || !strings.Contains(d.Audit[0], tc.audit) {
				t.Errorf("audit = %q, want %q", d.Audit, tc.audit)
			}
			found := false
			for _, s := range d.Steps {
				found = found || s.Layer == "selinux" && s.Outcome == kernel.Deny
			}
			if !found {
				t.Errorf("no selinux denial among the steps: %+v", d.Steps)
			}
		})
	}
}

// TestCapabilityClasses: capabilities above 31 use capability2 and
// cap2_userns; CAP_OPT_NOAUDIT suppresses the record only.
func TestCapabilityClasses(t *testing.T) {
	w := newWorld(t, "type a_t;\nallow a_t self:capability2 perfmon;", true)
	tk := w.task("perf", 100, 0, "u:r:a_t:s0", kernel.CapSetAll, nil)
	child := &kernel.UserNS{Name: "child", Parent: w.w.Init, Level: 1}
	for _, tc := range []struct {
		ns      *kernel.UserNS
		cap     kernel.Cap
		noaudit bool
		want    kernel.Errno
		audit   string
	}{
		{w.w.Init, kernel.CapPerfmon, false, kernel.OK, ""},
		{child, kernel.CapPerfmon, false, kernel.EACCES, "{ perfmon } for  pid=100 comm=\"perf\" capability=38  scontext=u:r:a_t:s0 tcontext=u:r:a_t:s0 tclass=cap2_userns permissive=0"},
		{w.w.Init, kernel.CapCheckpointRestore, false, kernel.EACCES, "capability=40  scontext=u:r:a_t:s0 tcontext=u:r:a_t:s0 tclass=capability2"},
		{w.w.Init, kernel.CapSysAdmin, true, kernel.EACCES, ""},
	} {
		tr := &kernel.Trace{}
		got := w.m.Capable(kernel.Env{W: w.w, T: tr}, tk, tc.ns, tc.cap, tc.noaudit)
		if got != tc.want {
			t.Errorf("Capable(%s in %s) = %q, want %q", tc.cap, tc.ns.Name, got, tc.want)
		}
		if tc.audit == "" && len(tr.Audit) != 0 || tc.audit != "" && (len(tr.Audit) != 1 || !strings.Contains(tr.Audit[0], tc.audit)) {
			t.Errorf("Capable(%s in %s): audit %q, want %q", tc.cap, tc.ns.Name, tr.Audit, tc.audit)
		}
	}
}

func TestCommHexEncoded(t *testing.T) {
	w := newWorld(t, "type a_t;\ntype b_t;", true)
	c := w.task("x", 100, 1000, "u:r:a_t:s0", 0, nil)
	c.Comm = "my tool"
	tg := w.task("y", 200, 1000, "u:r:b_t:s0", 0, nil)
	d := w.w.ExplainPtraceMayAccess(c, tg, kernel.ReadFSCreds)
	if len(d.Audit) != 1 || !strings.Contains(d.Audit[0], " comm=6D7920746F6F6C scontext=") {
		t.Errorf("audit = %q", d.Audit)
	}
}
