// Package daemon runs a front of procgate's enforcement (the HTTP
// broker, the FUSE /proc) as a privileged daemon: it starts the backend
// that answers the callers (the gate in-process, or a privilege-separated
// reader process), lets the front bind what it serves on while the
// daemon still holds its privileges, serves Prometheus metrics, drops the
// privileges and confines the front, then serves until SIGTERM or SIGINT
// (drain: requests in progress finish, the audit log is flushed), with
// SIGHUP reloading the policy (and flushing the audit log). When the
// reader dies the daemon fails closed and exits.
//
// Fronts are thin: the sequence above, the confinement and the reader
// are written once, here and in package privsep.
package daemon

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
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/gate"
	"github.com/procgate/procgate/privsep"
)

// Config configures the daemon around a front.
type Config struct {
	// Gate is the policy, audit and read configuration of the gate.
	Gate privsep.GateConfig
	// Metrics is the address of the Prometheus metrics listener
	// (host:port, or an absolute path for a Unix socket); "" for none.
	Metrics string
	// KeepPrivileges keeps every capability and leaves the front
	// unconfined (debugging only).
	KeepPrivileges bool
	// NoPrivsep runs the gate in the front's process, with
	// CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH and without Landlock.
	NoPrivsep bool
	// NoLandlock leaves the privilege-separated front without a Landlock
	// domain (it still drops every capability).
	NoLandlock bool
	// FrontUser and ReaderUser name who the front and the reader become
	// once confined: a user name or uid[:gid]; "" takes the account
	// procgate-front (procgate-reader) if it exists, else uid and gid
	// 61182 (61183). Neither may be root, and they must differ.
	FrontUser, ReaderUser string
	// DrainTimeout bounds the wait for requests in progress at shutdown
	// (default 30s).
	DrainTimeout time.Duration
	// Log receives operational messages (never audit records, never
	// values read); nil writes text to standard error.
	Log *slog.Logger
}

// Front is what the daemon serves: an enforcement front such as the
// HTTP broker or the FUSE /proc.
type Front interface {
	// Prepare acquires what the front serves on (a listening socket, a
	// mount) while the daemon still holds its privileges; be is what
	// will answer its callers.
	Prepare(be privsep.Backend) error
	// Serve serves callers until Shutdown; it returns nil after
	// Shutdown.
	Serve() error
	// Shutdown stops taking callers, waits for the requests in progress
	// until ctx ends, and releases what Prepare acquired.
	Shutdown(ctx context.Context) error
	// Addr names what the front serves on, for the log.
	Addr() string
}

// ReadOnlyPather is a front that must still read some directories once
// confined (the FUSE front passes /proc through): its Landlock domain
// lets it read beneath them, nothing more.
type ReadOnlyPather interface {
	ReadOnlyPaths() []string
}

// SetupError is a configuration or start-up failure: the daemon never
// served (procgate's exit status 2).
type SetupError struct{ Err error }

func (e *SetupError) Error() string { return e.Err.Error() }
func (e *SetupError) Unwrap() error { return e.Err }

// ErrReaderExited reports that the privilege-separated reader died: the
// daemon stopped serving (it fails closed; its supervisor restarts it).
var ErrReaderExited = errors.New("daemon: the privileged reader exited")

// backend is a started backend and how to operate it.
type backend struct {
	privsep.Backend
	remote       *privsep.Remote // nil in-process
	writeMetrics func(io.Writer) error
	reload       func()
	finish       func() error // after the front's drain: flush the audit log
	dead         <-chan struct{}
	gen          uint64
}

