package scenario_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/procgate/procgate/scenario"
)

// TestLoadErrors feeds bad scenarios to Load and checks the first error's
// exact file:line:column prefix and a fragment of its message.
func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		pos  string // "bad.yaml:line:col"
		msg  string // fragment of the message
	}{
		{
			name: "malformed YAML",
			src:  "tasks: [a, b\n",
			pos:  "bad.yaml:1:8",
			msg:  "invalid YAML: this '[' is not closed: did not find expected ',' or ']'",
		},
		{
			name: "unclosed [ inside a flow mapping, reported where it is",
			src:  "kernel:\n  release: \"6.1\"\ntasks:\n  - {name: a, groups: [1, 2}\n  - {name: b}\n",
			pos:  "bad.yaml:4:23",
			msg:  "this '[' is not closed",
		},
		{
			name: "unclosed [ in block context, next key below",
			src:  "tasks:\n  - name: a\n    groups: [1, 2\n    uid: 3\n",
			pos:  "bad.yaml:3:13",
			msg:  "this '[' is not closed",
		},
		{
			name: "unclosed [ after a block scalar with brackets",
			src:  "kernel:\n  lsm: [capability, selinux]\n  selinux:\n    policy: |\n      allow a_t b_t:file { read };\n      # [\ntasks:\n  - {name: a, groups: [4}\n",
			pos:  "bad.yaml:8:23",
			msg:  "this '[' is not closed",
		},
		{
			name: "unclosed [ after quoted brackets and a comment",
			src:  "# a [comment\ntasks:\n  - {name: \"x]\", cmdline: 'it''s [', groups: [1\n",
			pos:  "bad.yaml:3:46",
			msg:  "this '[' is not closed",
		},
		{
			name: "unclosed {",
			src:  "tasks:\n  - {name: a, uid: 1\n  - {name: b}\n",
			pos:  "bad.yaml:2:5",
			msg:  "this '{' is not closed: did not find expected ',' or '}'",
		},
		{
			name: "a thread's parent differs from its leader's",
			src:  "tasks:\n  - {name: shell, pid: 1}\n  - {name: web, pid: 10, parent: shell}\n  - {name: web2, pid: 11, tgid: 10, parent: web}\n",
			pos:  "bad.yaml:4:45",
			msg:  `task "web2" is a thread of "web": its parent is its leader's ("shell"), not "web"`,
		},
		{
			name: "a thread names a parent its leader does not have",
			src:  "tasks:\n  - {name: shell, pid: 1}\n  - {name: web, pid: 10}\n  - {name: web2, pid: 11, tgid: 10, parent: shell}\n",
			pos:  "bad.yaml:4:45",
			msg:  `task "web2" is a thread of "web": its parent is its leader's (none), not "shell"`,
		},
		{
			name: "a thread says it has no parent, its leader has one",
			src:  "tasks:\n  - {name: shell, pid: 1}\n  - {name: web, pid: 10, parent: shell}\n  - {name: web2, pid: 11, tgid: 10, parent: 0}\n",
			pos:  "bad.yaml:4:45",
			msg:  `its parent is its leader's ("shell"), not none`,
		},
		{
			name: "a thread's dumpable differs from its leader's mm",
			src:  "tasks:\n  - {name: web, pid: 10, mm: {dumpable: 2}}\n  - {name: web2, pid: 11, tgid: 10, mm: {dumpable: 1}}\n",
			pos:  "bad.yaml:3:52",
			msg:  `task "web2" is a thread of "web": its mm is its leader's ({dumpable: 2, userns: init}), not dumpable 1`,
		},
		{
			name: "a thread's mm namespace differs from its leader's",
			src:  "usernamespaces:\n  - {name: c1}\ntasks:\n  - {name: web, pid: 10}\n  - {name: web2, pid: 11, tgid: 10, mm: {userns: c1}}\n",
			pos:  "bad.yaml:5:50",
			msg:  `its mm is its leader's ({dumpable: 1, userns: init}), not userns "c1"`,
		},
		{
			name: "a running thread says it has no mm",
			src:  "tasks:\n  - {name: web, pid: 10}\n  - {name: web2, pid: 11, tgid: 10, mm: none}\n",
			pos:  "bad.yaml:3:41",
			msg:  `its mm is its leader's ({dumpable: 1, userns: init}), not none`,
		},
		{
			name: "a thread shares another task's mm",
			src:  "tasks:\n  - {name: other, pid: 5}\n  - {name: web, pid: 10}\n  - {name: web2, pid: 11, tgid: 10, mm: {share: other}}\n",
			pos:  "bad.yaml:4:49",
			msg:  `its mm is its leader's ({dumpable: 1, userns: init}), not the mm of "other"`,
		},
		{
			name: "two tasks parent each other",
			src:  "tasks:\n  - {name: a, parent: b}\n  - {name: b, parent: a}\n",
			pos:  "bad.yaml:2:23",
			msg:  `task "a": parent chain forms a cycle: a -> b -> a`,
		},
		{
			name: "a three-task parent cycle, reported at its first task in the file",
			src:  "tasks:\n  - {name: x}\n  - {name: b, parent: c}\n  - {name: a, parent: b}\n  - {name: c, parent: a}\n",
			pos:  "bad.yaml:3:23",
			msg:  `task "b": parent chain forms a cycle: b -> c -> a -> b`,
		},
		{
			name: "a leader whose parent is its own thread",
			src:  "tasks:\n  - {name: a, pid: 10, parent: a2}\n  - {name: a2, pid: 11, tgid: 10}\n",
			pos:  "bad.yaml:2:32",
			msg:  `task "a": parent chain forms a cycle: a -> a2 (a thread of a)`,
		},
		{
			name: "empty file",
			src:  "",
			pos:  "bad.yaml:1:1",
			msg:  "empty scenario",
		},
		{
			name: "two documents",
			src:  "tasks: []\n---\ntasks: []\n",
			pos:  "bad.yaml:2:1",
			msg:  "more than one YAML document",
		},
		{
			name: "aliases",
			src:  "a: &x 1\nb: *x\n",
			pos:  "bad.yaml:1:1",
			msg:  "aliases and anchors are not accepted",
		},
		{
			name: "unknown top-level key",
			src:  "task:\n  - {name: a}\n",
			pos:  "bad.yaml:1:1",
			msg:  `scenario: unknown key "task" (did you mean "tasks"?)`,
		},
		{
			name: "unknown kernel key",
			src:  "kernel:\n  relase: \"6.1\"\n",
			pos:  "bad.yaml:2:3",
			msg:  `kernel: unknown key "relase" (did you mean "release"?)`,
		},
		{
			name: "unknown task name in a check",
			src:  "tasks:\n  - {name: a, uid: 1000}\nchecks:\n  - {name: c, caller: a, target: nobody, mode: read_fscreds}\n",
			pos:  "bad.yaml:4:34",
			msg:  `check.target: unknown task "nobody"`,
		},
		{
			name: "unknown parent task",
			src:  "tasks:\n  - {name: a, parent: b}\n",
			pos:  "bad.yaml:2:23",
			msg:  `task.parent: unknown task "b"`,
		},
		{
			name: "unknown capability",
			src:  "tasks:\n  - name: a\n    caps: [sys_ptrce]\n",
			pos:  "bad.yaml:3:12",
			msg:  `unknown capability "sys_ptrce" (did you mean "sys_ptrace"?)`,
		},
		{
			name: "effective caps not a subset of permitted",
			src:  "tasks:\n  - name: a\n    caps: {effective: [sys_ptrace], permitted: [net_raw]}\n",
			pos:  "bad.yaml:3:11",
			msg:  "effective {sys_ptrace} is not a subset of permitted {net_raw}",
		},
		{
			name: "zombie with an mm",
			src:  "tasks:\n  - name: z\n    state: zombie\n    mm: {dumpable: 1}\n",
			pos:  "bad.yaml:4:9",
			msg:  `task "z" is a zombie task and has no mm`,
		},
		{
			name: "kernel thread with an mm",
			src:  "tasks:\n  - {name: k, kthread: true, mm: {dumpable: 1}}\n",
			pos:  "bad.yaml:2:34",
			msg:  `task "k" is a kernel thread and has no mm`,
		},
		{
			name: "user_dumpable on a task with an mm",
			src:  "tasks:\n  - {name: a, user_dumpable: true}\n",
			pos:  "bad.yaml:2:30",
			msg:  "user_dumpable applies only to kernel threads and exited tasks",
		},
		{
			name: "namespace cycle",
			src:  "usernamespaces:\n  - {name: a, parent: b}\n  - {name: b, parent: a}\n",
			pos:  "bad.yaml:2:5",
			msg:  `usernamespace "a": parent chain forms a cycle`,
		},
		{
			name: "unknown parent namespace",
			src:  "usernamespaces:\n  - {name: a, parent: nope}\n",
			pos:  "bad.yaml:2:23",
			msg:  `usernamespace "a": unknown parent "nope"`,
		},
		{
			name: "one pid two tgids",
			src:  "tasks:\n  - {name: a, pid: 5}\n  - {name: b, pid: 5, tgid: 7}\n",
			pos:  "bad.yaml:3:20",
			msg:  `task "b": pid 5 is also task "a", with a different tgid (7 vs 5)`,
		},
		{
			name: "unknown entry",
			src:  "tasks:\n  - {name: a}\nchecks:\n  - {name: c, caller: a, target: a, entry: environment}\n",
			pos:  "bad.yaml:4:44",
			msg:  `unknown /proc/<pid> entry "environment"`,
		},
		{
			name: "unknown syscall",
			src:  "tasks:\n  - {name: a}\nchecks:\n  - {name: c, caller: a, target: a, syscall: ptrace_attack}\n",
			pos:  "bad.yaml:4:46",
			msg:  `unknown syscall "ptrace_attack"`,
		},
		{
			name: "unknown mode",
			src:  "tasks:\n  - {name: a}\nchecks:\n  - {name: c, caller: a, target: a, mode: read}\n",
			pos:  "bad.yaml:4:43",
			msg:  `unknown mode "read"`,
		},
		{
			name: "unknown expectation",
			src:  "tasks:\n  - {name: a}\nchecks:\n  - {name: c, caller: a, target: a, mode: read_fscreds, expect: EWHAT}\n",
			pos:  "bad.yaml:4:65",
			msg:  `unknown errno "EWHAT"`,
		},
		{
			name: "two accesses in one check",
			src:  "tasks:\n  - {name: a}\nchecks:\n  - {name: c, caller: a, target: a, mode: read_fscreds, entry: maps}\n",
			pos:  "bad.yaml:4:5",
			msg:  "give exactly one of entry, syscall or mode",
		},
		{
			name: "capability not first",
			src:  "kernel:\n  lsm: [yama, capability]\n",
			pos:  "bad.yaml:2:8",
			msg:  "capability must be listed first",
		},
		{
			name: "unknown security module",
			src:  "kernel:\n  lsm: [capability, tomoyo2]\n",
			pos:  "bad.yaml:2:21",
			msg:  `unknown security module "tomoyo2"`,
		},
		{
			name: "duplicate task",
			src:  "tasks:\n  - {name: a}\n  - {name: a}\n",
			pos:  "bad.yaml:3:12",
			msg:  `task "a" defined twice`,
		},
		{
			name: "duplicate check",
			src:  "tasks:\n  - {name: a}\nchecks:\n  - {name: c, caller: a, target: a, mode: read_fscreds}\n  - {name: c, caller: a, target: a, mode: read_fscreds}\n",
			pos:  "bad.yaml:5:12",
			msg:  `check "c": name used twice`,
		},
		{
			name: "duplicate namespace",
			src:  "usernamespaces:\n  - {name: x}\n  - {name: x}\n",
			pos:  "bad.yaml:3:12",
			msg:  `usernamespace "x" defined twice`,
		},
		{
			name: "uid out of range",
			src:  "tasks:\n  - {name: a, uid: 99999999999}\n",
			pos:  "bad.yaml:2:20",
			msg:  "task.uid: 99999999999 is out of range",
		},
		{
			name: "duplicate key",
			src:  "tasks:\n  - {name: a, uid: 1, uid: 2}\n",
			pos:  "bad.yaml:2:23",
			msg:  `key "uid" given twice`,
		},
		{
			name: "selinux policy error in a block scalar",
			src:  "kernel:\n  lsm: [capability, selinux]\n  selinux:\n    policy: |\n      type a_t;\n      allow a_t b_t:file read;\n",
			pos:  "bad.yaml:6:17",
			msg:  "kernel.selinux.policy: ",
		},
		{
			name: "selinux policy error in a quoted scalar",
			src:  "kernel:\n  lsm: [capability, selinux]\n  selinux: {policy: \"type a_t;\\nallow a_t b_t:file read;\"}\n",
			pos:  "bad.yaml:3:21",
			msg:  "text line 2 column",
		},
		{
			name: "apparmor profile error",
			src:  "kernel:\n  lsm: [capability, apparmor]\n  apparmor:\n    profiles: |\n      profile p {\n        ptrace (fly),\n      }\n",
			pos:  "bad.yaml:6:17",
			msg:  "kernel.apparmor.profiles: ",
		},
		{
			name: "smack rule error",
			src:  "kernel:\n  lsm: [capability, smack]\n  smack:\n    rules: |\n      a b rwq\n",
			pos:  "bad.yaml:5:13",
			msg:  "kernel.smack.rules: ",
		},
		{
			name: "smack ptrace out of range",
			src:  "kernel:\n  lsm: [capability, smack]\n  smack: {ptrace: 3}\n",
			pos:  "bad.yaml:3:19",
			msg:  "kernel.smack.ptrace: 3 is out of range",
		},
		{
			name: "selinux unknown key",
			src:  "kernel:\n  lsm: [capability, selinux]\n  selinux: {enforce: true}\n",
			pos:  "bad.yaml:3:13",
			msg:  `unknown key "enforce" (did you mean "enforcing"?)`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := scenario.Load("bad.yaml", []byte(tc.src))
			if err == nil {
				t.Fatalf("Load succeeded with %d checks, want an error at %s", len(s.Checks), tc.pos)
			}
			var list scenario.ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error %T %v, want a non-empty scenario.ErrorList", err, err)
			}
			first := list[0].Error()
			if !strings.HasPrefix(first, tc.pos+": ") {
				t.Errorf("first error %q, want position %s", first, tc.pos)
			}
			if !strings.Contains(first, tc.msg) {
				t.Errorf("first error %q, want it to mention %q", first, tc.msg)
			}
		})
	}
}

