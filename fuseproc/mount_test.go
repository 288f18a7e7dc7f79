package fuseproc_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/internal/proctest"
	"github.com/procgate/procgate/internal/testenv"
)

// The test binary doubles as a prometheus/procfs client run as another
// user: PROCGATE_FUSE_PROCFS=<proc mount> <pid> prints what the library
// reads of pid as JSON.
const procfsEnv = "PROCGATE_FUSE_PROCFS"

// Users of the tests: the target's owner, a member of group procgate,
// a non-member.
const (
	targetUID = 1234
	memberUID = 1235
	otherUID  = 1236
)

var (
	binDir string // a directory every user may read, with procgate and the test binary
	binary string // procgate, from a plain go build
)

func TestMain(m *testing.M) {
	if os.Getenv(procfsEnv) != "" {
		os.Exit(runProcfs())
	}
	if v := os.Getenv(harnessEnv); v != "" {
		os.Exit(runHarness(v))
	}
	if v := os.Getenv(watchEnv); v != "" {
		os.Exit(runWatch(v))
	}
	os.Exit(m.Run())
}

// harnessEnv makes the test binary a test harness that starts procgate
// mount as the tests do, waits until it serves and then waits to be
// killed: "BINARY DIR".
const harnessEnv = "PROCGATE_FUSE_HARNESS"

func runHarness(v string) int {
	bin, dir, _ := strings.Cut(v, " ")
	cmd := exec.Command(bin, "mount", dir)
	log := &testenv.Buffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if _, err := startDaemon(cmd); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for i := 0; !strings.Contains(log.String(), "msg=serving") || !mounted(dir); i++ {
		if i == 500 {
			fmt.Fprintf(os.Stderr, "the mount did not come up:\n%s", log.String())
			return 1
		}
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Printf("%d\n", cmd.Process.Pid)
	select {}
}

// runProcfs reads a process through github.com/prometheus/procfs.
func runProcfs() int {
	fs, err := procfs.NewFS(os.Getenv(procfsEnv))
	if err != nil {
		fmt.Println(err)
		return 2
	}
	pid, _ := strconv.Atoi(os.Args[len(os.Args)-1])
	p, err := fs.Proc(pid)
	if err != nil {
		fmt.Println(err)
		return 2
	}
	out := map[string]any{}
	errOf := func(err error) string {
		if err == nil {
			return ""
		}
		return err.Error()
	}
	exe, err := p.Executable()
	out["exe"], out["exe_err"] = exe, errOf(err)
	io, err := p.IO()
	out["io_rchar"], out["io_err"] = io.RChar, errOf(err)
	n, err := p.FileDescriptorsLen()
	out["fds"], out["fds_err"] = n, errOf(err)
	_, err = p.Environ()
	out["environ_err"] = errOf(err)
	st, err := p.Stat()
	out["comm"], out["stat_err"] = st.Comm, errOf(err)
	json.NewEncoder(os.Stdout).Encode(out)
	return 0
}

// setUp builds procgate and the public copy of the test binary once.
var setUpOnce sync.Once

func setUp(t testing.TB) {
	t.Helper()
	testenv.RequireRoot(t, "FUSE mounts and callers of other uids")
	setUpOnce.Do(func() {
		dir, err := os.MkdirTemp("", "procgate-fuse-")
		if err != nil {
			t.Fatal(err)
		}
		os.Chmod(dir, 0o755)
		binDir = dir
		binary = filepath.Join(dir, "procgate")
		// A plain go build (cgo on where a compiler exists), as go
		// install makes it.
		if out, err := exec.Command("go", "build", "-o", binary, "../cmd/procgate").CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
		src, err := os.ReadFile(os.Args[0])
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, "fuseproc.test"), src, 0o755)
		}
		if err != nil {
			t.Fatal(err)
		}
	})
	if binary == "" {
		t.Fatal("set-up failed earlier")
	}
}

// mount is a running procgate mount.
type mount struct {
	dir   string
	audit string
	cmd   *exec.Cmd
	log   *testenv.Buffer
	done  chan error
	// prefix runs the daemon under another command, which must exec
	// it (so that signals reach it); attr are that command's attributes.
	prefix []string
	attr   *syscall.SysProcAttr
	// watch is the daemon's watchdog (startDaemon).
	watch *exec.Cmd
}

// startMount runs procgate mount on a new directory. Its cleanup,
// registered before the mount is made, stops the daemon and detaches a
// mount left behind, even when the test failed.
func startMount(t testing.TB, args ...string) *mount {
	t.Helper()
	m := newMount(t)
	m.start(t, args...)
	return m
}

// newMount makes the directory of a mount and registers its cleanup,
// which also detaches mounts a test made on the directory itself.
func newMount(t testing.TB) *mount {
	t.Helper()
	setUp(t)
	base, err := os.MkdirTemp("", "procgate-mnt-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(base, 0o755)
	m := &mount{dir: filepath.Join(base, "proc"), audit: filepath.Join(base, "audit.log"), log: &testenv.Buffer{}, done: make(chan error, 1)}
	os.Mkdir(m.dir, 0o755)
	t.Cleanup(func() {
		if m.watch != nil {
			m.watch.Process.Kill()
			m.watch.Wait()
		}
		if m.cmd != nil && m.cmd.Process != nil {
			m.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-m.done:
			case <-time.After(10 * time.Second):
				m.cmd.Process.Kill()
				<-m.done
			}
		}
		waitUnmounted(m.dir, 5*time.Second)
		for i := 0; i < 4 && mounted(m.dir); i++ {
			syscall.Unmount(m.dir, syscall.MNT_DETACH) // last resort
		}
		if t.Failed() {
			t.Logf("procgate mount:\n%s", m.log.String())
		}
		os.RemoveAll(base)
	})
	return m
}

