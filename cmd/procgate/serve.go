package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
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
	NoPrivsep    bool          `yaml:"no_privsep"`
	Landlock     *bool         `yaml:"landlock"` // nil: true (the front's Landlock domain)
	DrainTimeout time.Duration `yaml:"drain_timeout"`
}

func newServeCmd() *cobra.Command {
	var cfgFile string
	var landlockFlag bool
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
			if cmd.Flags().Changed("landlock") {
				c.Landlock = &landlockFlag
			}
			return runServe(cmd.Context(), c)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgFile, "config", "", "YAML configuration file (keys: policy, socket, audit_log, audit_format, audit_burst, metrics, read_timeout, max_connections, max_connections_per_uid, max_requests_per_uid, keep_privileges, no_privsep, landlock, drain_timeout)")
	f.StringVar(&c.Policy, "policy", "", "policy file (default: the embedded default policy)")
	f.StringVar(&c.Socket, "socket", c.Socket, "Unix socket to listen on (ignored under socket activation)")
	f.StringVar(&c.AuditLog, "audit-log", "", "audit log file, or - for standard error (default: none)")
	f.StringVar(&c.AuditFormat, "audit-format", c.AuditFormat, "audit record format: avc or json")
	f.IntVar(&c.AuditBurst, "audit-burst", c.AuditBurst, "records per (uid, target uid, item, result) per second before a suppressed=N summary; 0 = no limit")
	f.StringVar(&c.Metrics, "metrics", "", "address for Prometheus metrics (host:port, or a path for a Unix socket)")
	f.DurationVar(&c.ReadTimeout, "read-timeout", 2*time.Second, "deadline for reads that take the target's mmap lock")
	f.BoolVar(&c.KeepPrivs, "keep-privileges", false, "do not drop capabilities nor confine the front (debugging only)")
	f.BoolVar(&c.NoPrivsep, "no-privsep", false, "run the gate in the process that parses HTTP (no privilege separation, no Landlock)")
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
	c.MaxConns, c.MaxConnsUID, c.MaxReqsUID = fc.MaxConns, fc.MaxConnsUID, fc.MaxReqsUID
	if fc.DrainTimeout != 0 {
		c.DrainTimeout = fc.DrainTimeout
	}
}

