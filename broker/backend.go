package broker

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"time"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/gate"
)

// Backend is what the HTTP side of the broker asks for each connection:
// the gate itself (in-process mode, [Local]) or the privilege-separated
// reader process ([Remote]). The HTTP code in server.go is the same for
// both.
type Backend interface {
	// Open identifies the caller of a newly accepted connection c, whose
	// peer credentials the front read as p. Open owns p.PidFD (it closes
	// it or hands it on). The returned session lives as long as c.
	Open(c *net.UnixConn, p Peer) (Session, error)
	// Reject counts a request refused by the front (reason is one of
	// "per_uid_limit", "bad_request", "too_large").
	Reject(reason string)
}

// Session is one identified caller.
type Session interface {
	// Alive returns nil while the caller may still be alive. Backends
	// that cannot tell cheaply return nil and check again in every
	// operation (which then fails with gate.ErrCallerGone).
	Alive() error
	// Generation returns the policy generation in force.
	Generation() (uint64, error)
	// Whoami returns the caller as the policy sees it, as one JSON object.
	Whoami() ([]byte, error)
	// Read answers req: emit receives the encoded JSON lines (one or
	// more complete lines, valid only during the call). It returns the
	// number of processes answered and the policy generation that
	// decided them. Errors: gate.ErrCallerGone, errors wrapping
	// unix.EAGAIN (the caller changed), ErrUnavailable (the reader is
	// gone), emit's error, ctx's error, or others (internal).
	Read(ctx context.Context, req *gate.Request, emit func([]byte) error) (n int, gen uint64, err error)
	// Close releases the session (the caller's pin).
	Close()
}

// ErrUnavailable reports that the privileged reader is gone: the front
// answers 503 and fails closed.
var ErrUnavailable = errors.New("broker: the privileged reader is unavailable")

// Local is the in-process backend: the gate runs in the process that
// parses HTTP (procgate serve --no-privsep, and tests).
type Local struct{ G *gate.Gate }

// Open pins the caller through the gate.
func (l Local) Open(_ *net.UnixConn, p Peer) (Session, error) {
	c, err := l.G.NewCaller(p.PID, p.PidFD, p.UID, p.GID, p.Label)
	if err != nil {
		return nil, err
	}
	return &localSession{g: l.G, c: c, pinned: p.PidFD >= 0}, nil
}

// Reject counts the refusal in procgate_rejected_total.
func (l Local) Reject(reason string) {
	l.G.Metrics().Counter(`procgate_rejected_total{reason="` + reason + `"}`).Add(1)
}

type localSession struct {
	g      *gate.Gate
	c      *gate.Caller
	pinned bool
}

func (s *localSession) Alive() error                { return s.c.Alive() }
func (s *localSession) Generation() (uint64, error) { return s.g.Policy().Generation(), nil }
func (s *localSession) Close()                      { s.c.Close() }
func (s *localSession) Whoami() ([]byte, error)     { return whoamiJSON(s.c, s.pinned) }

func (s *localSession) Read(ctx context.Context, req *gate.Request, emit func([]byte) error) (int, uint64, error) {
	start := time.Now()
	n, gen, err := readLines(ctx, s.g, s.c, req, 0, emit)
	if err == nil {
		s.g.Metrics().ObserveRequest(time.Since(start))
	}
	return n, gen, err
}

// readLines runs one gate read and passes the encoded lines to emit:
// each line at once when batch is 0, else in batches of about batch
// bytes (the rest, even after an error, before returning).
func readLines(ctx context.Context, g *gate.Gate, c *gate.Caller, req *gate.Request, batch int, emit func([]byte) error) (int, uint64, error) {
	n := 0
	var buf []byte
	var emitErr error
	err := g.Read(ctx, c, req)(func(pr *gate.ProcResult) error {
		n++
		buf = pr.AppendJSON(buf)
		buf = append(buf, '\n')
		if len(buf) >= batch {
			emitErr = emit(buf)
			buf = buf[:0]
			return emitErr
		}
		return nil
	})
	if len(buf) > 0 && emitErr == nil {
		if e := emit(buf); err == nil {
			err = e
		}
	}
	return n, g.Policy().Generation(), err
}

// whoamiJSON is the /v1/whoami object.
func whoamiJSON(c *gate.Caller, pinned bool) ([]byte, error) {
	sub := c.Subject()
	return json.Marshal(map[string]any{
		"pid": sub.PID, "uid": sub.UID, "gid": sub.GID, "groups": sub.Groups, "comm": sub.Comm,
		"selinux": sub.SELinux, "apparmor": sub.AppArmor,
		"exe":    map[string]any{"path": sub.Exe.Path, "dev": sub.Exe.Dev, "ino": sub.Exe.Ino},
		"cgroup": sub.Cgroup, "pidns": sub.PIDNS, "pidfd_pinned": pinned,
	})
}

// closeFD closes fd when it is valid.
func closeFD(fd int) {
	if fd >= 0 {
		unix.Close(fd)
	}
}
