package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/procgate/procgate/broker"
	"github.com/procgate/procgate/client"
	"github.com/procgate/procgate/privsep"
)

// serveConfig is procgate serve's configuration: the --config file's
// keys, overridden by flags.
type serveConfig struct {
	daemonConfig `yaml:",inline"`
	Socket       string `yaml:"socket"`
	MaxConns     int    `yaml:"max_connections"`
	MaxConnsUID  int    `yaml:"max_connections_per_uid"`
	MaxReqsUID   int    `yaml:"max_requests_per_uid"`
	Reserve      int    `yaml:"reserved_connections"`
}

func newServeCmd() *cobra.Command {
	var cfgFile string
	var landlockFlag bool
	c := serveConfig{daemonConfig: defaultDaemonConfig(), Socket: client.DefaultSocket}
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
	c.register(f, &landlockFlag, "parses HTTP")
	f.StringVar(&c.Socket, "socket", c.Socket, "Unix socket to listen on (ignored under socket activation)")
	return cmd
}

// mergeConfig copies the file's values for every flag not given.
func mergeConfig(c *serveConfig, fc serveConfig, cmd *cobra.Command) {
	set := func(flag string) bool { return cmd.Flags().Changed(flag) }
	c.daemonConfig.merge(fc.daemonConfig, set)
	if fc.Socket != "" && !set("socket") {
		c.Socket = fc.Socket
	}
	c.MaxConns, c.MaxConnsUID, c.MaxReqsUID, c.Reserve = fc.MaxConns, fc.MaxConnsUID, fc.MaxReqsUID, fc.Reserve
}

func runServe(ctx context.Context, c serveConfig) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	cfg, err := c.daemon("serve", log)
	if err != nil {
		return err
	}
	front := &broker.Front{
		Socket: c.Socket, Version: "procgate", Log: log,
		Limits: privsep.Limits{MaxConns: c.MaxConns, MaxConnsPerUID: c.MaxConnsUID, MaxRequestsPerUID: c.MaxReqsUID, Reserve: c.Reserve},
	}
	return runDaemon(ctx, "serve", cfg, front)
}

var errNoBroker = errors.New("is the broker running? (procgate serve)")
