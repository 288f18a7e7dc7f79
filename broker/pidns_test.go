package broker_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/procgate/procgate/client"
	"github.com/procgate/procgate/internal/proctest"
)

// nsAnswers parses the client role's output: answers by pid and item.
func nsAnswers(t *testing.T, out []byte) map[int]map[string]clientAnswer {
	t.Helper()
	got := map[int]map[string]clientAnswer{}
	dec := json.NewDecoder(bytesReader(out))
	for dec.More() {
		var a clientAnswer
		if err := dec.Decode(&a); err != nil {
			t.Fatalf("client output %q: %v", out, err)
		}
		if got[a.PID] == nil {
			got[a.PID] = map[string]clientAnswer{}
		}
		got[a.PID][a.Item] = a
	}
	return got
}

// nsClient is the client role, run inside a pid namespace as uidMonitor
// (a member of groupRead) with request req.
func nsClient(h *harness, req client.Request, depth int) proctest.RunSpec {
	b, _ := json.Marshal(req)
	return proctest.RunSpec{
		Path: clientBinary(), Args: []string{"-test.run=^$"},
		Env: []string{"PROCGATE_TEST_ROLE=client", "PROCGATE_TEST_SOCKET=" + h.socket, "PROCGATE_TEST_REQ=" + string(b)},
		UID: uidMonitor, GID: uidMonitor, Groups: []uint32{groupRead},
		Depth: depth,
	}
}

// text returns an answer's text value.
func text(t *testing.T, a clientAnswer) string {
	t.Helper()
	var s string
	if a.Errno != 0 || json.Unmarshal(a.Value, &s) != nil {
		t.Fatalf("pid %d %s: %+v", a.PID, a.Item, a)
	}
	return s
}

// pidLinesOf returns the status lines that hold pids.
func pidLinesOf(status string) string {
	var out []string
	for line := range strings.SplitSeq(status, "\n") {
		k, _, _ := strings.Cut(line, ":")
		switch k {
		case "Tgid", "Ngid", "Pid", "PPid", "TracerPid", "NStgid", "NSpid", "NSpgid", "NSsid":
			out = append(out, strings.Join(strings.Fields(line), " "))
		}
	}
	return strings.Join(out, "; ")
}

// procPIDs lists the processes of a procfs.
func procPIDs(t *testing.T, proc string) []int {
	t.Helper()
	ents, err := os.ReadDir(proc)
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range ents {
		if p, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, p)
		}
	}
	return pids
}

// TestPIDNamespaceCallers: a client in a container — a child pid
// namespace, and a grandchild inside it — asks the broker for every
// process and gets exactly the processes its own /proc lists, by their
// pids there, with the pids in status as its /proc shows them; its pid 1
// is its own init; a pid of the host or of a sibling namespace is "no
// such process". Through the in-process broker and through the
// privilege-separated daemon, whose confined reader translates pids.
func TestPIDNamespaceCallers(t *testing.T) {
	requireRoot(t)
	outer := proctest.StartPIDNS(t, proctest.NSOptions{Sleepers: 2, LastPID: proctest.LastPID, Nested: &proctest.NSOptions{Sleepers: 2, LastPID: proctest.LastPID}})
	sibling := proctest.StartPIDNS(t, proctest.NSOptions{Sleepers: 30})
	inner := outer.Info.Nested
	spaces := []struct {
		name  string
		depth int
		ino   uint64
		proc  string
	}{
		{"child", 0, outer.Info.Ino, outer.Proc()},
		{"grandchild", 1, inner.Ino, "/proc/" + strconv.Itoa(proctest.HostPID(t, inner.Ino, 1)) + "/root/proc"},
	}
	for _, backend := range []struct {
		name  string
		start func(t *testing.T) *harness
	}{
		{"in-process", func(t *testing.T) *harness { return startBroker(t, testPolicy, 0) }},
		{"privsep", func(t *testing.T) *harness { return startDaemon(t, testPolicy).harness }},
	} {
		t.Run(backend.name, func(t *testing.T) {
			h := backend.start(t)
			for _, ns := range spaces {
				t.Run(ns.name, func(t *testing.T) {
					out, err := outer.Run(nsClient(h, client.Request{All: true, Items: []string{"status", "stat"}}, ns.depth))
					if err != nil {
						t.Fatal(err)
					}
					got := nsAnswers(t, out)
					own := procPIDs(t, ns.proc)
					var extra []int // the client itself, gone by now
					for pid, as := range got {
						if slices.Contains(own, pid) {
							continue
						}
						extra = append(extra, pid)
						if st := text(t, as["status"]); !strings.HasPrefix(st, "Name:\tclient.test\n") {
							t.Errorf("pid %d answered, not in the namespace's /proc: %.80q", pid, st)
						}
					}
					if len(extra) != 1 || len(got) != len(own)+1 {
						t.Errorf("all answered pids %v besides the client %v; its own /proc lists %v", keys(got), extra, own)
					}
					for _, pid := range own {
						as, ok := got[pid]
						if !ok {
							t.Errorf("pid %d, listed by the namespace's /proc, not answered", pid)
							continue
						}
						b, err := os.ReadFile(ns.proc + "/" + strconv.Itoa(pid) + "/status")
						if err != nil {
							t.Fatal(err)
						}
						if g, w := pidLinesOf(text(t, as["status"])), pidLinesOf(string(b)); g != w {
							t.Errorf("pid %d status: %s; its own /proc: %s", pid, g, w)
						}
						b, _ = os.ReadFile(ns.proc + "/" + strconv.Itoa(pid) + "/stat")
						if g, w := strings.Fields(text(t, as["stat"]))[0], strings.Fields(string(b))[0]; g != w {
							t.Errorf("pid %d stat names pid %s; its own /proc %s", pid, g, w)
						}
					}
					if a := got[1]["status"]; a.Start != hostStart(t, proctest.HostPID(t, ns.ino, 1)) {
						t.Errorf("pid 1 is not the namespace's init: %+v", a)
					}

					// The host's pids and the sibling's are no such process.
					hidden := append([]int{os.Getpid(), sibling.Init}, proctest.FreePIDs(ns.proc, procPIDs(t, sibling.Proc()))...)
					if len(hidden) < 5 {
						t.Fatalf("too few of the sibling's pids are free in the namespace: %v", hidden)
					}
					out, err = outer.Run(nsClient(h, client.Request{PIDs: hidden, Items: []string{"status"}}, ns.depth))
					if err != nil {
						t.Fatal(err)
					}
					got = nsAnswers(t, out)
					for _, p := range hidden {
						a := got[p]["status"]
						if want := fmt.Sprintf("gate: pid %d: no such process", p); syscall.Errno(a.Errno) != syscall.ESRCH || a.Reason != want || a.Value != nil {
							t.Errorf("pid %d: %+v, want ESRCH %q", p, a, want)
						}
					}
				})
			}
		})
	}
}

