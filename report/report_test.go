package report

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/capability"
	"github.com/procgate/procgate/kernel/lsm/yama"
	"github.com/procgate/procgate/scenario"
)

// scenarioFiles lists the examples and the package's test scenarios.
func scenarioFiles(t testing.TB) []string {
	t.Helper()
	var files []string
	for _, pat := range []string{"../examples/*.yaml", "testdata/*.yaml"} {
		m, err := filepath.Glob(pat)
		if err != nil || len(m) == 0 {
			t.Fatalf("no scenario matches %s: %v", pat, err)
		}
		files = append(files, m...)
	}
	return files
}

func loadWorld(t testing.TB, path string) *kernel.World {
	t.Helper()
	s, err := scenario.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return s.World
}

func loadSrc(t testing.TB, src string) *kernel.World {
	t.Helper()
	s, err := scenario.Load("inline.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return s.World
}

func buildScenario(t testing.TB, w *kernel.World, o Options) *Machine {
	t.Helper()
	m, err := Build(Input{Name: "test", Source: "scenario", World: w}, o)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// processes lists the world's processes (thread-group leaders) in pid
// order.
func processes(w *kernel.World) []*kernel.Task {
	var out []*kernel.Task
	for _, t := range w.Tasks {
		if t.PID == t.TGID {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b *kernel.Task) int { return a.PID - b.PID })
	return out
}

// canAsk reports whether t makes system calls: the report's principals
// are the live processes, not kernel threads or dead ones.
func canAsk(t *kernel.Task) bool { return !t.Kthread && t.State == kernel.Running }

// wantRelation computes the relation of (c, t) from the kernel's own
// definitions (kernel.IsDescendant, the tracer, the Yama exception's
// tracer and its descendants, a shared address space), independently of
// the report's findRelated.
func wantRelation(c, t *kernel.Task) Relation {
	var parts []string
	if kernel.IsDescendant(c, t) {
		parts = append(parts, string(Descendant))
	}
	if t.Tracer != nil && kernel.SameThreadGroup(t.Tracer, c) {
		parts = append(parts, string(Tracer))
	}
	if x := t.GroupLeader().Ptracer; x != nil && !x.Any && x.Tracer != nil && kernel.IsDescendant(x.Tracer, c) {
		parts = append(parts, string(Exception))
	}
	if c.MM != nil && c.MM == t.MM {
		parts = append(parts, string(SharedMM))
	}
	slices.Sort(parts)
	return Relation(strings.Join(parts, "+"))
}

// checkEveryPair asserts, for every ordered pair of distinct processes of
// w, that the report's answer (Pair) is the model's own decision for that
// pair, access by access (allowed, errno, layer), that its relation is the
// pair's, and that every edge stands for exactly the pairs Pair attributes
// to it. It returns the number of pairs compared.
func checkEveryPair(t *testing.T, m *Machine, w *kernel.World) int {
	t.Helper()
	procs := processes(w)
	perEdge := map[*Edge]int{}
	n, bad := 0, 0
	fail := func(format string, args ...any) {
		t.Helper()
		if bad++; bad <= 20 {
			t.Errorf(format, args...)
		}
	}
	for _, c := range procs {
		for _, tg := range procs {
			ans, e, ok := m.Pair(c.PID, tg.PID)
			switch {
			case c == tg || !canAsk(c):
				if ok {
					fail("Pair(%s, %s) = ok, want no pair (self, or a caller that cannot ask)", c.Name, tg.Name)
				}
				continue
			case !ok:
				fail("Pair(%s, %s): no pair in the report", c.Name, tg.Name)
				continue
			}
			n++
			perEdge[e]++
			if want := wantRelation(c, tg); m.Related(c.PID, tg.PID) != want || e.Relation != want {
				fail("%s -> %s: relation %q (edge %q), want %q", c.Name, tg.Name, m.Related(c.PID, tg.PID), e.Relation, want)
			}
			if e.Principal != m.Principal(c.PID).ID || e.Target != m.Target(tg.PID).ID {
				fail("%s -> %s: edge %s->%s, want the classes %s->%s", c.Name, tg.Name, e.Principal, e.Target, m.Principal(c.PID).ID, m.Target(tg.PID).ID)
			}
			for a := range NumAccess {
				d := a.Question().Evaluate(w, c, tg, false)
				got := ans[a]
				if got.Allowed != d.Allowed || got.Errno != d.Errno || got.Layer != d.Layer || len(got.Unknown) != 0 {
					fail("%s -> %s %s: report says allowed=%v errno=%s layer=%s unknown=%q; the model decides allowed=%v errno=%s layer=%s (edge %s->%s %q, example %v)",
						c.Name, tg.Name, a, got.Allowed, got.Errno, got.Layer, got.Unknown, d.Allowed, d.Errno, d.Layer, e.Principal, e.Target, e.Relation, e.Example)
				}
			}
		}
	}
	for _, e := range m.Edges {
		if m.Class(e.Principal).Login != "" {
			continue
		}
		if perEdge[e] != e.Pairs {
			fail("edge %s->%s %q: Pairs %d, but Pair attributes %d pairs to it", e.Principal, e.Target, e.Relation, e.Pairs, perEdge[e])
		}
		if _, ex, ok := m.Pair(e.Example[0], e.Example[1]); !ok || ex != e {
			fail("edge %s->%s %q: its example %v is not one of its pairs", e.Principal, e.Target, e.Relation, e.Example)
		}
	}
	if bad > 20 {
		t.Errorf("… and %d more disagreements", bad-20)
	}
	return n
}

// TestEveryPair is the proof that grouping into classes loses nothing:
// on every scenario, for every ordered pair of distinct processes and
// every access, the report's answer is the model's decision for that
// very pair.
func TestEveryPair(t *testing.T) {
	total := 0
	for _, path := range scenarioFiles(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			w := loadWorld(t, path)
			m := buildScenario(t, w, Options{})
			n := checkEveryPair(t, m, w)
			if n == 0 {
				t.Fatal("no pair compared")
			}
			total += n
			t.Logf("%d processes, %d principal and %d target classes, %d edges: %d pairs × %d accesses equal the model's", len(processes(w)), len(m.Principals), len(m.Targets), len(m.Edges), n, NumAccess)
		})
	}
	t.Logf("%d pairs in all", total)
}

