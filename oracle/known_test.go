package oracle

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Expectation values besides "ok" and errno names.
const (
	masked   = "masked"   // stat answered with masked fields
	unmasked = "unmasked" // stat answered with real fields
)

type known struct {
	c    Case
	want map[Probe]string
}

func check(t *testing.T, name string, r *Result, want map[Probe]string) {
	t.Helper()
	for p, w := range want {
		got, ok := r.Probe(p)
		if !ok {
			t.Errorf("%s: probe %s not run", name, p)
			continue
		}
		g := got.Result
		if p == ProbeStat && g == "ok" {
			g = unmasked
			if got.Masked {
				g = masked
			}
		}
		if g != w {
			t.Errorf("%s: %s = %s (%s), want %s\n  all: %s", name, p, g, got.Detail, w, summary(r))
		}
		if p == ProbePtraceSeize && got.OK() && got.Detail != "" {
			t.Errorf("%s: ptrace seize ok but cleanup failed: %s", name, got.Detail)
		}
	}
}

// all returns want with every probe not listed set to "ok" (or unmasked).
func all(want map[Probe]string) map[Probe]string {
	m := map[Probe]string{}
	for _, p := range AllProbes {
		m[p] = "ok"
	}
	m[ProbeStat] = unmasked
	for p, w := range want {
		m[p] = w
	}
	return m
}

// deniedFS is what a caller denied by __ptrace_may_access in every mode sees
// when DAC passes; deniedAll adds the DAC denials of a foreign uid.
func deniedPtrace(extra map[Probe]string) map[Probe]string {
	m := map[Probe]string{
		ProbeMaps: "EACCES", ProbeEnviron: "EACCES", ProbeMem: "EACCES", ProbeIO: "EACCES",
		ProbeSyscall: "EPERM", ProbeStat: masked, ProbeAuxv: "EACCES", ProbeExe: "EACCES",
		ProbeCwd: "EACCES", ProbeRoot: "EACCES", ProbeFd0: "EACCES", ProbeNSUser: "EACCES",
		ProbeFdinfoDir: "EACCES", ProbeFdinfo0: "EACCES", ProbeVMReadv: "EPERM",
		ProbeKcmp: "EPERM", ProbePidfdGetfd: "EPERM", ProbePtraceSeize: "EPERM",
	}
	for p, w := range extra {
		m[p] = w
	}
	return all(m)
}

func withCaps(c Creds, eff, prm uint64) Creds { return c.WithCaps(eff, prm) }

