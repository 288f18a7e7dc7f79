package gate_test

import (
	"strings"
	"testing"

	"github.com/procgate/procgate/gate"
	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/bpf"
	"github.com/procgate/procgate/policy"
	"github.com/procgate/procgate/scenario"
)

// TestViewBPF: procgate's BPF program is part of what the kernel gives a
// caller directly — a caller it refuses does not get the item from the
// gate on that ground — but not a bound on what the gate's policy
// grants (the program exempts the gate's reader for that). When its
// rule set could not be read, the kernel's answer fails closed.
func TestViewBPF(t *testing.T) {
	s, err := scenario.Load("bpf.yaml", []byte(`kernel:
  release: "6.12.0"
  lsm: [capability, bpf]
tasks:
  - {name: init, pid: 1, uid: 0, gid: 0}
  - {name: monitor, pid: 100, parent: init, uid: 0, gid: 0}
  - {name: agent, pid: 200, parent: init, uid: 4242, gid: 4242}
`))
	if err != nil {
		t.Fatal(err)
	}
	w := s.World
	monitor, agent := w.TaskByPID(100), w.TaskByPID(200)
	pol := compile(t, "subject root { uid 0; }\ntarget guarded { uid 4242; }\nallow root guarded : read { environ };\n")
	subj := &policy.Subject{Process: policy.Process{PID: 100, UID: 0, GID: 0}}
	tgt := &policy.Target{Process: policy.Process{PID: 200, UID: 4242}, Dumpable: true}
	rules := &bpf.RuleSet{
		Classes: []bpf.Class{{Name: "guarded", Clauses: []bpf.Clause{{Kind: bpf.KindUID, IDs: []bpf.IDRange{{Lo: 4242, Hi: 4242}}}}}},
		Rules:   []bpf.Rule{{Subject: -1, Target: 0, Access: bpf.Read, Text: "protect guarded : read"}},
	}
	for _, tc := range []struct {
		name       string
		module     bool
		unmodelled []string
		reason     string
	}{
		{"rule set read", true, nil, "(bpf)"},
		{"rule set unreadable", false, []string{"bpf"}, "(bpf: rule set unread)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w.LSMs = []kernel.LSM{w.LSMs[0]}
			if tc.module {
				w.LSMs = append(w.LSMs, &bpf.Module{Rules: rules})
			}
			v := gate.ComputeView(w, tc.unmodelled, monitor, agent)
			if k := v.Kernel[policy.ItemMaps]; k.Allowed || !strings.HasPrefix(string(k.Layer), "bpf") {
				t.Errorf("the kernel's answer for maps: %+v, want a refusal by bpf", k)
			}
			if k := v.Kernel[policy.ItemStatus]; !k.Allowed {
				t.Errorf("status (no ptrace check): %+v", k)
			}
			if m := v.MAC[policy.ItemEnviron]; m.Denied {
				t.Errorf("procgate's program bounds the policy's grants: %+v", m)
			}
			if got := gate.Decide(pol, subj, tgt, 0, v, policy.ItemEnviron); !got.Allowed {
				t.Errorf("environ, granted by the policy: %+v", got)
			}
			if got := gate.Decide(pol, subj, tgt, 0, v, policy.ItemMaps); got.Allowed || !strings.Contains(got.Reason, tc.reason) {
				t.Errorf("maps, granted by nothing: %+v", got)
			}
			self := gate.ComputeView(w, tc.unmodelled, agent, agent)
			if k := self.Kernel[policy.ItemMaps]; !k.Allowed {
				t.Errorf("a process's own maps: %+v", k)
			}
		})
	}
}
