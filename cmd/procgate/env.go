package main

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/procgate/procgate/client"
)

// ctxT shortens signatures.
type ctxT = context.Context

func newEnvCmd() *cobra.Command {
	var socket string
	cmd := &cobra.Command{
		Use:   "env PID",
		Short: "Print a process's environment through the broker",
		Long: `env prints the initial environment of a process, one variable a line, as
the broker (procgate serve) answers it. The default policy never grants
environ of other users' processes: the refusal is printed with its errno and
reason.

Exit status: 0 printed, 1 refused or no such process, 2 the broker cannot be
reached.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pid, err := strconv.Atoi(args[0])
			if err != nil || pid <= 0 {
				return &exitError{2, fmt.Errorf("env: %q is not a pid", args[0])}
			}
			return runEnv(cmd.Context(), cmd.OutOrStdout(), socket, pid)
		},
	}
	socketFlag(cmd, &socket)
	return cmd
}

func runEnv(ctx context.Context, out io.Writer, socket string, pid int) error {
	c := client.New(socket)
	defer c.Close()
	procs, err := c.ReadAll(ctx, client.Request{PIDs: []int{pid}, Items: []string{"environ"}})
	if err != nil {
		return clientError("env", err)
	}
	if len(procs) != 1 {
		return &exitError{2, fmt.Errorf("env: the broker answered %d processes for one", len(procs))}
	}
	env, err := procs[0].List("environ")
	if err != nil {
		// One line: the item error already says "pid N environ: permission
		// denied: <the broker's reason>".
		return &exitError{1, fmt.Errorf("env: %w", err)}
	}
	for _, e := range env {
		fmt.Fprintln(out, e)
	}
	return nil
}
