package policy

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

// testResolver knows a few names and executables.
var testResolver = MapResolver{
	Users:  map[string]uint32{"root": 0, "prometheus": 990, "alice": 1000, "bob": 1001},
	Groups: map[string]uint32{"root": 0, "debugger": 500, "procgate": 600, "wheel": 10},
	Exes: map[string]Exe{
		"/usr/bin/node_exporter": {Dev: 1, Ino: 100},
		"/usr/bin/lsof":          {Dev: 1, Ino: 101},
		"/usr/sbin/sshd":         {Dev: 1, Ino: 102},
		"/usr/bin/gdb":           {Dev: 1, Ino: 103},
	},
	Cgroups: map[string]uint64{"/": 1, "/system.slice": 20, "/kubepods": 30},
}

func mustLoad(t testing.TB, src string) *Policy {
	t.Helper()
	f, err := Parse("t.pol", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	p, err := CompileWith(testResolver, f)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return p
}

// Processes used by the decision tables.
var (
	hostNS  = uint64(initPIDNS)
	podNS   = uint64(4026532001)
	nodeExp = &Subject{Process: Process{PID: 10, Comm: "node_exporter", UID: 990, GID: 990, Exe: Exe{1, 100, "/usr/bin/node_exporter"}, PIDNS: hostNS, Cgroup: "/system.slice/node_exporter.service"}}
	lsofPod = &Subject{Process: Process{PID: 11, Comm: "lsof", UID: 0, GID: 0, Exe: Exe{1, 101, "/usr/bin/lsof"}, PIDNS: podNS, Cgroup: "/kubepods.slice/pod1/c1.scope"}}
	alice   = &Subject{Process: Process{PID: 12, Comm: "gdb", UID: 1000, GID: 1000, Groups: []uint32{500}, Exe: Exe{1, 103, "/usr/bin/gdb"}, PIDNS: hostNS, Cgroup: "/user.slice/u1000"}}
	bob     = &Subject{Process: Process{PID: 13, Comm: "bash", UID: 1001, GID: 1001, PIDNS: hostNS, Cgroup: "/user.slice/u1001"}}
	appA    = &Target{Process: Process{PID: 20, Comm: "app", UID: 1000, GID: 1000, PIDNS: hostNS, Cgroup: "/user.slice/u1000"}, Dumpable: true}
	appPod  = &Target{Process: Process{PID: 21, Comm: "nginx", UID: 33, GID: 33, PIDNS: podNS, Cgroup: "/kubepods.slice/pod1/c1.scope"}, Dumpable: true}
	sshdA   = &Target{Process: Process{PID: 22, Comm: "sshd", UID: 1000, GID: 1000, Exe: Exe{1, 102, "/usr/sbin/sshd"}, SELinux: "system_u:system_r:sshd_t:s0", PIDNS: hostNS}, Dumpable: true}
	agent   = &Target{Process: Process{PID: 23, Comm: "ssh-agent", UID: 1000, GID: 1000, PIDNS: hostNS}, Dumpable: false}
)

const brokerPolicy = `
option default_audit denied;
subject node_exporter { uid prometheus; exe /usr/bin/node_exporter; }
subject lsof_tool     { exe /usr/bin/lsof; exe /usr/sbin/lsof; }
subject debuggers     { group debugger; }
target  any_proc      { }
target  sshd          { exe /usr/sbin/sshd; }
target  sshd_by_label { type sshd_t; }
attribute sshd_all = sshd sshd_by_label;
allow     node_exporter any_proc : read { status stat io fd_count };
dontaudit node_exporter any_proc : read { environ cmdline fd };
allow     lsof_tool any_proc : read { fd fdinfo fd_count } when same_container;
allow      debuggers any_proc : attach when same_uid;
auditallow debuggers any_proc : attach;
protect    sshd_all : attach;
neverallow * sshd_all : attach;
`

type decCase struct {
	name    string
	s       *Subject
	t       *Target
	rel     Relation
	it      Item
	allowed bool
	audit   bool
}

func runDecisions(t *testing.T, p *Policy, cases []decCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for round := range 2 { // miss, then hit
				d := p.Decide(tc.s, tc.t, tc.rel, tc.it)
				if d.Allowed != tc.allowed || d.Audit != tc.audit {
					t.Errorf("round %d: Decide(%s) = %+v, want allowed=%v audit=%v", round, tc.it, d, tc.allowed, tc.audit)
				}
			}
			e := p.Explain(tc.s, tc.t, tc.rel, tc.it)
			if e.Allowed != tc.allowed || e.Audit != tc.audit {
				t.Errorf("Explain(%s) = %v/%v, want %v/%v\n%s", tc.it, e.Allowed, e.Audit, tc.allowed, tc.audit, e.String())
			}
			ss, ts := p.SubjectSet(tc.s), p.TargetSet(tc.t)
			if d := p.DecideSets(ss, ts, p.Relate(tc.s, tc.t, tc.rel), tc.it); d.Allowed != tc.allowed || d.Audit != tc.audit {
				t.Errorf("DecideSets(%s) = %+v", tc.it, d)
			}
		})
	}
}

