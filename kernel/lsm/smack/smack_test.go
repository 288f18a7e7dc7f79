package smack_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/capability"
	"github.com/procgate/procgate/kernel/lsm/smack"
)

type world struct {
	w *kernel.World
	m *smack.Module
}

func newWorld(t testing.TB, ptrace int, rules string) *world {
	t.Helper()
	r, err := smack.ParseRules(rules)
	if err != nil {
		t.Fatal(err)
	}
	m, err := smack.New(ptrace, r)
	if err != nil {
		t.Fatal(err)
	}
	w := kernel.NewWorld(kernel.DefaultRelease)
	w.LSMs = []kernel.LSM{capability.New(), m}
	return &world{w, m}
}

// task adds a task; root tasks are uid 0 with the given capabilities.
func (w *world) task(name string, pid int, uid kernel.KUID, label string, caps kernel.CapSet) *kernel.Task {
	g := kernel.KGID(uid)
	tk := &kernel.Task{Name: name, PID: pid, TGID: pid, Smack: label,
		Cred: kernel.Cred{UID: uid, EUID: uid, SUID: uid, FSUID: uid, GID: g, EGID: g, SGID: g, FSGID: g,
			CapEffective: caps, CapPermitted: caps, UserNS: w.w.Init},
		MM: &kernel.MM{Dumpable: kernel.SuidDumpUser, UserNS: w.w.Init}}
	tk.Leader = tk
	w.w.AddTask(tk)
	return tk
}

const rules = `
# subject object access
a b rw
a r r
a x -
a w W
`

func TestPtraceSettings(t *testing.T) {
	ptraceCap := kernel.CapsOf(kernel.CapSysPtrace)
	tests := []struct {
		name     string
		ptrace   int
		caller   string // label
		privil   bool   // uid 0 with CAP_SYS_PTRACE
		target   string
		mode     kernel.Mode
		want     kernel.Errno
		contains string // in the only audit record; "" for none
	}{
		{"default: READ needs r", 0, "a", false, "r", kernel.ReadFSCreds, kernel.OK, ""},
		{"default: ATTACH needs rw, r is not enough", 0, "a", false, "r", kernel.AttachRealCreds, kernel.EACCES, `subject="a" object="r" requested=rw`},
		{"default: ATTACH with rw", 0, "a", false, "b", kernel.AttachRealCreds, kernel.OK, ""},
		{"default: a rule with no access denies READ", 0, "a", false, "x", kernel.ReadFSCreds, kernel.EACCES, `requested=r `},
		{"default: write implies lock but not read", 0, "a", false, "w", kernel.ReadFSCreds, kernel.EACCES, `requested=r `},
		{"default: no rule", 0, "a", false, "c", kernel.ReadFSCreds, kernel.EACCES, `fn=smack_ptrace_access_check action=denied subject="a" object="c" requested=r pid=100 comm="tracer" opid=100 ocomm="tracer"`},
		{"default: NOAUDIT silences the record", 0, "a", false, "c", kernel.ReadFSCreds | kernel.ModeNoAudit, kernel.EACCES, ""},
		{"identical labels", 0, "c", false, "c", kernel.AttachRealCreds, kernel.OK, ""},
		{"exact: identical labels attach", 1, "a", false, "a", kernel.AttachRealCreds, kernel.OK, ""},
		{"exact: rw rule is not enough", 1, "a", false, "b", kernel.AttachRealCreds, kernel.EACCES, `subject="a" object="b" labels_differ pid=100`},
		{"exact: CAP_SYS_PTRACE overrides", 1, "a", true, "b", kernel.AttachRealCreds, kernel.OK, ""},
		{"exact: READ follows the rules", 1, "a", false, "r", kernel.ReadFSCreds, kernel.OK, ""},
		{"draconian: identical labels attach", 2, "a", false, "a", kernel.AttachRealCreds, kernel.OK, ""},
		{"draconian: CAP_SYS_PTRACE does not override", 2, "a", true, "b", kernel.AttachRealCreds, kernel.EACCES, "labels_differ"},
		{"draconian: READ follows the rules", 2, "a", false, "b", kernel.ReadFSCreds, kernel.OK, ""},
		{"draconian: READ without a rule", 2, "a", false, "c", kernel.ReadFSCreds, kernel.EACCES, "requested=r "},
		{"built-in: star object readable and writable", 0, "a", false, "*", kernel.AttachRealCreds, kernel.OK, ""},
		{"built-in: star subject reads nothing", 0, "*", false, "*", kernel.ReadFSCreds, kernel.EACCES, `subject="*" object="*"`},
		{"built-in: floor object readable", 0, "a", false, "_", kernel.ReadFSCreds, kernel.OK, ""},
		{"built-in: floor object not writable", 0, "a", false, "_", kernel.AttachRealCreds, kernel.EACCES, "requested=rw"},
		{"built-in: empty label is the floor", 0, "a", false, "", kernel.ReadFSCreds, kernel.OK, ""},
		{"built-in: hat reads everything", 0, "^", false, "c", kernel.ReadFSCreds, kernel.OK, ""},
		{"built-in: hat does not write", 0, "^", false, "c", kernel.AttachRealCreds, kernel.EACCES, "requested=rw"},
		{"built-in: web is accessible", 0, "a", false, "@", kernel.AttachRealCreds, kernel.OK, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, tc.ptrace, rules)
			uid, caps := kernel.KUID(1000), kernel.CapSet(0)
			if tc.privil {
				uid, caps = 0, ptraceCap
			}
			c := w.task("tracer", 100, uid, tc.caller, caps)
			tg := w.task("target", 200, 1000, tc.target, 0)
			d := w.w.ExplainPtraceMayAccess(c, tg, tc.mode)
			if d.Errno != tc.want {
				t.Fatalf("got %s (layer %s), want %q: %+v", d.Result(), d.Layer, tc.want, d.Steps)
			}
			if tc.want != kernel.OK && d.Layer != "smack" {
				t.Errorf("layer %s, want smack", d.Layer)
			}
			if tc.contains == "" && len(d.Audit) != 0 || tc.contains != "" && (len(d.Audit) != 1 || !strings.Contains(d.Audit[0], tc.contains)) {
				t.Errorf("audit %q, want %q", d.Audit, tc.contains)
			}
			if f := w.w.PtraceMayAccess(c, tg, tc.mode); f.Errno != d.Errno {
				t.Errorf("fast path %s", f.Result())
			}
		})
	}
}