// The same under every Yama scope: at 1 the descendant, tracer and
// exception relations decide, so a relation the report missed would show.
func TestEveryPairYamaScopes(t *testing.T) {
	w := loadWorld(t, "testdata/reach.yaml")
	y, ok := w.LSM("yama").(*yama.Module)
	if !ok {
		t.Fatal("testdata/reach.yaml has no Yama module")
	}
	for _, s := range []yama.Scope{yama.Disabled, yama.Relational, yama.Capability, yama.NoAttach} {
		t.Run(fmt.Sprintf("scope %d", s), func(t *testing.T) {
			old := y.Scope
			y.Scope = s
			defer func() { y.Scope = old }()
			if n := checkEveryPair(t, buildScenario(t, w, Options{}), w); n == 0 {
				t.Fatal("no pair compared")
			}
		})
	}
}

// newTask returns a running process of a Go-built world.
func newTask(w *kernel.World, pid int, uid uint32, caps kernel.CapSet, parent *kernel.Task) *kernel.Task {
	u, g := kernel.KUID(uid), kernel.KGID(uid)
	t := &kernel.Task{Name: fmt.Sprintf("p%d", pid), PID: pid, TGID: pid, Parent: parent,
		Cred: kernel.Cred{UID: u, EUID: u, SUID: u, FSUID: u, GID: g, EGID: g, SGID: g, FSGID: g,
			CapEffective: caps, CapPermitted: caps, UserNS: w.Init},
		MM: &kernel.MM{Dumpable: kernel.SuidDumpUser, UserNS: w.Init}}
	t.Leader = t
	w.AddTask(t)
	return t
}

