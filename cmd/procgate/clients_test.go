package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/procgate/procgate/internal/testenv"
)

// TestClientsThroughBroker follows the README's walkthrough with the real
// daemon (procgate serve, default policy, privilege-separated) and the
// real clients run as nobody: a member of group procgate reads another
// user's io while environ is refused with a reason, and ps, lsof and env
// work; no environment content reaches an output or the audit log.
func TestClientsThroughBroker(t *testing.T) {
	testenv.RequireRoot(t, "the broker and callers of other uids")
	gid := testenv.Group(t, "procgate")
	dir, err := os.MkdirTemp("", "procgate-clients-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "procgate")
	// A plain go build, as a user's go install makes it (cgo on where a C
	// compiler exists): it must serve like make build's static binary.
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	sock, audit := filepath.Join(dir, "procgate.sock"), filepath.Join(dir, "audit.log")
	var serveLog testenv.Buffer
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
	target.Dir = dir
	target.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 1234, Gid: 1234}}
	if err := target.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { target.Process.Kill(); target.Wait() })
	pid := strconv.Itoa(target.Process.Pid)
	zombie := exec.Command("sleep", "0")
	zombie.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 1234, Gid: 1234}}
	if err := zombie.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { zombie.Wait() })
	for i := 0; ; i++ {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", zombie.Process.Pid)); err == nil && strings.Contains(string(b), ") Z ") {
			break
		}
		if i == 500 {
			t.Fatal("the zombie never became one")
		}
		time.Sleep(10 * time.Millisecond)
	}
	const missing = "4194000" // above any pid this machine hands out (pid_max is at most 4194304)

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

	t.Run("read -o json: errors carry the errno", func(t *testing.T) {
		out, errOut, code := run(nil, "read", pid, "io", "environ", "-o", "json")
		var got struct {
			Items map[string]struct {
				Error *struct {
					Errno  string `json:"errno"`
					Code   int    `json:"code"`
					Reason string `json:"reason"`
				} `json:"error"`
			} `json:"items"`
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil || code != 1 {
			t.Fatalf("exit %d, %v:\n%s%s", code, err, out, errOut)
		}
		for _, it := range []string{"io", "environ"} {
			e := got.Items[it].Error
			if e == nil || e.Errno != "EACCES" || e.Code != 13 || !strings.Contains(e.Reason, "no rule grants read { "+it+" }") {
				t.Errorf("%s: error %+v, want EACCES, 13 and the policy's reason:\n%s", it, e, out)
			}
		}
		out, _, code = run(nil, "read", missing, "io", "-o", "json")
		if code != 1 || !strings.Contains(out, `"errno": "ESRCH"`) || !strings.Contains(out, `"code": 3`) {
			t.Errorf("a missing pid: exit %d\n%s", code, out)
		}
	})
	t.Run("read an unknown item", func(t *testing.T) {
		out, errOut, code := run(member, "read", pid, "enviro")
		if code != 2 || out != "" || !strings.Contains(errOut, `unknown item "enviro" (did you mean "environ"?)`) {
			t.Errorf("exit %d, stdout %q, stderr:\n%s", code, out, errOut)
		}
	})
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
		// One line, saying it once.
		if strings.Count(errOut, "\n") != 1 || strings.Count(errOut, "permission denied") != 1 || strings.Count(errOut, "environ") != 2 {
			t.Errorf("the refusal repeats itself:\n%s", errOut)
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
		out, _, code = run(nil, "ps", "-o", "json", "--columns", "io")
		for line := range strings.Lines(out) {
			var r psRow
			if err := json.Unmarshal([]byte(line), &r); err != nil || code != 0 {
				t.Fatalf("ps -o json as a non-member: exit %d, line %q: %v", code, line, err)
			}
			if r.PID == target.Process.Pid {
				if e := r.Errors["io"]; r.Read != nil || e == nil || e.Name() != "EACCES" || e.Errno != syscall.EACCES || e.Reason == "" {
					t.Errorf("ps -o json as a non-member, the target's io: %+v, error %+v, want EACCES with a reason", r, e)
				}
			}
		}
		out, _, code = run(nil, "ps")
		if code != 0 || !strings.Contains(out, "sleep 300") || !strings.HasPrefix(out, "USER ") {
			t.Errorf("ps as a non-member: exit %d\n%s", code, out)
		}
		// procps's columns: USER left-aligned, RSS from VmRSS, a zombie
		// as "[comm] <defunct>" with STAT Z.
		for line := range strings.Lines(out) {
			if strings.HasPrefix(line, " ") {
				t.Errorf("USER is not left-aligned: %q", line)
			}
			f := strings.Fields(line)
			switch {
			case len(f) < 11:
				t.Errorf("short ps line %q", line)
			case f[1] == pid:
				status, err := os.ReadFile("/proc/" + pid + "/status")
				if err != nil {
					t.Fatal(err)
				}
				if rss, _ := statusKiB(string(status), "VmRSS"); f[5] != strconv.FormatUint(rss, 10) || f[7] != "S" {
					t.Errorf("the target: RSS %s STAT %s, want its VmRSS %d and S: %q", f[5], f[7], rss, line)
				}
			case f[1] == strconv.Itoa(zombie.Process.Pid):
				if f[7] != "Z" || f[5] != "0" || !strings.HasSuffix(line, " [sleep] <defunct>\n") {
					t.Errorf("the zombie: %q", line)
				}
			}
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
		dirs := map[string]string{}
		for line := range strings.Lines(out) {
			if f := strings.Fields(line); len(f) == 6 && f[1] == pid {
				dirs[f[3]] = f[4] + " " + f[5]
			}
		}
		if dirs["cwd"] != "DIR "+dir || dirs["rtd"] != "DIR /" || dirs["txt"] == "" || !strings.HasPrefix(dirs["txt"], "REG ") {
			t.Errorf("lsof types the target's cwd, rtd and txt as %q, want DIR %s, DIR / and REG:\n%s", dirs, dir, out)
		}
		for _, tc := range []struct {
			name, pid, reason string
			groups            []uint32
		}{
			{"a missing pid", missing, "no such process", member},
			{"a refused pid", pid, "permission denied: policy: no rule grants read { fd }", nil},
		} {
			out, errOut, code := run(tc.groups, "lsof", "-p", tc.pid)
			if code != 1 || out != "" || !strings.HasPrefix(errOut, "procgate lsof: pid "+tc.pid+": "+tc.reason) || strings.Count(errOut, "\n") != 1 {
				t.Errorf("%s: exit %d, stdout %q, stderr %q, want exit 1, nothing and \"procgate lsof: pid %s: %s…\"", tc.name, code, out, errOut, tc.pid, tc.reason)
			}
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
				if e := r.Errors["io"]; (e != nil) == tc.io || e != nil && (e.Name() != "EACCES" || e.Errno != syscall.EACCES) {
					t.Errorf("%s: the busy loop's io refusal: %+v", tc.name, e)
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
