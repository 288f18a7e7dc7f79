package fuseproc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/privsep"
)

// Front is the FUSE /proc as a front of the daemon (package daemon): it
// mounts the tree on Dir while the daemon is still root, and serves it
// once the daemon has confined it (no capabilities, Landlock: read-only
// access to /proc for the pass-through, nothing else).
//
// A confined front cannot unmount. At mount time it starts an unmounter:
// this binary again, root, in a session of its own, holding nothing but
// the mount point's path and one end of a pipe whose other end only the
// front holds. When the pipe closes — the front shut down, or died,
// even by SIGKILL — the unmounter detaches the mount (MNT_DETACH) and
// exits: a dead daemon never leaves a dead mount behind ("Transport
// endpoint is not connected").
type Front struct {
	// Dir is the mount point.
	Dir string
	// HidePID hides the processes a caller may not ptrace-read.
	HidePID HidePID
	// Proc is the procfs passed through (default /proc).
	Proc string
	// Log receives operational messages.
	Log *slog.Logger
	// Debug logs every FUSE request (never the values read).
	Debug bool

	fs     *FS
	server *fuse.Server
	pipe   *os.File
	umount *exec.Cmd
	cancel context.CancelFunc
	done   chan struct{}
	// stopping is closed when Shutdown begins: the mount going away is
	// then expected.
	stopping chan struct{}
}

// readerHeadroom returns the GOMAXPROCS to serve with when it was procs
// as the server was made. go-fuse keeps up to one more than
// min(max(procs, 2), 16) goroutines waiting in read(2) on /dev/fuse,
// and each holds a P while it waits. When they hold all of them, the
// runtime's monitor wakes every 20 µs to take the Ps back, and each
// request's reader then wakes another thread to get one: a dozen more
// context switches per FUSE request, which a virtual machine makes
// expensive (docs/benchmarks.md). Ps beyond the waiting readers leave
// one idle, and the monitor asleep; the Ps are not threads, and the
// work in hand is what it was.
func readerHeadroom(procs int) int {
	return procs + min(max(procs, 2), 16) + 2
}

// headroom raises GOMAXPROCS once per process (the first mount's).
var headroom sync.Once

// envUnmount names the mount point an unmounter watches.
const envUnmount = "PROCGATE_FUSE_UNMOUNTER"

// Prepare mounts the tree on Dir and starts the unmounter. It raises
// the process's GOMAXPROCS (see readerHeadroom).
func (f *Front) Prepare(be privsep.Backend) error {
	if f.Log == nil {
		f.Log = slog.Default()
	}
	dir, err := filepath.Abs(f.Dir)
	if err != nil {
		return fmt.Errorf("mount: %w", err)
	}
	st, err := os.Stat(dir)
	if errors.Is(err, unix.ENOTCONN) {
		// A mount whose daemon died (and its unmounter with it, both
		// killed at once): detach it and mount afresh.
		f.Log.Warn("detaching a dead mount left on the mount point", "dir", dir)
		if uerr := unix.Unmount(dir, unix.MNT_DETACH); uerr != nil {
			return fmt.Errorf("mount: %s: %w (detaching it: %v)", dir, err, uerr)
		}
		st, err = os.Stat(dir)
	}
	if err != nil {
		return fmt.Errorf("mount: %w", err)
	} else if !st.IsDir() {
		return fmt.Errorf("mount: %s is not a directory", dir)
	}
	f.Dir = dir
	f.fs = New(Config{Backend: be, HidePID: f.HidePID, Proc: f.Proc, Log: f.Log})
	zero := time.Duration(0)
	opts := &fs.Options{
		MountOptions: fuse.MountOptions{
			AllowOther:  true,
			FsName:      "procgate",
			Name:        "procgate",
			DirectMount: true,
			Options:     []string{"ro", "nosuid", "nodev", "noexec"},
			MaxWrite:    128 << 10,
			// Answers come from memory; splicing would open /dev/null,
			// which the confined front may not.
			DisableSplice: true,
			Debug:         f.Debug,
			// Readdirplus would carry the entries' attributes into the
			// kernel's cache with the listing; lookups answer per caller.
			DisableReadDirPlus: true,
		},
		EntryTimeout:    &zero,
		AttrTimeout:     &zero,
		NegativeTimeout: &zero,
	}
	srv, err := fs.Mount(dir, f.fs.Root(), opts)
	if err != nil {
		return fmt.Errorf("mount: %s: %w", dir, err)
	}
	f.server = srv
	headroom.Do(func() { runtime.GOMAXPROCS(readerHeadroom(runtime.GOMAXPROCS(0))) })
	if err := f.startUnmounter(); err != nil {
		srv.Unmount()
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	f.done, f.stopping = make(chan struct{}), make(chan struct{})
	go func() {
		f.fs.Serve(ctx)
		close(f.done)
	}()
	return nil
}

// startUnmounter starts the process that detaches the mount when the
// front's end of its pipe closes.
func (f *Front) startUnmounter() error {
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("mount: unmounter: %w", err)
	}
	exe, err := os.Executable()
	if err != nil {
		r.Close()
		w.Close()
		return fmt.Errorf("mount: unmounter: %w", err)
	}
	cmd := exec.Command(exe)
	cmd.Env = []string{envUnmount + "=" + f.Dir}
	cmd.ExtraFiles = []*os.File{r}
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return fmt.Errorf("mount: unmounter: %w", err)
	}
	r.Close()
	f.pipe, f.umount = w, cmd
	return nil
}

