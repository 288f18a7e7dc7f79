package apparmor_test

import (
	"strings"
	"testing"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/apparmor"
	"github.com/procgate/procgate/kernel/lsm/capability"
)

// s12 are the profiles of the S12 oracle run (Debian 6.1, abi 3.0).
const s12 = `
abi <abi/3.0>,
profile noptrace {
  capability sys_ptrace,
}
profile reader {
  ptrace (read) peer=target,
}
profile tracer {
  ptrace (trace) peer=target,
}
profile both {
  ptrace (read, trace) peer=readonly,
}
profile target {
  ptrace (readby, tracedby),
}
profile readonly {
  ptrace (readby),
}
profile strict {
  ptrace (readby) peer=nobody,
}
`

type world struct {
	w *kernel.World
	m *apparmor.Module
}

func newWorld(t testing.TB, profiles string) *world {
	t.Helper()
	p, err := apparmor.Parse(profiles)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	w := kernel.NewWorld(kernel.DefaultRelease)
	m := apparmor.New(p)
	w.LSMs = []kernel.LSM{capability.New(), m}
	return &world{w, m}
}

func (w *world) task(name string, pid int, label string, caps kernel.CapSet) *kernel.Task {
	tk := &kernel.Task{Name: name, PID: pid, TGID: pid, AppArmor: label,
		Cred: kernel.Cred{UID: 1000, EUID: 1000, SUID: 1000, FSUID: 1000, GID: 1000, EGID: 1000, SGID: 1000, FSGID: 1000,
			CapEffective: caps, CapPermitted: caps, UserNS: w.w.Init},
		MM: &kernel.MM{Dumpable: kernel.SuidDumpUser, UserNS: w.w.Init}}
	tk.Leader = tk
	w.w.AddTask(tk)
	return tk
}

// TestS12 encodes every observation of oracle run S12 as a named case.
func TestS12(t *testing.T) {
	w := newWorld(t, s12)
	ts := map[string]*kernel.Task{
		"admin":         w.task("admin", 1000, "unconfined", 0),
		"noptrace":      w.task("noptrace", 1100, "noptrace", kernel.CapsOf(kernel.CapSysPtrace)),
		"noptrace-peer": w.task("noptrace-peer", 1150, "noptrace", 0),
		"reader":        w.task("reader", 1200, "reader", 0),
		"tracer":        w.task("tracer", 1300, "tracer", 0),
		"both":          w.task("both", 1400, "both", 0),
		"target":        w.task("target", 2000, "target", 0),
		"readonly":      w.task("readonly", 2100, "readonly", 0),
		"strict":        w.task("strict", 2200, "strict", 0),
	}
	tests := []struct {
		name           string
		caller, target string
		mode           kernel.Mode
		want           kernel.Errno
	}{
		{"unconfined tracer attaches to a strict target", "admin", "strict", kernel.AttachRealCreds, kernel.OK},
		{"unconfined tracer reads a strict target", "admin", "strict", kernel.ReadFSCreds, kernel.OK},
		{"profile without ptrace rules cannot read its own peer", "noptrace", "noptrace-peer", kernel.ReadFSCreds, kernel.EACCES},
		{"profile without ptrace rules cannot attach even with capability sys_ptrace", "noptrace", "noptrace-peer", kernel.AttachRealCreds, kernel.EACCES},
		{"ptrace read allows READ", "reader", "target", kernel.ReadFSCreds, kernel.OK},
		{"ptrace read allows READ_REALCREDS (kcmp)", "reader", "target", kernel.ReadRealCreds, kernel.OK},
		{"ptrace read denies ATTACH", "reader", "target", kernel.AttachRealCreds, kernel.EACCES},
		{"ptrace trace allows ATTACH", "tracer", "target", kernel.AttachRealCreds, kernel.OK},
		{"ptrace trace allows ATTACH_FSCREDS (mem)", "tracer", "target", kernel.AttachFSCreds, kernel.OK},
		{"ptrace trace does not imply read", "tracer", "target", kernel.ReadFSCreds, kernel.EACCES},
		{"readby-only target lets a read-trace tracer read", "both", "readonly", kernel.ReadFSCreds, kernel.OK},
		{"readby-only target refuses a read-trace tracer's attach", "both", "readonly", kernel.AttachRealCreds, kernel.EACCES},
		{"target side without readby for the tracer refuses reads", "both", "strict", kernel.ReadFSCreds, kernel.EACCES},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := w.w.ExplainPtraceMayAccess(ts[tc.caller], ts[tc.target], tc.mode)
			if d.Errno != tc.want {
				t.Fatalf("got %s (layer %s), want %q: %+v", d.Result(), d.Layer, tc.want, d.Steps)
			}
			if tc.want != kernel.OK && d.Layer != "apparmor" {
				t.Errorf("layer %s, want apparmor", d.Layer)
			}
			if f := w.w.PtraceMayAccess(ts[tc.caller], ts[tc.target], tc.mode); f.Errno != d.Errno {
				t.Errorf("fast path %s, explained %s", f.Result(), d.Result())
			}
		})
	}
	// ptrace(2) passes AppArmor's EACCES through.
	sc, _ := kernel.LookupSyscall("ptrace_seize")
	if d := w.w.CheckSyscall(ts["reader"], ts["target"], sc); d.Errno != kernel.EACCES {
		t.Errorf("PTRACE_SEIZE under ptrace (read): %s", d.Result())
	}
}

