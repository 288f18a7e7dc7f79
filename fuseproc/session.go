package fuseproc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/gate"
	"github.com/procgate/procgate/privsep"
)

// sessionTTL is how long a calling thread's session is reused before it
// is opened again (and its identity read again): a caller that changes
// its groups or capabilities without changing its filesystem ids is
// seen with its old identity for at most this long.
const sessionTTL = time.Second

// maxSessions bounds the sessions kept; the least recently used idle
// one is closed to make room (it is opened again when needed).
const maxSessions = 4096

// callerKey is what a FUSE request says of its caller.
type callerKey struct {
	tid      uint32
	uid, gid uint32
}

// session is one calling thread's core session.
type session struct {
	key    callerKey
	s      privsep.Session
	opened time.Time
	used   time.Time
	refs   int
	closed bool
	// ownPID, ownTID and pidns are the caller's pid and thread id as its
	// own pid namespace numbers them, and that namespace's inode (from
	// whoami).
	ownPID int
	ownTID int
	pidns  uint64
	// seen caches, for this session's life (sessionTTL), the processes
	// its caller was found to see: a listing or a lookup answers the
	// lookups that follow (ps lists /proc, then looks up every pid)
	// without asking the core again. Opens always ask.
	seenMu sync.Mutex
	seen   map[int]seenProc
}

// seenProc is a process a caller sees: its start time, its identity
// (gate.ProcResult.ID) and its owner.
type seenProc struct {
	start, id          uint64
	ownerUID, ownerGID uint32
}

func (s *session) lookSeen(pid int) (seenProc, bool) {
	s.seenMu.Lock()
	defer s.seenMu.Unlock()
	p, ok := s.seen[pid]
	return p, ok
}

func (s *session) remember(rs []gate.ProcResult) {
	s.seenMu.Lock()
	defer s.seenMu.Unlock()
	if s.seen == nil {
		s.seen = make(map[int]seenProc, len(rs))
	}
	for i := range rs {
		s.seen[rs[i].PID] = seenOf(&rs[i])
	}
}

// seenOf returns what a session remembers of a process answered in r.
func seenOf(r *gate.ProcResult) seenProc {
	return seenProc{start: r.Start, id: r.ID, ownerUID: r.OwnerUID, ownerGID: r.OwnerGID}
}

// sessions keeps the calling threads' sessions.
type sessions struct {
	be privsep.Backend
	mu sync.Mutex
	m  map[callerKey]*session
	// inflight counts the core requests in progress (drained at
	// shutdown).
	inflight sync.WaitGroup
	log      *slog.Logger
	// refused counts the refusals since loggedAt.
	refused  int
	loggedAt time.Time
}

func newSessions(be privsep.Backend, log *slog.Logger) *sessions {
	return &sessions{be: be, log: log, m: make(map[callerKey]*session)}
}

// errNoCaller refuses a request without a caller the daemon's pid
// namespace can see (the kernel sent pid 0).
var errNoCaller = fmt.Errorf("fuseproc: the caller's pid is not visible in the daemon's pid namespace: %w", unix.EACCES)