// TestLoadValid checks that a small well-formed scenario loads and that
// its checks keep file order and lines.
func TestLoadValid(t *testing.T) {
	src := `kernel: {release: "6.18.44", lsm: [capability, landlock, yama], yama: {ptrace_scope: 1}}
tasks:
  - {name: shell, pid: 100, uid: 1000, gid: 1000}
  - {name: child, pid: 101, parent: shell, uid: 1000, gid: 1000}
checks:
  - {name: attach, caller: shell, target: child, syscall: ptrace_attach, expect: allow}
  - {name: back, caller: child, target: shell, mode: attach_realcreds, expect: EPERM}
`
	s, err := scenario.Load("ok.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Checks) != 2 || s.Checks[0].Line != 6 || s.Checks[1].Line != 7 {
		t.Fatalf("checks %v", s.Checks)
	}
	for _, c := range s.Checks {
		if d := s.Evaluate(c, false); !c.Met(d) {
			t.Errorf("%s: got %s, want %s", c, d.Result(), c.Expect)
		}
	}
}

// TestLoadThreadRestates loads threads that restate what they share with
// their leader — its parent and its mm, in each spelling — and checks
// that a thread's parent is its leader's whether restated or not.
func TestLoadThreadRestates(t *testing.T) {
	tests := []struct{ name, thread string }{
		{"nothing restated", "{name: web2, pid: 11, tgid: 10}"},
		{"the parent", "{name: web2, pid: 11, tgid: 10, parent: shell}"},
		{"the parent by pid", "{name: web2, pid: 11, tgid: 10, parent: 1}"},
		{"the mm's dumpable and namespace", "{name: web2, pid: 11, tgid: 10, mm: {dumpable: 2, userns: c1}}"},
		{"the mm's dumpable only", "{name: web2, pid: 11, tgid: 10, parent: shell, mm: {dumpable: 2}}"},
		{"the mm as the leader's share", "{name: web2, pid: 11, tgid: 10, mm: {share: web}}"},
		{"the mm as another thread's share", "{name: web2, pid: 11, tgid: 10, mm: {share: web3}}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := "usernamespaces:\n  - {name: c1}\ntasks:\n  - {name: shell, pid: 1}\n" +
				"  - {name: web, pid: 10, parent: shell, mm: {dumpable: 2, userns: c1}}\n" +
				"  - " + tc.thread + "\n  - {name: web3, pid: 12, tgid: 10}\n"
			s, err := scenario.Load("ok.yaml", []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			web, web2 := s.World.Task("web"), s.World.Task("web2")
			if web2.Parent != web.Parent || web2.MM != web.MM {
				t.Errorf("thread: parent %v mm %p, want its leader's: parent %v mm %p", web2.Parent, web2.MM, web.Parent, web.MM)
			}
		})
	}
}

