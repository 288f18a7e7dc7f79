package policy

import (
	"errors"
	"strings"
	"testing"
)

func TestParseStatements(t *testing.T) {
	src := `# every statement
option default_audit all;
option kernel_bound false;
option same_container pidns;
subject s1 { uid 0 1000-1999 alice; gid 5; group wheel; not uid 7; }
subject s2 { type "unconfined_t"; label system_u:system_r:*:s0; apparmor firefox; exe /bin/sh; cgroup /system.slice/**; container host 4026531836; }
target t1 { }
target t2 { container any; }
attribute both = t1 t2;
allow s1 t1 : read { status io };
allow s1 both : read * when same_uid, not descendant;
allow s2 { t1 -t2 } : attach when same_uid nondumpable;
deny * * : read { environ };
auditallow s1 t1 : read { status };
dontaudit s1 t1 : read;
protect t2 : attach { mem };
neverallow s2 t2 : read { maps };
`
	f, err := Parse("p.pol", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Options) != 3 || len(f.Classes) != 4 || len(f.Attributes) != 1 || len(f.Rules) != 8 {
		t.Fatalf("counts: %d options, %d classes, %d attributes, %d rules", len(f.Options), len(f.Classes), len(f.Attributes), len(f.Rules))
	}
	for _, tc := range []struct {
		i       int
		effect  Effect
		attach  bool
		items   ItemSet
		when    Relation
		whenNot Relation
		nd      bool
		line    int
	}{
		{0, Allow, false, ItemStatus.Set() | ItemIO.Set(), 0, 0, false, 10},
		{1, Allow, false, ReadItems, RelSameUID, RelDescendant, false, 11},
		{2, Allow, true, AttachItems, RelSameUID, 0, true, 12},
		{3, Deny, false, ItemEnviron.Set(), 0, 0, false, 13},
		{4, AuditAllow, false, ItemStatus.Set(), 0, 0, false, 14},
		{5, DontAudit, false, ReadItems, 0, 0, false, 15},
		{6, Protect, true, ItemMem.Set(), 0, 0, false, 16},
		{7, Neverallow, false, ItemMaps.Set(), 0, 0, false, 17},
	} {
		r := f.Rules[tc.i]
		if r.Effect != tc.effect || r.Attach != tc.attach || r.Items != tc.items || r.When != tc.when ||
			r.WhenNot != tc.whenNot || r.Nondumpable != tc.nd || r.Pos.Line != tc.line {
			t.Errorf("rule %d = %+v", tc.i, r)
		}
	}
	if got := f.Rules[2].Text; got != "allow s2 { t1 -t2 } : attach when same_uid nondumpable;" {
		t.Errorf("Text = %q", got)
	}
	if !f.Rules[6].Subject.Any {
		t.Error("protect's subject is not *")
	}
	if s := f.Classes[1].Selectors[1]; s.Key != "label" || s.Values[0].Text != "system_u:system_r:*:s0" {
		t.Errorf("label selector = %+v", s)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"unknown item", "allow * * : read { envron };", `p.pol:1:20: unknown item "envron" (did you mean "environ"?)`},
		{"attach item in read rule", "allow * * : read { status mem };", `p.pol:1:27: item "mem" is attach-class: a read rule can never grant it`},
		{"read item in attach rule", "allow * * : attach { io };", `p.pol:1:22: item "io" is read-class`},
		{"allow read needs items", "allow * * : read;", `p.pol:1:17: allow … : read needs items`},
		{"unknown statement", "alow * * : read *;", `p.pol:1:1: unknown statement "alow" (did you mean "allow"?)`},
		{"unknown selector", "subject a { ud 0; }", `p.pol:1:13: unknown selector "ud" (did you mean "uid"?)`},
		{"missing semicolon", "allow * * : read { io }\nallow * * : read { io };", `p.pol:2:1: expected ';', found "allow"`},
		{"unterminated block", "subject a { uid 0;", `unterminated subject block "a"`},
		{"bad range", "subject a { uid 9-1; }", `p.pol:1:17: bad uid range "9-1"`},
		{"relative exe", "subject a { exe bin/sh; }", `exe "bin/sh": want an absolute path`},
		{"exe glob", "subject a { exe /bin/*; }", `globs are not allowed`},
		{"unknown condition", "allow * * : attach when same_ud;", `unknown condition "same_ud" (did you mean "same_uid"?)`},
		{"nondumpable on deny", "deny * * : attach when nondumpable;", `nondumpable widens allow rules only`},
		{"not nondumpable", "allow * * : attach when not nondumpable;", `'not nondumpable' is the default`},
		{"when on protect", "protect * : attach when same_uid;", `protect takes no 'when' conditions`},
		{"empty set", "allow { } * : attach;", `empty subject set`},
		{"bad option value", "option default_audit some;", `option default_audit: unknown value "some"`},
		{"unknown option", "option kernel_bond true;", `unknown option "kernel_bond" (did you mean "kernel_bound"?)`},
		{"unterminated string", "subject a { label \"x; }", `unterminated string`},
		{"bad access", "allow * * : raed { io };", `expected 'read' or 'attach', found "raed" (did you mean "read"?)`},
		{"contradiction", "allow * * : attach when same_uid, not same_uid;", `both required and excluded`},
		{"duplicate item", "allow * * : read { io io };", `item "io" named twice`},
		{"conditions without when", "allow * * : attach same_uid;", `conditions follow 'when'`},
		{"bad character", "allow * * : read { io } ! ;", `unexpected character '!'`},
		{"container value", "target a { container pod; }", `want host, any or a pid-namespace inode number`},
		{"selector without value", "target a { uid; }", `selector "uid" needs at least one value`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("p.pol", []byte(tc.src))
			if err == nil {
				t.Fatalf("Parse(%q) = nil error, want %q", tc.src, tc.want)
			}
			var l ErrorList
			if !errors.As(err, &l) || len(l) == 0 {
				t.Fatalf("error %v is not an ErrorList", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse(%q) error = %q, want %q", tc.src, err, tc.want)
			}
			for _, e := range l {
				if e.Line < 1 || e.Col < 1 || e.File != "p.pol" {
					t.Errorf("error without position: %v", e)
				}
			}
		})
	}
}