// Run runs front until SIGTERM or SIGINT (or ctx's end), which drain it;
// it returns nil after a clean shutdown, a *SetupError when it could not
// start, ErrReaderExited when the reader died, or the drain's error.
func Run(ctx context.Context, cfg Config, front Front) error {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 30 * time.Second
	}
	log := cfg.Log
	if _, err := privsep.AuditFormat(cfg.Gate.AuditFormat); err != nil {
		return &SetupError{fmt.Errorf("audit format: %w", err)}
	}
	if cfg.NoPrivsep && !cfg.NoLandlock {
		cfg.NoLandlock = true // Landlock scopes ptrace: an in-process gate cannot use it
	}
	if err := CheckPrivileges(cfg.KeepPrivileges); err != nil {
		return &SetupError{err}
	}
	frontCreds, readerCreds, err := users(cfg)
	if err != nil {
		return &SetupError{err}
	}
	cfg.Gate.Reader = readerCreds
	for _, c := range []privsep.Creds{frontCreds, readerCreds} {
		if pid, comm := uidInUse(c.UID); pid > 0 && !cfg.KeepPrivileges {
			log.Warn("another process runs as the uid the daemon takes: it could signal the daemon's process; give the daemon a uid of its own (front_user, reader_user)", "uid", c.UID, "pid", pid, "comm", comm)
		}
	}
	raiseNoFile()
	if os.Getenv("GOMEMLIMIT") == "" {
		// Keep the heap small on big machines (docs/benchmarks.md: RSS
		// with 10,000 processes); GOMEMLIMIT overrides.
		debug.SetMemoryLimit(gate.DefaultMemoryLimit)
	}
	cfg.Gate.MemoryLimit = debug.SetMemoryLimit(-1)
	cfg.Gate.KeepPrivileges = cfg.KeepPrivileges
	// The audit log is opened here, before any process is confined: the
	// process that writes it gets the descriptor and may open nothing
	// for writing.
	if cfg.Gate.AuditFile, err = privsep.OpenAuditLog(cfg.Gate.AuditLog); err != nil {
		return &SetupError{err}
	}
	be, err := startBackend(cfg, log)
	if cfg.Gate.AuditFile != nil && !cfg.NoPrivsep {
		cfg.Gate.AuditFile.Close() // the reader has its own descriptor
	}
	if err != nil {
		return &SetupError{err}
	}
	abort := func(err error) error {
		if be.remote != nil {
			be.remote.Shutdown(5 * time.Second)
		} else {
			be.finish()
		}
		return &SetupError{err}
	}
	if err := front.Prepare(be); err != nil {
		return abort(err)
	}
	msrv, err := ServeMetrics(cfg.Metrics, be.writeMetrics)
	if err != nil {
		front.Shutdown(context.Background())
		return abort(err)
	}
	if err := confine(cfg, be, front, frontCreds, log); err != nil {
		front.Shutdown(context.Background())
		if msrv != nil {
			msrv.Close()
		}
		return abort(fmt.Errorf("%w (use --keep-privileges to run anyway)", err))
	}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGHUP, unix.SIGTERM, unix.SIGINT)
	defer signal.Stop(sigs)
	errc := make(chan error, 1)
	go func() { errc <- front.Serve() }()
	attrs := []any{"addr", front.Addr(), "policy", privsep.PolicyName(cfg.Gate.Policy), "generation", be.gen, "metrics", cfg.Metrics, "privsep", !cfg.NoPrivsep}
	if be.remote != nil {
		attrs = append(attrs, "reader_pid", be.remote.PID())
	}
	log.Info("serving", attrs...)
	stop := func(d time.Duration) error {
		dctx, cancel := context.WithTimeout(context.Background(), d)
		err := front.Shutdown(dctx)
		cancel()
		if msrv != nil {
			msrv.Close()
		}
		return err
	}
	drain := func(why string) error {
		log.Info("draining", "signal", why)
		err := stop(cfg.DrainTimeout)
		if ferr := be.finish(); err == nil {
			err = ferr
		}
		if err != nil {
			return fmt.Errorf("daemon: shutdown: %w", err)
		}
		log.Info("stopped")
		return nil
	}
	done := ctx.Done()
	for {
		select {
		case err := <-errc:
			stop(time.Second)
			be.finish()
			return &SetupError{fmt.Errorf("daemon: serve: %w", err)}
		case <-be.dead:
			log.Error("the privileged reader exited: failing closed and exiting", "reader", be.remote.ExitStatus(time.Second))
			stop(2 * time.Second)
			return ErrReaderExited
		case <-done:
			return drain("context done")
		case s := <-sigs:
			if s == unix.SIGHUP {
				be.reload()
				continue
			}
			return drain(s.String())
		}
	}
}

