package gate

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/policy"
)

// fakeStalls returns stalls with lim (defaults for zero fields, with 64
// slots and 8 workers) on a clock the test moves.
func fakeStalls(lim StallLimits) (*stalls, *time.Time) {
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := newStalls(lim.withDefaults(8, 64), 2*time.Second)
	s.now = func() time.Time { return clock }
	return s, &clock
}

// admitted admits a read of k for uid or fails the test.
func admitted(t *testing.T, s *stalls, k stallKey, uid uint32) *flight {
	t.Helper()
	f, _, err := s.admit(k, uid, policy.ItemCmdline)
	if err != nil {
		t.Fatalf("read of %+v for uid %d refused: %v", k, uid, err)
	}
	return f
}

// refused checks that a read of k for uid is refused for why with errno,
// and a reason holding say.
func refused(t *testing.T, s *stalls, k stallKey, uid uint32, why refusal, errno unix.Errno, say string) {
	t.Helper()
	f, r, err := s.admit(k, uid, policy.ItemCmdline)
	if err == nil {
		s.cancel(f)
		t.Fatalf("read of %+v for uid %d admitted, want refused (%s)", k, uid, why)
	}
	if r != why || !errors.Is(err, errno) || !strings.Contains(err.Error(), say) {
		t.Fatalf("read of %+v for uid %d: refused (%s) %v; want (%s) %v saying %q", k, uid, r, err, why, errno, say)
	}
}

// TestBreakerBackoff: a target whose read timed out is answered at once
// for a back-off that doubles with each timeout in a row (1s, 2s, 4s…,
// up to 1 min); then one probe is let through, and only one; a probe
// answered in time closes the breaker.
func TestBreakerBackoff(t *testing.T) {
	s, clock := fakeStalls(StallLimits{})
	k := stallKey{pid: 100, start: 5000}
	f := admitted(t, s, k, 1000)
	*clock = clock.Add(2 * time.Second)
	if !s.expire(f) {
		t.Fatal("expire: the read had not returned")
	}
	s.done(f) // returns late: the lock was let go
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second, time.Minute, time.Minute}
	for i, backoff := range want {
		// Open: answered at once, saying for how long.
		refused(t, s, k, 1000, refusedBreaker, unix.ETIMEDOUT, "not tried again for "+backoff.String())
		*clock = clock.Add(backoff - 100*time.Millisecond)
		refused(t, s, k, 1001, refusedBreaker, unix.ETIMEDOUT, "not tried again for 100ms")
		*clock = clock.Add(100 * time.Millisecond)
		// Half-open: one probe, and no second read beside it.
		probe := admitted(t, s, k, 1000)
		refused(t, s, k, 1001, refusedBreaker, unix.ETIMEDOUT, "a probe read of it is in progress")
		if i == len(want)-1 {
			s.done(probe) // in time: closed
			break
		}
		*clock = clock.Add(2 * time.Second)
		if !s.expire(probe) {
			t.Fatal("expire: the probe had not returned")
		}
		s.done(probe)
	}
	a, b := admitted(t, s, k, 1000), admitted(t, s, k, 1001)
	s.done(a)
	s.done(b)
	if len(s.targets) != 0 || s.lru.Len() != 0 || len(s.uids) != 0 {
		t.Errorf("a closed breaker with nothing in flight is still remembered: %d targets, %d breakers, %d uids", len(s.targets), s.lru.Len(), len(s.uids))
	}
}

// TestBreakerStuckRead: while a read that timed out is still blocked in
// the kernel, the lock is still held: no probe is made, and the back-off
// grows as if one had timed out; a read of the target answered in time
// meanwhile does not close the breaker. Once the stuck read returns, the
// probe is made.
func TestBreakerStuckRead(t *testing.T) {
	s, clock := fakeStalls(StallLimits{})
	k := stallKey{pid: 100, start: 5000}
	stuck, other := admitted(t, s, k, 1000), admitted(t, s, k, 1000)
	s.expire(stuck)
	s.done(other) // in time, but the stuck one still waits
	*clock = clock.Add(time.Second)
	refused(t, s, k, 1000, refusedBreaker, unix.ETIMEDOUT, "still blocked past its deadline (a lock of the target's is held): not tried again for 2s")
	*clock = clock.Add(2 * time.Second)
	refused(t, s, k, 1000, refusedBreaker, unix.ETIMEDOUT, "not tried again for 4s")
	if stuckN, open := s.stats(); stuckN != 1 || open != 1 {
		t.Errorf("stats: %d stuck, %d open; want 1, 1", stuckN, open)
	}
	s.done(stuck)
	*clock = clock.Add(4 * time.Second)
	s.done(admitted(t, s, k, 1000)) // the probe, in time
	if stuckN, open := s.stats(); stuckN != 0 || open != 0 {
		t.Errorf("stats: %d stuck, %d open; want 0, 0", stuckN, open)
	}
}

// TestBreakerReusedPID: a process that takes the pid of one whose
// breaker is open is another target: its reads are tried.
func TestBreakerReusedPID(t *testing.T) {
	s, _ := fakeStalls(StallLimits{})
	old, reused := stallKey{pid: 100, start: 5000}, stallKey{pid: 100, start: 9000}
	f := admitted(t, s, old, 1000)
	s.expire(f)
	refused(t, s, old, 1000, refusedBreaker, unix.ETIMEDOUT, "pid 100 timed out (1 timeout in a row")
	s.done(admitted(t, s, reused, 1000))
}

