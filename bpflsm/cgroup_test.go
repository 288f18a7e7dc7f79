package bpflsm

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/internal/proctest"
	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/bpf"
	"github.com/procgate/procgate/procfs"
)

// hookProgs are the hooks' decision as bench_hook_btf and
// bench_hook_probe make it (the caller the subject, its parent the
// target), on j's maps.
type hookProgs struct {
	BTF   *ebpf.Program `ebpf:"bench_hook_btf"`
	Probe *ebpf.Program `ebpf:"bench_hook_probe"`
	Out   *ebpf.Map     `ebpf:"bench_out"`
}

func loadHooks(tb testing.TB, j *judge) *hookProgs {
	var h hookProgs
	if err := j.spec.Copy().LoadAndAssign(&h, &ebpf.CollectionOptions{MapReplacements: map[string]*ebpf.Map{
		"rulesets": j.rulesets, "pairsets": j.pairsets, "bench_ids": j.ids,
	}}); err != nil {
		tb.Fatalf("load bench_hook: %v", err)
	}
	tb.Cleanup(func() {
		h.BTF.Close()
		h.Probe.Close()
		h.Out.Close()
	})
	return &h
}

// denies runs prog once for access a and reports whether it denied.
func (h *hookProgs) denies(tb testing.TB, j *judge, prog *ebpf.Program, a bpf.Access) bool {
	tb.Helper()
	if err := j.ids.Put(uint32(2), ptraceIds{Euid: uint32(a)}); err != nil {
		tb.Fatal(err)
	}
	if err := h.Out.Put(uint32(0), ptraceBenchOut{}); err != nil {
		tb.Fatal(err)
	}
	if _, err := prog.Run(&ebpf.RunOptions{}); err != nil {
		tb.Fatal(err)
	}
	var out ptraceBenchOut
	if err := h.Out.Lookup(uint32(0), &out); err != nil {
		tb.Fatal(err)
	}
	if out.Judged != 1 {
		tb.Fatalf("the hook judged %d times, want 1", out.Judged)
	}
	return out.Denied == 1
}

// cgroupOf returns pid's cgroup v2 path.
func cgroupOf(tb testing.TB, pid int) string {
	tb.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		tb.Fatal(err)
	}
	p, ok := procfs.CgroupV2Path(string(b))
	if !ok {
		tb.Fatalf("no cgroup v2 line in /proc/%d/cgroup", pid)
	}
	return p
}

