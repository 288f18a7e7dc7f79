package main

import (
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/procgate/procgate/client"
)

func TestTTYName(t *testing.T) {
	tests := []struct {
		nr   int64
		want string
	}{
		{0, "?"}, {4<<8 | 1, "tty1"}, {4<<8 | 65, "ttyS1"}, {136<<8 | 3, "pts/3"}, {137<<8 | 2, "pts/258"}, {1<<8 | 3, "?"},
	}
	for _, tc := range tests {
		if got := ttyName(tc.nr); got != tc.want {
			t.Errorf("ttyName(%#x) = %q, want %q", tc.nr, got, tc.want)
		}
	}
}

func TestIOBytes(t *testing.T) {
	rd, wr := ioBytes("rchar: 5\nread_bytes: 4096\nwrite_bytes: 8192\ncancelled_write_bytes: 0\n")
	if rd != 4096 || wr != 8192 {
		t.Errorf("ioBytes = %d, %d, want 4096, 8192", rd, wr)
	}
}

func TestFileType(t *testing.T) {
	dirInfo := "pos:\t0\nflags:\t02300000\nmnt_id:\t26\nino:\t246947\n" // O_RDONLY|O_DIRECTORY|O_CLOEXEC|O_LARGEFILE
	fileInfo := "pos:\t0\nflags:\t02100000\nmnt_id:\t26\nino:\t246947\n"
	tests := []struct{ fd, name, fdinfo, want string }{
		{"cwd", "/home/user", "", "DIR"},
		{"rtd", "/", "", "DIR"},
		{"txt", "/usr/bin/sleep", "", "REG"},
		{"3", "socket:[1]", "", "sock"},
		{"4", "pipe:[2]", "", "FIFO"},
		{"5", "anon_inode:[eventfd]", "", "a_inode"},
		{"0", "/dev/null", "", "CHR"},
		{"6", "/etc/passwd", fileInfo, "REG"},
		{"7", "/tmp", dirInfo, "DIR"},
		{"8", "/tmp", "", "REG"}, // fdinfo refused: nothing tells a directory
		{"9", "mnt:[4026531841]", "", "unknown"},
	}
	for _, tc := range tests {
		if got := fileType(tc.fd, tc.name, tc.fdinfo); got != tc.want {
			t.Errorf("fileType(%q, %q) = %q, want %q", tc.fd, tc.name, got, tc.want)
		}
	}
}

func TestTopRows(t *testing.T) {
	refusedIO := &client.ItemError{PID: 11, Item: "io", Errno: syscall.EACCES, Reason: "policy: no rule grants read { io }"}
	si := &sysInfo{hz: 100, memKiB: 1000, users: map[uint32]string{0: "root"}}
	a, b, c := procKey{10, 500}, procKey{11, 600}, procKey{11, 900}
	prev := map[procKey]topSample{
		a: {pid: 10, start: 500, ticks: 100, io: true, read: 1000, wrt: 0},
		b: {pid: 11, start: 600, ticks: 5000, io: true, read: 0, wrt: 0},
	}
	cur := map[procKey]topSample{
		a: {pid: 10, start: 500, ticks: 300, rssKiB: 100, io: true, read: 5000, wrt: 2000}, // 200 ticks in 2 s
		c: {pid: 11, start: 900, ticks: 50, io: false, ioErr: refusedIO},                   // pid 11 reused: from zero, never b's counters
	}
	rows := topRows(prev, cur, 2, si)
	sortTop(rows, "cpu")
	if len(rows) != 2 || rows[0].PID != 10 || rows[1].PID != 11 {
		t.Fatalf("rows = %+v", rows)
	}
	r := rows[0]
	if r.CPU != 100 || r.Mem != 10 || r.ReadPS == nil || *r.ReadPS != 2000 || *r.WritePS != 1000 || r.User != "root" {
		t.Errorf("busy process: %+v", r)
	}
	if r := rows[1]; r.CPU != 25 || r.ReadPS != nil || r.Errors["io"] != refusedIO {
		t.Errorf("reused pid: %+v (want 25%% from its own start, io unknown and its refusal)", r)
	}
	if rows[0].Errors != nil {
		t.Errorf("busy process: errors %v", rows[0].Errors)
	}
	if got := optRate(r.ReadPS); got != "2.0K" {
		t.Errorf("optRate = %q", got)
	}
	if got := optRate(nil); got != "-" {
		t.Errorf("optRate(nil) = %q", got)
	}
}