// A principal class whose first member is the ancestor of every member
// of a large target class (pid 1 and the processes of a busy machine):
// the pairs of the class's other members with that target class are
// unrelated and must still have their edge. The report used to give up
// looking for an unrelated representative pair after 64×64 tries.
func TestManyRelatedMembers(t *testing.T) {
	rel, err := kernel.ParseRelease("6.18.44")
	if err != nil {
		t.Fatal(err)
	}
	w := kernel.NewWorld(rel)
	w.LSMs = []kernel.LSM{capability.New(), &yama.Module{Scope: yama.Relational}}
	initTask := newTask(w, 1, 0, kernel.CapSetAll, nil)
	daemon := newTask(w, 2, 0, kernel.CapSetAll, nil) // init's class, unrelated to the workers
	const workers = 64*64 + 10
	var ws []*kernel.Task
	for i := range workers {
		ws = append(ws, newTask(w, 100+i, 1000, 0, initTask))
	}
	if err := w.Validate(); err != nil {
		t.Fatal(err)
	}
	m := buildScenario(t, w, Options{})
	if m.Principal(1) != m.Principal(2) || m.Target(100) != m.Target(100+workers-1) {
		t.Fatalf("classes: init %s, daemon %s; workers %s…%s", m.Principal(1).ID, m.Principal(2).ID, m.Target(100).ID, m.Target(100+workers-1).ID)
	}
	missing := 0
	for _, x := range []*kernel.Task{initTask, daemon} {
		for _, wk := range ws {
			ans, _, ok := m.Pair(x.PID, wk.PID)
			if !ok {
				missing++
				continue
			}
			for a := range NumAccess {
				if d := a.Question().Evaluate(w, x, wk, false); ans[a].Allowed != d.Allowed || ans[a].Layer != d.Layer {
					t.Fatalf("%s -> %s %s: report %+v, model %s [%s]", x.Name, wk.Name, a, ans[a], d.Result(), d.Layer)
				}
			}
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d pairs have no answer in the report (the unrelated daemon -> worker edge is missing)", missing, 2*workers)
	}
}

const classesSrc = `
kernel:
  release: "6.18.44"
  lsm: [capability, landlock, yama]
  yama: {ptrace_scope: 1}
usernamespaces:
  - {name: u, parent: init, owner: 1000, uid_map: [[0, 1000, 1]], gid_map: [[0, 1000, 1]]}
tasks:
  - {name: a, pid: 100, uid: 1000, gid: 1000}
  - {name: b, pid: 101, uid: 1000, gid: 1000}
  - {name: caps, pid: 102, uid: 1000, gid: 1000, caps: [sys_ptrace]}
  - {name: nodump, pid: 103, uid: 1000, gid: 1000, mm: {dumpable: 0}}
  - {name: userns, pid: 104, userns: u, uid: 1000, gid: 1000, caps: none}
  - {name: groups, pid: 105, uid: 1000, gid: 1000, groups: [27]}
  - {name: gid, pid: 106, uid: 1000, gid: 1001}
  - {name: traced, pid: 107, uid: 1000, gid: 1000, tracer: a}
  - {name: excepted, pid: 108, uid: 1000, gid: 1000, ptracer: b}
  - {name: sandboxed, pid: 109, uid: 1000, gid: 1000, landlock: [x]}
  - {name: mmns, pid: 110, uid: 1000, gid: 1000, mm: {userns: u}}
  - {name: zombie, pid: 111, uid: 1000, gid: 1000, state: zombie}
  - {name: fsuid, pid: 112, uids: {real: 1000, effective: 1000, saved: 1000, fs: 0}, gid: 1000}
  - {name: root, pid: 113, uid: 0, gid: 0}
  - {name: root-nocaps, pid: 114, uid: 0, gid: 0, caps: none}
  - {name: a-child, pid: 115, parent: a, uid: 1000, gid: 1000}
checks: []
`

// Two processes the model cannot tell apart share their classes; every
// input a decision reads splits them, on the side that reads it.
func TestClasses(t *testing.T) {
	w := loadSrc(t, classesSrc)
	m := buildScenario(t, w, Options{})
	pid := func(name string) int {
		x := w.Task(name)
		if x == nil {
			t.Fatalf("no task %q", name)
		}
		return x.PID
	}
	a := pid("a")
	for _, tc := range []struct {
		name               string
		samePrin, sameTarg bool
	}{
		{"b", true, true},             // identical
		{"a-child", true, true},       // a parent is no class input (the pair a -> a-child is related instead)
		{"caps", false, false},        // capabilities
		{"nodump", true, false},       // the dumpable flag is the target's
		{"userns", false, false},      // user namespace
		{"groups", false, false},      // supplementary groups
		{"gid", false, false},         // gids
		{"traced", true, false},       // an existing tracer is the target's
		{"excepted", true, false},     // a Yama exception is the target's
		{"sandboxed", false, false},   // Landlock domain
		{"mmns", true, false},         // the address space's namespace is the target's
		{"fsuid", false, false},       // fsuid
		{"root", false, false},        // uid 0
		{"root-nocaps", false, false}, // uid 0 without capabilities
	} {
		p := pid(tc.name)
		if got := m.Principal(p) == m.Principal(a); got != tc.samePrin {
			t.Errorf("%s: shares a's principal class: %v, want %v (%s vs %s)", tc.name, got, tc.samePrin, m.Principal(p).Key, m.Principal(a).Key)
		}
		if got := m.Target(p) == m.Target(a); got != tc.sameTarg {
			t.Errorf("%s: shares a's target class: %v, want %v (%s vs %s)", tc.name, got, tc.sameTarg, m.Target(p).Key, m.Target(a).Key)
		}
	}
	if m.Principal(pid("zombie")) != nil {
		t.Error("a zombie is a principal")
	}
	if z := m.Target(pid("zombie")); z == nil || z == m.Target(a) {
		t.Error("a zombie is no target of its own class")
	}
	if m.Principal(pid("root")) == m.Principal(pid("root-nocaps")) {
		t.Error("root with and without capabilities share a class")
	}
	// Members, in pid order, and what a class says of them.
	members := func(c *Class) []int {
		var out []int
		for _, x := range c.Members {
			out = append(out, x.PID)
		}
		return out
	}
	if got, want := members(m.Principal(a)), []int{100, 101, 103, 107, 108, 110, 115}; !slices.Equal(got, want) {
		t.Errorf("a's principal class: members %v, want %v", got, want)
	}
	if got, want := members(m.Target(a)), []int{100, 101, 115}; !slices.Equal(got, want) {
		t.Errorf("a's target class: members %v, want %v", got, want)
	}
	if c := m.Target(pid("nodump")); c.Dumpable == nil || *c.Dumpable != 0 {
		t.Errorf("nodump's class: dumpable %v, want 0", c.Dumpable)
	}
	if c := m.Principal(pid("userns")); !c.Container || c.UserNS != "u" {
		t.Errorf("userns's class: container %v, namespace %q", c.Container, c.UserNS)
	}
	if !m.Target(pid("caps")).Privileged || m.Target(a).Privileged {
		t.Error("a capability marks a target class privileged, and nothing else does")
	}
	if checkEveryPair(t, m, w) == 0 {
		t.Fatal("no pair compared")
	}
}

// Login users the passwd database lists but no process runs as are
// principals of their own, with an edge to every target class standing
// for each of its processes, answered as a fresh login shell would be.
func TestLogins(t *testing.T) {
	w := loadWorld(t, "testdata/reach.yaml")
	logins := []Login{
		{Name: "alice", UID: 1000, GID: 1000, Groups: []uint32{27, 1000}}, // shell's credentials
		{Name: "bob", UID: 1500, GID: 1500, Groups: []uint32{1500}},
		{Name: "carol", UID: 1001, GID: 1001, Groups: []uint32{1001, 50}}, // other's uid, and the proc gid= group
		{Name: "root", UID: 0, GID: 0, Groups: []uint32{0}},
	}
	m, err := Build(Input{Name: "test", Source: "scenario", World: w, Logins: logins}, Options{WhatIf: []WhatIf{mustWhatIf(t, "hidepid=invisible")}})
	if err != nil {
		t.Fatal(err)
	}
	byLogin := map[string]*Class{}
	for _, c := range m.Principals {
		if c.Login != "" {
			byLogin[c.Login] = c
		}
	}
	if byLogin["alice"] != nil {
		t.Error("alice has a class of her own, though shell runs with her credentials")
	}
	for _, l := range logins[1:] {
		c := byLogin[l.Name]
		if c == nil {
			t.Errorf("login %s: no principal class", l.Name)
			continue
		}
		if !strings.Contains(c.Label, "login "+l.Name) || c.Members != nil {
			t.Errorf("login %s: label %q, members %v", l.Name, c.Label, c.Members)
		}
		// The login shell, as the model would have it.
		u, g := kernel.KUID(l.UID), kernel.KGID(l.GID)
		sh := &kernel.Task{Name: "sh", Cred: kernel.Cred{UID: u, EUID: u, SUID: u, FSUID: u, GID: g, EGID: g, SGID: g, FSGID: g, UserNS: w.Init},
			MM: &kernel.MM{Dumpable: kernel.SuidDumpUser, UserNS: w.Init}}
		for _, x := range l.Groups {
			sh.Cred.Groups = append(sh.Cred.Groups, kernel.KGID(x))
		}
		if l.UID == 0 {
			sh.Cred.CapEffective, sh.Cred.CapPermitted = kernel.CapSetAll, kernel.CapSetAll
		}
		sh.Leader = sh
		edges := map[string]*Edge{}
		for _, e := range m.Edges {
			if e.Principal == c.ID {
				if e.Relation != Unrelated || edges[e.Target] != nil {
					t.Errorf("login %s: edge %s->%s %q (a login is related to nothing, one edge per target class)", l.Name, e.Principal, e.Target, e.Relation)
				}
				edges[e.Target] = e
			}
		}
		for _, tc := range m.Targets {
			e := edges[tc.ID]
			if e == nil || e.Pairs != len(tc.Members) {
				t.Errorf("login %s -> %s: edge %+v, want one for its %d processes", l.Name, tc.ID, e, len(tc.Members))
				continue
			}
			for _, mem := range tc.Members {
				target := w.TaskByPID(mem.PID)
				for a := range NumAccess {
					d := a.Question().Evaluate(w, sh, target, false)
					if got := e.Answers[a]; got.Allowed != d.Allowed || got.Errno != d.Errno || got.Layer != d.Layer {
						t.Errorf("login %s -> %s %s: report %+v, model %s [%s]", l.Name, target.Name, a, got, d.Result(), d.Layer)
					}
				}
			}
		}
	}
	// carol is in the proc gid= group: hidepid=invisible hides nothing
	// from her, while bob loses sight of other users' processes.
	d := m.WhatIf[0]
	lost := map[string]int{}
	for _, x := range d.Removed {
		if x.Access != Visible.String() {
			t.Errorf("hidepid removed %s: %+v", x.Access, x)
		}
		lost[x.Principal] += x.Pairs
		if x.Principal == byLogin["bob"].ID && x.Example[0] != 0 {
			t.Errorf("a login's example pair %v: want caller pid 0", x.Example)
		}
	}
	if lost[byLogin["carol"].ID] != 0 || lost[byLogin["bob"].ID] == 0 {
		t.Errorf("hidepid=invisible: carol loses %d pairs, bob %d; want 0 and some", lost[byLogin["carol"].ID], lost[byLogin["bob"].ID])
	}
}

func mustWhatIf(t testing.TB, s string) WhatIf {
	t.Helper()
	wi, err := ParseWhatIf(s)
	if err != nil {
		t.Fatal(err)
	}
	return wi
}

func TestReadLogins(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	passwd := write("passwd", `root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
# a comment

+nis
alice:x:1000:1000:Alice:/home/alice:/bin/zsh
svc:x:999:999::/:/bin/false
sync:x:4:65534:sync:/bin:/bin/sync
bob:x:1500:1500::/home/bob:/bin/sh
`)
	group := write("group", `root:x:0:
sudo:x:27:alice,bob
docker:x:998:alice
alice:x:1000:
bob:x:1500:bob
`)
	got, err := ReadLogins(passwd, group)
	if err != nil {
		t.Fatal(err)
	}
	want := []Login{
		{Name: "root", UID: 0, GID: 0, Groups: []uint32{0}},
		{Name: "alice", UID: 1000, GID: 1000, Groups: []uint32{27, 998, 1000}},
		{Name: "bob", UID: 1500, GID: 1500, Groups: []uint32{27, 1500}},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("logins\n got %v\nwant %v", got, want)
	}
	for _, tc := range []struct{ passwd, group, msg string }{
		{"alice:x:1000:1000\n", "", "passwd:1: want 7 fields"},
		{"alice:x:one:1000::/:/bin/sh\n", "", `passwd:1: uid "one" or gid "1000": not a number`},
		{"", "sudo:x:27\n", "group:1: want 4 fields"},
		{"", "a:x:0:\nsudo:x:g:alice\n", `group:2: gid "g": not a number`},
	} {
		_, err := ReadLogins(write("passwd", tc.passwd), write("group", tc.group))
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("passwd %q group %q: %v, want %q", tc.passwd, tc.group, err, tc.msg)
		}
	}
	if _, err := ReadLogins(filepath.Join(dir, "none"), group); err == nil {
		t.Error("a missing passwd file is no error")
	}
}

