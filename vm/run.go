package vm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Options configure [Run]. The zero value of a field selects its
// default.
type Options struct {
	// KernelDeb is the linux-image-*.deb whose boot/vmlinuz-* is booted;
	// AppArmorDeb the apparmor .deb (apparmor_parser and its abi files),
	// needed by a plan with AppArmor profiles.
	KernelDeb, AppArmorDeb string
	// Work is the work directory: extracted packages, initramfs, console
	// logs (default .cache/vm).
	Work string
	// Out is where scenario files for disagreements go (default
	// WORK/disagreements, one directory per suite).
	Out string
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

func (o *Options) defaults() {
	if o.Work == "" {
		o.Work = ".cache/vm"
	}
	if o.Out == "" {
		o.Out = filepath.Join(o.Work, "disagreements")
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
// plan (no BEGIN or END line): the run is incomplete, not a finding.
var ErrUnfinished = errors.New("the VM did not finish its plan")

// Run boots each suite (or reads each saved log), compares every answer
// with the model, prints one report per suite and a summary line to
// stdout, progress to stderr, and writes reproductions of disagreements
// to Options.Out. The error is for a run that could not be made or did
// not finish (errors.Is(err, ErrUnfinished)); the totals of a finished
// run say whether it found anything ([Totals.Failure]).
func Run(ctx context.Context, stdout, stderr io.Writer, o Options) (*Totals, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	o.defaults()
	start := time.Now()
	ss, err := suites(o.PlanFile, o.Suites)
	if err != nil {
		return nil, err
	}
	var reps []*report
	if len(o.FromLog) > 0 {
		reps, err = compareLogs(o.FromLog, ss)
	} else {
		reps, err = boot(ctx, stderr, o, ss, start)
	}
	if err != nil {
		return nil, err
	}
	tot := &Totals{}
	for _, rep := range reps {
		rep.print(stdout)
		tot.add(rep)
		if len(rep.groups) > 0 {
			dir := filepath.Join(o.Out, rep.suite)
			if err := rep.writeScenarios(dir); err != nil {
				fmt.Fprintf(stderr, "verify-vm: writing reproductions: %v\n", err)
			}
			fmt.Fprintf(stdout, "reproductions of the first case of each group (.json: kernel, case, result for verify.Predict; .yaml: scenario file where the world can be written) are in %s\n", dir)
		}
	}
	tot.print(stdout, time.Since(start))
	if tot.Unfinished != "" {
		return tot, fmt.Errorf("%w (%s)", ErrUnfinished, strings.TrimSuffix(tot.Unfinished, "; "))
	}
	return tot, nil
}

// compareLogs compares saved console logs, each with the suite it
// belongs to.
func compareLogs(files []string, ss []*suite) ([]*report, error) {
	var reps []*report
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
		reps = append(reps, rep)
	}
	return reps, nil
}

// boot extracts the packages, then for each suite compiles its SELinux
// policy when it has one, writes its initramfs, boots it and compares
// the console with the model.
func boot(ctx context.Context, progress io.Writer, o Options, ss []*suite, start time.Time) ([]*report, error) {
	if o.KernelDeb == "" {
		return nil, errors.New("give --kernel-deb (scripts/vm-verify.sh downloads it) or --from-log")
	}
	initBin := o.Init
	if initBin == "" {
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		initBin = self
	}
	if err := os.MkdirAll(o.Work, 0o755); err != nil {
		return nil, err
	}
	pkgs, err := preparePackages(o.Work, o.KernelDeb, o.AppArmorDeb)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(progress, "verify-vm: %s\n", pkgs.desc)
	m := machine{qemu: o.Qemu, smp: o.SMP, memMiB: o.MemMiB, timeout: o.Timeout}
	var reps []*report
	for _, s := range ss {
		if s.selinux() && len(s.plan.SELinuxPolicy) == 0 {
			t := time.Now()
			bin, err := compileSELinux(o.Work, o.Checkpolicy, s.plan.SELinuxConf)
			if err != nil {
				return nil, err
			}
			s.plan.SELinuxPolicy = bin
			fmt.Fprintf(progress, "verify-vm: SELinux policy compiled with %s in %.1f s: %d bytes\n", o.Checkpolicy, time.Since(t).Seconds(), len(bin))
		}
		initrd := filepath.Join(o.Work, "initramfs-"+s.name+".cpio.gz")
		if err := writeInitramfs(initrd, s.plan, pkgs.aaRoot, initBin); err != nil {
			return nil, fmt.Errorf("initramfs: %w", err)
		}
		cmdline := strings.TrimSpace(s.cmdline() + " " + o.KernelArgs)
		run, err := m.boot(ctx, progress, pkgs.kernelImg, initrd, cmdline, filepath.Join(o.Work, s.logName()))
		if err != nil {
			return nil, fmt.Errorf("suite %s: %w", s.name, err)
		}
		rep, err := compare(run, s)
		if err != nil {
			return nil, fmt.Errorf("suite %s: %w", s.name, err)
		}
		rep.pkgs = pkgs.desc
		rep.wall = time.Since(start)
		reps = append(reps, rep)
	}
	return reps, nil
}
