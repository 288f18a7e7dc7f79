package main

import "testing"

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
	tests := map[string]string{"socket:[1]": "sock", "pipe:[2]": "FIFO", "anon_inode:[eventfd]": "a_inode", "/dev/null": "CHR", "/etc/passwd": "REG", "x": "unknown"}
	for in, want := range tests {
		if got := fileType(in); got != want {
			t.Errorf("fileType(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTopRows(t *testing.T) {
	si := &sysInfo{hz: 100, memKiB: 1000, users: map[uint32]string{0: "root"}}
	a, b, c := procKey{10, 500}, procKey{11, 600}, procKey{11, 900}
	prev := map[procKey]topSample{
		a: {pid: 10, start: 500, ticks: 100, io: true, read: 1000, wrt: 0},
		b: {pid: 11, start: 600, ticks: 5000, io: true, read: 0, wrt: 0},
	}
	cur := map[procKey]topSample{
		a: {pid: 10, start: 500, ticks: 300, rssKiB: 100, io: true, read: 5000, wrt: 2000}, // 200 ticks in 2 s
		c: {pid: 11, start: 900, ticks: 50, io: false},                                     // pid 11 reused: from zero, never b's counters
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
	if r := rows[1]; r.CPU != 25 || r.ReadPS != nil {
		t.Errorf("reused pid: %+v (want 25%% from its own start, io unknown)", r)
	}
	if got := optRate(r.ReadPS); got != "2.0K" {
		t.Errorf("optRate = %q", got)
	}
	if got := optRate(nil); got != "-" {
		t.Errorf("optRate(nil) = %q", got)
	}
}