// ParseWhatIf names the input and says what it wants.
func TestParseWhatIf(t *testing.T) {
	dir := t.TempDir()
	badPol := filepath.Join(dir, "bad.pol")
	if err := os.WriteFile(badPol, []byte("allow a b : read { environ\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	good := map[string]string{
		"yama=0": "yama", "yama=3": "yama", "suid_dumpable=2": "suid_dumpable", "hidepid=invisible": "hidepid",
		"hidepid=4": "hidepid", "drop-cap=812:sys_ptrace": "drop-cap", "drop-cap=1:CAP_SYS_ADMIN": "drop-cap",
		"policy=../examples/policies/debuggers.pol": "policy",
	}
	for s, key := range good {
		wi, err := ParseWhatIf(s)
		if err != nil || wi.Key != key || wi.String() != s || wi.apply == nil {
			t.Errorf("ParseWhatIf(%q) = %+v, %v; want key %s", s, wi, err, key)
		}
		if key == "policy" && wi.pol == nil {
			t.Errorf("ParseWhatIf(%q): no policy compiled", s)
		}
	}
	keys := strings.Join(WhatIfKeys, ", ")
	for _, tc := range []struct{ in, msg string }{
		{"", `what-if "": want KEY=VALUE, one of ` + keys},
		{"yama", `what-if "yama": want KEY=VALUE, one of ` + keys},
		{"yama=", `what-if "yama=": want KEY=VALUE`},
		{"=1", `what-if "=1": unknown key "" (want one of ` + keys + ")"},
		{"ptrace_scope=1", `what-if "ptrace_scope=1": unknown key "ptrace_scope" (want one of ` + keys + ")"},
		{"yama=4", "what-if yama=4: want 0, 1, 2 or 3"},
		{"yama=-1", "what-if yama=-1: want 0, 1, 2 or 3"},
		{"yama=one", "what-if yama=one: want 0, 1, 2 or 3"},
		{"suid_dumpable=3", "what-if suid_dumpable=3: want 0, 1 or 2"},
		{"hidepid=hidden", `what-if: unknown hidepid value "hidden" (want off, noaccess, invisible or ptraceable)`},
		{"drop-cap=812", "what-if drop-cap=812: want PID:CAP, as drop-cap=812:sys_ptrace"},
		{"drop-cap=0:sys_ptrace", "what-if drop-cap=0:sys_ptrace: want PID:CAP"},
		{"drop-cap=sshd:sys_ptrace", "what-if drop-cap=sshd:sys_ptrace: want PID:CAP"},
		{"drop-cap=812:ptrace", "what-if drop-cap=812:ptrace: "},
		{"policy=" + filepath.Join(dir, "none.pol"), "what-if policy=" + filepath.Join(dir, "none.pol") + ": open " + filepath.Join(dir, "none.pol") + ": no such file or directory"},
		{"policy=" + badPol, "what-if policy=" + badPol + ": " + badPol + ":"},
	} {
		_, err := ParseWhatIf(tc.in)
		if err == nil || !strings.HasPrefix(err.Error(), tc.msg) {
			t.Errorf("ParseWhatIf(%q) = %v, want an error starting %q", tc.in, err, tc.msg)
		}
	}
	// A drop-cap of a pid the report does not have fails the build, by
	// name.
	w := loadWorld(t, "testdata/reach.yaml")
	_, err := Build(Input{Name: "test", World: w}, Options{WhatIf: []WhatIf{mustWhatIf(t, "drop-cap=999:sys_ptrace")}})
	if err == nil || err.Error() != "what-if drop-cap=999:sys_ptrace: no process 999 in the report" {
		t.Errorf("drop-cap of a missing pid: %v", err)
	}
}

// FuzzParseWhatIf: any input parses or fails with a message naming the
// what-if, a parsed change is one of the keys and spells the input, and
// applying it to a world and undoing it leaves the world as it was.
func FuzzParseWhatIf(f *testing.F) {
	for _, s := range []string{"yama=1", "yama=3", "yama=9", "yama=", "suid_dumpable=2", "hidepid=invisible", "hidepid=2",
		"hidepid=x", "drop-cap=800:sys_ptrace", "drop-cap=3000:sys_ptrace", "drop-cap=7:sYs_ptrACE", "drop-cap=1:all", "drop-cap=42:sys_admin",
		"drop-cap=:", "drop-cap=1:", "=", "==", "yama==1", "policy=", "x=y", "yama=1\n", " yama=1", "yama=0x1", "yama=+1"} {
		f.Add(s)
	}
	w := loadWorld(f, "testdata/reach.yaml")
	f.Fuzz(func(t *testing.T, s string) {
		if strings.HasPrefix(s, "policy=") && len(s) > len("policy=") {
			t.Skip("policy= reads the file it names; TestParseWhatIf covers it")
		}
		wi, err := ParseWhatIf(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "what-if") {
				t.Fatalf("ParseWhatIf(%q): error %q does not name the what-if", s, err)
			}
			return
		}
		if !slices.ContainsFunc(WhatIfKeys, func(k string) bool { return strings.HasPrefix(k, wi.Key+"=") }) || wi.String() != s {
			t.Fatalf("ParseWhatIf(%q) = key %q value %q", s, wi.Key, wi.Value)
		}
		before := worldState(w)
		undo, err := wi.apply(w)
		if err != nil {
			// (The capability is named as the kernel spells it.)
			if !strings.HasPrefix(err.Error(), "what-if "+wi.Key+"=") {
				t.Fatalf("apply %q: error %q does not name the what-if", s, err)
			}
			if worldState(w) != before {
				t.Fatalf("apply %q failed but changed the world", s)
			}
			return
		}
		undo()
		if after := worldState(w); after != before {
			t.Fatalf("apply and undo %q changed the world:\n%s\n%s", s, before, after)
		}
	})
}

// worldState prints what a what-if may change: the settings, the
// modules and every task's capabilities.
func worldState(w *kernel.World) string {
	var b strings.Builder
	fmt.Fprintf(&b, "suid_dumpable %d proc %+v yama %d;", w.SuidDumpable, w.Proc, settingsOf(w).Yama)
	for _, l := range w.LSMs {
		fmt.Fprintf(&b, " %s", l.Name())
	}
	for _, t := range w.Tasks {
		fmt.Fprintf(&b, " %d:%x/%x", t.PID, t.Cred.CapEffective, t.Cred.CapPermitted)
	}
	return b.String()
}
