package gate_test

import (
	"context"
	"os"
	"testing"

	"github.com/procgate/procgate/gate"
	"github.com/procgate/procgate/internal/proctest"
	"github.com/procgate/procgate/internal/testenv"
	"github.com/procgate/procgate/policy"
)

// BenchmarkPIDNS: what answering a caller in a container costs, against
// a caller in the gate's own pid namespace. A namespace holds 32
// sleeping processes; each request asks for status and stat (plain
// items: no model), either of the 32 processes by pid or of every
// process the caller can see (all: the namespace's 33). The host caller
// reads the same 32 processes by their host pids (BenchmarkHostCaller
// measures it before and after the change). Reports the processes
// answered per request.
//
//	sudo go test -run '^$' -bench BenchmarkPIDNS -benchtime 2s ./gate/
func BenchmarkPIDNS(b *testing.B) {
	testenv.RequireRoot(b, "creates a pid namespace")
	ns := proctest.StartPIDNS(b, proctest.NSOptions{Sleepers: 32})
	hostPIDs := make([]int, len(ns.Info.Sleepers))
	for i, p := range ns.Info.Sleepers {
		hostPIDs[i] = proctest.HostPID(b, ns.Info.Ino, p)
	}
	caller := hostPIDs[0]
	pol, err := policy.Load("bench.pol", []byte("subject everyone { }\ntarget any { }\nallow everyone any : read { status };\n"))
	if err != nil {
		b.Fatal(err)
	}
	items := []gate.Item{policy.ItemStatus, policy.ItemStat}
	run := func(b *testing.B, translate bool, callerPID int, req *gate.Request) {
		g, err := gate.New(gate.Config{Policy: pol})
		if err != nil {
			b.Fatal(err)
		}
		defer g.Close()
		if translate && !gate.PIDTranslation(g) {
			b.Skip("SKIPPED: this kernel cannot translate pids between namespaces (Linux 6.11+)")
		}
		gate.SetPIDTranslation(g, translate)
		c, err := g.NewCaller(callerPID, -1, 0, 0, "")
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		n := 0
		b.ResetTimer()
		for b.Loop() {
			err := g.Read(context.Background(), c, req)(func(r *gate.ProcResult) error {
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
	}
	b.Run("host-caller/32-pids", func(b *testing.B) {
		run(b, true, os.Getpid(), &gate.Request{PIDs: hostPIDs, Items: items})
	})
	for _, mode := range []struct {
		name      string
		translate bool
	}{{"kernel-translation", true}, {"scan", false}} {
		b.Run("ns-caller-"+mode.name+"/32-pids", func(b *testing.B) {
			run(b, mode.translate, caller, &gate.Request{PIDs: ns.Info.Sleepers, Items: items})
		})
		b.Run("ns-caller-"+mode.name+"/all", func(b *testing.B) {
			run(b, mode.translate, caller, &gate.Request{All: true, Items: items})
		})
	}
}
