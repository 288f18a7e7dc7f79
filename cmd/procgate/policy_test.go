package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/procgate/procgate/policy"
)

func runPolicyCmd(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := newPolicyCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.Execute()
	if err != nil {
		out.WriteString("error: " + err.Error() + "\n")
	}
	code := 0
	if err != nil {
		code = exitCode(err)
	}
	return out.String(), code
}

func writePolicy(t *testing.T, src string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "p.pol")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// `policy check` is clean on every shipped example.
func TestPolicyCheckExamples(t *testing.T) {
	paths, err := filepath.Glob("../../examples/policies/*.pol")
	if err != nil || len(paths) < 6 {
		t.Fatalf("examples: %v, %v", paths, err)
	}
	for _, path := range paths {
		out, code := runPolicyCmd(t, "check", path)
		if code != 0 || !strings.Contains(out, "ok: 1 file(s)") {
			t.Errorf("policy check %s = exit %d:\n%s", path, code, out)
		}
	}
	out, code := runPolicyCmd(t, "check", "../../examples/policies/sshd.pol")
	if code != 0 || !strings.Contains(out, "covered by protect@../../examples/policies/sshd.pol:12") {
		t.Errorf("sshd.pol proof missing:\n%s", out)
	}
}

func TestPolicyCheckExitCodes(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		code      int
		want      string
	}{
		{"clean", "allow * * : read { io };", 0, "ok: 1 file(s)"},
		{"parse error", "allow * * : read { mem };", 2, "p.pol:1:20: item \"mem\" is attach-class"},
		{"unknown item", "allow * * : read { envron };", 2, `did you mean "environ"`},
		{"neverallow violated", "target a {}\nallow * a : attach;\nneverallow * a : attach;", 1, "neverallow at"},
		{"warning is not a finding", "subject s { group no_such_group_here; }\nallow s * : read { io };", 0, "warning: group \"no_such_group_here\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := runPolicyCmd(t, "check", writePolicy(t, tc.src))
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, want %d; output:\n%s\nwant %q", code, tc.code, out, tc.want)
			}
		})
	}
	_, code := runPolicyCmd(t, "check", "--strict", writePolicy(t, "subject s { group no_such_group_here; }"))
	if code != 1 {
		t.Errorf("--strict with warnings: exit %d, want 1", code)
	}
	_, code = runPolicyCmd(t, "check", filepath.Join(t.TempDir(), "missing.pol"))
	if code != 2 {
		t.Errorf("missing file: exit %d, want 2", code)
	}
}

func TestPolicyWhoCanWhatCan(t *testing.T) {
	broker := "../../examples/policies/broker.pol"
	out, code := runPolicyCmd(t, "who-can", broker, "attach", "sshd_all")
	if code != 0 || !strings.Contains(out, "(nothing left)") || !strings.Contains(out, "always removed") {
		t.Errorf("who-can attach sshd_all: exit %d\n%s", code, out)
	}
	out, code = runPolicyCmd(t, "who-can", broker, "read", "fd")
	if code != 0 || !strings.Contains(out, "lsof_tool any_proc : read { fd } when same_container") {
		t.Errorf("who-can read fd: exit %d\n%s", code, out)
	}
	out, code = runPolicyCmd(t, "who-can", broker, "read", "mem")
	if code != 2 || !strings.Contains(out, "not read-class") {
		t.Errorf("who-can read mem: exit %d\n%s", code, out)
	}
	out, code = runPolicyCmd(t, "what-can", broker, "lsof_tool")
	if code != 0 || !strings.Contains(out, "read { fd fd_count fdinfo } when same_container") {
		t.Errorf("what-can lsof_tool: exit %d\n%s", code, out)
	}
	out, code = runPolicyCmd(t, "what-can", broker, "lsof_tol")
	if code != 2 || !strings.Contains(out, `did you mean "lsof_tool"`) {
		t.Errorf("what-can typo: exit %d\n%s", code, out)
	}
}

func TestPolicyDefault(t *testing.T) {
	out, code := runPolicyCmd(t, "default")
	if code != 0 || out != string(policy.DefaultSource) {
		t.Errorf("policy default: exit %d, %d bytes", code, len(out))
	}
	out, code = runPolicyCmd(t, "check", "default")
	if code != 0 || !strings.Contains(out, "ok: 1 file(s)") {
		t.Errorf("policy check default: exit %d\n%s", code, out)
	}
}
