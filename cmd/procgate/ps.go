package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
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
one batch request, computed as procps computes them: RSS is VmRSS, STAT
carries procps's flags (< N L s l +), a zombie is "[comm] <defunct>".
--columns adds EXE (the executable), FDS (open file descriptors) and
READ/WRITE (bytes of storage I/O, from io); a value the broker refuses shows
as "-". -o json prints one object per process, with the broker's refusal of
an extra column's item under "errors" ({"errno", "code", "reason"}).

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
	// Errors holds the broker's refusal of an item behind an extra
	// column (exe, fd_count, io), as {"errno","code","reason"}.
	Errors map[string]*client.ItemError `json:"errors,omitempty"`
}

func runPs(ctx context.Context, out io.Writer, socket, output string, columns []string) error {
	if output != "text" && output != "json" {
		return &exitError{2, fmt.Errorf("ps: -o %q: want text or json", output)}
	}
	si := readSysInfo()
	si.extraCol = map[string]bool{}
	items := []string{"stat", "status", "cmdline"}
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
	return writeTable(out, psColumns(si.extraCol), psCells(rows, si.extraCol), 0)
}

// psColumns are ps aux's columns, with the extra ones before COMMAND.
func psColumns(extra map[string]bool) []column {
	cols := []column{{"USER", false}, {"PID", true}, {"%CPU", true}, {"%MEM", true}, {"VSZ", true}, {"RSS", true},
		{"TTY", false}, {"STAT", false}, {"START", true}, {"TIME", true}}
	if extra["exe"] {
		cols = append(cols, column{"EXE", false})
	}
	if extra["fds"] {
		cols = append(cols, column{"FDS", true})
	}
	if extra["io"] {
		cols = append(cols, column{"READ", true}, column{"WRITE", true})
	}
	return append(cols, column{"COMMAND", false})
}