func knownCases() []known {
	u1, u2 := User(1000, 1000), User(2000, 2000)
	ptr := CapMask(CapSysPtrace)
	nd := u1
	nd.Dumpable = 0
	owned := UserNS{Kind: NSOwned, Owner: 1000, OwnerGID: 1000}
	fs5 := Creds{RUID: 1000, EUID: 5, SUID: 5, FSUID: 5, RGID: 1000, EGID: 1000, SGID: 1000, FSGID: 1000, Dumpable: 1}
	// 0400/0500 entries owned by another uid; fd/0 needs search on fd/.
	foreignDAC := map[Probe]string{ProbeSyscall: "EACCES", ProbeFdDir: "EACCES", ProbeFd0: "EACCES"}
	return []known{
		{Case{Name: "same uid", Target: u1, Prober: u1}, all(nil)},
		{Case{Name: "other uid", Target: u2, Prober: u1}, deniedPtrace(foreignDAC)},
		{Case{Name: "dumpable 0, same uid", Target: nd, Prober: u1}, deniedPtrace(foreignDAC)},
		// S5: CAP_SYS_PTRACE passes the ptrace checks but not DAC.
		{Case{Name: "CAP_SYS_PTRACE, other uid", Target: u2, Prober: withCaps(u1, ptr, ptr)}, all(map[Probe]string{
			ProbeEnviron: "EACCES", ProbeMem: "EACCES", ProbeIO: "EACCES", ProbeSyscall: "EACCES",
			ProbeAuxv: "EACCES", ProbeFdDir: "EACCES", ProbeFd0: "EACCES",
		})},
		{Case{Name: "CAP_SYS_PTRACE permitted only", Target: u2, Prober: withCaps(u1, 0, ptr)}, deniedPtrace(foreignDAC)},
		// S2: REALCREDS use the real uid, FSCREDS the fsuid.
		{Case{Name: "ruid match, euid/fsuid other", Target: u1, Prober: Creds{
			RUID: 1000, EUID: 2000, SUID: 2000, FSUID: 2000, RGID: 1000, EGID: 1000, SGID: 1000, FSGID: 1000, Dumpable: 1,
		}}, deniedPtrace(map[Probe]string{
			ProbeSyscall: "EACCES", ProbeFdDir: "EACCES",
			ProbeVMReadv: "ok", ProbeKcmp: "ok", ProbePidfdGetfd: "ok", ProbePtraceSeize: "ok",
		})},
		// S3: the target's fsuid does not count.
		{Case{Name: "target fsuid differs", Target: func() Creds { c := u1; c.FSUID = 3000; return c }(), Prober: u1}, all(nil)},
		// S3: the caller's supplementary groups do not count.
		{Case{Name: "group only via supplementary", Target: User(1000, 1500), Prober: func() Creds {
			c := u1
			c.Groups = []uint32{1500}
			return c
		}()}, deniedPtrace(nil)},
		// S4: the target's extra cap against the caller's effective (FS)
		// or permitted (REAL) set.
		{Case{Name: "target NET_RAW, prober permitted only", Target: withCaps(u1, CapMask(CapNetRaw), CapMask(CapNetRaw)),
			Prober: withCaps(u1, 0, CapMask(CapNetRaw))}, deniedPtrace(map[Probe]string{
			ProbeFdDir: "ok", ProbeVMReadv: "ok", ProbeKcmp: "ok", ProbePidfdGetfd: "ok", ProbePtraceSeize: "ok",
		})},
		{Case{Name: "root without caps on both", Target: Root(0), Prober: Root(0)}, all(nil)},
		// S6: root without caps lists fd/ of a non-dumpable root process.
		{Case{Name: "root no caps vs non-dumpable root", Target: func() Creds { c := Root(0); c.Dumpable = 0; return c }(),
			Prober: Root(0)}, deniedPtrace(nil)},
		// S9: Landlock scoping.
		{Case{Name: "landlock prober only", Target: u1, Prober: u1, Landlock: LandlockProberOnly}, deniedPtrace(nil)},
		{Case{Name: "landlock target only", Target: u1, Prober: u1, Landlock: LandlockTargetOnly}, all(nil)},
		{Case{Name: "landlock shared", Target: u1, Prober: u1, Landlock: LandlockShared}, all(nil)},
		{Case{Name: "landlock nested", Target: u1, Prober: u1, Landlock: LandlockNested}, all(nil)},
		{Case{Name: "landlock nested-reverse", Target: u1, Prober: u1, Landlock: LandlockNestedReverse}, deniedPtrace(nil)},
		{Case{Name: "landlock sibling", Target: u1, Prober: u1, Landlock: LandlockSibling}, deniedPtrace(nil)},
		{Case{Name: "landlock root prober with CAP_SYS_PTRACE", Target: u1, Prober: Root(FullCaps() &^ CapMask(CapSysAdmin, CapPerfmon)),
			Landlock: LandlockProberOnly}, deniedPtrace(map[Probe]string{
			ProbeEnviron: "EACCES", ProbeFdDir: "ok",
		})},
		// S8: the owner of the target's namespace, with no caps and a
		// wrong fsuid, passes the ptrace checks but not DAC.
		{Case{Name: "namespace owner, fsuid mismatch", Target: Root(0).InNS(owned), Prober: func() Creds {
			c := u1
			c.FSUID = 3000
			return c
		}()}, all(map[Probe]string{
			ProbeEnviron: "EACCES", ProbeMem: "EACCES", ProbeIO: "EACCES", ProbeSyscall: "EACCES",
			ProbeAuxv: "EACCES", ProbeFdDir: "EACCES", ProbeFd0: "EACCES",
		})},
		// S7: a non-dumpable target keeps its namespace owner's access.
		{Case{Name: "namespace owner, target not dumpable", Target: func() Creds { c := Root(FullCaps()); c.Dumpable = 0; return c.InNS(owned) }(),
			Prober: u1}, all(nil)},
		// S8: inside a child namespace, same kuid and full caps there,
		// nothing outside is reachable.
		{Case{Name: "prober inside owned namespace", Target: u1, Prober: Root(FullCaps()).InNS(owned)}, deniedPtrace(nil)},
		{Case{Name: "prober inside root-made namespace", Target: u1, Prober: u1.InNS(UserNS{Kind: NSRoot})}, deniedPtrace(nil)},
		// S8: with a namespace made by root, a root caller without caps
		// is the owner.
		{Case{Name: "root no caps vs root-made namespace", Target: u1.InNS(UserNS{Kind: NSRoot}), Prober: Root(0)}, all(map[Probe]string{
			ProbeEnviron: "EACCES", ProbeMem: "EACCES", ProbeIO: "EACCES", ProbeSyscall: "EACCES",
			ProbeAuxv: "EACCES", ProbeFdDir: "EACCES", ProbeFd0: "EACCES",
		})},
		// kernel-spec §4.7: ruid 1000, euid=fsuid 5.
		{Case{Name: "fsuid 5, ruid 1000 vs uid 1000", Target: u1, Prober: fs5}, deniedPtrace(map[Probe]string{
			ProbeSyscall: "EACCES", ProbeFdDir: "EACCES", ProbeFd0: "EACCES",
			ProbeVMReadv: "ok", ProbeKcmp: "ok", ProbePidfdGetfd: "ok", ProbePtraceSeize: "ok",
		})},
		{Case{Name: "fsuid 5, ruid 1000 vs uid 5", Target: User(5, 1000), Prober: fs5}, all(map[Probe]string{
			ProbeVMReadv: "EPERM", ProbeKcmp: "EPERM", ProbePidfdGetfd: "EPERM", ProbePtraceSeize: "EPERM",
		})},
		// kernel-spec §4.9: the target's saved uid counts.
		{Case{Name: "target suid 0", Target: func() Creds { c := u1; c.SUID = 0; return c }(), Prober: u1}, deniedPtrace(nil)},
		// kernel-spec §4.6/§4.15: own thread group after PR_SET_DUMPABLE 0:
		// the ptrace checks pass, the root-owned 0400/0600 files fail DAC.
		{Case{Name: "self, not dumpable", Prober: nd, Relation: RelSelf}, all(map[Probe]string{
			ProbeEnviron: "EACCES", ProbeMem: "EACCES", ProbeIO: "EACCES", ProbeSyscall: "EACCES", ProbeAuxv: "EACCES",
			ProbePtraceSeize: "EPERM",
		})},
		{Case{Name: "other thread, not dumpable", Prober: nd, Relation: RelThread}, all(map[Probe]string{
			ProbeEnviron: "EACCES", ProbeMem: "EACCES", ProbeIO: "EACCES", ProbeSyscall: "EACCES", ProbeAuxv: "EACCES",
			ProbePtraceSeize: "EPERM",
		})},
		// S9: NNP has no effect.
		{Case{Name: "no_new_privs on both", Target: func() Creds { c := u1; c.NoNewPrivs = true; return c }(),
			Prober: func() Creds { c := u1; c.NoNewPrivs = true; return c }()}, all(nil)},
		// S5: CAP_SYS_PTRACE with CAP_DAC_READ_SEARCH reads everything.
		{Case{Name: "CAP_SYS_PTRACE+DAC_READ_SEARCH, other uid", Target: u2,
			Prober: withCaps(u1, CapMask(CapSysPtrace, CapDacReadSearch), CapMask(CapSysPtrace, CapDacReadSearch))}, all(nil)},
		// A root-made namespace with a shifted map: same kuid outside is
		// still another namespace.
		{Case{Name: "root-made namespace, base 100000", Target: User(0, 0).InNS(UserNS{Kind: NSRoot, Base: 100000}),
			Prober: User(100000, 100000)}, deniedPtrace(nil)},
		// Relations. same_thread_group: everything but PTRACE_SEIZE.
		{Case{Name: "self", Prober: u1, Relation: RelSelf}, all(map[Probe]string{ProbePtraceSeize: "EPERM"})},
		{Case{Name: "other thread", Prober: u1, Relation: RelThread}, all(map[Probe]string{ProbePtraceSeize: "EPERM"})},
		{Case{Name: "self, landlocked, other uid target ignored", Target: u2, Prober: u1, Relation: RelSelf, Landlock: LandlockProberOnly},
			all(map[Probe]string{ProbePtraceSeize: "EPERM"})},
		{Case{Name: "prober is parent", Target: u1, Prober: u1, Relation: RelParent}, all(nil)},
		{Case{Name: "prober is parent, other uid", Target: u2, Prober: u1, Relation: RelParent}, deniedPtrace(foreignDAC)},
		{Case{Name: "prober is parent, landlock nested", Target: u1, Prober: u1, Relation: RelParent, Landlock: LandlockNested}, all(nil)},
	}
}

