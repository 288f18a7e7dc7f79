package vm

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Options configure [Run]. The zero value of a field selects its
// default.
type Options struct {
	// KernelDeb is a linux-image-*.deb whose boot/vmlinuz-* is booted
	// (FILE or RELEASE=FILE, as --kernel-deb); Kernels are more;
	// Releases select kernels by release name (Releases, or "all"),
	// taking the --kernel-deb package of that release or else the newest
	// one cached in WORK/apt/RELEASE/archives. AppArmorDeb is the apparmor
	// .deb (apparmor_parser and its abi files), needed by a plan with
	// AppArmor profiles (default: the one cached in WORK/apt/bookworm).
	KernelDeb   string
	Kernels     []KernelDeb
	Releases    []string
	AppArmorDeb string
	// Work is the work directory (default .cache/vm): per kernel,
	// WORK/KERNEL holds the extracted package, the initramfs, the console
	// logs (vm.log, vm-selinux.log), the reproductions of disagreements
	// and summary.json.
	Work string
	// Out is where scenario files for disagreements go (default
	// WORK/KERNEL/disagreements), one directory per suite (per kernel
	// and suite when several kernels run).
	Out string
	// KernelsMD, when set, is written with the table of every kernel
	// whose summary.json is in WORK (docs/kernels.md).
	KernelsMD string
	// PlanFile runs this oracle.VMPlan (JSON) instead of the built-in
	// suites.
	PlanFile string
	// FromLog compares saved console logs instead of booting.
	FromLog []string
	// Suites are the built-in suites to boot (default [DefaultSuites]).
	Suites []string
	// Checkpolicy is the SELinux policy compiler (default checkpolicy).
	Checkpolicy string
	// KernelArgs are extra kernel command-line arguments.
	KernelArgs string
	// Init is the binary booted as init; it must call
	// oracle.RunRoleIfRequested first in main. Default: this executable.
	// Any build works; a dynamically linked one brings its interpreter and
	// shared libraries from this host.
	Init string
	// Qemu is the qemu binary (default qemu-system-x86_64); SMP its
	// virtual CPUs (default 2), MemMiB its memory (default 1024) and
	// Timeout the longest a boot may take (default 15 minutes).
	Qemu    string
	SMP     int
	MemMiB  int
	Timeout time.Duration
}

// TableOnly reports whether the options only ask for the kernel table:
// KernelsMD without kernels to boot or logs to compare.
func (o *Options) TableOnly() bool {
	return o.KernelsMD != "" && o.KernelDeb == "" && len(o.Kernels) == 0 && len(o.Releases) == 0 && len(o.FromLog) == 0
}

func (o *Options) defaults() {
	if o.Work == "" {
		o.Work = ".cache/vm"
	}
	if len(o.Suites) == 0 {
		o.Suites = DefaultSuites
	}
	if o.Checkpolicy == "" {
		o.Checkpolicy = "checkpolicy"
	}
	if o.Qemu == "" {
		o.Qemu = "qemu-system-x86_64"
	}
	if o.SMP <= 0 {
		o.SMP = 2
	}
	if o.MemMiB <= 0 {
		o.MemMiB = 1024
	}
	if o.Timeout <= 0 {
		o.Timeout = 15 * time.Minute
	}
}

// ErrUnfinished is wrapped by Run's error when a VM did not finish its
// plan (no BEGIN or END line) or a kernel could not be booted: the run is
// incomplete, not a finding.
var ErrUnfinished = errors.New("the VM did not finish its plan")

// kernelRun is one kernel's boots (or saved logs).
type kernelRun struct {
	label   string // release name, or the package version
	release string // the Debian release, "" when unknown
	deb     string
	cfg     kernelConfig
	init    string // "static" or "dynamic": how the init binary is linked
	notes   []string
	reps    []*report
	errs    []string
	wall    time.Duration
}

