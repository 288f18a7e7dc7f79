package daemon_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/procgate/procgate/broker"
	"github.com/procgate/procgate/daemon"
	"github.com/procgate/procgate/internal/testenv"
	"github.com/procgate/procgate/privsep"
)

// envRole runs this test binary as a helper: "get" sends GET to the
// path in PROCGATE_TEST_PATH on the socket in PROCGATE_TEST_SOCKET and
// prints the status and body (the daemon refuses itself as a caller, so
// its callers are other processes).
const envRole = "PROCGATE_DAEMON_TEST_ROLE"

func TestMain(m *testing.M) {
	privsep.RunReaderIfRequested()
	if os.Getenv(envRole) == "get" {
		os.Exit(getRole())
	}
	os.Exit(m.Run())
}

func getRole() int {
	hc := http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", os.Getenv("PROCGATE_TEST_SOCKET"))
	}}}
	resp, err := hc.Get("http://procgate" + os.Getenv("PROCGATE_TEST_PATH"))
	if err != nil {
		fmt.Println(0, err)
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, strings.TrimSpace(string(b)))
	return 0
}

// get runs the get role against socket and returns its output.
func get(t *testing.T, socket, path string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), envRole+"=get", "PROCGATE_TEST_SOCKET="+socket, "PROCGATE_TEST_PATH="+path)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("get %s: %v", path, err)
	}
	return strings.TrimSpace(string(out))
}

// running is a daemon.Run in progress.
type running struct {
	socket, policy, metrics, audit string
	log                            *testenv.Buffer
	cancel                         context.CancelFunc
	done                           chan error
	reader                         int
}

var readerPID = regexp.MustCompile(`msg=serving .*reader_pid=(\d+)`)

