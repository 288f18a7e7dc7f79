package policy

import (
	"errors"
	"testing"
)

// FuzzParse checks that Parse and Compile never panic, that every failure
// is positioned, and that whatever loads answers questions the same way
// through the cache and through Explain.
func FuzzParse(f *testing.F) {
	f.Add(brokerPolicy)
	f.Add(string(DefaultSource))
	f.Add("subject a { uid 0-10; not group 5; label \"x y\"; }\ntarget b { cgroup /a/**; container any; }\nallow a { b -b } : read * when same_uid, not descendant;")
	f.Add("allow * * : attach { mem } when nondumpable;\nprotect * : read;\nneverallow * * : attach;")
	f.Fuzz(func(t *testing.T, src string) {
		file, err := Parse("f.pol", []byte(src))
		if err != nil {
			var l ErrorList
			if !errors.As(err, &l) || len(l) == 0 {
				t.Fatalf("error is not an ErrorList: %v", err)
			}
			for _, e := range l {
				if e.Line < 1 || e.Col < 1 || e.Msg == "" {
					t.Fatalf("bad error %v", e)
				}
			}
			return
		}
		p, err := CompileWith(testResolver, file)
		if err != nil {
			var l ErrorList
			var ne *NeverallowError
			if !errors.As(err, &l) && !errors.As(err, &ne) {
				t.Fatalf("compile error of unknown type: %v", err)
			}
			return
		}
		for _, s := range []*Subject{alice, lsofPod, {}} {
			for _, tg := range []*Target{appA, agent, sshdA} {
				for it := range numItems {
					d := p.Decide(s, tg, RelDescendant, it)
					if e := p.Explain(s, tg, RelDescendant, it); e.Decision != d {
						t.Fatalf("Decide %+v != Explain %+v for %s", d, e.Decision, it)
					}
				}
			}
		}
	})
}
