package privsep

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/gate"
)

// The reader role: procgate serve re-executes its own binary with these
// variables and the control socket as descriptor 3.
const (
	envRole         = "PROCGATE_BROKER_ROLE"
	envReaderConfig = "PROCGATE_READER_CONFIG"
	roleReader      = "reader"
	readerCtlFD     = 3
)

// RunReaderIfRequested runs the privileged reader and exits when this
// process was started as one by [StartReader] (privilege separation);
// otherwise it returns at once. Call it first thing in main.
func RunReaderIfRequested() {
	if os.Getenv(envRole) != roleReader {
		return
	}
	os.Exit(runReader())
}

// reader is the privileged half of the daemon: it owns the gate, the
// audit log and the metrics, and answers the front over socket pairs.
// Everything the front sends is untrusted: the front parses the
// callers' input and could be compromised.
type reader struct {
	g        *gate.Gate
	aud      *gate.Auditor
	log      *slog.Logger
	cfg      GateConfig
	ctl      *net.UnixConn
	front    int // the front's pid: never a caller
	sessions atomic.Int64
	active   atomic.Int64
	reloadMu sync.Mutex
	quitOnce sync.Once
}

func runReader() int {
	raw := os.Getenv(envReaderConfig)
	os.Unsetenv(envRole)
	os.Unsetenv(envReaderConfig)
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("role", "reader")
	// The front relays SIGHUP and SIGTERM; a signal to the whole group
	// (systemd's control-group kill, ^C) must not stop the reader before
	// the front has drained.
	signal.Ignore(unix.SIGHUP, unix.SIGTERM, unix.SIGINT, unix.SIGPIPE)
	ctl, err := connFromFD(readerCtlFD, "control")
	if err != nil {
		log.Error("not started by procgate serve: no control socket", "err", err)
		return 2
	}
	fail := func(err error) int {
		sendMsg(ctl, msgReady, encodeFinal(codeInternal, 0, 0, err.Error()))
		return 2
	}
	var cfg GateConfig
	dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return fail(fmt.Errorf("reader configuration: %w", err))
	}
	if cfg.MemoryLimit > 0 && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(cfg.MemoryLimit)
	}
	if !cfg.KeepPrivileges && (cfg.Reader.UID == 0 || cfg.Reader.GID == 0) {
		return fail(errors.New("reader configuration: no unprivileged user to become"))
	}
	if cfg.AuditFD > 0 {
		cfg.AuditFile = os.NewFile(uintptr(cfg.AuditFD), cfg.AuditLog)
	}
	cfg.Protect = []int{os.Getppid()} // the front
	if !cfg.KeepPrivileges {
		// Every mount read-only: the audit log was opened by the front, in
		// its mount namespace, and is written through the descriptor.
		if err := ConfineMounts(); err != nil {
			log.Warn("the reader's mounts stay writable", "err", err)
		} else {
			log.Info("reader confined", "mounts", "read-only")
		}
	}
	g, aud, err := OpenGate(cfg, log)
	if err != nil {
		return fail(err)
	}
	if !cfg.KeepPrivileges {
		if err := confineReader(cfg, g); err != nil {
			return fail(err)
		}
	}
	r := &reader{g: g, aud: aud, log: log, cfg: cfg, ctl: ctl, front: os.Getppid()}
	g.Metrics().Gauge("procgate_connections", func() float64 { return float64(r.sessions.Load()) })
	g.Metrics().Gauge("procgate_requests_in_flight", func() float64 { return float64(r.active.Load()) })
	if err := sendMsg(ctl, msgReady, encodeFinal(codeOK, 0, g.Policy().Generation(), "")); err != nil {
		log.Error("front unreachable", "err", err)
		return 1
	}
	return r.loop()
}

// confineReader confines the reader (ConfineReader): it may write to
// standard error and the audit log, and read memory only when the policy
// has an attach rule.
func confineReader(cfg GateConfig, g *gate.Gate) error {
	fds := []int{2}
	if cfg.AuditFile != nil {
		fds = append(fds, int(cfg.AuditFile.Fd()))
	}
	ga, ok := g.Policy().(interface{ GrantsAttach() bool })
	return ConfineReader(cfg.Reader, fds, ok && ga.GrantsAttach())
}

