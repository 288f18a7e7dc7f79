// Command procgate models, verifies and enforces Linux's read-versus-attach
// process access decision.
//
// Exit status: 0 success (every expectation met), 1 a finding (an
// expectation unmet, a verification disagreement), 2 invalid input or
// usage.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/procgate/procgate/fuseproc"
	_ "github.com/procgate/procgate/oracle/roleinit" // the verifier's role processes start here
	"github.com/procgate/procgate/privsep"
)

func main() {
	// The verifier re-executes this binary as its target and prober
	// processes; such a run never reaches main: package roleinit, imported
	// above, runs the role from its initialiser, before the initialisers
	// of most other packages (a third of a role's start-up CPU).
	privsep.RunReaderIfRequested()     // the daemons' privileged reader (privilege separation)
	fuseproc.RunUnmounterIfRequested() // procgate mount's unmounter
	os.Exit(run(os.Args[1:]))
}

// run executes the command line and returns the exit status.
func run(args []string) int {
	root := newRootCmd()
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.Err != nil && ee.Err.Error() != "" {
			fmt.Fprintln(os.Stderr, "procgate:", ee.Err)
		}
		return ee.Code
	}
	fmt.Fprintln(os.Stderr, "procgate:", err)
	return 2
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "procgate",
		Short: "Model, verify and enforce Linux's read-versus-attach process access",
		Long: `procgate reproduces the kernel's ptrace_may_access decision (READ versus
ATTACH, FSCREDS versus REALCREDS, dumpable, user namespaces and the security
modules) and explains every answer step by step.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newCheckCmd(), newExplainCmd(), newSnapshotCmd(), newVerifyCmd(), newVerifyVMCmd(), newPolicyCmd(), newServeCmd(), newMountCmd(), newPsCmd(), newLsofCmd(), newEnvCmd(), newReadCmd(), newTopCmd(), newReportCmd(), newEnforceCmd())
	return root
}
