package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/procgate/procgate/fuseproc"
)

// mountConfig is procgate mount's configuration.
type mountConfig struct {
	daemonConfig
	Dir     string
	HidePID string
	Debug   bool
}

func newMountCmd() *cobra.Command {
	c := mountConfig{daemonConfig: defaultDaemonConfig()}
	var landlockFlag bool
	cmd := &cobra.Command{
		Use:   "mount DIR [--policy FILE] [--audit-log PATH|-] [--metrics ADDR] [--hidepid off|invisible|ptraceable]",
		Short: "Serve a mediated /proc over FUSE: unmodified tools read what the policy grants",
		Long: `mount mounts a /proc on DIR (FUSE, allow_other, read-only) whose per-process
files are answered, for each caller, by the same enforcement core as procgate
serve: the caller (the thread a FUSE request names, resolved to its process
and pinned) gets what the kernel would let it read directly, and what the
policy grants on top; nothing else, and nothing writable. Pids are read and
shown in the caller's own pid namespace, so a container's ps shows its own
processes. Everything that is not per-process (meminfo, stat, uptime,
loadavg, sys/, net/ …) passes through read-only from the daemon's /proc.

Bind-mount DIR over /proc in a container's mount namespace and run ps, top,
lsof or an exporter there unchanged (README, docs/fuse.md).

Privilege separation, confinement, the audit log, metrics, SIGHUP reload and
SIGTERM drain are those of procgate serve. The mount is detached at shutdown
and when the daemon dies, by a small process that keeps the right to unmount
and nothing else.

Exit status: 0 after a clean shutdown, 2 on invalid configuration or when the
mount cannot be made.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c.Dir = args[0]
			if cmd.Flags().Changed("landlock") {
				c.Landlock = &landlockFlag
			}
			return runMount(cmd.Context(), c)
		},
	}
	f := cmd.Flags()
	c.register(f, &landlockFlag, "serves FUSE")
	f.StringVar(&c.HidePID, "hidepid", "off", "hide process directories: off, invisible or ptraceable (only those whose full stat the caller may read)")
	f.BoolVar(&c.Debug, "debug", false, "log every FUSE request to standard error (operations and names, never values)")
	return cmd
}

func runMount(ctx context.Context, c mountConfig) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	hide, err := fuseproc.ParseHidePID(c.HidePID)
	if err != nil {
		return &exitError{2, fmt.Errorf("mount: %w", err)}
	}
	cfg, err := c.daemon("mount", log)
	if err != nil {
		return err
	}
	return runDaemon(ctx, "mount", cfg, &fuseproc.Front{Dir: c.Dir, HidePID: hide, Log: log, Debug: c.Debug})
}