// loop serves the control socket until the front asks to quit (0) or
// goes away (1), or breaks the protocol (2).
func (r *reader) loop() int {
	for {
		typ, p, fds, err := recvMsg(r.ctl, 16, maxFDs)
		if err != nil {
			if errors.Is(err, errProtocol) {
				r.log.Error("invalid message from the front; stopping", "err", err)
				r.finish(5 * time.Second)
				return 2
			}
			r.log.Warn("the front exited; stopping", "err", err)
			r.finish(5 * time.Second)
			return 1
		}
		if !validControl(typ, p, fds) {
			closeFDs(fds)
			r.log.Error("invalid message from the front; stopping", "type", typ)
			r.finish(5 * time.Second)
			return 2
		}
		switch typ {
		case msgConn:
			go r.session(fds[0], func() (Identity, error) { return identityOfConn(fds[1]) })
		case msgThread:
			id := decodeThread(p)
			go r.session(fds[0], func() (Identity, error) { return id, nil })
		case msgReject:
			countReject(r.g, RejectReasons[p[0]-1])
		case msgMetric:
			go r.reply(fds[0], func() []byte {
				var b bytes.Buffer
				r.g.Metrics().WriteTo(&b)
				return b.Bytes()
			}, msgText)
		case msgReload:
			go r.reply(fds[0], func() []byte {
				r.reloadMu.Lock()
				defer r.reloadMu.Unlock()
				gen, err := Reload(r.log, r.g, r.aud, r.cfg.Policy)
				if err != nil {
					return encodeFinal(codeInternal, 0, gen, err.Error())
				}
				return encodeFinal(codeOK, 0, gen, "")
			}, msgFinal)
		case msgQuit:
			fd := fds[0]
			r.reply(fd, func() []byte {
				if err := r.finish(30 * time.Second); err != nil {
					return encodeFinal(codeInternal, 0, 0, err.Error())
				}
				return encodeFinal(codeOK, 0, 0, "")
			}, msgFinal)
			return 0
		}
	}
}

// reply answers on a one-shot reply socket.
func (r *reader) reply(fd int, f func() []byte, typ byte) {
	c, err := connFromFD(fd, "reply")
	if err != nil {
		r.log.Error("invalid reply socket from the front", "err", err)
		return
	}
	defer c.Close()
	c.SetWriteDeadline(time.Now().Add(30 * time.Second))
	sendMsg(c, typ, f())
}

// finish waits (up to d) for the reads in progress, then flushes and
// closes the audit log. It runs once.
func (r *reader) finish(d time.Duration) error {
	var err error
	r.quitOnce.Do(func() {
		deadline := time.Now().Add(d)
		for r.active.Load() > 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		err = r.aud.Close()
	})
	return err
}

