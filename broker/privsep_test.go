package broker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/procgate/procgate/client"
)

// TestPrivsepEndToEnd runs the real two-process daemon (procgate serve,
// privilege-separated): a caller of another uid reads io of a target of
// a third uid as the policy grants, and is refused environ; the front
// holds no capability, has no_new_privs and cannot open a file nor
// connect to a TCP port (Landlock); the reader holds exactly
// CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH with no_new_privs. Both builds
// do it all: a plain `go build` (cgo, dynamically linked) and
// CGO_ENABLED=0.
func TestPrivsepEndToEnd(t *testing.T) {
	requireRoot(t)
	for _, b := range []struct {
		name  string
		build func() (string, error)
	}{{"go-build", procgateBinary}, {"cgo-disabled", procgateStatic}} {
		t.Run(b.name, func(t *testing.T) { privsepEndToEnd(t, b.build) })
	}
}

func privsepEndToEnd(t *testing.T, build func() (string, error)) {
	d := startDaemonBuilt(t, build, nil, testPolicy)
	tgt := spawnTarget(t, uidTarget)
	pid := tgt.Process.Pid

	as := runClient(t, d.harness, uidMonitor, []uint32{groupRead}, client.Request{PIDs: []int{pid}, Items: []string{"status", "io", "exe", "fd_count", "environ", "mem"}}, 1)
	got := map[string]clientAnswer{}
	for _, a := range as {
		got[a.Item] = a
	}
	for item, want := range map[string]syscall.Errno{"status": 0, "io": 0, "exe": 0, "fd_count": 0, "environ": syscall.EACCES, "mem": syscall.EPERM} {
		a, ok := got[item]
		if !ok || syscall.Errno(a.Errno) != want {
			t.Errorf("%s: %+v, want errno %v", item, a, want)
		}
	}
	if a := got["io"]; !bytes.Contains(a.Value, []byte("rchar")) {
		t.Errorf("io value %s", a.Value)
	}
	if bytes.Contains(got["environ"].Value, []byte("hunter2")) {
		t.Error("environ answered")
	}
	// The daemon's own processes are nobody's business: a member reading
	// the front's and the reader's fdinfo (the front's epoll shows heap
	// pointers) is refused.
	for _, a := range runClient(t, d.harness, uidMonitor, []uint32{groupRead}, client.Request{PIDs: []int{d.front, d.reader}, Items: []string{"fdinfo", "io"}}, 1) {
		if a.Value != nil || syscall.Errno(a.Errno) != syscall.EACCES {
			t.Errorf("a member reads the daemon's pid %d %s: %+v", a.PID, a.Item, a)
		}
	}
	// A stranger gets only what the kernel would give it.
	as = runClient(t, d.harness, uidOther, nil, client.Request{PIDs: []int{pid}, Items: []string{"status", "io"}}, 1)
	if len(as) != 2 || as[0].Errno != 0 || syscall.Errno(as[1].Errno) != syscall.EACCES {
		t.Errorf("stranger: %+v", as)
	}

	front := procStatus(t, d.front, "CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb", "NoNewPrivs")
	for _, k := range []string{"CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"} {
		if front[k] != "0000000000000000" {
			t.Errorf("front %s = %s, want none", k, front[k])
		}
	}
	if front["NoNewPrivs"] != "1" {
		t.Errorf("front NoNewPrivs = %s", front["NoNewPrivs"])
	}
	if d.reader <= 0 {
		t.Fatal("no reader pid logged")
	}
	if f := procStatus(t, d.front, "Uid", "Gid", "Groups"); f["Uid"] != "61182\t61182\t61182\t61182" || f["Gid"] != "61182\t61182\t61182\t61182" || f["Groups"] != "" {
		t.Errorf("front credentials %v, want uid and gid 61182, no groups", f)
	}
	if r := procStatus(t, d.reader, "Uid", "Gid", "Groups", "Seccomp"); r["Uid"] != "61183\t61183\t61183\t61183" || r["Gid"] != "61183\t61183\t61183\t61183" || r["Groups"] != "" || r["Seccomp"] != "2" {
		t.Errorf("reader credentials %v, want uid and gid 61183, no groups, a seccomp filter", r)
	}
	rd := procStatus(t, d.reader, "CapEff", "CapPrm", "CapBnd", "CapAmb", "NoNewPrivs", "PPid")
	kept := fmt.Sprintf("%016x", 1<<19|1<<2) // CAP_SYS_PTRACE | CAP_DAC_READ_SEARCH
	for _, k := range []string{"CapEff", "CapPrm", "CapBnd"} {
		if rd[k] != kept {
			t.Errorf("reader %s = %s, want %s", k, rd[k], kept)
		}
	}
	if rd["CapAmb"] != "0000000000000000" || rd["NoNewPrivs"] != "1" || rd["PPid"] != strconv.Itoa(d.front) {
		t.Errorf("reader status %v (front %d)", rd, d.front)
	}
	// The self-test hook: the confined front tried to open /etc/hostname
	// and to connect to 127.0.0.1:9.
	log := d.log0()
	if !strings.Contains(log, `open="open /etc/hostname: permission denied"`) || !strings.Contains(log, `tcp_connect="dial tcp4 127.0.0.1:9: connect: permission denied"`) {
		t.Errorf("the front is not confined by Landlock:\n%s", log)
	}
	if _, err := os.Stat("/sys/kernel/security/landlock"); err == nil && !strings.Contains(log, "landlock_abi=") {
		t.Errorf("no landlock_abi in the log")
	}

	// whoami and version through the front.
	c := client.New(d.socket)
	defer c.Close()
	code, body := rawRequest(t, d.socket, "GET /v1/whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if code != 200 || !strings.Contains(body, `"pidfd_pinned":true`) || !strings.Contains(body, `"uid":0`) {
		t.Errorf("whoami: %d %s", code, body)
	}
	// A malformed request is refused by the front.
	code, body = rawRequest(t, d.socket, "POST /v1/read HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5\r\nConnection: close\r\n\r\n{\"pid")
	if code != 400 || !strings.Contains(body, `"bad_request"`) {
		t.Errorf("malformed: %d %s", code, trunc(body))
	}
	// The audit log, written by the reader, holds the environ denial.
	d.cmd.Process.Signal(syscall.SIGTERM)
	if err := d.wait(t, 15*time.Second); err != nil {
		t.Errorf("front exit: %v", err)
	}
	b, _ := os.ReadFile(d.log)
	if !bytes.Contains(b, []byte("broker: denied { read:environ } for pid=")) || bytes.Contains(b, []byte("hunter2")) {
		t.Errorf("audit log:\n%s", b)
	}
	if !waitGone(d.reader, 5*time.Second) {
		t.Error("the reader outlived the front's shutdown")
	}
}

