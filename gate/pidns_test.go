package gate_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/gate"
	"github.com/procgate/procgate/internal/proctest"
	"github.com/procgate/procgate/internal/testenv"
	"github.com/procgate/procgate/policy"
	"github.com/procgate/procgate/procfs"
)

// nsPolicy lets every caller read the items whose values hold pids.
const nsPolicy = "subject everyone { }\ntarget any { }\nallow everyone any : read { status stat stat_full sched };\n"

// nsItems are the items whose values hold pids of the reader's
// namespace.
var nsItems = []gate.Item{policy.ItemStatus, policy.ItemStat, policy.ItemStatFull, policy.ItemSched}

// pidLines are the status lines that hold pids.
var pidLines = []string{"Tgid", "Ngid", "Pid", "PPid", "TracerPid", "NStgid", "NSpid", "NSpgid", "NSsid"}

// nsSpace is a pid namespace a caller lives in.
type nsSpace struct {
	name string
	ino  uint64
	// caller is a process of the namespace, by the test's pid.
	caller int
	// proc is the namespace's own procfs: what its processes read.
	proc string
	// thread is a thread of process threadOf, in the namespace's
	// numbering (0: none).
	thread, threadOf int
}

// nestedSpaces starts a pid namespace (two sleepers, a process with a
// second thread) with a grandchild namespace inside it (two sleepers),
// and a sibling namespace with thirty sleepers, whose pids the first
// namespace's overlap. It returns the child, the grandchild and the
// sibling.
func nestedSpaces(t testing.TB) (child, grandchild nsSpace, sibling *proctest.PIDNS) {
	outer := proctest.StartPIDNS(t, proctest.NSOptions{Sleepers: 2, Thread: true, LastPID: proctest.LastPID, Nested: &proctest.NSOptions{Sleepers: 2, LastPID: proctest.LastPID}})
	sibling = proctest.StartPIDNS(t, proctest.NSOptions{Sleepers: 30})
	in := outer.Info.Nested
	child = nsSpace{"child", outer.Info.Ino, proctest.HostPID(t, outer.Info.Ino, outer.Info.Sleepers[0]), outer.Proc(), outer.Info.Thread, outer.Info.ThreadOf}
	grandchild = nsSpace{"grandchild", in.Ino, proctest.HostPID(t, in.Ino, in.Sleepers[0]), "/proc/" + strconv.Itoa(proctest.HostPID(t, in.Ino, 1)) + "/root/proc", 0, 0}
	return child, grandchild, sibling
}

// listProc lists the processes of a procfs.
func listProc(t testing.TB, proc string) []int {
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
	slices.Sort(pids)
	return pids
}

