package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

func itoa(n int) string { return strconv.Itoa(n) }

// deadPID returns the pid of a process that has exited and been reaped.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// sleeper starts a child of this process, sharing its credentials.
func sleeper(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd.Process.Pid
}

func TestLiveCheckText(t *testing.T) {
	child := sleeper(t)
	var out bytes.Buffer
	// exe, not maps: a root caller reads maps through the CAP_PERFMON /
	// CAP_SYS_ADMIN shortcut, which Landlock cannot stop.
	if err := runLiveCheck(&out, os.Getpid(), child, "exe", "", "", false, false); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	comm, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	want := "     live: " + strings.TrimSpace(string(comm)) + "[" + itoa(os.Getpid()) + "] -> sleep[" + itoa(child) + "] entry exe: allow ["
	if !strings.HasPrefix(got, want) {
		t.Errorf("got %q, want prefix %q", got, want)
	}
	if landlockActive(t) && !strings.Contains(got, "\n     depends on unknown: landlock: ") {
		t.Errorf("Landlock is active but the answer does not say it depends on it:\n%s", got)
	}
}

func TestLiveCheckJSON(t *testing.T) {
	child := sleeper(t)
	var out bytes.Buffer
	if err := runLiveCheck(&out, os.Getpid(), child, "", "ptrace_attach", "", true, false); err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Results []checkResult `json:"results"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if len(rep.Results) != 1 {
		t.Fatalf("%d results", len(rep.Results))
	}
	r := rep.Results[0]
	if r.Access != "syscall ptrace_attach" || r.Target != "sleep["+itoa(child)+"]" || len(r.Steps) == 0 || !r.Met {
		t.Errorf("result %+v", r)
	}
	if landlockActive(t) && r.Allowed && len(r.Unknown) == 0 {
		t.Errorf("allowed under active Landlock without unknowns: %+v", r)
	}
}

func TestLiveCheckExplain(t *testing.T) {
	var out bytes.Buffer
	if err := runLiveCheck(&out, os.Getpid(), os.Getpid(), "", "", "attach_realcreds", false, true); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if !strings.Contains(got, "thread-group") || !strings.Contains(got, "Answer: allowed") || !strings.HasSuffix(got, ".\n\n") {
		t.Errorf("story:\n%s", got)
	}
}

func TestLiveCheckBadInput(t *testing.T) {
	me := os.Getpid()
	for _, tc := range []struct {
		name                 string
		caller, target       int
		entry, syscall, mode string
		msg                  string
	}{
		{"no question", me, me, "", "", "", "exactly one"},
		{"two questions", me, me, "maps", "kcmp", "", "exactly one"},
		{"unknown entry", me, me, "envrion", "", "", "unknown /proc/<pid> entry"},
		{"unknown syscall", me, me, "", "ptrace_poke", "", "unknown syscall"},
		{"unknown mode", me, me, "", "", "read", "unknown mode"},
		{"dead target", me, deadPID(t), "maps", "", "", "no such process"},
		{"dead caller", deadPID(t), me, "maps", "", "", "no such process"},
		{"zero pid", 0, me, "maps", "", "", "positive"},
		{"traceme not parent", me, me, "", "ptrace_traceme", "", "not the parent"},
	} {
		err := runLiveCheck(&bytes.Buffer{}, tc.caller, tc.target, tc.entry, tc.syscall, tc.mode, false, false)
		ee, ok := err.(*exitError)
		if !ok || ee.Code != 2 || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: got %v, want exit 2 mentioning %q", tc.name, err, tc.msg)
		}
	}
}

func landlockActive(t *testing.T) bool {
	b, err := os.ReadFile("/sys/kernel/security/lsm")
	if err != nil {
		return false
	}
	return strings.Contains(string(b), "landlock")
}
