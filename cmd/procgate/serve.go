package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/broker"
	"github.com/procgate/procgate/client"
	"github.com/procgate/procgate/gate"
	"github.com/procgate/procgate/policy"
)

// serveConfig is procgate serve's configuration: the --config file's
// keys, overridden by flags.
type serveConfig struct {
	Policy       string        `yaml:"policy"`
	Socket       string        `yaml:"socket"`
	AuditLog     string        `yaml:"audit_log"`
	AuditFormat  string        `yaml:"audit_format"`
	AuditBurst   int           `yaml:"audit_burst"`
	Metrics      string        `yaml:"metrics"`
	ReadTimeout  time.Duration `yaml:"read_timeout"`
	MaxConns     int           `yaml:"max_connections"`
	MaxConnsUID  int           `yaml:"max_connections_per_uid"`
	MaxReqsUID   int           `yaml:"max_requests_per_uid"`
	KeepPrivs    bool          `yaml:"keep_privileges"`
	Landlock     bool          `yaml:"landlock"`
	DrainTimeout time.Duration `yaml:"drain_timeout"`
}

func newServeCmd() *cobra.Command {
	var cfgFile string
	c := serveConfig{Socket: client.DefaultSocket, AuditFormat: "avc", AuditBurst: 20, DrainTimeout: 30 * time.Second}
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

After binding it keeps only CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH and sets
no_new_privs. SIGHUP reloads the policy (an invalid one is reported and the
last good one stays) and reopens the audit log; SIGTERM drains requests in
progress, flushes the audit log and exits.

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
			return runServe(cmd.Context(), c)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgFile, "config", "", "YAML configuration file (keys: policy, socket, audit_log, audit_format, audit_burst, metrics, read_timeout, max_connections, max_connections_per_uid, max_requests_per_uid, keep_privileges, landlock, drain_timeout)")
	f.StringVar(&c.Policy, "policy", "", "policy file (default: the embedded default policy)")
	f.StringVar(&c.Socket, "socket", c.Socket, "Unix socket to listen on (ignored under socket activation)")
	f.StringVar(&c.AuditLog, "audit-log", "", "audit log file, or - for standard error (default: none)")
	f.StringVar(&c.AuditFormat, "audit-format", c.AuditFormat, "audit record format: avc or json")
	f.IntVar(&c.AuditBurst, "audit-burst", c.AuditBurst, "records per (uid, target uid, item, result) per second before a suppressed=N summary; 0 = no limit")
	f.StringVar(&c.Metrics, "metrics", "", "address for Prometheus metrics (host:port, or a path for a Unix socket)")
	f.DurationVar(&c.ReadTimeout, "read-timeout", 2*time.Second, "deadline for reads that take the target's mmap lock")
	f.BoolVar(&c.KeepPrivs, "keep-privileges", false, "do not drop capabilities (debugging only)")
	f.BoolVar(&c.Landlock, "landlock", false, "confine the broker's filesystem access with Landlock (ptrace-guarded items then fail: see docs/api.md)")
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
	if fc.Metrics != "" && !set("metrics") {
		c.Metrics = fc.Metrics
	}
	if fc.ReadTimeout != 0 && !set("read-timeout") {
		c.ReadTimeout = fc.ReadTimeout
	}
	if fc.KeepPrivs && !set("keep-privileges") {
		c.KeepPrivs = true
	}
	if fc.Landlock && !set("landlock") {
		c.Landlock = true
	}
	c.MaxConns, c.MaxConnsUID, c.MaxReqsUID = fc.MaxConns, fc.MaxConnsUID, fc.MaxReqsUID
	if fc.DrainTimeout != 0 {
		c.DrainTimeout = fc.DrainTimeout
	}
}

