package privsep

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"time"

	"github.com/procgate/procgate/gate"
	"github.com/procgate/procgate/policy"
)

// Backend answers a front's callers: the gate itself ([Local], procgate
// serve --no-privsep and tests) or the privilege-separated reader process
// ([Remote], the default). Fronts — the HTTP broker, the FUSE /proc —
// are written once against it.
type Backend interface {
	// Open identifies and pins the caller id. It owns id.PidFD (it
	// closes it or hands it on). The session lives as long as the
	// front's connection or handle.
	Open(id Identity) (Session, error)
	// Reject counts a request refused by the front; reason is one of
	// [RejectReasons].
	Reject(reason string)
}

// RejectReasons are the reasons a front may give [Backend.Reject]:
// procgate_rejected_total's reason label.
// (unidentified: a FUSE request whose thread could not be pinned, or
// whose ids no longer match it).
var RejectReasons = []string{"per_uid_limit", "bad_request", "too_large", "too_many_connections", "unidentified"}

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
	// Privileged reports whether the caller may use the capacity kept
	// for privileged callers (Limits.Reserve): it is root, or the policy
	// in force when it was identified singles it out.
	Privileged() bool
	// Read answers req: emit receives the encoded JSON lines (or, with
	// req.Binary, binary records: gate.DecodeRecords), valid only during
	// the call. A privilege-separated backend may cut a line or record
	// across two calls; a front that decodes concatenates them. It returns the
	// number of processes answered and the policy generation that
	// decided them. Errors: gate.ErrCallerGone, errors wrapping
	// unix.EAGAIN (the caller changed), ErrUnavailable (the reader is
	// gone), emit's error, ctx's error, or others (internal).
	Read(ctx context.Context, req *gate.Request, emit func([]byte) error) (n int, gen uint64, err error)
	// Close releases the session (the caller's pin).
	Close()
}

// ErrUnavailable reports that the privileged reader is gone: the front
// answers that the service is unavailable and fails closed.
var ErrUnavailable = errors.New("privsep: the privileged reader is unavailable")

// Local is the in-process backend: the gate runs in the process of the
// front (procgate serve --no-privsep, and tests).
type Local struct {
	g        *gate.Gate
	sessions atomic.Int64
	active   atomic.Int64
}

// NewLocal returns the in-process backend of g and registers its gauges
// (procgate_connections, procgate_requests_in_flight) in g's metrics.
func NewLocal(g *gate.Gate) *Local {
	l := &Local{g: g}
	registerGauges(g, &l.sessions, &l.active)
	return l
}

// registerGauges exports a backend's open sessions and reads in
// progress.
func registerGauges(g *gate.Gate, sessions, active *atomic.Int64) {
	g.Metrics().Gauge("procgate_connections", func() float64 { return float64(sessions.Load()) })
	g.Metrics().Gauge("procgate_requests_in_flight", func() float64 { return float64(active.Load()) })
}

// Gate returns the backend's gate.
func (l *Local) Gate() *gate.Gate { return l.g }

// Open pins the caller through the gate.
func (l *Local) Open(id Identity) (Session, error) {
	pinned := id.PidFD >= 0
	c, err := newCaller(l.g, &id)
	if err != nil {
		return nil, err
	}
	l.sessions.Add(1)
	return &localSession{l: l, c: c, pinned: pinned, source: id.Source, privileged: privileged(l.g, c)}, nil
}

// Reject counts the refusal in procgate_rejected_total.
func (l *Local) Reject(reason string) { countReject(l.g, reason) }

// countReject counts a front's refusal; an unknown reason is not
// counted (it would make an unbounded label).
func countReject(g *gate.Gate, reason string) {
	for _, r := range RejectReasons {
		if r == reason {
			g.Metrics().Counter(`procgate_rejected_total{reason="` + reason + `"}`).Add(1)
			return
		}
	}
}

type localSession struct {
	l          *Local
	c          *gate.Caller
	pinned     bool
	source     Source
	privileged bool
	closed     atomic.Bool
}

func (s *localSession) Privileged() bool { return s.privileged }

// privileged reports whether caller c may use reserved capacity: root
// (its effective uid as identified), or a caller the policy in force
// singles out (policy.Policy.SinglesOut).
func privileged(g *gate.Gate, c *gate.Caller) bool {
	sub := c.Subject()
	if sub.UID == 0 {
		return true
	}
	p, ok := g.Policy().(interface{ SinglesOut(*policy.Subject) bool })
	return ok && p.SinglesOut(&sub)
}

func (s *localSession) Alive() error                { return s.c.Alive() }
func (s *localSession) Generation() (uint64, error) { return s.l.g.Policy().Generation(), nil }
func (s *localSession) Whoami() ([]byte, error)     { return whoamiJSON(s.c, s.pinned, s.source) }

func (s *localSession) Close() {
	if s.closed.CompareAndSwap(false, true) {
		s.c.Close()
		s.l.sessions.Add(-1)
	}
}

func (s *localSession) Read(ctx context.Context, req *gate.Request, emit func([]byte) error) (int, uint64, error) {
	s.l.active.Add(1)
	defer s.l.active.Add(-1)
	start := time.Now()
	n, gen, err := readLines(ctx, s.l.g, s.c, req, 0, emit)
	if err == nil {
		s.l.g.Metrics().ObserveRequest(time.Since(start))
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
		if req.Binary {
			buf = pr.AppendBinary(buf)
		} else {
			buf = pr.AppendJSON(buf)
			buf = append(buf, '\n')
		}
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

// whoamiJSON is the /v1/whoami object: the caller as the policy sees it,
// named by its own pid namespace's pid.
func whoamiJSON(c *gate.Caller, pinned bool, source Source) ([]byte, error) {
	sub := c.Subject()
	m := map[string]any{
		"pid": c.OwnPID(), "uid": sub.UID, "gid": sub.GID, "groups": sub.Groups, "comm": sub.Comm,
		"selinux": sub.SELinux, "apparmor": sub.AppArmor,
		"exe":    map[string]any{"path": sub.Exe.Path, "dev": sub.Exe.Dev, "ino": sub.Exe.Ino},
		"cgroup": sub.Cgroup, "pidns": sub.PIDNS, "pidfd_pinned": pinned, "identified_by": source.String(),
	}
	if tid := c.OwnTID(); tid != 0 {
		m["tid"] = tid // a caller known by its thread (FUSE)
	}
	return json.Marshal(m)
}
