package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/internal/proctest"
	"github.com/procgate/procgate/internal/testenv"
	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/live"
	"github.com/procgate/procgate/oracle"
	"github.com/procgate/procgate/report"
)

// reportRoleEnv makes the test binary a helper process of
// TestReportMatchesLive (see init and reportHelper).
const reportRoleEnv = "PROCGATE_REPORT_TEST_ROLE"

func init() {
	// init runs before TestMain: the oracle's re-executed targets and
	// probers, and the helper below, never run the tests.
	oracle.RunRoleIfRequested()
	if os.Getenv(reportRoleEnv) == "creds" {
		if err := reportHelper(); err != nil {
			fmt.Println("error:", err)
			os.Exit(3)
		}
		os.Exit(0)
	}
}

// reportHelper is a process started as root that takes the credentials
// PROCGATE_REPORT_{GROUPS,GIDS,UIDS} give ("a,b" and "r,e,s"; setresuid
// resets the dumpable flag, so PROCGATE_REPORT_DUMPABLE sets it after),
// declares PROCGATE_REPORT_PTRACER as its Yama ptracer, with
// PROCGATE_REPORT_CHILD starts a child (sleep) with those credentials and
// with PROCGATE_REPORT_TRACE seizes it. It prints "ready CHILD" (0 without
// a child) and waits for its standard input to close.
func reportHelper() error {
	env := func(k string) string { return os.Getenv("PROCGATE_REPORT_" + k) }
	nums := func(s string) ([]int, error) {
		var out []int
		for _, f := range strings.Split(s, ",") {
			if f == "" {
				continue
			}
			n, err := strconv.Atoi(f)
			if err != nil {
				return nil, err
			}
			out = append(out, n)
		}
		return out, nil
	}
	if s := env("GIDS"); s != "" {
		groups, err := nums(env("GROUPS"))
		if err != nil {
			return err
		}
		if err := syscall.Setgroups(groups); err != nil {
			return fmt.Errorf("setgroups: %w", err)
		}
		g, err := nums(s)
		if err != nil || len(g) != 3 {
			return fmt.Errorf("gids %q: want r,e,s", s)
		}
		if err := syscall.Setresgid(g[0], g[1], g[2]); err != nil {
			return fmt.Errorf("setresgid: %w", err)
		}
	}
	if s := env("UIDS"); s != "" {
		u, err := nums(s)
		if err != nil || len(u) != 3 {
			return fmt.Errorf("uids %q: want r,e,s", s)
		}
		if err := syscall.Setresuid(u[0], u[1], u[2]); err != nil {
			return fmt.Errorf("setresuid: %w", err)
		}
	}
	if s := env("DUMPABLE"); s != "" {
		v, _ := strconv.Atoi(s)
		if err := unix.Prctl(unix.PR_SET_DUMPABLE, uintptr(v), 0, 0, 0); err != nil {
			return fmt.Errorf("PR_SET_DUMPABLE: %w", err)
		}
	}
	if s := env("PTRACER"); s != "" {
		v, _ := strconv.Atoi(s)
		if err := unix.Prctl(unix.PR_SET_PTRACER, uintptr(v), 0, 0, 0); err != nil {
			return fmt.Errorf("PR_SET_PTRACER: %w", err)
		}
	}
	child := 0
	if env("CHILD") != "" {
		// This thread starts and traces the child: it must stay (the
		// child's parent-death signal and the trace belong to it).
		runtime.LockOSThread()
		cmd := exec.Command("sleep", "1000")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			return err
		}
		child = cmd.Process.Pid
		if err := proctest.WaitComm(child, "sleep", 2500); err != nil {
			return err
		}
		if env("TRACE") != "" {
			if err := unix.PtraceSeize(child); err != nil {
				return fmt.Errorf("PTRACE_SEIZE %d: %w", child, err)
			}
		}
	}
	fmt.Printf("ready %d\n", child)
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

// liveProc is one process TestReportMatchesLive starts.
type liveProc struct {
	name string
	pid  int
}

