package oracle_test

import (
	"context"
	"fmt"

	"github.com/procgate/procgate/oracle"
)

// A prober of uid 1000 against a target of uid 2000: the /proc read is
// denied with EACCES and PTRACE_SEIZE with EPERM. The binary's main (or
// TestMain) must call oracle.RunRoleIfRequested first.
func Example() {
	r, err := oracle.NewRunner(oracle.Options{
		OnReady: func(i int, target, prober oracle.Observed) error {
			// Both processes are alive here: snapshot them by pid.
			return nil
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	res, err := r.Run(context.Background(), []oracle.Case{{
		Target: oracle.User(2000, 2000),
		Prober: oracle.User(1000, 1000),
		Probes: []oracle.Probe{oracle.ProbeMaps, oracle.ProbePtraceSeize},
	}})
	if err != nil || res[0].Err != nil {
		fmt.Println(err, res[0].Err)
		return
	}
	for _, p := range res[0].Probes {
		fmt.Println(p.Probe, p.Result)
	}
}