// stat builds a stat line (proc_pid_stat(5)) for pid with the given
// state, session, tty, foreground group, nice and thread count; pgrp is
// pid.
func statLine(pid int, state string, session, ttyNr, tpgid, nice, threads int) string {
	f := make([]string, 52)
	for i := range f {
		f[i] = "0"
	}
	set := func(n, v int) { f[n-1] = strconv.Itoa(v) }
	set(1, pid)
	f[1] = "(cmd)"
	f[2] = state
	set(5, pid)
	set(6, session)
	set(7, ttyNr)
	set(8, tpgid)
	set(19, nice)
	set(20, threads)
	return strings.Join(f, " ")
}

// TestPsStat checks STAT against procps's pr_stat, flag by flag and in
// its order.
func TestPsStat(t *testing.T) {
	tests := []struct {
		name   string
		stat   string
		status string
		want   string
	}{
		{"sleeping", statLine(10, "S", 1, 0, -1, 0, 1), "VmLck:\t       0 kB\n", "S"},
		{"niced", statLine(10, "S", 1, 0, -1, 5, 1), "", "SN"},
		{"high priority", statLine(10, "R", 1, 0, -1, -20, 1), "", "R<"},
		{"pages locked", statLine(10, "S", 1, 0, -1, 0, 1), "VmRSS:\t 100 kB\nVmLck:\t      64 kB\n", "SL"},
		{"session leader", statLine(10, "S", 10, 0, -1, 0, 1), "", "Ss"},
		{"multi-threaded", statLine(10, "S", 1, 0, -1, 0, 4), "", "Sl"},
		{"foreground", statLine(10, "S", 1, 136<<8, 10, 0, 1), "", "S+"},
		{"background", statLine(10, "S", 1, 136<<8, 11, 0, 1), "", "S"},
		{"every flag in procps's order", statLine(10, "S", 10, 136<<8, 10, -5, 3), "VmLck:\t4 kB\n", "S<Lsl+"},
		{"zombie", statLine(10, "Z", 1, 0, -1, 0, 1), "", "Z"},
		{"idle kernel thread", statLine(4, "I", 0, 0, -1, -20, 1), "", "I<"},
	}
	for _, tc := range tests {
		_, f, ok := statFields(tc.stat)
		if !ok {
			t.Fatalf("%s: bad stat line %q", tc.name, tc.stat)
		}
		pid, _ := strconv.Atoi(strings.Fields(tc.stat)[0])
		if got := psStat(pid, f, tc.status); got != tc.want {
			t.Errorf("%s: psStat = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestPsRSSAndCommand(t *testing.T) {
	if got := rssKiB("Name:\tx\nVmRSS:\t    2236 kB\n", 500, 4); got != 2236 {
		t.Errorf("rssKiB(status) = %d, want VmRSS 2236", got)
	}
	if got := rssKiB("Name:\tkthreadd\nThreads:\t1\n", 0, 4); got != 0 {
		t.Errorf("rssKiB(no VmRSS) = %d, want 0", got)
	}
	if got := rssKiB("", 500, 4); got != 2000 {
		t.Errorf("rssKiB(no status) = %d, want stat's 500 pages of 4 KiB", got)
	}
	tests := []struct {
		comm, state string
		args        []string
		want        string
	}{
		{"sleep", "S", []string{"sleep", "300"}, "sleep 300"},
		{"kthreadd", "S", nil, "[kthreadd]"},
		{"sh", "Z", nil, "[sh] <defunct>"},
	}
	for _, tc := range tests {
		if got := psCommand(tc.comm, tc.state, tc.args); got != tc.want {
			t.Errorf("psCommand(%q, %q, %q) = %q, want %q", tc.comm, tc.state, tc.args, got, tc.want)
		}
	}
}

// TestWriteTable: names left-aligned, numbers right-aligned, the command
// unpadded, lines cut at the width and control characters replaced.
func TestWriteTable(t *testing.T) {
	cols := []column{{"USER", false}, {"PID", true}, {"COMMAND", false}}
	rows := [][]string{{"root", "1", "init"}, {"postgres", "12345", "postgres: \x1b[2Jwriter"}}
	for _, tc := range []struct {
		width int
		want  string
	}{
		{0, "USER       PID COMMAND\nroot         1 init\npostgres 12345 postgres: ?[2Jwriter\n"},
		{18, "USER       PID COM\nroot         1 ini\npostgres 12345 pos\n"},
	} {
		var b strings.Builder
		if err := writeTable(&b, cols, rows, tc.width); err != nil {
			t.Fatal(err)
		}
		if b.String() != tc.want {
			t.Errorf("width %d:\n%s\nwant:\n%s", tc.width, b.String(), tc.want)
		}
	}
}

// TestTopScreen lays one interval out for terminals 40, 80 and 200
// characters wide: no line is longer than the terminal (the command is
// cut first, never wrapped), and a redrawn screen holds only the
// processes that fit its height, the cursor's line left free.
func TestTopScreen(t *testing.T) {
	rate := 2048.0
	long := "/usr/lib/jvm/java-21/bin/java -Xmx8g -Dlog4j.configurationFile=/etc/app/log4j2.xml -jar /opt/app/service.jar --port 8443 --threads 64"
	var rows []topRow
	for i := range 30 {
		rows = append(rows, topRow{PID: 1000 + i, User: "postgres", CPU: 12.5, Mem: 3.25, RSS: 123456, ReadPS: &rate, WritePS: &rate, Command: long})
	}
	head := "procgate top - 12:00:00, 301 processes, over 2.0 s, by cpu"
	for _, tc := range []struct {
		width, height int
		rows          int  // process lines shown
		whole         bool // the command is shown whole
	}{
		{40, 0, 30, false},
		{80, 0, 30, false},
		{200, 0, 30, true},
		{80, 24, 20, false},
		{200, 10, 6, true},
		{0, 0, 30, true}, // batch mode: whole lines
	} {
		var b strings.Builder
		if err := writeTopScreen(&b, head, rows, tc.width, tc.height); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
		if got := len(lines) - 3; got != tc.rows {
			t.Errorf("width %d height %d: %d process lines, want %d", tc.width, tc.height, got, tc.rows)
		}
		if tc.height > 0 && len(lines) > tc.height-1 {
			t.Errorf("height %d: %d lines, the screen would scroll", tc.height, len(lines))
		}
		for _, l := range lines {
			if tc.width > 0 && len([]rune(l)) > tc.width {
				t.Errorf("width %d: a line of %d characters: %q", tc.width, len([]rune(l)), l)
			}
		}
		if !strings.HasPrefix(strings.TrimSpace(lines[2]), "PID USER") || !strings.HasPrefix(lines[0], "procgate top - ") {
			t.Errorf("width %d: no summary or header:\n%s", tc.width, strings.Join(lines[:4], "\n"))
		}
		if got := strings.HasSuffix(lines[3], long); got != tc.whole {
			t.Errorf("width %d: command whole = %v, want %v: %q", tc.width, got, tc.whole, lines[3])
		}
		if tc.width >= 80 && !strings.Contains(lines[3], "/usr/lib/jvm") {
			t.Errorf("width %d: the command is cut away entirely: %q", tc.width, lines[3])
		}
	}
}
