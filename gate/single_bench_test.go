package gate_test

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"testing"

	"github.com/procgate/procgate/gate"
	"github.com/procgate/procgate/internal/testenv"
	"github.com/procgate/procgate/policy"
)

// BenchmarkSingleItem: what one FUSE open costs the core — one process,
// one item, for a caller already identified — against reading the same
// file directly (the floor).
//
//	sudo go test -run '^$' -bench BenchmarkSingleItem -count 10 ./gate/
func BenchmarkSingleItem(b *testing.B) {
	testenv.RequireRoot(b, "pins processes of other users")
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pid := cmd.Process.Pid
	g, c := selfCaller(b, compile(b, "subject everyone { }\ntarget any { }\nallow everyone any : read { status io };\n"))
	b.Run("direct-status", func(b *testing.B) {
		for b.Loop() {
			if _, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status"); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, it := range []gate.Item{policy.ItemStatus, policy.ItemStat, policy.ItemIO} {
		req := &gate.Request{PIDs: []int{pid}, Items: []gate.Item{it}, Binary: true}
		b.Run("core-"+it.String(), func(b *testing.B) {
			var buf []byte
			for b.Loop() {
				err := g.Read(context.Background(), c, req)(func(r *gate.ProcResult) error {
					buf = r.AppendBinary(buf[:0])
					if r.Denial != nil || r.Items[0].Denial != nil {
						b.Fatal("denied")
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