// watchEnv makes the test binary a watchdog for one daemon: its pid.
const watchEnv = "PROCGATE_FUSE_WATCH"

// startDaemon starts cmd, a daemon for a test, and a watchdog that
// sends it SIGTERM when the test binary dies without running its
// cleanups (a -timeout panic, SIGKILL), so that it drains and unmounts
// instead of serving a mount nobody will remove (TestHarnessKilled).
// The watchdog is this binary, told by the kernel (a parent-death
// signal): the daemon's own would not do, since changing its
// credentials clears it (prctl(2), PR_SET_PDEATHSIG). The caller kills
// the returned watchdog when it stops the daemon itself.
func startDaemon(cmd *exec.Cmd) (*exec.Cmd, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	w := exec.Command(os.Args[0])
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, harnessEnv+"=") {
			w.Env = append(w.Env, kv)
		}
	}
	w.Env = append(w.Env, watchEnv+"="+strconv.Itoa(cmd.Process.Pid))
	w.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	w.Stderr = os.Stderr
	out, err := w.StdoutPipe()
	if err == nil {
		err = w.Start()
	}
	if err == nil {
		var ready string
		if _, err = fmt.Fscan(out, &ready); err == nil && ready != "watching" {
			err = fmt.Errorf("watchdog: %q", ready)
		}
		if err != nil {
			w.Process.Kill()
			w.Wait()
		}
	}
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("the daemon's watchdog: %w", err)
	}
	return w, nil
}

// runWatch pins the daemon pid and, when SIGTERM comes, sends it on.
func runWatch(v string) int {
	pid, err := strconv.Atoi(v)
	if err != nil {
		return 2
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "watchdog:", err)
		return 1
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	fmt.Println("watching")
	<-term
	unix.PidfdSendSignal(fd, unix.SIGTERM, nil, 0)
	return 0
}

func (m *mount) start(t testing.TB, args ...string) {
	t.Helper()
	argv := append(append(slices.Clone(m.prefix), binary, "mount", m.dir, "--audit-log", m.audit), args...)
	m.cmd = exec.Command(argv[0], argv[1:]...)
	m.cmd.SysProcAttr = m.attr
	m.log = &testenv.Buffer{}
	m.cmd.Stdout, m.cmd.Stderr = m.log, m.log
	w, err := startDaemon(m.cmd)
	if err != nil {
		t.Fatal(err)
	}
	m.watch = w
	m.done = make(chan error, 1)
	go func() { m.done <- m.cmd.Wait() }()
	for i := 0; ; i++ {
		if strings.Contains(m.log.String(), "msg=serving") && mounted(m.dir) {
			return
		}
		select {
		case err := <-m.done:
			t.Fatalf("procgate mount exited: %v\n%s", err, m.log.String())
		case <-time.After(20 * time.Millisecond):
		}
		if i == 500 {
			t.Fatalf("the mount did not come up:\n%s", m.log.String())
		}
	}
}

// mounted reports whether dir is a mount point in this mount namespace.
func mounted(dir string) bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fs := strings.Fields(sc.Text()); len(fs) > 4 && fs[4] == dir {
			return true
		}
	}
	return false
}

func waitUnmounted(dir string, d time.Duration) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if !mounted(dir) {
			return true
		}
	}
	return !mounted(dir)
}

// caller runs commands as one user.
type caller struct {
	uid, gid uint32
	groups   []uint32
}

func (c caller) setpriv() []string {
	a := []string{"setpriv", "--reuid=" + strconv.Itoa(int(c.uid)), "--regid=" + strconv.Itoa(int(c.gid))}
	if len(c.groups) == 0 {
		return append(a, "--clear-groups")
	}
	gs := make([]string, len(c.groups))
	for i, g := range c.groups {
		gs[i] = strconv.Itoa(int(g))
	}
	return append(a, "--groups="+strings.Join(gs, ","))
}

// run runs argv as the caller.
func (c caller) run(argv ...string) (string, error) {
	full := append(c.setpriv(), "--")
	full = append(full, argv...)
	out, err := exec.Command(full[0], full[1:]...).CombinedOutput()
	return string(out), err
}

// inProc runs argv as the caller in a new mount namespace where the
// mount is bound over /proc: unmodified tools read it as /proc.
func (c caller) inProc(m *mount, argv ...string) (string, error) {
	script := `mount --bind "$0" /proc && exec "$@"`
	full := []string{"unshare", "-m", "--propagation", "private", "--", "sh", "-c", script, m.dir}
	full = append(full, c.setpriv()...)
	full = append(full, "--")
	full = append(full, argv...)
	out, err := exec.Command(full[0], full[1:]...).CombinedOutput()
	return string(out), err
}

