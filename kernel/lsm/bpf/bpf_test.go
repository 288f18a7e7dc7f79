package bpf

import (
	"reflect"
	"strings"
	"testing"

	"github.com/procgate/procgate/kernel"
)

func uids(lo, hi uint32) Clause { return Clause{Kind: KindUID, IDs: []IDRange{{lo, hi}}} }

func negate(c Clause) Clause { c.Not = true; return c }

// testRules has a class of every kind, a negated clause and both rule
// forms.
func testRules() *RuleSet {
	exe := kernel.FileID{Dev: kernel.MkDev(8, 1), Ino: 42}
	return &RuleSet{
		Classes: []Class{
			{Name: "users", Clauses: []Clause{uids(1000, 1999)}},
			{Name: "root", Clauses: []Clause{uids(0, 0)}},
			{Name: "wheel", Clauses: []Clause{{Kind: KindGroup, IDs: []IDRange{{10, 10}}}}},
			{Name: "agent", Clauses: []Clause{{Kind: KindExe, Exes: []kernel.FileID{exe}}, {Kind: KindGID, IDs: []IDRange{{500, 500}}}}},
			{Name: "not-root", Clauses: []Clause{negate(uids(0, 0))}},
		},
		Rules: []Rule{
			{Subject: -1, Target: 3, Access: Read, Text: "protect agent : read"},
			{Subject: 1, Target: 0, Access: Attach, Text: "deny root users : attach"},
			{Subject: 2, Target: 1, Access: Read, Text: "deny wheel root : read"},
		},
	}
}

func TestClassesOf(t *testing.T) {
	rs := testRules()
	exe := kernel.FileID{Dev: kernel.MkDev(8, 1), Ino: 42}
	other := kernel.FileID{Dev: kernel.MkDev(8, 1), Ino: 43}
	for _, tc := range []struct {
		name string
		m    Match
		want uint64
	}{
		{"user", Match{EUID: 1500, EGID: 1500}, 1<<0 | 1<<4},
		{"root", Match{EUID: 0, EGID: 0}, 1 << 1},
		{"wheel by egid", Match{EUID: 0, EGID: 10}, 1<<1 | 1<<2},
		{"wheel by supplementary group", Match{EUID: 3000, EGID: 3000, Groups: []uint32{4, 10}}, 1<<2 | 1<<4},
		{"group past MaxGroups is not seen", Match{EUID: 3000, EGID: 3000, Groups: append(make([]uint32, MaxGroups), 10)}, 1 << 4},
		{"agent: exe and gid", Match{EUID: 3000, EGID: 500, Exe: &exe}, 1<<3 | 1<<4},
		{"agent's gid, another exe", Match{EUID: 3000, EGID: 500, Exe: &other}, 1 << 4},
		{"agent's exe, another gid", Match{EUID: 3000, EGID: 501, Exe: &exe}, 1 << 4},
		{"no mm", Match{EUID: 3000, EGID: 500}, 1 << 4},
	} {
		// tc.want is by class index; the program's bits are by
		// Layout.General (not-root is in no rule: no bit).
		l := rs.Layout()
		var want uint64
		for i := range len(rs.Classes) {
			if b, ok := l.Bit[i]; ok && tc.want&(1<<i) != 0 {
				want |= 1 << b
			}
		}
		if got := l.ClassesOf(tc.m); got != want {
			t.Errorf("%s: classes %#b, want %#b", tc.name, got, want)
		}
	}
}

