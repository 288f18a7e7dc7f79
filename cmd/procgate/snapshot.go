package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/live"
	"github.com/procgate/procgate/scenario"
)

type snapshotOpts struct {
	pids    []int
	output  string
	threads bool
}

func newSnapshotCmd() *cobra.Command {
	var o snapshotOpts
	cmd := &cobra.Command{
		Use:   "snapshot [--pid PID]... [-o FILE]",
		Short: "Write the running system as a scenario file",
		Long: `snapshot reads the running system (every process, or the processes or
threads given with --pid together with their ancestors, thread-group
leaders and tracers) and writes it as a scenario file, to replay with
"procgate check --scenario" or to attach to a bug report. What cannot be read from user space (Landlock
domains, Yama exceptions, the policy of SELinux, AppArmor or Smack) is
listed in the file's header comment. Run it as root to see every process's
namespace and to let it mount securityfs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSnapshot(cmd.OutOrStdout(), o)
		},
	}
	cmd.Flags().IntSliceVar(&o.pids, "pid", nil, "process (or thread) to include with its ancestors (repeatable; default: every process)")
	cmd.Flags().StringVarP(&o.output, "output", "o", "", "write to FILE instead of standard output")
	cmd.Flags().BoolVar(&o.threads, "threads", false, "include every thread, not only thread-group leaders")
	return cmd
}

func runSnapshot(out io.Writer, o snapshotOpts) error {
	opts := live.Options{Threads: o.threads, MountSecurityFS: true}
	var sys *live.System
	var err error
	if len(o.pids) > 0 {
		sys, err = live.ReadPIDs(o.pids, opts)
	} else {
		sys, err = live.Read(opts)
	}
	if err != nil {
		return liveReadError("snapshot", err)
	}
	data, err := scenario.MarshalWithComment(sys.World, nil, snapshotComment(sys))
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	if o.output == "" {
		_, err = out.Write(data)
		return err
	}
	if err := os.WriteFile(o.output, data, 0o644); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	return nil
}

// liveReadError turns a failed live read into an exit status: a missing
// process is invalid input (2), with the kernel's "no such process".
func liveReadError(cmd string, err error) error {
	var pe *live.ProcessError
	if errors.Is(err, unix.ESRCH) && errors.As(err, &pe) {
		return &exitError{2, fmt.Errorf("%s: pid %d: no such process", cmd, pe.PID)}
	}
	return &exitError{2, fmt.Errorf("%s: %w", cmd, err)}
}

// snapshotComment is the file's header: where it comes from and what it
// does not hold.
func snapshotComment(sys *live.System) string {
	var b strings.Builder
	k := sys.Kernel
	fmt.Fprintf(&b, "Live snapshot written by procgate snapshot at %s.\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "Kernel %s; active modules %s (from %s); Landlock ABI %d.\n", k.Release, strings.Join(k.LSMs, ","), k.LSMSource, k.LandlockABI)
	b.WriteString("Not in this file, because user space cannot read them: Landlock domains\n")
	b.WriteString("(every task is written unsandboxed) and Yama PR_SET_PTRACER exceptions.\n")
	for _, n := range sys.Notes {
		b.WriteString("Note: " + n + "\n")
	}
	for _, u := range sys.Uncertainties() {
		b.WriteString("Uncertain: " + u + "\n")
	}
	return b.String()
}