// startTarget starts sleep as targetUID with a secret in its
// environment, in dir.
func startTarget(t *testing.T, dir string) int {
	t.Helper()
	cmd := exec.Command("sleep", "300")
	cmd.Env = []string{"PROCGATE_FUSE_SECRET=hunter2-fuse"}
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: targetUID, Gid: targetUID}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}

// TestUnmodifiedTools is the "done when": unmodified ps aux,
// top -b -n 1, lsof -p and a program using prometheus/procfs, run as an
// unprivileged member of group procgate in a mount namespace where the
// mount is /proc, show another user's io, exe and fd counts while
// environ and maps stay refused; a non-member gets what the kernel gives
// it and nothing more.
func TestUnmodifiedTools(t *testing.T) {
	gid := testenv.Group(t, "procgate")
	m := startMount(t)
	member := caller{memberUID, memberUID, []uint32{gid}}
	other := caller{otherUID, otherUID, nil}
	pid := startTarget(t, binDir)
	p := strconv.Itoa(pid)

	t.Run("ps", func(t *testing.T) {
		out, err := member.inProc(m, "ps", "aux")
		if err != nil {
			t.Fatalf("ps aux: %v\n%s", err, out)
		}
		found := false
		for _, l := range strings.Split(out, "\n") {
			f := strings.Fields(l)
			if len(f) > 10 && f[1] == p {
				found = true
				if f[0] != strconv.Itoa(targetUID) || !strings.HasSuffix(l, "sleep 300") || f[5] == "0" {
					t.Errorf("ps aux's line for the target: %q (want user %d, RSS > 0, command sleep 300)", l, targetUID)
				}
			}
		}
		if !found {
			t.Errorf("ps aux does not list the target %d:\n%s", pid, out)
		}
	})
	t.Run("top", func(t *testing.T) {
		out, err := member.inProc(m, "top", "-b", "-n", "1", "-w", "200")
		if err != nil || !strings.Contains(out, "Tasks:") || !strings.Contains(out, "MiB Mem") {
			t.Fatalf("top -b -n 1: %v\n%s", err, out)
		}
	})
	t.Run("lsof", func(t *testing.T) {
		out, _ := member.inProc(m, "lsof", "-w", "-p", p)
		if !strings.Contains(out, " cwd ") || !strings.Contains(out, binDir) || !strings.Contains(out, " txt ") ||
			!strings.Contains(out, "sleep") || strings.Contains(out, "Permission denied") {
			t.Errorf("lsof -p as a member: want cwd %s and txt without a denial:\n%s", binDir, out)
		}
		out, _ = other.inProc(m, "lsof", "-p", p)
		if !strings.Contains(out, "Permission denied") || strings.Contains(out, binDir) {
			t.Errorf("lsof -p as a non-member: want the kernel's denials:\n%s", out)
		}
	})
	t.Run("files", func(t *testing.T) {
		for _, tc := range []struct {
			who     caller
			name    string
			argv    []string
			ok      bool
			contain string
		}{
			{member, "member io", []string{"cat", "/proc/" + p + "/io"}, true, "rchar:"},
			{member, "member exe", []string{"readlink", "/proc/" + p + "/exe"}, true, "sleep"},
			{member, "member fd", []string{"ls", "/proc/" + p + "/fd"}, true, "0"},
			{member, "member environ", []string{"cat", "/proc/" + p + "/environ"}, false, "Permission denied"},
			{member, "member maps", []string{"cat", "/proc/" + p + "/maps"}, false, "Permission denied"},
			{member, "member mem", []string{"cat", "/proc/" + p + "/mem"}, false, "Permission denied"},
			{member, "member status", []string{"cat", "/proc/" + p + "/status"}, true, "Uid:\t1234"},
			{other, "other io", []string{"cat", "/proc/" + p + "/io"}, false, "Permission denied"},
			{other, "other exe", []string{"readlink", "/proc/" + p + "/exe"}, false, ""},
			{other, "other environ", []string{"cat", "/proc/" + p + "/environ"}, false, "Permission denied"},
			{other, "other status", []string{"cat", "/proc/" + p + "/status"}, true, "Uid:\t1234"},
		} {
			out, err := tc.who.inProc(m, tc.argv...)
			if (err == nil) != tc.ok || !strings.Contains(out, tc.contain) {
				t.Errorf("%s: %v: err %v, want ok=%v and %q:\n%s", tc.name, tc.argv, err, tc.ok, tc.contain, out)
			}
			if strings.Contains(out, "hunter2") {
				t.Errorf("%s: the secret leaked:\n%s", tc.name, out)
			}
		}
	})
	t.Run("procfs", func(t *testing.T) {
		read := func(c caller) map[string]any {
			out, err := c.inProc(m, "env", procfsEnv+"=/proc", filepath.Join(binDir, "fuseproc.test"), p)
			if err != nil {
				t.Fatalf("procfs: %v\n%s", err, out)
			}
			var v map[string]any
			if err := json.Unmarshal([]byte(out), &v); err != nil {
				t.Fatalf("procfs: %v\n%s", err, out)
			}
			return v
		}
		v := read(member)
		if !strings.HasSuffix(v["exe"].(string), "sleep") || v["io_err"] != "" || v["fds"].(float64) < 3 ||
			v["environ_err"] == "" || v["comm"] != "sleep" {
			t.Errorf("procfs as a member: want exe, io, fd count, comm, and environ refused: %v", v)
		}
		v = read(other)
		if v["exe_err"] == "" || v["io_err"] == "" || v["environ_err"] == "" || v["comm"] != "sleep" {
			t.Errorf("procfs as a non-member: want exe, io and environ refused, comm read: %v", v)
		}
	})
	t.Run("kernel-equal", func(t *testing.T) {
		// What a non-member gets through the mount is what the kernel
		// itself gives it on the real /proc.
		for _, f := range []string{"status", "stat", "statm", "cmdline", "comm", "io", "environ", "maps", "smaps", "auxv", "limits", "cgroup", "mem", "stack", "syscall", "wchan", "sched"} {
			_, kerr := other.run("cat", "/proc/"+p+"/"+f)
			_, ferr := other.run("cat", filepath.Join(m.dir, p, f))
			if (kerr == nil) != (ferr == nil) {
				t.Errorf("%s: the kernel answers err=%v, the mount err=%v", f, kerr, ferr)
			}
		}
		for _, l := range []string{"exe", "cwd", "root"} {
			_, kerr := other.run("readlink", "/proc/"+p+"/"+l)
			_, ferr := other.run("readlink", filepath.Join(m.dir, p, l))
			if (kerr == nil) != (ferr == nil) {
				t.Errorf("%s: the kernel answers err=%v, the mount err=%v", l, kerr, ferr)
			}
		}
	})
	b, _ := os.ReadFile(m.audit)
	if strings.Contains(string(b), "hunter2") {
		t.Errorf("the secret reached the audit log")
	}
	if !strings.Contains(string(b), "environ") {
		t.Errorf("no denial of environ was audited:\n%s", b)
	}
}