// startBackend opens the gate in-process or starts the reader.
func startBackend(cfg Config, log *slog.Logger) (*backend, error) {
	if cfg.NoPrivsep {
		g, aud, err := privsep.OpenGate(cfg.Gate, log)
		if err != nil {
			return nil, err
		}
		return &backend{
			Backend:      privsep.NewLocal(g),
			writeMetrics: func(w io.Writer) error { _, err := g.Metrics().WriteTo(w); return err },
			reload:       func() { privsep.Reload(log, g, aud, cfg.Gate.Policy) },
			finish: func() error {
				err := aud.Close()
				g.Close()
				return err
			},
			gen: g.Policy().Generation(),
		}, nil
	}
	r, err := privsep.StartReader(cfg.Gate, log)
	if err != nil {
		return nil, err
	}
	return &backend{
		Backend:      r,
		remote:       r,
		writeMetrics: r.WriteMetrics,
		reload: func() {
			// The reader logs the outcome (policy errors included).
			if _, err := r.Reload(); errors.Is(err, privsep.ErrUnavailable) {
				log.Error("reload: the reader is unavailable", "err", err)
			}
		},
		finish: func() error { return r.Shutdown(cfg.DrainTimeout + 5*time.Second) },
		dead:   r.Dead(),
		gen:    r.Generation(),
	}, nil
}

// confine drops the privileges the serving process no longer needs once
// the front is prepared: all of them (and Landlock) for a
// privilege-separated front, which becomes front; all but the reading
// ones in-process, which becomes the reader's user.
func confine(cfg Config, be *backend, f Front, front privsep.Creds, log *slog.Logger) error {
	switch {
	case cfg.KeepPrivileges:
		log.Warn("--keep-privileges: capabilities kept and the front not confined (debugging only)")
		return nil
	case cfg.NoPrivsep:
		return privsep.DropPrivileges(cfg.Gate.Reader)
	}
	useLandlock := !cfg.NoLandlock
	// Load the time zone while files can still be read.
	log.Info("confining the front", "landlock", useLandlock, "uid", front.UID, "at", time.Now().Local())
	var readOnly []string
	if r, ok := f.(ReadOnlyPather); ok {
		readOnly = r.ReadOnlyPaths()
	}
	abi, err := privsep.ConfineFront(front, useLandlock, readOnly...)
	if err != nil {
		return err
	}
	switch {
	case !useLandlock:
		log.Warn("--landlock=false: the front runs without capabilities but is not confined by Landlock")
	default:
		for _, gap := range privsep.LandlockGaps(abi) {
			log.Warn("LANDLOCK GAP: the front's Landlock domain cannot forbid this on this kernel; its uid, no capabilities and no_new_privs still hold", "what", gap)
		}
		log.Info("front confined", "uid", front.UID, "capabilities", "none", "no_new_privs", true, "landlock_abi", abi, "reader_pid", be.remote.PID())
	}
	privsep.SelfTestConfinement(log)
	return nil
}

// users resolves who the front and the reader become.
func users(cfg Config) (front, reader privsep.Creds, err error) {
	if front, err = privsep.LookupCreds(cfg.FrontUser, privsep.FrontUser, privsep.FrontIDs); err != nil {
		return
	}
	if reader, err = privsep.LookupCreds(cfg.ReaderUser, privsep.ReaderUser, privsep.ReaderIDs); err != nil {
		return
	}
	if front.UID == reader.UID {
		err = fmt.Errorf("the front and the reader must run as different users (both uid %d): the front parses callers' input and must not be able to signal the reader", front.UID)
	}
	return
}

// uidInUse returns a process (other than this one) running as uid, or 0.
func uidInUse(uid uint32) (int, string) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, ""
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		var st unix.Stat_t
		if unix.Stat("/proc/"+e.Name(), &st) != nil || st.Uid != uid {
			continue
		}
		comm, _ := os.ReadFile("/proc/" + e.Name() + "/comm")
		return pid, strings.TrimSpace(string(comm))
	}
	return 0, ""
}

// ServeMetrics starts the Prometheus metrics listener on addr (none
// when addr is "").
func ServeMetrics(addr string, write func(io.Writer) error) (*http.Server, error) {
	if addr == "" {
		return nil, nil
	}
	network := "tcp"
	if filepath.IsAbs(addr) {
		network = "unix"
		os.Remove(addr)
	}
	ml, err := net.Listen(network, addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		var b bytes.Buffer
		if err := write(&b); err != nil {
			http.Error(w, "metrics unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		w.Write(b.Bytes())
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ml)
	return srv, nil
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
