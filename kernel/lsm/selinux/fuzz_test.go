package selinux_test

import (
	"errors"
	"testing"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/capability"
	"github.com/procgate/procgate/kernel/lsm/selinux"
)

func capabilityModule() kernel.LSM { return capability.New() }

// FuzzParse checks that Parse never panics, that every failure is an
// ErrorList with positions, and that a parsed policy answers queries.
func FuzzParse(f *testing.F) {
	f.Add(basePolicy)
	f.Add("attribute d;\ntype a, d;\nallow d self:process ptrace;")
	f.Add("type a;\nallow { a -a } ~a:{ file process } *;\nneverallow a a:file read;")
	f.Fuzz(func(t *testing.T, src string) {
		p, err := selinux.Parse(src)
		if err != nil {
			var list selinux.ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error %v is not a non-empty ErrorList", err)
			}
			for _, e := range list {
				if e.Line < 1 || e.Col < 1 || e.Msg == "" {
					t.Fatalf("bad error %+v", e)
				}
			}
			return
		}
		m := selinux.New(p, true)
		for _, a := range p.Types() {
			for _, b := range p.Types() {
				m.Allowed(a, b, "process", "ptrace")
			}
		}
	})
}
