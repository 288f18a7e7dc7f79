package privsep

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/gate"
)

// Remote is the front's side of privilege separation: a [Backend] whose
// gate runs in a reader process (this binary re-executed, see
// [RunReaderIfRequested]) connected by SOCK_SEQPACKET socket pairs. The
// front holds no capability and, once confined ([ConfineFront]), no
// filesystem access; the reader holds CAP_SYS_PTRACE and
// CAP_DAC_READ_SEARCH and never parses the callers' input.
type Remote struct {
	log   *slog.Logger
	cmd   *exec.Cmd
	ctl   *net.UnixConn
	ctlMu sync.Mutex
	gen   uint64

	dead     chan struct{}
	deadOnce sync.Once
	exited   chan struct{}
	waitErr  error
}

// StartReader starts the reader with cfg and waits until it has opened
// the gate (loaded the policy, opened the audit log) and dropped its
// privileges. Its standard error is this process's.
func StartReader(cfg GateConfig, log *slog.Logger) (*Remote, error) {
	files := []*os.File{nil} // descriptor 3: the control socket
	if cfg.AuditFile != nil {
		files = append(files, cfg.AuditFile) // descriptor 4
		cfg.AuditFD = 3 + len(files) - 1
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	ctl, far, err := seqpacketPair()
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(far), "control")
	files[0] = f
	newCmd := func() *exec.Cmd {
		cmd := exec.Command("/proc/self/exe")
		cmd.Args = []string{os.Args[0], "serve", "(reader)"}
		cmd.ExtraFiles = files
		cmd.Stderr = os.Stderr
		for _, kv := range os.Environ() {
			switch k, _, _ := strings.Cut(kv, "="); k {
			case envRole, envReaderConfig, "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "NOTIFY_SOCKET":
			default:
				cmd.Env = append(cmd.Env, kv)
			}
		}
		cmd.Env = append(cmd.Env, envRole+"="+roleReader, envReaderConfig+"="+string(raw))
		return cmd
	}
	// The reader gets a mount namespace of its own, which it makes
	// read-only (ConfineMounts). Where the front may not create one (a
	// container without CAP_SYS_ADMIN), the reader starts without it and
	// says so.
	cmd := newCmd()
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	err = cmd.Start()
	if err != nil && (errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL)) {
		log.Warn("the reader cannot have a mount namespace of its own; its mounts stay writable", "err", err)
		cmd = newCmd()
		err = cmd.Start()
	}
	f.Close()
	if err != nil {
		ctl.Close()
		return nil, fmt.Errorf("privsep: start the reader: %w", err)
	}
	r := &Remote{log: log, cmd: cmd, ctl: ctl, dead: make(chan struct{}), exited: make(chan struct{})}
	go func() {
		r.waitErr = cmd.Wait()
		close(r.exited)
	}()
	ctl.SetReadDeadline(time.Now().Add(2 * time.Minute))
	typ, p, fds, err := recvMsg(ctl, 16+maxText, 0)
	closeFDs(fds)
	var code byte
	var text string
	if err == nil {
		if typ != msgReady {
			err = fmt.Errorf("%w: no ready message", errProtocol)
		} else {
			code, _, r.gen, text, err = decodeFinal(p)
		}
	}
	if err == nil && code != codeOK {
		err = errors.New(text)
	}
	if err != nil {
		ctl.Close()
		cmd.Process.Kill()
		<-r.exited
		return nil, fmt.Errorf("privsep: reader: %w", err)
	}
	ctl.SetReadDeadline(time.Time{})
	go r.watch()
	return r, nil
}

// watch marks the reader dead when the control socket ends: the reader
// never writes to it after the ready message.
func (r *Remote) watch() {
	_, _, fds, _ := recvMsg(r.ctl, 16, maxFDs)
	closeFDs(fds)
	r.markDead()
}

func (r *Remote) markDead() {
	r.deadOnce.Do(func() { close(r.dead) })
}

func (r *Remote) isDead() bool {
	select {
	case <-r.dead:
		return true
	default:
		return false
	}
}

// Dead is closed when the reader is gone (exited, or broke the
// protocol): the front then fails closed.
func (r *Remote) Dead() <-chan struct{} { return r.dead }

// PID returns the reader's pid.
func (r *Remote) PID() int { return r.cmd.Process.Pid }

// Generation returns the policy generation the reader started with.
func (r *Remote) Generation() uint64 { return r.gen }

