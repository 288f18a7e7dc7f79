package broker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/procgate/procgate/broker"
	"github.com/procgate/procgate/client"
	"github.com/procgate/procgate/gate"
	"github.com/procgate/procgate/internal/proctest"
	"github.com/procgate/procgate/internal/testenv"
	"github.com/procgate/procgate/policy"
)

// Test uids and groups: unprivileged ids no account needs to exist for.
const (
	uidTarget  = 41001 // owns the target processes
	uidMonitor = 41002 // a member of groupReaders
	uidOther   = 41003 // no group
	groupRead  = 41042
)

// testPolicy grants group groupRead what the default policy grants group
// procgate, by number so that no account has to exist.
var testPolicy = fmt.Sprintf(`option default_audit denied;
option kernel_bound true;
subject readers { group %d; }
target any_process { }
allow readers any_process : read { status stat_full io fd fd_count fdinfo exe cwd root limits cgroup ns };
neverallow * * : read { environ maps smaps };
neverallow * * : attach;
`, groupRead)

// TestMain runs the client role when asked: the tests re-execute this
// binary under other uids to be the broker's callers (and as the init of
// pid namespaces they run callers in).
func TestMain(m *testing.M) {
	if os.Getenv("PROCGATE_TEST_ROLE") == "client" {
		os.Exit(clientRole())
	}
	proctest.RunRoleIfRequested() // the init of a test's pid namespace
	code := m.Run()
	if clientBinaryPath != "" {
		os.RemoveAll(filepath.Dir(clientBinaryPath))
	}
	os.Exit(code)
}

// clientAnswer is what the client role prints for each item.
type clientAnswer struct {
	PID    int             `json:"pid"`
	Start  uint64          `json:"start"`
	Item   string          `json:"item"`
	Value  json.RawMessage `json:"value,omitempty"`
	Errno  int             `json:"errno,omitempty"`
	Reason string          `json:"reason,omitempty"`
	Perm   bool            `json:"perm,omitempty"` // errors.Is(err, fs.ErrPermission)
}

func clientRole() int {
	var req client.Request
	if err := json.Unmarshal([]byte(os.Getenv("PROCGATE_TEST_REQ")), &req); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	c := client.New(os.Getenv("PROCGATE_TEST_SOCKET"))
	enc := json.NewEncoder(os.Stdout)
	n, _ := strconv.Atoi(os.Getenv("PROCGATE_TEST_REPEAT"))
	for range max(n, 1) {
		err := c.Read(context.Background(), req, func(p *client.Process) error {
			for _, it := range req.Items {
				a := clientAnswer{PID: p.PID, Start: p.Start, Item: it}
				raw, err := p.Raw(it)
				if err != nil {
					var ie *client.ItemError
					if errors.As(err, &ie) {
						a.Errno, a.Reason = int(ie.Errno), ie.Reason
					}
					a.Perm = errors.Is(err, fs.ErrPermission)
				} else {
					a.Value = raw
				}
				enc.Encode(a)
			}
			return nil
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "client:", err)
			return 4
		}
	}
	return 0
}

// requireRoot skips, loudly, tests that need root.
func requireRoot(t testing.TB) {
	t.Helper()
	testenv.RequireRoot(t, "spawns processes as other uids and pins them with pidfds")
}

// harness is a broker serving on a temporary socket.
type harness struct {
	socket string
	gate   *gate.Gate
	audit  *gate.Auditor
	srv    *broker.Server
	done   chan error
	log    string
}

// startBroker runs an in-process broker with policy polSrc, the audit
// burst and, when given, changes to its configuration.
func startBroker(t testing.TB, polSrc string, burst int, opts ...func(*broker.Config)) *harness {
	t.Helper()
	pol, err := policy.Load("test.pol", []byte(polSrc))
	if err != nil {
		t.Fatalf("policy: %v", err)
	}
	dir := publicDir(t, "procgate-e2e-")
	h := &harness{socket: filepath.Join(dir, "procgate.sock"), log: filepath.Join(dir, "audit.log"), done: make(chan error, 1)}
	h.audit, err = gate.NewAuditor(gate.AuditConfig{Path: h.log, Burst: burst})
	if err != nil {
		t.Fatal(err)
	}
	h.gate, err = gate.New(gate.Config{Policy: pol, Audit: h.audit})
	if err != nil {
		t.Fatal(err)
	}
	l, err := broker.Listen(h.socket)
	if err != nil {
		t.Fatal(err)
	}
	cfg := broker.Config{Gate: h.gate}
	for _, o := range opts {
		o(&cfg)
	}
	h.srv = broker.New(cfg)
	go func() { h.done <- h.srv.Serve(l) }()
	t.Cleanup(func() { h.stop(t) })
	return h
}

