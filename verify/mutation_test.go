package verify

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/oracle"
)

// The mutation test: is the case generator strong enough that a wrong
// rule in the model cannot pass the verification? It builds model
// variants ("mutants"), each with one rule changed, and requires each one
// to be killed: to answer at least one probe of at least one case
// differently from the real kernel.
//
// The kernel is observed once: the host sample that TestHostKernelAgrees
// runs (hostObservation), the feature cases (oracle.VMFeatureCases, with
// zombie targets) on the host, and the VM console logs captured by make
// verify-vm (testdata/*.log.gz, copies of .cache/vm's logs of Debian's
// bullseye 5.10, bookworm 6.1, bookworm-backports 6.12 and trixie 6.12
// kernels: Yama at scopes 0-3 with AppArmor, and SELinux; the logs in
// .cache/vm are read too when present). Each mutant then re-predicts every
// case in the world built for it; no process is spawned per mutant. Only
// probes the real model answers correctly count: a mutant is killed by a
// probe where the model agrees with the kernel and the mutant does not.
//
// The mutants (mutants below):
//
//   - features: every Features flag flipped;
//   - hook: every security module's ptrace_access_check inverted for one
//     of the four modes, where the module examines the question (a
//     PtraceSkipper's skipped questions stay skipped); the capable() hook
//     inverted for one capability of the ones the rules ask for (the
//     modules with a capable rule: capability, apparmor, selinux); the
//     SELinux inode permission hook inverted for read and for search;
//   - step: the same-thread-group, ids, dumpable and commoncap steps of
//     __ptrace_may_access each skipped (kernel.Mutation.Skip);
//   - creds: FSCREDS and REALCREDS swapped (kernel.Mutation.SwapCreds);
//   - entry: each probed /proc entry's ptrace mode changed to each other
//     mode, its errno changed (entries whose rule returns the catalog's
//     errno), and its permission bits changed: the bits the probe needs
//     toggled for others (entries whose inode mode the VFS checks; links
//     have none). The catalog is not edited: kernel.Mutation.Entry
//     stands in for one entry.
//
// A mutant no observed case can kill is either equivalent (no case
// could tell it from the model on the kernels verified) or unreachable
// (only a target the oracle cannot make, such as a zombie, tells them
// apart); such mutants are listed in mutantExclusions with the reason,
// and an exclusion that stops being true (the mutant is killed) fails the
// test. Any other survivor fails it: the generator lacks a case.

// exclusion says why a mutant cannot be killed by the cases observed.
type exclusion struct {
	// kind is "equivalent" (no case any oracle could run tells the two
	// rules apart: the mutant changes nothing on the kernels verified) or
	// "unreachable" (a kernel tells them apart, but only for a target the
	// oracle cannot make).
	kind, reason string
}

// mutantExclusions are the mutants no observed case can kill (the host
// and Debian's 5.10, 6.1 and 6.12 under qemu), each with why. They are run
// anyway: a killed one fails the test until it is removed here.
var mutantExclusions = map[string]exclusion{
	"hook yama ptrace_access_check read_fscreds": {"equivalent", "Yama does not examine READ modes (yama_ptrace_access_check returns 0 " +
		"unless PTRACE_MODE_ATTACH): the module skips the question, so there is no answer to invert"},
	"hook yama ptrace_access_check read_realcreds": {"equivalent", "as read_fscreds: Yama skips READ modes"},
	"hook apparmor capable perfmon": {"equivalent", "AppArmor runs only on the VMs' Debian 5.10, 6.1 and 6.12, where no rule asks for CAP_PERFMON: " +
		"the mm_access READ shortcut (PerfmonMMAccess) is v6.15"},
	"hook apparmor capable sys_admin": {"equivalent", "AppArmor runs only on Debian 5.10-6.12, where CAP_SYS_ADMIN is asked only by the v6.15 " +
		"mm_access shortcut and by entries no probe opens (stack, map_files/…:open)"},
	"hook selinux capable perfmon":   {"equivalent", "as AppArmor's: SELinux runs only on Debian 5.10-6.12, which have no CAP_PERFMON shortcut"},
	"hook selinux capable sys_admin": {"equivalent", "as AppArmor's: on Debian 5.10-6.12 no probed rule asks for CAP_SYS_ADMIN"},
}

// mutantCaps are the capabilities whose capable() answer a hook mutant
// inverts: the ones the probed rules ask for.
var mutantCaps = []kernel.Cap{kernel.CapSysPtrace, kernel.CapDACReadSearch, kernel.CapDACOverride, kernel.CapSysAdmin, kernel.CapPerfmon}