// ExitStatus waits up to d for the reader to exit and returns how it
// did.
func (r *Remote) ExitStatus(d time.Duration) error {
	select {
	case <-r.exited:
		return r.waitErr
	case <-time.After(d):
		return errors.New("the reader has not exited")
	}
}

func (r *Remote) sendCtl(typ byte, payload []byte, fds ...int) error {
	r.ctlMu.Lock()
	defer r.ctlMu.Unlock()
	if r.isDead() {
		return ErrUnavailable
	}
	r.ctl.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := sendMsg(r.ctl, typ, payload, fds...); err != nil {
		r.markDead()
		return ErrUnavailable
	}
	return nil
}

// exchange sends typ with a fresh reply socket and returns the reply.
func (r *Remote) exchange(typ, want byte, max int, d time.Duration) ([]byte, error) {
	c, far, err := seqpacketPair()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	err = r.sendCtl(typ, nil, far)
	unix.Close(far)
	if err != nil {
		return nil, err
	}
	c.SetReadDeadline(time.Now().Add(d))
	got, p, fds, err := recvMsg(c, max, 0)
	closeFDs(fds)
	if err != nil {
		return nil, ErrUnavailable
	}
	if got != want {
		return nil, fmt.Errorf("%w: reply type", errProtocol)
	}
	return p, nil
}