func TestDecideBrokerPolicy(t *testing.T) {
	p := mustLoad(t, brokerPolicy)
	runDecisions(t, p, []decCase{
		{"node_exporter reads status", nodeExp, appA, 0, ItemStatus, true, false},
		{"node_exporter reads io", nodeExp, appA, 0, ItemIO, true, false},
		{"node_exporter environ is dontaudited", nodeExp, appA, 0, ItemEnviron, false, false},
		{"node_exporter maps denied and audited", nodeExp, appA, 0, ItemMaps, false, true},
		{"node_exporter stat_full is finer than stat", nodeExp, appA, 0, ItemStatFull, false, true},
		{"node_exporter not on non-dumpable", nodeExp, agent, 0, ItemStatus, false, true},
		{"lsof in its container", lsofPod, appPod, 0, ItemFd, true, false},
		{"lsof outside its container", lsofPod, appA, 0, ItemFd, false, true},
		{"lsof fdinfo in container", lsofPod, appPod, 0, ItemFdinfo, true, false},
		{"lsof environ never", lsofPod, appPod, 0, ItemEnviron, false, true},
		{"debugger attaches same uid, audited", alice, appA, 0, ItemAttach, true, true},
		{"debugger mem same uid", alice, appA, 0, ItemMem, true, true},
		{"debugger read items not granted by attach", alice, appA, 0, ItemEnviron, false, true},
		{"debugger other uid", alice, appPod, 0, ItemAttach, false, true},
		{"debugger on sshd refused by protect", alice, sshdA, 0, ItemAttach, false, true},
		{"debugger on non-dumpable agent", alice, agent, 0, ItemAttach, false, true},
		{"non-member", bob, &Target{Process: Process{UID: 1001, GID: 1001}, Dumpable: true}, 0, ItemAttach, false, true},
		{"item outside the vocabulary", alice, appA, 0, Item(200), false, true},
	})
	lookups, hits, misses := p.Stats()
	if lookups == 0 || hits == 0 || misses == 0 || hits+misses != lookups {
		t.Errorf("Stats = %d %d %d", lookups, hits, misses)
	}
}

