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