// stubCapable are modules whose capable() hook allows everything: there
// is no rule to invert (procgate's BPF LSM program attaches to the
// ptrace hooks only).
var stubCapable = []string{"landlock", "yama", "smack", "bpf"}

// wellFormedModes are the four modes the kernel passes.
var wellFormedModes = []kernel.Mode{kernel.ReadFSCreds, kernel.ReadRealCreds, kernel.AttachFSCreds, kernel.AttachRealCreds}

// observation is one case the kernel answered, with the model's world for
// it.
type observation struct {
	source         string // "host" or the log's name
	index          int
	name           string
	w              *kernel.World
	caller, target *kernel.Task
	kernel         []oracle.ProbeResult
	access         []Access
	agree          []bool // the real model agrees with the kernel
}

// firstKill predicts every probe the real model gets right in the world
// as it is (mutated) and returns the first that differs from the kernel.
func (o *observation) firstKill() (int, oracle.ProbeResult, bool) {
	for j, a := range o.access {
		if !o.agree[j] {
			continue
		}
		got := Answer(o.kernel[j].Probe, a.Decide(o.w, o.caller, o.target, false))
		if !Same(o.kernel[j], got) {
			return j, got, true
		}
	}
	return 0, oracle.ProbeResult{}, false
}

func observe(source string, index int, name string, k Kernel, c oracle.Case, r oracle.Result) (*observation, error) {
	w, caller, target, err := World(k, c, r)
	if err != nil {
		return nil, err
	}
	o := &observation{source: source, index: index, name: name, w: w, caller: caller, target: target, kernel: r.Probes}
	for _, p := range r.Probes {
		a, err := AccessOf(p.Probe)
		if err != nil {
			return nil, err
		}
		o.access = append(o.access, a)
		o.agree = append(o.agree, Same(p, Answer(p.Probe, a.Decide(w, caller, target, false))))
	}
	return o, nil
}

// mutant is the model with one rule changed. apply changes the world and
// returns how to undo it, or nil when the rule does not exist in that
// world (a module it lacks).
type mutant struct {
	name  string
	apply func(w *kernel.World) (undo func())
	// reached counts the calls that met the changed rule, for hook
	// mutants (nil for the others).
	reached *int
}

// invertedLSM is a module with one hook's answer inverted for one mode,
// capability or inode access: allowed becomes denied and denied allowed.
// Questions the module skips (PtraceSkipper) stay skipped.
type invertedLSM struct {
	kernel.LSM
	hook    string
	mode    kernel.Mode
	cap     kernel.Cap
	access  kernel.InodeAccess
	reached *int
}

const (
	hookPtrace  = "ptrace_access_check"
	hookCapable = "capable"
	hookInode   = "inode_permission"
)

func invert(errno, deny kernel.Errno) kernel.Errno {
	if errno == kernel.OK {
		return deny
	}
	return kernel.OK
}

func (m invertedLSM) PtraceSkip(tracer, tracee *kernel.Task, mode kernel.Mode) string {
	if s, ok := m.LSM.(kernel.PtraceSkipper); ok {
		return s.PtraceSkip(tracer, tracee, mode)
	}
	return ""
}

func (m invertedLSM) TracemeSkip(parent, child *kernel.Task) string {
	if s, ok := m.LSM.(kernel.TracemeSkipper); ok {
		return s.TracemeSkip(parent, child)
	}
	return ""
}

func (m invertedLSM) PtraceAccessCheck(e kernel.Env, tracer, tracee *kernel.Task, mode kernel.Mode) kernel.Errno {
	errno := m.LSM.PtraceAccessCheck(e, tracer, tracee, mode)
	if m.hook == hookPtrace && mode&^kernel.ModeNoAudit == m.mode {
		*m.reached++
		return invert(errno, kernel.EPERM)
	}
	return errno
}

func (m invertedLSM) Capable(e kernel.Env, t *kernel.Task, ns *kernel.UserNS, c kernel.Cap, noaudit bool) kernel.Errno {
	errno := m.LSM.Capable(e, t, ns, c, noaudit)
	if m.hook == hookCapable && c == m.cap {
		*m.reached++
		return invert(errno, kernel.EPERM)
	}
	return errno
}

func (m invertedLSM) ProcInodePermission(e kernel.Env, caller, target *kernel.Task, class kernel.InodeClass, access kernel.InodeAccess, name string) kernel.Errno {
	pc, ok := m.LSM.(kernel.ProcInodeChecker)
	if !ok {
		return kernel.OK
	}
	errno := pc.ProcInodePermission(e, caller, target, class, access, name)
	if m.hook == hookInode && access == m.access {
		*m.reached++
		return invert(errno, kernel.EACCES)
	}
	return errno
}