// TestKnownAnswers checks the kernel's answers on cases whose outcome
// oracle.md and kernel-spec.md document, twice over in one batch so that
// pooled probers meet targets already ptraced by others.
func TestKnownAnswers(t *testing.T) {
	ks := knownCases()
	var cases []Case
	for range 2 {
		for _, k := range ks {
			cases = append(cases, k.c)
		}
	}
	res := runCases(t, cases)
	for i := range res {
		k := ks[i%len(ks)]
		check(t, k.c.Name, &res[i], k.want)
	}
}

// TestPerfmonBypass checks S1: on 6.15 and later, CAP_SYS_ADMIN or
// CAP_PERFMON effective in the initial namespace opens maps and environ
// (mm_access READ) of any process, even from a Landlock domain; probes that
// call ptrace_may_access directly stay denied.
func TestPerfmonBypass(t *testing.T) {
	r := needRunner(t)
	if !releaseAtLeast(r.Profile().Release, 6, 15) {
		t.Skipf("kernel %s predates the CAP_PERFMON mm_access bypass", r.Profile().Release)
	}
	u2 := User(2000, 2000)
	for _, cp := range []int{CapPerfmon, CapSysAdmin} {
		pr := withCaps(User(1000, 1000), CapMask(cp), CapMask(cp))
		name := fmt.Sprintf("cap %d", cp)
		res := runCases(t, []Case{
			{Name: name, Target: u2, Prober: pr},
			{Name: name + " landlocked", Target: User(1000, 1000), Prober: pr, Landlock: LandlockProberOnly},
		})
		// environ and auxv are 0400: the bypass does not get past DAC.
		check(t, name, &res[0], map[Probe]string{ProbeMaps: "ok", ProbeEnviron: "EACCES", ProbeAuxv: "EACCES", ProbeExe: "EACCES", ProbeKcmp: "EPERM", ProbePtraceSeize: "EPERM"})
		check(t, name+" landlocked", &res[1], map[Probe]string{ProbeMaps: "ok", ProbeEnviron: "ok", ProbeAuxv: "ok", ProbeExe: "EACCES", ProbeKcmp: "EPERM", ProbeMem: "EACCES", ProbeIO: "EACCES"})
	}
}