// start runs the broker front under daemon.Run, keeping this process's
// privileges (the test process must keep them), with a policy file and a
// metrics socket, and waits until it serves.
func start(t *testing.T, polSrc string, noPrivsep bool) *running {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	r := &running{
		socket: filepath.Join(dir, "procgate.sock"), policy: filepath.Join(dir, "p.pol"),
		metrics: filepath.Join(dir, "metrics.sock"), audit: filepath.Join(dir, "audit.log"),
		log: &testenv.Buffer{}, done: make(chan error, 1),
	}
	if err := os.WriteFile(r.policy, []byte(polSrc), 0o644); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(r.log, nil))
	cfg := daemon.Config{
		Gate:    privsep.GateConfig{Policy: r.policy, AuditLog: r.audit},
		Metrics: r.metrics, KeepPrivileges: true, NoPrivsep: noPrivsep, DrainTimeout: 5 * time.Second, Log: log,
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- daemon.Run(ctx, cfg, &broker.Front{Socket: r.socket, Log: log, Version: "test"}) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(20 * time.Second):
			t.Error("daemon.Run did not return after cancel")
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", r.log)
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; {
		if l := r.log.String(); strings.Contains(l, "msg=serving") {
			if m := readerPID.FindStringSubmatch(l); m != nil {
				r.reader, _ = strconv.Atoi(m[1])
			}
			return r
		}
		select {
		case err := <-r.done:
			t.Fatalf("daemon.Run returned %v before serving:\n%s", err, r.log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("not serving after 30s:\n%s", r.log)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func metrics(t *testing.T, socket string) string {
	t.Helper()
	hc := http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
	resp, err := hc.Get("http://metrics/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

const allowStatus = "allow * * : read { status };\n"

// TestRunLifecycle runs the broker front under daemon.Run, in-process
// and privilege-separated: it serves, SIGHUP reloads the policy (a new
// generation, visible to callers and in the metrics), an invalid policy
// keeps the last good one, and the end of ctx drains: Run returns nil,
// the socket is removed, the reader exits and the audit log is closed.
func TestRunLifecycle(t *testing.T) {
	testenv.RequireRoot(t, "pins callers of the broker; the reader re-executes this binary")
	for _, mode := range []struct {
		name      string
		noPrivsep bool
	}{{"privsep", false}, {"in-process", true}} {
		t.Run(mode.name, func(t *testing.T) {
			r := start(t, allowStatus, mode.noPrivsep)
			if got := get(t, r.socket, "/v1/version"); !strings.HasPrefix(got, `200 {"api":"v1","policy_generation":1,"server":"test"}`) {
				t.Errorf("version: %s", got)
			}
			if mode.noPrivsep != (r.reader == 0) {
				t.Errorf("reader pid %d logged in mode %s", r.reader, mode.name)
			}
			os.WriteFile(r.policy, []byte(allowStatus+"# changed\n"), 0o644)
			syscall.Kill(os.Getpid(), syscall.SIGHUP)
			waitFor(t, "generation 2", func() bool { return strings.Contains(get(t, r.socket, "/v1/version"), `"policy_generation":2`) })
			if m := metrics(t, r.metrics); !strings.Contains(m, "procgate_policy_generation 2") {
				t.Errorf("metrics after reload:\n%s", m)
			}
			os.WriteFile(r.policy, []byte("allow * * : read { no_such_item };\n"), 0o644)
			syscall.Kill(os.Getpid(), syscall.SIGHUP)
			waitFor(t, "the reload failure counted", func() bool {
				return strings.Contains(metrics(t, r.metrics), `procgate_policy_reloads_total{result="error"} 1`)
			})
			if got := get(t, r.socket, "/v1/version"); !strings.Contains(got, `"policy_generation":2`) {
				t.Errorf("after an invalid policy: %s", got)
			}
			// A valid policy that another user could have written is refused too.
			os.WriteFile(r.policy, []byte(allowStatus+"# writable by anyone\n"), 0o644)
			os.Chmod(r.policy, 0o666)
			syscall.Kill(os.Getpid(), syscall.SIGHUP)
			waitFor(t, "the unsafe policy refused", func() bool {
				return strings.Contains(metrics(t, r.metrics), `procgate_policy_reloads_total{result="error"} 2`)
			})
			if got := get(t, r.socket, "/v1/version"); !strings.Contains(got, `"policy_generation":2`) {
				t.Errorf("after a world-writable policy: %s", got)
			}
			r.cancel()
			select {
			case err := <-r.done:
				if err != nil {
					t.Fatalf("Run after cancel: %v", err)
				}
				r.done <- nil // for the cleanup
			case <-time.After(20 * time.Second):
				t.Fatal("Run did not drain")
			}
			if _, err := os.Stat(r.socket); err == nil {
				t.Error("socket left behind")
			}
			if r.reader > 0 && !gone(r.reader) {
				t.Error("reader still running")
			}
			if !strings.Contains(r.log.String(), "msg=stopped") {
				t.Errorf("no clean stop logged:\n%s", r.log)
			}
		})
	}
}

// TestRunReaderDies: the reader's death ends Run with ErrReaderExited
// (the daemon fails closed and exits; its supervisor restarts it).
func TestRunReaderDies(t *testing.T) {
	testenv.RequireRoot(t, "the reader re-executes this binary with capabilities")
	r := start(t, allowStatus, false)
	if r.reader <= 0 {
		t.Fatal("no reader pid")
	}
	syscall.Kill(r.reader, syscall.SIGKILL)
	select {
	case err := <-r.done:
		if !errors.Is(err, daemon.ErrReaderExited) {
			t.Errorf("Run = %v, want ErrReaderExited", err)
		}
		r.done <- err
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not notice the reader's death")
	}
}

// TestRunSetupErrors: what prevents serving is a *SetupError (exit
// status 2), and leaves no reader behind.
func TestRunSetupErrors(t *testing.T) {
	testenv.RequireRoot(t, "the reader re-executes this binary with capabilities")
	dir := t.TempDir()
	notSocket := filepath.Join(dir, "file")
	os.WriteFile(notSocket, nil, 0o644)
	good := filepath.Join(dir, "p.pol")
	os.WriteFile(good, []byte(allowStatus), 0o644)
	for _, c := range []struct {
		name string
		cfg  daemon.Config
		sock string
		want string
	}{
		{"missing policy", daemon.Config{Gate: privsep.GateConfig{Policy: filepath.Join(dir, "none.pol")}}, filepath.Join(dir, "a.sock"), "no such file"},
		{"bad audit format", daemon.Config{Gate: privsep.GateConfig{AuditFormat: "xml"}}, filepath.Join(dir, "b.sock"), "audit format"},
		{"socket path taken", daemon.Config{Gate: privsep.GateConfig{Policy: good}}, notSocket, "not a socket"},
		{"metrics address", daemon.Config{Gate: privsep.GateConfig{Policy: good}, Metrics: "256.0.0.1:1"}, filepath.Join(dir, "c.sock"), "metrics"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var log testenv.Buffer
			c.cfg.KeepPrivileges = true
			c.cfg.Log = slog.New(slog.NewTextHandler(&log, nil))
			err := daemon.Run(context.Background(), c.cfg, &broker.Front{Socket: c.sock})
			var se *daemon.SetupError
			if !errors.As(err, &se) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Run = %v, want a SetupError mentioning %q", err, c.want)
			}
		})
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// gone waits for pid to exit (gone, or a zombie nobody reaps).
func gone(pid int) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return true
		}
		line, _ := bufio.NewReader(f).ReadString('\n')
		f.Close()
		if i := strings.LastIndexByte(line, ')'); i > 0 && len(line) > i+2 && (line[i+2] == 'Z' || line[i+2] == 'X') {
			return true
		}
	}
	return false
}