// TestNoStaleData: two callers of different rights read the same files
// alternately, through the same mount, and each always gets its own
// answer (no page, attribute or entry cache carries one caller's read to
// the other).
func TestNoStaleData(t *testing.T) {
	gid := testenv.Group(t, "procgate")
	m := startMount(t)
	member := caller{memberUID, memberUID, []uint32{gid}}
	other := caller{otherUID, otherUID, nil}
	pid := strconv.Itoa(startTarget(t, binDir))
	io, exe := filepath.Join(m.dir, pid, "io"), filepath.Join(m.dir, pid, "exe")
	for i := range 10 {
		if out, err := member.run("cat", io); err != nil || !strings.Contains(out, "rchar") {
			t.Fatalf("round %d: member: %v %s", i, err, out)
		}
		if out, err := other.run("cat", io); err == nil || !strings.Contains(out, "Permission denied") {
			t.Fatalf("round %d: non-member read io: %v %s", i, err, out)
		}
		if out, err := member.run("readlink", exe); err != nil || !strings.Contains(out, "sleep") {
			t.Fatalf("round %d: member exe: %v %s", i, err, out)
		}
		if out, err := other.run("readlink", exe); err == nil {
			t.Fatalf("round %d: non-member read exe: %s", i, out)
		}
	}
}

