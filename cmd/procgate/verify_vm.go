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
// give the same set; lsm= pins it.
const vmLSMs = "landlock,lockdown,yama,apparmor,bpf"

type verifyVMOpts struct {
	kernelDeb, apparmorDeb string
	work                   string
	out                    string
	planFile               string
	fromLog                string
	qemu                   string
	smp, mem               int
	timeout                time.Duration
	minCases               int
}

func newVerifyVMCmd() *cobra.Command {
	var o verifyVMOpts
	cmd := &cobra.Command{
		Use:   "verify-vm --kernel-deb FILE --apparmor-deb FILE [--work DIR]",
		Short: "Verify the Yama and AppArmor model against a kernel booted under qemu",
		Long: `verify-vm boots a Debian kernel package under qemu with software emulation
(TCG), with this binary as init, runs the Yama (scopes 0-3) and AppArmor
cases in it and compares every answer with the model for that kernel's
release, LSMs, Yama scope, Landlock ABI and AppArmor profiles.

scripts/vm-verify.sh installs qemu, downloads the packages and runs it. The
binary must be static and non-PIE (CGO_ENABLED=0 go build). Root is not
needed. The VM's console is saved as vm.log in --work; --from-log compares a
saved log again without booting.

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
	f.StringVar(&o.fromLog, "from-log", "", "compare the results in a saved VM console log instead of booting")
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
	plan := oracle.VMDefaultPlan()
	if o.planFile != "" {
		b, err := os.ReadFile(o.planFile)
		if err != nil {
			return setup(err)
		}
		plan = oracle.VMPlan{}
		if err := json.Unmarshal(b, &plan); err != nil {
			return setup(fmt.Errorf("%s: %w", o.planFile, err))
		}
	}
	if o.out == "" {
		o.out = filepath.Join(o.work, "disagreements")
	}
	var run *vmRun
	pkgs := ""
	if o.fromLog != "" {
		f, err := os.Open(o.fromLog)
		if err != nil {
			return setup(err)
		}
		run, err = readVMLog(f, nil, nil)
		f.Close()
		if err != nil {
			return setup(err)
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
		pkgs = desc
		fmt.Fprintf(stderr, "verify-vm: %s\n", pkgs)
		initrd := filepath.Join(o.work, "initramfs.cpio.gz")
		if err := writeInitramfs(initrd, plan, aaRoot); err != nil {
			return setup(fmt.Errorf("initramfs: %w", err))
		}
		run, err = bootVM(ctx, stderr, o, kernelImg, initrd, filepath.Join(o.work, "vm.log"))
		if err != nil {
			return setup(err)
		}
	}
	rep, err := compareVM(run, plan.AppArmor)
	if err != nil {
		return setup(err)
	}
	rep.pkgs = pkgs
	rep.wall = time.Since(start)
	rep.print(stdout)
	if len(rep.groups) > 0 {
		if err := rep.writeScenarios(o.out); err != nil {
			fmt.Fprintf(stderr, "verify-vm: writing reproductions: %v\n", err)
		}
		fmt.Fprintf(stdout, "reproductions of the first case of each group (.json: kernel, case, result for verify.Predict; .yaml: scenario file where the world can be written) are in %s\n", o.out)
	}
	switch {
	case run.begin == nil || run.end == nil:
		return &exitError{2, fmt.Errorf("verify-vm: the VM did not finish its plan (%s)", strings.Join(run.errors, "; "))}
	case rep.refused > 0 || rep.disagreeCases > 0 || rep.predictErrs > 0:
		return &exitError{1, fmt.Errorf("verify-vm: %d disagreeing, %d refused and %d unpredicted of %d cases", rep.disagreeCases, rep.refused, rep.predictErrs, rep.cases)}
	case rep.cases < o.minCases:
		return &exitError{1, fmt.Errorf("verify-vm: only %d cases ran, want at least %d", rep.cases, o.minCases)}
	}
	return nil
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
func bootVM(ctx context.Context, progress io.Writer, o verifyVMOpts, kernelImg, initrd, logPath string) (*vmRun, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	args := []string{
		"-accel", "tcg", "-cpu", "max", "-smp", fmt.Sprint(o.smp), "-m", fmt.Sprint(o.mem),
		"-nodefaults", "-display", "none", "-serial", "stdio", "-no-reboot", "-net", "none",
		"-kernel", kernelImg, "-initrd", initrd,
		"-append", "console=ttyS0 quiet lsm=" + vmLSMs + " panic=-1 mitigations=off",
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
	kernelOf                      func(scope int) verify.Kernel
}

// compareVM predicts every probe of every case with the model and groups
// the disagreements.
func compareVM(run *vmRun, profiles string) (*vmReport, error) {
	rep := &vmReport{begin: run.begin, end: run.end, bootWall: run.bootWall, vmWall: run.vmWall}
	if run.begin == nil {
		return rep, fmt.Errorf("the VM printed no %sline (%s)", oracle.VMBeginPrefix, strings.Join(run.errors, "; "))
	}
	rel, err := vmRelease(run.begin)
	if err != nil {
		return rep, err
	}
	rep.release = rel
	rep.kernelOf = func(scope int) verify.Kernel {
		return verify.Kernel{
			Release: rel, LSMs: run.begin.LSMs, YamaScope: scope,
			LandlockABI: run.begin.LandlockABI, SuidDumpable: run.begin.SuidDumpable, AppArmor: profiles,
		}
	}
	groups := map[string]*vmGroup{}
	byStep := map[string]*vmStepStats{}
	for _, res := range run.results {
		st := byStep[res.Step]
		if st == nil {
			st = &vmStepStats{name: res.Step, scope: res.Scope}
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
		pred, err := verify.Predict(rep.kernelOf(res.Scope), res.Case, res.Result)
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
	if c.AppArmor != "" {
		fmt.Fprintf(&b, " apparmor=%s", c.AppArmor)
	} else {
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
	return fmt.Sprintf("scope %d, probe %s: prober {%s} target {%s} relation %s landlock %s: kernel %s, model %s",
		res.Scope, got.Probe, credsDesc(c.Prober), credsDesc(c.Target), rel, ll, answer(got), answer(want))
}

func (r *vmReport) print(w io.Writer) {
	b := r.begin
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
	for _, s := range r.steps {
		fmt.Fprintf(w, "  step %-15s yama %2d: %4d cases %5d probes, %d disagree (%d probes), %d refused",
			s.name, s.scope, s.cases, s.probes, s.disagree, s.disagreeProbes, s.refused)
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
			"group": g.key, "count": g.count, "kernel": r.kernelOf(res.Scope), "step": res.Step,
			"case": res.Case, "result": res.Result, "kernel_answer": g.kernel, "model_answer": g.model,
		}, "", "  ")
		if err == nil {
			err = os.WriteFile(base+".json", append(raw, '\n'), 0o644)
		}
		if err != nil {
			note(err)
		}
		b, err := scenarioFor(r.kernelOf(res.Scope), g)
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