func runServe(ctx context.Context, c serveConfig) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if _, err := broker.AuditFormat(c.AuditFormat); err != nil {
		return &exitError{2, fmt.Errorf("serve: --audit-format: %w", err)}
	}
	useLandlock := c.Landlock == nil || *c.Landlock
	if c.NoPrivsep && c.Landlock != nil && *c.Landlock {
		return &exitError{2, errors.New("serve: --landlock needs privilege separation: Landlock scopes ptrace, so a Landlocked gate cannot read io, exe, fd, environ… of other processes (drop --no-privsep)")}
	}
	raiseNoFile()
	if os.Getenv("GOMEMLIMIT") == "" {
		// Keep the heap small on big machines (docs/benchmarks.md: RSS
		// with 10,000 processes); GOMEMLIMIT overrides.
		debug.SetMemoryLimit(40 << 20)
	}
	gcfg := broker.GateConfig{
		Policy: c.Policy, AuditLog: c.AuditLog, AuditFormat: c.AuditFormat, AuditBurst: c.AuditBurst,
		ReadTimeout: c.ReadTimeout, MemoryLimit: debug.SetMemoryLimit(-1), KeepPrivileges: c.KeepPrivs,
	}
	var (
		backend      broker.Backend
		writeMetrics func(io.Writer) error
		reload       func()
		finish       func() error // after the HTTP drain: flush the audit log
		dead         <-chan struct{}
		reader       *broker.Remote
		gen          uint64
	)
	if c.NoPrivsep {
		g, aud, err := broker.OpenGate(gcfg, log)
		if err != nil {
			return &exitError{2, fmt.Errorf("serve: %w", err)}
		}
		defer g.Close()
		defer aud.Close()
		backend = broker.Local{G: g}
		writeMetrics = func(w io.Writer) error { _, err := g.Metrics().WriteTo(w); return err }
		reload = func() { broker.Reload(log, g, aud, c.Policy) }
		finish = aud.Close
		gen = g.Policy().Generation()
	} else {
		var err error
		if reader, err = broker.StartReader(gcfg, log); err != nil {
			return &exitError{2, fmt.Errorf("serve: %w", err)}
		}
		backend = reader
		writeMetrics = reader.WriteMetrics
		reload = func() {
			// The reader logs the outcome (policy errors included).
			if _, err := reader.Reload(); errors.Is(err, broker.ErrUnavailable) {
				log.Error("reload: the reader is unavailable", "err", err)
			}
		}
		finish = func() error { return reader.Shutdown(c.DrainTimeout + 5*time.Second) }
		dead = reader.Dead()
		gen = reader.Generation()
	}
	srv := broker.New(broker.Config{Backend: backend, Log: log, MaxConns: c.MaxConns, MaxConnsPerUID: c.MaxConnsUID, MaxRequestsPerUID: c.MaxReqsUID, ServerVersion: "procgate"})
	abort := func(err error) error {
		if reader != nil {
			reader.Shutdown(5 * time.Second)
		}
		return &exitError{2, fmt.Errorf("serve: %w", err)}
	}

	l, err := broker.ActivationListener()
	if err != nil {
		return abort(err)
	}
	created := false
	if l == nil {
		if l, err = broker.Listen(c.Socket); err != nil {
			return abort(err)
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
			return abort(fmt.Errorf("metrics listener: %w", err))
		}
		mux := http.NewServeMux()
		mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
			var b bytes.Buffer
			if err := writeMetrics(&b); err != nil {
				http.Error(w, "metrics unavailable", http.StatusServiceUnavailable)
				return
			}
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			w.Write(b.Bytes())
		})
		msrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go msrv.Serve(ml)
	}
	switch {
	case c.KeepPrivs:
		log.Warn("--keep-privileges: capabilities kept and the front not confined (debugging only)")
	case c.NoPrivsep:
		if err := broker.DropPrivileges(); err != nil {
			l.Close()
			return abort(fmt.Errorf("%w (use --keep-privileges to run anyway)", err))
		}
	default:
		removable := ""
		if created {
			removable = filepath.Dir(c.Socket) // to unlink the socket at shutdown
		}
		log.Info("confining the front", "landlock", useLandlock, "at", time.Now().Local()) // loads the time zone while files can still be read
		abi, err := broker.ConfineFront(useLandlock, removable)
		if err != nil {
			l.Close()
			return abort(fmt.Errorf("%w (use --keep-privileges to run anyway)", err))
		}
		switch {
		case !useLandlock:
			log.Warn("--landlock=false: the front runs without capabilities but is not confined by Landlock")
		case abi == 0:
			log.Warn("LANDLOCK UNAVAILABLE: the kernel offers no Landlock (CONFIG_SECURITY_LANDLOCK, lsm=...,landlock); the front runs without capabilities but NOT confined; continuing")
		default:
			log.Info("front confined", "capabilities", "none", "no_new_privs", true, "landlock_abi", abi, "reader_pid", reader.PID())
		}
		broker.SelfTestConfinement(log)
	}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGHUP, unix.SIGTERM, unix.SIGINT)
	defer signal.Stop(sigs)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	log.Info("serving", "socket", l.Addr().String(), "policy", broker.PolicyName(c.Policy), "generation", gen, "metrics", c.Metrics, "privsep", !c.NoPrivsep)
	stop := func(d time.Duration) error {
		dctx, cancel := context.WithTimeout(context.Background(), d)
		err := srv.Shutdown(dctx)
		cancel()
		if msrv != nil {
			msrv.Close()
		}
		if created {
			os.Remove(c.Socket)
		}
		return err
	}
	for {
		select {
		case err := <-errc:
			stop(time.Second)
			finish()
			return &exitError{2, fmt.Errorf("serve: %w", err)}
		case <-dead:
			log.Error("the privileged reader exited: answering 503 and exiting", "reader", reader.ExitStatus(time.Second))
			stop(2 * time.Second)
			return &exitError{1, errors.New("serve: the privileged reader exited")}
		case s := <-sigs:
			if s == unix.SIGHUP {
				reload()
				continue
			}
			log.Info("draining", "signal", s.String())
			err := stop(c.DrainTimeout)
			if cerr := finish(); err == nil {
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