func TestCombinationRules(t *testing.T) {
	for _, tc := range []struct {
		name  string
		pol   string
		s     *Subject
		t     *Target
		rel   Relation
		it    Item
		allow bool
		audit bool
	}{
		{"default deny", `target a {} subject s {}`, alice, appA, 0, ItemStatus, false, true},
		{"allow grants", `subject s {} target a {} allow s a : read { status };`, alice, appA, 0, ItemStatus, true, false},
		{"deny beats allow", `subject s {} target a {} allow s a : read { status }; deny s a : read { status };`, alice, appA, 0, ItemStatus, false, true},
		{"deny beats allow, order reversed", `subject s {} target a {} deny s a : read { status }; allow s a : read { status };`, alice, appA, 0, ItemStatus, false, true},
		{"deny of another item leaves the grant", `subject s {} target a {} allow s a : read { status }; deny s a : read { io };`, alice, appA, 0, ItemStatus, true, false},
		{"protect beats allow", `subject s {} target a {} allow s a : attach; protect a : attach;`, alice, appA, 0, ItemAttach, false, true},
		{"protect read items only", `subject s {} target a {} allow s a : read { io status }; protect a : read { io };`, alice, appA, 0, ItemStatus, true, false},
		{"conditional deny applies", `subject s {} target a {} allow s a : read { io }; deny s a : read { io } when same_uid;`, alice, appA, 0, ItemIO, false, true},
		{"conditional deny does not apply", `subject s {} target a {} allow s a : read { io }; deny s a : read { io } when same_uid;`, bob, appA, 0, ItemIO, true, false},
		{"auditallow logs grant", `subject s {} target a {} allow s a : read { io }; auditallow s a : read { io };`, alice, appA, 0, ItemIO, true, true},
		{"auditallow does not grant", `subject s {} target a {} auditallow s a : read { io };`, alice, appA, 0, ItemIO, false, true},
		{"dontaudit hides denial", `subject s {} target a {} dontaudit s a : read { io };`, alice, appA, 0, ItemIO, false, false},
		{"dontaudit does not deny", `subject s {} target a {} allow s a : read { io }; dontaudit s a : read { io };`, alice, appA, 0, ItemIO, true, false},
		{"default_audit all logs grants", `option default_audit all; subject s {} target a {} allow s a : read { io };`, alice, appA, 0, ItemIO, true, true},
		{"default_audit none silences denials", `option default_audit none; target a {}`, alice, appA, 0, ItemIO, false, false},
		{"default_audit none keeps auditallow", `option default_audit none; subject s {} target a {} allow s a : read { io }; auditallow s a : read { io };`, alice, appA, 0, ItemIO, true, true},
		{"nondumpable protected by default", `subject s {} target a {} allow s a : read { status };`, alice, agent, 0, ItemStatus, false, true},
		{"nondumpable explicit", `subject s {} target a {} allow s a : read { status } when nondumpable;`, alice, agent, 0, ItemStatus, true, false},
		{"nondumpable explicit still dumpable", `subject s {} target a {} allow s a : read { status } when nondumpable;`, alice, appA, 0, ItemStatus, true, false},
		{"deny reaches nondumpable", `subject s {} target a {} allow s a : read { status } when nondumpable; deny s a : read { status };`, alice, agent, 0, ItemStatus, false, true},
		{"descendant from caller", `subject s {} target a {} allow s a : attach when descendant;`, alice, appPod, RelDescendant, ItemAttach, true, false},
		{"descendant missing", `subject s {} target a {} allow s a : attach when descendant;`, alice, appPod, 0, ItemAttach, false, true},
		{"caller cannot claim same_uid", `subject s {} target a {} allow s a : attach when same_uid;`, bob, appA, RelSameUID, ItemAttach, false, true},
		{"not same_uid", `subject s {} target a {} allow s a : read { io } when not same_uid;`, bob, appA, 0, ItemIO, true, false},
		{"not same_uid fails", `subject s {} target a {} allow s a : read { io } when not same_uid;`, alice, appA, 0, ItemIO, false, true},
		{"same_gid", `subject s {} target a {} allow s a : read { io } when same_gid;`, alice, appA, 0, ItemIO, true, false},
		{"same_cgroup", `subject s {} target a {} allow s a : read { io } when same_cgroup;`, alice, appA, 0, ItemIO, true, false},
		{"same_label", `subject s {} target a {} allow s a : read { io } when same_label;`, &Subject{Process: Process{SELinux: "u:r:sshd_t:s0"}}, sshdA, 0, ItemIO, false, true},
		{"same_label equal", `subject s {} target a {} allow s a : read { io } when same_label;`, &Subject{Process: Process{SELinux: "system_u:system_r:sshd_t:s0"}}, sshdA, 0, ItemIO, true, false},
		{"same_container pidns", `option same_container pidns; subject s {} target a {} allow s a : read { io } when same_container;`, bob, appA, 0, ItemIO, true, false},
		{"same_container both needs cgroup", `subject s {} target a {} allow s a : read { io } when same_container;`, bob, appA, 0, ItemIO, false, true},
		{"same_container cgroup", `option same_container cgroup; subject s {} target a {} allow s a : read { io } when same_container;`, alice, appA, 0, ItemIO, true, false},
		{"star subject and target", `allow * * : read { io };`, bob, appA, 0, ItemIO, true, false},
		{"exclusion", `subject s {} target a {} target x { uid 1000; } allow s { a -x } : read { io };`, bob, appA, 0, ItemIO, false, true},
		{"exclusion misses", `subject s {} target a {} target x { uid 1000; } allow s { a -x } : read { io };`, bob, appPod, 0, ItemIO, true, false},
		{"exclusion only", `subject s {} target x { uid 1000; } allow s { -x } : read { io };`, bob, appPod, 0, ItemIO, true, false},
		{"attribute union", `subject s {} target x { uid 33; } target y { uid 1000; } attribute xy = x y; allow s xy : read { io };`, bob, appA, 0, ItemIO, true, false},
		{"read star excludes attach", `allow * * : read *;`, bob, appA, 0, ItemMem, false, true},
		{"attach without items is every attach item", `allow * * : attach;`, bob, appA, 0, ItemStack, true, false},
		{"attach item rule", `allow * * : attach { mem };`, bob, appA, 0, ItemAttach, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustLoad(t, tc.pol)
			runDecisions(t, p, []decCase{{tc.name, tc.s, tc.t, tc.rel, tc.it, tc.allow, tc.audit}})
		})
	}
}