// readReq answers req and returns the process answers by pid.
func readReq(t testing.TB, g *gate.Gate, c *gate.Caller, req *gate.Request) map[int]*gate.ProcResult {
	t.Helper()
	got := map[int]*gate.ProcResult{}
	err := g.Read(context.Background(), c, req)(func(r *gate.ProcResult) error {
		if got[r.PID] != nil {
			t.Errorf("pid %d answered twice", r.PID)
		}
		rc := *r
		got[r.PID] = &rc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// statusLines returns the given lines of a status text.
func statusLines(text string, keys []string) map[string]string {
	out := map[string]string{}
	for line := range strings.SplitSeq(text, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && slices.Contains(keys, k) {
			out[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	return out
}

// statPIDs returns fields 1, 4, 5, 6 and 8 of a stat line.
func statPIDs(text string) []string {
	i := strings.LastIndexByte(text, ')')
	sp := strings.IndexByte(text, ' ')
	if i < 0 || sp < 0 {
		return nil
	}
	f := strings.Fields(text[i+1:]) // field 3 on
	if len(f) < 6 {
		return nil
	}
	return []string{text[:sp], f[1], f[2], f[3], f[5]}
}

// schedPID returns the pid of a sched file's first line.
func schedPID(text string) string {
	first, _, _ := strings.Cut(text, "\n")
	t := strings.LastIndex(first, ", #threads: ")
	if t < 0 {
		return ""
	}
	o := strings.LastIndex(first[:t], " (")
	if o < 0 {
		return ""
	}
	return first[o+2 : t]
}

// startOf returns the start time of a process of the test's namespace.
func startOf(t testing.TB, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	sf, err := procfs.ParseStat(b)
	if err != nil {
		t.Fatal(err)
	}
	return sf.StartTime
}

// TestPIDNamespaces: a caller in a child pid namespace, and one in a
// grandchild namespace, are answered as their own /proc answers them:
// `all` lists exactly the processes their procfs lists, by the pids it
// gives them, with the pids in status, stat and sched as it prints them;
// their pid 1 is their own init; a pid of the gate's namespace, a pid
// only a sibling namespace has (at the same level, numbered from 1
// too), and a pid the grandchild cannot see are "no such process"; a
// thread is named in the caller's numbering. Both with the kernel's
// translation and with the gate's scan mode (kernels before 6.11).
func TestPIDNamespaces(t *testing.T) {
	testenv.RequireRoot(t, "creates pid namespaces")
	child, grandchild, sibling := nestedSpaces(t)
	siblingPIDs := listProc(t, sibling.Proc())
	for _, mode := range []struct {
		name      string
		translate bool
	}{{"kernel-translation", true}, {"scan", false}} {
		t.Run(mode.name, func(t *testing.T) {
			g, err := gate.New(gate.Config{Policy: compile(t, nsPolicy)})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			if mode.translate && !gate.PIDTranslation(g) {
				t.Skip("SKIPPED: this kernel cannot translate pids between namespaces (Linux 6.11+)")
			}
			gate.SetPIDTranslation(g, mode.translate)
			for _, ns := range []nsSpace{child, grandchild} {
				t.Run(ns.name, func(t *testing.T) {
					checkNamespacedCaller(t, g, ns, siblingPIDs, mode.translate)
				})
			}
		})
	}
}

func checkNamespacedCaller(t *testing.T, g *gate.Gate, ns nsSpace, siblingPIDs []int, translate bool) {
	c, err := g.NewCaller(ns.caller, -1, 0, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if own, want := c.OwnPID(), nsPIDOf(t, ns.caller); own != want || c.PID() != ns.caller {
		t.Errorf("caller %d: own pid %d, pid %d; want %d in its namespace", ns.caller, own, c.PID(), want)
	}

	// all: exactly what its own procfs lists, read as it reads them.
	own := listProc(t, ns.proc)
	got := readReq(t, g, c, &gate.Request{All: true, Items: nsItems})
	var listed []int
	for pid := range got {
		listed = append(listed, pid)
	}
	slices.Sort(listed)
	if !slices.Equal(listed, own) {
		t.Fatalf("all lists %v; its own /proc lists %v", listed, own)
	}
	for _, pid := range own {
		r := got[pid]
		if r.Denial != nil {
			t.Errorf("pid %d: %v", pid, r.Denial)
			continue
		}
		dir := ns.proc + "/" + strconv.Itoa(pid)
		b, err := os.ReadFile(dir + "/status")
		if err != nil {
			t.Fatal(err)
		}
		want := statusLines(string(b), pidLines)
		if st := statusLines(r.Items[0].Text, pidLines); !maps(st, want) {
			t.Errorf("pid %d: status pids %v; its own /proc shows %v", pid, st, want)
		}
		b, _ = os.ReadFile(dir + "/stat")
		for i, it := range []string{"stat", "stat_full"} {
			if got, want := statPIDs(r.Items[1+i].Text), statPIDs(string(b)); !slices.Equal(got, want) || got == nil {
				t.Errorf("pid %d: %s pid, ppid, pgrp, session, tpgid %v; its own /proc shows %v", pid, it, got, want)
			}
		}
		b, _ = os.ReadFile(dir + "/sched")
		if got, want := schedPID(r.Items[3].Text), schedPID(string(b)); got != want || got == "" {
			t.Errorf("pid %d: sched names pid %q; its own /proc %q", pid, got, want)
		}
	}
	// Its pid 1 is its own init.
	if r, init := got[1], proctest.HostPID(t, ns.ino, 1); r == nil || r.Start != startOf(t, init) {
		t.Errorf("pid 1: %+v, want its init (start %d)", r, startOf(t, init))
	}

	// Pids it cannot see are no such process, naming nothing else.
	hidden := append([]int{os.Getpid()}, proctest.FreePIDs(ns.proc, siblingPIDs)...) // only the sibling has them
	if len(hidden) < 5 {
		t.Fatalf("the sibling namespace has too few pids the caller's lacks: %v", hidden)
	}
	if _, err := os.Stat(ns.proc + "/" + strconv.Itoa(os.Getpid())); err == nil {
		t.Fatalf("pid %d exists in the caller's namespace too", os.Getpid())
	}
	req := append([]int{1}, hidden...)
	if ns.thread != 0 {
		req = append(req, ns.thread)
	}
	got = readReq(t, g, c, &gate.Request{PIDs: req, Items: []gate.Item{policy.ItemStatus}})
	if r := got[1]; r == nil || r.Denial != nil || statusLines(r.Items[0].Text, []string{"Pid"})["Pid"] != "1" {
		t.Errorf("pid 1: %+v", r)
	}
	for _, p := range hidden {
		want := fmt.Sprintf("gate: pid %d: no such process", p)
		if r := got[p]; r == nil || r.Denial == nil || r.Denial.Errno != unix.ESRCH || r.Denial.Reason != want {
			t.Errorf("pid %d: %+v, want ESRCH %q", p, r, want)
		}
	}
	if ns.thread != 0 {
		r := got[ns.thread]
		want := fmt.Sprintf("gate: pid %d is a thread of process %d, not a process", ns.thread, ns.threadOf)
		if !translate {
			want = fmt.Sprintf("gate: pid %d: no such process", ns.thread) // tables list processes only
		}
		if r == nil || r.Denial == nil || r.Denial.Errno != unix.ESRCH || r.Denial.Reason != want {
			t.Errorf("thread %d: %+v, want ESRCH %q", ns.thread, r, want)
		}
	}
}

// maps reports whether two maps are equal.
func maps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// A caller in the gate's own namespace keeps the gate's numbering: it
// sees the namespaces' processes by the pids the gate's procfs gives
// them.
func TestHostCallerSeesAll(t *testing.T) {
	testenv.RequireRoot(t, "creates pid namespaces")
	child, grandchild, sibling := nestedSpaces(t)
	g, c := selfCaller(t, compile(t, nsPolicy))
	got := readReq(t, g, c, &gate.Request{All: true, Items: []gate.Item{policy.ItemStatus}})
	for _, pid := range []int{child.caller, grandchild.caller, sibling.Init, os.Getpid()} {
		r := got[pid]
		if r == nil || r.Denial != nil || statusLines(r.Items[0].Text, []string{"Pid"})["Pid"] != strconv.Itoa(pid) {
			t.Errorf("pid %d: %+v", pid, r)
		}
	}
}

// nsPIDOf returns the last NSpid of host pid: its pid in its own
// namespace.
func nsPIDOf(t testing.TB, host int) int {
	t.Helper()
	f := proctest.StatusLine("/proc/"+strconv.Itoa(host)+"/status", "NSpid")
	if len(f) == 0 {
		t.Fatalf("no NSpid for %d", host)
	}
	p, err := strconv.Atoi(f[len(f)-1])
	if err != nil {
		t.Fatalf("NSpid of %d: %q", host, f)
	}
	return p
}