// TestPrivsepReaderDeath: when the reader dies, a request in progress is
// answered 503 with a JSON error and the front exits non-zero.
func TestPrivsepReaderDeath(t *testing.T) {
	requireRoot(t)
	d := startDaemon(t, testPolicy)
	c, err := net.Dial("unix", d.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	body := `{"pids":[1],"items":["status"]}`
	fmt.Fprintf(c, "POST /v1/read HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body[:10])
	time.Sleep(200 * time.Millisecond) // the handler is now reading the body
	if err := syscall.Kill(d.reader, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	c.Write([]byte(body[10:]))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var resp bytes.Buffer
	resp.ReadFrom(c)
	if !strings.HasPrefix(resp.String(), "HTTP/1.1 503") || !strings.Contains(resp.String(), `{"error":{"code":"unavailable"`) {
		t.Errorf("answer after the reader died:\n%s", resp.String())
	}
	err = d.wait(t, 10*time.Second)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("front exit = %v, want status 1", err)
	}
	if !strings.Contains(d.log0(), "the privileged reader exited") {
		t.Errorf("no error logged:\n%s", d.log0())
	}
}

// TestPrivsepFrontDeath: when the front dies, the reader sees EOF and
// exits.
func TestPrivsepFrontDeath(t *testing.T) {
	requireRoot(t)
	d := startDaemon(t, testPolicy)
	if _, err := client.New(d.socket).ReadAll(context.Background(), client.Request{PIDs: []int{1}, Items: []string{"status"}}); err != nil {
		t.Fatal(err)
	}
	d.cmd.Process.Kill()
	d.wait(t, 5*time.Second)
	if !waitGone(d.reader, 10*time.Second) {
		t.Fatalf("the reader %d outlived the front", d.reader)
	}
	if !strings.Contains(d.log0(), "the front exited; stopping") {
		t.Errorf("reader log:\n%s", d.log0())
	}
}

// TestPrivsepReload: SIGHUP to the front reloads the policy in the
// reader; an invalid policy leaves the last good one in force.
func TestPrivsepReload(t *testing.T) {
	requireRoot(t)
	polA := fmt.Sprintf("subject s { uid %d; }\ntarget t { }\nallow s t : read { io };\n", uidOther)
	polB := fmt.Sprintf("subject s { uid %d; }\ntarget t { }\nallow s t : read { fd_count };\n", uidOther)
	d := startDaemon(t, polA)
	pid := spawnTarget(t, uidTarget).Process.Pid
	check := func(wantIO, wantFD bool) {
		t.Helper()
		as := runClient(t, d.harness, uidOther, nil, client.Request{PIDs: []int{pid}, Items: []string{"io", "fd_count"}}, 1)
		if len(as) != 2 || (as[0].Errno == 0) != wantIO || (as[1].Errno == 0) != wantFD {
			t.Errorf("answers %+v, want io %v fd_count %v", as, wantIO, wantFD)
		}
	}
	gen := func() uint64 {
		code, body := rawRequest(t, d.socket, "GET /v1/version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		var v struct {
			Gen uint64 `json:"policy_generation"`
		}
		if code != 200 || json.Unmarshal([]byte(body[strings.Index(body, "{"):]), &v) != nil {
			t.Fatalf("version: %d %s", code, body)
		}
		return v.Gen
	}
	waitGen := func(than uint64) uint64 {
		t.Helper()
		for range 250 {
			if g := gen(); g > than {
				return g
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("policy generation still %d", than)
		return 0
	}
	check(true, false)
	g0 := gen()
	os.WriteFile(d.policy, []byte(polB), 0o644)
	d.cmd.Process.Signal(syscall.SIGHUP)
	g1 := waitGen(g0)
	check(false, true)
	os.WriteFile(d.policy, []byte("this is not a policy {"), 0o644)
	d.cmd.Process.Signal(syscall.SIGHUP)
	for range 100 {
		if strings.Contains(d.log0(), "policy reload failed") {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if g := gen(); g != g1 {
		t.Errorf("generation %d after an invalid policy, want %d", g, g1)
	}
	check(false, true)
}

// TestPrivsepDrainAudit: 32 clients read while the daemon gets SIGTERM;
// the front drains, the reader flushes the audit log: every status value
// a client received has exactly one audit record, and none more.
func TestPrivsepDrainAudit(t *testing.T) {
	requireRoot(t)
	d := startDaemon(t, auditPolicy, "--audit-burst", "0", "--audit-budget", "0")
	tgt := spawnTarget(t, uidTarget)
	received, stop, wg := auditedLoad(d.socket, tgt.Process.Pid)
	time.Sleep(1500 * time.Millisecond)
	d.cmd.Process.Signal(syscall.SIGTERM)
	if err := d.wait(t, 30*time.Second); err != nil {
		t.Errorf("front exit: %v", err)
	}
	close(stop)
	wg.Wait()
	if !waitGone(d.reader, 5*time.Second) {
		t.Error("reader still running")
	}
	b, err := os.ReadFile(d.log)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Count(b, []byte("\n"))
	granted := bytes.Count(b, []byte("broker: granted { read:status }"))
	t.Logf("%d records, %d status values received", lines, received.Load())
	if lines == 0 || granted != lines || int64(lines) != received.Load() {
		t.Errorf("audit log has %d lines (%d status grants), clients received %d audited status values", lines, granted, received.Load())
	}
}

// TestPrivsepManyConnections: 1,000 connections open (half never finish
// their headers) and a client that never reads a large answer; other
// callers are still served promptly through the front and the reader.
func TestPrivsepManyConnections(t *testing.T) {
	requireRoot(t)
	d := startDaemon(t, auditPolicy)
	manyConnections(t, d.socket, 1000)
	code, resp := rawRequest(t, d.socket, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if code != 404 {
		t.Errorf("metrics on the API socket: %d %s", code, trunc(resp))
	}
}

// TestPrivsepReaderMounts: the reader runs in a mount namespace of its
// own in which every mount is read-only (the audit log's directory
// included: it writes the log through a descriptor), while the front's
// mounts are untouched.
func TestPrivsepReaderMounts(t *testing.T) {
	requireRoot(t)
	d := startDaemon(t, auditPolicy)
	if d.reader == 0 {
		t.Fatal("no reader pid in the daemon's log")
	}
	self, _ := os.Readlink("/proc/self/ns/mnt")
	reader, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", d.reader))
	if err != nil {
		t.Fatal(err)
	}
	if reader == self {
		t.Fatalf("the reader shares the test's mount namespace %s", self)
	}
	front, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", d.front))
	if front != self {
		t.Errorf("the front moved to mount namespace %s", front)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", d.reader))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) < 6 {
			t.Fatalf("mountinfo line %q", line)
		}
		if point, opts := f[4], strings.Split(f[5], ","); !slices.Contains(opts, "ro") {
			t.Errorf("%s is mounted %s in the reader, want ro", point, f[5])
		}
	}
	if !strings.Contains(d.log0(), "reader confined") {
		t.Errorf("the daemon does not say the reader is confined:\n%s", d.log0())
	}
	// It still reads and audits: the audit log, opened by the front, is
	// written through the descriptor it was given.
	c := client.New(d.socket)
	defer c.Close()
	if _, err := c.ReadAll(context.Background(), client.Request{PIDs: []int{os.Getpid()}, Items: []string{"status"}}); err != nil {
		t.Fatal(err)
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	d.wait(t, 15*time.Second)
	if b, _ := os.ReadFile(d.log); !bytes.Contains(b, []byte("granted { read:status }")) {
		t.Errorf("no record in the audit log:\n%s", b)
	}
}

// TestPrivsepWithoutSysAdmin: where the daemon may not create a mount
// namespace (no CAP_SYS_ADMIN, as in the Kubernetes example), the reader
// starts in the front's, says that its mounts stay writable, and the
// daemon serves.
func TestPrivsepWithoutSysAdmin(t *testing.T) {
	requireRoot(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatal("setpriv (util-linux) is needed to drop CAP_SYS_ADMIN from the bounding set")
	}
	d := startDaemonUnder(t, []string{setpriv, "--bounding-set=-sys_admin"}, auditPolicy)
	if !strings.Contains(d.log0(), "cannot have a mount namespace of its own") {
		t.Errorf("the daemon does not say the reader shares its mount namespace:\n%s", d.log0())
	}
	self, _ := os.Readlink("/proc/self/ns/mnt")
	if reader, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", d.reader)); reader != self {
		t.Errorf("the reader is in mount namespace %s, want the front's %s", reader, self)
	}
	c := client.New(d.socket)
	defer c.Close()
	if _, err := c.ReadAll(context.Background(), client.Request{PIDs: []int{os.Getpid()}, Items: []string{"status"}}); err != nil {
		t.Fatal(err)
	}
}

// TestPrivsepSystemdBounding: under the systemd unit's bounding set
// (deploy/systemd/procgate.service: the two reading capabilities and
// those to change users) the daemon serves, and drops to the same
// credentials as from a full root.
func TestPrivsepSystemdBounding(t *testing.T) {
	requireRoot(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatal("setpriv (util-linux) is needed to run under a smaller bounding set")
	}
	d := startDaemonUnder(t, []string{setpriv, "--bounding-set=-all,+sys_ptrace,+dac_read_search,+setuid,+setgid,+setpcap"}, auditPolicy)
	kept := fmt.Sprintf("%016x", 1<<19|1<<2)
	if r := procStatus(t, d.reader, "Uid", "CapEff", "CapBnd"); r["Uid"] != "61183\t61183\t61183\t61183" || r["CapEff"] != kept || r["CapBnd"] != kept {
		t.Errorf("reader %v", r)
	}
	if f := procStatus(t, d.front, "Uid", "CapEff", "CapBnd"); f["Uid"] != "61182\t61182\t61182\t61182" || f["CapEff"] != "0000000000000000" || f["CapBnd"] != "0000000000000000" {
		t.Errorf("front %v", f)
	}
	c := client.New(d.socket)
	defer c.Close()
	if _, err := c.ReadAll(context.Background(), client.Request{PIDs: []int{os.Getpid()}, Items: []string{"status"}}); err != nil {
		t.Fatal(err)
	}
}
