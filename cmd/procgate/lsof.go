package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/procgate/procgate/client"
)

func newLsofCmd() *cobra.Command {
	var socket string
	var pids []int
	cmd := &cobra.Command{
		Use:   "lsof [--pid PID]...",
		Short: "List open files through the broker, like lsof",
		Long: `lsof lists the open files of every process (or of the --pid ones) as
COMMAND PID USER FD TYPE NAME, read through the broker (procgate serve): the
cwd, rtd (root) and txt (executable) links, then every file descriptor.
Processes whose files the broker refuses to this caller are left out.

Exit status: 0 listed, 2 the broker cannot be reached.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runLsof(cmd.Context(), cmd.OutOrStdout(), socket, pids)
		},
	}
	socketFlag(cmd, &socket)
	cmd.Flags().IntSliceVarP(&pids, "pid", "p", nil, "only these processes")
	return cmd
}

func runLsof(ctx context.Context, out io.Writer, socket string, pids []int) error {
	si := readSysInfo()
	c := client.New(socket)
	defer c.Close()
	type row struct{ cmd, pid, user, fd, typ, name string }
	var rows [][]row
	req := client.Request{PIDs: pids, All: len(pids) == 0, Items: []string{"cwd", "root", "exe", "fd"}}
	err := c.Read(ctx, req, func(p *client.Process) error {
		if p.Err != nil {
			return nil
		}
		var rs []row
		add := func(fd, name string) {
			rs = append(rs, row{p.Comm, strconv.Itoa(p.PID), si.user(p.UID), fd, fileType(name), name})
		}
		for _, l := range [][2]string{{"cwd", "cwd"}, {"rtd", "root"}, {"txt", "exe"}} {
			if s, err := p.Text(l[1]); err == nil {
				add(l[0], s)
			}
		}
		if fds, err := p.Links("fd"); err == nil {
			keys := make([]int, 0, len(fds))
			for k := range fds {
				n, _ := strconv.Atoi(k)
				keys = append(keys, n)
			}
			sort.Ints(keys)
			for _, k := range keys {
				add(strconv.Itoa(k), fds[strconv.Itoa(k)])
			}
		}
		if len(rs) > 0 {
			rows = append(rows, rs)
		}
		return nil
	})
	if err != nil {
		return clientError("lsof", err)
	}
	sort.Slice(rows, func(i, j int) bool {
		a, _ := strconv.Atoi(rows[i][0].pid)
		b, _ := strconv.Atoi(rows[j][0].pid)
		return a < b
	})
	tw := tabwriter.NewWriter(out, 0, 0, 1, ' ', 0)
	fmt.Fprintln(tw, "COMMAND\tPID\tUSER\tFD\tTYPE\tNAME")
	for _, rs := range rows {
		for _, r := range rs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.cmd, r.pid, r.user, r.fd, r.typ, r.name)
		}
	}
	return tw.Flush()
}

// fileType guesses lsof's TYPE column from a link target.
func fileType(name string) string {
	switch {
	case strings.HasPrefix(name, "socket:"):
		return "sock"
	case strings.HasPrefix(name, "pipe:"):
		return "FIFO"
	case strings.HasPrefix(name, "anon_inode:"):
		return "a_inode"
	case strings.HasPrefix(name, "/dev/"):
		return "CHR"
	case strings.HasPrefix(name, "/"):
		return "REG"
	}
	return "unknown"
}
