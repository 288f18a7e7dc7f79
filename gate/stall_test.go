package gate_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/gate"
	"github.com/procgate/procgate/internal/proctest"
	"github.com/procgate/procgate/internal/testenv"
	"github.com/procgate/procgate/policy"
)

// Who takes part in the stalled-target attack.
const (
	uidAttacker = 41101 // holds its own processes' mmap locks
	uidMember   = 41102 // reads an unrelated process meanwhile
	uidBystand  = 41103 // owns the unrelated process
)

// stallAttack is the attack's shape: the attacker's processes that hold
// their own mmap locks, its requests in flight at once (each for one
// item of one of them), and how long it goes on.
const (
	stallTargets  = 3
	stallRequests = 70
	stallFor      = 6 * time.Second
)

// TestStalledTargets is the stalled-target attack (docs/security.md, "Stalled targets"):
// an unprivileged user's processes hold their own mmap locks (a page of a
// FUSE file that never arrives), and the user sends 70 requests at once,
// in a loop, for their cmdline, environ and maps, for several seconds.
// Meanwhile a member reads cmdline, environ and maps of an unrelated
// process continuously: its requests must take at most 50 ms at the 99th
// percentile and never be refused. The reading process's threads and
// descriptors must stay within what the limits allow the stuck reads,
// and come back to their baseline once the locks are released.
//
// The gate runs with its defaults: the read timeout, the workers and the
// limits of procgate serve.
func TestStalledTargets(t *testing.T) {
	testenv.RequireRoot(t, "a FUSE mount, processes as other uids")
	fs := mountSilentFUSE(t)
	var stalled []int
	for i := range stallTargets {
		stalled = append(stalled, startStalled(t, fs, i, uidAttacker).pid)
	}
	attackerPID, _ := proctest.Start(t, proctest.Options{UID: uidAttacker})
	memberPID, _ := proctest.Start(t, proctest.Options{UID: uidMember})
	otherPID, _ := proctest.Start(t, proctest.Options{UID: uidBystand})

	pol, err := policy.Load("stall.pol", []byte("subject everyone { }\ntarget any_process { }\nallow everyone any_process : read { cmdline environ maps status };\n"))
	if err != nil {
		t.Fatal(err)
	}
	g, err := gate.New(gate.Config{Policy: pol})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	attacker, err := g.NewCaller(attackerPID, -1, uidAttacker, uidAttacker, "")
	if err != nil {
		t.Fatal(err)
	}
	defer attacker.Close()
	member, err := g.NewCaller(memberPID, -1, uidMember, uidMember, "")
	if err != nil {
		t.Fatal(err)
	}
	defer member.Close()

	items := []gate.Item{policy.ItemCmdline, policy.ItemEnviron, policy.ItemMaps}
	memberReq := &gate.Request{PIDs: []int{otherPID}, Items: items}
	// memberRead reads the unrelated process once; any denial fails it.
	memberRead := func() (time.Duration, error) {
		start := time.Now()
		err := g.Read(context.Background(), member, memberReq)(func(r *gate.ProcResult) error {
			if r.Denial != nil {
				return r.Denial
			}
			for i := range r.Items {
				if d := r.Items[i].Denial; d != nil {
					return fmt.Errorf("%s: %w", r.Items[i].Item, d)
				}
			}
			return nil
		})
		return time.Since(start), err
	}
	for range 20 { // warm: the model's views, the runtime's threads
		if _, err := memberRead(); err != nil {
			t.Fatalf("before the attack: %v", err)
		}
	}
	base := countSelf(t)

	ctx, stop := context.WithTimeout(context.Background(), stallFor)
	defer stop()
	var peak selfCount
	var sampler sync.WaitGroup
	sampler.Go(func() {
		for ctx.Err() == nil {
			peak = peak.max(countSelf(t))
			time.Sleep(50 * time.Millisecond)
		}
	})
	var sent, refused, timedOut atomic.Int64
	var attack sync.WaitGroup
	for i := range stallRequests {
		attack.Go(func() {
			req := &gate.Request{PIDs: []int{stalled[i%len(stalled)]}, Items: []gate.Item{items[i/len(stalled)%len(items)]}}
			for ctx.Err() == nil {
				sent.Add(1)
				g.Read(ctx, attacker, req)(func(r *gate.ProcResult) error {
					for _, ir := range r.Items {
						switch {
						case ir.Denial == nil:
						case ir.Denial.Errno == unix.EBUSY:
							refused.Add(1)
						case ir.Denial.Errno == unix.ETIMEDOUT:
							timedOut.Add(1)
						}
					}
					return nil
				})
			}
		})
	}
	var lat []time.Duration
	var busy, failed int
	var firstErr error
	for ctx.Err() == nil {
		d, err := memberRead()
		lat = append(lat, d)
		if err != nil {
			failed++
			if errors.Is(err, unix.EBUSY) {
				busy++
			}
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	attack.Wait()
	sampler.Wait()
	time.Sleep(200 * time.Millisecond) // reads answered late return
	after := countSelf(t)
	var metrics strings.Builder
	g.Metrics().WriteTo(&metrics)
	fs.abort() // the locks are released: every stuck read returns
	var released selfCount
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if released = countSelf(t); released.fds <= base.fds || time.Now().After(deadline) {
			break
		}
	}

	slices.Sort(lat)
	p50, p99 := lat[len(lat)/2], lat[(len(lat)*99+99)/100-1]
	t.Logf("member: %d reads, p50 %v, p99 %v, max %v; %d refused (%d EBUSY)",
		len(lat), p50.Round(10*time.Microsecond), p99.Round(10*time.Microsecond), lat[len(lat)-1].Round(time.Millisecond), failed, busy)
	t.Logf("attacker: %d requests, %d answered EBUSY, %d ETIMEDOUT", sent.Load(), refused.Load(), timedOut.Load())
	t.Logf("threads/fds: before %d/%d, during (peak) %d/%d, after %d/%d, once released %d/%d",
		base.threads, base.fds, peak.threads, peak.fds, after.threads, after.fds, released.threads, released.fds)
	t.Logf("gate metrics after the attack:\n%s", grepLines(metrics.String(), "procgate_read"))

	if firstErr != nil {
		t.Errorf("the member was refused %d of %d times (%d EBUSY); first: %v", failed, len(lat), busy, firstErr)
	}
	if p99 > 50*time.Millisecond {
		t.Errorf("the member's p99 is %v, want ≤ 50ms (p50 %v)", p99, p50)
	}
	// Each stuck read holds one thread blocked in the kernel and two
	// descriptors (the duplicate of the target's directory, the file being
	// read): at most stuckBound of them remain while the locks are held.
	// During the attack, each worker also holds the target's pidfd, its
	// directory and a file. The Go runtime keeps the threads it started
	// (one for each goroutine blocked in a system call at once, beyond
	// GOMAXPROCS), so threads may also grow by the workers that were in a
	// system call at the same time.
	lim := g.StallLimits()
	stuckBound := min(stallTargets*lim.PerTarget, lim.PerUID)
	workers := 4 * runtime.GOMAXPROCS(0)
	if after.fds > base.fds+2*stuckBound || peak.fds > base.fds+2*stuckBound+3*workers {
		t.Errorf("descriptors: %d before, %d at the peak, %d after the attack: more than %d stuck reads and %d workers account for",
			base.fds, peak.fds, after.fds, stuckBound, workers)
	}
	if after.threads > base.threads+stuckBound+workers {
		t.Errorf("threads: %d before, %d after the attack: more than %d stuck reads and %d workers account for", base.threads, after.threads, stuckBound, workers)
	}
	if released.fds > base.fds {
		t.Errorf("descriptors once the locks were released: %d, before the attack %d: stuck reads did not return theirs", released.fds, base.fds)
	}
}

// selfCount is how many threads and descriptors this process has.
type selfCount struct{ threads, fds int }

func (a selfCount) max(b selfCount) selfCount {
	return selfCount{max(a.threads, b.threads), max(a.fds, b.fds)}
}

// countSelf counts the entries of /proc/self/task and /proc/self/fd (the
// descriptor reading the latter included). It may run in any goroutine.
func countSelf(t *testing.T) selfCount {
	t.Helper()
	task, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Error(err)
	}
	fd, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Error(err)
	}
	return selfCount{len(task), len(fd)}
}

// grepLines returns the lines of s that hold sub.
func grepLines(s, sub string) string {
	var out []string
	for line := range strings.SplitSeq(s, "\n") {
		if strings.Contains(line, sub) && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
