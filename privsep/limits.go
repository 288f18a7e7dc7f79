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
	// MaxConns bounds open connections (or handles) in all (default
	// 4096).
	MaxConns int
	// MaxConnsPerUID bounds those of one uid: a small share of the total
	// (default MaxConns/64, at least 1), so that one user cannot hold
	// them all.
	MaxConnsPerUID int
	// MaxRequestsPerUID bounds the requests of one uid in progress at
	// once (default 64).
	MaxRequestsPerUID int
	// Reserve is the part of MaxConns kept for privileged callers —
	// root, and the callers the policy singles out (an allow rule names
	// them by a subject class) — so that they are served however many
	// connections the others hold (default MaxConns/8).
	Reserve int
}

// withDefaults fills unset limits and keeps them consistent.
func (l Limits) withDefaults() Limits {
	if l.MaxConns <= 0 {
		l.MaxConns = 4096
	}
	if l.MaxConnsPerUID <= 0 {
		l.MaxConnsPerUID = max(l.MaxConns/64, 1)
	}
	if l.MaxRequestsPerUID <= 0 {
		l.MaxRequestsPerUID = 64
	}
	if l.Reserve <= 0 {
		l.Reserve = l.MaxConns / 8
	}
	l.Reserve = min(l.Reserve, l.MaxConns-1)
	return l
}

// Admission is how a connection was admitted.
type Admission uint8

// The admissions.
const (
	// Refused: the caller's uid holds its share, or every slot it may use
	// is taken. The front answers "too many connections" and closes.
	Refused Admission = iota
	// General: a slot of the general pool.
	General
	// Reserved: a reserved slot, taken by root at once or, for another
	// uid, provisionally: the front must confirm the caller privileged
	// ([Session.Privileged]) before serving it, and refuse it otherwise.
	Reserved
)

// Limiter applies [Limits] for a front. It never blocks: a connection
// is admitted or refused at once, so a full pool cannot stall the
// callers that are still entitled to a slot. It is safe for concurrent
// use.
type Limiter struct {
	lim      Limits
	mu       sync.Mutex
	general  int // general slots in use
	reserved int // reserved slots in use
	uids     map[uint32]*uidState
}

type uidState struct {
	conns int
	reqs  int
}

// NewLimiter returns a limiter for lim (zero fields take their
// defaults).
func NewLimiter(lim Limits) *Limiter {
	return &Limiter{lim: lim.withDefaults(), uids: map[uint32]*uidState{}}
}

// Limits returns the limits in force.
func (l *Limiter) Limits() Limits { return l.lim }

// Admit admits a new connection of uid, or refuses it. Every admitted
// connection is released once with Release(uid, admission).
func (l *Limiter) Admit(uid uint32) Admission {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.state(uid)
	a := Refused
	switch {
	case st.conns >= l.lim.MaxConnsPerUID:
	case l.general < l.lim.MaxConns-l.lim.Reserve:
		a = General
		l.general++
	case l.reserved < l.lim.Reserve:
		a = Reserved
		l.reserved++
	}
	if a == Refused {
		l.forgetLocked(uid, st)
		return a
	}
	st.conns++
	return a
}

// Release releases a connection admitted as a.
func (l *Limiter) Release(uid uint32, a Admission) {
	if a == Refused {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if a == General {
		l.general--
	} else {
		l.reserved--
	}
	if st := l.uids[uid]; st != nil {
		st.conns--
		l.forgetLocked(uid, st)
	}
}

// Pressure reports whether the general pool is at least 7/8 full: the
// front then closes idle connections sooner.
func (l *Limiter) Pressure() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	pool := l.lim.MaxConns - l.lim.Reserve
	return l.general*8 >= pool*7
}

// InUse returns the slots in use, general and reserved.
func (l *Limiter) InUse() (general, reserved int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.general, l.reserved
}

// BeginRequest counts a request of uid in progress and returns the
// function that ends it, or false when uid has its maximum in progress.
func (l *Limiter) BeginRequest(uid uint32) (end func(), ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.state(uid)
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

// state returns uid's state, created empty.
//
// Preconditions: l.mu is held.
func (l *Limiter) state(uid uint32) *uidState {
	st := l.uids[uid]
	if st == nil {
		st = &uidState{}
		l.uids[uid] = st
	}
	return st
}

// forgetLocked drops the state of a uid that holds nothing.
//
// Preconditions: l.mu is held.
func (l *Limiter) forgetLocked(uid uint32, st *uidState) {
	if st.conns <= 0 && st.reqs <= 0 && l.uids[uid] == st {
		delete(l.uids, uid)
	}
}
