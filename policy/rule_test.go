package policy

import "testing"

// TestDecisionRule: the deciding rule of a decision, on the fast path,
// is the first granting allow rule, or the first refusing deny/protect
// rule, or NoRule for a default denial.
func TestDecisionRule(t *testing.T) {
	p := mustLoad(t, `subject s { uid alice; }
target t { uid bob; }
target app { uid alice; }
allow s * : read { status io };
allow s t : read { status io limits };
deny s t : read { io };
protect app : read { limits };
allow s app : read { limits environ };
auditallow s * : read { status };
`)
	bobT := &Target{Process: Process{UID: 1001, GID: 1001}, Dumpable: true}
	aliceT := &Target{Process: Process{UID: 1000, GID: 1000}, Dumpable: true}
	secret := &Target{Process: Process{UID: 1001, GID: 1001}, Dumpable: false}
	for _, tc := range []struct {
		name    string
		t       *Target
		it      Item
		allowed bool
		line    int // 0: NoRule
	}{
		{"first allow in file order", bobT, ItemStatus, true, 4},
		{"deny beats allow, names the deny", bobT, ItemIO, false, 6},
		{"only the second allow grants", bobT, ItemLimits, true, 5},
		{"protect beats allow", aliceT, ItemLimits, false, 7},
		{"allow on another target", aliceT, ItemEnviron, true, 8},
		{"default denial", bobT, ItemMaps, false, 0},
		{"non-dumpable: default denial", secret, ItemStatus, false, 0},
		{"non-dumpable, but a deny applies", secret, ItemIO, false, 6},
		{"outside the vocabulary", bobT, numItems + 3, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range 2 { // a miss, then a cache hit
				d := p.Decide(alice, tc.t, 0, tc.it)
				if d.Allowed != tc.allowed {
					t.Fatalf("Allowed = %v, want %v", d.Allowed, tc.allowed)
				}
				ref, ok := p.Rule(d.Rule)
				switch {
				case tc.line == 0 && (d.Rule != NoRule || ok):
					t.Errorf("Rule = %d (%v), want NoRule", d.Rule, ref)
				case tc.line != 0 && (!ok || ref.Pos.Line != tc.line):
					t.Errorf("Rule = %d (%v, ok %v), want the rule on line %d", d.Rule, ref, ok, tc.line)
				}
			}
		})
	}
	if n := p.NumRules(); n != 6 {
		t.Errorf("NumRules = %d, want 6", n)
	}
	if _, ok := p.Rule(RuleID(p.NumRules())); ok {
		t.Error("Rule(NumRules()) is ok")
	}
}
