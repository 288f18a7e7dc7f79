package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/procgate/procgate/client"
)

func newPsCmd() *cobra.Command {
	var socket, output string
	var columns []string
	cmd := &cobra.Command{
		Use:   "ps [--columns exe,fds,io] [-o json]",
		Short: "List every process through the broker, like ps aux",
		Long: `ps lists every process with the columns of "ps aux" (USER PID %CPU %MEM VSZ
RSS TTY STAT START TIME COMMAND), read through the broker (procgate serve) in
one batch request. --columns adds EXE (the executable), FDS (open file
descriptors) and READ/WRITE (bytes of storage I/O, from io); a value the
broker refuses shows as "-". -o json prints one object per process.

Exit status: 0 listed, 2 the broker cannot be reached.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPs(cmd.Context(), cmd.OutOrStdout(), socket, output, columns)
		},
	}
	socketFlag(cmd, &socket)
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	cmd.Flags().StringSliceVar(&columns, "columns", nil, "extra columns: exe, fds, io")
	return cmd
}

// psRow is one process as ps prints it.
type psRow struct {
	User    string  `json:"user"`
	UID     uint32  `json:"uid"`
	PID     int     `json:"pid"`
	CPU     float64 `json:"cpu_percent"`
	Mem     float64 `json:"mem_percent"`
	VSZ     uint64  `json:"vsz_kib"`
	RSS     uint64  `json:"rss_kib"`
	TTY     string  `json:"tty"`
	Stat    string  `json:"stat"`
	Start   string  `json:"start"`
	Time    string  `json:"time"`
	Command string  `json:"command"`
	Exe     *string `json:"exe,omitempty"`
	FDs     *int    `json:"fds,omitempty"`
	Read    *uint64 `json:"read_bytes,omitempty"`
	Write   *uint64 `json:"write_bytes,omitempty"`
}

// sysInfo is what ps needs of the machine: uptime, memory, boot time,
// clock ticks and user names.
type sysInfo struct {
	uptime   float64
	memKiB   uint64
	boot     time.Time
	hz       float64
	pageKiB  uint64
	users    map[uint32]string
	now      time.Time
	extraCol map[string]bool
}

func readSysInfo() *sysInfo {
	si := &sysInfo{hz: 100, pageKiB: uint64(os.Getpagesize() / 1024), users: map[uint32]string{}, now: time.Now()}
	if b, err := os.ReadFile("/proc/uptime"); err == nil {
		f := strings.Fields(string(b))
		if len(f) > 0 {
			si.uptime, _ = strconv.ParseFloat(f[0], 64)
		}
	}
	si.boot = si.now.Add(-time.Duration(si.uptime * float64(time.Second)))
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				si.memKiB, _ = strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			}
		}
	}
	if f, err := os.Open("/etc/passwd"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			p := strings.Split(sc.Text(), ":")
			if len(p) > 2 {
				if id, err := strconv.ParseUint(p[2], 10, 32); err == nil {
					if _, dup := si.users[uint32(id)]; !dup {
						si.users[uint32(id)] = p[0]
					}
				}
			}
		}
		f.Close()
	}
	return si
}

func (si *sysInfo) user(uid uint32) string {
	if n, ok := si.users[uid]; ok {
		if len(n) > 8 {
			return n[:7] + "+"
		}
		return n
	}
	return strconv.FormatUint(uint64(uid), 10)
}

func runPs(ctx context.Context, out io.Writer, socket, output string, columns []string) error {
	if output != "text" && output != "json" {
		return &exitError{2, fmt.Errorf("ps: -o %q: want text or json", output)}
	}
	si := readSysInfo()
	si.extraCol = map[string]bool{}
	items := []string{"stat", "cmdline"}
	for _, c := range columns {
		switch c {
		case "exe":
			items = append(items, "exe")
		case "fds":
			items = append(items, "fd_count")
		case "io":
			items = append(items, "io")
		default:
			return &exitError{2, fmt.Errorf("ps: --columns %q: want exe, fds or io", c)}
		}
		si.extraCol[c] = true
	}
	c := client.New(socket)
	defer c.Close()
	var rows []psRow
	err := c.Read(ctx, client.Request{All: true, Items: items}, func(p *client.Process) error {
		if p.Err != nil {
			return nil // exited meanwhile
		}
		if r, ok := si.row(p); ok {
			rows = append(rows, r)
		}
		return nil
	})
	if err != nil {
		return clientError("ps", err)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].PID < rows[j].PID })
	if output == "json" {
		enc := json.NewEncoder(out)
		for i := range rows {
			if err := enc.Encode(&rows[i]); err != nil {
				return err
			}
		}
		return nil
	}
	bw := bufio.NewWriterSize(out, 64<<10)
	defer bw.Flush()
	tw := tabwriter.NewWriter(bw, 0, 0, 1, ' ', tabwriter.AlignRight)
	header := "USER\tPID\t%CPU\t%MEM\tVSZ\tRSS\tTTY\tSTAT\tSTART\tTIME\t"
	if si.extraCol["exe"] {
		header += "EXE\t"
	}
	if si.extraCol["fds"] {
		header += "FDS\t"
	}
	if si.extraCol["io"] {
		header += "READ\tWRITE\t"
	}
	fmt.Fprintln(tw, header+" COMMAND")
	for _, r := range rows {
		line := fmt.Sprintf("%s\t%d\t%.1f\t%.1f\t%d\t%d\t%s\t%s\t%s\t%s\t", r.User, r.PID, r.CPU, r.Mem, r.VSZ, r.RSS, r.TTY, r.Stat, r.Start, r.Time)
		if si.extraCol["exe"] {
			line += optString(r.Exe) + "\t"
		}
		if si.extraCol["fds"] {
			line += optInt(r.FDs) + "\t"
		}
		if si.extraCol["io"] {
			line += optUint(r.Read) + "\t" + optUint(r.Write) + "\t"
		}
		fmt.Fprintln(tw, line+" "+r.Command)
	}
	return tw.Flush()
}

func optString(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}

func optInt(n *int) string {
	if n == nil {
		return "-"
	}
	return strconv.Itoa(*n)
}

func optUint(n *uint64) string {
	if n == nil {
		return "-"
	}
	return strconv.FormatUint(*n, 10)
}

// row builds a ps line from stat (fields per proc_pid_stat(5)) and
// cmdline.
func (si *sysInfo) row(p *client.Process) (psRow, bool) {
	stat, err := p.Text("stat")
	if err != nil {
		return psRow{}, false
	}
	comm, f, ok := statFields(stat)
	if !ok {
		return psRow{}, false
	}
	num := func(n int) uint64 { v, _ := strconv.ParseUint(f[n-3], 10, 64); return v }
	inum := func(n int) int64 { v, _ := strconv.ParseInt(f[n-3], 10, 64); return v }
	r := psRow{PID: p.PID, UID: p.UID, User: si.user(p.UID)}
	utime, stime, start := num(14), num(15), num(22)
	cpuSecs := float64(utime+stime) / si.hz
	if el := si.uptime - float64(start)/si.hz; el > 0 {
		r.CPU = 100 * cpuSecs / el
	}
	r.VSZ = num(23) / 1024
	r.RSS = num(24) * si.pageKiB
	if si.memKiB > 0 {
		r.Mem = 100 * float64(r.RSS) / float64(si.memKiB)
	}
	r.TTY = ttyName(inum(7))
	r.Stat = f[0]
	if inum(19) < 0 {
		r.Stat += "<"
	} else if inum(19) > 0 {
		r.Stat += "N"
	}
	if int64(p.PID) == inum(6) {
		r.Stat += "s"
	}
	if num(20) > 1 {
		r.Stat += "l"
	}
	if tp := inum(8); tp > 0 && tp == inum(5) {
		r.Stat += "+"
	}
	st := si.boot.Add(time.Duration(float64(start) / si.hz * float64(time.Second)))
	switch {
	case si.now.Sub(st) < 24*time.Hour:
		r.Start = st.Format("15:04")
	case st.Year() == si.now.Year():
		r.Start = st.Format("Jan02")
	default:
		r.Start = st.Format("2006")
	}
	secs := int(cpuSecs)
	r.Time = fmt.Sprintf("%d:%02d", secs/60, secs%60)
	if args, err := p.List("cmdline"); err == nil && len(args) > 0 {
		r.Command = strings.Join(args, " ")
	} else {
		r.Command = "[" + comm + "]"
	}
	if si.extraCol["exe"] {
		if s, err := p.Text("exe"); err == nil {
			r.Exe = &s
		}
	}
	if si.extraCol["fds"] {
		if n, err := p.Count("fd_count"); err == nil {
			r.FDs = &n
		}
	}
	if si.extraCol["io"] {
		if s, err := p.Text("io"); err == nil {
			rd, wr := ioBytes(s)
			r.Read, r.Write = &rd, &wr
		}
	}
	return r, true
}

// statFields splits a stat line (proc_pid_stat(5)) into comm and the
// fields after it: f[0] is field 3 (state); at least fields 3 to 24.
func statFields(stat string) (comm string, f []string, ok bool) {
	i := strings.LastIndexByte(stat, ')')
	j := strings.IndexByte(stat, '(')
	if i < 0 || j < 0 || j > i {
		return "", nil, false
	}
	f = strings.Fields(stat[i+1:])
	if len(f) < 22 {
		return "", nil, false
	}
	return stat[j+1 : i], f, true
}

// ioBytes returns read_bytes and write_bytes of an io file.
func ioBytes(s string) (rd, wr uint64) {
	for line := range strings.SplitSeq(s, "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		switch k {
		case "read_bytes":
			rd = n
		case "write_bytes":
			wr = n
		}
	}
	return rd, wr
}

// ttyName names a controlling terminal from stat's tty_nr.
func ttyName(nr int64) string {
	if nr == 0 {
		return "?"
	}
	major := (nr >> 8) & 0xfff
	minor := (nr & 0xff) | ((nr >> 12) & 0xfff00)
	switch {
	case major == 4 && minor < 64:
		return "tty" + strconv.FormatInt(minor, 10)
	case major == 4:
		return "ttyS" + strconv.FormatInt(minor-64, 10)
	case major >= 136 && major <= 143:
		return "pts/" + strconv.FormatInt((major-136)*256+minor, 10)
	}
	return "?"
}