// session identifies a caller and answers the front's requests for it
// until the channel closes. ident derives the identity from what the
// reader can check itself: the peer credentials of the client connection
// the front passed (the front's word is not taken for them), or a
// thread id with its ids, which newCaller resolves and verifies against
// the pinned process.
func (r *reader) session(chFD int, ident func() (Identity, error)) {
	ch, err := connFromFD(chFD, "session")
	if err != nil {
		if id, err := ident(); err == nil {
			id.Close()
		}
		r.log.Error("invalid session socket from the front", "err", err)
		return
	}
	defer ch.Close()
	ch.SetWriteDeadline(time.Now().Add(10 * time.Second))
	hello := func(code byte, text string) error {
		if len(text) > maxText {
			text = text[:maxText]
		}
		return sendMsg(ch, msgHello, append([]byte{code}, text...))
	}
	id, err := ident()
	if err != nil {
		hello(codeIdent, err.Error())
		return
	}
	if id.PID == r.front || id.PID == os.Getpid() {
		id.Close()
		hello(codeIdent, "the daemon itself cannot be a caller")
		return
	}
	pinned := id.PidFD >= 0
	caller, err := newCaller(r.g, &id)
	if err != nil {
		hello(codeIdent, err.Error())
		return
	}
	defer caller.Close()
	r.sessions.Add(1)
	defer r.sessions.Add(-1)
	flags := ""
	if privileged(r.g, caller) {
		flags = string(rune(helloPrivileged))
	}
	if hello(codeOK, flags) != nil {
		return
	}
	ch.SetWriteDeadline(time.Time{})
	for {
		typ, p, _, err := recvMsg(ch, maxRequestMsg, 0)
		if err != nil {
			if errors.Is(err, errProtocol) {
				r.log.Error("invalid message from the front; closing the session", "err", err)
			}
			return
		}
		switch {
		case typ == msgVersion && len(p) == 0:
			code := byte(codeOK)
			if caller.Alive() != nil {
				code = codeGone
			}
			err = sendMsg(ch, msgFinal, encodeFinal(code, 0, r.g.Policy().Generation(), ""))
		case typ == msgWhoami && len(p) == 0:
			if caller.Alive() != nil {
				err = sendMsg(ch, msgFinal, encodeFinal(codeGone, 0, 0, ""))
				break
			}
			b, _ := whoamiJSON(caller, pinned, id.Source)
			err = sendMsg(ch, msgText, b)
		case typ == msgRead:
			req, derr := decodeRequest(p)
			if derr != nil {
				r.log.Error("invalid request from the front; closing the session", "err", derr)
				return
			}
			err = r.read(ch, caller, req)
		default:
			r.log.Error("invalid message from the front; closing the session", "type", typ)
			return
		}
		if err != nil {
			return // the channel is broken
		}
	}
}

// read answers one request: data messages, then the final status. A
// failed send (the front dropped the request) cancels the read.
func (r *reader) read(ch *net.UnixConn, caller *gate.Caller, req *gate.Request) error {
	r.active.Add(1)
	defer r.active.Add(-1)
	start := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The last batch is held back: when it fits in one packet with the
	// final status, both go in one message (msgLast), which saves a
	// send, a receive and a wake-up per request — most requests of the
	// FUSE front are one process and one item.
	var pending []byte
	var sendErr error
	flush := func() {
		for len(pending) > 0 && sendErr == nil {
			k := min(len(pending), maxPacket)
			sendErr = sendMsg(ch, msgData, pending[:k])
			pending = pending[k:]
		}
	}
	n, gen, err := readLines(ctx, r.g, caller, req, 32<<10, func(b []byte) error {
		flush()
		pending = append(pending[:0], b...) // b is valid only during the call
		return sendErr
	})
	if sendErr != nil {
		return sendErr
	}
	text := ""
	if err != nil {
		text = err.Error()
	} else {
		r.g.Metrics().ObserveRequest(time.Since(start))
	}
	final := encodeFinal(codeOf(err), n, gen, text)
	if 2+len(final)+len(pending) <= maxPacket {
		msg := make([]byte, 0, 2+len(final)+len(pending))
		msg = binary.LittleEndian.AppendUint16(msg, uint16(len(final)))
		msg = append(append(msg, final...), pending...)
		return sendMsg(ch, msgLast, msg)
	}
	if flush(); sendErr != nil {
		return sendErr
	}
	return sendMsg(ch, msgFinal, final)
}

// identityOfConn reads the peer credentials of a client connection
// passed by the front, after checking that it is a connected Unix stream
// socket. It takes fd.
func identityOfConn(fd int) (Identity, error) {
	defer unix.Close(fd)
	if err := checkSocket(fd, unix.SOCK_STREAM); err != nil {
		return Identity{PidFD: -1}, err
	}
	id := Identity{Source: FromSocket, PidFD: -1}
	if err := peerOfFD(fd, &id); err != nil {
		id.Close()
		return id, fmt.Errorf("privsep: client connection: %w", err)
	}
	if id.PID <= 0 {
		id.Close()
		return id, fmt.Errorf("privsep: the peer's pid is not visible in this pid namespace: %w", unix.ESRCH)
	}
	return id, nil
}