// TestRootWithoutPtraceCap checks kernel-spec §4.13 on a kernel with S1:
// root without CAP_SYS_PTRACE but with CAP_SYS_ADMIN reads maps, environ
// and auxv (mm_access READ bypass; CAP_DAC_OVERRIDE for the 0400 files) and
// is denied everything that calls ptrace_may_access directly.
func TestRootWithoutPtraceCap(t *testing.T) {
	r := needRunner(t)
	if !releaseAtLeast(r.Profile().Release, 6, 15) {
		t.Skipf("kernel %s predates the CAP_PERFMON mm_access bypass", r.Profile().Release)
	}
	c := Case{Name: "root without CAP_SYS_PTRACE", Target: User(1000, 1000), Prober: Root(FullCaps() &^ CapMask(CapSysPtrace))}
	res := runCases(t, []Case{c})
	check(t, c.Name, &res[0], deniedPtrace(map[Probe]string{
		ProbeMaps: "ok", ProbeEnviron: "ok", ProbeAuxv: "ok", ProbeFdDir: "ok",
	}))
}

func releaseAtLeast(rel string, major, minor int) bool {
	f := strings.FieldsFunc(rel, func(r rune) bool { return r < '0' || r > '9' })
	if len(f) < 2 {
		return false
	}
	ma, _ := strconv.Atoi(f[0])
	mi, _ := strconv.Atoi(f[1])
	return ma > major || ma == major && mi >= minor
}

// sharedMatrix crosses three probers with three targets in every layout
// whose processes the pool shares in a special way: a prober-is-parent
// prober with several children, and the launcher layouts, where every
// prober and target of a window starts in one launcher domain.
func sharedMatrix() []Case {
	u1, u2 := User(1000, 1000), User(2000, 2000)
	nd := u1
	nd.Dumpable = 0
	tracer := u1.WithCaps(CapMask(CapSysPtrace), CapMask(CapSysPtrace))
	var cases []Case
	for _, l := range []Landlock{LandlockNone, LandlockShared, LandlockNested, LandlockNestedReverse} {
		for _, rel := range []Relation{RelSibling, RelParent} {
			for _, p := range []Creds{u1, u2, tracer} {
				for _, tc := range []Creds{u1, u2, nd} {
					cases = append(cases, Case{Name: fmt.Sprintf("shared %s %s", l, rel), Prober: p, Target: tc, Relation: rel, Landlock: l})
				}
			}
		}
	}
	return cases
}

