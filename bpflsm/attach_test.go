package bpflsm

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/procgate/procgate/internal/testenv"
	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/bpf"
)

// TestEncode checks the rule set's layout for the program: each clause's
// values carry its class's bit in the positive or negative mask, each
// rule its target's bit in its subject's row or the protect mask.
func TestEncode(t *testing.T) {
	exe := kernel.FileID{Dev: kernel.MkDev(8, 1), Ino: 42}
	rs := &bpf.RuleSet{
		Classes: []bpf.Class{
			{Name: "users", Clauses: []bpf.Clause{{Kind: bpf.KindUID, IDs: []bpf.IDRange{{Lo: 1000, Hi: 1999}}}}},
			{Name: "not-root", Clauses: []bpf.Clause{{Kind: bpf.KindUID, Not: true, IDs: []bpf.IDRange{{Lo: 0, Hi: 0}}}}},
			{Name: "wheel", Clauses: []bpf.Clause{{Kind: bpf.KindGroup, IDs: []bpf.IDRange{{Lo: 10, Hi: 10}}}}},
			{Name: "agent", Clauses: []bpf.Clause{{Kind: bpf.KindExe, Exes: []kernel.FileID{exe}}, {Kind: bpf.KindGID, IDs: []bpf.IDRange{{Lo: 5, Hi: 6}}}}},
		},
		Rules: []bpf.Rule{
			{Subject: -1, Target: 3, Access: bpf.Read},
			{Subject: 2, Target: 0, Access: bpf.Attach},
			{Subject: 2, Target: 1, Access: bpf.Attach},
		},
		Generation: 7, ExemptCgroup: 99,
	}
	enc, err := encode(rs, 3)
	if err != nil {
		t.Fatal(err)
	}
	v := enc.val
	// The classes' bits, in the order the rules name them.
	l := rs.Layout()
	b := func(classes ...int) uint64 {
		var m uint64
		for _, c := range classes {
			m |= 1 << l.Bit[c]
		}
		return m
	}
	checks := []struct {
		what      string
		got, want uint64
	}{
		{"classes", v.Classes, 0b1111},
		{"uid positive", v.Pos[bpf.KindUID], b(0)},
		{"uid negative", v.Neg[bpf.KindUID], b(1)},
		{"group positive", v.Pos[bpf.KindGroup], b(2)},
		{"exe positive", v.Pos[bpf.KindExe], b(3)},
		{"gid positive", v.Pos[bpf.KindGID], b(3)},
		{"uid entries", uint64(v.Nuid), 2},
		{"exe entry", v.Exe[0].Dev<<32 ^ v.Exe[0].Ino, exe.Dev<<32 ^ exe.Ino},
		{"gid range", uint64(v.Gid[0].Lo)<<32 | uint64(v.Gid[0].Hi), 5<<32 | 6},
		{"protect read", v.Protect[bpf.Read], b(3)},
		{"protect attach", v.Protect[bpf.Attach], 0},
		{"wheel's attach row", v.Deny[bpf.Attach][l.Bit[2]], b(0, 1)},
		{"wheel's read row", v.Deny[bpf.Read][l.Bit[2]], 0},
		{"no hashed rules", uint64(v.PairKinds), 0},
		{"epoch", v.Epoch, 3},
		{"exempt cgroup", v.ExemptCgroup, 99},
		{"generation", v.Generation, 7},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %#x, want %#x", c.what, c.got, c.want)
		}
	}
	rs.Classes = append(rs.Classes, bpf.Class{Name: "bad", Clauses: []bpf.Clause{{Kind: bpf.KindUID, IDs: []bpf.IDRange{{Lo: 2, Hi: 1}}}}})
	if _, err := encode(rs, 1); err == nil {
		t.Error("an invalid rule set encoded")
	}
}

// TestAttachHere attaches a rule set on the running kernel. Where the
// kernel refuses LSM programs (the BPF LSM inactive, or loading refused
// as on the development machine, which lists bpf but answers EPERM to
// root with every capability), Attach must fail with ErrUnsupported and
// a message naming the cause, and leave nothing pinned; where it
// accepts them, the program must attach, report itself and detach. The
// program's decisions are verified in the VMs (the bpf step of
// verify-vm), where the kernel is ours.
func TestAttachHere(t *testing.T) {
	testenv.RequireRoot(t, "loading a BPF LSM program needs CAP_SYS_ADMIN and CAP_BPF")
	rs := &bpf.RuleSet{
		Classes: []bpf.Class{{Name: "nobody-here", Clauses: []bpf.Clause{{Kind: bpf.KindUID, IDs: []bpf.IDRange{{Lo: 4242424, Hi: 4242424}}}}}},
		Rules:   []bpf.Rule{{Subject: -1, Target: 0, Access: bpf.Attach, Text: "protect nobody-here : attach"}},
	}
	dir := t.TempDir() + "/pin"
	err := Attach(rs, dir)
	if err != nil {
		t.Logf("attach: %v", err)
		if !errors.Is(err, ErrUnsupported) {
			t.Fatalf("attach failed without naming the kernel as the cause: %v", err)
		}
		msg := err.Error()
		if !strings.Contains(msg, "lsm=") && !strings.Contains(msg, "refused") {
			t.Errorf("the refusal does not say what to change: %v", err)
		}
		if _, serr := os.Stat(dir + "/" + pinAccessCheck); serr == nil {
			t.Errorf("a refused attach left a pinned link")
		}
		return
	}
	t.Cleanup(func() { _ = Detach(dir) })
	st, err := Stat(dir)
	if err != nil || !st.Attached || st.Classes != 1 {
		t.Fatalf("stat after attach: %+v, %v", st, err)
	}
	if err := Reload(rs, dir); err != nil {
		t.Errorf("reload: %v", err)
	}
	if err := Detach(dir); err != nil {
		t.Fatalf("detach: %v", err)
	}
	if st, _ := Stat(dir); st.Attached {
		t.Errorf("still attached after detach")
	}
}
