package vm

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// machine is how qemu runs a boot.
type machine struct {
	qemu    string        // the qemu-system-x86_64 binary
	smp     int           // virtual CPUs
	memMiB  int           // memory
	timeout time.Duration // stop the VM after this long
}

// qemuArgs is qemu's command line: software emulation (KVM guests hang on
// the nested hosts this runs on), no devices but the serial console on
// stdio, no network, and no reboot, so that a panic of PID 1 (with the
// kernel's panic=-1) ends qemu at once.
func (m machine) qemuArgs(kernelImg, initrd, cmdline string) []string {
	return []string{
		"-accel", "tcg", "-cpu", "max", "-smp", strconv.Itoa(m.smp), "-m", strconv.Itoa(m.memMiB),
		"-nodefaults", "-display", "none", "-serial", "stdio", "-no-reboot", "-net", "none",
		"-kernel", kernelImg, "-initrd", initrd,
		"-append", cmdline,
	}
}

// boot runs qemu, saves its console to logPath and collects the protocol
// lines. qemu is killed when ctx ends, on timeout, and (through the
// parent-death signal) if this process dies.
func (m machine) boot(ctx context.Context, progress io.Writer, kernelImg, initrd, cmdline, logPath string) (*consoleRun, error) {
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	args := m.qemuArgs(kernelImg, initrd, cmdline)
	cmd := exec.CommandContext(ctx, m.qemu, args...)
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
	fmt.Fprintf(progress, "verify-vm: booting %s %s\n", m.qemu, strings.Join(args, " "))
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start qemu (is qemu-system-x86 installed?): %w", err)
	}
	run, rerr := readConsole(io.TeeReader(pipe, logf), progress, func(r *consoleRun) { r.bootWall = time.Since(t0) })
	werr := cmd.Wait()
	if run != nil {
		run.vmWall = time.Since(t0)
	}
	if ctx.Err() != nil {
		return run, fmt.Errorf("qemu stopped after %v: %w (console in %s)", time.Since(t0).Round(time.Second), ctx.Err(), logPath)
	}
	if rerr != nil {
		return run, fmt.Errorf("%s: %w", logPath, rerr)
	}
	if werr != nil && run.end == nil {
		return run, fmt.Errorf("qemu: %w: %s (console in %s)", werr, strings.TrimSpace(errb.String()), logPath)
	}
	return run, nil
}
