package gate_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/gate"
	"github.com/procgate/procgate/internal/proctest"
	"github.com/procgate/procgate/internal/testenv"
	"github.com/procgate/procgate/policy"
)

const (
	uidGranted = 41001 // targets whose environ the policy grants
	uidRefused = 41003 // targets whose environ nobody may read
	uidCaller  = 41002
	gidReaders = 41042
	pidMax     = 400 // pid_max inside the test's pid namespace
)

// reusePolicy grants environ of uidGranted's processes only.
var reusePolicy = fmt.Sprintf(`subject readers { group %d; }
target granted { uid %d; }
allow readers granted : read { environ stat };
`, gidReaders, uidGranted)

func TestMain(m *testing.M) {
	switch os.Getenv("PROCGATE_TEST_ROLE") {
	case "pidreuse":
		os.Exit(pidReuseRole())
	case "fusehang":
		os.Exit(fusehangRole())
	}
	proctest.RunRoleIfRequested()
	code := m.Run()
	proctest.Cleanup()
	os.Exit(code)
}

// reuseResult is what the role inside the pid namespace reports.
type reuseResult struct {
	Reads, Answered, Denied, Gone, Wrong int
	Spawned                              int
	MaxPID                               int
	Err                                  string
}

// TestPIDReuse reads environ of processes that die and whose pids are
// reused (pid_max 400 in a fresh pid namespace) while readers ask for
// random pids: 100,000 item reads, and no answer may come from a process
// other than the one decided — a refused (uidRefused) process's environ
// must never be returned in place of a granted one's.
func TestPIDReuse(t *testing.T) {
	testenv.RequireRoot(t, "a pid namespace with its own pid_max, processes as other uids")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PROCGATE_TEST_ROLE=pidreuse")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if e, ok := err.(*exec.ExitError); ok {
			ee = e
			t.Fatalf("pid namespace role: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("pid namespace role: %v", err)
	}
	var r reuseResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("role output %q: %v", out, err)
	}
	if strings.HasPrefix(r.Err, "skip:") {
		t.Skip("SKIPPED:", r.Err)
	}
	if r.Err != "" {
		t.Fatal(r.Err)
	}
	t.Logf("%d item reads: %d answered, %d denied, %d gone; %d processes spawned, pids up to %d", r.Reads, r.Answered, r.Denied, r.Gone, r.Spawned, r.MaxPID)
	if r.Wrong != 0 {
		t.Errorf("%d answers came from a process other than the one decided", r.Wrong)
	}
	if r.Reads < 100000 || r.Answered == 0 || r.Denied == 0 || r.Spawned < 2*pidMax {
		t.Errorf("too little churn to prove anything: %+v", r)
	}
}

func pidReuseRole() int {
	r := runPIDReuse()
	json.NewEncoder(os.Stdout).Encode(r)
	return 0
}

func runPIDReuse() (r reuseResult) {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		r.Err = "make / private: " + err.Error()
		return
	}
	if err := unix.Mount("proc", "/proc", "proc", 0, ""); err != nil {
		r.Err = "mount proc: " + err.Error()
		return
	}
	if err := os.WriteFile("/proc/sys/kernel/pid_max", []byte(strconv.Itoa(pidMax)), 0); err != nil {
		r.Err = "skip: pid_max is not per pid namespace on this kernel (Linux 6.14+): " + err.Error()
		return
	}
	pol, err := policy.Load("reuse.pol", []byte(reusePolicy))
	if err != nil {
		r.Err = err.Error()
		return
	}
	g, err := gate.New(gate.Config{Policy: pol, CacheTTL: time.Minute})
	if err != nil {
		r.Err = err.Error()
		return
	}
	defer g.Close()
	// The caller: an unprivileged process in group gidReaders.
	callerCmd := exec.Command("sleep", "600")
	callerCmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uidCaller, Gid: uidCaller, Groups: []uint32{gidReaders}}}
	if err := callerCmd.Start(); err != nil {
		r.Err = err.Error()
		return
	}
	defer func() { callerCmd.Process.Kill(); callerCmd.Wait() }()
	time.Sleep(50 * time.Millisecond) // let it exec
	caller, err := g.NewCaller(callerCmd.Process.Pid, -1, uidCaller, uidCaller, "")
	if err != nil {
		r.Err = err.Error()
		return
	}
	defer caller.Close()

	stop := make(chan struct{})
	var spawned, maxPID atomic.Int64
	var recent [32]atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 { // spawners: short-lived targets, alternating owners
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				uid := uint32(uidGranted)
				if (i+w)%2 == 1 {
					uid = uidRefused
				}
				c := exec.Command("sleep", "0.0"+strconv.Itoa(2+rand.IntN(8)))
				c.Env = []string{"OWNER=" + strconv.Itoa(int(uid))}
				c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
				if c.Start() != nil {
					time.Sleep(time.Millisecond)
					continue
				}
				n := spawned.Add(1)
				recent[n%int64(len(recent))].Store(int64(c.Process.Pid))
				if p := int64(c.Process.Pid); p > maxPID.Load() {
					maxPID.Store(p)
				}
				go c.Wait()
			}
		}()
	}
	var reads, answered, denied, gone, wrong atomic.Int64
	const target = 100000
	var rwg sync.WaitGroup
	for range 4 {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			for reads.Load() < target {
				pids := make([]int, 8)
				for i := range pids {
					// Recently spawned pids: alive, dead or already reused.
					pids[i] = int(recent[rand.IntN(len(recent))].Load())
					if pids[i] == 0 {
						pids[i] = 2 + rand.IntN(pidMax-2)
					}
				}
				req := &gate.Request{PIDs: pids, Items: []gate.Item{policy.ItemEnviron}}
				err := g.Read(context.Background(), caller, req)(func(pr *gate.ProcResult) error {
					reads.Add(1)
					if pr.Denial != nil {
						gone.Add(1)
						return nil
					}
					ir := pr.Items[0]
					if ir.Denial != nil {
						denied.Add(1)
						return nil
					}
					answered.Add(1)
					owner := ""
					for _, e := range ir.List {
						if v, ok := strings.CutPrefix(e, "OWNER="); ok {
							owner = v
						}
					}
					// Only uidGranted processes may be answered. (A child between
					// its setuid and its exec still shows the spawner's
					// environment, without OWNER: it is the process decided.)
					if owner != "" && owner != strconv.Itoa(uidGranted) {
						wrong.Add(1)
					}
					return nil
				})
				if err != nil {
					r.Err = err.Error()
					return
				}
			}
		}()
	}
	rwg.Wait()
	close(stop)
	wg.Wait()
	r.Reads, r.Answered, r.Denied, r.Gone, r.Wrong = int(reads.Load()), int(answered.Load()), int(denied.Load()), int(gone.Load()), int(wrong.Load())
	r.Spawned, r.MaxPID = int(spawned.Load()), int(maxPID.Load())
	return r
}
