package privsep

import (
	"sync"
)

// Bounds of one request, the same for every front and checked again by
// the reader (a compromised front cannot send more).
const (
	// MaxPIDs is the most processes one request may name.
	MaxPIDs = 65536
	// MaxItems is the most items one request may name.
	MaxItems = 64
	// MaxMemRanges is the most mem ranges one request may name.
	MaxMemRanges = 64
	// MaxPID is the largest pid: the kernel's PID_MAX_LIMIT
	// (include/linux/threads.h, 4M on 64-bit).
	MaxPID = 1 << 22
)

// Limits bound what callers may hold at once.
type Limits struct {
	// MaxConns bounds open connections (default 4096); MaxConnsPerUID
	// bounds those of one uid (default 1024).
	MaxConns, MaxConnsPerUID int
	// MaxRequestsPerUID bounds the requests of one uid in progress at
	// once (default 64).
	MaxRequestsPerUID int
}

// withDefaults fills unset limits.
func (l Limits) withDefaults() Limits {
	if l.MaxConns <= 0 {
		l.MaxConns = 4096
	}
	if l.MaxConnsPerUID <= 0 {
		l.MaxConnsPerUID = 1024
	}
	if l.MaxRequestsPerUID <= 0 {
		l.MaxRequestsPerUID = 64
	}
	return l
}

// Limiter applies [Limits] for a front: a bounded number of open
// connections (or handles), of them per uid, and of requests in progress
// per uid. It is safe for concurrent use.
type Limiter struct {
	lim   Limits
	conns chan struct{}
	mu    sync.Mutex
	uids  map[uint32]*uidState
}

type uidState struct {
	conns int
	reqs  int
}

// NewLimiter returns a limiter for lim (zero fields take their
// defaults).
func NewLimiter(lim Limits) *Limiter {
	lim = lim.withDefaults()
	return &Limiter{lim: lim, conns: make(chan struct{}, lim.MaxConns), uids: map[uint32]*uidState{}}
}

// Limits returns the limits in force.
func (l *Limiter) Limits() Limits { return l.lim }

// WaitConn waits for a free connection slot; ReleaseConn returns it.
func (l *Limiter) WaitConn() { l.conns <- struct{}{} }

// ReleaseConn returns a slot taken by WaitConn.
func (l *Limiter) ReleaseConn() { <-l.conns }

// Conns returns the number of connection slots in use.
func (l *Limiter) Conns() int { return len(l.conns) }

// AdmitUID counts a new connection of uid, or reports false when uid
// holds its maximum already. Each admitted connection is released with
// ReleaseUID.
func (l *Limiter) AdmitUID(uid uint32) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.uids[uid]
	if st == nil {
		st = &uidState{}
		l.uids[uid] = st
	}
	if st.conns >= l.lim.MaxConnsPerUID {
		return false
	}
	st.conns++
	return true
}

// ReleaseUID releases a connection admitted by AdmitUID.
func (l *Limiter) ReleaseUID(uid uint32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if st := l.uids[uid]; st != nil {
		st.conns--
		l.forgetLocked(uid, st)
	}
}

// BeginRequest counts a request of uid in progress and returns the
// function that ends it, or false when uid has its maximum in progress.
func (l *Limiter) BeginRequest(uid uint32) (end func(), ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.uids[uid]
	if st == nil {
		st = &uidState{}
		l.uids[uid] = st
	}
	if st.reqs >= l.lim.MaxRequestsPerUID {
		l.forgetLocked(uid, st)
		return nil, false
	}
	st.reqs++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			st.reqs--
			l.forgetLocked(uid, st)
		})
	}, true
}

// forgetLocked drops the state of a uid that holds nothing.
//
// Preconditions: l.mu is held.
func (l *Limiter) forgetLocked(uid uint32, st *uidState) {
	if st.conns <= 0 && st.reqs <= 0 && l.uids[uid] == st {
		delete(l.uids, uid)
	}
}
