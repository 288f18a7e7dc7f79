package broker_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// procgateBinary builds cmd/procgate as a plain `go build` does (cgo
// on where a C compiler exists: Go's default, and what `go install`
// gives users) into a directory other uids can read.
var procgateBinary = sync.OnceValues(func() (string, error) { return buildProcgate("") })

// procgateStatic builds cmd/procgate with CGO_ENABLED=0, as `make build`
// does: both builds must serve.
var procgateStatic = sync.OnceValues(func() (string, error) { return buildProcgate("0") })

// buildProcgate builds cmd/procgate with CGO_ENABLED=cgo ("" leaves Go's
// default).
func buildProcgate(cgo string) (string, error) {
	dir, err := os.MkdirTemp("", "procgate-bin-")
	if err != nil {
		return "", err
	}
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "procgate")
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = "/usr/local/go/bin/go"
	}
	cmd := exec.Command(gobin, "build", "-o", bin, "github.com/procgate/procgate/cmd/procgate")
	cmd.Env = os.Environ()
	if cgo != "" {
		cmd.Env = append(cmd.Env, "CGO_ENABLED="+cgo)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", &buildError{err, string(out)}
	}
	return bin, nil
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return "go build: " + e.err.Error() + "\n" + e.out }

// daemon is procgate serve (privilege-separated) running from the built
// binary on a temporary socket.
type daemon struct {
	*harness
	cmd     *exec.Cmd
	dir     string
	policy  string
	stderr  string
	front   int
	reader  int
	exited  chan struct{}
	waitErr error
}

var readerPIDRE = regexp.MustCompile(`reader_pid=(\d+)`)

// startDaemon starts procgate serve with policy polSrc (in a file, so
// that SIGHUP reloads it) and extra arguments, and waits until it
// serves.
func startDaemon(t testing.TB, polSrc string, args ...string) *daemon {
	t.Helper()
	return startDaemonUnder(t, nil, polSrc, args...)
}

// startDaemonUnder is startDaemon with the daemon started through the
// command wrap (for example setpriv with a smaller bounding set).
func startDaemonUnder(t testing.TB, wrap []string, polSrc string, args ...string) *daemon {
	t.Helper()
	return startDaemonBuilt(t, procgateBinary, wrap, polSrc, args...)
}

// startDaemonBuilt is startDaemonUnder with the binary from build.
func startDaemonBuilt(t testing.TB, build func() (string, error), wrap []string, polSrc string, args ...string) *daemon {
	t.Helper()
	bin, err := build()
	if err != nil {
		t.Fatalf("cannot build the daemon: %v", err)
	}
	dir := publicDir(t, "procgate-privsep-")
	d := &daemon{
		harness: &harness{socket: filepath.Join(dir, "procgate.sock"), log: filepath.Join(dir, "audit.log")},
		dir:     dir, policy: filepath.Join(dir, "policy.pol"), stderr: filepath.Join(dir, "serve.log"), exited: make(chan struct{}),
	}
	if err := os.WriteFile(d.policy, []byte(polSrc), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(d.stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	argv := append(append(slices.Clone(wrap), bin, "serve", "--socket", d.socket, "--policy", d.policy, "--audit-log", d.log), args...)
	d.cmd = exec.Command(argv[0], argv[1:]...)
	d.cmd.Env = append(os.Environ(), "PROCGATE_FRONT_SELFTEST_OPEN=/etc/hostname")
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d.front = d.cmd.Process.Pid
	go func() { d.waitErr = d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(func() {
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(15 * time.Second):
			d.cmd.Process.Kill()
			<-d.exited
		}
		if d.reader > 0 {
			waitGone(d.reader, 5*time.Second)
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.log0())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		log := d.log0()
		if strings.Contains(log, "msg=serving") {
			if m := readerPIDRE.FindStringSubmatch(log); m != nil {
				d.reader, _ = strconv.Atoi(m[1])
			}
			break
		}
		select {
		case <-d.exited:
			t.Fatalf("daemon exited (%v):\n%s", d.waitErr, log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon not serving after 30s:\n%s", log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return d
}

func (d *daemon) log0() string {
	b, _ := os.ReadFile(d.stderr)
	return string(b)
}

// wait waits up to timeout for the front to exit.
func (d *daemon) wait(t testing.TB, timeout time.Duration) error {
	t.Helper()
	select {
	case <-d.exited:
		return d.waitErr
	case <-time.After(timeout):
		t.Fatalf("the front did not exit within %v", timeout)
		return nil
	}
}

// procStatus returns the named fields of /proc/<pid>/status.
func procStatus(t testing.TB, pid int, fields ...string) map[string]string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		for _, f := range fields {
			if k == f {
				out[k] = strings.TrimSpace(v)
			}
		}
	}
	return out
}

// waitGone waits for pid to exit (gone, or a zombie nobody reaps).
func waitGone(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return true
		}
		if i := bytes.LastIndexByte(b, ')'); i > 0 && len(b) > i+2 && (b[i+2] == 'Z' || b[i+2] == 'X') {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}
