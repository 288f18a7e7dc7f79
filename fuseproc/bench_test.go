package fuseproc_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// bareEnv makes the test binary a bare FUSE server: one directory with
// one file whose content is fixed, served with direct I/O and the same
// timeouts as procgate mount's process files. It is the floor a FUSE
// /proc cannot go below on this machine.
const bareEnv = "PROCGATE_FUSE_BARE"

func init() {
	if dir := os.Getenv(bareEnv); dir != "" {
		os.Exit(runBare(dir))
	}
}

type bareDir struct{ fs.Inode }

type bareFile struct{ fs.Inode }

var bareContent = []byte(strings.Repeat("Name:\tbare\n", 120)) // about a status file

func (d *bareDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if name != "status" {
		return nil, syscall.ENOENT
	}
	out.Mode = syscall.S_IFREG | 0o444
	out.SetEntryTimeout(time.Second)
	out.SetAttrTimeout(time.Second)
	return d.NewInode(ctx, &bareFile{}, fs.StableAttr{Mode: syscall.S_IFREG, Ino: 2}), 0
}

func (f *bareFile) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return nil, fuse.FOPEN_DIRECT_IO, 0
}

func (f *bareFile) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if off >= int64(len(bareContent)) {
		return fuse.ReadResultData(nil), 0
	}
	return fuse.ReadResultData(bareContent[off:min(int64(len(bareContent)), off+int64(len(dest)))]), 0
}

func (f *bareFile) Flush(ctx context.Context, fh fs.FileHandle) syscall.Errno { return syscall.ENOSYS }

func runBare(dir string) int {
	zero := time.Duration(0)
	srv, err := fs.Mount(dir, &bareDir{}, &fs.Options{
		MountOptions: fuse.MountOptions{AllowOther: true, DirectMount: true, DisableSplice: true, DisableReadDirPlus: true, FsName: "bare", Name: "bare"},
		EntryTimeout: &zero, AttrTimeout: &zero,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "bare:", err)
		return 1
	}
	fmt.Println("ready")
	var b [1]byte
	os.Stdin.Read(b[:])
	srv.Unmount()
	return 0
}

// cpuOf returns the CPU time (user + system) of pid and its descendants
// that are still running.
func cpuOf(pid int) time.Duration {
	var total time.Duration
	var walk func(int)
	walk = func(p int) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/stat")
		if err != nil {
			return
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(ut+st) * (time.Second / 100)
		kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", p, p))
		for _, k := range strings.Fields(string(kids)) {
			if n, err := strconv.Atoi(k); err == nil {
				walk(n)
			}
		}
	}
	walk(pid)
	return total
}

// BenchmarkRead: one cat of a status file, side by side in one run —
// the real /proc, a bare FUSE server (the floor: the same FUSE requests,
// no policy), and procgate mount in-process (--no-privsep) and
// privilege-separated — each as wall time per read (median of the
// reads, reported as median-ns) and as the server's CPU per read
// (server-cpu-ns, user + system of the daemon and its reader).
//
//	sudo go test -run '^$' -bench BenchmarkRead -benchtime 3000x ./fuseproc/
func BenchmarkRead(b *testing.B) {
	setUp(b)
	pid := strconv.Itoa(os.Getpid())
	bareDirPath, err := os.MkdirTemp("", "procgate-bare-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(bareDirPath) })
	bare := exec.Command(os.Args[0])
	bare.Env = append(os.Environ(), bareEnv+"="+bareDirPath)
	stdin, _ := bare.StdinPipe()
	out, _ := bare.StdoutPipe()
	bare.Stderr = os.Stderr
	if err := bare.Start(); err != nil {
		b.Fatal(err)
	}
	// Stopped after the mounts (cleanups run last first): the readers
	// of privilege-separated daemons started after it hold copies of its
	// mount in their own mount namespaces.
	b.Cleanup(func() { stdin.Close(); bare.Wait(); syscall.Unmount(bareDirPath, syscall.MNT_DETACH) })
	var ready [6]byte
	if _, err := out.Read(ready[:]); err != nil {
		b.Fatal("bare server:", err)
	}
	np := startMount(b, "--no-privsep")
	ps := startMount(b)
	floorDir, floorPID := startFloor(b)
	for _, tc := range []struct {
		name, path string
		server     int
	}{
		{"proc", "/proc/" + pid + "/status", 0},
		{"c-libfuse", filepath.Join(floorDir, "status"), floorPID},
		{"bare-fuse", filepath.Join(bareDirPath, "status"), bare.Process.Pid},
		{"mount-inprocess", filepath.Join(np.dir, pid, "status"), np.cmd.Process.Pid},
		{"mount-privsep", filepath.Join(ps.dir, pid, "status"), ps.cmd.Process.Pid},
	} {
		if tc.server < 0 {
			continue
		}
		b.Run(tc.name, func(b *testing.B) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			os.ReadFile(tc.path) // the session
			lat := make([]time.Duration, 0, b.N)
			cpu0 := cpuOf(tc.server)
			b.ResetTimer()
			for b.Loop() {
				t0 := time.Now()
				if _, err := os.ReadFile(tc.path); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "median-ns")
			if tc.server != 0 {
				b.ReportMetric(float64((cpuOf(tc.server)-cpu0).Nanoseconds())/float64(len(lat)), "server-cpu-ns")
			}
		})
	}
	b.Run("parallel-64", func(b *testing.B) {
		path := filepath.Join(ps.dir, pid, "status")
		var mu sync.Mutex
		var lat []time.Duration
		var wg sync.WaitGroup
		per := max(b.N/64, 1)
		start := time.Now()
		for range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				local := make([]time.Duration, 0, per)
				for range per {
					t0 := time.Now()
					if _, err := os.ReadFile(path); err != nil {
						b.Error(err)
						return
					}
					local = append(local, time.Since(t0))
				}
				mu.Lock()
				lat = append(lat, local...)
				mu.Unlock()
			}()
		}
		wg.Wait()
		el := time.Since(start)
		slices.Sort(lat)
		if len(lat) > 0 {
			b.ReportMetric(float64(len(lat))/el.Seconds(), "reads/s")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		}
	})
}

// startFloor builds and mounts testdata/fusefloor.c, the FUSE floor in C
// (libfuse, one thread, one fixed file), and returns its mount point and
// pid; pid -1 when it cannot be built here (no C compiler or no
// libfuse3-dev), which the benchmark then leaves out, saying so.
func startFloor(b *testing.B) (string, int) {
	dir := b.TempDir()
	bin := filepath.Join(dir, "fusefloor")
	flags, err := exec.Command("pkg-config", "--cflags", "--libs", "fuse3").Output()
	if err == nil {
		args := append([]string{"-O2", "-o", bin, "testdata/fusefloor.c"}, strings.Fields(string(flags))...)
		var out []byte
		if out, err = exec.Command("cc", args...).CombinedOutput(); err != nil {
			err = fmt.Errorf("%v: %s", err, out)
		}
	}
	if err != nil {
		b.Logf("c-libfuse left out: cannot build testdata/fusefloor.c (needs cc and libfuse3-dev): %v", err)
		return "", -1
	}
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, mnt)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	w, err := startDaemon(cmd)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		w.Process.Kill()
		w.Wait()
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		syscall.Unmount(mnt, syscall.MNT_DETACH)
	})
	var ready [6]byte
	if _, err := io.ReadFull(stderr, ready[:]); err != nil || string(ready[:]) != "ready\n" {
		b.Fatalf("c-libfuse: %q, %v", ready, err)
	}
	return mnt, cmd.Process.Pid
}