func TestDecide(t *testing.T) {
	rs := testRules()
	exe := kernel.FileID{Dev: kernel.MkDev(8, 1), Ino: 42}
	root := Match{EUID: 0, EGID: 0}
	user := Match{EUID: 1000, EGID: 1000}
	wheel := Match{EUID: 1000, EGID: 1000, Groups: []uint32{10}}
	agent := Match{EUID: 2000, EGID: 500, Exe: &exe}
	for _, tc := range []struct {
		name            string
		subject, target Match
		a               Access
		want            string // the rule's text, "" for none
	}{
		{"protect refuses root", root, agent, Read, "protect agent : read"},
		{"protect is for read only", root, agent, Attach, ""},
		{"root may read users", root, user, Read, ""},
		{"root may not attach users", root, user, Attach, "deny root users : attach"},
		{"wheel may not read root", wheel, root, Read, "deny wheel root : read"},
		{"wheel may attach root (no rule)", wheel, root, Attach, ""},
		{"users may read each other", user, user, Read, ""},
	} {
		got := ""
		if r := rs.Decide(tc.subject, tc.target, tc.a); r != nil {
			got = r.Text
		}
		if got != tc.want {
			t.Errorf("%s: rule %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	// many makes n classes of two values of kind k, each protected:
	// rules of class bits (a class of one value would be hashed).
	many := func(n int, k Kind) *RuleSet {
		rs := &RuleSet{}
		for i := range n {
			c := Class{Name: "c"}
			if k == KindExe {
				c.Clauses = []Clause{{Kind: k, Exes: []kernel.FileID{{Dev: 1, Ino: uint64(2 * i)}, {Dev: 1, Ino: uint64(2*i + 1)}}}}
			} else {
				c.Clauses = []Clause{{Kind: k, IDs: []IDRange{{uint32(2 * i), uint32(2*i + 1)}}}}
			}
			rs.Classes = append(rs.Classes, c)
			rs.Rules = append(rs.Rules, Rule{Subject: -1, Target: i})
		}
		return rs
	}
	// hashed makes n rules between classes of one uid: hashed.
	hashed := func(n int) *RuleSet {
		rs := &RuleSet{}
		for i := range n {
			rs.Classes = append(rs.Classes, Class{Name: "u", Clauses: []Clause{uids(uint32(i), uint32(i))}})
			rs.Rules = append(rs.Rules, Rule{Subject: max(i-1, 0), Target: i})
		}
		return rs
	}
	for _, tc := range []struct {
		name string
		rs   *RuleSet
		want string // "" for valid
	}{
		{"valid", testRules(), ""},
		{"too many classes", many(MaxClasses+1, KindGID), "classes"},
		{"too many uid ranges", many(MaxRanges+1, KindUID), "uid values"},
		{"too many exes", many(MaxExes/2+1, KindExe), "exe values"},
		{"as many as the program holds", many(MaxRanges, KindGroup), ""},
		{"10,000 hashed rules", hashed(10000), ""},
		{"too many hashed rules", hashed(MaxPairs + 1), "hashed rules"},
		{"unused classes count for nothing", &RuleSet{Classes: many(MaxClasses+1, KindGID).Classes}, ""},
		{"empty range", &RuleSet{Classes: []Class{{Name: "x", Clauses: []Clause{uids(5, 4)}}}}, "empty"},
		{"two positive clauses of a kind", &RuleSet{Classes: []Class{{Name: "x", Clauses: []Clause{uids(1, 1), uids(2, 2)}}}}, "two positive uid"},
		{"a negated and a positive clause of a kind", &RuleSet{Classes: []Class{{Name: "x", Clauses: []Clause{uids(1, 9), negate(uids(5, 5))}}}}, ""},
		{"rule out of range", &RuleSet{Classes: []Class{{Name: "x"}}, Rules: []Rule{{Subject: 0, Target: 1, Text: "r"}}}, "out of range"},
	} {
		err := tc.rs.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one about %q", tc.name, err, tc.want)
		}
	}
}

// TestModule checks the module in the model's stack: it denies with
// EPERM and explains which rule, as the last module.
func TestModule(t *testing.T) {
	w := kernel.NewWorld(kernel.DefaultRelease)
	m := &Module{Rules: testRules()}
	root := &kernel.Task{Name: "root", Cred: kernel.Cred{UserNS: w.Init}}
	user := &kernel.Task{Name: "user", Cred: kernel.Cred{UID: 1000, EUID: 1000, SUID: 1000, FSUID: 1000, GID: 1000, EGID: 1000, SGID: 1000, FSGID: 1000, UserNS: w.Init}}
	var tr kernel.Trace
	e := kernel.Env{W: w, T: &tr}
	if got := m.PtraceAccessCheck(e, root, user, kernel.ModeAttach|kernel.ModeRealCreds); got != kernel.EPERM {
		t.Errorf("root attaching to a user: %v, want EPERM", got)
	}
	if got := m.PtraceAccessCheck(e, root, user, kernel.ModeRead|kernel.ModeFSCreds); got != kernel.OK {
		t.Errorf("root reading a user: %v, want OK", got)
	}
	if got := m.PtraceTraceme(e, root, user); got != kernel.EPERM {
		t.Errorf("a user's PTRACE_TRACEME under root: %v, want EPERM (the parent attaches)", got)
	}
	if got := (&Module{}).PtraceAccessCheck(e, root, user, kernel.ModeAttach|kernel.ModeRealCreds); got != kernel.OK {
		t.Errorf("without a rule set: %v, want OK", got)
	}
	// The exempt cgroup: its tasks are not restricted as callers, and
	// are as parents at PTRACE_TRACEME (the program reads only the
	// caller's cgroup).
	rs := testRules()
	rs.ExemptCgroup = 77
	m = &Module{Rules: rs}
	reader := *root
	reader.CgroupID = 77
	if got := m.PtraceAccessCheck(e, &reader, user, kernel.ModeAttach|kernel.ModeRealCreds); got != kernel.OK {
		t.Errorf("root in the exempt cgroup attaching to a user: %v, want OK", got)
	}
	if got := m.PtraceTraceme(e, &reader, user); got != kernel.EPERM {
		t.Errorf("PTRACE_TRACEME under root in the exempt cgroup: %v, want EPERM", got)
	}
}

// BenchmarkDecide: the model's decision with 10,000 hashed rules, laid
// out for each question (RuleSet.Decide) and once (Layout.Decide, as the
// model's module and procgate enforce's audit keep it).
func BenchmarkDecide(b *testing.B) {
	rs := &RuleSet{}
	for i := range 10000 {
		rs.Classes = append(rs.Classes, Class{Clauses: []Clause{uids(uint32(1000+i), uint32(1000+i))}}, Class{Clauses: []Clause{uids(uint32(50000+i), uint32(50000+i))}})
		rs.Rules = append(rs.Rules, Rule{Subject: 2 * i, Target: 2*i + 1})
	}
	s, t := Match{EUID: 1500, EGID: 1500}, Match{EUID: 50500, EGID: 50500}
	b.Run("laid-out-each-time", func(b *testing.B) {
		for b.Loop() {
			if rs.Decide(s, t, Read) == nil {
				b.Fatal("allowed")
			}
		}
	})
	l := rs.Layout()
	b.Run("laid-out-once", func(b *testing.B) {
		for b.Loop() {
			if l.Decide(s, t, Read) == nil {
				b.Fatal("allowed")
			}
		}
	})
}

// TestCgroupSelects: a selector holds its named cgroup under the parent's
// id (Self), the cgroups below it (Below), or every cgroup (Root), and
// Validate refuses what the program cannot compare.
func TestCgroupSelects(t *testing.T) {
	path := func(names ...string) []kernel.CgroupNode {
		p := []kernel.CgroupNode{{ID: 1}}
		for i, n := range names {
			p = append(p, kernel.CgroupNode{ID: uint64(10 + i), Name: n})
		}
		return p
	}
	svc := CgroupSel{Parent: 10, Level: 2, Name: "svc", Self: true}
	below := CgroupSel{Parent: 10, Level: 2, Name: "svc", Below: true}
	for _, tc := range []struct {
		name string
		sel  CgroupSel
		path []kernel.CgroupNode
		want bool
	}{
		{"itself", svc, path("sys", "svc"), true},
		{"a child is not itself", svc, path("sys", "svc", "x"), false},
		{"another parent", svc, []kernel.CgroupNode{{ID: 1}, {ID: 99, Name: "sys"}, {ID: 11, Name: "svc"}}, false},
		{"another name", svc, path("sys", "svd"), false},
		{"above it", svc, path("sys"), false},
		{"below: a child", below, path("sys", "svc", "x"), true},
		{"below: a grandchild", below, path("sys", "svc", "x", "y"), true},
		{"below: not itself", below, path("sys", "svc"), false},
		{"root: the root", CgroupSel{Root: true}, path(), true},
		{"root: any", CgroupSel{Root: true}, path("a", "b"), true},
		{"unknown", CgroupSel{Root: true}, nil, false},
	} {
		if got := tc.sel.Selects(tc.path); got != tc.want {
			t.Errorf("%s: %s selects %v: %v, want %v", tc.name, tc.sel, tc.path, got, tc.want)
		}
		if ex := tc.sel.Example(); !tc.sel.Selects(ex) {
			t.Errorf("%s: %s does not select its example %v", tc.name, tc.sel, ex)
		}
	}
	for _, tc := range []struct {
		sel  CgroupSel
		want string
	}{
		{CgroupSel{Parent: 1, Level: 1, Name: strings.Repeat("n", MaxCgroupName+1), Self: true}, "want 1 to 62 bytes"},
		{CgroupSel{Parent: 1, Level: 1, Name: "a/b", Self: true}, "no '/'"},
		{CgroupSel{Parent: 1, Level: 0, Name: "a", Self: true}, "level 0 out of 1-15"},
		{CgroupSel{Parent: 1, Level: 1, Name: "a"}, "neither itself nor its descendants"},
	} {
		rs := &RuleSet{Classes: []Class{{Name: "c", Clauses: []Clause{{Kind: KindCgroup, Cgroups: []CgroupSel{tc.sel}}}}}, Rules: []Rule{{Subject: -1, Target: 0}}}
		if err := rs.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: Validate: %v, want %q", tc.sel, err, tc.want)
		}
	}
}

// TestParseClause: ParseClause reads back what Clause.String renders,
// for every kind, negated or not, with several values, and refuses what
// it cannot read with the clause in the message.
func TestParseClause(t *testing.T) {
	for _, cl := range []Clause{
		{Kind: KindUID, IDs: []IDRange{{0, 99}, {1000, 1000}}},
		{Kind: KindGID, Not: true, IDs: []IDRange{{7, 7}}},
		{Kind: KindGroup, IDs: []IDRange{{10, 12}}},
		{Kind: KindExe, Exes: []kernel.FileID{{Dev: kernel.MkDev(8, 1), Ino: 42}, {Dev: kernel.MkDev(259, 3), Ino: 1 << 40}}},
		{Kind: KindCgroup, Cgroups: []CgroupSel{{Parent: 20, Level: 2, Name: "ssh.service", Self: true}, {Root: true}, {Parent: 1, Level: 1, Name: "kubepods", Below: true}}},
		{Kind: KindCgroup, Not: true, Cgroups: []CgroupSel{{Parent: 5, Level: 3, Name: "app 1 {x}/y", Self: true, Below: true}}},
	} {
		text := cl.String()
		got, err := ParseClause(text)
		if err != nil {
			t.Errorf("%s: %v", text, err)
			continue
		}
		if !reflect.DeepEqual(got, cl) {
			t.Errorf("%s: read back %+v, want %+v", text, got, cl)
		}
	}
	for _, bad := range []string{"", "uid", "pid 1", "uid x", "uid 9-3", "exe dev 8:1", "exe dev x ino 1", "cgroup parent 1 level", "cgroup parent 1 level 1 a/*", `cgroup parent 1 level 1 "a`} {
		if _, err := ParseClause(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