// TestPoolMatchesSingle runs the known cases pooled and one pair per case,
// and requires identical answers.
func TestPoolMatchesSingle(t *testing.T) {
	needRunner(t)
	single, err := NewRunner(Options{NoPool: true})
	if err != nil {
		t.Fatal(err)
	}
	defer single.Close()
	var cases []Case
	for _, k := range knownCases() {
		cases = append(cases, k.c)
	}
	cases = append(cases, plainMatrix(7, 7)...)
	cases = append(cases, sharedMatrix()...)
	pooled := runCases(t, cases)
	alone, err := single.Run(context.Background(), cases)
	if err != nil {
		t.Fatal(err)
	}
	// The pool shares what it says it shares: one prober per prober
	// spec (a parent with all its children), one target per target spec.
	probers, targets := map[string]int{}, map[string]int{}
	for i, c := range cases {
		if i < len(cases)-len(sharedMatrix()) {
			continue
		}
		launcher, tOwn, pOwn, _ := c.Landlock.layout()
		pk := fmt.Sprint(c.Prober, pOwn, launcher, c.Relation)
		if pid, ok := probers[pk]; ok && pid != pooled[i].Prober.Pid {
			t.Errorf("case %d %q: prober pid %d, another case's same prober %d", i, c.Name, pooled[i].Prober.Pid, pid)
		}
		probers[pk] = pooled[i].Prober.Pid
		if c.Relation == RelSibling {
			tk := fmt.Sprint(c.Target, tOwn, launcher)
			if pid, ok := targets[tk]; ok && pid != pooled[i].Target.Pid {
				t.Errorf("case %d %q: target pid %d, another case's same target %d", i, c.Name, pooled[i].Target.Pid, pid)
			}
			targets[tk] = pooled[i].Target.Pid
		}
	}
	for i := range cases {
		if alone[i].Err != nil {
			t.Fatalf("case %d %q refused: %v", i, cases[i].Name, alone[i].Err)
		}
		if !reflect.DeepEqual(answers(&pooled[i]), answers(&alone[i])) {
			t.Errorf("case %d %q: pooled and single differ:\n pooled %s\n single %s", i, cases[i].Name, summary(&pooled[i]), summary(&alone[i]))
		}
	}
}

// answers strips the details (stack addresses differ between processes).
func answers(r *Result) []ProbeResult {
	out := make([]ProbeResult, len(r.Probes))
	for i, p := range r.Probes {
		out[i] = ProbeResult{Probe: p.Probe, Result: p.Result, Masked: p.Masked}
	}
	return out
}