// publicDir makes a temporary directory every uid can enter (t.TempDir's
// parent is private; callers run as other uids), removed at the end.
func publicDir(t testing.TB, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func (h *harness) stop(t testing.TB) {
	if h.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h.srv.Shutdown(ctx)
	<-h.done
	h.audit.Close()
	h.gate.Close()
	h.srv = nil
}

// spawnTarget starts a sleeping process as uid (and gid uid).
func spawnTarget(t testing.TB, uid uint32) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	cmd.Env = []string{"SECRET_TOKEN=hunter2"}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// runClient runs the client role as uid with groups and returns its
// answers.
func runClient(t testing.TB, h *harness, uid uint32, groups []uint32, req client.Request, repeat int) []clientAnswer {
	t.Helper()
	out, err := clientCmd(h, uid, groups, req, repeat).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("client as uid %d: %v: %s", uid, err, ee.Stderr)
		}
		t.Fatalf("client as uid %d: %v", uid, err)
	}
	var as []clientAnswer
	dec := json.NewDecoder(bytesReader(out))
	for dec.More() {
		var a clientAnswer
		if err := dec.Decode(&a); err != nil {
			t.Fatal(err)
		}
		as = append(as, a)
	}
	return as
}

var clientBinaryPath string

// clientBinary is a copy of the test binary that other uids can execute
// (the go tool builds it in a 0700 directory).
var clientBinary = sync.OnceValue(func() string {
	dir, err := os.MkdirTemp("", "procgate-client-")
	if err != nil {
		panic(err)
	}
	os.Chmod(dir, 0o755)
	src, err := os.ReadFile(os.Args[0])
	if err != nil {
		panic(err)
	}
	p := filepath.Join(dir, "client.test")
	clientBinaryPath = p
	if err := os.WriteFile(p, src, 0o755); err != nil {
		panic(err)
	}
	return p
})

func clientCmd(h *harness, uid uint32, groups []uint32, req client.Request, repeat int) *exec.Cmd {
	b, _ := json.Marshal(req)
	cmd := exec.Command(clientBinary(), "-test.run=^$")
	cmd.Env = []string{"PROCGATE_TEST_ROLE=client", "PROCGATE_TEST_SOCKET=" + h.socket, "PROCGATE_TEST_REQ=" + string(b), "PROCGATE_TEST_REPEAT=" + strconv.Itoa(repeat)}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid, Groups: groups}}
	return cmd
}

// rawRequest sends body to the broker as root and returns status and body.
func rawRequest(t testing.TB, socket, raw string) (int, string) {
	t.Helper()
	c, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte(raw)) // an oversized body may be cut short by the answer
	if cw, ok := c.(*net.UnixConn); ok && strings.Contains(raw, "X-Half-Close: 1") {
		cw.CloseWrite() // a truncated body: the peer stops sending
	}
	buf := make([]byte, 1<<16)
	n := 0
	for {
		m, err := c.Read(buf[n:])
		n += m
		if err != nil || n == len(buf) {
			break
		}
	}
	s := string(buf[:n])
	var code int
	fmt.Sscanf(s, "HTTP/1.1 %d", &code)
	return code, s
}

// stuckBody is a request whose answer a client can leave unread: pids
// 1 to 60,000 (most of them denials, "no such process"), many more chunks
// than the gate has workers however few processes the machine runs, and
// an answer of megabytes, far beyond what the socket buffers hold.
func stuckBody() string {
	var b strings.Builder
	b.WriteString(`{"pids":[1`)
	for p := 2; p <= 60000; p++ {
		b.WriteString("," + strconv.Itoa(p))
	}
	b.WriteString(`],"items":["status","limits","maps"]}`)
	return b.String()
}

// dialAs connects to socket with effective uid uid on the calling
// thread only (a raw setresuid, which unlike syscall.Setresuid changes
// one thread), so that the broker's SO_PEERCRED sees uid while the
// process stays root. It needs root.
func dialAs(t testing.TB, socket string, uid uint32) net.Conn {
	t.Helper()
	runtime.LockOSThread()
	if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, ^uintptr(0), uintptr(uid), ^uintptr(0)); e != 0 {
		runtime.UnlockOSThread()
		t.Fatalf("setresuid(-1, %d, -1): %v", uid, e)
	}
	c, err := net.Dial("unix", socket)
	if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, ^uintptr(0), 0, ^uintptr(0)); e != 0 {
		// The thread stays locked, and dies with this goroutine's test.
		t.Fatalf("back to uid 0: %v", e)
	}
	runtime.UnlockOSThread()
	if err != nil {
		t.Fatalf("dial as uid %d: %v", uid, err)
	}
	return c
}