// TestMacOverride: CAP_MAC_OVERRIDE lets the rule check pass (smk_tskacc),
// and onlycap restricts it to listed labels.
func TestMacOverride(t *testing.T) {
	w := newWorld(t, 0, rules)
	root := w.task("root", 100, 1000, "a", kernel.CapsOf(kernel.CapMacOverride))
	tg := w.task("t", 200, 1000, "c", 0)
	if d := w.w.ExplainPtraceMayAccess(root, tg, kernel.ReadFSCreds); !d.Allowed {
		t.Errorf("CAP_MAC_OVERRIDE: %s %+v", d.Result(), d.Steps)
	}
	w.m.OnlyCap = []string{"admin"}
	if d := w.w.PtraceMayAccess(root, tg, kernel.ReadFSCreds); d.Allowed {
		t.Error("onlycap did not restrict the override")
	}
}

func TestTraceme(t *testing.T) {
	w := newWorld(t, 2, rules)
	parent := w.task("gdb", 100, 1000, "a", 0)
	same := w.task("prog", 101, 1000, "a", 0)
	other := w.task("other", 102, 1000, "b", 0)
	sc, _ := kernel.LookupSyscall("ptrace_traceme")
	if d := w.w.ExplainSyscall(same, parent, sc); !d.Allowed {
		t.Errorf("same label TRACEME: %s", d.Result())
	}
	d := w.w.ExplainSyscall(other, parent, sc)
	want := `lsm=SMACK fn=smack_ptrace_traceme action=denied subject="a" object="b" labels_differ pid=102 comm="other" opid=100 ocomm="gdb"`
	if d.Errno != kernel.EACCES || len(d.Audit) != 1 || d.Audit[0] != want {
		t.Errorf("TRACEME across labels: %s %q\nwant %q", d.Result(), d.Audit, want)
	}
}

func TestLogging(t *testing.T) {
	w := newWorld(t, 0, rules)
	w.m.Logging = smack.LogAccepted
	c, tg := w.task("c", 100, 1000, "a", 0), w.task("t", 200, 1000, "b", 0)
	d := w.w.ExplainPtraceMayAccess(c, tg, kernel.ReadFSCreds)
	if len(d.Audit) != 1 || !strings.Contains(d.Audit[0], "action=granted") {
		t.Errorf("audit %q", d.Audit)
	}
}

func TestParseRules(t *testing.T) {
	r, err := smack.ParseRules("a b RwX\n\n# c\n a  c -\na b r")
	if err != nil {
		t.Fatal(err)
	}
	if a, ok := r.Access("a", "b"); !ok || a != smack.MayRead || r.Len() != 2 {
		t.Errorf("a b = %v %v (a later rule replaces an earlier one); Len %d", a, ok, r.Len())
	}
	for _, tc := range []struct{ src, want string }{
		{"a b", `1:4: want "subject object access", found 2 field(s)`},
		{"a b rw extra", `1:8: want "subject object access", found 4 field(s)`},
		{"a b rq", `1:6: unknown access 'q'`},
		{"-a b r", `1:1: label "-a" may not start with '-'`},
		{"a b r\n a/b c r", `2:2: label "a/b" holds the invalid character '/'`},
	} {
		_, err := smack.ParseRules(tc.src)
		var e *smack.Error
		if !errors.As(err, &e) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseRules(%q) = %v, want %q", tc.src, err, tc.want)
		}
	}
	if _, err := smack.New(3, nil); err == nil {
		t.Error("ptrace 3 accepted")
	}
}

func TestFastPathDoesNotAllocate(t *testing.T) {
	for _, setting := range []int{0, 1, 2} {
		w := newWorld(t, setting, rules)
		c := w.task("c", 100, 0, "a", kernel.CapsOf(kernel.CapSysPtrace, kernel.CapMacOverride))
		for i, label := range []string{"b", "c", "a", "_"} {
			tg := w.task("t", 200+i, 1000, label, 0)
			for _, m := range []kernel.Mode{kernel.ReadFSCreds, kernel.AttachRealCreds} {
				if n := testing.AllocsPerRun(50, func() { w.w.PtraceMayAccess(c, tg, m) }); n != 0 {
					t.Errorf("ptrace=%d → %s %s: %v allocs", setting, label, m, n)
				}
			}
		}
	}
}

// FuzzParseRules checks that ParseRules never panics and reports
// positions.
func FuzzParseRules(f *testing.F) {
	f.Add(rules)
	f.Add("a b rwxatlb\n* _ -\n^ @ RWX")
	f.Fuzz(func(t *testing.T, src string) {
		r, err := smack.ParseRules(src)
		if err != nil {
			var e *smack.Error
			if !errors.As(err, &e) || e.Line < 1 || e.Col < 1 {
				t.Fatalf("bad error %v", err)
			}
			return
		}
		r.Access("a", "b")
	})
}