func TestDontauditStillCounted(t *testing.T) {
	p := mustLoad(t, `subject s {} target a {} dontaudit s a : read { io };`)
	for range 3 {
		if d := p.Decide(alice, appA, 0, ItemIO); d.Allowed || d.Audit {
			t.Fatalf("Decide = %+v", d)
		}
	}
	p.Decide(alice, appA, 0, ItemMaps)
	c := p.Counters()
	if c.Denied != 4 || c.Dontaudited != 3 {
		t.Errorf("Counters = %+v, want 4 denied, 3 dontaudited", c)
	}
}

func TestSelectors(t *testing.T) {
	for _, tc := range []struct {
		sel  string
		s    *Subject
		want bool
	}{
		{"uid 1000", alice, true},
		{"uid alice", alice, true},
		{"uid 900-1000", alice, true},
		{"uid 1001-2000", alice, false},
		{"uid 0 bob", alice, false},
		{"gid 1000", alice, true},
		{"group debugger", alice, true},
		{"group 1000", alice, true},
		{"group wheel", alice, false},
		{"gid debugger", alice, false},
		{"uid nosuchuser", alice, false},
		{"uid 1000; gid 1001", alice, false},
		{"uid 1000; uid 1001", alice, true},
		{"not uid 1000", alice, false},
		{"not uid 1001; not uid 1002", alice, true},
		{"exe /usr/bin/gdb", alice, true},
		{"exe /usr/bin/lsof", alice, false},
		{"exe /usr/bin/gdb", &Subject{Process: Process{Exe: Exe{Path: "/usr/bin/gdb"}}}, false}, // path alone never matches
		{"exe /nonexistent", alice, false},
		{"cgroup /user.slice/*", alice, true},
		{"cgroup /system.slice/**", alice, false},
		{"container host", alice, true},
		{"container any", alice, false},
		{"container any", lsofPod, true},
		{"container 4026532001", lsofPod, true},
		{"type sshd_t", &Subject{Process: Process{SELinux: "system_u:system_r:sshd_t:s0"}}, true},
		{"type ssh*", &Subject{Process: Process{SELinux: "system_u:system_r:sshd_t:s0-s0:c0.c1023"}}, true},
		{"type sshd_t", &Subject{}, false},
		{"label *:unconfined_r:*", &Subject{Process: Process{SELinux: "unconfined_u:unconfined_r:unconfined_t:s0"}}, true},
		{"apparmor firefox", &Subject{Process: Process{AppArmor: "firefox (enforce)"}}, true},
		{"apparmor fire*", &Subject{Process: Process{AppArmor: "firefox"}}, true},
		{"apparmor firefox", &Subject{Process: Process{AppArmor: "unconfined"}}, false},
	} {
		p := mustLoad(t, "subject c { "+tc.sel+"; }\ntarget a {}\nallow c a : read { io };")
		got := p.Decide(tc.s, appA, 0, ItemIO).Allowed
		if got != tc.want {
			t.Errorf("subject { %s } matches %+v = %v, want %v", tc.sel, tc.s, got, tc.want)
		}
	}
}

