package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

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
TYPE is DIR, REG, CHR, FIFO, sock or a_inode. Without --pid, processes whose
files the broker refuses to this caller are left out; a --pid process that
does not exist, or whose files are refused, is reported on standard error
("procgate lsof: pid N: reason"; "pid N cwd: reason" when only some are).

Exit status: 0 listed, 1 a --pid process missing or (partly) refused, 2 the
broker cannot be reached.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runLsof(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), socket, pids)
		},
	}
	socketFlag(cmd, &socket)
	cmd.Flags().IntSliceVarP(&pids, "pid", "p", nil, "only these processes")
	return cmd
}

func runLsof(ctx context.Context, out, errOut io.Writer, socket string, pids []int) error {
	si := readSysInfo()
	c := client.New(socket)
	defer c.Close()
	var rows []lsofRow
	failed := 0
	req := client.Request{PIDs: pids, All: len(pids) == 0, Items: []string{"cwd", "root", "exe", "fd", "fdinfo"}}
	err := c.Read(ctx, req, func(p *client.Process) error {
		rs, problems := lsofProcess(p, si.user(p.UID))
		rows = append(rows, rs...)
		if req.All {
			return nil // a process the broker refuses to this caller is left out
		}
		for _, e := range problems {
			fmt.Fprintf(errOut, "procgate lsof: %v\n", e)
		}
		if len(problems) > 0 {
			failed++
		}
		return nil
	})
	if err != nil {
		return clientError("lsof", err)
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].pid < rows[j].pid })
	if len(rows) > 0 {
		cells := make([][]string, len(rows))
		for i, r := range rows {
			cells[i] = []string{r.cmd, strconv.Itoa(r.pid), r.user, r.fd, r.typ, r.name}
		}
		cols := []column{{"COMMAND", false}, {"PID", true}, {"USER", false}, {"FD", true}, {"TYPE", true}, {"NAME", false}}
		if err := writeTable(out, cols, cells, 0); err != nil {
			return err
		}
	}
	if failed > 0 {
		return &exitError{1, nil}
	}
	return nil
}

// lsofRow is one open file.
type lsofRow struct {
	cmd, user, fd, typ, name string
	pid                      int
}

// lsofProcess lists one process's files: cwd, rtd (root) and txt (exe),
// then every descriptor in order. problems says why the process, or one
// of these items, was not answered: the process's error, or the broker's
// refusal of an item; an item that does not exist (ENOENT: a kernel
// thread has no executable) is not one. A process whose every item is
// refused is reported once, with the reason the descriptors were refused.
func lsofProcess(p *client.Process, user string) (rows []lsofRow, problems []error) {
	if p.Err != nil {
		return nil, []error{p.Err}
	}
	var infos map[string]string
	if m, err := p.Links("fdinfo"); err == nil {
		infos = m
	}
	add := func(fd, name, info string) {
		rows = append(rows, lsofRow{p.Comm, user, fd, fileType(fd, name, info), name, p.PID})
	}
	var refused []*client.ItemError
	problem := func(err error) {
		var ie *client.ItemError
		if errors.As(err, &ie) && ie.Errno != syscall.ENOENT {
			refused = append(refused, ie)
		}
	}
	for _, l := range [][2]string{{"cwd", "cwd"}, {"rtd", "root"}, {"txt", "exe"}} {
		if s, err := p.Text(l[1]); err == nil {
			add(l[0], s, "")
		} else {
			problem(err)
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
			n := strconv.Itoa(k)
			add(n, fds[n], infos[n])
		}
	} else {
		problem(err)
	}
	if len(rows) == 0 && len(refused) > 0 {
		whole := *refused[len(refused)-1] // the descriptors', when refused
		whole.Item = ""
		return nil, []error{&whole}
	}
	for _, ie := range refused {
		problems = append(problems, ie)
	}
	return rows, problems
}

// fileType is lsof's TYPE column for a file of a process, decided from
// what the broker serves: cwd and rtd are directories, txt a regular
// file; a descriptor's link target names sockets ("socket:[…]"), pipes
// ("pipe:[…]") and anonymous inodes, /dev paths are taken as character
// devices, and a path opened with O_DIRECTORY (its fdinfo flags) is a
// directory. A directory opened without O_DIRECTORY cannot be told from
// a regular file by these, and shows as REG.
func fileType(fd, name, fdinfo string) string {
	switch {
	case fd == "cwd" || fd == "rtd":
		return "DIR"
	case fd == "txt":
		return "REG"
	case strings.HasPrefix(name, "socket:"):
		return "sock"
	case strings.HasPrefix(name, "pipe:"):
		return "FIFO"
	case strings.HasPrefix(name, "anon_inode:"):
		return "a_inode"
	case strings.HasPrefix(name, "/dev/"):
		return "CHR"
	case strings.HasPrefix(name, "/") && openFlags(fdinfo)&unix.O_DIRECTORY != 0:
		return "DIR"
	case strings.HasPrefix(name, "/"):
		return "REG"
	}
	return "unknown"
}

// openFlags returns the "flags:" of an fdinfo file (octal), 0 when absent.
func openFlags(fdinfo string) int {
	for line := range strings.SplitSeq(fdinfo, "\n") {
		if v, ok := strings.CutPrefix(line, "flags:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 8, 64)
			return int(n)
		}
	}
	return 0
}