// psCells renders rows as the cells of psColumns.
func psCells(rows []psRow, extra map[string]bool) [][]string {
	out := make([][]string, 0, len(rows))
	for _, r := range rows {
		c := []string{r.User, strconv.Itoa(r.PID), fmt.Sprintf("%.1f", r.CPU), fmt.Sprintf("%.1f", r.Mem),
			strconv.FormatUint(r.VSZ, 10), strconv.FormatUint(r.RSS, 10), r.TTY, r.Stat, r.Start, r.Time}
		if extra["exe"] {
			c = append(c, optString(r.Exe))
		}
		if extra["fds"] {
			c = append(c, optInt(r.FDs))
		}
		if extra["io"] {
			c = append(c, optUint(r.Read), optUint(r.Write))
		}
		out = append(out, append(c, r.Command))
	}
	return out
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

// psInput is what ps reads of one process: the broker's answers for it.
type psInput struct {
	PID int
	UID uint32
	// Stat is the stat line (required); Status the status file, "" when
	// the broker did not serve it; Cmdline the arguments, nil when empty
	// or refused.
	Stat, Status string
	Cmdline      []string
}

// row builds a ps line from the broker's answers for one process.
func (si *sysInfo) row(p *client.Process) (psRow, bool) {
	in := psInput{PID: p.PID, UID: p.UID}
	var err error
	if in.Stat, err = p.Text("stat"); err != nil {
		return psRow{}, false
	}
	in.Status, _ = p.Text("status")
	in.Cmdline, _ = p.List("cmdline")
	r, ok := si.psRow(in)
	if !ok {
		return r, false
	}
	if si.extraCol["exe"] {
		if s, err := p.Text("exe"); err == nil {
			r.Exe = &s
		} else {
			r.addError("exe", err)
		}
	}
	if si.extraCol["fds"] {
		if n, err := p.Count("fd_count"); err == nil {
			r.FDs = &n
		} else {
			r.addError("fd_count", err)
		}
	}
	if si.extraCol["io"] {
		if s, err := p.Text("io"); err == nil {
			rd, wr := ioBytes(s)
			r.Read, r.Write = &rd, &wr
		} else {
			r.addError("io", err)
		}
	}
	return r, true
}

// addError records why an item behind an extra column is missing, for
// -o json.
func (r *psRow) addError(item string, err error) {
	var ie *client.ItemError
	if errors.As(err, &ie) {
		if r.Errors == nil {
			r.Errors = map[string]*client.ItemError{}
		}
		r.Errors[item] = ie
	}
}

// psRow builds the columns of ps aux from stat (fields per
// proc_pid_stat(5)), status and cmdline, as procps does: RSS is status's
// VmRSS (stat's rss field is the kernel's approximate per-CPU count, and
// lower), STAT is procps's pr_stat, and a zombie's command ends in
// "<defunct>".
func (si *sysInfo) psRow(in psInput) (psRow, bool) {
	comm, f, ok := statFields(in.Stat)
	if !ok {
		return psRow{}, false
	}
	r := psRow{PID: in.PID, UID: in.UID, User: si.user(in.UID)}
	utime, stime, start := f.num(14), f.num(15), f.num(22)
	cpuSecs := float64(utime+stime) / si.hz
	if el := si.uptime - float64(start)/si.hz; el > 0 {
		r.CPU = 100 * cpuSecs / el
	}
	r.VSZ = f.num(23) / 1024
	r.RSS = rssKiB(in.Status, f.num(24), si.pageKiB)
	if si.memKiB > 0 {
		r.Mem = 100 * float64(r.RSS) / float64(si.memKiB)
	}
	r.TTY = ttyName(f.signed(7))
	r.Stat = psStat(in.PID, f, in.Status)
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
	r.Command = psCommand(comm, f[0], in.Cmdline)
	return r, true
}

// psCommand is procps's COMMAND of ps aux: the arguments, or "[comm]"
// when there are none (a kernel thread, a zombie), with " <defunct>" for
// a zombie (procps library/readproc.c: escape_command, ESC_DEFUNCT).
func psCommand(comm, state string, args []string) string {
	if len(args) > 0 {
		return strings.Join(args, " ")
	}
	if state == "Z" {
		return "[" + comm + "] <defunct>"
	}
	return "[" + comm + "]"
}

// psStat is procps's STAT (ps/output.c: pr_stat): the state, then "<"
// (negative nice) or "N" (positive nice), "L" (pages locked: VmLck),
// "s" (session leader), "l" (more than one thread), "+" (in the
// foreground process group of its terminal). f holds stat's fields from
// 3 on; status may be "" (no L then).
func psStat(pid int, f procStat, status string) string {
	s := f[0]
	switch nice := f.signed(19); {
	case nice < 0:
		s += "<"
	case nice > 0:
		s += "N"
	}
	if lck, ok := statusKiB(status, "VmLck"); ok && lck > 0 {
		s += "L"
	}
	if f.signed(6) == int64(pid) {
		s += "s"
	}
	if f.signed(20) > 1 {
		s += "l"
	}
	if f.signed(5) == f.signed(8) {
		s += "+"
	}
	return s
}

// rssKiB is the resident set in KiB: status's VmRSS, which the kernel
// sums exactly (proc_pid_status: get_mm_counter_sum), or 0 for a task
// without an mm (no VmRSS line); without status, stat's rss field in
// pages, which the kernel reads from per-CPU counters without their
// pending deltas (get_mm_rss).
func rssKiB(status string, statPages, pageKiB uint64) uint64 {
	if status == "" {
		return statPages * pageKiB
	}
	v, _ := statusKiB(status, "VmRSS")
	return v
}

// statusKiB returns a "Key:   N kB" value of a status file.
func statusKiB(status, key string) (uint64, bool) {
	for line := range strings.SplitSeq(status, "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// statFields splits a stat line (proc_pid_stat(5)) into comm and the
// fields after it, from field 3 (state) on; at least fields 3 to 24.
func statFields(stat string) (comm string, f procStat, ok bool) {
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

// procStat holds the fields of a stat line from field 3 (state) on.
type procStat []string

// num returns field n (numbered as in proc_pid_stat(5)) as an unsigned
// number, 0 when it is not one.
func (f procStat) num(n int) uint64 { v, _ := strconv.ParseUint(f[n-3], 10, 64); return v }

// signed returns field n as a signed number (nice, tty_nr, tpgid).
func (f procStat) signed(n int) int64 { v, _ := strconv.ParseInt(f[n-3], 10, 64); return v }

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
