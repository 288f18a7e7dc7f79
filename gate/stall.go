package gate

import (
	"container/list"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// StallLimits bound what a process that holds one of its own locks — its
// mmap lock, held in a page fault on a FUSE or network file that never
// answers — can cost other callers and other targets. Items whose read
// takes such a lock (itemCheck.waits) run under Config.ReadTimeout; these
// limits decide which of those reads start at all, and a read they refuse
// is answered at once: it never waits, and never holds a worker. Zero
// fields take their defaults.
type StallLimits struct {
	// PerTarget bounds the lock-taking reads of one process in flight at
	// once, within their deadline or stuck past it (default 2). Beyond it
	// a read is refused, EBUSY.
	PerTarget int
	// PerUID bounds the lock-taking reads in flight at once, within their
	// deadline or stuck past it, of the callers of one uid (default
	// Config.MaxStuckReads/8, at least 1): one uid cannot take the
	// gate-wide bound. Beyond it a read is refused, EBUSY.
	PerUID int
	// WorkersPerUID bounds the workers (Config.Workers) that the requests
	// of one caller uid hold at once (default Workers/4, at least 1: with
	// the default Workers, GOMAXPROCS, so one uid can keep every CPU busy
	// but not take every worker); its other requests wait for one of its
	// own, not for the others'. A uid's reads that wait within their
	// deadline hold a worker each, so at most this many of them hold up
	// anything, and the uid's requests, however many, compete for the
	// CPUs with the others' as this many goroutines.
	WorkersPerUID int
	// Backoff is how long the lock-taking reads of a process whose read
	// timed out are answered ETIMEDOUT at once, without a read (default
	// 1s); it doubles with every further timeout, up to MaxBackoff
	// (default 1 min). Then one read, the probe, is let through: answered
	// in time, it closes the breaker; timed out, it opens it again. While
	// a read that timed out is still blocked in the kernel, the lock is
	// still held: no probe is made, and the back-off grows as if one had
	// timed out.
	Backoff, MaxBackoff time.Duration
	// Targets bounds the processes whose timeouts are remembered (default
	// 4096); beyond it, the one that timed out longest ago is forgotten
	// (its next read is tried).
	Targets int
}

// withDefaults fills unset limits.
func (l StallLimits) withDefaults(workers, maxStuck int) StallLimits {
	if l.PerTarget <= 0 {
		l.PerTarget = 2
	}
	if l.PerUID <= 0 {
		l.PerUID = max(maxStuck/8, 1)
	}
	if l.WorkersPerUID <= 0 {
		l.WorkersPerUID = max(workers/4, 1)
	}
	if l.Backoff <= 0 {
		l.Backoff = time.Second
	}
	if l.MaxBackoff <= 0 {
		l.MaxBackoff = time.Minute
	}
	l.MaxBackoff = max(l.MaxBackoff, l.Backoff)
	if l.Targets <= 0 {
		l.Targets = 4096
	}
	return l
}

// refusal is why a lock-taking read was not started.
type refusal uint8

// The refusals, as procgate_read_refusals_total{reason} names them.
const (
	refusedBreaker refusal = iota // the target timed out lately (ETIMEDOUT)
	refusedTarget                 // PerTarget reads of it in flight (EBUSY)
	refusedUID                    // PerUID reads of the caller's uid in flight (EBUSY)
	refusedGlobal                 // Config.MaxStuckReads reads in flight (EBUSY)
	numRefusals
)

var refusalNames = [numRefusals]string{"breaker", "target", "uid", "global"}

func (r refusal) String() string { return refusalNames[r] }

// stallKey names one process: a pid and its start time (stat field 22),
// so that a process that takes a reused pid is another target.
type stallKey struct {
	pid   int
	start uint64
}

// stallTarget is what the gate knows of one process's lock-taking reads.
// It is kept while reads of it are in flight or its breaker is not closed.
type stallTarget struct {
	key      stallKey
	inflight int // reads in flight, stuck or not
	stuck    int // those past their deadline
	// fails counts the timeouts in a row; the breaker is closed when it is
	// 0, and open until until (then half-open: one probe) otherwise.
	fails int
	until time.Time
	// elem is the target's place in stalls.lru while fails > 0.
	elem *list.Element
}

// flight is one lock-taking read from its admission to its return.
type flight struct {
	t        *stallTarget
	uid      uint32
	stuck    bool // past its deadline
	returned bool
}

// stalls applies StallLimits and keeps the breakers. It is safe for
// concurrent use.
type stalls struct {
	lim     StallLimits
	timeout time.Duration
	now     func() time.Time

	mu      sync.Mutex
	targets map[stallKey]*stallTarget
	lru     list.List      // targets with fails > 0, least lately timed out first
	uids    map[uint32]int // reads in flight by caller uid
	stuck   int            // reads past their deadline, in all
}

func newStalls(lim StallLimits, timeout time.Duration) *stalls {
	return &stalls{lim: lim, timeout: timeout, now: time.Now, targets: map[stallKey]*stallTarget{}, uids: map[uint32]int{}}
}

// backoff is how long the breaker stays open after fails timeouts in a
// row.
func (s *stalls) backoff(fails int) time.Duration {
	d := s.lim.Backoff
	for i := 1; i < fails && d < s.lim.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, s.lim.MaxBackoff)
}