// get returns the session of the caller of ctx's request, opening one
// when it has none or its own is too old. The caller must put it.
func (ss *sessions) get(ctx context.Context) (*session, error) {
	c, ok := fuse.FromContext(ctx)
	if !ok {
		return nil, errNoCaller
	}
	if c.Pid == 0 {
		return nil, ss.refuse(callerKey{uid: c.Uid, gid: c.Gid}, errNoCaller)
	}
	k := callerKey{tid: c.Pid, uid: c.Uid, gid: c.Gid}
	now := time.Now()
	ss.mu.Lock()
	if s := ss.m[k]; s != nil && now.Sub(s.opened) < sessionTTL {
		s.refs++
		s.used = now
		ss.mu.Unlock()
		return s, nil
	}
	ss.mu.Unlock()
	s, err := ss.open(k)
	if err != nil {
		return nil, ss.refuse(k, err)
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if old := ss.m[k]; old != nil {
		ss.dropLocked(old)
	}
	if len(ss.m) >= maxSessions {
		ss.evictLocked()
	}
	ss.m[k] = s
	s.refs++
	return s, nil
}

// open opens the core session of caller k: the backend resolves the
// thread to its process, pins it and checks the ids.
func (ss *sessions) open(k callerKey) (*session, error) {
	cs, err := ss.be.Open(privsep.Identity{Source: privsep.FromThread, PID: int(k.tid), PidFD: -1, UID: k.uid, GID: k.gid})
	if err != nil {
		return nil, err
	}
	b, err := cs.Whoami()
	var who struct {
		PID   int    `json:"pid"`
		TID   int    `json:"tid"`
		PIDNS uint64 `json:"pidns"`
	}
	if err == nil {
		err = json.Unmarshal(b, &who)
	}
	if err != nil {
		cs.Close()
		return nil, fmt.Errorf("fuseproc: caller thread %d: %w", k.tid, err)
	}
	now := time.Now()
	return &session{key: k, s: cs, opened: now, used: now, ownPID: who.PID, ownTID: who.TID, pidns: who.PIDNS}, nil
}

// refuse answers a caller that could not be identified: EACCES (fail
// closed), counted in procgate_rejected_total{reason="unidentified"} and
// logged, at most once a second with the number of refusals since (a
// caller could make them as fast as it makes requests). An unavailable
// reader stays EIO.
func (ss *sessions) refuse(k callerKey, err error) error {
	if errors.Is(err, privsep.ErrUnavailable) {
		return err
	}
	ss.be.Reject("unidentified")
	now := time.Now()
	ss.mu.Lock()
	ss.refused++
	n := ss.refused
	log := now.Sub(ss.loggedAt) >= time.Second
	if log {
		ss.loggedAt, ss.refused = now, 0
	}
	ss.mu.Unlock()
	if log && ss.log != nil {
		ss.log.Warn("refused a caller that could not be identified", "tid", k.tid, "uid", k.uid, "gid", k.gid, "err", err, "refusals", n)
	}
	if errors.Is(err, unix.EACCES) {
		return fmt.Errorf("fuseproc: caller thread %d: %w", k.tid, err)
	}
	return fmt.Errorf("fuseproc: caller thread %d: %w: %w", k.tid, err, unix.EACCES)
}

// put releases a session got from get.
func (ss *sessions) put(s *session) {
	ss.mu.Lock()
	s.refs--
	if s.refs == 0 && s.closed {
		s.s.Close()
	}
	ss.mu.Unlock()
}

// drop forgets s (its caller is gone); it closes once unused.
func (ss *sessions) drop(s *session) {
	ss.mu.Lock()
	if ss.m[s.key] == s {
		ss.dropLocked(s)
	}
	ss.mu.Unlock()
}

func (ss *sessions) dropLocked(s *session) {
	delete(ss.m, s.key)
	s.closed = true
	if s.refs == 0 {
		s.s.Close()
	}
}

// evictLocked drops every session older than its time to live and, if
// that made no room, the least recently used one.
func (ss *sessions) evictLocked() {
	ss.dropExpiredLocked(time.Now())
	if len(ss.m) < maxSessions {
		return
	}
	var lru *session
	for _, s := range ss.m {
		if lru == nil || s.used.Before(lru.used) {
			lru = s
		}
	}
	ss.dropLocked(lru)
}

// dropExpiredLocked drops the sessions older than their time to live.
func (ss *sessions) dropExpiredLocked(now time.Time) {
	for _, s := range ss.m {
		if now.Sub(s.opened) >= sessionTTL {
			ss.dropLocked(s)
		}
	}
}

// closeAll closes every session (at shutdown).
func (ss *sessions) closeAll() {
	ss.mu.Lock()
	for _, s := range ss.m {
		ss.dropLocked(s)
	}
	ss.mu.Unlock()
}

// sweep closes the sessions past their time to live; it runs until ctx
// ends.
func (ss *sessions) sweep(ctx context.Context) {
	t := time.NewTicker(sessionTTL)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ss.mu.Lock()
		ss.dropExpiredLocked(time.Now())
		ss.mu.Unlock()
	}
}

// read answers one request for the caller of ctx: the binary records,
// decoded. A caller whose session finds it gone (its process exited, or
// its thread id now names another process) is opened once again.
func (ss *sessions) read(ctx context.Context, req *gate.Request) (*session, []gate.ProcResult, error) {
	ss.inflight.Add(1)
	defer ss.inflight.Done()
	req.Binary = true
	for attempt := 0; ; attempt++ {
		s, err := ss.get(ctx)
		if err != nil {
			return nil, nil, err
		}
		var buf []byte
		_, _, err = s.s.Read(ctx, req, func(b []byte) error {
			buf = append(buf, b...)
			return nil
		})
		ss.put(s)
		if err != nil {
			switch {
			case ctx.Err() != nil:
				// The kernel interrupted the request (the caller got a
				// signal): the session's channel was closed mid-answer.
				ss.drop(s)
				return s, nil, err
			case attempt == 0 && (errors.Is(err, gate.ErrCallerGone) || errors.Is(err, unix.EAGAIN) || errors.Is(err, privsep.ErrUnavailable)):
				// The caller's thread id now names another process, or
				// the session broke: open a new one, once. (A reader
				// that is gone fails the new one too.)
				ss.drop(s)
				continue
			}
			return s, nil, err
		}
		var out []gate.ProcResult
		err = gate.DecodeRecords(buf, func(r *gate.ProcResult) error {
			out = append(out, *r)
			return nil
		})
		return s, out, err
	}
}

// errnoOf returns the errno that answers err to a FUSE caller: the
// error's own errno where it has one (ESRCH becomes ENOENT, as for a
// /proc entry whose process is gone), EACCES for an unidentified caller,
// EINTR for an interrupted request and EIO otherwise.
func errnoOf(err error) syscall.Errno {
	var e syscall.Errno
	switch {
	case err == nil:
		return 0
	case errors.Is(err, context.Canceled):
		return unix.EINTR // an interrupted request
	case errors.Is(err, privsep.ErrUnavailable):
		return unix.EIO
	case errors.Is(err, unix.EACCES):
		return unix.EACCES // a refused caller, whatever the cause
	case errors.As(err, &e):
		if e == unix.ESRCH {
			return unix.ENOENT
		}
		return e
	}
	return unix.EIO
}