// TestFollowingLinks: a link through the mount is only a path: the
// kernel resolves it in the caller's own view, never the target's.
func TestFollowingLinks(t *testing.T) {
	gid := testenv.Group(t, "procgate")
	m := startMount(t)
	member := caller{memberUID, memberUID, []uint32{gid}}
	// The target works in a tmpfs of its own mount namespace.
	dir, err := os.MkdirTemp("", "procgate-private-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	script := `mount -t tmpfs tmpfs "$0" && echo hidden > "$0/marker" && chmod 644 "$0/marker" && cd "$0" && exec setpriv --reuid=1234 --regid=1234 --clear-groups sleep 300`
	cmd := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", script, dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pid := strconv.Itoa(cmd.Process.Pid)
	for i := 0; ; i++ {
		if b, _ := os.ReadFile("/proc/" + pid + "/comm"); strings.TrimSpace(string(b)) == "sleep" {
			break
		}
		if i == 200 {
			t.Fatal("the target did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Through the real /proc, root follows the magic link into the
	// target's tmpfs.
	if b, err := os.ReadFile("/proc/" + pid + "/cwd/marker"); err != nil || string(b) != "hidden\n" {
		t.Fatalf("the real /proc: %v %q", err, b)
	}
	if out, err := member.run("readlink", filepath.Join(m.dir, pid, "cwd")); err != nil || strings.TrimSpace(out) != dir {
		t.Fatalf("readlink cwd: %v %q, want %s", err, out, dir)
	}
	if out, err := member.run("cat", filepath.Join(m.dir, pid, "cwd", "marker")); err == nil || strings.Contains(out, "hidden") {
		t.Errorf("cwd/marker through the mount: %v %q, want ENOENT (the caller's own view)", err, out)
	}
	if out, err := member.run("cat", filepath.Join(m.dir, pid, "root", "etc", "shadow")); err == nil {
		t.Errorf("root/etc/shadow through the mount was read: %q", out)
	}
	if _, err := os.ReadFile(filepath.Join(m.dir, pid, "cwd", "marker")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("root's cwd/marker through the mount: %v, want ENOENT", err)
	}
}

// TestReadOnly: nothing is writable, and the mount is what the issue
// asks: allow_other, no default_permissions.
func TestReadOnly(t *testing.T) {
	m := startMount(t)
	for _, p := range []string{"self/comm", "self/attr/current", "sys/kernel/pid_max", "self/mem"} {
		f, err := os.OpenFile(filepath.Join(m.dir, p), os.O_WRONLY, 0)
		if err == nil {
			f.Close()
			t.Errorf("%s opened for writing", p)
		}
	}
	if err := os.WriteFile(filepath.Join(m.dir, "new"), nil, 0o644); err == nil {
		t.Error("a file was created")
	}
	b, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, " "+m.dir+" ") {
			if !strings.Contains(l, "allow_other") || strings.Contains(l, "default_permissions") || !strings.Contains(l, " ro") {
				t.Errorf("mount options: %s", l)
			}
		}
	}
}

// TestPIDNamespace: a caller in a pid namespace of its own (a container)
// sees its own processes, numbered as it numbers them, and nothing of
// the host's.
func TestPIDNamespace(t *testing.T) {
	m := startMount(t)
	host := strconv.Itoa(startTarget(t, binDir))
	script := `mount --bind "$0" /proc && readlink /proc/self && readlink /proc/thread-self && ls /proc && (cat /proc/` + host + `/status || echo host-hidden) && ps -e -o pid=,comm=`
	out, err := exec.Command("unshare", "-m", "-p", "-f", "--propagation", "private", "sh", "-c", script, m.dir).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if self, err := strconv.Atoi(lines[0]); err != nil || self > 10 {
		t.Errorf("self in the namespace is %q, want a small pid:\n%s", lines[0], out)
	}
	if ts := strings.Split(lines[1], "/task/"); len(ts) != 2 || len(ts[0]) > 2 || len(ts[1]) > 2 {
		t.Errorf("thread-self in the namespace is %q, want <pid>/task/<tid> with its small numbers", lines[1])
	}
	if !strings.Contains(string(out), "host-hidden") {
		t.Errorf("the host's process %s is visible in the namespace:\n%s", host, out)
	}
	for _, l := range lines[2:] {
		for _, f := range strings.Fields(l) {
			if n, err := strconv.Atoi(f); err == nil && n > 10 {
				t.Errorf("pid %d listed in the namespace:\n%s", n, out)
			}
		}
	}
}

// TestOneNameTwoProcesses: pid 1 is the host's init to a caller here
// and the container's own init to a caller in a pid namespace of its
// own, and both walk the same mount, whose names inside a process
// directory the kernel keeps. Read alternately, every read answers the
// process its caller names: the container's walk must not reach the
// host's entries under a kept name, nor the host's the container's.
func TestOneNameTwoProcesses(t *testing.T) {
	m := startMount(t)
	want, err := os.ReadFile("/proc/1/comm")
	if err != nil {
		t.Fatal(err)
	}
	if string(want) == "sh\n" {
		t.Skip("the host's init is sh: the two processes' comm would not differ")
	}
	host := filepath.Join(m.dir, "1", "comm")
	// The container's init (sh, pid 1 there) reads its own comm through
	// the mount bound over its /proc each time the test writes a line,
	// and answers on stdout.
	script := `mount --bind "$0" /proc || exit 1
while read -r _; do
	c=$(cat /proc/1/comm 2>&1) || c="failed: $c"; echo "$c"
	s=$(head -n 1 /proc/1/status 2>&1) || s="failed: $s"; echo "$s"
done`
	cmd := exec.Command("unshare", "-m", "-p", "-f", "--propagation", "private", "sh", "-c", script, m.dir)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outp, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); cmd.Wait() })
	out := bufio.NewReader(outp)
	for i := range 20 {
		if got, err := os.ReadFile(host); err != nil || string(got) != string(want) {
			t.Fatalf("round %d: the host's pid 1 comm through the mount: %q, %v; want %q", i, got, err, want)
		}
		if st, err := os.ReadFile(filepath.Join(m.dir, "1", "status")); err != nil || !strings.HasPrefix(string(st), "Name:\t"+strings.TrimSpace(string(want))+"\n") {
			t.Fatalf("round %d: the host's pid 1 status through the mount: %.40q, %v", i, st, err)
		}
		if _, err := in.Write([]byte("\n")); err != nil {
			t.Fatal(err)
		}
		type answer struct {
			comm, name string
			err        error
		}
		got := make(chan answer, 1)
		go func() {
			var a answer
			if a.comm, a.err = out.ReadString('\n'); a.err == nil {
				a.name, a.err = out.ReadString('\n')
			}
			got <- a
		}()
		select {
		case a := <-got:
			if a.err != nil || a.comm != "sh\n" || a.name != "Name:\tsh\n" {
				t.Fatalf("round %d: the container's pid 1 through the mount: comm %q, status %q (%v); want sh", i, a.comm, a.name, a.err)
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("round %d: no answer from the container in 30 s", i)
		}
	}
}

