package suggest

import "testing"

func TestNearest(t *testing.T) {
	names := []string{"environ", "maps", "mem", "sys_ptrace"}
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"envron", "environ", true},
		{"map", "maps", true},
		{"sys_ptrac", "sys_ptrace", true},
		{"completely-different", "", false},
	} {
		got, ok := Nearest(tc.in, names, 3)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Nearest(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	if d := Distance("kitten", "sitting"); d != 3 {
		t.Errorf("Distance = %d", d)
	}
	if s := DidYouMean("mapz", names, 2); s != ` (did you mean "maps"?)` {
		t.Errorf("DidYouMean = %q", s)
	}
}