// RunUnmounterIfRequested runs the unmounter when this process was
// started as one (see Front), and never returns then. Call it first in
// main.
func RunUnmounterIfRequested() {
	dir := os.Getenv(envUnmount)
	if dir == "" {
		return
	}
	// Signals to the daemon's process group (^C) are the front's to
	// handle: the unmounter waits for the pipe.
	signal.Ignore(unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGPIPE)
	var b [1]byte
	for {
		n, err := unix.Read(3, b[:])
		if n == 0 || (err != nil && err != unix.EINTR) {
			break
		}
	}
	code := 0
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
		fmt.Fprintf(os.Stderr, "procgate: unmount %s: %v\n", dir, err)
		code = 1
	}
	os.Exit(code)
}

// Serve serves until Shutdown (nil), or until the mount goes away
// without it (someone unmounted it: an error, the daemon stops).
func (f *Front) Serve() error {
	served := make(chan struct{})
	go func() { f.server.Wait(); close(served) }()
	select {
	case <-served:
		select {
		case <-f.stopping:
			return nil
		default:
			return fmt.Errorf("mount: %s was unmounted", f.Dir)
		}
	case <-f.stopping:
		return nil
	}
}

// Shutdown detaches the mount (through the unmounter), waits for the
// requests in progress until ctx ends, and closes the sessions.
func (f *Front) Shutdown(ctx context.Context) error {
	if f.server == nil {
		return nil
	}
	var err error
	if f.pipe != nil { // the first Shutdown
		close(f.stopping)
		f.pipe.Close()
		f.pipe = nil
		werr := make(chan error, 1)
		go func() { werr <- f.umount.Wait() }()
		select {
		case err = <-werr:
			if err != nil {
				err = fmt.Errorf("mount: unmounter: %w", err)
			}
		case <-ctx.Done():
			err = fmt.Errorf("mount: unmounter: %w", ctx.Err())
		}
	}
	// The requests in progress finish. The server itself may outlive
	// the mount: a copy of it in another mount namespace (a container's
	// bind mount over /proc) keeps the connection open until this
	// process exits, and it then ends with the process.
	drained := make(chan struct{})
	go func() { f.fs.sessions.inflight.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-ctx.Done():
		err = errors.Join(err, fmt.Errorf("mount: requests in progress: %w", ctx.Err()))
	}
	f.cancel()
	<-f.done
	return err
}

// Addr names the mount point.
func (f *Front) Addr() string { return f.Dir }

// ReadOnlyPaths lists what the confined front must still read: the
// procfs it passes through.
func (f *Front) ReadOnlyPaths() []string { return []string{f.fs.cfg.Proc} }