// TestHarnessKilled: a test binary that dies mid-test runs none of its
// cleanups (go test's -timeout panics; CI may SIGKILL it). The daemon
// it started is told by the kernel (Pdeathsig) and unmounts: no mount
// is left behind, served or dead.
func TestHarnessKilled(t *testing.T) {
	setUp(t)
	base := t.TempDir()
	os.Chmod(base, 0o755)
	dir := filepath.Join(base, "proc")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := 0; i < 4 && mounted(dir); i++ {
			syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	h := exec.Command(os.Args[0])
	h.Env = append(os.Environ(), harnessEnv+"="+binary+" "+dir)
	h.Stderr = os.Stderr
	out, err := h.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	var daemon int
	if _, err := fmt.Fscan(out, &daemon); err != nil {
		h.Process.Kill()
		h.Wait()
		t.Fatalf("the harness did not mount: %v", err)
	}
	h.Process.Kill()
	h.Wait()
	if !waitUnmounted(dir, 15*time.Second) {
		syscall.Kill(daemon, syscall.SIGTERM)
		t.Fatal("the mount outlived its harness by 15 s")
	}
	for end := time.Now().Add(15 * time.Second); syscall.Kill(daemon, 0) == nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			syscall.Kill(daemon, syscall.SIGKILL)
			t.Fatal("the daemon outlived its harness by 15 s")
		}
	}
}

// TestUnseenCaller runs the daemon in a pid namespace (and a /proc) of
// its own, its mount shared back to this namespace: a caller here is
// one the daemon's pid namespace cannot see, so the kernel sends pid 0.
// Every per-process request is refused with EACCES (fail closed), and
// the refusal is logged; files that are not per-process pass through as
// the caller's own uid and gid may read them.
func TestUnseenCaller(t *testing.T) {
	m := newMount(t)
	if err := syscall.Mount(m.dir, m.dir, "", syscall.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("", m.dir, "", syscall.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	// The new mount namespace keeps the directory's peer group (so the
	// FUSE mount reaches this namespace) but makes /proc private before
	// mounting the new pid namespace's procfs over it.
	m.attr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS}
	m.prefix = []string{"sh", "-c", `mount --make-private /proc && mount -t proc proc /proc && exec "$0" "$@"`}
	m.start(t)
	for _, name := range []string{"self/status", "1/status", strconv.Itoa(os.Getpid()) + "/status"} {
		_, err := os.ReadFile(filepath.Join(m.dir, name))
		if !errors.Is(err, syscall.EACCES) {
			t.Errorf("read %s by a caller the daemon cannot see: %v, want EACCES", name, err)
		}
	}
	if _, err := os.ReadDir(m.dir); !errors.Is(err, syscall.EACCES) {
		t.Errorf("list the mount by a caller the daemon cannot see: %v, want EACCES", err)
	}
	if b, err := os.ReadFile(filepath.Join(m.dir, "uptime")); err != nil || len(b) == 0 {
		t.Errorf("uptime (passed through): %q, %v", b, err)
	}
	for end := time.Now().Add(5 * time.Second); !strings.Contains(m.log.String(), "refused a caller that could not be identified"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("no refusal logged:\n%s", m.log.String())
		}
	}
	if !strings.Contains(m.log.String(), "not visible in the daemon's pid namespace") {
		t.Errorf("the refusal does not say why:\n%s", m.log.String())
	}
}

// TestHidePID: under --hidepid invisible a caller sees only what it may
// ptrace-read (or the policy grants stat_full of).
func TestHidePID(t *testing.T) {
	gid := testenv.Group(t, "procgate")
	m := startMount(t, "--hidepid", "invisible")
	pid := strconv.Itoa(startTarget(t, binDir))
	other := caller{otherUID, otherUID, nil}
	member := caller{memberUID, memberUID, []uint32{gid}}
	if out, _ := other.run("ls", m.dir); strings.Contains(" "+strings.ReplaceAll(out, "\n", " ")+" ", " "+pid+" ") {
		t.Errorf("a non-member lists the target under hidepid")
	}
	if _, err := other.run("cat", filepath.Join(m.dir, pid, "status")); err == nil {
		t.Errorf("a non-member reads the target's status under hidepid")
	}
	if out, err := member.run("cat", filepath.Join(m.dir, pid, "status")); err != nil {
		t.Errorf("a member cannot read the target's status under hidepid: %v %s", err, out)
	}
	if out, err := other.run("cat", filepath.Join(m.dir, "self", "status")); err != nil {
		t.Errorf("a caller cannot read its own status under hidepid: %v %s", err, out)
	}
}

// TestOddNames: names that are not pids or entries are ENOENT, never a
// crash; the daemon keeps serving.
func TestOddNames(t *testing.T) {
	m := startMount(t)
	for _, n := range []string{"0", "01", "+1", "-1", "4294967297", "99999999999999999999", "1/nonexistent", "self/../self/nope",
		strings.Repeat("9", 255), "1/" + strings.Repeat("a", 255), "1/fd/x", "1/fdinfo/../fdinfo/zz", "1/task/0/stat", "1/task/01", "1/task/1/task", "1/task/" + strconv.Itoa(proctest.NeverPID), "..."} {
		_, err := os.Stat(filepath.Join(m.dir, n))
		if err == nil {
			t.Errorf("%q exists", n)
		}
	}
	if _, err := os.Stat(filepath.Join(m.dir, strings.Repeat("9", 256))); err == nil {
		t.Error("a 256-byte name exists")
	}
	if b, err := os.ReadFile(filepath.Join(m.dir, "self", "status")); err != nil || !strings.Contains(string(b), "Name:") {
		t.Fatalf("the mount stopped serving: %v", err)
	}
}