// loadPolicy compiles the policy file, or the default policy.
func loadPolicy(path string) (*policy.Policy, error) {
	if path == "" {
		return policy.Default()
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return policy.Load(path, src)
}

func runServe(ctx context.Context, c serveConfig) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	pol, err := loadPolicy(c.Policy)
	if err != nil {
		return &exitError{2, fmt.Errorf("serve: policy: %w", err)}
	}
	for _, w := range pol.Warnings() {
		log.Warn("policy", "warning", w.String())
	}
	var format gate.AuditFormat
	switch c.AuditFormat {
	case "avc", "":
	case "json":
		format = gate.AuditJSON
	default:
		return &exitError{2, fmt.Errorf("serve: --audit-format %q: want avc or json", c.AuditFormat)}
	}
	aud, err := gate.NewAuditor(gate.AuditConfig{Path: c.AuditLog, Format: format, Burst: c.AuditBurst, Interval: time.Second})
	if err != nil {
		return &exitError{2, fmt.Errorf("serve: %w", err)}
	}
	defer aud.Close()
	raiseNoFile()
	if os.Getenv("GOMEMLIMIT") == "" {
		// Keep the heap small on big machines (docs/benchmarks.md: RSS
		// with 10,000 processes); GOMEMLIMIT overrides.
		debug.SetMemoryLimit(40 << 20)
	}
	g, err := gate.New(gate.Config{Policy: pol, Audit: aud, ReadTimeout: c.ReadTimeout})
	if err != nil {
		return &exitError{2, fmt.Errorf("serve: %w", err)}
	}
	defer g.Close()
	srv := broker.New(broker.Config{Gate: g, Log: log, MaxConns: c.MaxConns, MaxConnsPerUID: c.MaxConnsUID, MaxRequestsPerUID: c.MaxReqsUID, ServerVersion: "procgate"})

	l, err := broker.ActivationListener()
	if err != nil {
		return &exitError{2, fmt.Errorf("serve: %w", err)}
	}
	created := false
	if l == nil {
		if l, err = broker.Listen(c.Socket); err != nil {
			return &exitError{2, fmt.Errorf("serve: %w", err)}
		}
		created = true
	}
	var msrv *http.Server
	if c.Metrics != "" {
		network := "tcp"
		if filepath.IsAbs(c.Metrics) {
			network = "unix"
			os.Remove(c.Metrics)
		}
		ml, err := net.Listen(network, c.Metrics)
		if err != nil {
			l.Close()
			return &exitError{2, fmt.Errorf("serve: metrics listener: %w", err)}
		}
		mux := http.NewServeMux()
		mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			g.Metrics().WriteTo(w)
		})
		msrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go msrv.Serve(ml)
	}
	if c.Landlock {
		if err := broker.RestrictFilesystem(filepath.Dir(c.AuditLog), filepath.Dir(c.Socket)); err != nil {
			return &exitError{2, fmt.Errorf("serve: %w", err)}
		}
	}
	if !c.KeepPrivs {
		if err := broker.DropPrivileges(); err != nil {
			l.Close()
			return &exitError{2, fmt.Errorf("serve: %w (use --keep-privileges to run anyway)", err)}
		}
	}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGHUP, unix.SIGTERM, unix.SIGINT)
	defer signal.Stop(sigs)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	log.Info("serving", "socket", l.Addr().String(), "policy", policyName(c.Policy), "generation", pol.Generation(), "metrics", c.Metrics)
	for {
		select {
		case err := <-errc:
			return &exitError{2, fmt.Errorf("serve: %w", err)}
		case s := <-sigs:
			if s == unix.SIGHUP {
				reload(log, g, aud, c.Policy)
				continue
			}
			log.Info("draining", "signal", s.String())
			dctx, cancel := context.WithTimeout(context.Background(), c.DrainTimeout)
			err := srv.Shutdown(dctx)
			cancel()
			if msrv != nil {
				msrv.Close()
			}
			if created {
				os.Remove(c.Socket)
			}
			if cerr := aud.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return &exitError{1, fmt.Errorf("serve: shutdown: %w", err)}
			}
			log.Info("stopped")
			return nil
		}
	}
}

// reload recompiles the policy; an invalid one leaves the last good one
// in force. It also reopens the audit log and drops the model's cache.
func reload(log *slog.Logger, g *gate.Gate, aud *gate.Auditor, path string) {
	if err := aud.Reopen(); err != nil {
		log.Error("audit log reopen failed", "err", err)
	}
	g.FlushCache()
	pol, err := loadPolicy(path)
	if err != nil {
		log.Error("policy reload failed; the previous policy stays in force", "policy", policyName(path), "err", err, "generation", g.Policy().Generation())
		return
	}
	g.SetPolicy(pol)
	log.Info("policy reloaded", "policy", policyName(path), "generation", pol.Generation())
}

func policyName(path string) string {
	if path == "" {
		return "(default)"
	}
	return path
}

// raiseNoFile raises the open-file limit to its hard maximum: each
// process in flight holds two descriptors.
func raiseNoFile() {
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		unix.Setrlimit(unix.RLIMIT_NOFILE, &rl)
	}
}

var errNoBroker = errors.New("is the broker running? (procgate serve)")
