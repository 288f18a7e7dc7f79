package gate_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/procgate/procgate/bpflsm"
	"github.com/procgate/procgate/gate"
	"github.com/procgate/procgate/internal/testenv"
	"github.com/procgate/procgate/kernel/lsm/bpf"
	"github.com/procgate/procgate/live"
	"github.com/procgate/procgate/policy"
)

// TestGateBPFMirror: the gate reads procgate's BPF rule set through its
// mirror, mapped when the gate opens (before procgate serve's reader is
// confined), and follows it: a rule set that protects the target keeps
// its exe link from the caller (the kernel would refuse the caller; not
// maps or environ, which 6.15's mm_access gives root after a refused
// check), a reload that drops the protection serves it at once (the cached views
// of the old rule set are not used), and after a detach the gate models
// no program. Real pins in a bpffs of the test's own, a real target;
// nothing enforces the rule set (PinRuleSet).
func TestGateBPFMirror(t *testing.T) {
	testenv.RequireRoot(t, "pins BPF maps")
	sys := testenv.SysWithBPF(t, "capability,bpf")
	pinDir := filepath.Join(sys, strings.TrimPrefix(bpflsm.DefaultPinDir, "/sys/"))

	pid, _ := startHelper(t, false, 4242)
	protect := func(uid uint32) *bpf.RuleSet {
		return &bpf.RuleSet{
			Classes: []bpf.Class{{Name: "guarded", Clauses: []bpf.Clause{{Kind: bpf.KindUID, IDs: []bpf.IDRange{{Lo: uid, Hi: uid}}}}}},
			Rules:   []bpf.Rule{{Subject: -1, Target: 0, Access: bpf.Read, Text: "protect guarded : read"}},
		}
	}
	if err := bpflsm.PinRuleSet(protect(4242), pinDir); err != nil {
		t.Fatal(err)
	}
	mirror, err := live.OpenBPFMirror(live.Options{Sys: sys})
	if err != nil || mirror == nil {
		t.Fatalf("open the mirror: %v, %v", mirror, err)
	}
	t.Cleanup(func() { mirror.Close() })
	pol, err := policy.Load("t.pol", []byte("subject root { uid 0; }\ntarget any { }\nallow root any : read { status };\n"))
	if err != nil {
		t.Fatal(err)
	}
	g, err := gate.New(gate.Config{Policy: pol, Live: live.Options{Sys: sys, BPF: mirror}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	c, err := g.NewCaller(os.Getpid(), -1, 0, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	exe := func() *gate.Denial {
		t.Helper()
		r := readOne(t, g, c, []int{pid}, policy.ItemExe)[pid]
		if r == nil || r.Denial != nil || len(r.Items) != 1 {
			t.Fatalf("no answer for the target: %+v", r)
		}
		return r.Items[0].Denial
	}
	if d := exe(); d == nil || !strings.Contains(d.Reason, "(bpf)") {
		t.Errorf("exe of a protected process: %v, want a refusal by the kernel's bpf layer", d)
	}
	if d := exe(); d == nil {
		t.Error("exe of a protected process, from the cache: served")
	}
	var metrics strings.Builder
	if _, err := g.Metrics().WriteTo(&metrics); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(metrics.String(), "procgate_view_cache_hits_total 1\n") {
		t.Errorf("the second read did not come from the cache:\n%s", metrics.String())
	}
	if err := bpflsm.Reload(protect(4343), pinDir); err != nil {
		t.Fatal(err)
	}
	if d := exe(); d != nil {
		t.Errorf("exe after a reload that protects uid 4343 only: %v", d)
	}
	if err := bpflsm.Reload(protect(4242), pinDir); err != nil {
		t.Fatal(err)
	}
	if d := exe(); d == nil {
		t.Error("exe after a reload that protects it again: served")
	}
	if err := bpflsm.Detach(pinDir); err != nil {
		t.Fatal(err)
	}
	if d := exe(); d != nil {
		t.Errorf("exe after detach: %v", d)
	}
	if _, err := mirror.RuleSet(); err != bpflsm.ErrDetached {
		t.Errorf("the mirror after detach: %v, want ErrDetached", err)
	}
}