// TestLoadReloadKill: 64 parallel readers while the policy is reloaded
// (SIGHUP), then while the daemon is killed (SIGKILL): its unmounter
// detaches the mount, readers get errors and no crash, and a new mount
// on the same directory works.
func TestLoadReloadKill(t *testing.T) {
	m := startMount(t)
	var stop atomic.Bool
	var reads, fails atomic.Int64
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			files := []string{"self/status", "1/stat", "self/io", "loadavg", "1/cmdline"}
			for j := 0; !stop.Load(); j++ {
				if _, err := os.ReadFile(filepath.Join(m.dir, files[(i+j)%len(files)])); err != nil {
					fails.Add(1)
				} else {
					reads.Add(1)
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	m.cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(300 * time.Millisecond)
	if fails.Load() != 0 {
		t.Errorf("%d of %d reads failed before the kill (reload included)", fails.Load(), reads.Load()+fails.Load())
	}
	m.cmd.Process.Kill()
	<-m.done
	if !waitUnmounted(m.dir, 5*time.Second) {
		t.Fatal("the mount is still there 5 s after the daemon was killed")
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d reads, %d failed (after the kill)", reads.Load(), fails.Load())
	m.start(t)
	if b, err := os.ReadFile(filepath.Join(m.dir, "self", "status")); err != nil || !strings.Contains(string(b), "Name:") {
		t.Fatalf("a new mount on the same directory: %v", err)
	}
}

// TestShutdownUnderLoad: SIGTERM while readers read unmounts and exits
// cleanly.
func TestShutdownUnderLoad(t *testing.T) {
	m := startMount(t)
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				os.ReadFile(filepath.Join(m.dir, "self", "stat"))
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-m.done:
		if err != nil {
			t.Errorf("procgate mount exited with %v after SIGTERM", err)
		}
		m.done <- err
	case <-time.After(20 * time.Second):
		t.Fatal("procgate mount did not exit 20 s after SIGTERM")
	}
	stop.Store(true)
	wg.Wait()
	if !waitUnmounted(m.dir, 5*time.Second) {
		t.Error("the mount is still there after a clean shutdown")
	}
}

// unmounterOf returns the pid of the unmounter watching dir.
func unmounterOf(t *testing.T, dir string) int {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, _ := os.ReadFile("/proc/" + e.Name() + "/environ")
		if strings.Contains(string(b), "PROCGATE_FUSE_UNMOUNTER="+dir+"\x00") {
			return pid
		}
	}
	t.Fatal("no unmounter for " + dir)
	return 0
}

// TestDeadMountReplaced: when the daemon and its unmounter die together
// the mount is left dead ("Transport endpoint is not connected"); the
// next start detaches it and mounts afresh.
func TestDeadMountReplaced(t *testing.T) {
	m := startMount(t)
	um := unmounterOf(t, m.dir)
	syscall.Kill(um, syscall.SIGKILL)
	m.cmd.Process.Kill()
	<-m.done
	time.Sleep(100 * time.Millisecond)
	if _, err := os.Stat(filepath.Join(m.dir, "self")); !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("after both died: %v, want ENOTCONN (a dead mount)", err)
	}
	m.start(t)
	if b, err := os.ReadFile(filepath.Join(m.dir, "self", "status")); err != nil || !strings.Contains(string(b), "Name:") {
		t.Fatalf("the new mount: %v", err)
	}
}

// TestShutdownWithBoundCopy: a copy of the mount in another mount
// namespace (a container's /proc) does not hold up a clean shutdown;
// the copy is dead once the daemon is gone.
func TestShutdownWithBoundCopy(t *testing.T) {
	m := startMount(t)
	holder := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", `mount --bind "$0" /mnt && echo bound && exec sleep 60`, m.dir)
	out, _ := holder.StdoutPipe()
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	var b [6]byte
	if _, err := out.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-m.done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
		m.done <- err
	case <-time.After(10 * time.Second):
		t.Fatal("no exit 10 s after SIGTERM")
	}
	if !waitUnmounted(m.dir, 5*time.Second) {
		t.Error("still mounted here")
	}
}

