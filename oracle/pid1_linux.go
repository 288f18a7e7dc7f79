package oracle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/bpflsm"
)

// appArmorParser is where the initramfs holds the AppArmor policy
// compiler.
const appArmorParser = "/sbin/apparmor_parser"

// runVMIfPID1 runs the verification VM's plan and powers the machine off
// when this process is PID 1 and a plan exists; otherwise it returns at
// once. A panic ends PID 1, which panics the kernel: boot it with
// panic=-1 and qemu -no-reboot so that ends the VM too.
func runVMIfPID1() {
	if os.Getpid() != 1 {
		return
	}
	if _, err := os.Stat(VMPlanPath); err != nil {
		return
	}
	if err := runVM(); err != nil {
		vmLine(VMErrorPrefix, map[string]string{"error": err.Error()})
	}
	unix.Sync()
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	os.Exit(1) // not reached unless reboot failed: PID 1 exiting panics the kernel
}

// vmLine prints one protocol line in a single write.
func vmLine(prefix string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"error": err.Error()})
		prefix = VMErrorPrefix
	}
	_, _ = os.Stdout.Write(append(append([]byte(prefix), b...), '\n'))
}

// mountVM mounts what the oracle needs: devtmpfs (os/exec opens
// /dev/null, P9), proc, sysfs, securityfs (the LSM list, AppArmor's
// policy interface) and a tmpfs on /tmp.
func mountVM() error {
	for _, m := range []struct{ src, dir, fs string }{
		{"devtmpfs", "/dev", "devtmpfs"},
		{"proc", "/proc", "proc"},
		{"sysfs", "/sys", "sysfs"},
		{"securityfs", "/sys/kernel/security", "securityfs"},
		{"tmpfs", "/tmp", "tmpfs"},
	} {
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.src, m.dir, m.fs, unix.MS_NOSUID, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount %s on %s: %w", m.fs, m.dir, err)
		}
	}
	return os.Chmod("/tmp", 0o1777)
}

