package vm

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/oracle"
)

// Releases are the Debian releases whose linux-image-amd64 verify-vm
// boots, oldest first: bullseye (5.10), bookworm (6.1), bookworm-backports
// (6.12, an older 6.12 stable release than trixie's) and trixie (6.12).
// scripts/vm-verify.sh downloads each into WORK/apt/RELEASE/archives with
// a private apt configuration.
var Releases = []string{"bullseye", "bookworm", "bookworm-backports", "trixie"}

// releaseNames are the distribution names the summaries print.
var releaseNames = map[string]string{
	"bullseye":           "Debian 11 bullseye",
	"bookworm":           "Debian 12 bookworm",
	"bookworm-backports": "Debian 12 bookworm-backports",
	"trixie":             "Debian 13 trixie",
}

// ExpandReleases turns --release values (names, comma-separated lists,
// "all") into release names in the order of Releases.
func ExpandReleases(list []string) ([]string, error) {
	want := map[string]bool{}
	for _, item := range list {
		for _, r := range strings.Split(item, ",") {
			r = strings.TrimSpace(r)
			switch {
			case r == "":
			case r == "all":
				for _, x := range Releases {
					want[x] = true
				}
			case slices.Contains(Releases, r):
				want[r] = true
			default:
				return nil, fmt.Errorf("unknown release %q (want %s or all)", r, strings.Join(Releases, ", "))
			}
		}
	}
	var out []string
	for _, r := range Releases {
		if want[r] {
			out = append(out, r)
		}
	}
	return out, nil
}

// KernelDeb is one kernel package to boot, with the release it comes
// from ("" when unknown: it is then named after its version).
type KernelDeb struct {
	Release, Deb string
}

// ParseKernelDeb parses a --kernel-deb value: RELEASE=FILE or FILE.
func ParseKernelDeb(s string) (KernelDeb, error) {
	if r, file, ok := strings.Cut(s, "="); ok && !strings.Contains(r, "/") {
		if !slices.Contains(Releases, r) {
			return KernelDeb{}, fmt.Errorf("--kernel-deb %s: unknown release %q (want %s)", s, r, strings.Join(Releases, ", "))
		}
		return KernelDeb{Release: r, Deb: file}, nil
	}
	return KernelDeb{Deb: s}, nil
}

// cachedKernel finds the newest linux-image-*.deb that scripts/vm-verify.sh
// downloaded for release into WORK/apt/RELEASE/archives.
func cachedKernel(work, release string) (string, error) {
	return newestDeb(filepath.Join(work, "apt", release, "archives"), "linux-image-[0-9]*.deb", "kernel for "+release)
}

// cachedAppArmor finds the apparmor package scripts/vm-verify.sh
// downloaded (from bookworm: it runs with this host's libraries).
func cachedAppArmor(work string) (string, error) {
	return newestDeb(filepath.Join(work, "apt", "bookworm", "archives"), "apparmor_*.deb", "apparmor package")
}

func newestDeb(dir, pattern, what string) (string, error) {
	files, _ := filepath.Glob(filepath.Join(dir, pattern))
	if len(files) == 0 {
		return "", fmt.Errorf("no %s in %s: run scripts/vm-verify.sh --fetch-only, or give the package", what, dir)
	}
	version := func(f string) string {
		parts := strings.Split(strings.TrimSuffix(filepath.Base(f), ".deb"), "_")
		if len(parts) < 2 {
			return ""
		}
		return strings.ReplaceAll(parts[1], "%3a", ":")
	}
	slices.SortFunc(files, func(a, b string) int { return kernel.CompareDebianVersions(version(a), version(b)) })
	return files[len(files)-1], nil
}

// debianPackageVersion matches the package version in /proc/version:
// "… Debian 6.1.192-3 (2026-…)".
var debianPackageVersion = regexp.MustCompile(`Debian (\d+\.\d+(?:\.\d+)?[-+~][^ ]*) \(\d{4}-`)

// packageVersion returns the Debian package version in /proc/version, or
// "".
func packageVersion(procVersion string) string {
	if m := debianPackageVersion.FindStringSubmatch(procVersion); m != nil {
		return m[1]
	}
	return ""
}

// kernelLabel names a kernel by the release its package version belongs
// to, else by the version, else by fallback; release is "" when unknown.
func kernelLabel(version, fallback string) (label, release string) {
	release = releaseForVersion(version)
	return cmp.Or(release, version, fallback), release
}

// releaseForVersion guesses the release a Debian kernel package version
// belongs to, for logs compared without their packages.
func releaseForVersion(v string) string {
	r, err := kernel.ParseRelease(v)
	switch {
	case err != nil:
		return ""
	case r.Major == 5 && r.Minor == 10:
		return "bullseye"
	case r.Major == 6 && r.Minor == 1:
		return "bookworm"
	case strings.Contains(v, "~bpo12"):
		return "bookworm-backports"
	case r.Major == 6 && r.Minor == 12:
		return "trixie"
	}
	return ""
}