// TestTargetExits: processes that exit while they are looked up, opened
// and read give ENOENT (or the bytes read at open), never another
// error, and the daemon keeps serving.
func TestTargetExits(t *testing.T) {
	m := startMount(t)
	// An open file keeps what was read at open after its process exits.
	cmd := exec.Command("sleep", "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := strconv.Itoa(cmd.Process.Pid)
	f, err := os.Open(filepath.Join(m.dir, pid, "status"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	b := make([]byte, 64<<10)
	if n, err := f.Read(b); err != nil || !strings.Contains(string(b[:n]), "Name:\tsleep") {
		t.Errorf("read after the exit: %v %q", err, b[:n])
	}
	f.Close()
	if _, err := os.ReadFile(filepath.Join(m.dir, pid, "status")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("open after the exit: %v, want ENOENT", err)
	}
	// Short-lived processes read while they exit.
	var bad atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				c := exec.Command("sleep", "0.0"+strconv.Itoa(1+(i+w)%9))
				if c.Start() != nil {
					continue
				}
				dir := filepath.Join(m.dir, strconv.Itoa(c.Process.Pid))
				for _, name := range []string{"status", "stat", "cmdline", "io", "maps", "fd"} {
					_, err := os.ReadFile(filepath.Join(dir, name))
					if name == "fd" {
						_, err = os.ReadDir(filepath.Join(dir, name))
					}
					if err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ESRCH) {
						bad.Add(1)
						t.Logf("%s: %v", name, err)
					}
				}
				c.Wait()
			}
		}()
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Errorf("%d reads of exiting processes failed with another error than ENOENT", bad.Load())
	}
	if _, err := os.ReadFile(filepath.Join(m.dir, "self", "status")); err != nil {
		t.Fatalf("the mount stopped serving: %v", err)
	}
}

// TestPIDReuse: a process directory looked up (held open) before its
// process exits and its pid is taken by a new process never answers
// with the new process's data.
func TestPIDReuse(t *testing.T) {
	m := startMount(t)
	reuses := 0
	for attempt := 0; attempt < 40 && reuses < 10; attempt++ {
		old := exec.Command("sleep", "300")
		if err := old.Start(); err != nil {
			t.Fatal(err)
		}
		pid := old.Process.Pid
		dir, err := os.Open(filepath.Join(m.dir, strconv.Itoa(pid)))
		if err != nil {
			t.Fatal(err)
		}
		old.Process.Kill()
		old.Wait()
		// Ask the kernel for the same pid again.
		os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(pid-1)), 0)
		neu := exec.Command("sh", "-c", "exec sleep 300")
		if err := neu.Start(); err != nil {
			dir.Close()
			t.Fatal(err)
		}
		reused := neu.Process.Pid == pid
		// Often within the same clock tick as the old one's start: the
		// start time alone cannot tell them apart.
		fd, err := syscall.Openat(int(dir.Fd()), "cmdline", syscall.O_RDONLY, 0)
		if err == nil {
			b := make([]byte, 4096)
			n, _ := syscall.Read(fd, b)
			syscall.Close(fd)
			t.Fatalf("attempt %d (pid reused: %v): the old directory answered %q", attempt, reused, b[:max(n, 0)])
		} else if !errors.Is(err, syscall.ENOENT) {
			t.Fatalf("attempt %d: %v, want ENOENT", attempt, err)
		}
		dir.Close()
		neu.Process.Kill()
		neu.Wait()
		if reused {
			reuses++
		}
	}
	if reuses == 0 {
		t.Fatal("the kernel never reused the pid in 40 attempts: the test could not check anything")
	}
	t.Logf("pid reused %d times: the old directory always answered ENOENT", reuses)
}

// TestThreads: task/<tid>/ answers for that thread, thread-self names
// the calling thread, and a thread's files are decided as its process's.
func TestThreads(t *testing.T) {
	gid := testenv.Group(t, "procgate")
	m := startMount(t)
	pid := strconv.Itoa(os.Getpid())
	tid := proctest.LockedThread(t)
	ents, err := os.ReadDir(filepath.Join(m.dir, pid, "task"))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range ents {
		found = found || e.Name() == strconv.Itoa(tid)
	}
	if !found {
		t.Errorf("task/ of %s lists %d entries, not the thread %d", pid, len(ents), tid)
	}
	b, err := os.ReadFile(filepath.Join(m.dir, pid, "task", strconv.Itoa(tid), "status"))
	if err != nil || !strings.Contains(string(b), "\nPid:\t"+strconv.Itoa(tid)+"\n") || !strings.Contains(string(b), "\nTgid:\t"+pid+"\n") {
		t.Errorf("task/%d/status: %v\n%s", tid, err, b)
	}
	b, err = os.ReadFile(filepath.Join(m.dir, pid, "task", strconv.Itoa(tid), "stat"))
	if err != nil || !strings.HasPrefix(string(b), strconv.Itoa(tid)+" (") {
		t.Errorf("task/%d/stat: %v %q", tid, err, b)
	}
	// thread-self, read from a thread of this process locked for it.
	done := make(chan string)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		l, err := os.Readlink(filepath.Join(m.dir, "thread-self"))
		if err != nil {
			l = err.Error()
		}
		done <- l + " " + strconv.Itoa(syscall.Gettid())
	}()
	if got := strings.Fields(<-done); len(got) != 2 || got[0] != pid+"/task/"+got[1] {
		t.Errorf("thread-self: %v, want %s/task/<the calling thread>", got, pid)
	}
	// A thread of another user's process: decided as the process.
	target := strconv.Itoa(startTarget(t, binDir))
	io := filepath.Join(m.dir, target, "task", target, "io")
	if out, err := (caller{memberUID, memberUID, []uint32{gid}}).run("cat", io); err != nil || !strings.Contains(out, "rchar") {
		t.Errorf("a member reads the thread's io: %v %s", err, out)
	}
	if out, err := (caller{otherUID, otherUID, nil}).run("cat", io); err == nil {
		t.Errorf("a non-member reads the thread's io: %s", out)
	}
}
