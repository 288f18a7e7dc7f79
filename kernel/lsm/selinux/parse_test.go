package selinux_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/procgate/procgate/kernel/lsm/selinux"
)

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, src string
		want      string // "line:col: substring"
	}{
		{"unknown type with suggestion", "type lsof_t;\nallow lsf_t lsof_t:file read;", `2:7: unknown type or attribute "lsf_t" (did you mean "lsof_t"?)`},
		{"unknown class", "type a;\nallow a a:fiel read;", `2:11: unknown class "fiel" (did you mean "file"?)`},
		{"unknown permission", "type a;\nallow a a:process ptrac;", `2:19: unknown permission "ptrac" in class process (did you mean "ptrace"?)`},
		{"unknown statement", "tpye a;", `1:1: unknown statement "tpye" (did you mean "type"?)`},
		{"missing semicolon", "type a\ntype b;", `2:1: expected ';', found "type"`},
		{"bad character", "type a$;", `1:7: unexpected character '$'`},
		{"duplicate", "type a;\nattribute a;", `2:11: duplicate declaration of "a"`},
		{"attribute used as type", "attribute d;\ntypeattribute d d;", `2:15: "d" is an attribute, not a type`},
		{"undeclared attribute", "type a, dom;", `1:9: unknown attribute "dom"`},
		{"self as source", "type a;\nallow self a:file read;", `2:7: "self" may appear only as a target`},
		{"empty set", "type a;\nallow {} a:file read;", `2:7: empty set`},
		{"neverallow violated", "type a;\ntype b;\nallow a b:process { ptrace getattr };\nneverallow a b:process ptrace;", `4:1: neverallow violated by the allow rule at line 3 (process { ptrace })`},
		{"neverallow on self", "attribute d;\ntype a, d;\nallow d self:process ptrace;\nneverallow a self:process ptrace;", `4:1: neverallow violated by the allow rule at line 3`},
		{"truncated rule", "type a;\nallow a a:file", `2:15: expected a permission set, found end of policy`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := selinux.Parse(tc.src)
			if err == nil {
				t.Fatal("no error")
			}
			var list selinux.ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error %T is not an ErrorList", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %q, want %q", err, tc.want)
			}
			var one *selinux.Error
			if !errors.As(err, &one) || one.Line == 0 || one.Col == 0 {
				t.Errorf("errors.As(*Error) = %+v", one)
			}
		})
	}
}

// TestParseRecovers reports errors in several statements at once.
func TestParseRecovers(t *testing.T) {
	_, err := selinux.Parse("type a;\nallow a b:file read;\nallow a a:file rd;\ntype c;")
	var list selinux.ErrorList
	if !errors.As(err, &list) || len(list) != 2 || list[0].Line != 2 || list[1].Line != 3 {
		t.Errorf("errors = %v", err)
	}
}

func TestParseAccepts(t *testing.T) {
	p, err := selinux.Parse(`
# Declarations may follow their use, as in checkpolicy.
allow b_t a_t:{ file dir } { read search };
type a_t;
type b_t;
attribute domain;
typeattribute a_t domain;
allow domain *:process *;
allow b_t ~a_t:file ~{ write };
dontaudit b_t domain:process { getattr -ptrace };
neverallow b_t a_t:process sigkill;
`)
	if err != nil {
		t.Fatal(err)
	}
	if p.Rules() != 5 || len(p.Types()) != 2 {
		t.Errorf("Rules = %d, Types = %v", p.Rules(), p.Types())
	}
}
