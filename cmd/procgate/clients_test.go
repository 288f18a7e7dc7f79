package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestClientsThroughBroker follows the README's walkthrough with the real
// daemon (procgate serve, default policy, privilege-separated) and the
// real clients run as nobody: a member of group procgate reads another
// user's io while environ is refused with a reason, and ps, lsof and env
// work; no environment content reaches an output or the audit log.
func TestClientsThroughBroker(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("!!! SKIPPED: needs root (CI runs as root): the broker and callers of other uids")
	}
	gid := ensureGroup(t, "procgate")
	dir, err := os.MkdirTemp("", "procgate-clients-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "procgate")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	sock, audit := filepath.Join(dir, "procgate.sock"), filepath.Join(dir, "audit.log")
	var serveLog lockedBuffer // written by exec's copying goroutine while the test reads it
	serve := exec.Command(bin, "serve", "--socket", sock, "--audit-log", audit)
	serve.Stdout, serve.Stderr = &serveLog, &serveLog
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		serve.Process.Signal(syscall.SIGTERM)
		serve.Wait()
		if t.Failed() {
			t.Logf("procgate serve:\n%s", serveLog.String())
		}
	})
	for i := 0; ; i++ {
		if _, err := os.Stat(sock); err == nil && strings.Contains(serveLog.String(), "msg=serving") {
			break
		}
		if i == 300 {
			t.Fatalf("the broker did not start:\n%s", serveLog.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	const secret = "PROCGATE_E2E_SECRET=hunter2-e2e"
	target := exec.Command("sleep", "300")
	target.Env = []string{secret}
	target.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 1234, Gid: 1234}}
	if err := target.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { target.Process.Kill(); target.Wait() })
	pid := strconv.Itoa(target.Process.Pid)

	run := func(groups []uint32, args ...string) (stdout, stderr string, code int) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = []string{"PROCGATE_SOCKET=" + sock}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: groups}}
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			code = ee.ExitCode()
		case err != nil:
			t.Fatalf("%v: %v", args, err)
		}
		if strings.Contains(o.String()+e.String(), "hunter2") {
			t.Errorf("%v printed environment content:\n%s%s", args, o.String(), e.String())
		}
		return o.String(), e.String(), code
	}
	member := []uint32{gid}

	t.Run("read io, environ refused", func(t *testing.T) {
		out, errOut, code := run(member, "read", pid, "io", "environ")
		if code != 1 || !strings.Contains(out, "== io ==") || !strings.Contains(out, "read_bytes:") {
			t.Errorf("exit %d, stdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		if !strings.Contains(errOut, "environ") || !strings.Contains(errOut, "permission denied: policy: no rule grants read { environ }") {
			t.Errorf("environ is not refused with its reason:\n%s", errOut)
		}
	})
	t.Run("not a member: io refused", func(t *testing.T) {
		out, errOut, code := run(nil, "read", pid, "io")
		if code != 1 || strings.Contains(out, "read_bytes") || !strings.Contains(errOut, "io") {
			t.Errorf("exit %d, stdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
	})
	t.Run("env refused", func(t *testing.T) {
		_, errOut, code := run(member, "env", pid)
		if code != 1 || !strings.Contains(errOut, "environ") {
			t.Errorf("exit %d, stderr:\n%s", code, errOut)
		}
	})
	t.Run("ps", func(t *testing.T) {
		out, errOut, code := run(member, "ps", "-o", "json", "--columns", "io,fds,exe")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		found := false
		for line := range strings.Lines(out) {
			var r psRow
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("ps -o json line %q: %v", line, err)
			}
			if r.PID != target.Process.Pid {
				continue
			}
			found = true
			if r.Command != "sleep 300" || r.UID != 1234 || r.Read == nil || r.FDs == nil || r.Exe == nil || !strings.HasSuffix(*r.Exe, "/sleep") {
				t.Errorf("ps row for the target: %+v", r)
			}
		}
		if !found {
			t.Errorf("ps does not list pid %s:\n%s", pid, out)
		}
		out, _, code = run(nil, "ps")
		if code != 0 || !strings.Contains(out, "sleep 300") || !strings.HasPrefix(strings.TrimSpace(out), "USER") {
			t.Errorf("ps as a non-member: exit %d\n%s", code, out)
		}
	})
	t.Run("lsof", func(t *testing.T) {
		out, errOut, code := run(member, "lsof")
		if code != 0 || !strings.HasPrefix(out, "COMMAND") {
			t.Fatalf("exit %d, stderr %s\n%s", code, errOut, out)
		}
		fds := 0
		for line := range strings.Lines(out) {
			if f := strings.Fields(line); len(f) >= 6 && f[0] == "sleep" && f[1] == pid {
				fds++
			}
		}
		if fds == 0 {
			t.Errorf("lsof lists no descriptor of pid %s:\n%s", pid, out)
		}
	})
	t.Run("top", func(t *testing.T) {
		busy := exec.Command("sh", "-c", "while :; do :; done")
		busy.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 1234, Gid: 1234}}
		if err := busy.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { busy.Process.Kill(); busy.Wait() }()
		for _, tc := range []struct {
			name   string
			groups []uint32
			io     bool
		}{{"member", member, true}, {"non-member", nil, false}} {
			out, errOut, code := run(tc.groups, "top", "--delay", "500ms", "-n", "1", "--lines", "0", "-o", "json")
			if code != 0 {
				t.Fatalf("%s: exit %d: %s", tc.name, code, errOut)
			}
			var found bool
			for line := range strings.Lines(out) {
				var r topRow
				if err := json.Unmarshal([]byte(line), &r); err != nil {
					t.Fatalf("top -o json line %q: %v", line, err)
				}
				if r.PID != busy.Process.Pid {
					continue
				}
				found = true
				if r.CPU < 10 || r.UID != 1234 || (r.ReadPS != nil) != tc.io {
					t.Errorf("%s: the busy loop: %+v (io rates shown: %v, want %v)", tc.name, r, r.ReadPS != nil, tc.io)
				}
			}
			if !found {
				t.Errorf("%s: top does not list the busy loop %d:\n%s", tc.name, busy.Process.Pid, out)
			}
		}
		out, _, code := run(member, "top", "--delay", "200ms", "-n", "2", "--lines", "0")
		if code != 0 || strings.Count(out, "procgate top - ") != 2 || !strings.Contains(out, "while :; do :; done") {
			t.Errorf("top in batch mode, 2 intervals: exit %d\n%s", code, out)
		}
	})
	b, err := os.ReadFile(audit)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "denied { read:environ }") || strings.Contains(string(b), "hunter2") {
		t.Errorf("audit log:\n%s", b)
	}
}

// ensureGroup returns the gid of group name, creating it (and removing it
// at the end) when this machine has none.
func ensureGroup(t *testing.T, name string) uint32 {
	t.Helper()
	g, err := user.LookupGroup(name)
	if err != nil {
		if out, err := exec.Command("groupadd", "--system", name).CombinedOutput(); err != nil {
			t.Fatalf("groupadd %s: %v\n%s", name, err, out)
		}
		t.Cleanup(func() { exec.Command("groupdel", name).Run() })
		if g, err = user.LookupGroup(name); err != nil {
			t.Fatal(err)
		}
	}
	id, err := strconv.ParseUint(g.Gid, 10, 32)
	if err != nil {
		t.Fatal(fmt.Errorf("group %s: gid %q: %w", name, g.Gid, err))
	}
	return uint32(id)
}

// lockedBuffer is a bytes.Buffer safe for one writer and concurrent
// readers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