func readTrim(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

func runVM() error {
	if err := mountVM(); err != nil {
		return err
	}
	b, err := os.ReadFile(VMPlanPath)
	if err != nil {
		return err
	}
	var plan VMPlan
	if err := json.Unmarshal(b, &plan); err != nil {
		return fmt.Errorf("%s: %w", VMPlanPath, err)
	}
	prof := readProfile()
	begin := VMBegin{
		Release: prof.Release, Version: readTrim("/proc/version"), Cmdline: readTrim("/proc/cmdline"),
		LSMs: prof.LSMs, LandlockABI: prof.LandlockABI, YamaScope: prof.YamaScope, SuidDumpable: prof.SuidDumpable,
	}
	if f := strings.Fields(readTrim("/proc/uptime")); len(f) > 0 {
		begin.Uptime, _ = strconv.ParseFloat(f[0], 64)
	}
	for _, s := range plan.Steps {
		begin.Cases += len(s.Cases)
	}
	vmLine(VMBeginPrefix, begin)

	var end VMEnd
	if plan.AppArmor != "" {
		t := time.Now()
		if err := loadAppArmor(plan.AppArmor); err != nil {
			return err
		}
		end.LoadSeconds = time.Since(t).Seconds()
		for line := range strings.Lines(readTrim("/sys/kernel/security/apparmor/profiles")) {
			end.AppArmorProfiles = append(end.AppArmorProfiles, strings.TrimSpace(line))
		}
	}
	if len(plan.SELinuxPolicy) > 0 {
		t := time.Now()
		if err := loadSELinux(plan.SELinuxPolicy); err != nil {
			return err
		}
		end.SELinuxLoadSeconds = time.Since(t).Seconds()
		end.SELinuxPolicyVersion = readTrim(selinuxMount + "/policyvers")
	}
	timeout := time.Duration(plan.TimeoutSeconds) * time.Second
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	exempt, cases, err := vmCgroups()
	if err != nil {
		return err
	}
	r, err := NewRunner(Options{Workers: plan.Workers, Timeout: timeout, Cgroup: cases})
	if err != nil {
		return err
	}
	defer r.Close()
	start := time.Now()
	for _, s := range plan.Steps {
		scope, serr := setYamaScope(s.YamaScope)
		mode, merr := setSELinuxMode(s.SELinuxMode)
		serr = errors.Join(serr, merr)
		if s.BPF != nil {
			// Init reads every process it spawns (their namespace
			// links, READ checks): it is the exempt reader.
			exe, err := fileID(r.Executable())
			if err != nil {
				return fmt.Errorf("step %s: %w", s.Name, err)
			}
			rs := withSelfExe(s.BPF, exe)
			rs.ExemptCgroup = exempt
			if err := bpflsm.Servable(rs); errors.Is(err, bpflsm.ErrUnsupported) {
				end.BPFCgroupsRefused = err.Error()
				rs = WithoutCgroups(rs)
			}
			s.BPF = rs
			serr = errors.Join(serr, bpflsm.Attach(s.BPF, bpflsm.DefaultPinDir))
		}
		res, err := r.Run(context.Background(), s.Cases)
		if s.BPF != nil && err == nil {
			// Detaches the program; the Detach below then finds nothing.
			end.BPFReload = append(end.BPFReload, r.vmEnforceChecks(s.Name, s.BPF, VMGuardedUID, 50))
		}
		if s.BPF != nil {
			if derr := bpflsm.Detach(bpflsm.DefaultPinDir); derr != nil && err == nil {
				err = fmt.Errorf("detach the BPF LSM program: %w", derr)
			}
		}
		if err != nil {
			return fmt.Errorf("step %s: %w", s.Name, err)
		}
		for i := range res {
			if serr != nil && res[i].Err == nil {
				res[i].fail(serr)
			}
			if res[i].Err != nil {
				end.Refused++
			}
			end.Cases++
			vmLine(VMResPrefix, VMRes{Step: s.Name, Scope: scope, SELinuxMode: mode, BPF: s.BPF, Index: i, Case: s.Cases[i], Result: res[i]})
		}
	}
	end.Seconds = time.Since(start).Seconds()
	vmLine(VMEndPrefix, end)
	return nil
}

// vmInitCgroup is init's cgroup in the VM, the one procgate's program
// exempts.
const vmInitCgroup = "/sys/fs/cgroup/procgate-init"

// vmCgroups mounts cgroup v2 and puts init in a cgroup of its own, the
// one procgate's BPF program exempts in the steps that attach it (init
// reads every process it starts, as the broker's reader does); the
// processes it probes with start in another (Options.Cgroup). It returns
// init's cgroup id and the other's path.
func vmCgroups() (uint64, string, error) {
	const root = "/sys/fs/cgroup"
	if err := os.MkdirAll(root, 0o755); err != nil {
		return 0, "", err
	}
	if err := unix.Mount("cgroup2", root, "cgroup2", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil && !errors.Is(err, unix.EBUSY) {
		return 0, "", fmt.Errorf("mount cgroup2 on %s: %w", root, err)
	}
	initCg, cases := vmInitCgroup, root+"/"+vmCasesCgroup
	for _, d := range []string{initCg, cases} {
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return 0, "", err
		}
	}
	if err := writeAttr(initCg+"/cgroup.procs", []byte(strconv.Itoa(os.Getpid()))); err != nil {
		return 0, "", fmt.Errorf("move init to %s: %w", initCg, err)
	}
	id, err := bpflsm.CgroupID(initCg)
	return id, cases, err
}

// setYamaScope writes kernel.yama.ptrace_scope (unless scope is -1) and
// returns the scope read back; an error when it differs (scope 3 is
// sticky: lowering it fails with EINVAL).
func setYamaScope(scope int) (int, error) {
	const path = "/proc/sys/kernel/yama/ptrace_scope"
	if scope >= 0 {
		if err := writeAttr(path, []byte(strconv.Itoa(scope)+"\n")); err != nil {
			return readInt(path, -1), fmt.Errorf("set yama ptrace_scope %d: %w", scope, err)
		}
	}
	got := readInt(path, -1)
	if scope >= 0 && got != scope {
		return got, fmt.Errorf("yama ptrace_scope is %d after writing %d", got, scope)
	}
	return got, nil
}

// loadSELinux mounts selinuxfs and loads a compiled policy. Until then
// SELinux allows everything; PID 1 keeps the kernel's initial SID.
func loadSELinux(policy []byte) error {
	if !selinuxActive() {
		return fmt.Errorf("load selinux policy: %w (boot with selinux in lsm=)", errNoSELinux)
	}
	if err := unix.Mount("selinuxfs", selinuxMount, "selinuxfs", unix.MS_NOSUID|unix.MS_NOEXEC, ""); err != nil && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("mount selinuxfs on %s: %w", selinuxMount, err)
	}
	if err := writeAttr(selinuxMount+"/load", policy); err != nil {
		return fmt.Errorf("load selinux policy (%d bytes): %w", len(policy), err)
	}
	return nil
}

// setSELinuxMode writes /sys/fs/selinux/enforce (unless mode is empty) and
// returns the mode read back, "" without SELinux.
func setSELinuxMode(mode string) (string, error) {
	const path = selinuxMount + "/enforce"
	var err error
	switch mode {
	case "":
	case SELinuxEnforcing:
		err = writeAttr(path, []byte("1"))
	case SELinuxPermissive:
		err = writeAttr(path, []byte("0"))
	default:
		err = fmt.Errorf("unknown selinux mode %q", mode)
	}
	got := ""
	switch readTrim(path) {
	case "1":
		got = SELinuxEnforcing
	case "0":
		got = SELinuxPermissive
	}
	if err != nil {
		return got, fmt.Errorf("set selinux mode %s: %w", mode, err)
	}
	if mode != "" && got != mode {
		return got, fmt.Errorf("selinux mode is %q after setting %s", got, mode)
	}
	return got, nil
}

// loadAppArmor compiles and loads profile text with apparmor_parser.
func loadAppArmor(text string) error {
	const path = "/tmp/procgate-profiles.aa"
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return err
	}
	cmd := exec.Command(appArmorParser, "-r", path)
	cmd.Env = []string{"PATH=/sbin:/bin:/usr/sbin:/usr/bin"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s -r: %w: %s", appArmorParser, err, strings.TrimSpace(string(out)))
	}
	return nil
}