// admit starts a lock-taking read of item it of process k for a caller of
// uid, or refuses it with the error to answer and the refusal to count.
// An admitted read ends with exactly one of done or cancel.
func (s *stalls) admit(k stallKey, uid uint32, it Item) (*flight, refusal, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	t := s.targets[k]
	if t != nil && t.fails > 0 {
		if wait := t.until.Sub(now); wait > 0 {
			return nil, refusedBreaker, fmt.Errorf("read %s: pid %d timed out (%s in a row; a lock of the target's is held): not tried again for %v: %w",
				it, k.pid, timeouts(t.fails), roundUp(wait), unix.ETIMEDOUT)
		}
		// Half-open: one probe, made only when no read of the target is
		// in flight. A read still blocked past its deadline shows the
		// lock still held: that is the probe's answer, without a read.
		if t.stuck > 0 {
			s.failLocked(t, now)
			return nil, refusedBreaker, fmt.Errorf("read %s: a read of pid %d is still blocked past its deadline (a lock of the target's is held): not tried again for %v: %w",
				it, k.pid, roundUp(s.backoff(t.fails)), unix.ETIMEDOUT)
		}
		if t.inflight > 0 {
			return nil, refusedBreaker, fmt.Errorf("read %s: pid %d timed out before, and a probe read of it is in progress: retry in %v: %w",
				it, k.pid, roundUp(s.timeout), unix.ETIMEDOUT)
		}
	}
	if t != nil && t.inflight >= s.lim.PerTarget {
		return nil, refusedTarget, fmt.Errorf("read %s: %d reads of pid %d are in progress, at most %d at once (a read that timed out counts until it returns): %w",
			it, t.inflight, k.pid, s.lim.PerTarget, unix.EBUSY)
	}
	if n := s.uids[uid]; n >= s.lim.PerUID {
		return nil, refusedUID, fmt.Errorf("read %s: %d reads for uid %d are in progress, at most %d at once (a read that timed out counts until it returns): %w",
			it, n, uid, s.lim.PerUID, unix.EBUSY)
	}
	if t == nil {
		t = &stallTarget{key: k}
		s.targets[k] = t
	}
	t.inflight++
	s.uids[uid]++
	return &flight{t: t, uid: uid}, 0, nil
}

// cancel ends an admitted read that was not started.
func (s *stalls) cancel(f *flight) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endLocked(f)
}

// expire marks f past its deadline, opening (again) its target's
// breaker, and reports true; or reports false when the read returned
// meanwhile, whose answer then stands.
func (s *stalls) expire(f *flight) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.returned {
		return false
	}
	f.stuck = true
	f.t.stuck++
	s.stuck++
	s.failLocked(f.t, s.now())
	return true
}

// done ends a read that returned from the kernel. One that returned in
// time closes its target's breaker — the target answers — unless another
// read of it is still blocked past its deadline.
func (s *stalls) done(f *flight) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f.returned = true
	t := f.t
	if f.stuck {
		t.stuck--
		s.stuck--
	} else if t.fails > 0 && t.stuck == 0 {
		t.fails = 0
		s.lru.Remove(t.elem)
		t.elem = nil
	}
	s.endLocked(f)
}

// endLocked releases f's counts, and forgets its target when nothing is
// left to know of it.
//
// Preconditions: s.mu is held.
func (s *stalls) endLocked(f *flight) {
	t := f.t
	t.inflight--
	if s.uids[f.uid]--; s.uids[f.uid] <= 0 {
		delete(s.uids, f.uid)
	}
	if t.inflight == 0 && t.fails == 0 && s.targets[t.key] == t {
		delete(s.targets, t.key)
	}
}

// failLocked counts a timeout of t and opens its breaker; it forgets the
// target that timed out longest ago when too many are remembered.
//
// Preconditions: s.mu is held.
func (s *stalls) failLocked(t *stallTarget, now time.Time) {
	t.fails++
	t.until = now.Add(s.backoff(t.fails))
	if t.elem != nil {
		s.lru.MoveToBack(t.elem)
		return
	}
	t.elem = s.lru.PushBack(t)
	// A target with reads in flight is kept (they are bounded by
	// Config.MaxStuckReads): it goes to the back instead.
	for n := s.lru.Len(); s.lru.Len() > s.lim.Targets && n > 0; n-- {
		old := s.lru.Front().Value.(*stallTarget)
		if old.inflight > 0 {
			s.lru.MoveToBack(old.elem)
			continue
		}
		s.lru.Remove(old.elem)
		delete(s.targets, old.key)
	}
}

// stats returns the reads stuck past their deadline and the processes
// whose breaker is not closed.
func (s *stalls) stats() (stuck, open int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stuck, s.lru.Len()
}

// StallLimits returns the limits in force (Config.Stall with its
// defaults filled in).
func (g *Gate) StallLimits() StallLimits { return g.stall.lim }

// stallGauges registers the gauges of the reads in flight and the
// breakers.
func (g *Gate) stallGauges() {
	g.metrics.Gauge("procgate_reads_stuck", func() float64 { n, _ := g.stall.stats(); return float64(n) })
	g.metrics.Gauge("procgate_read_breakers_open", func() float64 { _, n := g.stall.stats(); return float64(n) })
}

// timeouts says "1 timeout", "2 timeouts"…
func timeouts(n int) string {
	if n == 1 {
		return "1 timeout"
	}
	return fmt.Sprintf("%d timeouts", n)
}

// roundUp rounds a wait up to a tenth of a second, so that "not tried
// again for 0s" is never said of a wait to come.
func roundUp(d time.Duration) time.Duration {
	const unit = 100 * time.Millisecond
	return (d + unit - 1) / unit * unit
}
