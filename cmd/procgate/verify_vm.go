package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/oracle"
	"github.com/procgate/procgate/scenario"
	"github.com/procgate/procgate/verify"
)

// vmLSMs is the LSM order the VM boots with. Debian's built-in order may
// give the same set; lsm= pins it. SELinux cannot be stacked with
// AppArmor on 6.1, so the SELinux suite boots a second time with
// vmSELinuxLSMs (and enforcing=0: init loads the policy, then enforces).
const (
	vmLSMs        = "landlock,lockdown,yama,apparmor,bpf"
	vmSELinuxLSMs = "landlock,lockdown,yama,selinux,bpf"
)

// Suite names (--suites).
const (
	suiteAppArmor = "apparmor" // AppArmor and Yama: vm.log
	suiteSELinux  = "selinux"  // SELinux (and Yama 0): vm-selinux.log
)

type verifyVMOpts struct {
	kernelDeb, apparmorDeb string
	work                   string
	out                    string
	planFile               string
	fromLog                []string
	suites                 []string
	checkpolicy            string
	kernelArgs             string
	qemu                   string
	smp, mem               int
	timeout                time.Duration
	minCases               int
}

// vmSuite is one boot: a plan, the kernel command line it needs and the
// policy texts the model predicts with.
type vmSuite struct {
	name string
	plan oracle.VMPlan
}

func (s *vmSuite) selinux() bool { return len(s.plan.SELinuxPolicy) > 0 || s.plan.SELinuxModel != "" }

// cmdline is the kernel command line of the suite's boot.
func (s *vmSuite) cmdline() string {
	lsms, extra := vmLSMs, ""
	if s.selinux() {
		lsms, extra = vmSELinuxLSMs, " enforcing=0"
	}
	return "console=ttyS0 quiet lsm=" + lsms + extra + " panic=-1 mitigations=off"
}

// logName is the console log's file name in the work directory.
func (s *vmSuite) logName() string {
	if s.name == suiteAppArmor {
		return "vm.log"
	}
	return "vm-" + s.name + ".log"
}