// hookMutant wraps module mod in every world that has it.
func hookMutant(mod, what string, inv invertedLSM) mutant {
	inv.reached = new(int)
	return mutant{name: fmt.Sprintf("hook %s %s %s", mod, inv.hook, what), reached: inv.reached, apply: func(w *kernel.World) func() {
		i := slices.IndexFunc(w.LSMs, func(m kernel.LSM) bool { return m.Name() == mod })
		if i < 0 {
			return nil
		}
		saved := w.LSMs
		w.LSMs = slices.Clone(saved)
		x := inv
		x.LSM = saved[i]
		w.LSMs[i] = x
		return func() { w.LSMs = saved }
	}}
}

func modeName(m kernel.Mode) string { return (m &^ kernel.ModeNoAudit).String() }

// mutants lists every mutant for the modules seen in the observed worlds.
func mutants(modules []string) []mutant {
	var out []mutant
	ft := reflect.TypeOf(kernel.Features{})
	for i := range ft.NumField() {
		f := ft.Field(i)
		if f.Type.Kind() != reflect.Bool {
			continue
		}
		out = append(out, mutant{name: "features: " + f.Name + " flipped", apply: func(w *kernel.World) func() {
			v := reflect.ValueOf(&w.Features).Elem().Field(i)
			v.SetBool(!v.Bool())
			return func() { v.SetBool(!v.Bool()) }
		}})
	}
	for _, mod := range modules {
		for _, m := range wellFormedModes {
			out = append(out, hookMutant(mod, m.String(), invertedLSM{hook: hookPtrace, mode: m}))
		}
		if !slices.Contains(stubCapable, mod) {
			for _, c := range mutantCaps {
				out = append(out, hookMutant(mod, c.String(), invertedLSM{hook: hookCapable, cap: c}))
			}
		}
		if mod == "selinux" {
			for _, a := range []kernel.InodeAccess{kernel.InodeRead, kernel.InodeSearch} {
				out = append(out, hookMutant(mod, a.String(), invertedLSM{hook: hookInode, access: a}))
			}
		}
	}
	for _, s := range []struct {
		name string
		step kernel.PtraceSteps
	}{
		{"thread group", kernel.SkipThreadGroup}, {"ids", kernel.SkipIDs},
		{"dumpable", kernel.SkipDumpable}, {"commoncap", kernel.SkipCommoncap},
	} {
		out = append(out, mutant{name: "step: " + s.name + " skipped", apply: func(w *kernel.World) func() {
			w.Mutation.Skip = s.step
			return func() { w.Mutation.Skip = 0 }
		}})
	}
	out = append(out, mutant{name: "creds: FSCREDS and REALCREDS swapped", apply: func(w *kernel.World) func() {
		w.Mutation.SwapCreds = true
		return func() { w.Mutation.SwapCreds = false }
	}})
	entry := func(name string, e kernel.Entry) mutant {
		return mutant{name: name, apply: func(w *kernel.World) func() {
			w.Mutation.Entry = &e
			return func() { w.Mutation.Entry = nil }
		}}
	}
	for _, p := range oracle.AllProbes {
		a, err := AccessOf(p)
		if err != nil || a.Entry == nil {
			continue
		}
		ent := *a.Entry
		if ent.Mode != 0 {
			for _, m := range wellFormedModes {
				if m == ent.Mode&^kernel.ModeNoAudit {
					continue
				}
				e := ent
				e.Mode = m | ent.Mode&kernel.ModeNoAudit
				out = append(out, entry(fmt.Sprintf("entry %s: mode %s→%s", ent.Name, modeName(ent.Mode), modeName(m)), e))
			}
		}
		if entryRuleReadsErrno(ent.Check) {
			e := ent
			e.Errno = kernel.EACCES
			if ent.Errno == kernel.EACCES {
				e.Errno = kernel.EPERM
			}
			out = append(out, entry(fmt.Sprintf("entry %s: errno %s→%s", ent.Name, ent.Errno, e.Errno), e))
		}
		if !ent.Link {
			need := uint16(0o4) // read
			switch {
			case ent.Write:
				need = 0o2
			case ent.Dir:
				need = 0o5
			}
			e := ent
			e.Perm ^= need
			out = append(out, entry(fmt.Sprintf("entry %s: perm %04o→%04o", ent.Name, ent.Perm, e.Perm), e))
		}
	}
	return out
}

