package bpf

import (
	"reflect"
	"testing"
)

// FuzzParseClause: ParseClause never panics, and a clause it reads is
// rendered (Clause.String) as text it reads back to the same clause.
func FuzzParseClause(f *testing.F) {
	for _, s := range []string{
		"uid 0-99 1000", "not group 10", "gid 7", "pidns 4026531836", "cap sys_ptrace CAP_SYS_ADMIN 19",
		"exe dev 8:1 ino 42 dev 259:3 ino 7", "cgroup parent 20 level 2 ssh.service /** parent 1 level 1 kubepods/**",
		`not cgroup parent 5 level 3 "app 1 {x}/y"{,/**}`, "cgroup parent 1 level 1 a{,/**} /**", "uid 4294967295-4294967295",
		"cap", "exe dev 1:1", `cgroup parent 1 level 1 "`, "uid -1", "not not uid 1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cl, err := ParseClause(s)
		if err != nil {
			return
		}
		back, err := ParseClause(cl.String())
		if err != nil {
			t.Fatalf("%q read as %+v, rendered %q, which does not read: %v", s, cl, cl.String(), err)
		}
		if !reflect.DeepEqual(back, cl) {
			t.Fatalf("%q read as %+v, rendered %q, read back as %+v", s, cl, cl.String(), back)
		}
	})
}
