package bpflsm

import (
	"math/rand/v2"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/internal/testenv"
	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/bpf"
)

// randomRuleSet draws a valid rule set: up to 12 classes of up to three
// clauses over a few ids and executables, so that random processes fall
// in some of them, and up to 20 rules.
func randomRuleSet(r *rand.Rand, exes []kernel.FileID) *bpf.RuleSet {
	rs := &bpf.RuleSet{Generation: r.Uint64(), ExemptCgroup: r.Uint64N(3)}
	var used [7]int
	for range 1 + r.IntN(12) {
		if r.IntN(3) == 0 {
			// A class of one value: its rules are hashed.
			var cl bpf.Clause
			switch r.IntN(3) {
			case 0:
				cl = bpf.Clause{Kind: bpf.KindUID, IDs: []bpf.IDRange{{Lo: uint32(r.IntN(6)), Hi: 0}}}
			case 1:
				cl = bpf.Clause{Kind: bpf.KindGID, IDs: []bpf.IDRange{{Lo: uint32(r.IntN(6)), Hi: 0}}}
			default:
				cl = bpf.Clause{Kind: bpf.KindExe, Exes: []kernel.FileID{exes[r.IntN(len(exes))]}}
			}
			if cl.Kind != bpf.KindExe {
				cl.IDs[0].Hi = cl.IDs[0].Lo
			}
			rs.Classes = append(rs.Classes, bpf.Class{Clauses: []bpf.Clause{cl}})
			continue
		}
		var c bpf.Class
		var positive [7]bool
		for range r.IntN(4) {
			cl := bpf.Clause{Kind: bpf.Kind(r.IntN(7)), Not: r.IntN(3) == 0}
			if !cl.Not && positive[cl.Kind] {
				continue
			}
			limit := bpf.MaxRanges
			switch cl.Kind {
			case bpf.KindExe:
				limit = bpf.MaxExes
			case bpf.KindCgroup:
				limit = bpf.MaxCgroups
			}
			if used[cl.Kind]+2 > limit {
				continue
			}
			for range 1 + r.IntN(2) {
				switch cl.Kind {
				case bpf.KindExe:
					cl.Exes = append(cl.Exes, exes[r.IntN(len(exes))])
				case bpf.KindCgroup:
					cl.Cgroups = append(cl.Cgroups, randomCgroupSels[r.IntN(len(randomCgroupSels))])
				case bpf.KindCap:
					cl.Caps |= kernel.CapsOf(kernel.Cap(r.IntN(4)))
				default:
					lo := uint32(r.IntN(6))
					cl.IDs = append(cl.IDs, bpf.IDRange{Lo: lo, Hi: lo + uint32(r.IntN(3))})
				}
				used[cl.Kind]++
			}
			positive[cl.Kind] = positive[cl.Kind] || !cl.Not
			c.Clauses = append(c.Clauses, cl)
		}
		rs.Classes = append(rs.Classes, c)
	}
	for range r.IntN(21) {
		rs.Rules = append(rs.Rules, bpf.Rule{Subject: r.IntN(len(rs.Classes)+1) - 1, Target: r.IntN(len(rs.Classes)), Access: bpf.Access(r.IntN(2))})
	}
	return rs
}

// randomCgroupSels and randomCgroups: selectors and cgroup paths some of
// which they select.
var (
	randomCgroupSels = []bpf.CgroupSel{
		{Parent: 1, Level: 1, Name: "a", Self: true},
		{Parent: 1, Level: 1, Name: "a", Below: true},
		{Parent: 2, Level: 2, Name: "b", Self: true, Below: true},
		{Root: true},
	}
	randomCgroups = [][]kernel.CgroupNode{
		{{ID: 1}},
		{{ID: 1}, {ID: 2, Name: "a"}},
		{{ID: 1}, {ID: 2, Name: "a"}, {ID: 3, Name: "b"}},
		{{ID: 1}, {ID: 2, Name: "a"}, {ID: 3, Name: "b"}, {ID: 4, Name: "c"}},
		{{ID: 1}, {ID: 5, Name: "b"}},
	}
)

func randomMatch(r *rand.Rand, exes []kernel.FileID) bpf.Match {
	m := bpf.Match{EUID: uint32(r.IntN(9)), EGID: uint32(r.IntN(9))}
	for range r.IntN(bpf.MaxGroups + 2) {
		m.Groups = append(m.Groups, uint32(r.IntN(9)))
	}
	if i := r.IntN(len(exes) + 1); i < len(exes) {
		m.Exe = &exes[i]
	}
	if i := r.IntN(len(randomCgroups) + 1); i < len(randomCgroups) {
		m.Cgroup = randomCgroups[i]
	}
	m.PIDNS = uint32(r.IntN(7)) // 0: unknown
	m.CapPermitted = kernel.CapSet(r.IntN(16))
	return m
}

