package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/procgate/procgate/vm"
)

func newVerifyVMCmd() *cobra.Command {
	var o vm.Options
	var minCases int
	var debs []string
	cmd := &cobra.Command{
		Use:   "verify-vm [--release LIST] [--kernel-deb [RELEASE=]FILE]... [--apparmor-deb FILE] [--work DIR]",
		Short: "Verify the Yama, AppArmor and SELinux model against Debian kernels booted under qemu",
		Long: `verify-vm boots Debian kernel packages under qemu with software emulation
(TCG), with this binary as init, runs the Yama (scopes 0-3), AppArmor and
feature cases in each and compares every answer with the model for that
kernel: its upstream release plus the known distribution backports
(kernel.Backports), LSMs, Yama scope, Landlock ABI and AppArmor profiles. A
second boot per kernel (suite selinux) runs SELinux instead of AppArmor with
a small policy compiled here with checkpolicy. Cases a kernel cannot run are
left out and said so (Landlock before 5.13), as is a suite whose module the
kernel lacks.

--release bullseye,bookworm,bookworm-backports,trixie (or all) selects the
kernels: a --kernel-deb RELEASE=FILE of that release, or else the newest
package scripts/vm-verify.sh cached in WORK/apt/RELEASE/archives. A bare
--kernel-deb FILE boots that package alone. scripts/vm-verify.sh installs
qemu and checkpolicy, downloads the packages with a private apt
configuration per release and runs this command.

For each kernel it prints one report per boot and one summary line: cases,
agreement, and the release-dependent rules (kernel.Features) the kernel
showed — each flag is observed by predicting the cases again with it
flipped and seeing which value the kernel's answers agree with — compared
with the model's prediction. WORK/KERNEL/ keeps the console logs (vm.log,
vm-selinux.log; --from-log compares saved logs again without booting),
reproductions of disagreements and summary.json; --kernels-md FILE writes
the table of every kernel with a summary in WORK (docs/kernels.md), and
alone, without kernels or logs, only regenerates it.

Any build of procgate works as init: a static one (CGO_ENABLED=0) goes in
alone, a dynamically linked one with its ELF interpreter and shared
libraries from this host; PIE or not. Root is not needed.

Exit status: 0 when every case of every kernel ran and agrees with the
model, each kernel ran at least --min-cases cases and showed the predicted
release-dependent rules; 1 otherwise; 2 on a setup error (including a
kernel that did not boot or a VM that did not finish its plan).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, d := range debs {
				k, err := vm.ParseKernelDeb(d)
				if err != nil {
					return &exitError{2, fmt.Errorf("verify-vm: %w", err)}
				}
				o.Kernels = append(o.Kernels, k)
			}
			tot, err := vm.Run(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), o)
			if err != nil {
				return &exitError{2, fmt.Errorf("verify-vm: %w", err)}
			}
			if o.TableOnly() {
				return nil
			}
			if err := tot.Failure(minCases); err != nil {
				return &exitError{1, fmt.Errorf("verify-vm: %w", err)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&debs, "kernel-deb", nil, "a linux-image-*.deb to boot: FILE, or RELEASE=FILE (repeatable)")
	f.StringSliceVar(&o.Releases, "release", nil, "the kernels to boot: "+strings.Join(vm.Releases, ",")+" or all (default: the --kernel-deb packages)")
	f.StringVar(&o.AppArmorDeb, "apparmor-deb", "", "the apparmor .deb (apparmor_parser and its abi files; default: the one cached in WORK/apt/bookworm)")
	f.StringVar(&o.Work, "work", ".cache/vm", "work directory: per kernel, the extracted package, initramfs, console logs and summary.json")
	f.StringVar(&o.Out, "out", "", "where to write scenario files for disagreements (default WORK/KERNEL/disagreements)")
	f.StringVar(&o.KernelsMD, "kernels-md", "", "write the table of the kernels with a summary in WORK to this file (docs/kernels.md)")
	f.StringVar(&o.PlanFile, "plan", "", "run this oracle.VMPlan (JSON) instead of the built-in cases")
	f.StringSliceVar(&o.FromLog, "from-log", nil, "compare the results in saved VM console logs instead of booting (repeatable)")
	f.StringSliceVar(&o.Suites, "suites", slices.Clone(vm.DefaultSuites), "the boots to run: "+vm.SuiteAppArmor+" (AppArmor, Yama and the feature cases), "+vm.SuiteSELinux)
	f.StringVar(&o.Checkpolicy, "checkpolicy", "checkpolicy", "the SELinux policy compiler (for the selinux suite)")
	f.StringVar(&o.KernelArgs, "kernel-args", "", "extra kernel command-line arguments, e.g. loglevel=7 to see SELinux denials on the console")
	f.StringVar(&o.Qemu, "qemu", "qemu-system-x86_64", "the qemu binary")
	f.IntVar(&o.SMP, "smp", 2, "virtual CPUs")
	f.IntVar(&o.MemMiB, "mem", 1024, "memory in MiB")
	f.DurationVar(&o.Timeout, "timeout", 15*time.Minute, "stop the VM after this long")
	f.IntVar(&minCases, "min-cases", 300, "fail unless at least this many cases ran on each kernel")
	return cmd
}