// entryRuleReadsErrno reports whether an entry's rule answers a ptrace
// denial with the catalog's Errno (kernel.World.entryRule); the other
// rules return a fixed errno, and changing the field changes nothing.
func entryRuleReadsErrno(c kernel.Check) bool {
	switch c {
	case kernel.CheckAtRead, kernel.CheckLink, kernel.CheckFdLink, kernel.CheckNSLink, kernel.CheckMapFilesDir, kernel.CheckMapFilesLink:
		return true
	}
	return false
}

// vmLogs returns the captured VM console logs: the copies in testdata and
// those make verify-vm left in .cache/vm, each distinct content once.
func vmLogs(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	seen := map[[32]byte]bool{}
	add := func(name string, b []byte) {
		if h := sha256.Sum256(b); !seen[h] {
			seen[h] = true
			out[name] = b
		}
	}
	gz, _ := filepath.Glob("testdata/*.log.gz")
	for _, f := range gz {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		b, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		add(f, b)
	}
	cached, _ := filepath.Glob("../.cache/vm/*.log")
	deeper, _ := filepath.Glob("../.cache/vm/*/*.log")
	for _, f := range append(cached, deeper...) {
		if b, err := os.ReadFile(f); err == nil && bytes.Contains(b, []byte(oracle.VMBeginPrefix)) {
			add(f, b)
		}
	}
	return out
}

// debianVersion is vm's: the Debian package version in /proc/version
// names the upstream release; uname -r names only the ABI.
var debianVersion = regexp.MustCompile(`Debian (\d+\.\d+(?:\.\d+)?)[-+~][^ ]* \(\d{4}-`)

// vmObservations parses one console log (the protocol of oracle's VM
// mode, as vm.readConsole does) and builds the model's world for each
// case, on the kernel the VM booted (as vm.compare does).
func vmObservations(name string, log []byte) ([]*observation, error) {
	var begin *oracle.VMBegin
	var rel kernel.Release
	var out []*observation
	sc := bufio.NewScanner(bytes.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, oracle.VMBeginPrefix); i >= 0 {
			begin = &oracle.VMBegin{}
			if err := json.Unmarshal([]byte(line[i+len(oracle.VMBeginPrefix):]), begin); err != nil {
				return nil, err
			}
			v := begin.Release
			if m := debianVersion.FindStringSubmatch(begin.Version); m != nil {
				v = m[1]
			}
			var err error
			if rel, err = kernel.ParseRelease(v); err != nil {
				return nil, err
			}
			continue
		}
		i := strings.Index(line, oracle.VMResPrefix)
		if i < 0 {
			continue
		}
		if begin == nil {
			return nil, fmt.Errorf("%s: a result before the BEGIN line", name)
		}
		var res oracle.VMRes
		if err := json.Unmarshal([]byte(line[i+len(oracle.VMResPrefix):]), &res); err != nil {
			return nil, err
		}
		if res.Result.Error != "" {
			continue
		}
		k := Kernel{Release: rel, LSMs: begin.LSMs, YamaScope: res.Scope, LandlockABI: begin.LandlockABI, SuidDumpable: begin.SuidDumpable, BPF: res.BPF}
		if k.Has("selinux") {
			k.SELinux = oracle.VMSELinuxPlan(nil).SELinuxModel
			k.SELinuxEnforcing = res.SELinuxMode == oracle.SELinuxEnforcing
		} else {
			k.AppArmor = oracle.VMDefaultPlan().AppArmor
		}
		o, err := observe(name, res.Index, res.Step+": "+describe(res.Case), k, res.Case, res.Result)
		if err != nil {
			return nil, fmt.Errorf("%s: step %s case %d: %w", name, res.Step, res.Index, err)
		}
		out = append(out, o)
	}
	return out, sc.Err()
}

