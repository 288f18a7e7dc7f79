package main

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/procgate/procgate/bpflsm"
	"github.com/procgate/procgate/internal/testenv"
	"github.com/procgate/procgate/kernel/lsm/bpf"
)

func runEnforceCmd(t *testing.T, args ...string) (string, int) {
	t.Helper()
	return runScenarioCmd(t, newEnforceCmd(), args...)
}

// TestEnforceCLI: a rule the program cannot evaluate is refused with its
// position (exit 2) before the kernel is asked; on a kernel that refuses
// LSM programs, enforce says so and why (exit 1) and leaves nothing
// attached; --status reports; --detach of nothing is not an error.
func TestEnforceCLI(t *testing.T) {
	pin := filepath.Join(t.TempDir(), "pin")
	bad := writePolicy(t, "subject s { uid 0; }\ntarget t { uid 1; }\ndeny s t : read { environ };\n")
	out, code := runEnforceCmd(t, "--policy", bad, "--pin-dir", pin, "--once")
	if code != 2 || !strings.Contains(out, "p.pol:3:1: deny: the kernel program cannot restrict single items") {
		t.Errorf("item rule: exit %d, output:\n%s", code, out)
	}
	out, code = runEnforceCmd(t, "--exempt-cgroup", t.TempDir(), "--pin-dir", pin, "--once")
	if code != 2 || !strings.Contains(out, "is not a cgroup v2 directory") {
		t.Errorf("--exempt-cgroup of a plain directory: exit %d, output:\n%s", code, out)
	}
	out, code = runEnforceCmd(t, "--once", "--audit-log", "-", "--pin-dir", pin)
	if code != 2 || !strings.Contains(out, "none of the others can be") {
		t.Errorf("--once with --audit-log: exit %d, output:\n%s", code, out)
	}
	out, code = runEnforceCmd(t, "--status", "--pin-dir", pin)
	if code != 0 || !strings.Contains(out, "not attached") {
		t.Errorf("--status: exit %d, output:\n%s", code, out)
	}
	out, code = runEnforceCmd(t, "--detach", "--pin-dir", pin)
	if code != 0 || !strings.Contains(out, "detached") {
		t.Errorf("--detach: exit %d, output:\n%s", code, out)
	}

	testenv.RequireRoot(t, "loading a BPF LSM program needs root")
	probe := &bpf.RuleSet{}
	err := bpflsm.Attach(probe, pin)
	if err == nil {
		_ = bpflsm.Detach(pin)
		t.Skip("this kernel accepts LSM programs: enforcement is tested in the VMs (verify-vm's bpf step); here only the refusal is")
	}
	if !errors.Is(err, bpflsm.ErrUnsupported) {
		t.Fatalf("probe attach: %v", err)
	}
	good := writePolicy(t, "subject s { uid 0; }\ntarget t { uid 1; }\ndeny s t : attach;\nprotect t : read;\n")
	out, code = runEnforceCmd(t, "--policy", good, "--pin-dir", pin, "--once")
	if code != 1 || !strings.Contains(out, "the kernel cannot enforce") {
		t.Errorf("on a kernel that refuses LSM programs: exit %d, output:\n%s", code, out)
	}
	if st, _ := bpflsm.Stat(pin); st.Attached {
		t.Errorf("a refused enforce left the program attached")
	}
}
