package procfs_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// roleEnv makes the test binary a helper process instead; see runRole.
const roleEnv = "PROCGATE_PROCFS_TEST_ROLE"

func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRole(role))
	}
	os.Exit(m.Run())
}

// runRole runs a helper: "thread" starts a second thread, prints
// "ready TID" with its thread id, and waits for stdin to close.
func runRole(role string) int {
	if role != "thread" {
		fmt.Fprintln(os.Stderr, "unknown role", role)
		return 3
	}
	runtime.LockOSThread() // the main goroutine keeps the leader to itself
	tids := make(chan int)
	go func() {
		runtime.LockOSThread() // this goroutine keeps its own thread
		tids <- unix.Gettid()
		select {}
	}()
	tid := <-tids
	if tid == os.Getpid() {
		fmt.Fprintln(os.Stderr, "the second goroutine runs on the leader")
		return 3
	}
	fmt.Printf("ready %d\n", tid)
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// startThreaded starts a process with a second thread; it returns the
// process's pid and the thread's id. The process ends with the test.
func startThreaded(t *testing.T) (pid, tid int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), roleEnv+"=thread")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if _, serr := fmt.Sscanf(strings.TrimSpace(line), "ready %d", &tid); err != nil || serr != nil {
		t.Fatalf("helper said %q: %v %v", line, err, serr)
	}
	return cmd.Process.Pid, tid
}
