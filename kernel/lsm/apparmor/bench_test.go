package apparmor_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/procgate/procgate/kernel"
)

// BenchmarkAppArmor measures World.PtraceMayAccess with the capability
// module and AppArmor holding 1,000 profiles, the tracer's granting by
// glob and the tracee's by exact peer.
func BenchmarkAppArmor(b *testing.B) {
	var src strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&src, "profile app%d {\n  ptrace (read, trace) peer=app{%d,%d}*,\n  ptrace (readby, tracedby) peer=app%d,\n  capability sys_ptrace,\n}\n", i, i+1, i+2, i-1)
	}
	w := newWorld(b, src.String())
	c := w.task("caller", 100, "app1", 0)
	tg := w.task("target", 200, "app2", 0)
	for _, mode := range []kernel.Mode{kernel.ReadFSCreds, kernel.AttachRealCreds} {
		b.Run(mode.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if d := w.w.PtraceMayAccess(c, tg, mode); !d.Allowed {
					b.Fatal(d)
				}
			}
		})
	}
}

func TestFastPathDoesNotAllocate(t *testing.T) {
	w := newWorld(t, s12+"profile g { ptrace (read) peer=t*, deny ptrace (trace) peer=t*, }")
	g := w.task("g", 100, "g", 0)
	tg := w.task("target", 200, "target", 0)
	admin := w.task("admin", 300, "", 0)
	for _, pair := range [][2]*kernel.Task{{g, tg}, {admin, tg}, {tg, g}} {
		for _, m := range []kernel.Mode{kernel.ReadFSCreds, kernel.AttachRealCreds} {
			w.w.PtraceMayAccess(pair[0], pair[1], m)
			if n := testing.AllocsPerRun(100, func() { w.w.PtraceMayAccess(pair[0], pair[1], m) }); n != 0 {
				t.Errorf("%s → %s %s: %v allocs", pair[0].Name, pair[1].Name, m, n)
			}
		}
	}
}