func TestParseRecoversAfterErrors(t *testing.T) {
	src := "allow * * : read { envron };\nsubject a { ud 0; }\nallow * * : read { mapz };\n"
	_, err := Parse("p.pol", []byte(src))
	var l ErrorList
	if !errors.As(err, &l) || len(l) != 3 {
		t.Fatalf("want 3 errors, got %v", err)
	}
	for i, line := range []int{1, 2, 3} {
		if l[i].Line != line {
			t.Errorf("error %d at line %d, want %d", i, l[i].Line, line)
		}
	}
}

func TestGlob(t *testing.T) {
	for _, tc := range []struct {
		pat, s string
		path   bool
		want   bool
	}{
		{"sshd_t", "sshd_t", false, true},
		{"ssh*", "sshd_t", false, true},
		{"*_t", "sshd_t", false, true},
		{"s?hd_t", "sshd_t", false, true},
		{"system_u:*:sshd_t:*", "system_u:system_r:sshd_t:s0", false, true},
		{"*a*b", "xaxxbxb", false, true},
		{"*a*b", "xaxxbxc", false, false},
		{"/system.slice/*", "/system.slice/sshd.service", true, true},
		{"/system.slice/*", "/system.slice/a/b", true, false},
		{"/kubepods.slice/**", "/kubepods.slice/a/b/c", true, true},
		{"/kubepods.slice/**/cri-*.scope", "/kubepods.slice/a/b/cri-1.scope", true, true},
		{"/kubepods.slice/**/cri-*.scope", "/kubepods.slice/cri-1.scope", true, true},
		{"/kubepods.slice/**/cri-*.scope", "/other/cri-1.scope", true, false},
		{"/a/*/c", "/a/b/c", true, true},
		{"/a/*/c", "/a/b/x/c", true, false},
	} {
		g := compileGlob(tc.pat, tc.path)
		if got := g.match(tc.s); got != tc.want {
			t.Errorf("glob(%q, path=%v).match(%q) = %v, want %v", tc.pat, tc.path, tc.s, got, tc.want)
		}
	}
}
