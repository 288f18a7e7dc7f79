package policy

import "testing"

// TestSinglesOut: a caller named by an allow rule's subject class is
// singled out; `*`, a deny rule, an excluded class or a class the
// caller is not in do not single it out.
func TestSinglesOut(t *testing.T) {
	const src = `
subject readers { group 4242; }
subject ops { uid 1001; }
subject denied_ones { uid 1002; }
target any { }
allow * any : read { status };
allow readers any : read { io };
allow { readers -ops } any : read { fd };
deny denied_ones any : read { io };
`
	p := mustLoad(t, src)
	for _, c := range []struct {
		name string
		s    Subject
		want bool
	}{
		{"member of readers", Subject{Process: Process{UID: 5000, Groups: []uint32{4242}}}, true},
		{"nobody in particular", Subject{Process: Process{UID: 5000}}, false},
		{"named only by a deny", Subject{Process: Process{UID: 1002}}, false},
		{"named only as an exclusion", Subject{Process: Process{UID: 1001}}, false},
		{"excluded from one rule, named by another", Subject{Process: Process{UID: 1001, Groups: []uint32{4242}}}, true},
	} {
		if got := p.SinglesOut(&c.s); got != c.want {
			t.Errorf("%s: SinglesOut = %v, want %v", c.name, got, c.want)
		}
	}
	for _, src := range []string{
		"allow * * : read { status };\n",
		"subject everyone { }\nallow everyone * : read { status };\n",
	} {
		if mustLoad(t, src).SinglesOut(&Subject{Process: Process{UID: 5000}}) {
			t.Errorf("a rule for everyone singles out a caller:\n%s", src)
		}
	}
}

// TestGrantsAttach: only an allow rule with an attach-class item grants
// attach; a read rule, a deny of attach or a neverallow does not.
func TestGrantsAttach(t *testing.T) {
	for _, c := range []struct {
		src  string
		want bool
	}{
		{"allow * * : read { status };\n", false},
		{"deny * * : attach;\nallow * * : read { io };\n", false},
		{"allow * * : read { io };\nneverallow * * : attach;\n", false},
		{"allow * * : attach { mem };\n", true},
		{"allow * * : attach;\n", true},
	} {
		if got := mustLoad(t, c.src).GrantsAttach(); got != c.want {
			t.Errorf("GrantsAttach = %v, want %v:\n%s", got, c.want, c.src)
		}
	}
}
