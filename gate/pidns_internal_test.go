package gate

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/internal/proctest"
	"github.com/procgate/procgate/internal/testenv"
	"github.com/procgate/procgate/procfs"
)

// nsCaller identifies the process host (of the test's namespace) as a
// caller of a gate in the given mode, and starts a request for it.
func nsCaller(t *testing.T, translate bool, host int) (*Gate, *nsRequest) {
	t.Helper()
	g, err := New(Config{Policy: loadPolicy(t, "subject everyone { }\ntarget any { }\nallow everyone any : read { status };\n")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	if translate && !g.pidTranslation {
		t.Skip("SKIPPED: this kernel cannot translate pids between namespaces (Linux 6.11+)")
	}
	g.pidTranslation = translate
	c, err := g.NewCaller(host, -1, 0, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if c.ns == nil || c.ns.level != 1 {
		t.Fatalf("caller %d: namespace %+v, want one level below the gate's", host, c.ns)
	}
	return g, &nsRequest{c: c.ns, root: g.root, start: time.Now()}
}

// A translation is proven under the pin, never trusted: a hint naming
// the process a sibling namespace calls by the same number (both inits
// are pid 1 at the same level) is refused under its pin (the namespace's
// identity, not the level, decides) and pid translated again, once, to
// the caller's own init. A pid the caller cannot see stays ESRCH whatever
// the hint.
func TestPinInNSProvesUnderThePin(t *testing.T) {
	testenv.RequireRoot(t, "creates pid namespaces")
	mine := proctest.StartPIDNS(t, proctest.NSOptions{Sleepers: 1})
	other := proctest.StartPIDNS(t, proctest.NSOptions{Sleepers: 1})
	caller := proctest.HostPID(t, mine.Info.Ino, mine.Info.Sleepers[0])
	for _, translate := range []bool{true, false} {
		t.Run(fmt.Sprintf("translate=%v", translate), func(t *testing.T) {
			g, nr := nsCaller(t, translate, caller)
			buf := make([]byte, 0, 8192)

			// verify alone refuses the sibling's init, and takes its own.
			for _, tc := range []struct {
				host int
				want error
			}{{other.Init, errNotTheOne}, {mine.Init, nil}} {
				p, err := g.root.Pin(tc.host)
				if err != nil {
					t.Fatal(err)
				}
				pi, err := readProcInfo(p, g.mods, buf, false, allNeeds)
				if err != nil {
					t.Fatal(err)
				}
				if err := nr.verify(p, &pi.st, 1); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
					t.Errorf("verify pid 1 on host pid %d: %v, want %v", tc.host, err, tc.want)
				}
				p.Close()
			}

			p, pi, err := g.pinInNS(nr, 1, other.Init, buf, false, allNeeds)
			if err != nil {
				t.Fatalf("pid 1 with a stale hint: %v", err)
			}
			if p.PID != mine.Init || pi.st.Pid != mine.Init {
				t.Errorf("pid 1 pinned host pid %d, want the caller's init %d", p.PID, mine.Init)
			}
			p.Close()

			const unseen = 1 << 21 // no namespace of the test has that many pids
			_, _, err = g.pinInNS(nr, unseen, other.Init, buf, false, allNeeds)
			if want := fmt.Sprintf("gate: pid %d: no such process", unseen); !errors.Is(err, unix.ESRCH) || err == nil || err.Error() != want {
				t.Errorf("pid %d with a hint: %v, want %q", unseen, err, want)
			}
		})
	}
}

// Why a process is not answered is told in the caller's numbering: the
// errors of pinning and reading name the gate's pids, which the caller
// must never learn.
func TestTargetErrorNamesNoHostPID(t *testing.T) {
	testenv.RequireRoot(t, "creates pid namespaces")
	mine := proctest.StartPIDNS(t, proctest.NSOptions{Sleepers: 1})
	_, nr := nsCaller(t, true, proctest.HostPID(t, mine.Info.Ino, mine.Info.Sleepers[0]))
	host := os.Getpid() // a process the caller cannot see
	tests := []struct {
		err   error
		errno unix.Errno
		want  string
	}{
		{&procfs.Error{PID: host, Op: "pidfd_open", Err: unix.ESRCH}, unix.ESRCH, "gate: pid 7: no such process"},
		{&procfs.ThreadError{TID: host + 1, TGID: host}, unix.ESRCH, "gate: pid 7: no such process"},
		{&procfs.ThreadError{TID: host + 1, TGID: mine.Init}, unix.ESRCH, "gate: pid 7 is a thread of process 1, not a process"},
		{fmt.Errorf("gate: pid %d: %w", host, errChangedErr), unix.EAGAIN, "gate: pid 7: " + errChangedErr.Error()},
		{fmt.Errorf("gate: pid %d: read status: %w", host, unix.EACCES), unix.EACCES, "gate: pid 7: permission denied"},
		{fmt.Errorf("gate: pid %d: %w", host, procfs.ErrMalformed), unix.EIO, "gate: pid 7: input/output error"},
	}
	for _, tc := range tests {
		err := nr.targetError(7, tc.err)
		if !errors.Is(err, tc.errno) || err.Error() != tc.want || strings.Contains(err.Error(), strconv.Itoa(host)) {
			t.Errorf("targetError(%v) = %v, want %v %q", tc.err, err, tc.errno, tc.want)
		}
	}
}