// TestMutants requires every mutant of the model to be killed by the
// host sample or a captured VM log (see the comment at the top of the
// file), and prints the mutation score.
func TestMutants(t *testing.T) {
	if testing.Short() {
		t.Skip("the mutation test needs the full host sample")
	}
	rep, cases := hostObservation(t)
	t.Logf("host sample: %d cases run in %.1f s (shared with TestHostKernelAgrees)", len(cases), rep.Seconds)
	start := time.Now()
	var obs []*observation
	for i, res := range rep.Results {
		if res.Err != nil || res.Error != "" {
			continue
		}
		o, err := observe("host", i, describe(cases[i]), rep.Kernel, cases[i], res)
		if err != nil {
			t.Fatalf("host case %d: %v", i, err)
		}
		obs = append(obs, o)
	}
	// The feature cases (zombie targets among them) run without a
	// snapshot: the target exits after the snapshot would be taken.
	features := oracle.VMFeatureCases()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	frep, err := needVerifier(t).Run(ctx, features, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i, res := range frep.Results {
		if res.Err != nil || res.Error != "" {
			t.Logf("feature case %d %q refused: %s", i, features[i].Name, res.Error)
			continue
		}
		o, err := observe("host features", i, describe(features[i]), frep.Kernel, features[i], res)
		if err != nil {
			t.Fatalf("feature case %d: %v", i, err)
		}
		obs = append(obs, o)
	}
	hostN := len(obs)
	logs := vmLogs(t)
	names := make([]string, 0, len(logs))
	for n := range logs {
		names = append(names, n)
	}
	// The copies in testdata first, so that a mutant is credited to them
	// wherever they kill it.
	slices.SortFunc(names, func(a, b string) int {
		return strings.Compare(fmt.Sprint(!strings.HasPrefix(a, "testdata/"), a), fmt.Sprint(!strings.HasPrefix(b, "testdata/"), b))
	})
	for _, n := range names {
		o, err := vmObservations(n, logs[n])
		if err != nil && strings.HasPrefix(n, "testdata/") {
			t.Fatalf("%s: %v", n, err)
		}
		if err != nil {
			t.Logf("VM log %s left out: %v", n, err)
			continue
		}
		t.Logf("VM log %s: %d cases", n, len(o))
		obs = append(obs, o...)
	}
	if len(logs) == 0 {
		t.Logf("no captured VM log: only the host's cases can kill mutants")
	}
	var modules []string
	probes, wrong := 0, 0
	for _, o := range obs {
		for _, m := range o.w.LSMs {
			if !slices.Contains(modules, m.Name()) {
				modules = append(modules, m.Name())
			}
		}
		probes += len(o.agree)
		for _, ok := range o.agree {
			if !ok {
				wrong++
			}
		}
	}
	if wrong > 0 {
		t.Logf("%d of %d probe answers disagree with the real model already (TestHostKernelAgrees or make verify-vm reports them); they kill no mutant", wrong, probes)
	}
	built := time.Since(start)

	ms := mutants(modules)
	var killed int
	excludedBy := map[string]int{}
	var survivors, staleExclusions []string
	bySource := map[string]int{}
	for _, m := range ms {
		applied, hit := 0, -1
		var got oracle.ProbeResult
		var probe int
		for i, o := range obs {
			undo := m.apply(o.w)
			if undo == nil {
				continue
			}
			applied++
			j, g, ok := o.firstKill()
			undo()
			if ok {
				hit, probe, got = i, j, g
				break
			}
		}
		ex, excluded := mutantExclusions[m.name]
		switch {
		case hit >= 0 && excluded:
			o := obs[hit]
			staleExclusions = append(staleExclusions, fmt.Sprintf("%s: killed by %s #%d (%s) %s, yet excluded as %s: %s", m.name, o.source, o.index, o.name, o.kernel[probe].Probe, ex.kind, ex.reason))
		case hit >= 0:
			killed++
			o := obs[hit]
			bySource[o.source]++
			t.Logf("killed   %-60s by %s #%d %s: kernel %s, mutant %s (%s)", m.name, o.source, o.index, o.kernel[probe].Probe,
				AnswerString(o.kernel[probe]), AnswerString(got), o.name)
		case excluded:
			excludedBy[ex.kind]++
			t.Logf("excluded %-60s %s: %s", m.name, ex.kind, ex.reason)
		default:
			why := fmt.Sprintf("%d cases predicted, none disagrees", applied)
			switch {
			case applied == 0:
				why = "no observed world has what it changes"
			case m.reached != nil && *m.reached == 0:
				why += "; no case reaches the inverted hook"
			}
			survivors = append(survivors, m.name+": "+why)
			t.Logf("SURVIVED %-60s %s", m.name, why)
		}
	}
	total := len(ms) - excludedBy["equivalent"] - excludedBy["unreachable"]
	t.Logf("mutation score: %d/%d killed (%.1f%%), %d survivors; %d mutants in all, %d excluded as equivalent and %d as unreachable by the oracle (%d/%d killed counting those); killers: %v; %d host cases, %d VM cases, %d probe answers; worlds built in %v, mutants run in %v",
		killed, total, 100*float64(killed)/float64(max(total, 1)), len(survivors), len(ms), excludedBy["equivalent"], excludedBy["unreachable"],
		killed, len(ms), bySource, hostN, len(obs)-hostN, probes,
		built.Round(time.Millisecond), (time.Since(start) - built).Round(time.Millisecond))
	for _, s := range survivors {
		t.Errorf("mutant survived: %s", s)
	}
	for _, s := range staleExclusions {
		t.Errorf("excluded mutant was killed (remove it from mutantExclusions): %s", s)
	}
}
