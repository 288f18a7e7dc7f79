package privsep_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/gate"
	"github.com/procgate/procgate/internal/proctest"
	"github.com/procgate/procgate/internal/testenv"
	"github.com/procgate/procgate/policy"
	"github.com/procgate/procgate/privsep"
)

func newGate(t *testing.T) *gate.Gate {
	t.Helper()
	pol, err := policy.Default()
	if err != nil {
		t.Fatal(err)
	}
	g, err := gate.New(gate.Config{Policy: pol})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// TestThreadIdentity: a caller known by a thread id (as a FUSE request
// names it) is resolved to its process, pinned and served, by the
// in-process backend and by the privilege-separated reader alike; a
// thread whose ids differ from the ones reported, a thread that exited
// and a thread that never existed are refused.
func TestThreadIdentity(t *testing.T) {
	testenv.RequireRoot(t, "pins another process and, for the reader, drops capabilities")
	pid, tid := proctest.Start(t, proctest.Options{})
	dead := proctest.ExitedThread(t)
	local := privsep.NewLocal(newGate(t))
	remote, err := privsep.StartReader(privsep.GateConfig{Reader: privsep.Creds{UID: privsep.ReaderIDs, GID: privsep.ReaderIDs}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { remote.Shutdown(10e9) })
	for _, be := range []struct {
		name string
		privsep.Backend
	}{{"local", local}, {"reader", remote}} {
		t.Run(be.name, func(t *testing.T) {
			for _, c := range []struct {
				name     string
				tid      int
				uid, gid uint32
				want     error // nil: served as pid
			}{
				{"second thread", tid, 0, 0, nil},
				{"leader", pid, 0, 0, nil},
				{"other uid", tid, 65534, 0, unix.EAGAIN},
				{"other gid", tid, 0, 65534, unix.EAGAIN},
				{"exited thread", dead, 0, 0, unix.ESRCH},
				{"no such thread", 1<<22 + 1, 0, 0, unix.ESRCH},
				{"pid 0", 0, 0, 0, unix.ESRCH},
			} {
				s, err := be.Open(privsep.Identity{Source: privsep.FromThread, PID: c.tid, UID: c.uid, GID: c.gid, PidFD: -1})
				if c.want != nil {
					if err == nil {
						s.Close()
						t.Errorf("%s: served", c.name)
					} else if be.name == "local" && !errors.Is(err, c.want) {
						t.Errorf("%s: %v, want %v", c.name, err, c.want)
					} else if be.name == "reader" && !strings.Contains(err.Error(), c.want.Error()) {
						// The reader's refusal crosses the channel as text.
						t.Errorf("%s: %v, want %v", c.name, err, c.want)
					}
					continue
				}
				if err != nil {
					t.Errorf("%s: %v", c.name, err)
					continue
				}
				b, err := s.Whoami()
				var who struct {
					PID          int    `json:"pid"`
					IdentifiedBy string `json:"identified_by"`
				}
				if err == nil {
					err = json.Unmarshal(b, &who)
				}
				if err != nil || who.PID != pid || who.IdentifiedBy != "thread" {
					t.Errorf("%s: whoami %s, %v; want pid %d identified by thread", c.name, b, err, pid)
				}
				var lines []string
				_, _, err = s.Read(context.Background(), &gate.Request{PIDs: []int{pid}, Items: []gate.Item{policy.ItemStatus}}, func(b []byte) error {
					lines = append(lines, string(b))
					return nil
				})
				if err != nil || len(lines) != 1 || !strings.Contains(lines[0], `"status":{"value":"Name:`) {
					t.Errorf("%s: read %q, %v", c.name, lines, err)
				}
				s.Close()
			}
		})
	}
}