// TestDecodeRoundTrip checks that the rule set read back from the
// program's layout decides as the one encoded: the same classes for
// every process, the same answer for every pair and access.
func TestDecodeRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(16, 4))
	exes := []kernel.FileID{{Dev: kernel.MkDev(8, 1), Ino: 42}, {Dev: kernel.MkDev(8, 1), Ino: 43}, {Dev: kernel.MkDev(0, 30), Ino: 42}}
	for i := range 300 {
		rs := randomRuleSet(r, exes)
		v, err := encode(rs, 1)
		if err != nil {
			t.Fatalf("rule set %d: %v", i, err)
		}
		back, err := decode(v.val, v.pairs)
		if err != nil {
			t.Fatalf("rule set %d: decode: %v", i, err)
		}
		if back.Generation != rs.Generation || back.ExemptCgroup != rs.ExemptCgroup {
			t.Fatalf("rule set %d: read back generation %d, exempt %d", i, back.Generation, back.ExemptCgroup)
		}
		if err := back.Validate(); err != nil {
			t.Fatalf("rule set %d: read back invalid: %v", i, err)
		}
		for range 50 {
			s, tg := randomMatch(r, exes), randomMatch(r, exes)
			for _, a := range []bpf.Access{bpf.Read, bpf.Attach} {
				if d1, d2 := rs.Decide(s, tg, a), back.Decide(s, tg, a); (d1 == nil) != (d2 == nil) {
					t.Fatalf("rule set %d: %+v -> %+v %s: denied %v, read back %v", i, s, tg, a, d1 != nil, d2 != nil)
				}
			}
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(v *ptraceRuleset)
	}{
		{"classes not a prefix", func(v *ptraceRuleset) { v.Classes = 0b101 }},
		{"protect past the classes", func(v *ptraceRuleset) { v.Protect[1] = 0b1000 }},
		{"a row past the classes", func(v *ptraceRuleset) { v.Deny[0][5] = 1 }},
		{"a row naming no class", func(v *ptraceRuleset) { v.Deny[1][0] = 0b10000 }},
		{"too many ranges", func(v *ptraceRuleset) { v.Nuid = bpf.MaxRanges + 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := &ptraceRuleset{Classes: 0b111}
			tc.set(v)
			if rs, err := decode(v, nil); err == nil {
				t.Errorf("decoded %+v", rs)
			}
		})
	}
}

// TestCurrent pins a rule-set map on a bpffs of the test's own (no
// program: this machine refuses LSM programs, not maps) and reads it
// back as check, explain and the broker's model do.
func TestCurrent(t *testing.T) {
	if rs, err := Current(t.TempDir() + "/none"); rs != nil || err != nil {
		t.Fatalf("nothing pinned: %v, %v", rs, err)
	}
	testenv.RequireRoot(t, "creating BPF maps and mounting bpffs need CAP_SYS_ADMIN")
	dir := t.TempDir()
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mount bpffs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	rs := &bpf.RuleSet{
		Classes: []bpf.Class{
			{Name: "agent", Clauses: []bpf.Clause{{Kind: bpf.KindExe, Exes: []kernel.FileID{{Dev: kernel.MkDev(8, 1), Ino: 42}}}}},
			{Name: "others", Clauses: []bpf.Clause{{Kind: bpf.KindUID, Not: true, IDs: []bpf.IDRange{{Lo: 0, Hi: 0}}}, {Kind: bpf.KindUID, Not: true, IDs: []bpf.IDRange{{Lo: 7, Hi: 9}}}}},
		},
		Rules:      []bpf.Rule{{Subject: -1, Target: 0, Access: bpf.Read}, {Subject: 1, Target: 0, Access: bpf.Attach}},
		Generation: 12, ExemptCgroup: 77,
	}
	if err := PinRuleSet(rs, dir); err != nil {
		t.Fatal(err)
	}
	got, err := Current(dir)
	if err != nil {
		t.Fatal(err)
	}
	// The rule of class bits first (its classes have bits: others,
	// then agent), then the hashed protect rule, with its keyed class.
	want := []string{"{not uid 0 7-9}", "{exe dev 8:1 ino 42}", "{exe dev 8:1 ino 42}"}
	if len(got.Classes) != len(want) {
		t.Fatalf("classes read back: %+v", got.Classes)
	}
	for i, c := range got.Classes {
		if c.Name != want[i] {
			t.Errorf("class %d read back as %s, want %s", i, c.Name, want[i])
		}
	}
	if len(got.Rules) != 2 || got.Rules[0].Text != "deny {not uid 0 7-9} {exe dev 8:1 ino 42} : attach" || got.Rules[1].Text != "protect {exe dev 8:1 ino 42} : read" {
		t.Errorf("rules read back: %+v", got.Rules)
	}
	if got.Generation != 12 || got.ExemptCgroup != 77 {
		t.Errorf("read back generation %d, exempt %d", got.Generation, got.ExemptCgroup)
	}
}
