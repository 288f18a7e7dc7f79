package gate_test

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/procgate/procgate/gate"
	"github.com/procgate/procgate/internal/testenv"
	"github.com/procgate/procgate/policy"
)

// BenchmarkHostCaller: a caller in the gate's own pid namespace asks for
// status and stat (plain items: no model) of 32 sleeping processes by
// pid, or of every process (all). It uses only the gate's API as it was
// before callers in other pid namespaces were translated, so that the
// same file measures the gate before and after (docs/security.md, "Callers in other pid namespaces").
//
//	sudo go test -run '^$' -bench BenchmarkHostCaller -count 10 ./gate/
func BenchmarkHostCaller(b *testing.B) {
	testenv.RequireRoot(b, "pins processes of other users")
	pids := make([]int, 32)
	for i := range pids {
		cmd := exec.Command("sleep", "600")
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		pids[i] = cmd.Process.Pid
	}
	pol, err := policy.Load("bench.pol", []byte("subject everyone { }\ntarget any { }\nallow everyone any : read { status };\n"))
	if err != nil {
		b.Fatal(err)
	}
	g, err := gate.New(gate.Config{Policy: pol})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	c, err := g.NewCaller(os.Getpid(), -1, 0, 0, "")
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	items := []gate.Item{policy.ItemStatus, policy.ItemStat}
	for _, tc := range []struct {
		name string
		req  *gate.Request
	}{{"32-pids", &gate.Request{PIDs: pids, Items: items}}, {"all", &gate.Request{All: true, Items: items}}} {
		b.Run(tc.name, func(b *testing.B) {
			n := 0
			for b.Loop() {
				err := g.Read(context.Background(), c, tc.req)(func(r *gate.ProcResult) error {
					if r.Denial == nil {
						n++
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)/float64(b.N), "procs/op")
		})
	}
}
