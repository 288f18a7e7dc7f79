// Package vm verifies procgate's model against kernels other than the
// running one, for the security modules and releases this machine's kernel
// lacks: it boots distribution kernel packages under qemu with software
// emulation (TCG) — Debian's linux-image-amd64 of bullseye, bookworm,
// bookworm-backports and trixie ([Releases]; scripts/vm-verify.sh
// downloads them with a private apt configuration per release) — with
// the procgate binary as init, and compares every answer of each kernel
// with the model's prediction for it.
//
// A run boots each kernel in turn (kernels.go: --release, --kernel-deb,
// the package cache), and for each:
//
//   - deb.go extracts the kernel image and configuration (which security
//     modules are built: a suite or case the kernel cannot run is left
//     out, and lsm= names only what it has) and the AppArmor userland
//     (apparmor_parser, its configuration, abi and feature files) from
//     their .deb packages through dpkg-deb, which reads the ar archive and
//     its gz, xz or zstd data member;
//   - initramfs.go writes a gzip'd newc cpio archive (cpio.go): the init
//     binary as /init with its ELF interpreter and shared libraries when it
//     is dynamically linked (elf.go finds them, as for apparmor_parser),
//     /dev/console, the [oracle.VMPlan] of the suite and the AppArmor files;
//   - qemu.go boots the kernel with that initramfs and saves the console;
//     in the VM, [oracle.RunRoleIfRequested] notices PID 1 and the plan, runs
//     the plan's cases through an ordinary oracle runner and prints one
//     protocol line per event, which console.go reads back;
//   - compare.go predicts every probe of every case with the model for the
//     booted kernel ([verify.World], [verify.PredictWorld]; its rules from
//     [kernel.FeaturesForPackage]: upstream release plus distribution
//     backports) and compares the answers with [verify.Same]; features.go
//     predicts again with each release-dependent rule flipped, to observe
//     which value the kernel has; report.go prints per-step counts and one
//     line per group of disagreements, and writes files that reproduce the
//     first case of each group ([verify.Reproduce]);
//   - summary.go sums a kernel's boots into a [KernelResult]: one summary
//     line, the per-kernel exit status, WORK/KERNEL/summary.json, and the
//     kernel table docs/kernels.md (Options.KernelsMD).
//
// Two suites are built in (suite.go): [SuiteAppArmor] (the feature cases,
// Yama at scopes 0-3 and AppArmor profiles) and [SuiteSELinux] (a small
// SELinux policy compiled here with checkpolicy; Linux 5.10-6.12 cannot
// stack SELinux with AppArmor, so it is a second boot). Saved console logs
// can be compared again without booting ([Options.FromLog]).
//
// Any build of procgate can be the init: static or dynamically linked (cgo
// on, Go's default where a C compiler exists), PIE or not.
package vm
