package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// runScenarioCmd runs check or explain and returns what it printed
// (its error included) and its exit status.
func runScenarioCmd(t *testing.T, cmd *cobra.Command, args ...string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	if err := cmd.Execute(); err != nil {
		out.WriteString("error: " + err.Error() + "\n")
		return out.String(), exitCode(err)
	}
	return out.String(), 0
}

// TestCheckAnswers runs check and explain on the examples and on files
// they must refuse: a scenario without checks leaves nothing to check
// (exit 2, positioned), and explain --name with an unknown name is
// explain's error, with the nearest name.
func TestCheckAnswers(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	none := write("none.yaml", "tasks:\n  - {name: a}\nchecks: []\n")
	examples, err := filepath.Glob("../../examples/*.yaml")
	if err != nil || len(examples) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	gdb := "../../examples/gdb-yama.yaml"
	tests := []struct {
		name   string
		cmd    *cobra.Command
		args   []string
		code   int
		want   []string
		reject []string
	}{
		{"the examples meet every expectation", newCheckCmd(), append([]string{"--scenario"}, examples...), 0,
			[]string{"ok   gdb attaches to a sibling", "kcmp is READ and unaffected: gdb -> editor syscall kcmp: allow [capability]"}, []string{"FAIL"}},
		{"no checks", newCheckCmd(), []string{"--scenario", none}, 2,
			[]string{none + ":3:9: no checks: ", "nothing to check"}, nil},
		{"no checks among several files", newCheckCmd(), []string{"--scenario", gdb, none}, 2,
			[]string{none + ":3:9: no checks: "}, nil},
		{"explain without checks", newExplainCmd(), []string{"--scenario", none}, 2,
			[]string{"nothing to check"}, nil},
		{"explain an unknown name", newExplainCmd(), []string{"--scenario", gdb, "--name", "gdb attaches to its chld"}, 2,
			[]string{`explain: no check named "gdb attaches to its chld" (did you mean "gdb attaches to its child"?)`}, []string{"check:"}},
		{"check an unknown name", newCheckCmd(), []string{"--scenario", gdb, "--name", "nothing like it"}, 2,
			[]string{`check: no check named "nothing like it"`}, []string{"did you mean"}},
		{"explain a skipped module's answer", newExplainCmd(), []string{"--scenario", gdb, "--name", "gdb reads the sibling's maps"}, 0,
			[]string{"yama         skip  READ mode", "Answer: allowed, decided by capability."}, []string{"decided by yama", "decided by landlock"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, code := runScenarioCmd(t, tc.cmd, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\n%s", code, tc.code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, r := range tc.reject {
				if strings.Contains(out, r) {
					t.Errorf("output has %q:\n%s", r, out)
				}
			}
		})
	}
}
