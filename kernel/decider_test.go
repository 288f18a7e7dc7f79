package kernel_test

import (
	"fmt"
	"testing"

	"pgregory.net/rapid"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/scenario"
)

// TestDeciderNeverSkipped asks questions whose last security module
// skips them (Landlock for a caller without a domain, Yama for READ
// modes and at ptrace_scope 0, AppArmor for an unconfined tracer) and
// asserts the layer that decided: the last step that passed, never a
// module that skipped. Fast and explained paths must agree.
func TestDeciderNeverSkipped(t *testing.T) {
	const tasks = `
tasks:
  - {name: shell, pid: 100, uid: 1000, gid: 1000}
  - {name: gdb, pid: 101, parent: shell, uid: 1000, gid: 1000}
  - {name: child, pid: 102, parent: gdb, uid: 1000, gid: 1000}
  - {name: editor, pid: 103, parent: shell, uid: 1000, gid: 1000}
  - {name: boxed, pid: 104, parent: shell, uid: 1000, gid: 1000, landlock: [box]}
  - {name: inner, pid: 105, parent: boxed, uid: 1000, gid: 1000, landlock: [box, inner]}
`
	tests := []struct {
		name, kernel, check string
		want                string // the result
		layer               kernel.Layer
	}{
		{
			name:   "landlock last, yama passed: yama decides",
			kernel: "kernel: {lsm: [capability, yama, landlock], yama: {ptrace_scope: 1}}",
			check:  "{name: q, caller: gdb, target: child, syscall: ptrace_attach}",
			want:   "allow", layer: "yama",
		},
		{
			name:   "landlock last, READ: capability decides",
			kernel: "kernel: {lsm: [capability, yama, landlock], yama: {ptrace_scope: 1}}",
			check:  "{name: q, caller: gdb, target: editor, entry: maps}",
			want:   "allow", layer: "capability",
		},
		{
			name:   "yama last, READ mode: capability decides",
			kernel: "kernel: {lsm: [capability, landlock, yama], yama: {ptrace_scope: 1}}",
			check:  "{name: q, caller: gdb, target: editor, syscall: kcmp}",
			want:   "allow", layer: "capability",
		},
		{
			name:   "yama last at scope 0: capability decides an attach",
			kernel: "kernel: {lsm: [capability, landlock, yama], yama: {ptrace_scope: 0}}",
			check:  "{name: q, caller: gdb, target: editor, syscall: ptrace_attach}",
			want:   "allow", layer: "capability",
		},
		{
			name:   "yama last at scope 0, the sandboxed caller's landlock passed: landlock decides",
			kernel: "kernel: {lsm: [capability, landlock, yama], yama: {ptrace_scope: 0}}",
			check:  "{name: q, caller: boxed, target: inner, mode: attach_realcreds}",
			want:   "allow", layer: "landlock",
		},
		{
			name:   "landlock last and checking: landlock decides",
			kernel: "kernel: {lsm: [capability, yama, landlock], yama: {ptrace_scope: 0}}",
			check:  "{name: q, caller: boxed, target: inner, entry: environ}",
			want:   "allow", layer: "landlock",
		},
		{
			name:   "mem through mm_access, landlock last: capability decides",
			kernel: "kernel: {lsm: [capability, yama, landlock], yama: {ptrace_scope: 0}}",
			check:  "{name: q, caller: gdb, target: editor, entry: mem}",
			want:   "allow", layer: "capability",
		},
		{
			name:   "process_vm_readv, yama scope 0 last: capability decides",
			kernel: "kernel: {lsm: [capability, landlock, yama], yama: {ptrace_scope: 0}}",
			check:  "{name: q, caller: gdb, target: editor, syscall: process_vm_readv}",
			want:   "allow", layer: "capability",
		},
		{
			name:   "apparmor last with an unconfined tracer: capability decides",
			kernel: "kernel: {lsm: [capability, apparmor], apparmor: {profiles: \"profile confined { ptrace (read) peer=unconfined, }\"}}",
			check:  "{name: q, caller: gdb, target: editor, entry: environ}",
			want:   "allow", layer: "capability",
		},
		{
			name:   "every optional module skips: capability decides",
			kernel: "kernel: {lsm: [capability, landlock, yama, apparmor], yama: {ptrace_scope: 0}}",
			check:  "{name: q, caller: gdb, target: editor, syscall: ptrace_seize}",
			want:   "allow", layer: "capability",
		},
		{
			name: "smack without rules still checks the labels: smack decides",
			// Smack has no early return: smk_access allows identical
			// labels, a check that passed.
			kernel: "kernel: {lsm: [capability, landlock, smack]}",
			check:  "{name: q, caller: gdb, target: editor, entry: environ}",
			want:   "allow", layer: "smack",
		},
		{
			name:   "traceme, yama at scope 1 and an unsandboxed parent skip: capability decides",
			kernel: "kernel: {lsm: [capability, yama, landlock], yama: {ptrace_scope: 1}}",
			check:  "{name: q, caller: child, target: gdb, syscall: ptrace_traceme}",
			want:   "allow", layer: "capability",
		},
		{
			name:   "traceme at yama scope 2 by an unprivileged parent: yama decides",
			kernel: "kernel: {lsm: [capability, landlock, yama], yama: {ptrace_scope: 2}}",
			check:  "{name: q, caller: child, target: gdb, syscall: ptrace_traceme}",
			want:   "EPERM", layer: "yama",
		},
		{
			name:   "traceme under a sandboxed parent: landlock decides",
			kernel: "kernel: {lsm: [capability, yama, landlock], yama: {ptrace_scope: 0}}",
			check:  "{name: q, caller: inner, target: boxed, syscall: ptrace_traceme}",
			want:   "allow", layer: "landlock",
		},
		{
			name:   "a denial is still decided by the denying module",
			kernel: "kernel: {lsm: [capability, yama, landlock], yama: {ptrace_scope: 1}}",
			check:  "{name: q, caller: gdb, target: editor, syscall: ptrace_attach}",
			want:   "EPERM", layer: "yama",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := tc.kernel + "\n" + tasks + "checks:\n  - " + tc.check + "\n"
			s, err := scenario.Load("decider.yaml", []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			c := s.Checks[0]
			fast, ex := s.Evaluate(c, false), s.Evaluate(c, true)
			if fast.Result() != tc.want || fast.Layer != tc.layer {
				t.Errorf("%s = %s decided by %s, want %s decided by %s\n%s", c, fast.Result(), fast.Layer, tc.want, tc.layer, steps(ex))
			}
			if !same(fast, ex) {
				t.Errorf("fast path %s, explained %s", show(fast), show(ex))
			}
			if err := deciderStepped(ex); err != nil {
				t.Errorf("%v\n%s", err, steps(ex))
			}
		})
	}
}

