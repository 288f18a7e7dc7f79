package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/procgate/procgate/daemon"
	"github.com/procgate/procgate/fuseproc"
	"github.com/procgate/procgate/privsep"
)

// mountConfig is procgate mount's configuration.
type mountConfig struct {
	Dir          string
	Policy       string
	AuditLog     string
	AuditFormat  string
	AuditBurst   int
	AuditBudget  int
	AuditGrants  bool
	Metrics      string
	HidePID      string
	ReadTimeout  time.Duration
	KeepPrivs    bool
	NoPrivsep    bool
	Landlock     bool
	FrontUser    string
	ReaderUser   string
	DrainTimeout time.Duration
	Debug        bool
}

func newMountCmd() *cobra.Command {
	c := mountConfig{AuditFormat: "avc", AuditBurst: 20, AuditBudget: 40, DrainTimeout: 30 * time.Second, Landlock: true}
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
			return runMount(cmd.Context(), c)
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.Policy, "policy", "", "policy file (default: the embedded default policy)")
	f.StringVar(&c.AuditLog, "audit-log", "", "audit log file, or - for standard error (default: none)")
	f.StringVar(&c.AuditFormat, "audit-format", c.AuditFormat, "audit record format: avc or json")
	f.IntVar(&c.AuditBurst, "audit-burst", c.AuditBurst, "records per caller uid per second (0 = no limit)")
	f.IntVar(&c.AuditBudget, "audit-budget", c.AuditBudget, "records per second of all callers together (0 = no limit)")
	f.BoolVar(&c.AuditGrants, "audit-grants", false, "audit every item the policy grants beyond what the kernel gives the caller itself")
	f.StringVar(&c.Metrics, "metrics", "", "address for Prometheus metrics (host:port, or a path for a Unix socket)")
	f.StringVar(&c.HidePID, "hidepid", "off", "hide process directories: off, invisible or ptraceable (only those whose full stat the caller may read)")
	f.DurationVar(&c.ReadTimeout, "read-timeout", 2*time.Second, "deadline for reads that take the target's mmap lock")
	f.BoolVar(&c.KeepPrivs, "keep-privileges", false, "do not drop capabilities nor confine the front (debugging only)")
	f.BoolVar(&c.NoPrivsep, "no-privsep", false, "run the gate in the FUSE process (no privilege separation, no Landlock)")
	f.BoolVar(&c.Landlock, "landlock", true, "confine the front with Landlock (privilege separation only)")
	f.StringVar(&c.FrontUser, "front-user", "", "user (name or uid[:gid]) the front becomes once confined (default: procgate-front if it exists, else 61182)")
	f.StringVar(&c.ReaderUser, "reader-user", "", "user (name or uid[:gid]) the reader becomes once confined (default: procgate-reader if it exists, else 61183)")
	f.DurationVar(&c.DrainTimeout, "drain-timeout", c.DrainTimeout, "how long shutdown waits for requests in progress")
	f.BoolVar(&c.Debug, "debug", false, "log every FUSE request to standard error (operations and names, never values)")
	return cmd
}

func runMount(ctx context.Context, c mountConfig) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	hide, err := fuseproc.ParseHidePID(c.HidePID)
	if err != nil {
		return &exitError{2, fmt.Errorf("mount: %w", err)}
	}
	cfg := daemon.Config{
		Gate: privsep.GateConfig{
			Policy: c.Policy, AuditLog: c.AuditLog, AuditFormat: c.AuditFormat, AuditBurst: c.AuditBurst,
			AuditBudget: c.AuditBudget, AuditGrants: c.AuditGrants, ReadTimeout: c.ReadTimeout,
		},
		Metrics: c.Metrics, KeepPrivileges: c.KeepPrivs, NoPrivsep: c.NoPrivsep,
		NoLandlock: !c.Landlock, DrainTimeout: c.DrainTimeout, Log: log,
		FrontUser: c.FrontUser, ReaderUser: c.ReaderUser,
	}
	front := &fuseproc.Front{Dir: c.Dir, HidePID: hide, Log: log, Debug: c.Debug}
	err = daemon.Run(ctx, cfg, front)
	var se *daemon.SetupError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se):
		return &exitError{2, fmt.Errorf("mount: %w", err)}
	}
	return &exitError{1, fmt.Errorf("mount: %w", err)}
}
