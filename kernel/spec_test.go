package kernel_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/scenario"
)

// specDir holds one scenario per subtle case of the kernel specification
// (caseNN_*.yaml, §4) and per surprise observed on real kernels
// (sNN_*.yaml). Each file's header says what the case is about and where
// the kernel, not the written specification, decided the expectation.
const specDir = "testdata/spec"

// TestSpecCases runs every check of every spec scenario as its own subtest,
// named <file>/<check name>, and asserts the check's expectation. A failure
// prints the explained decision.
func TestSpecCases(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(specDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no scenarios in %s", specDir)
	}
	for _, path := range files {
		file := filepath.Base(path)
		t.Run(file, func(t *testing.T) {
			s := loadSpec(t, path)
			if len(s.Checks) == 0 {
				t.Fatal("the scenario has no checks")
			}
			for _, c := range s.Checks {
				t.Run(c.Name, func(t *testing.T) {
					if c.Expect == "" {
						t.Fatalf("%s:%d: check %q has no expect: every spec check must state its answer", file, c.Line, c.Name)
					}
					d := scenario.Evaluate(s.World, c, false)
					if c.Met(d) {
						return
					}
					t.Errorf("%s:%d: %s\n  got %s (layer %s), want %s\n%s",
						file, c.Line, c, d.Result(), d.Layer, c.Expect, story(s.World, c))
				})
			}
		})
	}
}

// TestSpecAudit asserts, for a few spec checks, whether the kernel would
// write an audit or log record: the scenario format has no key for it.
func TestSpecAudit(t *testing.T) {
	tests := []struct {
		file, check string
		audited     bool
	}{
		// Case 5 / §1.9: /proc/<pid>/stat passes NOAUDIT, which Landlock
		// honours; wchan does not, so the same denial is logged there.
		{"case29_landlock.yaml", "stat of the unsandboxed parent is masked", false},
		{"case29_landlock.yaml", "wchan of the unsandboxed parent is masked", true},
		{"case29_landlock.yaml", "sandboxed caller cannot attach to its parent", true},
		// Yama logs an ATTACH denial ("ptrace attach of ... was attempted by").
		{"case20_yama1_sibling.yaml", "PTRACE_ATTACH to a sibling", true},
		{"case20_yama1_sibling.yaml", "maps of a sibling", false},
		// Yama logs PTRACE_TRACEME denials unconditionally.
		{"case24_yama2.yaml", "child's PTRACE_TRACEME under an unprivileged parent", true},
		// Case 27: another uid's process fails at the id step with a
		// no-audit capability probe and logs nothing; a domain the caller
		// may not search logs the VFS denial (dir search).
		{"case27_selinux_audit.yaml", "stat of another uid's process is masked", false},
		{"case27_selinux_audit.yaml", "stat of a process in a domain ps may not search is EACCES", true},
	}
	loaded := map[string]*scenario.Scenario{}
	for _, tc := range tests {
		t.Run(tc.file+"/"+tc.check, func(t *testing.T) {
			s := loaded[tc.file]
			if s == nil {
				s = loadSpec(t, filepath.Join(specDir, tc.file))
				loaded[tc.file] = s
			}
			var c *scenario.Check
			for _, x := range s.Checks {
				if x.Name == tc.check {
					c = x
				}
			}
			if c == nil {
				t.Fatalf("no check %q in %s", tc.check, tc.file)
			}
			d := scenario.Evaluate(s.World, c, true)
			if got := len(d.Audit) > 0; got != tc.audited {
				t.Errorf("audited = %v (records %q), want %v\n%s", got, d.Audit, tc.audited, story(s.World, c))
			}
		})
	}
}

// loadSpec loads a spec scenario; any error fails the test.
func loadSpec(t *testing.T, path string) *scenario.Scenario {
	t.Helper()
	s, err := scenario.LoadFile(path)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return s
}

// story renders the explained decision: every step and audit record.
func story(w *kernel.World, c *scenario.Check) string {
	d := scenario.Evaluate(w, c, true)
	var b strings.Builder
	fmt.Fprintf(&b, "  explain (kernel %s): %s, layer %s\n", w.Release, d.Result(), d.Layer)
	for i, st := range d.Steps {
		fmt.Fprintf(&b, "  %2d. %-12s %-5s %s\n", i+1, st.Layer, st.Outcome, st.Reason)
	}
	for _, a := range d.Audit {
		fmt.Fprintf(&b, "  audit: %s\n", a)
	}
	return b.String()
}

// TestSpecFilesNamed keeps the directory tidy: every file is a case or a
// surprise, and every §4 case and S1–S12 surprise has at least one file.
func TestSpecFilesNamed(t *testing.T) {
	entries, err := os.ReadDir(specDir)
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".yaml") {
			t.Errorf("%s: not a .yaml scenario", name)
			continue
		}
		var kind string
		var n int
		switch {
		case strings.HasPrefix(name, "case"):
			kind = "case"
			_, err = fmt.Sscanf(name, "case%02d_", &n)
		case strings.HasPrefix(name, "s"):
			kind = "s"
			_, err = fmt.Sscanf(name, "s%02d_", &n)
		default:
			err = errors.New("want caseNN_ or sNN_")
		}
		if err != nil {
			t.Errorf("%s: bad name: %v", name, err)
			continue
		}
		have[fmt.Sprintf("%s%02d", kind, n)] = true
	}
	for i := 1; i <= 40; i++ {
		if k := fmt.Sprintf("case%02d", i); !have[k] {
			t.Errorf("no scenario for spec case %d", i)
		}
	}
	for i := 1; i <= 12; i++ {
		if k := fmt.Sprintf("s%02d", i); !have[k] {
			t.Errorf("no scenario for surprise S%d", i)
		}
	}
}