// TestUnsharedCaller is the issue's own case: a caller in a user and
// pid namespace of its own (unshare -Urpf --mount-proc, as an
// unprivileged user) is its namespace's only process: `all` answers it
// alone, as pid 1, whose parent is outside (0); the host's init is not
// its pid 1. Through the in-process broker and the privilege-separated
// daemon.
func TestUnsharedCaller(t *testing.T) {
	requireRoot(t)
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("SKIPPED: no unshare (util-linux)")
	}
	for _, backend := range []struct {
		name  string
		start func(t *testing.T) *harness
	}{
		{"in-process", func(t *testing.T) *harness { return startBroker(t, testPolicy, 0) }},
		{"privsep", func(t *testing.T) *harness { return startDaemon(t, testPolicy).harness }},
	} {
		t.Run(backend.name, func(t *testing.T) {
			h := backend.start(t)
			req := client.Request{All: true, Items: []string{"status", "stat"}}
			cmd := clientCmd(h, uidOther, nil, req, 1)
			cmd.Args = append([]string{unshare, "-Urpf", "--mount-proc", cmd.Path}, cmd.Args[1:]...)
			cmd.Path = unshare
			out, err := cmd.Output()
			if err != nil {
				if ee, ok := err.(*exec.ExitError); ok {
					t.Fatalf("unshare -Urpf --mount-proc client: %v\n%s", err, ee.Stderr)
				}
				t.Fatal(err)
			}
			got := nsAnswers(t, out)
			if len(got) != 1 || got[1] == nil {
				t.Fatalf("all answered pids %v, want only 1 (the caller itself)", keys(got))
			}
			st := text(t, got[1]["status"])
			if !strings.Contains(st, "\nPid:\t1\n") || !strings.Contains(st, "\nPPid:\t0\n") || !strings.Contains(st, "\nNSpid:\t1\n") {
				t.Errorf("pid 1 status pids: %s", pidLinesOf(st))
			}
			if f := strings.Fields(text(t, got[1]["stat"])); f[0] != "1" || f[3] != "0" {
				t.Errorf("pid 1 stat: pid %s, ppid %s; want 1, 0", f[0], f[3])
			}
			if got[1]["status"].Start == hostStart(t, 1) {
				t.Error("pid 1 is the host's init")
			}
		})
	}
}

// hostStart returns the start time of a process of the test's pid
// namespace (stat field 22).
func hostStart(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v
}

func keys[V any](m map[int]V) []int {
	var out []int
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
