package live

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/procfs"
)

// poolSize is the number of processes the 3,000-process benchmarks run
// against: the machine's own plus sleeping children to make up the rest.
const poolSize = 3000

var (
	poolMu   sync.Mutex
	poolCmds []*exec.Cmd
)

// ensurePool starts sleeping processes until the machine has at least
// poolSize of them. They are stopped by TestMain.
func ensurePool(tb testing.TB) {
	tb.Helper()
	poolMu.Lock()
	defer poolMu.Unlock()
	pids, err := countPIDs()
	if err != nil {
		tb.Fatal(err)
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		tb.Skip("no sleep binary:", err)
	}
	for n := pids; n < poolSize; n++ {
		c := exec.Command(sleep, "100000")
		if err := c.Start(); err != nil {
			tb.Fatalf("start sleeper %d: %v", n, err)
		}
		poolCmds = append(poolCmds, c)
	}
}

func stopPool() {
	poolMu.Lock()
	defer poolMu.Unlock()
	for _, c := range poolCmds {
		_ = c.Process.Kill()
	}
	for _, c := range poolCmds {
		_ = c.Wait()
	}
	poolCmds = nil
}

func countPIDs() (int, error) {
	f, err := os.Open("/proc")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range names {
		if _, err := strconv.Atoi(s); err == nil {
			n++
		}
	}
	return n, nil
}

// benchRead reads the world b.N times and reports its size, the bytes
// allocated per read (an upper bound of the heap a read needs) and the
// heap the world keeps alive.
func benchRead(b *testing.B) {
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	var tasks int
	var live uint64
	b.ResetTimer()
	for b.Loop() {
		s, err := Read(Options{})
		if err != nil {
			b.Fatal(err)
		}
		tasks = len(s.World.Tasks)
		b.StopTimer()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		runtime.GC()
		runtime.ReadMemStats(&after)
		live = after.HeapAlloc - min(after.HeapAlloc, ms0.HeapAlloc)
		runtime.KeepAlive(s)
		b.StartTimer()
	}
	b.StopTimer()
	runtime.ReadMemStats(&ms1)
	b.ReportMetric(float64(tasks), "tasks")
	b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(b.N)/(1<<20), "MiB-alloc/op")
	b.ReportMetric(float64(live)/(1<<20), "MiB-live")
	b.ReportMetric(float64(ms1.Sys)/(1<<20), "MiB-sys")
}

// BenchmarkReadWorld reads every process of this machine as it is.
func BenchmarkReadWorld(b *testing.B) { benchRead(b) }

// BenchmarkReadWorld3000 reads the world of a machine with 3,000
// processes (sleeping children make up the number).
func BenchmarkReadWorld3000(b *testing.B) {
	ensurePool(b)
	benchRead(b)
}

// BenchmarkRawRead3000 is the baseline: for every pid, read status, stat
// and cmdline and stat fd/ (for its owner), with no parsing, pinning or
// model building.
func BenchmarkRawRead3000(b *testing.B) {
	ensurePool(b)
	buf := make([]byte, 8192)
	var n int
	for b.Loop() {
		pids, err := listAll()
		if err != nil {
			b.Fatal(err)
		}
		n = len(pids)
		for _, p := range pids {
			dir := "/proc/" + strconv.Itoa(p) + "/"
			for _, f := range []string{"status", "stat", "cmdline"} {
				fd, err := unix.Open(dir+f, unix.O_RDONLY|unix.O_CLOEXEC, 0)
				if err != nil {
					continue
				}
				_, _ = unix.Read(fd, buf)
				unix.Close(fd)
			}
			var st unix.Stat_t
			_ = unix.Stat(dir+"fd", &st)
		}
	}
	b.ReportMetric(float64(n), "tasks")
}

func listAll() ([]int, error) {
	r, err := procfs.Open("")
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return r.ListPIDs()
}