// WriteMetrics writes the reader's metrics (Prometheus text format).
func (r *Remote) WriteMetrics(w io.Writer) error {
	b, err := r.exchange(msgMetric, msgText, 64<<20, 10*time.Second)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// Reload asks the reader to flush the audit log and reload the policy
// (SIGHUP); an invalid policy leaves the last good one in force. It
// returns the generation in force.
func (r *Remote) Reload() (uint64, error) {
	b, err := r.exchange(msgReload, msgFinal, 16+maxText, 2*time.Minute)
	if err != nil {
		return 0, err
	}
	code, _, gen, text, err := decodeFinal(b)
	if err != nil {
		return 0, err
	}
	if code != codeOK {
		return gen, errors.New(text)
	}
	return gen, nil
}

// Shutdown asks the reader to finish the reads in progress, flush and
// close the audit log and exit, and waits for it (up to d).
func (r *Remote) Shutdown(d time.Duration) error {
	b, err := r.exchange(msgQuit, msgFinal, 16+maxText, d)
	if err == nil {
		var code byte
		var text string
		if code, _, _, text, err = decodeFinal(b); err == nil && code != codeOK {
			err = errors.New(text)
		}
	}
	r.ctl.Close()
	if werr := r.ExitStatus(d); err == nil {
		err = werr
	}
	return err
}

// Reject counts a refusal in the reader's metrics.
func (r *Remote) Reject(reason string) {
	for i, s := range RejectReasons {
		if s == reason {
			r.sendCtl(msgReject, []byte{byte(i + 1)})
			return
		}
	}
}

// Open passes the caller to the reader, which identifies and pins it
// itself: for a socket caller, the reader is passed the connection and
// reads its credentials and pidfd from it (the front's own pidfd is
// closed at once); for a thread caller, the reader resolves the thread
// and checks its ids against the pinned process.
func (r *Remote) Open(id Identity) (Session, error) {
	id.Close()
	if r.isDead() {
		return nil, ErrUnavailable
	}
	ch, far, err := seqpacketPair()
	if err != nil {
		return nil, err
	}
	serr := ErrUnavailable
	switch id.Source {
	case FromSocket:
		if id.Conn == nil {
			unix.Close(far)
			ch.Close()
			return nil, errors.New("privsep: a socket caller without its connection")
		}
		rc, err := id.Conn.SyscallConn()
		if err != nil {
			unix.Close(far)
			ch.Close()
			return nil, err
		}
		if cerr := rc.Control(func(fd uintptr) { serr = r.sendCtl(msgConn, nil, far, int(fd)) }); cerr != nil {
			serr = ErrUnavailable
		}
	case FromThread:
		serr = r.sendCtl(msgThread, encodeThread(id), far)
	default:
		serr = fmt.Errorf("privsep: caller identity of unknown source %v", id.Source)
	}
	unix.Close(far)
	if serr != nil {
		ch.Close()
		return nil, serr
	}
	ch.SetReadDeadline(time.Now().Add(10 * time.Second))
	typ, pl, fds, err := recvMsg(ch, 1+maxText, 0)
	closeFDs(fds)
	if err != nil || typ != msgHello || len(pl) < 1 {
		ch.Close()
		return nil, ErrUnavailable
	}
	if pl[0] != codeOK {
		ch.Close()
		return nil, errors.New(string(pl[1:]))
	}
	if len(pl) > 2 || len(pl) == 2 && pl[1]&^helloPrivileged != 0 {
		ch.Close()
		return nil, ErrUnavailable // the reader broke the protocol
	}
	ch.SetReadDeadline(time.Time{})
	return &remoteSession{r: r, ch: ch, privileged: len(pl) == 2 && pl[1]&helloPrivileged != 0}, nil
}

// remoteSession is one caller's channel to the reader. HTTP/1.1 serves
// one request at a time per connection; mu makes that a rule.
type remoteSession struct {
	r          *Remote
	ch         *net.UnixConn
	mu         sync.Mutex
	broken     bool
	privileged bool
}

func (s *remoteSession) Privileged() bool { return s.privileged }

func (s *remoteSession) Close() { s.ch.Close() }

// Alive does not ask the reader: every operation checks the caller.
func (s *remoteSession) Alive() error {
	if s.r.isDead() {
		return ErrUnavailable
	}
	return nil
}

// fail breaks the session after an error: the channel closes, so the
// reader drops what it was doing for it.
func (s *remoteSession) fail(ctx context.Context, err error) error {
	s.broken = true
	s.ch.Close()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err == nil || errors.Is(err, errEOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, unix.EPIPE) || errors.Is(err, unix.ECONNRESET) || errors.Is(err, errProtocol) {
		return ErrUnavailable
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

func (s *remoteSession) begin(ctx context.Context, typ byte, payload []byte) error {
	if s.broken || s.r.isDead() {
		return ErrUnavailable
	}
	s.ch.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := sendMsg(s.ch, typ, payload); err != nil {
		return s.fail(ctx, err)
	}
	return nil
}

func (s *remoteSession) Generation() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin(context.Background(), msgVersion, nil); err != nil {
		return 0, err
	}
	s.ch.SetReadDeadline(time.Now().Add(30 * time.Second))
	typ, p, _, err := recvMsg(s.ch, 16+maxText, 0)
	if err != nil || typ != msgFinal {
		return 0, s.fail(context.Background(), err)
	}
	code, _, gen, text, err := decodeFinal(p)
	if err != nil {
		return 0, s.fail(context.Background(), err)
	}
	return gen, finalError(code, text)
}

func (s *remoteSession) Whoami() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin(context.Background(), msgWhoami, nil); err != nil {
		return nil, err
	}
	s.ch.SetReadDeadline(time.Now().Add(30 * time.Second))
	typ, p, _, err := recvMsg(s.ch, 1<<20, 0)
	switch {
	case err != nil:
		return nil, s.fail(context.Background(), err)
	case typ == msgText:
		return p, nil
	case typ == msgFinal:
		code, _, _, text, err := decodeFinal(p)
		if err != nil || code == codeOK {
			return nil, s.fail(context.Background(), err)
		}
		return nil, finalError(code, text)
	}
	return nil, s.fail(context.Background(), nil)
}

func (s *remoteSession) Read(ctx context.Context, req *gate.Request, emit func([]byte) error) (int, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin(ctx, msgRead, encodeRequest(req)); err != nil {
		return 0, 0, err
	}
	s.ch.SetReadDeadline(time.Time{})
	// The client going away ends the wait; so does the reader's exit
	// (the channel then reads EOF).
	stop := context.AfterFunc(ctx, func() { s.ch.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	for {
		typ, p, _, err := recvMsg(s.ch, maxPacket, 0)
		if err != nil {
			return 0, 0, s.fail(ctx, err)
		}
		switch typ {
		case msgData:
			if err := emit(p); err != nil {
				s.fail(ctx, nil)
				return 0, 0, err
			}
		case msgFinal, msgLast:
			final, data := p, []byte(nil)
			if typ == msgLast { // [final length][final][the last data]
				if len(p) < 2 || int(binary.LittleEndian.Uint16(p))+2 > len(p) {
					return 0, 0, s.fail(ctx, fmt.Errorf("%w: last message", errProtocol))
				}
				fl := int(binary.LittleEndian.Uint16(p))
				final, data = p[2:2+fl], p[2+fl:]
			}
			code, n, gen, text, err := decodeFinal(final)
			if err != nil {
				return 0, 0, s.fail(ctx, err)
			}
			if len(data) > 0 {
				if err := emit(data); err != nil {
					s.fail(ctx, nil)
					return 0, 0, err
				}
			}
			return n, gen, finalError(code, text)
		default:
			return 0, 0, s.fail(ctx, nil)
		}
	}
}
