package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/procgate/procgate/broker"
	"github.com/procgate/procgate/client"
	"github.com/procgate/procgate/daemon"
	"github.com/procgate/procgate/privsep"
)

// serveConfig is procgate serve's configuration: the --config file's
// keys, overridden by flags.
type serveConfig struct {
	Policy       string        `yaml:"policy"`
	Socket       string        `yaml:"socket"`
	AuditLog     string        `yaml:"audit_log"`
	AuditFormat  string        `yaml:"audit_format"`
	AuditBurst   int           `yaml:"audit_burst"`
	AuditBudget  int           `yaml:"audit_budget"`
	AuditGrants  bool          `yaml:"audit_grants"`
	Metrics      string        `yaml:"metrics"`
	ReadTimeout  time.Duration `yaml:"read_timeout"`
	MaxConns     int           `yaml:"max_connections"`
	MaxConnsUID  int           `yaml:"max_connections_per_uid"`
	MaxReqsUID   int           `yaml:"max_requests_per_uid"`
	Reserve      int           `yaml:"reserved_connections"`
	KeepPrivs    bool          `yaml:"keep_privileges"`
	NoPrivsep    bool          `yaml:"no_privsep"`
	Landlock     *bool         `yaml:"landlock"` // nil: true (the front's Landlock domain)
	FrontUser    string        `yaml:"front_user"`
	ReaderUser   string        `yaml:"reader_user"`
	DrainTimeout time.Duration `yaml:"drain_timeout"`
}

