package live

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/internal/proctest"
)

// The test binary re-executes itself in a helper role when
// PROCGATE_LIVE_TEST_ROLE is set; see runRole.
const roleEnv = "PROCGATE_LIVE_TEST_ROLE"

func TestMain(m *testing.M) {
	proctest.RunRoleIfRequested()
	if role := os.Getenv(roleEnv); role != "" {
		if err := runRole(role); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	code := m.Run()
	stopPool()
	proctest.Cleanup()
	os.Exit(code)
}

// runRole runs a helper role:
//
//	creds: set gids "r,e,s" from PROCGATE_LIVE_GIDS and uids from
//	PROCGATE_LIVE_UIDS (setresgid, setresuid: they reset dumpable), then
//	PR_SET_DUMPABLE from PROCGATE_LIVE_DUMPABLE when given, print "ready"
//	and wait for stdin to close.
func runRole(role string) error {
	switch role {
	case "creds":
		if g := os.Getenv("PROCGATE_LIVE_GIDS"); g != "" {
			ids, err := triple(g)
			if err != nil {
				return err
			}
			if err := syscall.Setgroups(nil); err != nil {
				return err
			}
			if err := syscall.Setresgid(ids[0], ids[1], ids[2]); err != nil {
				return fmt.Errorf("setresgid: %w", err)
			}
		}
		if u := os.Getenv("PROCGATE_LIVE_UIDS"); u != "" {
			ids, err := triple(u)
			if err != nil {
				return err
			}
			if err := syscall.Setresuid(ids[0], ids[1], ids[2]); err != nil {
				return fmt.Errorf("setresuid: %w", err)
			}
		}
		if d := os.Getenv("PROCGATE_LIVE_DUMPABLE"); d != "" {
			v, _ := strconv.Atoi(d)
			if err := unix.Prctl(unix.PR_SET_DUMPABLE, uintptr(v), 0, 0, 0); err != nil {
				return fmt.Errorf("PR_SET_DUMPABLE: %w", err)
			}
		}
		fmt.Println("ready")
		_, _ = io.Copy(io.Discard, bufio.NewReader(os.Stdin))
		return nil
	}
	return fmt.Errorf("unknown role %q", role)
}

func triple(s string) ([3]int, error) {
	var out [3]int
	parts := strings.Split(s, ",")
	if len(parts) != 3 {
		return out, fmt.Errorf("want r,e,s: %q", s)
	}
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil {
			return out, err
		}
		out[i] = v
	}
	return out, nil
}

// startThreaded starts a helper with a second thread and returns its pid
// and the thread's id; it ends with the test.
func startThreaded(t *testing.T) (pid, tid int) {
	t.Helper()
	return proctest.Start(t, proctest.Options{})
}
