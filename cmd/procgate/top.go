package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/client"
)

func newTopCmd() *cobra.Command {
	o := topOptions{}
	cmd := &cobra.Command{
		Use:   "top [--delay D] [--iterations N] [--lines N] [--sort cpu|mem|io|pid] [-o json]",
		Short: "Show the busiest processes through the broker, like top",
		Long: `top samples every process through the broker (procgate serve) — stat,
status, cmdline and io, in one batch request per sample — and shows, per
interval of --delay, each process's CPU use (%CPU of one CPU, over the
interval), memory (RSS, %MEM, as ps counts them) and storage I/O rates
(READ/s, WRITE/s, from io; "-" where the broker refuses io, as it does for a
caller outside group procgate under the default policy). A process is followed by pid and start time, so a reused
pid never inherits another process's counters.

On a terminal it redraws until interrupted, fitting the terminal: commands
are cut at its width and only the processes that fit its height are shown;
otherwise (batch mode, like top -b) it prints --iterations tables, one by
default, with whole lines. -o json prints one JSON object per process and
interval.

Exit status: 0, 2 when the broker cannot be reached.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("iterations") {
				o.iterations = 1
				if isTerminal(cmd.OutOrStdout()) && o.output == "text" {
					o.iterations = 0
				}
			}
			return runTop(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	socketFlag(cmd, &o.socket)
	f := cmd.Flags()
	f.DurationVarP(&o.delay, "delay", "d", 2*time.Second, "sampling interval")
	f.IntVarP(&o.iterations, "iterations", "n", 1, "intervals to show, 0 for no end (default: no end on a terminal, else 1)")
	f.IntVar(&o.lines, "lines", 20, "processes to show per interval, 0 for all")
	f.StringVar(&o.sort, "sort", "cpu", "sort by cpu, mem, io (read+write rate) or pid")
	f.StringVarP(&o.output, "output", "o", "text", "output format: text or json")
	return cmd
}

type topOptions struct {
	socket, sort, output string
	delay                time.Duration
	iterations, lines    int
}

// topSample is one process at one sampling time.
type topSample struct {
	pid       int
	start     uint64
	uid       uint32
	ticks     uint64 // utime + stime
	rssKiB    uint64
	command   string
	io        bool // read and write are known
	read, wrt uint64
	ioErr     *client.ItemError // the broker's refusal of io
}

// topRow is one process over one interval.
type topRow struct {
	PID     int      `json:"pid"`
	User    string   `json:"user"`
	UID     uint32   `json:"uid"`
	CPU     float64  `json:"cpu_percent"`
	Mem     float64  `json:"mem_percent"`
	RSS     uint64   `json:"rss_kib"`
	ReadPS  *float64 `json:"read_bytes_per_second,omitempty"`
	WritePS *float64 `json:"write_bytes_per_second,omitempty"`
	// Errors holds the broker's refusal of io, behind READ/s and
	// WRITE/s, as {"errno","code","reason"}.
	Errors  map[string]*client.ItemError `json:"errors,omitempty"`
	Command string                       `json:"command"`
}

type procKey struct {
	pid   int
	start uint64
}

func runTop(ctx context.Context, out io.Writer, o topOptions) error {
	switch {
	case o.output != "text" && o.output != "json":
		return &exitError{2, fmt.Errorf("top: -o %q: want text or json", o.output)}
	case o.sort != "cpu" && o.sort != "mem" && o.sort != "io" && o.sort != "pid":
		return &exitError{2, fmt.Errorf("top: --sort %q: want cpu, mem, io or pid", o.sort)}
	case o.delay <= 0:
		return &exitError{2, fmt.Errorf("top: --delay %v: want a positive interval", o.delay)}
	case o.iterations < 0 || o.lines < 0:
		return &exitError{2, fmt.Errorf("top: --iterations and --lines must not be negative")}
	}
	si := readSysInfo()
	c := client.New(o.socket)
	defer c.Close()
	prev, prevAt, err := topSampleAll(ctx, c, si)
	if err != nil {
		return clientError("top", err)
	}
	for n := 0; o.iterations == 0 || n < o.iterations; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(o.delay):
		}
		cur, at, err := topSampleAll(ctx, c, si)
		if err != nil {
			return clientError("top", err)
		}
		rows := topRows(prev, cur, at.Sub(prevAt).Seconds(), si)
		sortTop(rows, o.sort)
		if err := writeTop(out, o, rows, len(cur), at, at.Sub(prevAt)); err != nil {
			return err
		}
		prev, prevAt = cur, at
	}
	return nil
}

// topSampleAll reads stat, status, cmdline and io of every process.
func topSampleAll(ctx context.Context, c *client.Client, si *sysInfo) (map[procKey]topSample, time.Time, error) {
	samples := map[procKey]topSample{}
	err := c.Read(ctx, client.Request{All: true, Items: []string{"stat", "status", "cmdline", "io"}}, func(p *client.Process) error {
		if p.Err != nil {
			return nil // exited meanwhile
		}
		stat, err := p.Text("stat")
		if err != nil {
			return nil
		}
		status, _ := p.Text("status")
		args, _ := p.List("cmdline")
		s, ok := parseTopSample(stat, status, args, si.pageKiB)
		if !ok {
			return nil
		}
		s.pid, s.start, s.uid = p.PID, p.Start, p.UID
		if t, err := p.Text("io"); err == nil {
			s.read, s.wrt = ioBytes(t)
			s.io = true
		} else {
			errors.As(err, &s.ioErr)
		}
		samples[procKey{s.pid, s.start}] = s
		return nil
	})
	return samples, time.Now(), err
}

// parseTopSample reads utime+stime from a stat line (fields per
// proc_pid_stat(5)), the resident set and the command as ps does.
func parseTopSample(stat, status string, args []string, pageKiB uint64) (topSample, bool) {
	comm, f, ok := statFields(stat)
	if !ok {
		return topSample{}, false
	}
	return topSample{command: psCommand(comm, f[0], args), ticks: f.num(14) + f.num(15), rssKiB: rssKiB(status, f.num(24), pageKiB)}, true
}

// topRows computes each process's use over the interval of secs seconds
// between prev and cur. A process absent from prev (new, or its pid
// reused) is measured from its start, within the interval.
func topRows(prev, cur map[procKey]topSample, secs float64, si *sysInfo) []topRow {
	rows := make([]topRow, 0, len(cur))
	for k, s := range cur {
		r := topRow{PID: s.pid, UID: s.uid, User: si.user(s.uid), RSS: s.rssKiB, Command: s.command}
		if si.memKiB > 0 {
			r.Mem = 100 * float64(s.rssKiB) / float64(si.memKiB)
		}
		p, seen := prev[k]
		if !seen {
			p = topSample{io: s.io} // counters from zero: it started within the interval
		}
		if secs > 0 && s.ticks >= p.ticks {
			r.CPU = 100 * float64(s.ticks-p.ticks) / si.hz / secs
		}
		if s.io && p.io && secs > 0 && s.read >= p.read && s.wrt >= p.wrt {
			rd, wr := float64(s.read-p.read)/secs, float64(s.wrt-p.wrt)/secs
			r.ReadPS, r.WritePS = &rd, &wr
		}
		if s.ioErr != nil {
			r.Errors = map[string]*client.ItemError{"io": s.ioErr}
		}
		rows = append(rows, r)
	}
	return rows
}

func sortTop(rows []topRow, by string) {
	rate := func(r *topRow) float64 {
		if r.ReadPS == nil {
			return -1
		}
		return *r.ReadPS + *r.WritePS
	}
	sort.Slice(rows, func(i, j int) bool {
		a, b := &rows[i], &rows[j]
		switch by {
		case "cpu":
			if a.CPU != b.CPU {
				return a.CPU > b.CPU
			}
		case "mem":
			if a.RSS != b.RSS {
				return a.RSS > b.RSS
			}
		case "io":
			if ra, rb := rate(a), rate(b); ra != rb {
				return ra > rb
			}
		}
		return a.PID < b.PID
	})
}

func writeTop(out io.Writer, o topOptions, rows []topRow, total int, at time.Time, interval time.Duration) error {
	if o.lines > 0 && len(rows) > o.lines {
		rows = rows[:o.lines]
	}
	bw := bufio.NewWriterSize(out, 64<<10)
	if o.output == "json" {
		enc := json.NewEncoder(bw)
		for i := range rows {
			if err := enc.Encode(&rows[i]); err != nil {
				return err
			}
		}
		return bw.Flush()
	}
	// On a terminal every line fits its width, and a redrawn screen its
	// height; in batch mode (a pipe, a file) lines are whole, as top -b.
	width, height := terminalSize(out)
	if o.iterations == 0 {
		bw.WriteString("\x1b[H\x1b[2J") // redraw in place
	} else {
		height = 0
	}
	head := fmt.Sprintf("procgate top - %s, %d processes, over %.1f s, by %s", at.Format("15:04:05"), total, interval.Seconds(), o.sort)
	if err := writeTopScreen(bw, head, rows, width, height); err != nil {
		return err
	}
	if o.iterations != 1 && height == 0 {
		bw.WriteString("\n")
	}
	return bw.Flush()
}

// topColumns are the columns of procgate top.
var topColumns = []column{{"PID", true}, {"USER", false}, {"%CPU", true}, {"%MEM", true}, {"RSS", true},
	{"READ/s", true}, {"WRITE/s", true}, {"COMMAND", false}}

// writeTopScreen writes one interval: the summary line head, a blank
// line and the table. width > 0 cuts every line at width characters (the
// command first, being last), so that a terminal never wraps one;
// height > 0 shows only the processes that fit in height lines, keeping
// the last line free for the cursor so that the screen does not scroll.
func writeTopScreen(out io.Writer, head string, rows []topRow, width, height int) error {
	if height > 0 {
		rows = rows[:min(len(rows), max(height-4, 0))]
	}
	cells := make([][]string, len(rows))
	for i, r := range rows {
		cells[i] = []string{strconv.Itoa(r.PID), r.User, fmt.Sprintf("%.1f", r.CPU), fmt.Sprintf("%.1f", r.Mem),
			strconv.FormatUint(r.RSS, 10), optRate(r.ReadPS), optRate(r.WritePS), r.Command}
	}
	if _, err := io.WriteString(out, fitWidth(head, width)+"\n\n"); err != nil {
		return err
	}
	return writeTable(out, topColumns, cells, width)
}

// terminalSize returns the width and height of the terminal w writes to,
// or 0, 0 when it is not one.
func terminalSize(w io.Writer) (width, height int) {
	f, ok := w.(*os.File)
	if !ok {
		return 0, 0
	}
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return 0, 0
	}
	return int(ws.Col), int(ws.Row)
}

// optRate prints a byte rate in B, K, M or G per second, "-" when unknown.
func optRate(v *float64) string {
	if v == nil {
		return "-"
	}
	switch x := *v; {
	case x >= 1<<30:
		return fmt.Sprintf("%.1fG", x/(1<<30))
	case x >= 1<<20:
		return fmt.Sprintf("%.1fM", x/(1<<20))
	case x >= 1<<10:
		return fmt.Sprintf("%.1fK", x/(1<<10))
	}
	return fmt.Sprintf("%.0f", *v)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
