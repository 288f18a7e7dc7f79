package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/procgate/procgate/internal/proctest"
)

func itoa(n int) string { return strconv.Itoa(n) }

// neverPID is a pid no task can have. Tests use it for a missing
// process: the pid of a process that exited and was reaped may be taken
// again at any moment, by another process or by a thread
// (TestLiveCheckBadInput used one and failed whenever that happened).
const neverPID = proctest.NeverPID

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
		{"missing target", me, neverPID, "maps", "", "", "pid 4194304: no such process"},
		{"missing caller", neverPID, me, "maps", "", "", "pid 4194304: no such process"},
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

// A thread id names that thread, as for the kernel (ptrace attaches to
// threads, /proc/<tid>/ is the thread's): as target and as caller.
func TestLiveCheckThread(t *testing.T) {
	tid, child := proctest.LockedThread(t), sleeper(t)
	var out bytes.Buffer
	if err := runLiveCheck(&out, child, tid, "", "ptrace_attach", "", true, false); err != nil {
		t.Fatalf("target thread %d: %v", tid, err)
	}
	var rep struct {
		Results []checkResult `json:"results"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || len(rep.Results) != 1 {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if r := rep.Results[0]; !strings.HasSuffix(r.Target, "["+itoa(tid)+"]") || r.Caller != "sleep["+itoa(child)+"]" {
		t.Errorf("result %+v: want the thread %d as target", r, tid)
	}
	out.Reset()
	if err := runLiveCheck(&out, tid, child, "environ", "", "", false, false); err != nil {
		t.Fatalf("caller thread %d: %v", tid, err)
	}
	if !strings.Contains(out.String(), "["+itoa(tid)+"] -> sleep["+itoa(child)+"] entry environ: ") {
		t.Errorf("got %q, want the thread %d as caller", out.String(), tid)
	}
}

// raceExits runs op runs times, each against a fresh process (the pid
// given) that exits and is reaped at a random moment of op, drawn over
// the duration of the runs so far, so that the pid vanishes before,
// during and after op's reads. (The kill is sent that much earlier than
// the moment drawn as killing and reaping have taken so far.) op must
// succeed or fail with exit status 2 and "pid N: no such process", never
// otherwise.
func raceExits(t *testing.T, runs int, op func(i, pid int) error) {
	t.Helper()
	answered, gone := 0, 0
	// Moving averages of op's duration and of the time from the kill to
	// the reaped exit.
	span, reap := time.Millisecond, time.Millisecond
	for i := range runs {
		cmd := exec.Command("sleep", "1000")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pid := cmd.Process.Pid
		at := time.Duration(rand.Int64N(int64(span))) // when the pid should vanish
		done := make(chan time.Duration, 1)
		go func() {
			time.Sleep(max(0, at-reap))
			k := time.Now()
			_ = cmd.Process.Kill()
			_ = cmd.Wait() // reaped: the pid is gone
			done <- time.Since(k)
		}()
		if wait := reap - at; wait > 0 {
			time.Sleep(wait) // the kill was due before op starts
		}
		opStart := time.Now()
		err := op(i, pid)
		span = (3*span + time.Since(opStart)) / 4
		reap = (3*reap + <-done) / 4
		var ee *exitError
		switch {
		case err == nil:
			answered++
		case errors.As(err, &ee) && ee.Code == 2 && strings.Contains(err.Error(), "pid "+itoa(pid)+": no such process"):
			gone++
		default:
			t.Errorf("run %d, pid %d vanishing %v into it: %v, want an answer or exit 2 \"pid %d: no such process\"", i, pid, at, err, pid)
		}
	}
	t.Logf("%d runs: %d answered (before the exit, or of the zombie), %d found the process gone", runs, answered, gone)
}

// A target (or caller) that exits while it is read is "no such
// process", exit 2, whenever the read notices; never another error.
func TestLiveCheckProcessExits(t *testing.T) {
	me := os.Getpid()
	raceExits(t, 150, func(i, pid int) error {
		if i%2 == 1 {
			return runLiveCheck(io.Discard, pid, me, "exe", "", "", false, false)
		}
		return runLiveCheck(io.Discard, me, pid, "exe", "", "", false, false)
	})
}

func landlockActive(t *testing.T) bool {
	b, err := os.ReadFile("/sys/kernel/security/lsm")
	if err != nil {
		return false
	}
	return strings.Contains(string(b), "landlock")
}
