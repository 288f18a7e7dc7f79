package scenario_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/procgate/procgate/scenario"
)

// FuzzLoad feeds arbitrary bytes to Load. Load must never panic; a
// rejected input must come back as a non-empty ErrorList whose every
// element carries the file name, a position (line and column ≥ 1) and a
// message; an accepted input must be a valid world whose every check can be
// evaluated, fast and explained, with the same answer.
//
// The seed corpus lives in testdata/fuzz/FuzzLoad; the example scenarios of
// the repository are added as seeds too.
func FuzzLoad(f *testing.F) {
	examples, _ := filepath.Glob(filepath.Join("..", "examples", "*.yaml"))
	for _, p := range examples {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		s, err := scenario.Load("fuzz.yaml", src)
		if err != nil {
			var list scenario.ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error is %T, want scenario.ErrorList: %v", err, err)
			}
			if len(list) == 0 {
				t.Fatal("empty ErrorList returned as an error")
			}
			for _, e := range list {
				if e == nil {
					t.Fatal("nil element in ErrorList")
				}
				if e.File != "fuzz.yaml" || e.Line < 1 || e.Col < 1 || e.Msg == "" {
					t.Fatalf("badly positioned error %+v", *e)
				}
			}
			return
		}
		if s == nil || s.World == nil {
			t.Fatal("Load returned neither a scenario nor an error")
		}
		if err := s.World.Validate(); err != nil {
			t.Fatalf("loaded world is invalid: %v", err)
		}
		for _, c := range s.Checks {
			if c.Caller == nil || c.Target == nil {
				t.Fatalf("check %q without caller or target", c.Name)
			}
			fast := scenario.Evaluate(s.World, c, false)
			ex := scenario.Evaluate(s.World, c, true)
			if fast.Allowed != ex.Allowed || fast.Errno != ex.Errno || fast.Masked != ex.Masked || fast.Layer != ex.Layer {
				t.Fatalf("%s: fast %s/%s, explained %s/%s", c, fast.Result(), fast.Layer, ex.Result(), ex.Layer)
			}
			_ = c.Met(fast)
			_ = c.String()
		}
	})
}
