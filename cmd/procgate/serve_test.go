package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/procgate/procgate/internal/testenv"
)

// TestServeNeedsRoot: procgate serve started by an ordinary user says it
// needs root and which capabilities it lacks, and exits with status 2,
// before touching anything (no socket is created).
func TestServeNeedsRoot(t *testing.T) {
	testenv.RequireRoot(t, "runs the command as another user")
	dir, err := os.MkdirTemp("", "procgate-serve-") // t.TempDir's parent is private
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o777)
	bin := filepath.Join(dir, "procgate")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	sock := filepath.Join(dir, "s.sock")
	cmd := exec.Command(bin, "serve", "--socket", sock)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("serve as nobody: %v, want exit status 2\n%s", err, stderr.String())
	}
	msg := stderr.String()
	for _, want := range []string{"serve: needs root", "uid 65534", "CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH", "sudo"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "operation not permitted") || strings.Count(strings.TrimSpace(msg), "\n") > 0 {
		t.Errorf("want one clear line, got %q", msg)
	}
	if _, err := os.Stat(sock); err == nil {
		t.Error("a socket was created")
	}
}
