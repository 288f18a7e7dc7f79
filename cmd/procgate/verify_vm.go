package main

import (
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/procgate/procgate/vm"
)

func newVerifyVMCmd() *cobra.Command {
	var o vm.Options
	var minCases int
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
and runs it. Any build of procgate works as init: a static one (CGO_ENABLED=0)
goes in alone, a dynamically linked one (a plain go build with cgo, Go's
default where a C compiler exists) with its ELF interpreter and shared
libraries from this host; PIE or not. Root is not needed. The VM's console
is saved as vm.log (vm-selinux.log for the SELinux boot) in --work;
--from-log compares saved logs again without booting.

On a disagreement it prints one line per group (step, probe, prober and
target, kernel and model answers) and writes a scenario file reproducing the
first case of each group to --out.

Exit status: 0 when every case ran and agrees with the model, 1 on a
disagreement, a refused case or fewer cases than --min-cases, 2 on a setup
error (including a VM that did not finish its plan).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tot, err := vm.Run(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), o)
			if err != nil {
				return &exitError{2, fmt.Errorf("verify-vm: %w", err)}
			}
			if err := tot.Failure(minCases); err != nil {
				return &exitError{1, fmt.Errorf("verify-vm: %w", err)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.KernelDeb, "kernel-deb", "", "the linux-image-*.deb whose boot/vmlinuz-* is booted")
	f.StringVar(&o.AppArmorDeb, "apparmor-deb", "", "the apparmor .deb (apparmor_parser and its abi files)")
	f.StringVar(&o.Work, "work", ".cache/vm", "work directory: extracted packages, initramfs, vm.log")
	f.StringVar(&o.Out, "out", "", "where to write scenario files for disagreements (default WORK/disagreements)")
	f.StringVar(&o.PlanFile, "plan", "", "run this oracle.VMPlan (JSON) instead of the built-in cases")
	f.StringSliceVar(&o.FromLog, "from-log", nil, "compare the results in saved VM console logs instead of booting (repeatable)")
	f.StringSliceVar(&o.Suites, "suites", slices.Clone(vm.DefaultSuites), "the boots to run: "+vm.SuiteAppArmor+" (AppArmor and Yama), "+vm.SuiteSELinux)
	f.StringVar(&o.Checkpolicy, "checkpolicy", "checkpolicy", "the SELinux policy compiler (for the selinux suite)")
	f.StringVar(&o.KernelArgs, "kernel-args", "", "extra kernel command-line arguments, e.g. loglevel=7 to see SELinux denials on the console")
	f.StringVar(&o.Qemu, "qemu", "qemu-system-x86_64", "the qemu binary")
	f.IntVar(&o.SMP, "smp", 2, "virtual CPUs")
	f.IntVar(&o.MemMiB, "mem", 1024, "memory in MiB")
	f.DurationVar(&o.Timeout, "timeout", 15*time.Minute, "stop the VM after this long")
	f.IntVar(&minCases, "min-cases", 300, "fail unless at least this many cases ran")
	return cmd
}