func TestUnknownNamesMatchNothing(t *testing.T) {
	p := mustLoad(t, `subject r { group procgate_missing; } target a {} allow r a : read { io };`)
	if len(p.Warnings()) == 0 || !strings.Contains(p.Warnings()[0].String(), `group "procgate_missing" does not exist`) {
		t.Errorf("Warnings = %v", p.Warnings())
	}
	if d := p.Decide(&Subject{}, appA, 0, ItemIO); d.Allowed {
		t.Error("a missing group matched gid 0")
	}
}

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"unknown class", "target any {} allow * anny : read { io };", `t.pol:1:23: unknown target class "anny" (did you mean "any"?)`},
		{"kind mismatch", "target a {} allow a a : read { io };", `"a" is a target class; a rule's subject must be a subject class or attribute`},
		{"duplicate", "target a {}\nsubject a {}", `t.pol:2:1: "a" already defined at t.pol:1:1`},
		{"attribute cycle", "attribute x = y; attribute y = x;", `contains itself`},
		{"attribute mixed", "target a {} subject b {} attribute x = a b;", `mixes target and subject classes`},
		{"attribute unknown", "target a {} attribute x = a bb;", `unknown class "bb"`},
		{"options conflict", "option default_audit all;\noption default_audit none;", `t.pol:2:22: option default_audit none conflicts`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse("t.pol", []byte(tc.src))
			if err != nil {
				t.Fatal(err)
			}
			_, err = CompileWith(testResolver, f)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Compile error = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestNeverallow(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		violated  bool
		proof     string
	}{
		{"covered by protect", brokerPolicy, false, "covered by protect@t.pol:15"},
		{"violated", `subject d {} target a {} target s { exe /usr/sbin/sshd; } allow d a : attach; neverallow * s : attach;`, true, ""},
		{"covered by deny", `subject d {} target a {} allow d a : read *; deny d a : read { environ }; neverallow d * : read { environ };`, false, "covered by deny@t.pol:1"},
		{"conditional deny does not cover", `subject d {} target a {} allow d a : read *; deny d a : read { environ } when same_uid; neverallow d * : read { environ };`, true, ""},
		{"deny under the allow's own condition covers", `subject d {} target a {} allow d a : read { io } when same_uid; deny d a : read { io } when same_uid; neverallow d * : read { io };`, false, "covered by"},
		{"disjoint uids do not intersect", `subject d {} target u0 { uid 0; } target u1 { uid 1000; } allow d u1 : attach; neverallow * u0 : attach;`, false, ""},
		{"partial item cover is a violation", `subject d {} target a {} allow d a : attach; protect a : attach { mem }; neverallow * a : attach;`, true, ""},
		{"no item overlap", `subject d {} target a {} allow d a : read { io }; neverallow * * : read { environ };`, false, ""},
		{"deny on another subject does not cover", `subject d {} subject e { uid 5; } target a {} allow d a : attach; deny e a : attach; neverallow * a : attach;`, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse("t.pol", []byte(tc.src))
			if err != nil {
				t.Fatal(err)
			}
			p, err := CompileWith(testResolver, f)
			if tc.violated {
				var ne *NeverallowError
				if !errors.Is(err, ErrNeverallow) || !errors.As(err, &ne) || len(ne.Violations) == 0 {
					t.Fatalf("Compile error = %v, want a neverallow violation", err)
				}
				if !strings.Contains(err.Error(), "neverallow at t.pol:1") {
					t.Errorf("violation does not name the neverallow: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			var proofs []string
			for _, pr := range p.Proofs() {
				proofs = append(proofs, pr.String())
			}
			if tc.proof != "" && !strings.Contains(strings.Join(proofs, "\n"), tc.proof) {
				t.Errorf("proofs = %q, want %q", proofs, tc.proof)
			}
			if tc.proof == "" && len(proofs) > 0 {
				t.Errorf("unexpected proofs %q", proofs)
			}
		})
	}
}

func TestSearch(t *testing.T) {
	p := mustLoad(t, brokerPolicy)
	gs, err := p.Search(Query{Target: "sshd_all", Items: AttachItems})
	if err != nil {
		t.Fatal(err)
	}
	if len(gs) != 1 || gs[0].EffectiveItems != 0 || gs[0].Removed != AttachItems || len(gs[0].AuditedBy) != 1 {
		t.Errorf("who-can attach sshd_all = %+v", gs)
	}
	gs, _ = p.Search(Query{Items: ItemFd.Set()})
	if len(gs) != 1 || gs[0].ConditionSummary != "when same_container" {
		t.Errorf("who-can read fd = %+v", gs)
	}
	// A node_exporter process could also be in group debugger: both rules.
	gs, _ = p.Search(Query{Subject: "node_exporter"})
	if len(gs) != 2 || gs[0].EffectiveItems != ItemStatus.Set()|ItemStat.Set()|ItemIO.Set()|ItemFdCount.Set() {
		t.Errorf("what-can node_exporter = %+v", gs)
	}
	if _, err := p.Search(Query{Subject: "node_exportr"}); err == nil || !strings.Contains(err.Error(), `did you mean "node_exporter"`) {
		t.Errorf("unknown class error = %v", err)
	}
	if _, err := p.Search(Query{Subject: "any_proc"}); err == nil || !strings.Contains(err.Error(), "is a target class") {
		t.Errorf("kind error = %v", err)
	}
}

func TestAuditLineRoundTrip(t *testing.T) {
	p := mustLoad(t, brokerPolicy)
	for _, tc := range []struct {
		s     *Subject
		t     *Target
		it    Item
		rules string
	}{
		{alice, sshdA, ItemAttach, "protect@t.pol:15"},
		{alice, appA, ItemMem, "allow@t.pol:13+auditallow@t.pol:14"},
		{lsofPod, appA, ItemFd, "allow@t.pol:12"}, // near miss: failed same_container
		{bob, appA, ItemEnviron, ""},
	} {
		e := p.Explain(tc.s, tc.t, 0, tc.it)
		line := e.AuditLine()
		rec, err := ParseAuditLine("Nov 28 12:00:00 host procgated[1]: " + line)
		if err != nil {
			t.Fatalf("ParseAuditLine(%q): %v", line, err)
		}
		if rec.Record.Granted != e.Allowed || rec.Item != tc.it || rec.Record.Generation != p.Generation() {
			t.Errorf("round trip of %q = %+v", line, rec)
		}
		var refs []string
		rules := rec.Rules
		if rec.Nearest.Effect != 0 {
			rules = append([]RuleRef{rec.Nearest}, rules...)
		}
		for _, r := range rules {
			refs = append(refs, r.String())
			if got, ok := p.RuleAt(r.Pos.File, r.Pos.Line); !ok || got.Effect != r.Effect {
				t.Errorf("RuleAt(%s) = %v, %v", r, got, ok)
			}
		}
		if got := strings.Join(refs, "+"); got != tc.rules {
			t.Errorf("rules of %q = %q, want %q", line, got, tc.rules)
		}
		if rec.Record.Subject.Comm != tc.s.Comm || rec.Record.Target.Comm != tc.t.Comm {
			t.Errorf("fields = %+v", rec.Record)
		}
	}
	for _, bad := range []string{"", "broker: maybe { read:io } for rule=none", "broker: denied { read:mem } for rule=none", "broker: denied { read:io } for pid=1", "broker: denied { read:io } for rule=allow@x"} {
		if _, err := ParseAuditLine(bad); err == nil {
			t.Errorf("ParseAuditLine(%q) = nil error", bad)
		}
	}
}

// TestDecideMatchesExplain holds the indexed, cached path equal to the
// naive one over random questions.
func TestDecideMatchesExplain(t *testing.T) {
	p := mustLoad(t, brokerPolicy+`
subject alice { uid alice; }
target pods { container any; }
allow alice pods : read { status cmdline } when nondumpable;
deny * pods : read { cmdline } when not same_uid;
allow alice { any_proc -pods } : read * when same_uid;
dontaudit * * : read { wchan };
`)
	subjects := []*Subject{nodeExp, lsofPod, alice, bob, {}}
	targets := []*Target{appA, appPod, sshdA, agent, {}}
	r := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		s, tg := subjects[r.IntN(len(subjects))], targets[r.IntN(len(targets))]
		rel := Relation(r.IntN(1 << numRelations))
		it := Item(r.IntN(int(numItems)))
		d := p.Decide(s, tg, rel, it)
		e := p.Explain(s, tg, rel, it)
		if d != e.Decision {
			t.Fatalf("Decide(%s, %s, %s, %s) = %+v, Explain = %+v\n%s", s.Comm, tg.Comm, rel, it, d, e.Decision, e.String())
		}
	}
}

func TestManyClassesInterned(t *testing.T) {
	var b strings.Builder
	for i := range 150 {
		fmt.Fprintf(&b, "subject s%d { uid %d; }\ntarget t%d { uid %d; }\n", i, i, i, i)
		fmt.Fprintf(&b, "allow s%d t%d : read { io };\n", i, (i+1)%150)
	}
	p := mustLoad(t, b.String())
	for i := range 150 {
		s := &Subject{Process: Process{UID: uint32(i)}}
		for _, j := range []int{(i + 1) % 150, (i + 2) % 150} {
			tg := &Target{Process: Process{UID: uint32(j)}, Dumpable: true}
			want := j == (i+1)%150
			for range 2 {
				if got := p.Decide(s, tg, 0, ItemIO).Allowed; got != want {
					t.Fatalf("s%d → t%d = %v, want %v", i, j, got, want)
				}
			}
		}
	}
	if c := p.Counters(); c.Hits == 0 {
		t.Errorf("no cache hits: %+v", c)
	}
}

func TestStaleSetsRefused(t *testing.T) {
	p1 := mustLoad(t, `allow * * : read { io };`)
	p2 := mustLoad(t, `allow * * : read { io };`)
	if p2.Generation() <= p1.Generation() {
		t.Errorf("generations %d, %d do not grow", p1.Generation(), p2.Generation())
	}
	ss, ts := p1.SubjectSet(alice), p1.TargetSet(appA)
	if d := p2.DecideSets(ss, ts, p2.Relate(alice, appA, 0), ItemIO); d.Allowed {
		t.Error("sets of another policy were honoured")
	}
	if d := p1.DecideSets(ss, ts, p1.Relate(alice, appA, 0), ItemIO); !d.Allowed {
		t.Error("own sets refused")
	}
	if got := ss.Classes(); got != nil {
		t.Errorf("Classes = %v", got)
	}
	if d := p1.Decide(nil, appA, 0, ItemIO); d.Allowed {
		t.Error("nil subject allowed")
	}
}

func TestDecideConcurrent(t *testing.T) {
	p := mustLoad(t, brokerPolicy)
	subjects := []*Subject{nodeExp, lsofPod, alice, bob}
	targets := []*Target{appA, appPod, sshdA, agent}
	want := map[[3]int]Decision{}
	for i, s := range subjects {
		for j, tg := range targets {
			for it := range numItems {
				want[[3]int{i, j, int(it)}] = p.Explain(s, tg, 0, it).Decision
			}
		}
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range 2000 {
				i, j, it := (n+g)%len(subjects), (n/3+g)%len(targets), (n*7+g)%int(numItems)
				if d := p.Decide(subjects[i], targets[j], 0, Item(it)); d != want[[3]int{i, j, it}] {
					t.Errorf("concurrent Decide mismatch")
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestDecideDoesNotAllocate(t *testing.T) {
	p := mustLoad(t, brokerPolicy)
	p.Decide(alice, appA, 0, ItemAttach)
	ss, ts := p.SubjectSet(alice), p.TargetSet(appA)
	facts := p.Relate(alice, appA, 0)
	if n := testing.AllocsPerRun(100, func() { p.Decide(alice, appA, 0, ItemAttach) }); n != 0 {
		t.Errorf("Decide allocates %v times on a hit", n)
	}
	if n := testing.AllocsPerRun(100, func() { p.DecideSets(ss, ts, facts, ItemMem) }); n != 0 {
		t.Errorf("DecideSets allocates %v times on a hit", n)
	}
}
