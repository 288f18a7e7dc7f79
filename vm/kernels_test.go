package vm

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/procgate/procgate/oracle"
)

func TestExpandReleases(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{[]string{"all"}, "bullseye bookworm bookworm-backports trixie"},
		{[]string{"trixie,bullseye"}, "bullseye trixie"},
		{[]string{"bookworm", "bookworm, trixie", ""}, "bookworm trixie"},
		{nil, ""},
	} {
		got, err := ExpandReleases(tc.in)
		if err != nil || strings.Join(got, " ") != tc.want {
			t.Errorf("ExpandReleases(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	if _, err := ExpandReleases([]string{"buster"}); err == nil || !strings.Contains(err.Error(), `unknown release "buster"`) {
		t.Errorf("unknown release: %v", err)
	}
}

func TestParseKernelDeb(t *testing.T) {
	for _, tc := range []struct {
		in  string
		out KernelDeb
	}{
		{"trixie=/x/linux.deb", KernelDeb{"trixie", "/x/linux.deb"}},
		{"/x/linux.deb", KernelDeb{"", "/x/linux.deb"}},
		{"./a=b/linux.deb", KernelDeb{"", "./a=b/linux.deb"}},
	} {
		if got, err := ParseKernelDeb(tc.in); err != nil || got != tc.out {
			t.Errorf("ParseKernelDeb(%q) = %+v, %v", tc.in, got, err)
		}
	}
	if _, err := ParseKernelDeb("sid=/x.deb"); err == nil {
		t.Error("unknown release accepted")
	}
}

// Options.kernels: --release picks the --kernel-deb of that release or
// the newest package in the cache; a bare package boots alone.
func TestOptionsKernels(t *testing.T) {
	work := t.TempDir()
	arch := filepath.Join(work, "apt", "bookworm", "archives")
	if err := os.MkdirAll(arch, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"linux-image-6.1.0-9-amd64_6.1.99-1_amd64.deb", "linux-image-6.1.0-10-amd64_6.1.100-1_amd64.deb", "apparmor_3.0.8-3_amd64.deb"} {
		if err := os.WriteFile(filepath.Join(arch, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	o := Options{Work: work, Releases: []string{"bookworm,trixie"}, Kernels: []KernelDeb{{"trixie", "/t.deb"}, {"bullseye", "/b.deb"}}}
	got, err := o.kernels()
	if err != nil {
		t.Fatal(err)
	}
	want := []KernelDeb{{"bookworm", filepath.Join(arch, "linux-image-6.1.0-10-amd64_6.1.100-1_amd64.deb")}, {"trixie", "/t.deb"}}
	if !slices.Equal(got, want) {
		t.Errorf("kernels = %v, want %v", got, want)
	}
	if a, err := cachedAppArmor(work); err != nil || filepath.Base(a) != "apparmor_3.0.8-3_amd64.deb" {
		t.Errorf("cachedAppArmor = %s, %v", a, err)
	}
	o = Options{Work: work, Releases: []string{"bullseye"}}
	if _, err := o.kernels(); err == nil || !strings.Contains(err.Error(), "--fetch-only") {
		t.Errorf("no cached bullseye kernel: %v", err)
	}
	o = Options{Work: work, KernelDeb: "/k.deb"}
	if got, err := o.kernels(); err != nil || len(got) != 1 || got[0].Deb != "/k.deb" {
		t.Errorf("bare package: %v, %v", got, err)
	}
	if _, err := (&Options{Work: work}).kernels(); err == nil || !strings.Contains(err.Error(), "--kernel-deb") {
		t.Errorf("nothing to boot: %v", err)
	}
}

// A kernel's configuration decides the lsm= list and which cases run: no
// Landlock on 5.10, no suite for a module the kernel lacks.
func TestForKernel(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "config")
	conf := "CONFIG_SECURITY_YAMA=y\nCONFIG_SECURITY_APPARMOR=y\nCONFIG_SECURITY_LOCKDOWN_LSM=y\nCONFIG_BPF_LSM=y\n# CONFIG_SECURITY_SELINUX is not set\nCONFIG_LSM=\"lockdown,yama,apparmor\"\n"
	if err := os.WriteFile(cfgFile, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := readKernelConfig(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.has("landlock") || cfg.has("selinux") || !cfg.has("apparmor") || cfg.lsm != "lockdown,yama,apparmor" {
		t.Fatalf("config %+v", cfg)
	}
	ss, err := suites("", DefaultSuites)
	if err != nil {
		t.Fatal(err)
	}
	aa, notes := ss[0].forKernel(cfg)
	if aa == nil || len(notes) != 1 || !strings.Contains(notes[0], "20 Landlock cases left out") {
		t.Fatalf("apparmor suite on a kernel without Landlock: %v, %v", aa, notes)
	}
	if c := aa.cmdline(); !strings.Contains(c, "lsm=lockdown,yama,apparmor,bpf ") {
		t.Errorf("cmdline %q", c)
	}
	n := 0
	for _, st := range aa.plan.Steps {
		for _, c := range st.Cases {
			n++
			if c.Landlock != "" && c.Landlock != oracle.LandlockNone {
				t.Errorf("Landlock case %q kept", c.Name)
			}
		}
	}
	full := 0
	for _, st := range ss[0].plan.Steps {
		full += len(st.Cases)
	}
	if n != full-20 {
		t.Errorf("%d cases kept of %d", n, full)
	}
	if se, notes := ss[1].forKernel(cfg); se != nil || len(notes) != 1 || !strings.Contains(notes[0], "has no selinux") {
		t.Errorf("selinux suite on a kernel without SELinux: %v, %v", se, notes)
	}
	// Without a configuration file every module counts as built.
	if s, notes := ss[0].forKernel(kernelConfig{}); s == nil || len(notes) != 0 || !strings.Contains(s.cmdline(), "lsm="+appArmorLSMs+" ") {
		t.Errorf("no config: %v, %v", s, notes)
	}
}

func TestReleaseForVersion(t *testing.T) {
	for v, want := range map[string]string{
		"5.10.262-1": "bullseye", "6.1.192-3": "bookworm", "6.12.95-1~bpo12+1": "bookworm-backports",
		"6.12.118-1": "trixie", "6.18.1-1": "", "x": "",
	} {
		if got := releaseForVersion(v); got != want {
			t.Errorf("releaseForVersion(%s) = %q, want %q", v, got, want)
		}
	}
	pv := "Linux version 6.1.0-57-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3 (2026-11-26)"
	if got := packageVersion(pv); got != "6.1.192-3" {
		t.Errorf("packageVersion = %q", got)
	}
}

// exitedRun is a finished boot of one exited-target case (a zombie, root
// prober) on a Debian 5.10.262 kernel whose pidfd_getfd answered answer.
func exitedRun(pidfdGetfd string) *consoleRun {
	ids := [4]uint32{1000, 1000, 1000, 1000}
	rids := [4]uint32{}
	return &consoleRun{
		begin: &oracle.VMBegin{Release: "5.10.0-46-amd64", Version: "Linux version 5.10.0-46-amd64 (gcc-10 (Debian 10.2.1-6) 10.2.1) #1 SMP Debian 5.10.262-1 (2026-07-31)",
			LSMs: []string{"lockdown", "capability", "yama"}, Cases: 1},
		end: &oracle.VMEnd{Cases: 1},
		results: []oracle.VMRes{{Step: "features", Scope: 0, Case: oracle.Case{
			Name: "exited: root -> uid", Prober: oracle.Root(oracle.FullCaps()), Target: oracle.User(1000, 1000), TargetExits: true,
			Probes: []oracle.Probe{oracle.ProbePidfdGetfd, oracle.ProbeCwd},
		}, Result: oracle.Result{
			Target: oracle.Observed{Pid: 10, UID: ids, GID: ids, Dumpable: 1, InitNS: true},
			Prober: oracle.Observed{Pid: 11, UID: rids, GID: rids, CapEff: oracle.FullCaps(), CapPrm: oracle.FullCaps(), Dumpable: 1, InitNS: true},
			Probes: []oracle.ProbeResult{{Probe: oracle.ProbePidfdGetfd, Result: pidfdGetfd}, {Probe: oracle.ProbeCwd, Result: "ENOENT"}},
		}}},
	}
}

// The release-dependent rules are observed: the kernel's answer decides
// which value of a flag the run shows, and a value the model does not
// predict fails the kernel.
func TestObserveFeatures(t *testing.T) {
	for _, tc := range []struct {
		answer, observed string
		fail             bool
	}{
		{"ESRCH", "yes", false}, // 5.10.259+: the stable backport
		{"EBADF", "no", true},
	} {
		rep, err := compare(exitedRun(tc.answer), &suite{name: SuiteAppArmor})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.backports) != 1 || rep.backports[0].Feature != "user_dumpable" {
			t.Errorf("backports %+v", rep.backports)
		}
		kr := &kernelRun{label: "bullseye", release: "bullseye", reps: []*report{rep}}
		res := kr.result()
		var got *FeatureResult
		for i := range res.Features {
			if res.Features[i].Name == "pidfd_getfd_esrch" {
				got = &res.Features[i]
			}
		}
		if got == nil || got.Observed != tc.observed || !got.Predicted || got.Cases != 1 {
			t.Errorf("%s: pidfd_getfd_esrch %+v", tc.answer, got)
		}
		if err := res.Failure(1); (err != nil) != tc.fail {
			t.Errorf("%s: Failure = %v", tc.answer, err)
		}
		if res.Version != "5.10.262-1" || res.Upstream != "5.10.262" || res.Modules[ModFeatures].Cases != 1 {
			t.Errorf("result %+v", res)
		}
		line := res.Line()
		if !strings.Contains(line, "kernel bullseye (Debian 11 bullseye, linux-image-5.10.0-46-amd64 5.10.262-1, upstream 5.10.262)") ||
			strings.Contains(line, "features DIFFER") != tc.fail {
			t.Errorf("line %s", line)
		}
	}
}

// summary.json round-trips and the kernel table has a row per kernel,
// ordered by release, with the module and feature columns.
func TestKernelsMD(t *testing.T) {
	work := t.TempDir()
	for _, k := range []*KernelResult{
		{Label: "trixie", Release: "trixie", Distribution: releaseNames["trixie"], Package: "linux-image-x", Version: "6.12.118-1", Upstream: "6.12.118",
			Built: map[string]bool{"yama": true, "apparmor": true, "selinux": true, "landlock": true}, Counts: Counts{Cases: 10},
			Modules:  map[string]ModuleResult{ModYama: {Cases: 6}, ModAppArmor: {Cases: 4, Disagree: 1}},
			Features: []FeatureResult{{Name: "proc_mem_esrch", Predicted: true, Observed: "yes", Cases: 3}, {Name: "user_dumpable", Predicted: false, Observed: "yes", Cases: 1}}},
		{Label: "bullseye", Release: "bullseye", Distribution: releaseNames["bullseye"], Built: map[string]bool{"yama": true}, Notes: []string{"16 Landlock cases left out"}},
	} {
		if err := k.save(filepath.Join(work, k.Label, "summary.json")); err != nil {
			t.Fatal(err)
		}
	}
	md := filepath.Join(t.TempDir(), "kernels.md")
	var out bytes.Buffer
	if _, err := Run(context.Background(), &out, &out, Options{Work: work, KernelsMD: md}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	bull, trix := strings.Index(s, "| Debian 11 bullseye |"), strings.Index(s, "| Debian 13 trixie |")
	if bull < 0 || trix < bull {
		t.Fatalf("rows missing or out of order:\n%s", s)
	}
	for _, want := range []string{"| `proc_mem_esrch` |", "| 6 (100%) | 4 (75.0%) | built, no cases | built, no cases | not built |",
		"| yes (3) |", "**yes** (1; predicted no)", "Debian 11 bullseye: 16 Landlock cases left out",
		"Debian 13 trixie: FAILED: feature user_dumpable observed yes, the model predicts no"} {
		if !strings.Contains(s, want) {
			t.Errorf("kernels.md lacks %q:\n%s", want, s)
		}
	}
	if _, err := Run(context.Background(), &out, &out, Options{Work: t.TempDir(), KernelsMD: md}); err == nil {
		t.Error("a table from no summaries was written")
	}
}

// A kernel without the BPF LSM runs every step but the one that attaches
// procgate's program, and says so.
func TestForKernelWithoutBPF(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "config")
	conf := "CONFIG_SECURITY_YAMA=y\nCONFIG_SECURITY_APPARMOR=y\nCONFIG_SECURITY_LANDLOCK=y\nCONFIG_LSM=\"landlock,yama,apparmor\"\n"
	if err := os.WriteFile(cfgFile, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := readKernelConfig(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	ss, err := suites("", DefaultSuites)
	if err != nil {
		t.Fatal(err)
	}
	aa, notes := ss[0].forKernel(cfg)
	if aa == nil || len(notes) != 1 || !strings.Contains(notes[0], "step bpf left out") {
		t.Fatalf("apparmor suite on a kernel without the BPF LSM: notes %v", notes)
	}
	for _, st := range aa.plan.Steps {
		if st.BPF != nil {
			t.Errorf("step %s with a rule set kept", st.Name)
		}
	}
	if len(aa.plan.Steps) != len(ss[0].plan.Steps)-1 {
		t.Errorf("%d steps kept of %d", len(aa.plan.Steps), len(ss[0].plan.Steps))
	}
	if strings.Contains(aa.cmdline(), "bpf") {
		t.Errorf("cmdline %q names bpf", aa.cmdline())
	}
}