// TestOnReady checks that the hook sees both processes alive with the
// requested credentials.
func TestOnReady(t *testing.T) {
	needRunner(t)
	type seen struct{ t, p Observed }
	got := make(chan seen, 8)
	r, err := NewRunner(Options{OnReady: func(i int, tgt, pr Observed) error {
		for _, pid := range []int{tgt.Pid, pr.Pid} {
			if err := syscall.Kill(pid, 0); err != nil {
				return fmt.Errorf("pid %d not alive: %w", pid, err)
			}
		}
		got <- seen{tgt, pr}
		if i == 2 {
			return fmt.Errorf("refused by hook")
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cases := []Case{
		{Target: User(2000, 2000), Prober: User(1000, 1000), Probes: []Probe{ProbeMaps}},
		{Target: User(2000, 2000), Prober: User(1000, 1000), Relation: RelParent, Probes: []Probe{ProbeMaps}},
		{Target: User(2000, 2000), Prober: User(1000, 1000), Probes: []Probe{ProbeExe}},
	}
	res, err := r.Run(context.Background(), cases)
	if err != nil {
		t.Fatal(err)
	}
	close(got)
	n := 0
	for s := range got {
		n++
		if s.t.UID != [4]uint32{2000, 2000, 2000, 2000} || s.p.UID != [4]uint32{1000, 1000, 1000, 1000} {
			t.Errorf("hook saw target %v prober %v", s.t.UID, s.p.UID)
		}
	}
	if n != 3 {
		t.Errorf("hook called %d times, want 3", n)
	}
	if res[0].Err != nil || res[1].Err != nil {
		t.Errorf("unexpected refusals: %v, %v", res[0].Err, res[1].Err)
	}
	if res[2].Err == nil || !strings.Contains(res[2].Err.Error(), "refused by hook") {
		t.Errorf("case 2: want refusal by the hook, got %v", res[2].Err)
	}
}

// TestRefusals checks that invalid or unfaithful cases are refused, not
// answered.
func TestRefusals(t *testing.T) {
	r := needRunner(t)
	bad := User(1000, 1000)
	bad.CapEff = CapMask(CapSysPtrace) // not permitted
	cases := []Case{
		{Name: "eff not in prm", Target: User(1000, 1000), Prober: bad},
		{Name: "owned ns with non-zero id", Target: User(5, 5).InNS(UserNS{Kind: NSOwned, Owner: 1000}), Prober: User(1000, 1000)},
		{Name: "unknown probe", Target: User(1000, 1000), Prober: User(1000, 1000), Probes: []Probe{"nope"}},
		{Name: "ok", Target: User(1000, 1000), Prober: User(1000, 1000), Probes: []Probe{ProbeMaps}},
	}
	if r.Profile().YamaScope < 0 {
		cases = append(cases, Case{Name: "ptracer any without Yama", Target: User(1000, 1000), Prober: User(1000, 1000), Relation: RelPtracerAny})
	}
	res, err := r.Run(context.Background(), cases)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		if (c.Name == "ok") != (res[i].Err == nil) {
			t.Errorf("%s: err = %v", c.Name, res[i].Err)
		}
	}
}

// TestVerify checks that credential differences are reported.
func TestVerify(t *testing.T) {
	want := User(1000, 1000)
	obs := Observed{Pid: 1, UID: [4]uint32{1000, 1000, 1000, 1000}, GID: [4]uint32{1000, 1000, 1000, 1000}, Dumpable: 1, InitNS: true}
	if err := verify("target", want, obs); err != nil {
		t.Fatalf("identical: %v", err)
	}
	obs.Dumpable = 0 // P1
	obs.UID[3] = 0
	err := verify("target", want, obs)
	if err == nil || !strings.Contains(err.Error(), "dumpable") || !strings.Contains(err.Error(), "fsuid") {
		t.Fatalf("want dumpable and fsuid differences, got %v", err)
	}
	ns := Root(FullCaps()).InNS(UserNS{Kind: NSOwned, Owner: 1000, OwnerGID: 1000})
	obs = Observed{Pid: 1, UID: [4]uint32{1000, 1000, 1000, 1000}, GID: [4]uint32{1000, 1000, 1000, 1000},
		CapEff: FullCaps(), CapPrm: FullCaps(), Dumpable: 1, NSOwner: 1000}
	if err := verify("target", ns, obs); err != nil {
		t.Fatalf("owned namespace: %v", err)
	}
	obs.CapEff = 0 // P2: exec without caps
	if err := verify("target", ns, obs); err == nil {
		t.Fatal("want a CapEff difference")
	}
}

// TestCancel checks that a cancelled Run returns promptly, refuses the
// cases it did not finish and leaves no child behind.
func TestCancel(t *testing.T) {
	r := needRunner(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	cases := plainMatrix(20, 100)
	start := time.Now()
	res, err := r.Run(ctx, cases)
	if err == nil {
		t.Fatalf("Run finished %d cases in %v before the deadline; want an interrupted run", len(cases), time.Since(start))
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("cancelled Run took %v", el)
	}
	refused := 0
	for i := range res {
		if res[i].Err != nil {
			refused++
		} else if len(res[i].Probes) == 0 {
			t.Errorf("case %d neither answered nor refused", i)
		}
	}
	if refused == 0 {
		t.Error("no case refused after cancellation")
	}
	if kids := children(); len(kids) != 0 {
		t.Errorf("children left after a cancelled Run: %v", kids)
	}
}

// children lists the live child processes of this process.
func children() []int {
	self := strconv.Itoa(os.Getpid())
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := strings.LastIndexByte(string(b), ')')
		if f := strings.Fields(string(b[i+1:])); len(f) > 1 && f[1] == self && f[0] != "Z" {
			out = append(out, pid)
		}
	}
	return out
}