func TestRecords(t *testing.T) {
	const profiles = `
profile reader {
  ptrace (read) peer=target,
  audit ptrace (trace) peer=audited,
  deny ptrace (trace) peer=target,
  audit deny ptrace (trace) peer=loud,
}
profile target { ptrace (readby, tracedby) peer=reader, ptrace (readby) peer=lax, }
profile audited { ptrace, }
profile loud { ptrace, }
profile lax flags=(complain) { }
`
	w := newWorld(t, profiles)
	reader := w.task("reader", 100, "reader", 0)
	target := w.task("target", 200, "target", 0)
	audited := w.task("audited", 300, "audited", 0)
	loud := w.task("loud", 400, "loud", 0)
	lax := w.task("lax", 500, "lax", 0)
	lax.Comm = "laxcmd"
	tests := []struct {
		name   string
		c, t   *kernel.Task
		mode   kernel.Mode
		want   kernel.Errno
		audits []string
	}{
		{"deny beats allow and is quiet", reader, target, kernel.AttachRealCreds, kernel.EACCES, nil},
		{"NOAUDIT changes nothing", reader, target, kernel.ReadFSCreds | kernel.ModeNoAudit, kernel.OK, nil},
		{"missing tracedby on the target side", audited, target, kernel.AttachRealCreds, kernel.EACCES, []string{
			`apparmor="DENIED" operation="ptrace" class="ptrace" profile="target" pid=300 comm="audited" requested_mask="tracedby" denied_mask="tracedby" peer="audited"`}},
		{"tracer side denial is logged", target, audited, kernel.ReadFSCreds, kernel.EACCES, []string{
			`apparmor="DENIED" operation="ptrace" class="ptrace" profile="target" pid=200 comm="target" requested_mask="read" denied_mask="read" peer="audited"`}},
		{"audit allow logs an AUDIT record", reader, audited, kernel.AttachRealCreds, kernel.OK, []string{
			`apparmor="AUDIT" operation="ptrace" class="ptrace" profile="reader" pid=100 comm="reader" requested_mask="trace" peer="audited"`}},
		{"audit deny logs", reader, loud, kernel.AttachRealCreds, kernel.EACCES, []string{
			`apparmor="DENIED" operation="ptrace" class="ptrace" profile="reader" pid=100 comm="reader" requested_mask="trace" denied_mask="trace" peer="loud"`}},
		{"complain mode allows and logs ALLOWED", lax, target, kernel.ReadFSCreds, kernel.OK, []string{
			`apparmor="ALLOWED" operation="ptrace" class="ptrace" profile="lax" pid=500 comm="laxcmd" requested_mask="read" denied_mask="read" peer="target"`}},
		{"complain mode does not waive the target's side", lax, target, kernel.AttachRealCreds, kernel.EACCES, []string{
			`apparmor="ALLOWED" operation="ptrace" class="ptrace" profile="lax" pid=500 comm="laxcmd" requested_mask="trace" denied_mask="trace" peer="target"`,
			`apparmor="DENIED" operation="ptrace" class="ptrace" profile="target" pid=500 comm="laxcmd" requested_mask="tracedby" denied_mask="tracedby" peer="lax"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := w.w.ExplainPtraceMayAccess(tc.c, tc.t, tc.mode)
			if d.Errno != tc.want {
				t.Fatalf("got %s, want %q: %+v", d.Result(), tc.want, d.Steps)
			}
			if strings.Join(d.Audit, "\n") != strings.Join(tc.audits, "\n") {
				t.Errorf("audit =\n%s\nwant\n%s", strings.Join(d.Audit, "\n"), strings.Join(tc.audits, "\n"))
			}
		})
	}
}

func TestComplainBothSides(t *testing.T) {
	w := newWorld(t, "profile a flags=(complain) { }\nprofile b flags=(attach_disconnected, complain) { }")
	a, b := w.task("a", 100, "a", 0), w.task("b", 200, "b (complain)", 0)
	d := w.w.ExplainPtraceMayAccess(a, b, kernel.AttachRealCreds)
	if !d.Allowed || len(d.Audit) != 2 || !strings.HasPrefix(d.Audit[1], `apparmor="ALLOWED"`) {
		t.Errorf("%s %q", d.Result(), d.Audit)
	}
}

func TestGlobs(t *testing.T) {
	const profiles = `
profile tool {
  ptrace (read) peer=snap.*.{daemon,worker},
  ptrace (read) peer=/usr/bin/**,
  ptrace (read) peer=svc-[0-9]?,
  ptrace (trace) peer="quoted name",
  ptrace read peer=unconfined,
}
`
	w := newWorld(t, profiles+"profile snap.foo.daemon { ptrace, }\nprofile snap.foo.bar.daemon { ptrace, }\nprofile snap.foo.other { ptrace, }\n"+
		"profile /usr/bin/sub/x { ptrace, }\nprofile svc-1a { ptrace, }\nprofile svc-10/ { ptrace, }\nprofile \"quoted name\" { ptrace, }\n")
	tool := w.task("tool", 100, "tool", 0)
	for i, tc := range []struct {
		label string
		mode  kernel.Mode
		want  bool
	}{
		{"snap.foo.daemon", kernel.ReadFSCreds, true},
		{"snap.foo.bar.daemon", kernel.ReadFSCreds, true}, // '*' crosses '.' but not '/'
		{"snap.foo.other", kernel.ReadFSCreds, false},
		{"/usr/bin/sub/x", kernel.ReadFSCreds, true},
		{"svc-1a", kernel.ReadFSCreds, true},
		{"svc-10/", kernel.ReadFSCreds, false},
		{"quoted name", kernel.AttachFSCreds, true},
		{"quoted name", kernel.ReadFSCreds, false},
		{"unconfined", kernel.ReadFSCreds, true},
		{"", kernel.AttachFSCreds, false},
	} {
		tg := w.task("t", 200+i, tc.label, 0)
		for range 2 { // the second decision comes from the match cache
			if got := w.w.PtraceMayAccess(tool, tg, tc.mode).Allowed; got != tc.want {
				t.Errorf("tool → %q %s: allowed %v, want %v", tc.label, tc.mode, got, tc.want)
			}
		}
	}
}

// TestLegacy covers the fallback behind LegacyNoPtraceMediation.
func TestLegacy(t *testing.T) {
	w := newWorld(t, s12+"profile nocap { }\nprofile lax flags=(complain) { }")
	w.m.LegacyNoPtraceMediation = true
	np := w.task("noptrace", 100, "noptrace", kernel.CapsOf(kernel.CapSysPtrace))
	peer := w.task("peer", 101, "noptrace", 0)
	nocap := w.task("nocap", 102, "nocap", 0)
	lax := w.task("lax", 103, "lax", 0)
	reader := w.task("reader", 104, "reader", 0)
	for _, tc := range []struct {
		name  string
		c, t  *kernel.Task
		want  kernel.Errno
		audit string
	}{
		{"same label", np, peer, kernel.OK, ""},
		{"capability sys_ptrace in the profile", np, nocap, kernel.OK, ""},
		{"no capability: EPERM", nocap, peer, kernel.EPERM, `apparmor="DENIED" operation="capable" class="cap" profile="nocap" pid=102 comm="nocap" capability=19  capname="sys_ptrace"`},
		{"complain", lax, peer, kernel.OK, `apparmor="ALLOWED" operation="capable"`},
		{"target without ptrace rules is not consulted", reader, nocap, kernel.EACCES, `requested_mask="read" denied_mask="read" peer="nocap"`},
	} {
		d := w.w.ExplainPtraceMayAccess(tc.c, tc.t, kernel.AttachRealCreds)
		if tc.name == "target without ptrace rules is not consulted" {
			d = w.w.ExplainPtraceMayAccess(tc.c, tc.t, kernel.ReadFSCreds)
		}
		if d.Errno != tc.want {
			t.Errorf("%s: %s, want %q %+v", tc.name, d.Result(), tc.want, d.Steps)
		}
		if tc.audit != "" && (len(d.Audit) == 0 || !strings.Contains(d.Audit[0], tc.audit)) {
			t.Errorf("%s: audit %q, want %q", tc.name, d.Audit, tc.audit)
		}
	}
}

func TestTraceme(t *testing.T) {
	w := newWorld(t, "profile gdb { ptrace (trace) peer=prog, }\nprofile prog { ptrace (tracedby) peer=gdb, }\nprofile other { ptrace (tracedby) peer=nobody, }")
	gdb := w.task("gdb", 100, "gdb", 0)
	prog := w.task("prog", 101, "prog", 0)
	other := w.task("other", 102, "other", 0)
	sc, _ := kernel.LookupSyscall("ptrace_traceme")
	if d := w.w.ExplainSyscall(prog, gdb, sc); !d.Allowed {
		t.Errorf("TRACEME under gdb: %s %+v", d.Result(), d.Steps)
	}
	d := w.w.ExplainSyscall(other, gdb, sc)
	if d.Errno != kernel.EACCES || len(d.Audit) != 2 || !strings.Contains(d.Audit[1], `profile="other" pid=102 comm="other" requested_mask="tracedby" denied_mask="tracedby" peer="gdb"`) {
		t.Errorf("TRACEME of other under gdb: %s %q", d.Result(), d.Audit)
	}
}

func TestCapable(t *testing.T) {
	w := newWorld(t, "profile a { capability sys_ptrace, audit capability sys_admin, deny capability sys_nice, }\nprofile all { capability, }\nprofile c flags=(complain) { }")
	a := w.task("a", 100, "a", kernel.CapSetAll)
	all := w.task("all", 101, "all", 0)
	c := w.task("c", 102, "c", 0)
	un := w.task("u", 103, "", 0)
	for _, tc := range []struct {
		t       *kernel.Task
		cap     kernel.Cap
		noaudit bool
		want    kernel.Errno
		audit   string
	}{
		{a, kernel.CapSysPtrace, false, kernel.OK, ""},
		{a, kernel.CapSysAdmin, false, kernel.OK, `apparmor="AUDIT" operation="capable" class="cap" profile="a" pid=100 comm="a" capability=21  capname="sys_admin"`},
		{a, kernel.CapDACOverride, false, kernel.EPERM, `apparmor="DENIED" operation="capable" class="cap" profile="a" pid=100 comm="a" capability=1  capname="dac_override"`},
		{a, kernel.CapDACOverride, true, kernel.EPERM, ""},
		{a, kernel.CapSysNice, false, kernel.EPERM, ""}, // deny rules are quiet
		{all, kernel.CapCheckpointRestore, false, kernel.OK, ""},
		{c, kernel.CapSysPtrace, false, kernel.OK, `apparmor="ALLOWED" operation="capable"`},
		{c, kernel.CapSysPtrace, true, kernel.OK, `apparmor="ALLOWED" operation="capable" class="cap" info="optional: no audit" error=-1 profile="c"`},
		{un, kernel.CapSysPtrace, false, kernel.OK, ""},
	} {
		tr := &kernel.Trace{}
		got := w.m.Capable(kernel.Env{W: w.w, T: tr}, tc.t, w.w.Init, tc.cap, tc.noaudit)
		if got != tc.want {
			t.Errorf("%s %s: %q, want %q", tc.t.Name, tc.cap, got, tc.want)
		}
		if tc.audit == "" && len(tr.Audit) != 0 || tc.audit != "" && (len(tr.Audit) != 1 || !strings.Contains(tr.Audit[0], tc.audit)) {
			t.Errorf("%s %s noaudit=%v: audit %q, want %q", tc.t.Name, tc.cap, tc.noaudit, tr.Audit, tc.audit)
		}
	}
}

func TestUnloadedProfileDenies(t *testing.T) {
	w := newWorld(t, "profile a { ptrace, }")
	a, ghost := w.task("a", 100, "a", 0), w.task("g", 101, "ghost", 0)
	if d := w.w.PtraceMayAccess(ghost, a, kernel.ReadFSCreds); d.Allowed {
		t.Error("a task in an unloaded profile was allowed")
	}
	if d := w.w.PtraceMayAccess(a, ghost, kernel.ReadFSCreds); d.Allowed {
		t.Error("the target side of an unloaded profile allowed")
	}
}