func newServeCmd() *cobra.Command {
	var cfgFile string
	var landlockFlag bool
	c := serveConfig{Socket: client.DefaultSocket, AuditFormat: "avc", AuditBurst: 20, AuditBudget: 40, DrainTimeout: 30 * time.Second}
	cmd := &cobra.Command{
		Use:   "serve [--config FILE] [--policy FILE] [--socket PATH] [--audit-log PATH|-] [--metrics ADDR]",
		Short: "Run the broker: serve process state to unprivileged callers under a policy",
		Long: `serve runs the privileged broker. It listens on a Unix socket (or the socket
passed by systemd socket activation), identifies each caller by the socket's
peer credentials (SO_PEERCRED, SO_PEERPIDFD, SO_PEERSEC) and answers batch
requests (processes × items, docs/api.md) with, per item, the value or a
denial with its errno and reason. A caller always gets what the kernel would
let it read directly; the policy grants more, never beyond the caller's MAC
layers. Without --policy the embedded default policy is used (members of
group procgate read status, stat_full, io, fd, fd_count, fdinfo, exe, cwd,
root, limits, cgroup and ns of every dumpable process).

The broker runs as two processes (privilege separation, docs/api.md). The
front accepts connections, parses HTTP and JSON and streams answers back:
after binding it holds no capability, sets no_new_privs and confines itself
with Landlock (no file access at all, no TCP bind or connect). The reader,
this binary re-executed, runs the gate (policy, reads, audit log, metrics)
with only CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH and no_new_privs; it cannot
run under Landlock, which scopes ptrace. Without Landlock in the kernel the
front warns and runs unconfined (still without capabilities).
--no-privsep runs everything in one process with CAP_SYS_PTRACE and
CAP_DAC_READ_SEARCH (no Landlock). If the reader dies, the front answers 503
and exits with status 1 (let the supervisor restart it). SIGHUP reloads the policy (an invalid one is reported and the
last good one stays); SIGTERM drains requests in progress, flushes the audit
log and exits.

The audit log is opened once, before any privilege is dropped, and written
through that descriptor: rotate it with logrotate's copytruncate (the
descriptor appends), or give --audit-log - and let journald keep it. A
decision's record is written before its answer leaves, in whole lines.
--audit-burst records per caller uid and --audit-budget records for all
callers per second bound its size (docs/api.md, "Audit log and metrics");
every decision past them is counted in a suppressed=N summary.
--audit-grants also records every item the policy grants beyond what the
kernel gives the caller itself.

Exit status: 0 after a clean shutdown, 2 on invalid configuration or when the
socket cannot be served.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cfgFile != "" {
				b, err := os.ReadFile(cfgFile)
				if err != nil {
					return &exitError{2, fmt.Errorf("serve: %w", err)}
				}
				var fc serveConfig
				dec := yaml.NewDecoder(bytesReader(b))
				dec.KnownFields(true)
				if err := dec.Decode(&fc); err != nil {
					return &exitError{2, fmt.Errorf("serve: %s: %w", cfgFile, err)}
				}
				mergeConfig(&c, fc, cmd)
			}
			if cmd.Flags().Changed("landlock") {
				c.Landlock = &landlockFlag
			}
			return runServe(cmd.Context(), c)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgFile, "config", "", "YAML configuration file (keys: policy, socket, audit_log, audit_format, audit_burst, audit_budget, audit_grants, metrics, read_timeout, max_connections, max_connections_per_uid, max_requests_per_uid, reserved_connections, keep_privileges, no_privsep, landlock, front_user, reader_user, drain_timeout)")
	f.StringVar(&c.Policy, "policy", "", "policy file (default: the embedded default policy)")
	f.StringVar(&c.Socket, "socket", c.Socket, "Unix socket to listen on (ignored under socket activation)")
	f.StringVar(&c.AuditLog, "audit-log", "", "audit log file, or - for standard error (default: none)")
	f.StringVar(&c.AuditFormat, "audit-format", c.AuditFormat, "audit record format: avc or json")
	f.IntVar(&c.AuditBurst, "audit-burst", c.AuditBurst, "records per caller uid per second; the caller's further decisions are counted in one suppressed=N summary per second; 0 = no limit")
	f.IntVar(&c.AuditBudget, "audit-budget", c.AuditBudget, "records per second of all callers together (bounds the log's size, docs/api.md); further decisions are counted in one suppressed=N summary per second; 0 = no limit")
	f.BoolVar(&c.AuditGrants, "audit-grants", false, "audit every item the policy grants beyond what the kernel gives the caller itself")
	f.StringVar(&c.Metrics, "metrics", "", "address for Prometheus metrics (host:port, or a path for a Unix socket)")
	f.DurationVar(&c.ReadTimeout, "read-timeout", 2*time.Second, "deadline for reads that take the target's mmap lock")
	f.BoolVar(&c.KeepPrivs, "keep-privileges", false, "do not drop capabilities nor confine the front (debugging only)")
	f.BoolVar(&c.NoPrivsep, "no-privsep", false, "run the gate in the process that parses HTTP (no privilege separation, no Landlock)")
	f.StringVar(&c.FrontUser, "front-user", "", "user (name or uid[:gid]) the front becomes once confined (default: procgate-front if it exists, else 61182)")
	f.StringVar(&c.ReaderUser, "reader-user", "", "user (name or uid[:gid]) the reader becomes once confined (default: procgate-reader if it exists, else 61183)")
	f.BoolVar(&landlockFlag, "landlock", true, "confine the front with Landlock (privilege separation only; --landlock=false to disable)")
	return cmd
}

// mergeConfig copies the file's values for every flag not given.
func mergeConfig(c *serveConfig, fc serveConfig, cmd *cobra.Command) {
	set := func(flag string) bool { return cmd.Flags().Changed(flag) }
	if fc.Policy != "" && !set("policy") {
		c.Policy = fc.Policy
	}
	if fc.Socket != "" && !set("socket") {
		c.Socket = fc.Socket
	}
	if fc.AuditLog != "" && !set("audit-log") {
		c.AuditLog = fc.AuditLog
	}
	if fc.AuditFormat != "" && !set("audit-format") {
		c.AuditFormat = fc.AuditFormat
	}
	if fc.AuditBurst != 0 && !set("audit-burst") {
		c.AuditBurst = fc.AuditBurst
	}
	if fc.AuditBudget != 0 && !set("audit-budget") {
		c.AuditBudget = fc.AuditBudget
	}
	if fc.AuditGrants && !set("audit-grants") {
		c.AuditGrants = true
	}
	if fc.Metrics != "" && !set("metrics") {
		c.Metrics = fc.Metrics
	}
	if fc.ReadTimeout != 0 && !set("read-timeout") {
		c.ReadTimeout = fc.ReadTimeout
	}
	if fc.KeepPrivs && !set("keep-privileges") {
		c.KeepPrivs = true
	}
	if fc.NoPrivsep && !set("no-privsep") {
		c.NoPrivsep = true
	}
	if fc.Landlock != nil && !set("landlock") {
		c.Landlock = fc.Landlock
	}
	if fc.FrontUser != "" && !set("front-user") {
		c.FrontUser = fc.FrontUser
	}
	if fc.ReaderUser != "" && !set("reader-user") {
		c.ReaderUser = fc.ReaderUser
	}
	c.MaxConns, c.MaxConnsUID, c.MaxReqsUID, c.Reserve = fc.MaxConns, fc.MaxConnsUID, fc.MaxReqsUID, fc.Reserve
	if fc.DrainTimeout != 0 {
		c.DrainTimeout = fc.DrainTimeout
	}
}

func runServe(ctx context.Context, c serveConfig) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if c.NoPrivsep && c.Landlock != nil && *c.Landlock {
		return &exitError{2, errors.New("serve: --landlock needs privilege separation: Landlock scopes ptrace, so a Landlocked gate cannot read io, exe, fd, environ… of other processes (drop --no-privsep)")}
	}
	cfg := daemon.Config{
		Gate: privsep.GateConfig{
			Policy: c.Policy, AuditLog: c.AuditLog, AuditFormat: c.AuditFormat, AuditBurst: c.AuditBurst,
			AuditBudget: c.AuditBudget, AuditGrants: c.AuditGrants,
			ReadTimeout: c.ReadTimeout,
		},
		Metrics: c.Metrics, KeepPrivileges: c.KeepPrivs, NoPrivsep: c.NoPrivsep,
		NoLandlock: c.Landlock != nil && !*c.Landlock, DrainTimeout: c.DrainTimeout, Log: log,
		FrontUser: c.FrontUser, ReaderUser: c.ReaderUser,
	}
	front := &broker.Front{
		Socket: c.Socket, Version: "procgate", Log: log,
		Limits: privsep.Limits{MaxConns: c.MaxConns, MaxConnsPerUID: c.MaxConnsUID, MaxRequestsPerUID: c.MaxReqsUID, Reserve: c.Reserve},
	}
	err := daemon.Run(ctx, cfg, front)
	var se *daemon.SetupError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se):
		return &exitError{2, fmt.Errorf("serve: %w", err)}
	}
	return &exitError{1, fmt.Errorf("serve: %w", err)}
}

var errNoBroker = errors.New("is the broker running? (procgate serve)")
