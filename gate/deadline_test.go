package gate_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/gate"
	"github.com/procgate/procgate/internal/testenv"
	"github.com/procgate/procgate/policy"
)

// TestReadDeadline blocks real reads of /proc/<pid>/cmdline and of the
// target's memory: the target holds its own mmap lock while it waits for
// a page of a file on a FUSE filesystem, served by this test, that never
// answers READ (fusehangRole). The gate must answer ETIMEDOUT after its
// read timeout, then answer the target's lock-taking reads at once
// (ETIMEDOUT, its breaker open) while serving its other items, refuse
// with EBUSY once MaxStuckReads reads are stuck, and count the timeouts
// and refusals.
func TestReadDeadline(t *testing.T) {
	testenv.RequireRoot(t, "a FUSE mount")
	fs := mountSilentFUSE(t)
	tgt := startStalled(t, fs, 0, 0)
	tgt2 := startStalled(t, fs, 1, 0)

	pol, err := policy.Load("t.pol", []byte("subject everyone { }\ntarget any_process { }\nallow everyone any_process : read { cmdline environ status };\nallow everyone any_process : attach;\n"))
	if err != nil {
		t.Fatal(err)
	}
	// The caller's uid may have more reads in flight than the gate: the
	// gate-wide bound is what this test reaches.
	g, err := gate.New(gate.Config{Policy: pol, ReadTimeout: 300 * time.Millisecond, MaxStuckReads: 2, Stall: gate.StallLimits{PerUID: 3}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	c, err := g.NewCaller(os.Getpid(), -1, 0, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	read := func(pid int, it gate.Item) *gate.ItemResult {
		t.Helper()
		var got *gate.ItemResult
		req := &gate.Request{PIDs: []int{pid}, Items: []gate.Item{it}}
		if it == policy.ItemMem {
			req.Mem = []gate.MemRange{{Addr: tgt2.anon, Len: 64}}
		}
		err := g.Read(context.Background(), c, req)(func(r *gate.ProcResult) error {
			if r.Denial != nil {
				return fmt.Errorf("process refused: %v", r.Denial)
			}
			got = &r.Items[0]
			return nil
		})
		if err != nil || got == nil {
			t.Fatalf("read %s: %v", it, err)
		}
		return got
	}

	start := time.Now()
	ir := read(tgt.pid, policy.ItemCmdline)
	el := time.Since(start)
	if ir.Denial == nil || ir.Denial.Errno != unix.ETIMEDOUT {
		t.Fatalf("cmdline of a target whose mmap lock is held: %+v, want ETIMEDOUT", ir)
	}
	if el < 300*time.Millisecond || el > 3*time.Second {
		t.Errorf("the timed-out read took %v (timeout 300ms)", el)
	}
	if fs.reads.Load() == 0 {
		t.Error("the filesystem saw no READ: the read did not block where the test meant it to")
	}
	t.Logf("cmdline: %v after %v; FUSE READs waiting: %d", ir.Denial, el.Round(time.Millisecond), fs.reads.Load())
	// The target timed out: its lock-taking reads are answered at once,
	// without a read, and say when they will be tried again.
	start = time.Now()
	if ir := read(tgt.pid, policy.ItemEnviron); ir.Denial == nil || ir.Denial.Errno != unix.ETIMEDOUT ||
		!strings.Contains(ir.Denial.Reason, "not tried again for 1s") || time.Since(start) > 200*time.Millisecond {
		t.Errorf("environ of the target that timed out: %+v after %v, want ETIMEDOUT at once", ir, time.Since(start))
	}
	// Items that do not take the mmap lock are served as usual.
	if ir := read(tgt.pid, policy.ItemStatus); ir.Denial != nil || !strings.Contains(ir.Text, "Name:") {
		t.Errorf("status of the same target: %+v", ir)
	}
	// mem, read with process_vm_readv, waits for the lock of the other
	// stalled target.
	start = time.Now()
	if ir := read(tgt2.pid, policy.ItemMem); ir.Denial == nil || ir.Denial.Errno != unix.ETIMEDOUT || time.Since(start) < 300*time.Millisecond {
		t.Errorf("mem of the second target: %+v after %v, want ETIMEDOUT after the timeout", ir, time.Since(start))
	}
	// The two stuck reads hold both slots: the next one, even of a
	// process that answers, is refused at once rather than piling up
	// another blocked thread.
	start = time.Now()
	if ir := read(os.Getpid(), policy.ItemEnviron); ir.Denial == nil || ir.Denial.Errno != unix.EBUSY || time.Since(start) > time.Second {
		t.Errorf("environ with two reads stuck: %+v after %v, want EBUSY at once", ir, time.Since(start))
	}
	var b strings.Builder
	g.Metrics().WriteTo(&b)
	for _, want := range []string{
		"procgate_read_timeouts_total 2\n",
		`procgate_read_refusals_total{reason="breaker"} 1` + "\n",
		`procgate_read_refusals_total{reason="global"} 1` + "\n",
		"procgate_reads_stuck 2\n",
		"procgate_read_breakers_open 2\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, b.String())
		}
	}
}

// stalledTarget is a process that holds its own mmap lock (fusehangRole).
type stalledTarget struct {
	pid  int
	anon uint64 // an address of anonymous memory in it
}

// startStalled starts a process that holds its own mmap lock while it
// waits for file n of fs (fusehangRole), as uid (and gid) when uid is not
// 0, and returns once the filesystem has its READ and a moment more
// (its writer queues behind the lock). The process, and the filesystem
// first, are released when the test ends.
func startStalled(t *testing.T, fs *silentFUSE, n int, uid uint32) stalledTarget {
	t.Helper()
	before := fs.reads.Load()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PROCGATE_TEST_ROLE=fusehang", "PROCGATE_TEST_FILE="+fs.path(n))
	if uid != 0 {
		cmd.Env = append(cmd.Env, fmt.Sprintf("PROCGATE_TEST_UID=%d", uid))
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The target's stuck thread waits for the filesystem even when
		// killed: abort the filesystem first.
		fs.abort()
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	// Every wait on the target is bounded: a failure must end in the
	// cleanup above, which releases the target, never in a hung test.
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		lines <- line
	}()
	tgt := stalledTarget{pid: cmd.Process.Pid}
	select {
	case line := <-lines:
		if _, err := fmt.Sscanf(line, "ready %d", &tgt.anon); err != nil {
			t.Fatalf("target: %q: %v", line, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the target did not start")
	}
	// The target's read of its own memory is waiting for the filesystem,
	// with the lock held, once the filesystem has the READ request.
	for deadline := time.Now().Add(30 * time.Second); fs.reads.Load() == before; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the target's read never reached the filesystem")
		}
	}
	time.Sleep(300 * time.Millisecond) // the writer queues
	return tgt
}

// fusehangRole holds its own mmap lock the way a process stuck on a
// network or FUSE filesystem does: one thread reads its own memory
// through /proc/self/mem at a mapping of PROCGATE_TEST_FILE, whose page
// never arrives (the kernel's access_remote_vm waits in the fault with the
// mmap lock held for reading); another thread then asks for the lock for
// writing (mmap) and queues behind it, and from then on every new reader
// of the lock — cmdline, environ (maps no longer: since Linux 6.17 it
// reads under per-VMA locks) — waits too. With PROCGATE_TEST_UID it then
// runs as that uid and gid (and stays dumpable), as an unprivileged
// user's process would: the file and its own mem are opened first, as
// root, so the filesystem needs no allow_other. It says
// "ready" before it starts (the test then waits for the filesystem's READ
// and a moment more) and waits for its standard input to close.
func fusehangRole() int {
	f, err := os.Open(os.Getenv("PROCGATE_TEST_FILE"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "fusehang:", err)
		return 2
	}
	m, err := unix.Mmap(int(f.Fd()), 0, 4096, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fusehang: mmap:", err)
		return 2
	}
	mem, err := os.Open("/proc/self/mem")
	if err != nil {
		fmt.Fprintln(os.Stderr, "fusehang:", err)
		return 2
	}
	if s := os.Getenv("PROCGATE_TEST_UID"); s != "" {
		id, err := strconv.Atoi(s)
		if err == nil {
			err = syscall.Setgroups(nil)
		}
		if err == nil {
			err = syscall.Setresgid(id, id, id)
		}
		if err == nil {
			err = syscall.Setresuid(id, id, id)
		}
		if err == nil {
			// A change of uid leaves the process non-dumpable
			// (fs.suid_dumpable); an ordinary user's process is not.
			err = unix.Prctl(unix.PR_SET_DUMPABLE, 1, 0, 0, 0)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "fusehang: become uid", s+":", err)
			return 2
		}
	}
	addr := int64(uintptr(unsafe.Pointer(&m[0])))
	in := bufio.NewReader(os.Stdin)
	buf := make([]byte, 1)
	anon := make([]byte, 64)
	// Say ready before the lock is held: from the moment the read below
	// waits, every mmap of this process waits too, the Go runtime's own
	// (heap growth, thread stacks, race detector shadow) included. The
	// test learns that the read waits from the filesystem.
	fmt.Printf("ready %d\n", uintptr(unsafe.Pointer(&anon[0])))
	go func() {
		runtime.LockOSThread()
		unix.Pread(int(mem.Fd()), buf, addr) // blocks until the filesystem goes
	}()
	time.Sleep(100 * time.Millisecond)
	go func() {
		runtime.LockOSThread()
		unix.Mmap(-1, 0, 4096, unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS) // queues for the write lock
	}()
	in.ReadString('\n')
	runtime.KeepAlive(anon)
	return 0
}

// silentFUSE is a FUSE filesystem of files f, f1, f2… whose contents
// are never delivered: READ requests are counted and left unanswered. It
// is spoken directly over /dev/fuse (the kernel's protocol 7.31 subset
// that a lookup, getattr, open and read need).
type silentFUSE struct {
	fd    int
	dir   string
	reads atomic.Int32
	abort func()
}

// fuseFiles is how many files a silentFUSE has.
const fuseFiles = 16

// path returns the path of file n (0 ≤ n < fuseFiles).
func (fs *silentFUSE) path(n int) string {
	return filepath.Join(fs.dir, fuseName(n))
}

// fuseName is the name of file n: f, f1, f2…
func fuseName(n int) string {
	if n == 0 {
		return "f"
	}
	return "f" + strconv.Itoa(n)
}

// FUSE opcodes (include/uapi/linux/fuse.h).
const (
	fuseLookup      = 1
	fuseForget      = 2
	fuseGetattr     = 3
	fuseOpen        = 14
	fuseRead        = 15
	fuseRelease     = 18
	fuseFlush       = 25
	fuseInit        = 26
	fuseInterrupt   = 36
	fuseDestroy     = 38
	fuseBatchForget = 42
	fuseInHeaderLen = 40
	fuseFileIno     = 2 // the first file's; file n is fuseFileIno+n
	fuseFileSize    = 4096
)

func mountSilentFUSE(t *testing.T) *silentFUSE {
	t.Helper()
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Skipf("SKIPPED: no FUSE: %v", err)
	}
	dir := t.TempDir()
	fs := &silentFUSE{fd: fd, dir: dir}
	opts := fmt.Sprintf("fd=%d,rootmode=40000,user_id=0,group_id=0", fd)
	if err := unix.Mount("procgate-test", dir, "fuse.procgate-test", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		unix.Close(fd)
		t.Fatalf("mount fuse: %v", err)
	}
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		fs.serve(&stop)
		// Closing the device (no read in flight: serve polls) aborts the
		// connection: every waiting request fails, which releases the
		// blocked reads.
		unix.Close(fd)
	}()
	fs.abort = sync.OnceFunc(func() {
		stop.Store(true)
		<-done
		unix.Unmount(dir, unix.MNT_DETACH)
	})
	t.Cleanup(fs.abort)
	return fs
}

