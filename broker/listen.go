package broker

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ActivationListener returns the listening socket passed by systemd
// socket activation (LISTEN_PID/LISTEN_FDS, fd 3), or nil when there is
// none.
func ActivationListener() (net.Listener, error) {
	if os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) {
		return nil, nil
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n < 1 {
		return nil, nil
	}
	os.Unsetenv("LISTEN_PID")
	os.Unsetenv("LISTEN_FDS")
	os.Unsetenv("LISTEN_FDNAMES")
	unix.CloseOnExec(3)
	f := os.NewFile(3, "systemd-socket")
	l, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("broker: socket activation: %w", err)
	}
	if _, ok := l.(*net.UnixListener); !ok {
		l.Close()
		return nil, errors.New("broker: socket activation: fd 3 is not a Unix socket")
	}
	return l, nil
}

// Listen creates the broker's socket at path: its directory (0755) if
// missing, a stale socket removed, the socket itself world-connectable
// (0666; the policy decides what each caller gets).
func Listen(path string) (net.Listener, error) {
	dir := path[:max(strings.LastIndexByte(path, '/'), 0)]
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("broker: socket directory: %w", err)
		}
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("broker: %s exists and is not a socket", path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("broker: another broker is listening on %s", path)
		}
		os.Remove(path)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("broker: listen: %w", err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		l.Close()
		return nil, fmt.Errorf("broker: chmod socket: %w", err)
	}
	return l, nil
}