// TestStallLimits: the reads in flight, within their deadline or stuck
// past it, are bounded per target and per caller uid; a refusal names
// the bound, and a stuck read counts until it returns.
func TestStallLimits(t *testing.T) {
	tests := []struct {
		name  string
		lim   StallLimits
		hold  []stallKey // admitted for uid 1000, in order
		stuck bool       // the held reads time out
		key   stallKey
		uid   uint32
		why   refusal // refused for this, or admitted when ok
		ok    bool
		say   string
	}{
		{name: "per target", lim: StallLimits{PerTarget: 2}, hold: []stallKey{{1, 1}, {1, 1}},
			key: stallKey{1, 1}, uid: 2000, why: refusedTarget, say: "2 reads of pid 1 are in progress, at most 2 at once"},
		{name: "per target, another target", lim: StallLimits{PerTarget: 2}, hold: []stallKey{{1, 1}, {1, 1}},
			key: stallKey{2, 1}, uid: 2000, ok: true},
		{name: "per uid", lim: StallLimits{PerUID: 3}, hold: []stallKey{{1, 1}, {2, 1}, {3, 1}},
			key: stallKey{4, 1}, uid: 1000, why: refusedUID, say: "3 reads for uid 1000 are in progress, at most 3 at once"},
		{name: "per uid, another uid", lim: StallLimits{PerUID: 3}, hold: []stallKey{{1, 1}, {2, 1}, {3, 1}},
			key: stallKey{4, 1}, uid: 2000, ok: true},
		{name: "per uid, stuck reads count", lim: StallLimits{PerUID: 3}, hold: []stallKey{{1, 1}, {2, 1}, {3, 1}}, stuck: true,
			key: stallKey{4, 1}, uid: 1000, why: refusedUID, say: "3 reads for uid 1000"},
		{name: "stuck reads on another uid's targets", lim: StallLimits{PerUID: 3}, hold: []stallKey{{1, 1}, {2, 1}, {3, 1}}, stuck: true,
			key: stallKey{4, 1}, uid: 2000, ok: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := fakeStalls(tc.lim)
			var held []*flight
			for _, k := range tc.hold {
				f := admitted(t, s, k, 1000)
				if tc.stuck {
					s.expire(f)
				}
				held = append(held, f)
			}
			if tc.ok {
				s.done(admitted(t, s, tc.key, tc.uid))
			} else {
				refused(t, s, tc.key, tc.uid, tc.why, unix.EBUSY, tc.say)
			}
			for _, f := range held {
				s.done(f)
			}
			// Every count is given back: the refused read is admitted now
			// (a breaker a stuck read opened aside).
			if !tc.stuck {
				s.done(admitted(t, s, tc.key, tc.uid))
			}
			if n := s.uids[1000]; n != 0 {
				t.Errorf("uid 1000 still has %d reads in flight", n)
			}
		})
	}
}

// TestBreakerForgets: the breaker remembers at most Targets processes;
// the one that timed out longest ago is forgotten first, but never one
// with a read still in flight.
func TestBreakerForgets(t *testing.T) {
	s, _ := fakeStalls(StallLimits{Targets: 3})
	keep := admitted(t, s, stallKey{1, 1}, 1000)
	s.expire(keep) // the oldest, still blocked
	for pid := 2; pid <= 6; pid++ {
		f := admitted(t, s, stallKey{pid, 1}, 1000)
		s.expire(f)
		s.done(f)
	}
	if s.lru.Len() != 3 || len(s.targets) != 3 {
		t.Fatalf("%d breakers, %d targets remembered; want 3", s.lru.Len(), len(s.targets))
	}
	refused(t, s, stallKey{1, 1}, 1000, refusedBreaker, unix.ETIMEDOUT, "pid 1 timed out")
	refused(t, s, stallKey{6, 1}, 1000, refusedBreaker, unix.ETIMEDOUT, "pid 6 timed out")
	refused(t, s, stallKey{5, 1}, 1000, refusedBreaker, unix.ETIMEDOUT, "pid 5 timed out")
	s.done(admitted(t, s, stallKey{4, 1}, 1000)) // forgotten: tried again
	s.done(keep)
}

// TestWorkerShares: the requests of one uid hold at most its share of
// the workers; another uid's still find one.
func TestWorkerShares(t *testing.T) {
	g := &Gate{sem: make(chan struct{}, 4), shares: newWorkerShares(2)}
	caller := func(uid uint32) *Caller {
		return &Caller{subj: policy.Subject{Process: policy.Process{UID: uid}}}
	}
	take := func(c *Caller) (func(), error) {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		return g.worker(ctx, c)
	}
	a, b, x := caller(1000), caller(2000), caller(3000)
	var releases []func()
	for _, c := range []*Caller{a, a, b, b} {
		r, err := take(c)
		if err != nil {
			t.Fatalf("uid %d: %v", c.subj.UID, err)
		}
		releases = append(releases, r)
	}
	if _, err := take(a); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("uid 1000 beyond its share: %v, want to wait", err)
	}
	if _, err := take(x); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("uid 3000 with every worker taken: %v, want to wait", err)
	}
	releases[0]()
	r, err := take(x)
	if err != nil {
		t.Fatalf("uid 3000 once a worker is free: %v", err)
	}
	r()
	for _, r := range releases[1:] {
		r()
	}
	if len(g.sem) != 0 || len(g.shares.uids) != 0 {
		t.Errorf("%d workers held, %d uids remembered after every release", len(g.sem), len(g.shares.uids))
	}
}