// kernelConfig is what a kernel package's boot/config-* says about the
// security modules built in.
type kernelConfig struct {
	file string
	// built maps an LSM name (as in lsm=) to whether it is built in.
	built map[string]bool
	// lsm is CONFIG_LSM, the default order.
	lsm string
}

// configLSMs are the kernel options of the LSMs verify-vm cares about.
var configLSMs = map[string]string{
	"landlock": "CONFIG_SECURITY_LANDLOCK",
	"lockdown": "CONFIG_SECURITY_LOCKDOWN_LSM",
	"yama":     "CONFIG_SECURITY_YAMA",
	"apparmor": "CONFIG_SECURITY_APPARMOR",
	"selinux":  "CONFIG_SECURITY_SELINUX",
	"smack":    "CONFIG_SECURITY_SMACK",
	"tomoyo":   "CONFIG_SECURITY_TOMOYO",
	"bpf":      "CONFIG_BPF_LSM",
}

// readKernelConfig reads a kernel .config file.
func readKernelConfig(path string) (kernelConfig, error) {
	cfg := kernelConfig{file: path, built: map[string]bool{}}
	f, err := os.Open(path)
	if err != nil {
		return cfg, err
	}
	defer f.Close()
	set := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && strings.HasPrefix(k, "CONFIG_") {
			set[k] = strings.Trim(v, `"`)
		}
	}
	if err := sc.Err(); err != nil {
		return cfg, err
	}
	for name, opt := range configLSMs {
		cfg.built[name] = set[opt] == "y"
	}
	cfg.lsm = set["CONFIG_LSM"]
	if len(set) == 0 {
		return cfg, fmt.Errorf("%s: no CONFIG_ lines", path)
	}
	return cfg, nil
}

// has reports whether the kernel has the LSM; without a config file
// (a kernel package without one) every module counts as built.
func (c kernelConfig) has(lsm string) bool {
	if c.built == nil {
		return true
	}
	return c.built[lsm]
}

// lsmParam is the lsm= value for a boot that wants the modules in order,
// keeping those the kernel has.
func (c kernelConfig) lsmParam(want string) string {
	var keep []string
	for _, m := range strings.Split(want, ",") {
		if c.has(m) {
			keep = append(keep, m)
		}
	}
	return strings.Join(keep, ",")
}

// forKernel adapts a built-in suite to a kernel: a suite whose module the
// kernel lacks is not booted (nil), and cases the kernel cannot run are
// left out of the plan (Landlock layouts without Landlock). It returns
// what it left out, one note per kind.
func (s *suite) forKernel(cfg kernelConfig) (*suite, []string) {
	module := "apparmor"
	if s.selinux() {
		module = "selinux"
	}
	if s.plan.AppArmor == "" && !s.selinux() {
		module = ""
	}
	if module != "" && !cfg.has(module) {
		return nil, []string{fmt.Sprintf("suite %s: the kernel has no %s", s.name, module)}
	}
	out := &suite{name: s.name, plan: s.plan, cfg: cfg}
	out.plan.Steps = nil
	var notes []string
	dropped := 0
	for _, st := range s.plan.Steps {
		if st.BPF != nil && !cfg.has("bpf") {
			// No BPF LSM: the step cannot attach procgate's program.
			notes = append(notes, fmt.Sprintf("suite %s: step %s left out (the kernel has no BPF LSM)", s.name, st.Name))
			continue
		}
		if !cfg.has("landlock") {
			var keep []oracle.Case
			for _, c := range st.Cases {
				if l := c.Landlock; l != "" && l != oracle.LandlockNone {
					dropped++
					continue
				}
				keep = append(keep, c)
			}
			st.Cases = keep
		}
		out.plan.Steps = append(out.plan.Steps, st)
	}
	if dropped == 0 {
		return out, notes
	}
	return out, append(notes, fmt.Sprintf("suite %s: %d Landlock cases left out (the kernel has no Landlock)", s.name, dropped))
}

// errNoKernels is Run's error when there is nothing to boot.
var errNoKernels = errors.New("give --kernel-deb FILE or RELEASE=FILE (scripts/vm-verify.sh downloads them), --release, or --from-log")

// kernels returns the packages to boot: the --kernel-deb ones, and for
// each --release without one, the newest package cached in WORK/apt.
func (o *Options) kernels() ([]KernelDeb, error) {
	var out []KernelDeb
	if o.KernelDeb != "" {
		k, err := ParseKernelDeb(o.KernelDeb)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	out = append(out, o.Kernels...)
	rels, err := ExpandReleases(o.Releases)
	if err != nil {
		return nil, err
	}
	if len(rels) > 0 {
		byRel := map[string]KernelDeb{}
		for _, k := range out {
			if k.Release != "" {
				byRel[k.Release] = k
			}
		}
		var sel []KernelDeb
		for _, r := range rels {
			k, ok := byRel[r]
			if !ok {
				deb, err := cachedKernel(o.Work, r)
				if err != nil {
					return nil, err
				}
				k = KernelDeb{Release: r, Deb: deb}
			}
			sel = append(sel, k)
		}
		out = sel
	}
	if len(out) == 0 {
		return nil, errNoKernels
	}
	return out, nil
}