// serve answers requests until stop is set; it polls, so that no read is
// in flight when the device is closed.
func (fs *silentFUSE) serve(stop *atomic.Bool) {
	buf := make([]byte, 1<<20+4096)
	le := binary.LittleEndian
	for !stop.Load() {
		pfd := []unix.PollFd{{Fd: int32(fs.fd), Events: unix.POLLIN}}
		if n, err := unix.Poll(pfd, 50); n <= 0 || err != nil {
			continue
		}
		n, err := unix.Read(fs.fd, buf)
		if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
			continue
		}
		if err != nil || n < fuseInHeaderLen {
			return // unmounted or aborted
		}
		op, unique, node := le.Uint32(buf[4:]), le.Uint64(buf[8:]), le.Uint64(buf[16:])
		body := buf[fuseInHeaderLen:n]
		switch op {
		case fuseInit:
			out := make([]byte, 64)       // fuse_init_out
			le.PutUint32(out[0:], 7)      // major
			le.PutUint32(out[4:], 31)     // minor
			le.PutUint32(out[8:], 0)      // max_readahead
			le.PutUint32(out[12:], 0)     // flags
			le.PutUint16(out[16:], 16)    // max_background
			le.PutUint16(out[18:], 12)    // congestion_threshold
			le.PutUint32(out[20:], 1<<20) // max_write
			le.PutUint32(out[24:], 1)     // time_gran
			le.PutUint16(out[28:], 256)   // max_pages
			fs.reply(unique, 0, out)
		case fuseLookup:
			name, n := strings.TrimRight(string(body), "\x00"), 0
			for n < fuseFiles && fuseName(n) != name {
				n++
			}
			if node != 1 || n == fuseFiles {
				fs.reply(unique, -int32(unix.ENOENT), nil)
				continue
			}
			out := make([]byte, 40+88) // fuse_entry_out
			le.PutUint64(out[0:], fuseFileIno+uint64(n))
			fuseAttr(out[40:], fuseFileIno+uint64(n))
			fs.reply(unique, 0, out)
		case fuseGetattr:
			out := make([]byte, 16+88) // fuse_attr_out
			fuseAttr(out[16:], node)
			fs.reply(unique, 0, out)
		case fuseOpen:
			out := make([]byte, 16) // fuse_open_out
			le.PutUint64(out[0:], 1)
			fs.reply(unique, 0, out)
		case fuseRead:
			fs.reads.Add(1) // never answered
		case fuseRelease, fuseFlush, fuseDestroy:
			fs.reply(unique, 0, nil)
		case fuseForget, fuseBatchForget, fuseInterrupt:
			// no reply
		default:
			fs.reply(unique, -int32(unix.ENOSYS), nil)
		}
	}
}

// fuseAttr fills a fuse_attr for the root directory (1) or a file.
func fuseAttr(b []byte, ino uint64) {
	le := binary.LittleEndian
	le.PutUint64(b[0:], ino)
	mode, size := uint32(unix.S_IFDIR|0o755), uint64(0)
	if ino >= fuseFileIno {
		mode, size = unix.S_IFREG|0o644, fuseFileSize
	}
	le.PutUint64(b[8:], size)
	le.PutUint64(b[16:], (size+511)/512)
	le.PutUint32(b[60:], mode)
	le.PutUint32(b[64:], 1)    // nlink
	le.PutUint32(b[80:], 4096) // blksize
}

func (fs *silentFUSE) reply(unique uint64, errno int32, payload []byte) {
	out := make([]byte, 16+len(payload))
	le := binary.LittleEndian
	le.PutUint32(out[0:], uint32(len(out)))
	le.PutUint32(out[4:], uint32(errno))
	le.PutUint64(out[8:], unique)
	copy(out[16:], payload)
	unix.Write(fs.fd, out)
}