// TestRequireChecks: a scenario without checks loads (snapshot writes
// such worlds), and RequireChecks says there is nothing to check, at the
// checks list when there is one.
func TestRequireChecks(t *testing.T) {
	tests := []struct{ name, src, pos string }{
		{"no checks key", "tasks:\n  - {name: a}\n", "none.yaml:1:1"},
		{"an empty list", "tasks:\n  - {name: a}\nchecks: []\n", "none.yaml:3:9"},
		{"a null list", "tasks:\n  - {name: a}\nchecks:\n", "none.yaml:3:8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := scenario.Load("none.yaml", []byte(tc.src))
			if err != nil {
				t.Fatal(err)
			}
			err = s.RequireChecks()
			var list scenario.ErrorList
			if !errors.As(err, &list) || len(list) != 1 {
				t.Fatalf("RequireChecks() = %v, want one positioned error", err)
			}
			if got := list[0].Error(); !strings.HasPrefix(got, tc.pos+": no checks: ") || !strings.Contains(got, "nothing to check") {
				t.Errorf("RequireChecks() = %q, want %s: no checks: … nothing to check", got, tc.pos)
			}
		})
	}
	s, err := scenario.Load("one.yaml", []byte("tasks:\n  - {name: a}\nchecks:\n  - {name: c, caller: a, target: a, mode: read_fscreds}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RequireChecks(); err != nil {
		t.Errorf("RequireChecks() with one check = %v", err)
	}
}