func newVerifyVMCmd() *cobra.Command {
	var o verifyVMOpts
	cmd := &cobra.Command{
		Use:   "verify-vm --kernel-deb FILE --apparmor-deb FILE [--work DIR]",
		Short: "Verify the Yama, AppArmor and SELinux model against a kernel booted under qemu",
		Long: `verify-vm boots a Debian kernel package under qemu with software emulation
(TCG), with this binary as init, runs the Yama (scopes 0-3) and AppArmor
cases in it and compares every answer with the model for that kernel's
release, LSMs, Yama scope, Landlock ABI and AppArmor profiles. A second boot
(suite selinux) runs SELinux instead of AppArmor with a small policy compiled
here with checkpolicy, and compares with the model for that policy.

scripts/vm-verify.sh installs qemu and checkpolicy, downloads the packages
and runs it. The binary must be static and non-PIE (CGO_ENABLED=0 go build).
Root is not needed. The VM's console is saved as vm.log (vm-selinux.log for
the SELinux boot) in --work; --from-log compares saved logs again without
booting.

On a disagreement it prints one line per group (step, probe, prober and
target, kernel and model answers) and writes a scenario file reproducing the
first case of each group to --out.

Exit status: 0 when every case ran and agrees with the model, 1 on a
disagreement, a refused case or fewer cases than --min-cases, 2 on a setup
error (including a VM that did not finish its plan).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runVerifyVM(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.kernelDeb, "kernel-deb", "", "the linux-image-*.deb whose boot/vmlinuz-* is booted")
	f.StringVar(&o.apparmorDeb, "apparmor-deb", "", "the apparmor .deb (apparmor_parser and its abi files)")
	f.StringVar(&o.work, "work", ".cache/vm", "work directory: extracted packages, initramfs, vm.log")
	f.StringVar(&o.out, "out", "", "where to write scenario files for disagreements (default WORK/disagreements)")
	f.StringVar(&o.planFile, "plan", "", "run this oracle.VMPlan (JSON) instead of the built-in cases")
	f.StringSliceVar(&o.fromLog, "from-log", nil, "compare the results in saved VM console logs instead of booting (repeatable)")
	f.StringSliceVar(&o.suites, "suites", []string{suiteAppArmor, suiteSELinux}, "the boots to run: apparmor (AppArmor and Yama), selinux")
	f.StringVar(&o.checkpolicy, "checkpolicy", "checkpolicy", "the SELinux policy compiler (for the selinux suite)")
	f.StringVar(&o.kernelArgs, "kernel-args", "", "extra kernel command-line arguments, e.g. loglevel=7 to see SELinux denials on the console")
	f.StringVar(&o.qemu, "qemu", "qemu-system-x86_64", "the qemu binary")
	f.IntVar(&o.smp, "smp", 2, "virtual CPUs")
	f.IntVar(&o.mem, "mem", 1024, "memory in MiB")
	f.DurationVar(&o.timeout, "timeout", 15*time.Minute, "stop the VM after this long")
	f.IntVar(&o.minCases, "min-cases", 300, "fail unless at least this many cases ran")
	return cmd
}

// vmRun is what the VM printed.
type vmRun struct {
	begin    *oracle.VMBegin
	results  []oracle.VMRes
	end      *oracle.VMEnd
	errors   []string
	bootWall time.Duration // host time from qemu's start to the BEGIN line
	vmWall   time.Duration // host time from qemu's start to its exit
}

func runVerifyVM(ctx context.Context, stdout, stderr io.Writer, o verifyVMOpts) error {
	if ctx == nil {
		ctx = context.Background()
	}
	start := time.Now()
	setup := func(err error) error { return &exitError{2, fmt.Errorf("verify-vm: %w", err)} }
	if o.out == "" {
		o.out = filepath.Join(o.work, "disagreements")
	}
	suites, err := vmSuites(o)
	if err != nil {
		return setup(err)
	}
	var reps []*vmReport
	if len(o.fromLog) > 0 {
		for _, file := range o.fromLog {
			f, err := os.Open(file)
			if err != nil {
				return setup(err)
			}
			run, err := readVMLog(f, nil, nil)
			f.Close()
			if err != nil {
				return setup(err)
			}
			rep, err := compareVM(run, suiteForLog(run, suites))
			if err != nil {
				return setup(fmt.Errorf("%s: %w", file, err))
			}
			reps = append(reps, rep)
		}
	} else {
		if o.kernelDeb == "" {
			return setup(errors.New("give --kernel-deb (scripts/vm-verify.sh downloads it) or --from-log"))
		}
		if err := os.MkdirAll(o.work, 0o755); err != nil {
			return setup(err)
		}
		kernelImg, aaRoot, desc, err := preparePackages(o)
		if err != nil {
			return setup(err)
		}
		fmt.Fprintf(stderr, "verify-vm: %s\n", desc)
		for _, s := range suites {
			if s.selinux() && len(s.plan.SELinuxPolicy) == 0 {
				t := time.Now()
				bin, err := compileSELinux(o, s.plan.SELinuxConf)
				if err != nil {
					return setup(err)
				}
				s.plan.SELinuxPolicy = bin
				fmt.Fprintf(stderr, "verify-vm: SELinux policy compiled with %s in %.1f s: %d bytes\n", o.checkpolicy, time.Since(t).Seconds(), len(bin))
			}
			initrd := filepath.Join(o.work, "initramfs-"+s.name+".cpio.gz")
			if err := writeInitramfs(initrd, s.plan, aaRoot); err != nil {
				return setup(fmt.Errorf("initramfs: %w", err))
			}
			run, err := bootVM(ctx, stderr, o, kernelImg, initrd, strings.TrimSpace(s.cmdline()+" "+o.kernelArgs), filepath.Join(o.work, s.logName()))
			if err != nil {
				return setup(fmt.Errorf("suite %s: %w", s.name, err))
			}
			rep, err := compareVM(run, s)
			if err != nil {
				return setup(fmt.Errorf("suite %s: %w", s.name, err))
			}
			rep.pkgs = desc
			rep.wall = time.Since(start)
			reps = append(reps, rep)
		}
	}
	var total vmTotals
	for _, rep := range reps {
		rep.print(stdout)
		total.add(rep)
		if len(rep.groups) > 0 {
			dir := filepath.Join(o.out, rep.suite)
			if err := rep.writeScenarios(dir); err != nil {
				fmt.Fprintf(stderr, "verify-vm: writing reproductions: %v\n", err)
			}
			fmt.Fprintf(stdout, "reproductions of the first case of each group (.json: kernel, case, result for verify.Predict; .yaml: scenario file where the world can be written) are in %s\n", dir)
		}
	}
	total.print(stdout, len(reps), time.Since(start))
	switch {
	case total.unfinished != "":
		return &exitError{2, fmt.Errorf("verify-vm: the VM did not finish its plan (%s)", total.unfinished)}
	case total.refused > 0 || total.disagreeCases > 0 || total.predictErrs > 0:
		return &exitError{1, fmt.Errorf("verify-vm: %d disagreeing, %d refused and %d unpredicted of %d cases", total.disagreeCases, total.refused, total.predictErrs, total.cases)}
	case total.cases < o.minCases:
		return &exitError{1, fmt.Errorf("verify-vm: only %d cases ran, want at least %d", total.cases, o.minCases)}
	}
	return nil
}

// vmSuites returns the boots to run: --plan's, or the built-in suites
// --suites names.
func vmSuites(o verifyVMOpts) ([]*vmSuite, error) {
	if o.planFile != "" {
		b, err := os.ReadFile(o.planFile)
		if err != nil {
			return nil, err
		}
		var plan oracle.VMPlan
		if err := json.Unmarshal(b, &plan); err != nil {
			return nil, fmt.Errorf("%s: %w", o.planFile, err)
		}
		if (len(plan.SELinuxPolicy) > 0 || plan.SELinuxConf != "") && plan.SELinuxModel == "" {
			return nil, fmt.Errorf("%s: an SELinux plan needs selinux_model, the policy text the model predicts with", o.planFile)
		}
		name := strings.TrimSuffix(filepath.Base(o.planFile), filepath.Ext(o.planFile))
		return []*vmSuite{{name: name, plan: plan}}, nil
	}
	var out []*vmSuite
	for _, n := range o.suites {
		switch n {
		case suiteAppArmor:
			out = append(out, &vmSuite{name: n, plan: oracle.VMDefaultPlan()})
		case suiteSELinux:
			plan := oracle.VMSELinuxPlan(nil)
			plan.SELinuxConf = oracle.VMSELinuxPolicyConf()
			out = append(out, &vmSuite{name: n, plan: plan})
		default:
			return nil, fmt.Errorf("unknown suite %q (want %s or %s)", n, suiteAppArmor, suiteSELinux)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no suite to run")
	}
	return out, nil
}

// suiteForLog picks the suite a saved log belongs to: an SELinux one when
// the VM ran SELinux, otherwise an AppArmor one; the built-in suite when
// none of those asked for fits.
func suiteForLog(run *vmRun, suites []*vmSuite) *vmSuite {
	sel := run.begin != nil && slices.Contains(run.begin.LSMs, "selinux")
	for _, s := range suites {
		if s.selinux() == sel {
			return s
		}
	}
	if sel {
		return &vmSuite{name: suiteSELinux, plan: oracle.VMSELinuxPlan(nil)}
	}
	return &vmSuite{name: suiteAppArmor, plan: oracle.VMDefaultPlan()}
}

// compileSELinux compiles policy.conf text with checkpolicy into a
// version-33 binary policy (the newest Linux 6.1 loads) with
// handle_unknown allow, so that the classes and permissions the policy
// does not declare are allowed. The source and the binary are kept in
// WORK/selinux.
func compileSELinux(o verifyVMOpts, conf string) ([]byte, error) {
	if conf == "" {
		return nil, errors.New("the SELinux plan has neither a compiled policy nor its policy.conf")
	}
	dir := filepath.Join(o.work, "selinux")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	src, dst := filepath.Join(dir, "policy.conf"), filepath.Join(dir, "policy.33")
	if err := os.WriteFile(src, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	if out, err := exec.Command(o.checkpolicy, checkpolicyArgs(src, dst)...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%s (is checkpolicy installed?): %w: %s", o.checkpolicy, err, strings.TrimSpace(string(out)))
	}
	return os.ReadFile(dst)
}

// checkpolicyArgs compiles src (a non-MLS policy.conf) to dst: policy
// version 33, unknown classes and permissions allowed.
func checkpolicyArgs(src, dst string) []string {
	return []string{"-c", "33", "-U", "allow", "-o", dst, src}
}

// vmTotals sums the suites' reports.
type vmTotals struct {
	cases, probes, refused, disagreeCases, disagreeProbes, predictErrs int
	unfinished                                                         string
}

func (t *vmTotals) add(r *vmReport) {
	t.cases += r.cases
	t.probes += r.probes
	t.refused += r.refused
	t.disagreeCases += r.disagreeCases
	t.disagreeProbes += r.disagreeProbes
	t.predictErrs += r.predictErrs
	if r.begin == nil || r.end == nil {
		t.unfinished += fmt.Sprintf("suite %s: %s; ", r.suite, strings.Join(r.errors, "; "))
	}
}

func (t *vmTotals) print(w io.Writer, suites int, wall time.Duration) {
	if suites < 2 {
		return
	}
	agree := 0.0
	if checked := t.cases - t.refused - t.predictErrs; checked > 0 {
		agree = 100 * float64(checked-t.disagreeCases) / float64(t.cases)
	}
	fmt.Fprintf(w, "all %d suites: %d cases, %d probe results, %d cases disagree (%d probe results), %d refused: %.1f%% of cases agree; wall %.1f s\n",
		suites, t.cases, t.probes, t.disagreeCases, t.disagreeProbes, t.refused, agree, wall.Seconds())
}

// --- packages and initramfs ---

// preparePackages extracts the kernel image and the AppArmor userland and
// describes the packages.
func preparePackages(o verifyVMOpts) (kernelImg, aaRoot, desc string, err error) {
	kdir := filepath.Join(o.work, "kernel")
	names, err := extractDeb(o.kernelDeb, kdir, func(name string) bool {
		return strings.HasPrefix(name, "boot/vmlinuz-")
	})
	if err != nil {
		return "", "", "", err
	}
	if len(names) != 1 {
		return "", "", "", fmt.Errorf("%s: want one boot/vmlinuz-*, found %v", o.kernelDeb, names)
	}
	kernelImg = filepath.Join(kdir, names[0])
	desc = "kernel " + debDesc(o.kernelDeb)
	if o.apparmorDeb != "" {
		aaRoot = filepath.Join(o.work, "apparmor")
		if _, err := extractDeb(o.apparmorDeb, aaRoot, func(name string) bool {
			return name == "sbin/apparmor_parser" || name == "etc/apparmor/parser.conf" ||
				strings.HasPrefix(name, "etc/apparmor.d/abi/") || strings.HasPrefix(name, "usr/share/apparmor-features/")
		}); err != nil {
			return "", "", "", err
		}
		desc += ", " + debDesc(o.apparmorDeb)
	}
	return kernelImg, aaRoot, desc, nil
}

// debDesc returns "package version" from the .deb's control file, or its
// file name.
func debDesc(deb string) string {
	out, err := exec.Command("dpkg-deb", "-f", deb, "Package", "Version").Output()
	if err != nil {
		return filepath.Base(deb)
	}
	var parts []string
	for line := range strings.Lines(string(out)) {
		if _, v, ok := strings.Cut(line, ": "); ok {
			parts = append(parts, strings.TrimSpace(v))
		}
	}
	return strings.Join(parts, " ")
}

// extractDeb extracts the regular files of a .deb whose names (without
// "./") keep accepts into dir, and returns their names. It reads the data
// archive through dpkg-deb --fsys-tarfile.
func extractDeb(deb, dir string, keep func(string) bool) ([]string, error) {
	cmd := exec.Command("dpkg-deb", "--fsys-tarfile", deb)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("dpkg-deb (is dpkg installed?): %w", err)
	}
	names, terr := extractTar(pipe, dir, keep)
	_, _ = io.Copy(io.Discard, pipe)
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("dpkg-deb --fsys-tarfile %s: %w: %s", deb, err, strings.TrimSpace(errb.String()))
	}
	return names, terr
}

func extractTar(r io.Reader, dir string, keep func(string) bool) ([]string, error) {
	tr := tar.NewReader(r)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names, nil
		}
		if err != nil {
			return names, err
		}
		name := strings.TrimPrefix(path.Clean(h.Name), "./")
		if h.Typeflag != tar.TypeReg || !keep(name) || !filepath.IsLocal(name) {
			continue
		}
		dst := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return names, err
		}
		f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, os.FileMode(h.Mode)&0o755|0o644)
		if err != nil {
			return names, err
		}
		_, err = io.Copy(f, tr)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return names, err
		}
		names = append(names, name)
	}
}

// cpioWriter writes a "newc" cpio archive, the format the kernel unpacks
// as initramfs (init/initramfs.c). Directories are emitted before the
// files in them.
type cpioWriter struct {
	w    io.Writer
	ino  uint32
	dirs map[string]bool
	err  error
}

func newCPIO(w io.Writer) *cpioWriter { return &cpioWriter{w: w, ino: 1, dirs: map[string]bool{}} }

const (
	cpioDir = 0o040000
	cpioReg = 0o100000
	cpioChr = 0o020000
)

// entry writes one header, name and data, each padded to 4 bytes.
func (c *cpioWriter) entry(name string, mode, rdevMajor, rdevMinor uint32, data []byte) {
	if c.err != nil {
		return
	}
	nlink := uint32(1)
	if mode&0o170000 == cpioDir {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		c.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	c.ino++
	var b bytes.Buffer
	b.WriteString(hdr)
	b.WriteString(name)
	b.WriteByte(0)
	pad(&b, b.Len())
	if _, err := c.w.Write(b.Bytes()); err != nil {
		c.err = err
		return
	}
	b.Reset()
	b.Write(data)
	pad(&b, len(data))
	_, c.err = c.w.Write(b.Bytes())
}

func pad(b *bytes.Buffer, n int) {
	for ; n%4 != 0; n++ {
		b.WriteByte(0)
	}
}

// dir writes name and its missing ancestors as directories (0755).
func (c *cpioWriter) dir(name string) {
	name = path.Clean(name)
	if name == "." || name == "/" || c.dirs[name] {
		return
	}
	c.dir(path.Dir(name))
	c.dirs[name] = true
	c.entry(name, cpioDir|0o755, 0, 0, nil)
}

// file writes a regular file (and its directories).
func (c *cpioWriter) file(name string, perm uint32, data []byte) {
	c.dir(path.Dir(name))
	c.entry(name, cpioReg|perm, 0, 0, data)
}

// close writes the trailer.
func (c *cpioWriter) close() error {
	c.entry("TRAILER!!!", 0, 0, 0, nil)
	return c.err
}

// writeInitramfs builds the VM's initramfs: this binary as /init, the
// plan, /dev/console, and (for AppArmor) apparmor_parser with its shared
// libraries, abi files and feature file.
func writeInitramfs(dst string, plan oracle.VMPlan, aaRoot string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if err := checkStaticExec(self); err != nil {
		return err
	}
	initBin, err := os.ReadFile(self)
	if err != nil {
		return err
	}
	planJSON, err := json.Marshal(plan)
	if err != nil {
		return err
	}
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer f.Close()
	zw, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	c := newCPIO(zw)
	for _, d := range []string{"dev", "proc", "sys", "tmp", "root"} {
		c.dir(d)
	}
	c.entry("dev/console", cpioChr|0o600, 5, 1, nil)
	c.file("init", 0o755, initBin)
	c.file(strings.TrimPrefix(oracle.VMPlanPath, "/"), 0o644, planJSON)
	if plan.AppArmor != "" {
		if aaRoot == "" {
			return errors.New("the plan loads AppArmor profiles: give --apparmor-deb")
		}
		if err := addAppArmor(c, aaRoot); err != nil {
			return err
		}
	}
	if err := c.close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return f.Close()
}

// checkStaticExec refuses a binary that cannot be init: dynamically linked
// (no loader in the initramfs) or PIE (the oracle's process_vm_readv
// probe needs fixed addresses).
func checkStaticExec(path string) error {
	ef, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer ef.Close()
	if ef.Type != elf.ET_EXEC {
		return fmt.Errorf("%s is not a non-PIE executable: build it with CGO_ENABLED=0 go build", path)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked: build it with CGO_ENABLED=0", path)
		}
	}
	return nil
}

// addAppArmor adds the parser, its configuration, abi and feature files,
// and the shared libraries it needs (resolved on this host, which runs
// the same distribution release as the package).
func addAppArmor(c *cpioWriter, root string) error {
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		perm := uint32(0o644)
		if rel == "sbin/apparmor_parser" {
			perm = 0o755
		}
		c.file(filepath.ToSlash(rel), perm, b)
		return nil
	})
	if err != nil {
		return err
	}
	libs, err := sharedLibs(filepath.Join(root, "sbin/apparmor_parser"))
	if err != nil {
		return err
	}
	for _, l := range libs {
		b, err := os.ReadFile(l)
		if err != nil {
			return err
		}
		c.file(strings.TrimPrefix(l, "/"), 0o755, b)
	}
	return nil
}

// libDirs are where sharedLibs looks for DT_NEEDED libraries (glibc's
// trusted directories on Debian amd64).
var libDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"}

// sharedLibs returns the loader and every library bin needs, recursively,
// as paths on this host.
func sharedLibs(bin string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	var walk func(file string) error
	walk = func(file string) error {
		ef, err := elf.Open(file)
		if err != nil {
			return err
		}
		defer ef.Close()
		for _, p := range ef.Progs {
			if p.Type != elf.PT_INTERP {
				continue
			}
			b, err := io.ReadAll(p.Open())
			if err != nil {
				return err
			}
			if interp := strings.TrimRight(string(b), "\x00"); !seen[interp] {
				seen[interp] = true
				out = append(out, interp)
			}
		}
		needed, err := ef.ImportedLibraries()
		if err != nil {
			return err
		}
		for _, n := range needed {
			found := ""
			for _, d := range libDirs {
				if _, err := os.Stat(filepath.Join(d, n)); err == nil {
					found = filepath.Join(d, n)
					break
				}
			}
			if found == "" {
				return fmt.Errorf("%s needs %s, not found in %v", file, n, libDirs)
			}
			if seen[found] {
				continue
			}
			seen[found] = true
			out = append(out, found)
			if err := walk(found); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(bin); err != nil {
		return nil, err
	}
	return out, nil
}

// --- the VM ---

// bootVM runs qemu, saves its console to logPath and collects the
// protocol lines. qemu is killed when ctx ends, on timeout, and (through
// the parent-death signal) if this process dies.
func bootVM(ctx context.Context, progress io.Writer, o verifyVMOpts, kernelImg, initrd, cmdline, logPath string) (*vmRun, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	args := []string{
		"-accel", "tcg", "-cpu", "max", "-smp", fmt.Sprint(o.smp), "-m", fmt.Sprint(o.mem),
		"-nodefaults", "-display", "none", "-serial", "stdio", "-no-reboot", "-net", "none",
		"-kernel", kernelImg, "-initrd", initrd,
		"-append", cmdline,
	}
	cmd := exec.CommandContext(ctx, o.qemu, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	var errb bytes.Buffer
	cmd.Stderr = &errb
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	fmt.Fprintf(progress, "verify-vm: booting %s %s\n", o.qemu, strings.Join(args, " "))
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start qemu (is qemu-system-x86 installed?): %w", err)
	}
	run, rerr := readVMLog(io.TeeReader(pipe, logf), progress, func(r *vmRun) { r.bootWall = time.Since(t0) })
	werr := cmd.Wait()
	if run != nil {
		run.vmWall = time.Since(t0)
	}
	if ctx.Err() != nil {
		return run, fmt.Errorf("qemu stopped after %v: %w (console in %s)", time.Since(t0).Round(time.Second), ctx.Err(), logPath)
	}
	if rerr != nil {
		return run, rerr
	}
	if werr != nil && (run.end == nil) {
		return run, fmt.Errorf("qemu: %w: %s (console in %s)", werr, strings.TrimSpace(errb.String()), logPath)
	}
	return run, nil
}

// readVMLog parses a VM console: the protocol lines (anywhere in a line,
// after stray console output) and nothing else. onBegin is called when the
// BEGIN line arrives; progress, when set, gets one line per finished step.
func readVMLog(r io.Reader, progress io.Writer, onBegin func(*vmRun)) (*vmRun, error) {
	run := &vmRun{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	step, stepN := "", 0
	flush := func() {
		if progress != nil && step != "" {
			fmt.Fprintf(progress, "verify-vm: step %s: %d cases\n", step, stepN)
		}
	}
	for sc.Scan() {
		kind, payload := parseVMLine(sc.Text())
		var err error
		switch kind {
		case oracle.VMBeginPrefix:
			run.begin = &oracle.VMBegin{}
			err = json.Unmarshal(payload, run.begin)
			if onBegin != nil {
				onBegin(run)
			}
			if progress != nil && err == nil {
				fmt.Fprintf(progress, "verify-vm: VM up: %s, LSMs %s, %d cases\n", run.begin.Release, strings.Join(run.begin.LSMs, ","), run.begin.Cases)
			}
		case oracle.VMResPrefix:
			var res oracle.VMRes
			if err = json.Unmarshal(payload, &res); err == nil {
				if res.Step != step {
					flush()
					step, stepN = res.Step, 0
				}
				stepN++
				if res.Result.Error != "" {
					res.Result.Err = errors.New(res.Result.Error)
				}
				run.results = append(run.results, res)
			}
		case oracle.VMEndPrefix:
			flush()
			step = ""
			run.end = &oracle.VMEnd{}
			err = json.Unmarshal(payload, run.end)
		case oracle.VMErrorPrefix:
			var e struct{ Error string }
			_ = json.Unmarshal(payload, &e)
			run.errors = append(run.errors, e.Error)
			if progress != nil {
				fmt.Fprintf(progress, "verify-vm: VM error: %s\n", e.Error)
			}
		}
		if err != nil {
			return run, fmt.Errorf("bad %sline: %w", kind, err)
		}
	}
	return run, sc.Err()
}

// parseVMLine finds a protocol prefix in a console line and returns it
// with the JSON after it; kind is "" for other lines.
func parseVMLine(line string) (kind string, payload []byte) {
	line = strings.TrimRight(line, "\r\n")
	for _, p := range []string{oracle.VMBeginPrefix, oracle.VMResPrefix, oracle.VMEndPrefix, oracle.VMErrorPrefix} {
		if i := strings.Index(line, p); i >= 0 {
			return p, []byte(line[i+len(p):])
		}
	}
	return "", nil
}

// debianVersion matches the package version /proc/version names on a
// Debian kernel: "… #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2025-…)".
// The compiler's version ("gcc-12 (Debian 12.2.0-14) 12.2.0") comes
// earlier in the line, so the last match counts.
var debianVersion = regexp.MustCompile(`Debian (\d+\.\d+(?:\.\d+)?)[-+~][^ ]* \(\d{4}-`)

// vmRelease returns the upstream release of the VM's kernel: Debian's
// uname -r ("6.1.0-56-amd64") names the ABI, not the stable release, so
// the package version in /proc/version is preferred.
func vmRelease(b *oracle.VMBegin) (kernel.Release, error) {
	if m := debianVersion.FindStringSubmatch(b.Version); m != nil {
		return kernel.ParseRelease(m[1])
	}
	return kernel.ParseRelease(b.Release)
}

// --- comparison ---

type vmGroup struct {
	key      string
	count    int
	example  oracle.VMRes
	kernel   oracle.ProbeResult
	model    oracle.ProbeResult
	probeIdx int
}

type vmStepStats struct {
	name                             string
	scope                            int
	selinuxMode                      string
	cases, probes, disagree, refused int
	disagreeProbes                   int
	firstRefusal                     string
	predictErrs                      int
}

type vmReport struct {
	pkgs                          string
	begin                         *oracle.VMBegin
	end                           *oracle.VMEnd
	release                       kernel.Release
	steps                         []*vmStepStats
	groups                        []*vmGroup
	cases, probes, refused        int
	disagreeCases, disagreeProbes int
	predictErrs                   int
	firstPredictErr               string
	bootWall, vmWall, wall        time.Duration
	kernelOf                      func(res oracle.VMRes) verify.Kernel
	suite                         string
	errors                        []string
	selinuxPolicyBytes            int
}

// compareVM predicts every probe of every case with the model and groups
// the disagreements.
func compareVM(run *vmRun, s *vmSuite) (*vmReport, error) {
	rep := &vmReport{begin: run.begin, end: run.end, bootWall: run.bootWall, vmWall: run.vmWall,
		suite: s.name, errors: run.errors, selinuxPolicyBytes: len(s.plan.SELinuxPolicy)}
	if run.begin == nil {
		return rep, fmt.Errorf("the VM printed no %sline (%s)", oracle.VMBeginPrefix, strings.Join(run.errors, "; "))
	}
	rel, err := vmRelease(run.begin)
	if err != nil {
		return rep, err
	}
	rep.release = rel
	rep.kernelOf = func(res oracle.VMRes) verify.Kernel {
		k := verify.Kernel{
			Release: rel, LSMs: run.begin.LSMs, YamaScope: res.Scope,
			LandlockABI: run.begin.LandlockABI, SuidDumpable: run.begin.SuidDumpable, AppArmor: s.plan.AppArmor,
		}
		if k.Has("selinux") {
			k.SELinux = s.plan.SELinuxModel
			k.SELinuxEnforcing = res.SELinuxMode == oracle.SELinuxEnforcing
		}
		return k
	}
	groups := map[string]*vmGroup{}
	byStep := map[string]*vmStepStats{}
	for _, res := range run.results {
		st := byStep[res.Step]
		if st == nil {
			st = &vmStepStats{name: res.Step, scope: res.Scope, selinuxMode: res.SELinuxMode}
			byStep[res.Step] = st
			rep.steps = append(rep.steps, st)
		}
		st.cases++
		rep.cases++
		if res.Result.Error != "" {
			st.refused++
			rep.refused++
			if st.firstRefusal == "" {
				st.firstRefusal = res.Result.Error
			}
			continue
		}
		st.probes += len(res.Result.Probes)
		rep.probes += len(res.Result.Probes)
		pred, err := verify.Predict(rep.kernelOf(res), res.Case, res.Result)
		if err == nil && len(pred) != len(res.Result.Probes) {
			err = fmt.Errorf("model gave %d answers for %d probes", len(pred), len(res.Result.Probes))
		}
		if err != nil {
			st.predictErrs++
			rep.predictErrs++
			if rep.firstPredictErr == "" {
				rep.firstPredictErr = fmt.Sprintf("%s #%d %q: %v", res.Step, res.Index, res.Case.Name, err)
			}
			continue
		}
		bad := false
		for i, got := range res.Result.Probes {
			want := pred[i]
			if sameAnswer(got, want) {
				continue
			}
			bad = true
			st.disagreeProbes++
			rep.disagreeProbes++
			key := groupKey(res, got, want)
			g := groups[key]
			if g == nil {
				g = &vmGroup{key: key, example: res, kernel: got, model: want, probeIdx: i}
				groups[key] = g
				rep.groups = append(rep.groups, g)
			}
			g.count++
		}
		if bad {
			st.disagree++
			rep.disagreeCases++
		}
	}
	return rep, nil
}

// sameAnswer compares a kernel answer with the model's: the errno (or
// "ok") and, for stat, whether the fields were masked.
func sameAnswer(kern, model oracle.ProbeResult) bool {
	return kern.Probe == model.Probe && kern.Result == model.Result && kern.Masked == model.Masked
}

// answer renders a probe answer for reports.
func answer(p oracle.ProbeResult) string {
	if p.Masked {
		return p.Result + "(masked)"
	}
	return p.Result
}

// credsDesc summarises a process's credentials in a case.
func credsDesc(c oracle.Creds) string {
	var b strings.Builder
	fmt.Fprintf(&b, "uid=%d", c.RUID)
	if c.EUID != c.RUID || c.SUID != c.RUID || c.FSUID != c.RUID {
		fmt.Fprintf(&b, "/%d/%d/%d", c.EUID, c.SUID, c.FSUID)
	}
	fmt.Fprintf(&b, " gid=%d", c.RGID)
	if c.CapEff != 0 || c.CapPrm != 0 {
		fmt.Fprintf(&b, " caps=%#x/%#x", c.CapEff, c.CapPrm)
	}
	if c.Dumpable == 0 {
		b.WriteString(" nondumpable")
	}
	if k := c.UserNS.Kind; k != "" && k != oracle.NSNone {
		fmt.Fprintf(&b, " userns=%s", k)
	}
	switch {
	case c.AppArmor != "":
		fmt.Fprintf(&b, " apparmor=%s", c.AppArmor)
	case c.SELinux != "":
		fmt.Fprintf(&b, " selinux=%s", oracle.SELinuxType(c.SELinux))
	default:
		b.WriteString(" apparmor=unconfined")
	}
	return b.String()
}

func groupKey(res oracle.VMRes, got, want oracle.ProbeResult) string {
	c := res.Case
	rel := string(c.Relation)
	if rel == "" {
		rel = string(oracle.RelSibling)
	}
	ll := string(c.Landlock)
	if ll == "" {
		ll = string(oracle.LandlockNone)
	}
	mode := ""
	if res.SELinuxMode != "" {
		mode = " selinux " + res.SELinuxMode + ","
	}
	return fmt.Sprintf("scope %d,%s probe %s: prober {%s} target {%s} relation %s landlock %s: kernel %s, model %s",
		res.Scope, mode, got.Probe, credsDesc(c.Prober), credsDesc(c.Target), rel, ll, answer(got), answer(want))
}

func (r *vmReport) print(w io.Writer) {
	b := r.begin
	fmt.Fprintf(w, "suite %s:\n", r.suite)
	if r.pkgs != "" {
		fmt.Fprintf(w, "packages: %s\n", r.pkgs)
	}
	if b != nil {
		fmt.Fprintf(w, "kernel: %s (model release %s), LSMs %s, Landlock ABI %d, fs.suid_dumpable %d\n",
			b.Release, r.release, strings.Join(b.LSMs, ","), b.LandlockABI, b.SuidDumpable)
	}
	if r.bootWall > 0 {
		fmt.Fprintf(w, "boot: %.1f s to init's first line (guest uptime %.1f s)\n", r.bootWall.Seconds(), b.Uptime)
	}
	if r.end != nil && r.end.LoadSeconds > 0 {
		fmt.Fprintf(w, "apparmor: %d profiles loaded in %.1f s\n", len(r.end.AppArmorProfiles), r.end.LoadSeconds)
	}
	if r.end != nil && r.end.SELinuxPolicyVersion != "" {
		fmt.Fprintf(w, "selinux: policy (%d bytes) loaded in %.2f s, kernel policy version %s\n", r.selinuxPolicyBytes, r.end.SELinuxLoadSeconds, r.end.SELinuxPolicyVersion)
	}
	for _, s := range r.steps {
		fmt.Fprintf(w, "  step %-18s yama %2d: %4d cases %5d probes, %d disagree (%d probes), %d refused",
			s.name, s.scope, s.cases, s.probes, s.disagree, s.disagreeProbes, s.refused)
		if s.selinuxMode != "" {
			fmt.Fprintf(w, ", selinux %s", s.selinuxMode)
		}
		if s.firstRefusal != "" {
			fmt.Fprintf(w, " (first: %s)", s.firstRefusal)
		}
		fmt.Fprintln(w)
	}
	sort.SliceStable(r.groups, func(i, j int) bool { return r.groups[i].count > r.groups[j].count })
	const maxGroups = 60
	for i, g := range r.groups {
		if i == maxGroups {
			fmt.Fprintf(w, "… and %d more groups of disagreements\n", len(r.groups)-maxGroups)
			break
		}
		fmt.Fprintf(w, "DISAGREE x%d  %s  (e.g. %s #%d %q)\n", g.count, g.key, g.example.Step, g.example.Index, g.example.Case.Name)
	}
	if r.firstPredictErr != "" {
		fmt.Fprintf(w, "model errors: %d (first: %s)\n", r.predictErrs, r.firstPredictErr)
	}
	agree := 0.0
	if checked := r.cases - r.refused - r.predictErrs; checked > 0 {
		agree = 100 * float64(checked-r.disagreeCases) / float64(r.cases)
	}
	fmt.Fprintf(w, "total: %d cases, %d probe results, %d cases disagree (%d probe results), %d refused: %.1f%% of cases agree\n",
		r.cases, r.probes, r.disagreeCases, r.disagreeProbes, r.refused, agree)
	if r.end != nil && r.end.Seconds > 0 {
		fmt.Fprintf(w, "speed: %d cases in %.1f s in the VM = %.2f cases/s", r.end.Cases, r.end.Seconds, float64(r.end.Cases)/r.end.Seconds)
		if r.vmWall > 0 {
			fmt.Fprintf(w, "; qemu ran %.1f s", r.vmWall.Seconds())
		}
		fmt.Fprintf(w, "; wall %.1f s\n", r.wall.Seconds())
	}
}

// writeScenarios writes one scenario file per disagreement group, built
// from the group's first case with the model's world for it. Each group
// also gets a JSON file with the kernel description, case and result, which
// verify.Predict reproduces even when the world cannot be written as a
// scenario (a module without a scenario writer).
func (r *vmReport) writeScenarios(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var errs []error
	seen := map[string]bool{}
	note := func(err error) {
		if !seen[err.Error()] {
			seen[err.Error()] = true
			errs = append(errs, err)
		}
	}
	for i, g := range r.groups {
		res := g.example
		base := filepath.Join(dir, fmt.Sprintf("disagreement-%03d", i+1))
		raw, err := json.MarshalIndent(map[string]any{
			"group": g.key, "count": g.count, "kernel": r.kernelOf(res), "step": res.Step,
			"case": res.Case, "result": res.Result, "kernel_answer": g.kernel, "model_answer": g.model,
		}, "", "  ")
		if err == nil {
			err = os.WriteFile(base+".json", append(raw, '\n'), 0o644)
		}
		if err != nil {
			note(err)
		}
		b, err := scenarioFor(r.kernelOf(res), g)
		if err != nil {
			note(err)
			continue
		}
		if err := os.WriteFile(base+".yaml", b, 0o644); err != nil {
			note(err)
		}
	}
	return errors.Join(errs...)
}

// scenarioFor writes the world of a group's first case with one check:
// the probe, expecting the kernel's answer.
func scenarioFor(k verify.Kernel, g *vmGroup) ([]byte, error) {
	res := g.example
	w, caller, target, err := verify.World(k, res.Case, res.Result)
	if err != nil {
		return nil, err
	}
	chk := &scenario.Check{Name: fmt.Sprintf("%s #%d %s", res.Step, res.Index, g.kernel.Probe), Caller: caller, Target: target}
	if e, err := kernel.LookupEntry(string(g.kernel.Probe)); err == nil {
		chk.Entry, chk.EntryPath = e, strings.TrimSuffix(string(g.kernel.Probe), "/")
	} else if s, err := kernel.LookupSyscall(string(g.kernel.Probe)); err == nil {
		chk.Syscall = s
	} else {
		return nil, fmt.Errorf("probe %s has no entry or syscall in the model", g.kernel.Probe)
	}
	switch {
	case !g.kernel.OK():
		chk.Expect = g.kernel.Result
	case g.kernel.Masked:
		chk.Expect = "masked"
	default:
		chk.Expect = "allow"
	}
	comment := fmt.Sprintf("verify-vm disagreement (%d probe results): %s\ncase: %s #%d %q\nthe expectation is the kernel's answer; the model answered %s",
		g.count, g.key, res.Step, res.Index, res.Case.Name, answer(g.model))
	return scenario.MarshalWithComment(w, []*scenario.Check{chk}, comment)
}
