package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/pflag"

	"github.com/procgate/procgate/daemon"
	"github.com/procgate/procgate/privsep"
)

// daemonConfig is what both daemon commands (serve, mount) configure:
// the gate's policy and audit, metrics, privilege separation and
// confinement. serve's --config file takes the same keys.
type daemonConfig struct {
	Policy       string        `yaml:"policy"`
	AuditLog     string        `yaml:"audit_log"`
	AuditFormat  string        `yaml:"audit_format"`
	AuditBurst   int           `yaml:"audit_burst"`
	AuditBudget  int           `yaml:"audit_budget"`
	AuditGrants  bool          `yaml:"audit_grants"`
	Metrics      string        `yaml:"metrics"`
	ReadTimeout  time.Duration `yaml:"read_timeout"`
	KeepPrivs    bool          `yaml:"keep_privileges"`
	NoPrivsep    bool          `yaml:"no_privsep"`
	Landlock     *bool         `yaml:"landlock"` // nil: true (the front's Landlock domain)
	FrontUser    string        `yaml:"front_user"`
	ReaderUser   string        `yaml:"reader_user"`
	DrainTimeout time.Duration `yaml:"drain_timeout"`
}

// defaultDaemonConfig returns the defaults of both daemon commands.
func defaultDaemonConfig() daemonConfig {
	return daemonConfig{AuditFormat: "avc", AuditBurst: 20, AuditBudget: 40, DrainTimeout: 30 * time.Second}
}

// register adds the daemon flags; --landlock sets *landlock (the caller
// copies it into Landlock when the flag is given). front says what the
// front does, for --no-privsep's help ("parses HTTP").
func (c *daemonConfig) register(f *pflag.FlagSet, landlock *bool, front string) {
	f.StringVar(&c.Policy, "policy", "", "policy file (default: the embedded default policy)")
	f.StringVar(&c.AuditLog, "audit-log", "", "audit log file, or - for standard error (default: none)")
	f.StringVar(&c.AuditFormat, "audit-format", c.AuditFormat, "audit record format: avc or json")
	f.IntVar(&c.AuditBurst, "audit-burst", c.AuditBurst, "records per caller uid per second; the caller's further decisions are counted in one suppressed=N summary per second; 0 = no limit")
	f.IntVar(&c.AuditBudget, "audit-budget", c.AuditBudget, "records per second of all callers together (bounds the log's size, docs/api.md); further decisions are counted in one suppressed=N summary per second; 0 = no limit")
	f.BoolVar(&c.AuditGrants, "audit-grants", false, "audit every item the policy grants beyond what the kernel gives the caller itself")
	f.StringVar(&c.Metrics, "metrics", "", "address for Prometheus metrics (host:port, or a path for a Unix socket)")
	f.DurationVar(&c.ReadTimeout, "read-timeout", 2*time.Second, "deadline for reads that take the target's mmap lock")
	f.BoolVar(&c.KeepPrivs, "keep-privileges", false, "do not drop capabilities nor confine the front (debugging only)")
	f.BoolVar(&c.NoPrivsep, "no-privsep", false, "run the gate in the process that "+front+" (no privilege separation, no Landlock)")
	f.StringVar(&c.FrontUser, "front-user", "", "user (name or uid[:gid]) the front becomes once confined (default: procgate-front if it exists, else 61182)")
	f.StringVar(&c.ReaderUser, "reader-user", "", "user (name or uid[:gid]) the reader becomes once confined (default: procgate-reader if it exists, else 61183)")
	f.DurationVar(&c.DrainTimeout, "drain-timeout", c.DrainTimeout, "how long shutdown waits for requests in progress")
	f.BoolVar(landlock, "landlock", true, "confine the front with Landlock (privilege separation only; --landlock=false to disable)")
}

// merge copies the file's values for every flag not given (set says
// whether one was).
func (c *daemonConfig) merge(fc daemonConfig, set func(flag string) bool) {
	str := func(dst *string, v, flag string) {
		if v != "" && !set(flag) {
			*dst = v
		}
	}
	num := func(dst *int, v int, flag string) {
		if v != 0 && !set(flag) {
			*dst = v
		}
	}
	dur := func(dst *time.Duration, v time.Duration, flag string) {
		if v != 0 && !set(flag) {
			*dst = v
		}
	}
	yes := func(dst *bool, v bool, flag string) {
		if v && !set(flag) {
			*dst = true
		}
	}
	str(&c.Policy, fc.Policy, "policy")
	str(&c.AuditLog, fc.AuditLog, "audit-log")
	str(&c.AuditFormat, fc.AuditFormat, "audit-format")
	num(&c.AuditBurst, fc.AuditBurst, "audit-burst")
	num(&c.AuditBudget, fc.AuditBudget, "audit-budget")
	yes(&c.AuditGrants, fc.AuditGrants, "audit-grants")
	str(&c.Metrics, fc.Metrics, "metrics")
	dur(&c.ReadTimeout, fc.ReadTimeout, "read-timeout")
	yes(&c.KeepPrivs, fc.KeepPrivs, "keep-privileges")
	yes(&c.NoPrivsep, fc.NoPrivsep, "no-privsep")
	if fc.Landlock != nil && !set("landlock") {
		c.Landlock = fc.Landlock
	}
	str(&c.FrontUser, fc.FrontUser, "front-user")
	str(&c.ReaderUser, fc.ReaderUser, "reader-user")
	dur(&c.DrainTimeout, fc.DrainTimeout, "drain-timeout")
}

// daemon returns the daemon's configuration, or an error for an
// impossible combination.
func (c *daemonConfig) daemon(name string, log *slog.Logger) (daemon.Config, error) {
	if c.NoPrivsep && c.Landlock != nil && *c.Landlock {
		return daemon.Config{}, &exitError{2, fmt.Errorf("%s: --landlock needs privilege separation: Landlock scopes ptrace, so a Landlocked gate cannot read io, exe, fd, environ… of other processes (drop --no-privsep)", name)}
	}
	return daemon.Config{
		Gate: privsep.GateConfig{
			Policy: c.Policy, AuditLog: c.AuditLog, AuditFormat: c.AuditFormat, AuditBurst: c.AuditBurst,
			AuditBudget: c.AuditBudget, AuditGrants: c.AuditGrants,
			ReadTimeout: c.ReadTimeout,
		},
		Metrics: c.Metrics, KeepPrivileges: c.KeepPrivs, NoPrivsep: c.NoPrivsep,
		NoLandlock: c.Landlock != nil && !*c.Landlock, DrainTimeout: c.DrainTimeout, Log: log,
		FrontUser: c.FrontUser, ReaderUser: c.ReaderUser,
	}, nil
}

// runDaemon runs front under cfg and maps the outcome to procgate's exit
// status: 0 after a clean shutdown, 2 when it could not start, 1
// otherwise.
func runDaemon(ctx context.Context, name string, cfg daemon.Config, front daemon.Front) error {
	err := daemon.Run(ctx, cfg, front)
	var se *daemon.SetupError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se):
		return &exitError{2, fmt.Errorf("%s: %w", name, err)}
	}
	return &exitError{1, fmt.Errorf("%s: %w", name, err)}
}