// Run boots each kernel's suites (or reads each saved log), compares every
// answer with the model, prints one report per boot, one summary line per
// kernel and a total to stdout, progress to stderr, writes reproductions
// of disagreements to Options.Out and each kernel's summary.json to its
// work directory. The error is for a run that could not be made or did
// not finish (errors.Is(err, ErrUnfinished)); the totals of a finished
// run say whether it found anything ([Totals.Failure]).
func Run(ctx context.Context, stdout, stderr io.Writer, o Options) (*Totals, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	o.defaults()
	start := time.Now()
	if o.TableOnly() {
		if err := writeKernelsMD(o.KernelsMD, o.Work); err != nil {
			return nil, err
		}
		fmt.Fprintf(stdout, "kernel table written to %s\n", o.KernelsMD)
		return &Totals{}, nil
	}
	ss, err := suites(o.PlanFile, o.Suites)
	if err != nil {
		return nil, err
	}
	var runs []*kernelRun
	if len(o.FromLog) > 0 {
		runs, err = compareLogs(o.FromLog, ss)
		if err != nil {
			return nil, err
		}
	} else {
		kernels, err := o.kernels()
		if err != nil {
			return nil, err
		}
		if o.AppArmorDeb == "" && slices.ContainsFunc(ss, func(s *suite) bool { return s.plan.AppArmor != "" }) {
			if o.AppArmorDeb, err = cachedAppArmor(o.Work); err != nil {
				return nil, err
			}
		}
		for _, k := range kernels {
			if ctx.Err() != nil {
				break
			}
			runs = append(runs, bootKernel(ctx, stderr, o, k, ss))
		}
	}
	tot := &Totals{}
	for _, kr := range runs {
		for _, rep := range kr.reps {
			rep.print(stdout)
			tot.add(rep)
			if len(rep.groups) == 0 {
				continue
			}
			dir := filepath.Join(o.Work, kr.label, "disagreements", rep.suite)
			switch {
			case o.Out != "" && len(runs) == 1:
				dir = filepath.Join(o.Out, rep.suite)
			case o.Out != "":
				dir = filepath.Join(o.Out, kr.label, rep.suite)
			}
			if err := rep.writeScenarios(dir); err != nil {
				fmt.Fprintf(stderr, "verify-vm: writing reproductions: %v\n", err)
			}
			fmt.Fprintf(stdout, "reproductions of the first case of each group (.json: kernel, case, result for verify.Predict; .yaml: scenario file where the world can be written) are in %s\n", dir)
		}
		res := kr.result()
		tot.Kernels = append(tot.Kernels, res)
		if len(kr.errs) > 0 {
			tot.Unfinished += fmt.Sprintf("kernel %s: %s; ", kr.label, strings.Join(kr.errs, "; "))
		}
		if len(o.FromLog) == 0 {
			if err := res.save(filepath.Join(o.Work, kr.label, "summary.json")); err != nil {
				fmt.Fprintf(stderr, "verify-vm: %v\n", err)
			}
		}
	}
	tot.print(stdout, time.Since(start))
	if o.KernelsMD != "" {
		if err := writeKernelsMD(o.KernelsMD, o.Work); err != nil {
			return tot, err
		}
		fmt.Fprintf(stdout, "kernel table written to %s\n", o.KernelsMD)
	}
	if ctx.Err() != nil {
		return tot, ctx.Err()
	}
	if tot.Unfinished != "" {
		return tot, fmt.Errorf("%w (%s)", ErrUnfinished, strings.TrimSuffix(tot.Unfinished, "; "))
	}
	return tot, nil
}

// compareLogs compares saved console logs, each with the suite it
// belongs to, grouped by the kernel that printed them.
func compareLogs(files []string, ss []*suite) ([]*kernelRun, error) {
	var runs []*kernelRun
	byKernel := map[string]*kernelRun{}
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		run, err := readConsole(f, nil, nil)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		rep, err := compare(run, suiteForLog(run, ss))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		key, label, rel := "", "kernel", ""
		if run.begin != nil {
			key = run.begin.Release + " " + run.begin.Version
			fallback := cmp.Or(run.begin.Release, label)
			label, rel = kernelLabel(packageVersion(run.begin.Version), fallback)
		}
		kr := byKernel[key]
		if kr == nil {
			kr = &kernelRun{label: label, release: rel}
			byKernel[key] = kr
			runs = append(runs, kr)
		}
		rep.kernelLabel = kr.label
		kr.reps = append(kr.reps, rep)
	}
	return runs, nil
}

