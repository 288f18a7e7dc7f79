package oracle

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/procgate/procgate/internal/testenv"
)

func TestMain(m *testing.M) {
	RunRoleIfRequested()
	code := m.Run()
	if runner != nil {
		runner.Close()
	}
	os.Exit(code)
}

var (
	runnerOnce sync.Once
	runner     *Runner
	runnerErr  error
)

// needRunner returns the shared Runner, or skips loudly when not root.
func needRunner(t testing.TB) *Runner {
	t.Helper()
	testenv.RequireRoot(t, "the kernel oracle spawns processes with other credentials")
	runnerOnce.Do(func() { runner, runnerErr = NewRunner(Options{}) })
	if runnerErr != nil {
		t.Fatalf("NewRunner: %v", runnerErr)
	}
	return runner
}

// runCases runs cases and fails the test on any refused case.
func runCases(t testing.TB, cases []Case) []Result {
	t.Helper()
	r := needRunner(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := r.Run(ctx, cases)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	for i := range res {
		if res[i].Err != nil {
			t.Fatalf("case %d %q refused: %v", i, cases[i].Name, res[i].Err)
		}
	}
	return res
}

// summary renders a result as "probe=answer …" for failure messages.
func summary(r *Result) string {
	var b strings.Builder
	for _, p := range r.Probes {
		fmt.Fprintf(&b, "%s=%s", p.Probe, p.Result)
		if p.Masked {
			b.WriteString("(masked)")
		}
		b.WriteByte(' ')
	}
	return b.String()
}