// deciderStepped checks that an explained decision names a layer that
// took part: an allowed, unmasked answer has a pass or allow step of its
// layer and a denied or masked one a deny step of it (masking follows a
// failed READ check). A layer whose only steps are skips never decides.
func deciderStepped(d kernel.Decision) error {
	want := map[kernel.Outcome]bool{kernel.Pass: true, kernel.Allow: true}
	if !d.Allowed || d.Masked {
		want = map[kernel.Outcome]bool{kernel.Deny: true}
	}
	var outcomes []kernel.Outcome
	for _, s := range d.Steps {
		if s.Layer == d.Layer {
			if want[s.Outcome] {
				return nil
			}
			outcomes = append(outcomes, s.Outcome)
		}
	}
	return fmt.Errorf("%s decided by %s, whose steps are %v", d.Result(), d.Layer, outcomes)
}

// Property 8: the layer that decides took part in the decision — it is
// never a module that skipped the question — for every entry, system
// call and mode in random worlds (with Landlock and Yama in either
// order), PTRACE_TRACEME included.
func TestPropertyDeciderTookPart(t *testing.T) {
	as := allAccesses()
	rapid.Check(t, func(t *rapid.T) {
		p := genWorld(nil, nil).Draw(t, "world")
		if rapid.Bool().Draw(t, "lsm.reversed") && len(p.w.LSMs) == 3 {
			p.w.LSMs[1], p.w.LSMs[2] = p.w.LSMs[2], p.w.LSMs[1]
		}
		pairs(p.w, func(c, tg *kernel.Task) {
			for _, a := range as {
				d := a.eval(p.w, c, tg, true)
				if err := deciderStepped(d); err != nil {
					t.Fatalf("%s -> %s %s: %v\n%s", c.Name, tg.Name, a, err, steps(d))
				}
				if fast := a.eval(p.w, c, tg, false); !same(fast, d) {
					t.Fatalf("%s -> %s %s: fast path %s, explained %s", c.Name, tg.Name, a, show(fast), show(d))
				}
			}
		})
	})
}