// bootKernel extracts a kernel package, then for each suite the kernel
// supports compiles its SELinux policy when it has one, writes its
// initramfs, boots it and compares the console with the model. Errors
// are recorded in the run: the other kernels still boot.
func bootKernel(ctx context.Context, progress io.Writer, o Options, k KernelDeb, ss []*suite) *kernelRun {
	start := time.Now()
	kr := &kernelRun{label: k.Release, release: k.Release, deb: k.Deb}
	defer func() { kr.wall = time.Since(start) }()
	fail := func(err error) *kernelRun {
		kr.errs = append(kr.errs, err.Error())
		fmt.Fprintf(progress, "verify-vm: kernel %s: %v\n", kr.label, err)
		return kr
	}
	if kr.label == "" {
		name := strings.TrimSuffix(filepath.Base(k.Deb), ".deb")
		version := "" // PACKAGE_VERSION_ARCH.deb
		if f := strings.Split(name, "_"); len(f) >= 2 {
			version = f[1]
		}
		kr.label, kr.release = kernelLabel(version, name)
	}
	initBin := o.Init
	if initBin == "" {
		self, err := os.Executable()
		if err != nil {
			return fail(err)
		}
		initBin = self
	}
	kr.init = "static"
	if libs, err := sharedLibs(initBin); err == nil && len(libs) > 0 {
		kr.init = "dynamic"
	}
	work := filepath.Join(o.Work, kr.label)
	if err := os.MkdirAll(work, 0o755); err != nil {
		return fail(err)
	}
	pkgs, err := preparePackages(o.Work, work, k.Deb, o.AppArmorDeb)
	if err != nil {
		return fail(err)
	}
	kr.cfg = pkgs.cfg
	fmt.Fprintf(progress, "verify-vm: kernel %s: %s\n", kr.label, pkgs.desc)
	m := machine{qemu: o.Qemu, smp: o.SMP, memMiB: o.MemMiB, timeout: o.Timeout}
	for _, s0 := range ss {
		if ctx.Err() != nil {
			return fail(ctx.Err())
		}
		s, notes := s0.forKernel(pkgs.cfg)
		kr.notes = append(kr.notes, notes...)
		if s == nil {
			continue
		}
		if s.selinux() && len(s.plan.SELinuxPolicy) == 0 {
			t := time.Now()
			bin, err := compileSELinux(o.Work, o.Checkpolicy, s.plan.SELinuxConf)
			if err != nil {
				return fail(err)
			}
			s0.plan.SELinuxPolicy, s.plan.SELinuxPolicy = bin, bin
			fmt.Fprintf(progress, "verify-vm: SELinux policy compiled with %s in %.1f s: %d bytes\n", o.Checkpolicy, time.Since(t).Seconds(), len(bin))
		}
		initrd := filepath.Join(work, "initramfs-"+s.name+".cpio.gz")
		if err := writeInitramfs(initrd, s.plan, pkgs.aaRoot, initBin); err != nil {
			return fail(fmt.Errorf("initramfs: %w", err))
		}
		cmdline := strings.TrimSpace(s.cmdline() + " " + o.KernelArgs)
		run, err := m.boot(ctx, progress, pkgs.kernelImg, initrd, cmdline, filepath.Join(work, s.logName()))
		if err != nil {
			fail(fmt.Errorf("suite %s: %w", s.name, err))
			if run == nil || run.begin == nil {
				continue
			}
		}
		rep, err := compare(run, s)
		if err != nil {
			fail(fmt.Errorf("suite %s: %w", s.name, err))
			continue
		}
		rep.pkgs = pkgs.desc
		rep.kernelLabel = kr.label
		rep.wall = time.Since(start)
		kr.reps = append(kr.reps, rep)
	}
	return kr
}