// startReportHelper starts the helper with env and returns its pid and
// its child's (0 without one). Both end with the test.
func startReportHelper(t *testing.T, env ...string) (int, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{reportRoleEnv + "=creds"}, env...)...)
	_, stdout := proctest.StartRole(t, cmd, true)
	line, err := stdout.ReadString('\n')
	var child int
	if _, serr := fmt.Sscanf(line, "ready %d\n", &child); err != nil || serr != nil {
		t.Fatalf("helper %v: %q, %v", env, line, err)
	}
	if child != 0 {
		// Killed first (cleanups run last in, first out): until the
		// helper exits the child is its, and its pid cannot be reused.
		t.Cleanup(func() { _ = syscall.Kill(child, syscall.SIGKILL) })
	}
	return cmd.Process.Pid, child
}

// startSleep starts cmd, which ends up running sleep, and returns its pid.
func startSleep(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	if err := proctest.WaitComm(cmd.Process.Pid, "sleep", 2500); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func yamaActive(sys *live.System) bool {
	b, err := os.ReadFile("/sys/kernel/security/lsm")
	return err == nil && strings.Contains(string(b), "yama") && sys.World.LSM("yama") != nil
}

// spawnLive starts processes of several uids and gids, supplementary
// groups, capabilities, dumpable flags, user namespaces, a parent with
// its child, a tracer with its tracee (unless Yama's scope forbids it)
// and a Yama exception (when Yama is active). yama is Yama's scope, -1
// when it is not active.
func spawnLive(t *testing.T, yama int) []liveProc {
	t.Helper()
	var out []liveProc
	add := func(name string, pid int) { out = append(out, liveProc{name, pid}) }
	helper := func(name string, env ...string) int {
		pid, _ := startReportHelper(t, env...)
		add(name, pid)
		return pid
	}
	user := func(uid, gid int) []string {
		return []string{fmt.Sprintf("PROCGATE_REPORT_UIDS=%d,%d,%d", uid, uid, uid), fmt.Sprintf("PROCGATE_REPORT_GIDS=%d,%d,%d", gid, gid, gid), "PROCGATE_REPORT_DUMPABLE=1"}
	}
	as := func(uid, gid uint32, args ...string) *exec.Cmd {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
		return cmd
	}
	helper("u1000", user(1000, 1000)...)
	helper("u1000-twin", user(1000, 1000)...)
	add("u1000-sleep", startSleep(t, as(1000, 1000, "sleep", "1000")))
	helper("u1000-nodump", append(user(1000, 1000), "PROCGATE_REPORT_DUMPABLE=0")...)
	helper("u1000-groups", append(user(1000, 1000), "PROCGATE_REPORT_GROUPS=4,27")...)
	helper("u1000-gid1001", user(1000, 1001)...)
	helper("u1001", user(1001, 1001)...)
	helper("u1000-euid1001", "PROCGATE_REPORT_UIDS=1000,1001,1000", "PROCGATE_REPORT_GIDS=1000,1000,1000", "PROCGATE_REPORT_DUMPABLE=1")
	ptracer := as(1000, 1000, "sleep", "1000")
	ptracer.SysProcAttr.AmbientCaps = []uintptr{unix.CAP_SYS_PTRACE}
	add("u1000-cap_sys_ptrace", startSleep(t, ptracer))
	add("root-nocaps", startSleep(t, exec.Command("setpriv", "--bounding-set=-all", "sleep", "1000")))
	add("root-sys_ptrace-only", startSleep(t, exec.Command("setpriv", "--bounding-set=-all,+sys_ptrace", "sleep", "1000")))
	helper("root-nodump", "PROCGATE_REPORT_DUMPABLE=0")
	add("userns-root-of-1000", startSleep(t, as(1000, 1000, "unshare", "--user", "--map-root-user", "sleep", "1000")))
	add("userns-unmapped-1001", startSleep(t, as(1001, 1001, "unshare", "--user", "sleep", "1000")))
	parent, child := startReportHelper(t, append(user(1002, 1002), "PROCGATE_REPORT_CHILD=1")...)
	add("parent", parent)
	add("child", child)
	if yama < 2 {
		tracer, tracee := startReportHelper(t, append(user(1003, 1003), "PROCGATE_REPORT_CHILD=1", "PROCGATE_REPORT_TRACE=1")...)
		add("tracer", tracer)
		add("tracee", tracee)
	} else {
		t.Logf("Yama's ptrace_scope is %d: no unprivileged tracer can be spawned", yama)
	}
	if yama >= 0 {
		helper("excepted", append(user(1000, 1000), "PROCGATE_REPORT_PTRACER="+strconv.Itoa(out[0].pid))...)
	}
	return out
}

// runCheckCmd runs `procgate check --caller C --target T (--mode M |
// --entry .) --json` through the root command and returns its one result.
func runCheckCmd(caller, target int, a report.Access) (checkResult, error) {
	args := []string{"check", "--caller", strconv.Itoa(caller), "--target", strconv.Itoa(target), "--json"}
	if a == report.Visible {
		// The catalog's entry for /proc/<pid> itself (kernel.EntryPIDDir).
		args = append(args, "--entry", kernel.EntryPIDDir.Entry().Name)
	} else {
		args = append(args, "--mode", a.String())
	}
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		return checkResult{}, err
	}
	var rep struct {
		Results []checkResult `json:"results"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || len(rep.Results) != 1 {
		return checkResult{}, fmt.Errorf("check %v: %v\n%s", args, err, out.String())
	}
	return rep.Results[0], nil
}

// unknownKinds is the kinds of a list of unknowns ("landlock", "yama",
// "dumpable", …): the sentences name the pair, and a report's edge names
// its example pair.
func unknownKinds(list []string) string {
	var k []string
	for _, u := range list {
		kind, _, _ := strings.Cut(u, ":")
		k = append(k, kind)
	}
	slices.Sort(k)
	return strings.Join(slices.Compact(k), ",")
}

// vanished reports whether err is check's "no such process".
func vanished(err error) bool {
	var ee *exitError
	return errors.As(err, &ee) && ee.Code == 2 && strings.Contains(err.Error(), "no such process")
}

// TestReportMatchesLive spawns processes with varied credentials, reads
// the live report, and checks its answers pair by pair: against
// `procgate check --json` for at least 500 (caller, target) pairs of the
// spawned and the system's processes, every access; and, for pairs of
// the spawned processes whose answer is known, against the running
// kernel through the verifier's oracle.
func TestReportMatchesLive(t *testing.T) {
	testenv.RequireRoot(t, "spawns processes under other uids, capabilities and user namespaces")
	lsms, _ := os.ReadFile("/sys/kernel/security/lsm")
	pre, err := live.Read(live.Options{MountSecurityFS: true})
	if err != nil {
		t.Fatal(err)
	}
	scope := -1
	if yamaActive(pre) {
		scope = pre.Kernel.YamaScope
	} else {
		t.Logf("Yama is not active on this kernel (security modules: %s): no PR_SET_PTRACER exception is spawned", strings.TrimSpace(string(lsms)))
	}
	procs := spawnLive(t, scope)
	sys, err := live.Read(live.Options{MountSecurityFS: true})
	if err != nil {
		t.Fatal(err)
	}
	m, err := report.Build(report.Input{Name: "live", Source: "live", World: sys.World, Live: sys}, report.Options{})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]int{}
	for _, p := range procs {
		byName[p.name] = p.pid
		if m.Target(p.pid) == nil {
			t.Fatalf("%s (pid %d) is not in the report", p.name, p.pid)
		}
	}
	checkLiveClasses(t, m, byName)
	t.Run("check", func(t *testing.T) { compareWithCheck(t, m, pre.World, procs) })
	t.Run("kernel", func(t *testing.T) { compareWithKernel(t, m, sys.Unmodelled, procs) })
}

// checkLiveClasses checks that the processes were read as spawned: what
// splits classes does, what does not does not.
func checkLiveClasses(t *testing.T, m *report.Machine, pid map[string]int) {
	t.Helper()
	w := m.World()
	task := func(name string) *kernel.Task { return w.TaskByPID(pid[name]) }
	a := pid["u1000"]
	for _, name := range []string{"u1000-twin", "u1000-sleep"} {
		if m.Principal(pid[name]) != m.Principal(a) || m.Target(pid[name]) != m.Target(a) {
			t.Errorf("%s is not in u1000's classes: %s/%s vs %s/%s", name, m.Principal(pid[name]).Key, m.Target(pid[name]).Key, m.Principal(a).Key, m.Target(a).Key)
		}
	}
	if m.Principal(pid["u1000-nodump"]) != m.Principal(a) || m.Target(pid["u1000-nodump"]) == m.Target(a) {
		t.Error("a non-dumpable process must share its principal class only")
	}
	if d := task("u1000-nodump").MM; d == nil || d.Dumpable != kernel.SuidDumpDisable {
		t.Errorf("u1000-nodump read with mm %+v", d)
	}
	for _, name := range []string{"u1000-groups", "u1000-gid1001", "u1001", "u1000-euid1001", "u1000-cap_sys_ptrace", "root-nocaps", "root-sys_ptrace-only", "userns-root-of-1000", "userns-unmapped-1001"} {
		if m.Principal(pid[name]) == m.Principal(a) || m.Target(pid[name]) == m.Target(a) {
			t.Errorf("%s shares a class with u1000", name)
		}
	}
	if c := task("u1000-cap_sys_ptrace").Cred; c.CapEffective != kernel.CapsOf(kernel.CapSysPtrace) {
		t.Errorf("u1000-cap_sys_ptrace read with caps %s", c.CapEffective)
	}
	if c := task("root-nocaps").Cred; c.EUID != 0 || c.CapPermitted != 0 {
		t.Errorf("root-nocaps read as euid %d caps %s", c.EUID, c.CapPermitted)
	}
	if c := task("u1000-euid1001").Cred; c.UID != 1000 || c.EUID != 1001 || c.SUID != 1000 {
		t.Errorf("u1000-euid1001 read as uids %d/%d/%d", c.UID, c.EUID, c.SUID)
	}
	for _, name := range []string{"userns-root-of-1000", "userns-unmapped-1001"} {
		if task(name).Cred.UserNS.IsInit() || !m.Principal(pid[name]).Container {
			t.Errorf("%s read in the initial user namespace", name)
		}
	}
	if r := m.Related(pid["parent"], pid["child"]); r != report.Descendant {
		t.Errorf("parent -> child: relation %q", r)
	}
	if r := m.Related(pid["tracer"], pid["tracee"]); pid["tracer"] != 0 && r != report.Descendant+"+"+report.Tracer {
		t.Errorf("tracer -> tracee: relation %q", r)
	}
	if r := m.Related(os.Getpid(), pid["child"]); r != report.Descendant {
		t.Errorf("the test -> its grandchild: relation %q", r)
	}
}

// pairSample lists the (caller, target) pairs compared with check: every
// ordered pair of the spawned processes, and a fixed random sample of
// spawned against system processes, both ways, and of system pairs.
//
// System processes are those of an earlier read too (same pid, same
// name), and those running for a minute or more when there are enough
// of them: the short-lived processes of tests running alongside would
// mostly be gone by the time check reads them.
func pairSample(m *report.Machine, earlier *kernel.World, procs []liveProc) [][2]int {
	spawned := map[int]bool{}
	var sp []int
	for _, p := range procs {
		spawned[p.pid] = true
		sp = append(sp, p.pid)
	}
	w := m.World()
	var sysTargets, sysCallers []int
	for _, t := range w.Tasks {
		if t.PID != t.TGID || spawned[t.PID] {
			continue
		}
		if e := earlier.TaskByPID(t.PID); e == nil || e.Name != t.Name {
			continue
		}
		sysTargets = append(sysTargets, t.PID)
		if m.Principal(t.PID) != nil {
			sysCallers = append(sysCallers, t.PID)
		}
	}
	old := func(pids []int) []int {
		var out []int
		for _, p := range pids {
			if age, ok := processAge(p); ok && age >= time.Minute {
				out = append(out, p)
			}
		}
		if len(out) < 20 {
			return pids
		}
		return out
	}
	sysTargets, sysCallers = old(sysTargets), old(sysCallers)
	slices.Sort(sysTargets)
	slices.Sort(sysCallers)
	rng := rand.New(rand.NewPCG(2026, 12))
	pick := func(from []int, n int) []int {
		from = slices.Clone(from)
		rng.Shuffle(len(from), func(i, j int) { from[i], from[j] = from[j], from[i] })
		return from[:min(n, len(from))]
	}
	var pairs [][2]int
	for _, c := range sp {
		for _, t := range sp {
			if c != t {
				pairs = append(pairs, [2]int{c, t})
			}
		}
	}
	for _, s := range sp {
		for _, t := range pick(sysTargets, 12) {
			pairs = append(pairs, [2]int{s, t})
		}
		for _, c := range pick(sysCallers, 12) {
			pairs = append(pairs, [2]int{c, s})
		}
	}
	me := os.Getpid()
	for _, c := range append(pick(sysCallers, 10), me) {
		for _, t := range pick(sysTargets, 6) {
			if c != t {
				pairs = append(pairs, [2]int{c, t})
			}
		}
	}
	return pairs
}

// processAge returns how long process pid has been running, from its
// start time in /proc/<pid>/stat (clock ticks of 1/100 s since boot).
func processAge(pid int) (time.Duration, bool) {
	stat, err1 := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	up, err2 := os.ReadFile("/proc/uptime")
	if err1 != nil || err2 != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 20 {
		return 0, false
	}
	ticks, err1 := strconv.ParseUint(f[19], 10, 64) // field 22, starttime
	upField, _, _ := strings.Cut(string(up), " ")
	uptime, err2 := strconv.ParseFloat(upField, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration((uptime - float64(ticks)/100) * float64(time.Second)), true
}

// pairResult is the comparison of one pair with check.
type pairResult struct {
	pair     [2]int
	vanished bool
	diffs    []string
	allowed  int // accesses allowed
	unknown  int // answers with unknowns
}

// comparePair runs check for every access of one pair and compares.
func comparePair(m *report.Machine, pair [2]int) pairResult {
	r := pairResult{pair: pair}
	ans, e, ok := m.Pair(pair[0], pair[1])
	if !ok {
		r.diffs = append(r.diffs, "no answer in the report")
		return r
	}
	for a := range report.NumAccess {
		got, err := runCheckCmd(pair[0], pair[1], a)
		if vanished(err) {
			r.vanished = true
			return r
		}
		if err != nil {
			r.diffs = append(r.diffs, fmt.Sprintf("%s: check: %v", a, err))
			continue
		}
		x := ans[a]
		if x.Allowed {
			r.allowed++
		}
		if len(x.Unknown) > 0 {
			r.unknown++
		}
		if x.Allowed != got.Allowed || x.Errno != got.Errno || x.Layer != got.Layer || unknownKinds(x.Unknown) != unknownKinds(got.Unknown) {
			r.diffs = append(r.diffs, fmt.Sprintf("%s: report allowed=%v errno=%s layer=%s unknown=[%s] (edge %s->%s %q), check allowed=%v errno=%s layer=%s unknown=[%s]",
				a, x.Allowed, x.Errno, x.Layer, unknownKinds(x.Unknown), e.Principal, e.Target, e.Relation, got.Allowed, got.Errno, got.Layer, unknownKinds(got.Unknown)))
		}
	}
	return r
}

func compareWithCheck(t *testing.T, m *report.Machine, earlier *kernel.World, procs []liveProc) {
	spawned := map[int]bool{}
	name := map[int]string{}
	for _, p := range procs {
		spawned[p.pid] = true
		name[p.pid] = p.name
	}
	w := m.World()
	label := func(pid int) string {
		if n := name[pid]; n != "" {
			return fmt.Sprintf("%s[%d]", n, pid)
		}
		if x := w.TaskByPID(pid); x != nil {
			return x.Name
		}
		return strconv.Itoa(pid)
	}
	pairs := pairSample(m, earlier, procs)
	start := time.Now()
	results := make([]pairResult, len(pairs))
	var wg sync.WaitGroup
	next := make(chan int)
	for range max(2, runtime.GOMAXPROCS(0)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				results[i] = comparePair(m, pairs[i])
			}
		}()
	}
	for i := range pairs {
		next <- i
	}
	close(next)
	wg.Wait()
	compared, gone, churn := 0, 0, 0
	allowed, unknown := 0, 0
	var again []pairResult
	for _, r := range results {
		switch {
		case r.vanished:
			gone++
		case len(r.diffs) == 0:
			compared++
			allowed += r.allowed
			unknown += r.unknown
		case spawned[r.pair[0]] && spawned[r.pair[1]]:
			t.Errorf("%s -> %s:\n\t%s", label(r.pair[0]), label(r.pair[1]), strings.Join(r.diffs, "\n\t"))
		default:
			again = append(again, r)
		}
	}
	if len(again) > 0 {
		// A system process may have changed (exec, setuid) since the
		// report read it: ask a fresh report, and fail only if the
		// disagreement stays.
		sys, err := live.Read(live.Options{MountSecurityFS: true})
		if err != nil {
			t.Fatal(err)
		}
		fresh, err := report.Build(report.Input{Name: "live", Source: "live", World: sys.World, Live: sys}, report.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, old := range again {
			r := comparePair(fresh, old.pair)
			_, _, inFresh := fresh.Pair(old.pair[0], old.pair[1])
			switch {
			case r.vanished || !inFresh:
				gone++
			case len(r.diffs) == 0:
				churn++
				compared++
				t.Logf("%s -> %s disagreed with the first report and agrees with a fresh one (the process changed): %s", label(r.pair[0]), label(r.pair[1]), strings.Join(old.diffs, "; "))
			default:
				t.Errorf("%s -> %s:\n\t%s", label(r.pair[0]), label(r.pair[1]), strings.Join(r.diffs, "\n\t"))
			}
		}
	}
	t.Logf("%d of %d pairs compared with procgate check, %d accesses each (%d allowed, %d denied, %d with unknowns; %d re-read after a change, %d skipped: a process exited), in %v",
		compared, len(pairs), report.NumAccess, allowed, compared*int(report.NumAccess)-allowed, unknown, churn, gone, time.Since(start).Round(time.Millisecond))
	if compared < 500 {
		t.Errorf("only %d pairs compared; the test asks for at least 500", compared)
	}
}

// oracleCreds maps a task's credentials to the oracle's: a process of the
// initial user namespace, or root (every id 0) of a namespace its owner
// made with only 0 mapped (unshare --user --map-root-user). ok is false
// for what the oracle cannot spawn.
func oracleCreds(t *kernel.Task) (oracle.Creds, bool) {
	c := &t.Cred
	if t.MM == nil || t.MM.UserNS != c.UserNS || t.MM.Dumpable > kernel.SuidDumpUser {
		return oracle.Creds{}, false
	}
	full := oracle.FullCaps()
	var oc oracle.Creds
	switch ns := c.UserNS; {
	case ns.IsInit():
		oc = oracle.Creds{RUID: uint32(c.UID), EUID: uint32(c.EUID), SUID: uint32(c.SUID), FSUID: uint32(c.FSUID),
			RGID: uint32(c.GID), EGID: uint32(c.EGID), SGID: uint32(c.SGID), FSGID: uint32(c.FSGID),
			CapEff: uint64(c.CapEffective), CapPrm: uint64(c.CapPermitted)}
		for _, g := range c.Groups {
			oc.Groups = append(oc.Groups, uint32(g))
		}
		if oc.CapPrm&^full != 0 {
			return oracle.Creds{}, false
		}
	case ns.Parent.IsInit() && len(ns.UIDMap) == 1 && len(ns.GIDMap) == 1 && len(c.Groups) == 0 &&
		ns.UIDMap[0] == kernel.IDExtent{Inside: 0, Outside: uint32(ns.Owner), Count: 1} &&
		ns.GIDMap[0].Inside == 0 && ns.GIDMap[0].Count == 1 &&
		c.UID == ns.Owner && c.EUID == ns.Owner && c.SUID == ns.Owner && c.FSUID == ns.Owner &&
		uint32(c.GID) == ns.GIDMap[0].Outside && c.EGID == c.GID && c.SGID == c.GID && c.FSGID == c.GID &&
		c.CapEffective == c.CapPermitted && c.CapPermitted&kernel.CapsOf(kernel.CapSysPtrace, kernel.CapSysAdmin) != 0 &&
		uint64(c.CapPermitted)&full == full:
		// Root of its namespace with every capability there. A new
		// namespace's root holds every capability, the bounding set
		// notwithstanding; the oracle's root holds those of the bounding
		// set. Across namespaces no ptrace check reads the target's set,
		// and a caller's capabilities in its own namespace reach no
		// process outside it, so the two answer alike.
		oc = oracle.Root(full).InNS(oracle.UserNS{Kind: oracle.NSOwned, Owner: uint32(ns.Owner), OwnerGID: ns.GIDMap[0].Outside})
	default:
		return oracle.Creds{}, false
	}
	oc.Dumpable = int(t.MM.Dumpable)
	return oc, true
}

// kernelProbe is the oracle probe whose kernel check is an access's
// ptrace mode: readlink exe (proc_fd_access_allowed, READ_FSCREDS), kcmp
// (READ_REALCREDS), PTRACE_SEIZE (ATTACH_REALCREDS) and opening mem
// (ATTACH_FSCREDS, after the file's DAC check).
var kernelProbe = map[report.Access]oracle.Probe{
	report.ReadFS:     oracle.ProbeExe,
	report.ReadReal:   oracle.ProbeKcmp,
	report.AttachReal: oracle.ProbePtraceSeize,
	report.AttachFS:   oracle.ProbeMem,
}

func compareWithKernel(t *testing.T, m *report.Machine, unmodelled []string, procs []liveProc) {
	w := m.World()
	mem, err := kernel.LookupEntry("mem")
	if err != nil {
		t.Fatal(err)
	}
	type job struct {
		c, t    *kernel.Task
		name    string
		ans     report.Answers
		compare []report.Access
	}
	var jobs []job
	var cases []oracle.Case
	skipped := map[string]int{}
	unmappable := map[string]bool{}
	callers := append([]liveProc{{"procgate.test", os.Getpid()}}, procs...)
	for _, cp := range callers {
		for _, tp := range procs {
			if cp.pid == tp.pid {
				continue
			}
			c, tg := w.TaskByPID(cp.pid), w.TaskByPID(tp.pid)
			ans, _, ok := m.Pair(cp.pid, tp.pid)
			if !ok {
				t.Errorf("%s -> %s: no answer in the report", cp.name, tp.name)
				continue
			}
			co, ok1 := oracleCreds(c)
			to, ok2 := oracleCreds(tg)
			if !ok1 || !ok2 {
				unmappable[map[bool]string{true: tp.name, false: cp.name}[ok1]] = true
				skipped["credentials the oracle cannot spawn"]++
				continue
			}
			rel := oracle.RelSibling
			switch m.Related(cp.pid, tp.pid) {
			case report.Unrelated:
			case report.Descendant:
				if !c.Cred.UserNS.IsInit() || !tg.Cred.UserNS.IsInit() || tg.Parent == nil || tg.Parent.TGID != c.TGID {
					skipped["a descendant the oracle cannot spawn (not a direct child, or a user namespace)"]++
					continue
				}
				rel = oracle.RelParent
			default:
				skipped["traced or excepted"]++
				continue
			}
			if tg.Tracer != nil {
				skipped["traced"]++
				continue
			}
			// Compare the accesses whose answer is known: no unknowns but
			// Landlock's (the oracle's processes, like these, are in no
			// Landlock domain; checked below).
			var cmp []report.Access
			for a := report.ReadFS; a < report.NumAccess; a++ {
				if k := unknownKinds(ans[a].Unknown); k == "" || k == "landlock" {
					cmp = append(cmp, a)
				}
			}
			if len(cmp) == 0 {
				skipped["every answer depends on an unknown"]++
				continue
			}
			var probes []oracle.Probe
			for _, a := range cmp {
				probes = append(probes, kernelProbe[a])
			}
			jobs = append(jobs, job{c, tg, cp.name + " -> " + tp.name, ans, cmp})
			cases = append(cases, oracle.Case{Name: cp.name + " -> " + tp.name, Prober: co, Target: to, Relation: rel, Probes: probes})
		}
	}
	if len(cases) == 0 {
		if len(unmodelled) > 0 {
			t.Skipf("!!! SKIPPED: no pair to run on the kernel: the active modules %v, whose policy the model does not read, leave every answer unknown; skipped %v", unmodelled, skipped)
		}
		t.Fatalf("no pair to run on the kernel; skipped %v", skipped)
	}
	r, err := oracle.NewRunner(oracle.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	res, err := r.Run(ctx, cases)
	if err != nil {
		t.Fatal(err)
	}
	pairs, accesses, dacFirst := 0, 0, 0
	outcomes := map[string]int{} // access and kernel answer: the comparisons are not all alike
	for i, x := range res {
		j := jobs[i]
		if x.Err != nil {
			t.Errorf("%s: the oracle refused the case: %v", j.name, x.Err)
			continue
		}
		if x.Prober.Landlocked || x.Target.Landlocked {
			t.Errorf("%s: the oracle's processes run in a Landlock domain; Landlock's unknown is not resolved", j.name)
			continue
		}
		n := 0
		for _, a := range j.compare {
			p, ok := x.Probe(kernelProbe[a])
			if !ok {
				t.Errorf("%s: probe %s not run", j.name, kernelProbe[a])
				continue
			}
			if a == report.AttachFS {
				// mem is a 0600 file: the model's whole decision for it
				// must be the kernel's, and the mode's answer is the
				// kernel's when the file's own checks let it through.
				d := w.CheckEntry(j.c, j.t, mem)
				if d.Allowed != p.OK() {
					t.Errorf("%s: open mem: kernel %s (%s), model %s [%s]", j.name, p.Result, p.Detail, d.Result(), d.Layer)
				}
				if !d.Allowed && (d.Layer == kernel.LayerDAC || d.Layer == kernel.LayerMM) {
					dacFirst++
					continue
				}
			}
			n++
			outcomes[fmt.Sprintf("%s=%s", a, p.Result)]++
			if got := j.ans[a]; got.Allowed != p.OK() {
				t.Errorf("%s %s: report allowed=%v errno=%s layer=%s; kernel %s: %s %s", j.name, a, got.Allowed, got.Errno, got.Layer, kernelProbe[a], p.Result, p.Detail)
			}
		}
		accesses += n
		if n > 0 {
			pairs++
		}
	}
	t.Logf("%d pairs (%d accesses) compared with the kernel in %v; %d mem opens decided by the file's own check; kernel answers %v; not run: %v (the oracle cannot spawn %v)",
		pairs, accesses, time.Since(start).Round(time.Millisecond), dacFirst, outcomes, skipped, slices.Sorted(maps.Keys(unmappable)))
	switch {
	case pairs < 50 && len(unmodelled) == 0:
		t.Errorf("only %d pairs compared with the kernel; the test asks for about 50", pairs)
	case pairs < 50:
		t.Logf("only %d pairs compared with the kernel: the active modules %v, whose policy the model does not read, leave the others unknown", pairs, unmodelled)
	}
}
