package privsep_test

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/privsep"
)

// envRole runs this test binary as a helper process instead of the
// tests: "threads" prints its pid, the id of a second thread and the id
// of a third thread that has exited, then waits for its standard input
// to close.
const envRole = "PROCGATE_PRIVSEP_TEST_ROLE"

func TestMain(m *testing.M) {
	privsep.RunReaderIfRequested() // StartReader re-executes this binary
	switch os.Getenv(envRole) {
	case "threads":
		os.Exit(threadsRole())
	case "compromised-reader":
		os.Exit(compromisedReaderRole())
	case "compromised-front":
		os.Exit(compromisedFrontRole())
	}
	os.Exit(m.Run())
}

func threadsRole() int {
	// The main goroutine keeps the main thread, so the goroutines below
	// get threads of their own, which they keep (never unlocked): the
	// first lives on, the second exits with its goroutine.
	runtime.LockOSThread()
	live, dead := make(chan int), make(chan int)
	go func() {
		runtime.LockOSThread()
		live <- unix.Gettid()
		select {}
	}()
	go func() {
		runtime.LockOSThread()
		dead <- unix.Gettid()
	}()
	exited := <-dead
	for i := 0; i < 10000; i++ {
		if _, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", exited)); err != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	fmt.Printf("%d %d %d\n", os.Getpid(), <-live, exited)
	bufio.NewReader(os.Stdin).ReadString('\n')
	return 0
}
