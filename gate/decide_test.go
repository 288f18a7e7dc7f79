package gate_test

import (
	"strings"
	"testing"

	"github.com/procgate/procgate/gate"
	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/policy"
	"github.com/procgate/procgate/scenario"
)

const gidProcgate = 600 // the group procgate, for the default policy

// defaultPolicy is the shipped default policy, with group procgate.
func defaultPolicy(t *testing.T) *policy.Policy {
	t.Helper()
	f, err := policy.Parse(policy.DefaultName, policy.DefaultSource)
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.CompileWith(policy.MapResolver{Groups: map[string]uint32{"procgate": gidProcgate}}, f)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func compile(t testing.TB, src string) *policy.Policy {
	t.Helper()
	p, err := policy.Load("t.pol", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// view is a View in which the kernel refuses every item with errno at
// layer, the MAC layers allow, and the given items are overridden.
func view(dumpable bool, errno kernel.Errno, layer kernel.Layer, set map[gate.Item]gate.KernelAnswer, mac map[gate.Item]gate.MACAnswer) *gate.View {
	n := len(policy.Items())
	v := &gate.View{Dumpable: dumpable, Kernel: make([]gate.KernelAnswer, n), MAC: make([]gate.MACAnswer, n)}
	for i := range v.Kernel {
		v.Kernel[i] = gate.KernelAnswer{Errno: errno, Layer: layer}
	}
	for it, a := range set {
		v.Kernel[it] = a
	}
	for it, a := range mac {
		v.MAC[it] = a
	}
	return v
}

// TestDecide is the one decision, without processes: each case names
// the layer that decided and what the caller is told.
func TestDecide(t *testing.T) {
	def := defaultPolicy(t)
	member := &policy.Subject{Process: policy.Process{PID: 10, Comm: "agent", UID: 2000, GID: 2000, Groups: []uint32{gidProcgate}}}
	other := &policy.Subject{Process: policy.Process{PID: 11, Comm: "shell", UID: 2001, GID: 2001}}
	root := func(dumpable bool) *policy.Target {
		return &policy.Target{Process: policy.Process{PID: 20, Comm: "sshd"}, Dumpable: dumpable}
	}
	masked := map[gate.Item]gate.KernelAnswer{
		policy.ItemStat:     {Allowed: true, Masked: true, Layer: kernel.LayerIDs},
		policy.ItemStatFull: {Allowed: true, Masked: true, Layer: kernel.LayerIDs},
	}
	landlock := gate.MACAnswer{Denied: true, Module: "landlock", Reason: "landlock would deny the caller read_fscreds access (EPERM)"}
	denyIO := compile(t, "subject everyone { }\ntarget any { }\nallow everyone any : read { io };\ndeny everyone any : read { io };\n")
	attachRule := compile(t, "subject everyone { }\ntarget any { }\nallow everyone any : attach;\n")
	tests := []struct {
		name   string
		pol    *policy.Policy
		s      *policy.Subject
		t      *policy.Target
		v      *gate.View
		it     gate.Item
		want   gate.Verdict
		rule   string   // the name of want.Rule, when a rule decided
		reason []string // substrings of the reason
		not    []string // what the reason must not say
	}{
		{
			name: "member, non-dumpable target's io: the target's non-dumpability decided",
			pol:  def, s: member, t: root(false), v: view(false, kernel.EACCES, kernel.LayerDAC, nil, nil), it: policy.ItemIO,
			want:   gate.Verdict{Errno: kernel.EACCES, Source: gate.SourcePolicy, Rule: policy.NoRule, Audit: true},
			reason: []string{"policy: the target is not dumpable, and allow@default.pol:25 grants read { io } only to dumpable targets", " and the kernel would refuse the caller (dac)"},
			not:    []string{"no rule grants"},
		},
		{
			name: "member, dumpable target's io: granted by the allow rule",
			pol:  def, s: member, t: root(true), v: view(true, kernel.EACCES, kernel.LayerDAC, nil, nil), it: policy.ItemIO,
			want: gate.Verdict{Allowed: true, Source: gate.SourcePolicy}, rule: "allow@default.pol:25",
		},
		{
			name: "member, environ: no rule, the kernel refuses",
			pol:  def, s: member, t: root(true), v: view(true, kernel.EACCES, kernel.LayerDAC, nil, nil), it: policy.ItemEnviron,
			want:   gate.Verdict{Errno: kernel.EACCES, Source: gate.SourcePolicy, Rule: policy.NoRule, Audit: true},
			reason: []string{"policy: no rule grants read { environ } and the kernel would refuse the caller (dac)"},
		},
		{
			name: "non-member, stat_full of a stat the kernel masks: masked, not dac",
			pol:  def, s: other, t: root(true), v: view(true, kernel.EACCES, kernel.LayerDAC, masked, nil), it: policy.ItemStatFull,
			want:   gate.Verdict{Errno: kernel.EACCES, Source: gate.SourcePolicy, Rule: policy.NoRule, Audit: true},
			reason: []string{"policy: no rule grants read { stat_full }", "the kernel would show the caller stat only masked", "(its [PT] fields zeroed: ids)"},
			not:    []string{"dac", "refuse"},
		},
		{
			name: "non-member, stat: the kernel serves it masked",
			pol:  def, s: other, t: root(true), v: view(true, kernel.EACCES, kernel.LayerDAC, masked, nil), it: policy.ItemStat,
			want: gate.Verdict{Allowed: true, Masked: true, Source: gate.SourceKernel, Rule: policy.NoRule},
		},
		{
			name: "member, stat of a dumpable target: unmasked, stat_full is granted",
			pol:  def, s: member, t: root(true), v: view(true, kernel.EACCES, kernel.LayerDAC, masked, nil), it: policy.ItemStat,
			want: gate.Verdict{Allowed: true, Source: gate.SourceKernel, Rule: policy.NoRule},
		},
		{
			name: "the kernel allows directly: its own process",
			pol:  def, s: other, t: root(true), v: view(true, kernel.OK, kernel.LayerEntry, map[gate.Item]gate.KernelAnswer{policy.ItemEnviron: {Allowed: true, Layer: kernel.LayerMM}}, nil), it: policy.ItemEnviron,
			want: gate.Verdict{Allowed: true, Source: gate.SourceKernel, Rule: policy.NoRule},
		},
		{
			name: "hidepid's ENOENT passes through",
			pol:  def, s: other, t: root(true), v: view(true, kernel.ENOENT, kernel.LayerHidepid, nil, nil), it: policy.ItemIO,
			want:   gate.Verdict{Errno: kernel.ENOENT, Source: gate.SourcePolicy, Rule: policy.NoRule, Audit: true},
			reason: []string{"the kernel would refuse the caller (hidepid)"},
		},
		{
			name: "a model EBADF passes through, unchanged",
			pol:  def, s: other, t: root(true), v: view(true, kernel.EBADF, kernel.LayerSyscall, nil, nil), it: policy.ItemFd,
			want: gate.Verdict{Errno: kernel.EBADF, Source: gate.SourcePolicy, Rule: policy.NoRule, Audit: true},
		},
		{
			name: "a no-mm ESRCH passes through",
			pol:  def, s: other, t: root(false), v: view(false, kernel.ESRCH, kernel.LayerMM, nil, nil), it: policy.ItemEnviron,
			want:   gate.Verdict{Errno: kernel.ESRCH, Source: gate.SourcePolicy, Rule: policy.NoRule, Audit: true},
			reason: []string{"no rule grants read { environ }", "(mm)"},
		},
		{
			name: "the caller's MAC layers refuse a grant",
			pol:  def, s: member, t: root(true), v: view(true, kernel.EACCES, kernel.LayerDAC, nil, map[gate.Item]gate.MACAnswer{policy.ItemIO: landlock}), it: policy.ItemIO,
			want: gate.Verdict{Errno: kernel.EACCES, Source: gate.SourceMAC, Audit: true}, rule: "allow@default.pol:25",
			reason: []string{"mac: landlock would deny"},
		},
		{
			name: "a deny rule is named",
			pol:  denyIO, s: other, t: root(true), v: view(true, kernel.EACCES, kernel.LayerIDs, nil, nil), it: policy.ItemIO,
			want: gate.Verdict{Errno: kernel.EACCES, Source: gate.SourcePolicy, Audit: true}, rule: "deny@t.pol:4",
			reason: []string{"policy: deny@t.pol:4 refuses read { io } and the kernel would refuse the caller (ids)"},
		},
		{
			name: "attach-class without an attach rule",
			pol:  def, s: member, t: root(true), v: view(true, kernel.OK, kernel.LayerIDs, map[gate.Item]gate.KernelAnswer{policy.ItemMem: {Allowed: true}}, nil), it: policy.ItemMem,
			want:   gate.Verdict{Errno: kernel.EPERM, Source: gate.SourcePolicy, Rule: policy.NoRule, Audit: true},
			reason: []string{"policy: no attach rule grants attach-class item mem"},
		},
		{
			name: "attach of a non-dumpable target: the rule it misses is named",
			pol:  attachRule, s: other, t: root(false), v: view(false, kernel.EPERM, kernel.LayerDumpable, nil, nil), it: policy.ItemAttach,
			want:   gate.Verdict{Errno: kernel.EPERM, Source: gate.SourcePolicy, Rule: policy.NoRule, Audit: true},
			reason: []string{"the target is not dumpable, and allow@t.pol:3 grants attach only to dumpable targets"},
		},
		{
			name: "never served",
			pol:  def, s: member, t: root(true), v: view(true, kernel.OK, kernel.LayerEntry, nil, nil), it: policy.ItemAuxv,
			want:   gate.Verdict{Errno: kernel.ENOTSUP, Source: gate.SourceBroker, Rule: policy.NoRule, Audit: true},
			reason: []string{"the broker does not serve auxv"},
		},
		{
			name: "no target: denied, not a crash",
			pol:  def, s: member, t: nil, v: view(true, kernel.OK, kernel.LayerEntry, nil, nil), it: policy.ItemStatus,
			want: gate.Verdict{Errno: kernel.EINVAL, Source: gate.SourceBroker, Rule: policy.NoRule},
		},
		{
			name: "a view without answers: denied, not a crash",
			pol:  def, s: member, t: root(true), v: &gate.View{}, it: policy.ItemStatus,
			want: gate.Verdict{Errno: kernel.EINVAL, Source: gate.SourceBroker, Rule: policy.NoRule},
		},
		{
			name: "unknown item",
			pol:  def, s: member, t: root(true), v: view(true, kernel.OK, kernel.LayerEntry, nil, nil), it: gate.Item(200),
			want:   gate.Verdict{Errno: kernel.EINVAL, Source: gate.SourceBroker, Rule: policy.NoRule},
			reason: []string{"unknown item"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := gate.Decide(tc.pol, tc.s, tc.t, 0, tc.v, tc.it)
			if tc.s == nil || tc.t == nil || tc.v == nil || len(tc.v.Kernel) == 0 {
				tc.reason = append(tc.reason, "no subject, target or model answer")
			}
			if tc.rule != "" {
				ref, ok := tc.pol.Rule(got.Rule)
				if !ok || ref.String() != tc.rule {
					t.Errorf("rule %d (%v), want %s", got.Rule, ref, tc.rule)
				}
				tc.want.Rule = got.Rule
			}
			reason := got.Reason
			got.Reason = ""
			if got != tc.want {
				t.Errorf("Decide = %+v, want %+v", got, tc.want)
			}
			if (reason == "") != tc.want.Allowed {
				t.Errorf("reason %q for allowed=%v", reason, tc.want.Allowed)
			}
			for _, w := range tc.reason {
				if !strings.Contains(reason, w) {
					t.Errorf("reason %q lacks %q", reason, w)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(reason, w) {
					t.Errorf("reason %q says %q", reason, w)
				}
			}
		})
	}
}

// TestDecideOverWorld computes the view from a world read from a
// scenario file, as the report does, and decides with the default
// policy: a member of group procgate reading a non-dumpable root
// process's io is told the target's non-dumpability decided.
func TestDecideOverWorld(t *testing.T) {
	s, err := scenario.Load("world.yaml", []byte(`kernel:
  release: "6.18.44"
  lsm: [capability, landlock, yama]
  yama: {ptrace_scope: 1}
tasks:
  - {name: init, pid: 1, uid: 0, gid: 0}
  - {name: agent, pid: 100, parent: init, uid: 2000, gid: 2000, groups: [600]}
  - {name: sshd, pid: 200, parent: init, uid: 0, gid: 0, mm: {dumpable: 0, userns: init}}
  - {name: cron, pid: 300, parent: init, uid: 0, gid: 0}
`))
	if err != nil {
		t.Fatal(err)
	}
	w := s.World
	agent, sshd, cron := w.TaskByPID(100), w.TaskByPID(200), w.TaskByPID(300)
	pol := defaultPolicy(t)
	subj := &policy.Subject{Process: policy.Process{PID: 100, UID: 2000, GID: 2000, Groups: []uint32{gidProcgate}}}
	for _, tc := range []struct {
		target   *kernel.Task
		dumpable bool
		allowed  bool
		reason   string
	}{
		{sshd, false, false, "policy: the target is not dumpable, and allow@default.pol:25 grants read { io } only to dumpable targets (it does not say 'when nondumpable') and the kernel would refuse the caller (dac)"},
		{cron, true, true, ""},
	} {
		v := gate.ComputeView(w, nil, agent, tc.target)
		if v.Dumpable != tc.dumpable || v.Descendant {
			t.Errorf("%s: view dumpable %v descendant %v", tc.target.Name, v.Dumpable, v.Descendant)
		}
		tgt := &policy.Target{Process: policy.Process{PID: tc.target.PID}, Dumpable: v.Dumpable}
		got := gate.Decide(pol, subj, tgt, 0, v, policy.ItemIO)
		if got.Allowed != tc.allowed || got.Reason != tc.reason {
			t.Errorf("%s io: %+v, want allowed %v, reason %q", tc.target.Name, got, tc.allowed, tc.reason)
		}
	}
	// Unmodelled modules fail closed for a caller they confine.
	agent.AppArmor = "agent-profile"
	v := gate.ComputeView(w, []string{"apparmor"}, agent, cron)
	got := gate.Decide(pol, subj, &policy.Target{Process: policy.Process{PID: 300}, Dumpable: true}, 0, v, policy.ItemIO)
	if got.Allowed || got.Source != gate.SourceMAC || !strings.Contains(got.Reason, "apparmor: caller is confined by agent-profile") {
		t.Errorf("confined caller: %+v", got)
	}
}