// TestHookCgroups runs the hooks' decision, in this machine's kernel,
// with the test process moved through real cgroups v2 and its parent
// where it is, under rule sets of each kind of cgroup selector, and
// requires the model's answer (kernel/lsm/bpf) each time: the program's
// reads of struct cgroup (ancestors[], kernfs names and ids) checked
// against the cgroup file system.
func TestHookCgroups(t *testing.T) {
	j := newJudge(t)
	h := loadHooks(t, j)
	if err := Servable(&bpf.RuleSet{Classes: []bpf.Class{{Clauses: []bpf.Clause{{Kind: bpf.KindCgroup}}}}}); err != nil {
		t.Skipf("this kernel cannot serve cgroup selectors: %v", err)
	}
	mount := procfs.Cgroup2Mount("/sys")
	if mount == "" {
		t.Skip("no cgroup v2 mount under /sys/fs/cgroup")
	}
	orig := cgroupOf(t, os.Getpid())
	baseRel := fmt.Sprintf("/procgate-test-%d", os.Getpid())
	dirs := []string{baseRel, baseRel + "/svc.service", baseRel + "/svc.service/inner", baseRel + "/other", baseRel + "/other/svc.service"}
	for _, d := range dirs {
		if err := os.Mkdir(filepath.Join(mount, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	moveTo := func(rel string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(mount, rel, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
			t.Fatalf("move the test into %s: %v", rel, err)
		}
	}
	t.Cleanup(func() {
		moveTo(orig)
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := unix.Rmdir(filepath.Join(mount, dirs[i])); err != nil {
				t.Errorf("rmdir %s: %v", dirs[i], err)
			}
		}
	})
	nodes := func(rel string) []kernel.CgroupNode {
		t.Helper()
		n, err := procfs.CgroupNodes(mount, rel)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	base := nodes(baseRel)
	level := uint32(len(base) - 1)
	baseID, baseParent := base[level].ID, base[level-1].ID
	sels := []struct {
		name string
		cl   bpf.Clause
	}{
		{"svc.service itself", bpf.Clause{Cgroups: []bpf.CgroupSel{{Parent: baseID, Level: level + 1, Name: "svc.service", Self: true}}}},
		{"below svc.service", bpf.Clause{Cgroups: []bpf.CgroupSel{{Parent: baseID, Level: level + 1, Name: "svc.service", Below: true}}}},
		{"svc.service and below", bpf.Clause{Cgroups: []bpf.CgroupSel{{Parent: baseID, Level: level + 1, Name: "svc.service", Self: true, Below: true}}}},
		{"below the test's base", bpf.Clause{Cgroups: []bpf.CgroupSel{{Parent: baseParent, Level: level, Name: base[level].Name, Below: true}}}},
		{"every cgroup", bpf.Clause{Cgroups: []bpf.CgroupSel{{Root: true}}}},
		{"another parent", bpf.Clause{Cgroups: []bpf.CgroupSel{{Parent: baseID + 1<<40, Level: level + 1, Name: "svc.service", Self: true}}}},
		{"a name's prefix", bpf.Clause{Cgroups: []bpf.CgroupSel{{Parent: baseID, Level: level + 1, Name: "svc.servic", Self: true}}}},
		{"not below the base", bpf.Clause{Not: true, Cgroups: []bpf.CgroupSel{{Parent: baseParent, Level: level, Name: base[level].Name, Below: true}}}},
		{"one of two", bpf.Clause{Cgroups: []bpf.CgroupSel{{Parent: baseID, Level: level + 1, Name: "nothing", Self: true}, {Parent: baseID, Level: level + 1, Name: "other", Self: true, Below: true}}}},
	}
	parent := bpf.Match{Cgroup: nodes(cgroupOf(t, os.Getppid()))}
	var judged, denied int
	for _, place := range append([]string{orig}, dirs...) {
		moveTo(place)
		self := bpf.Match{Cgroup: nodes(place)}
		for _, sel := range sels {
			cl := sel.cl
			cl.Kind = bpf.KindCgroup
			class := []bpf.Class{{Name: sel.name, Clauses: []bpf.Clause{cl}}, {Name: "any"}}
			for _, rs := range []*bpf.RuleSet{
				{Classes: class, Rules: []bpf.Rule{{Subject: 0, Target: 1, Access: bpf.Read, Text: "deny"}}},
				{Classes: class, Rules: []bpf.Rule{{Subject: -1, Target: 0, Access: bpf.Read, Text: "protect"}}},
			} {
				j.load(t, rs)
				want := rs.Decide(self, parent, bpf.Read) != nil
				for _, p := range []struct {
					name string
					prog *ebpf.Program
				}{{"btf", h.BTF}, {"probe", h.Probe}} {
					got := h.denies(t, j, p.prog, bpf.Read)
					judged++
					if got {
						denied++
					}
					if got != want {
						t.Errorf("in %s, %s %s (%s reads): the program denies %v, the model %v", place, rs.Rules[0].Text, sel.name, p.name, got, want)
					}
				}
			}
		}
	}
	t.Logf("%d decisions in %d cgroups, %d denied", judged, len(dirs)+1, denied)
	if denied == 0 || denied == judged {
		t.Errorf("%d of %d denied: the cases do not tell the selectors apart", denied, judged)
	}
}

// pidnsOf returns the inode of pid's pid namespace (its ns/pid link).
func pidnsOf(tb testing.TB, pid int) uint32 {
	tb.Helper()
	var st unix.Stat_t
	if err := unix.Stat("/proc/"+strconv.Itoa(pid)+"/ns/pid", &st); err != nil {
		tb.Fatal(err)
	}
	return uint32(st.Ino)
}

// TestHookPIDNS runs the hooks' decision, in this machine's kernel, under
// rule sets with pid namespace clauses (the policy's container
// selectors) on the test process and its parent, and requires the
// model's answer: the program's read of thread_pid->numbers[level].ns
// checked against the tasks' ns/pid links.
func TestHookPIDNS(t *testing.T) {
	j := newJudge(t)
	h := loadHooks(t, j)
	self := bpf.Match{PIDNS: pidnsOf(t, os.Getpid())}
	parent := bpf.Match{PIDNS: pidnsOf(t, os.Getppid())}
	pidns := func(not bool, inodes ...uint32) bpf.Clause {
		cl := bpf.Clause{Kind: bpf.KindPIDNS, Not: not}
		for _, n := range inodes {
			cl.IDs = append(cl.IDs, bpf.IDRange{Lo: n, Hi: n})
		}
		return cl
	}
	var denied, judged int
	for _, cl := range []bpf.Clause{
		pidns(false, self.PIDNS), pidns(true, self.PIDNS), pidns(false, self.PIDNS+1), pidns(true, self.PIDNS+1),
		pidns(false, 1, parent.PIDNS), pidns(true, 1, 2),
	} {
		class := []bpf.Class{{Name: cl.String(), Clauses: []bpf.Clause{cl}}, {Name: "any"}}
		for _, rs := range []*bpf.RuleSet{
			{Classes: class, Rules: []bpf.Rule{{Subject: 0, Target: 1, Access: bpf.Attach, Text: "deny"}}},
			{Classes: class, Rules: []bpf.Rule{{Subject: -1, Target: 0, Access: bpf.Attach, Text: "protect"}}},
		} {
			j.load(t, rs)
			want := rs.Decide(self, parent, bpf.Attach) != nil
			for _, prog := range []*ebpf.Program{h.BTF, h.Probe} {
				got := h.denies(t, j, prog, bpf.Attach)
				judged++
				if got {
					denied++
				}
				if got != want {
					t.Errorf("%s {%s}: the program denies %v, the model %v", rs.Rules[0].Text, cl, got, want)
				}
			}
		}
	}
	if denied == 0 || denied == judged {
		t.Errorf("%d of %d denied: the cases do not tell the clauses apart", denied, judged)
	}
}

// hookHelper is a helper process (runHookHelper) running the hooks'
// decision as the subject, its parent (this process) the target.
type hookHelper struct {
	pid     int
	stdin   io.WriteCloser
	answers *bufio.Reader
}

// startHookHelper starts a helper on j's and h's maps, pinned in a bpffs
// of the test's own, with extra clone flags and, when caps is not nil,
// the capability set its thread keeps.
func startHookHelper(t *testing.T, j *judge, h *hookProgs, cloneflags uintptr, caps *kernel.CapSet) *hookHelper {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mount bpffs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	for name, m := range map[string]*ebpf.Map{"rulesets": j.rulesets, "pairsets": j.pairsets, "bench_ids": j.ids, "bench_out": h.Out} {
		if err := m.Pin(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), envHookHelper+"="+dir)
	if caps != nil {
		cmd.Env = append(cmd.Env, envHookCaps+"="+strconv.FormatUint(uint64(*caps), 16))
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: cloneflags}
	in, out := proctest.StartRole(t, cmd, false)
	hh := &hookHelper{pid: cmd.Process.Pid, stdin: in, answers: out}
	if line, err := out.ReadString('\n'); line != "ready\n" {
		t.Fatalf("the helper did not start: %q %v", line, err)
	}
	return hh
}

// denies runs the hook (btf or probe) once in the helper.
func (hh *hookHelper) denies(t *testing.T, prog string) bool {
	t.Helper()
	if _, err := fmt.Fprintln(hh.stdin, prog); err != nil {
		t.Fatal(err)
	}
	line, err := hh.answers.ReadString('\n')
	if err != nil {
		t.Fatalf("the helper answered nothing: %v", err)
	}
	return line == "1\n"
}

// runHelperCases runs the helper's hooks under one rule set per class
// and kind of rule (a deny of its class to any target, a protect of
// its class), requiring the model's answer for helper and self.
func runHelperCases(t *testing.T, j *judge, hh *hookHelper, helper, self bpf.Match, a bpf.Access, clauses []bpf.Clause) {
	t.Helper()
	if err := j.ids.Put(uint32(2), ptraceIds{Euid: uint32(a)}); err != nil {
		t.Fatal(err)
	}
	var denied, judged int
	for _, cl := range clauses {
		class := []bpf.Class{{Name: cl.String(), Clauses: []bpf.Clause{cl}}, {Name: "any"}}
		for _, rs := range []*bpf.RuleSet{
			{Classes: class, Rules: []bpf.Rule{{Subject: 0, Target: 1, Access: a, Text: "deny"}}},
			{Classes: class, Rules: []bpf.Rule{{Subject: -1, Target: 0, Access: a, Text: "protect"}}},
		} {
			j.load(t, rs)
			want := rs.Decide(helper, self, a) != nil
			for _, prog := range []string{"btf", "probe"} {
				got := hh.denies(t, prog)
				judged++
				if got {
					denied++
				}
				if got != want {
					t.Errorf("%s {%s} (%s reads): the program denies %v, the model %v", rs.Rules[0].Text, cl, prog, got, want)
				}
			}
		}
	}
	if denied == 0 || denied == judged {
		t.Errorf("%d of %d denied: the cases do not tell the clauses apart", denied, judged)
	}
}

// TestHookPIDNSNested: the same in a pid namespace below the initial one
// (a container's), where the program reads the pid's last level: a
// helper process started in a new pid namespace runs the hooks'
// decision as the subject, with this process, in the initial one, as
// its parent (the target), under rule sets naming either namespace.
func TestHookPIDNSNested(t *testing.T) {
	j := newJudge(t)
	h := loadHooks(t, j)
	hh := startHookHelper(t, j, h, syscall.CLONE_NEWPID, nil)
	helper := bpf.Match{PIDNS: pidnsOf(t, hh.pid)}
	self := bpf.Match{PIDNS: pidnsOf(t, os.Getpid())}
	if helper.PIDNS == self.PIDNS {
		t.Fatalf("the helper shares the test's pid namespace %d", self.PIDNS)
	}
	pidns := func(not bool, n uint32) bpf.Clause {
		return bpf.Clause{Kind: bpf.KindPIDNS, Not: not, IDs: []bpf.IDRange{{Lo: n, Hi: n}}}
	}
	runHelperCases(t, j, hh, helper, self, bpf.Read, []bpf.Clause{pidns(false, helper.PIDNS), pidns(true, helper.PIDNS), pidns(false, self.PIDNS), pidns(true, self.PIDNS)})
}

// TestHookCaps: cap clauses on the permitted capability sets, read by
// the program from two real tasks' credentials: a helper whose thread
// keeps only CAP_SYS_ADMIN, CAP_BPF and CAP_PERFMON (what running the
// programs needs) as the subject, this process (root, every capability)
// as the target.
func TestHookCaps(t *testing.T) {
	j := newJudge(t)
	h := loadHooks(t, j)
	keep := kernel.CapsOf(kernel.CapSysAdmin, kernel.CapBPF, kernel.CapPerfmon)
	hh := startHookHelper(t, j, h, 0, &keep)
	st, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	var prm uint64
	for line := range strings.Lines(string(st)) {
		if v, ok := strings.CutPrefix(line, "CapPrm:"); ok {
			prm, _ = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	helper, self := bpf.Match{CapPermitted: keep}, bpf.Match{CapPermitted: kernel.CapSet(prm)}
	caps := func(not bool, cs ...kernel.Cap) bpf.Clause {
		return bpf.Clause{Kind: bpf.KindCap, Not: not, Caps: kernel.CapsOf(cs...)}
	}
	runHelperCases(t, j, hh, helper, self, bpf.Attach, []bpf.Clause{
		caps(false, kernel.CapSysPtrace), caps(true, kernel.CapSysPtrace), caps(false, kernel.CapSysAdmin),
		caps(false, kernel.CapNetRaw, kernel.CapBPF), caps(true, kernel.CapCheckpointRestore),
	})
}
