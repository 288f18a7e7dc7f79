package procfs_test

import (
	"os"
	"testing"

	"github.com/procgate/procgate/internal/proctest"
)

func TestMain(m *testing.M) {
	proctest.RunRoleIfRequested()
	code := m.Run()
	proctest.Cleanup()
	os.Exit(code)
}

// startThreaded starts a process with a second thread; it returns the
// process's pid and the thread's id. The process ends with the test.
func startThreaded(t *testing.T) (pid, tid int) {
	t.Helper()
	return proctest.Start(t, proctest.Options{})
}
