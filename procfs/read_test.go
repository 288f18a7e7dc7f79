package procfs_test

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/procfs"
)

// One behaviour for every label: the mode suffix of an AppArmor label is
// dropped (selectors name profiles), trailing newlines and NULs too.
func TestParseLabel(t *testing.T) {
	tests := []struct{ in, want string }{
		{"unconfined\n", "unconfined"},
		{"/usr/sbin/cupsd (enforce)\n", "/usr/sbin/cupsd"},
		{"firefox (complain)\x00", "firefox"},
		{"lxc-container-default-cgroupns (enforce)", "lxc-container-default-cgroupns"},
		{"system_u:system_r:sshd_t:s0-s0:c0.c1023\x00", "system_u:system_r:sshd_t:s0-s0:c0.c1023"},
		{"_\n", "_"},
		{"", ""},
		{" (enforce)", " (enforce)"}, // no profile name before the suffix: kept
	}
	for _, tc := range tests {
		if got := procfs.ParseLabel([]byte(tc.in)); got != tc.want {
			t.Errorf("ParseLabel(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestReadLabel(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "current"), []byte("/usr/bin/man (enforce)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if got := procfs.ReadLabel(fd, "current", nil); got != "/usr/bin/man" {
		t.Errorf("ReadLabel = %q", got)
	}
	if got := procfs.ReadLabel(fd, "missing", nil); got != "" {
		t.Errorf("ReadLabel(missing) = %q", got)
	}
}

// ReadFile returns at most max bytes, whatever the buffer it is given.
func TestReadFileBounded(t *testing.T) {
	dir := t.TempDir()
	content := bytes.Repeat([]byte("0123456789"), 1000)
	if err := os.WriteFile(filepath.Join(dir, "f"), content, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("f", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	for _, tc := range []struct {
		name      string
		bufCap    int
		max, want int
	}{
		{"whole, growing", 0, 1 << 20, len(content)},
		{"cut, growing", 0, 777, 777},
		{"cut, a bigger buffer", 8192, 100, 100},
		{"whole, a bigger buffer", 1 << 16, 1 << 20, len(content)},
	} {
		b, err := procfs.ReadFile(fd, "f", make([]byte, 0, tc.bufCap), tc.max)
		if err != nil || !bytes.Equal(b, content[:tc.want]) {
			t.Errorf("%s: %d bytes, %v; want %d", tc.name, len(b), err, tc.want)
		}
	}
	if _, err := procfs.ReadFile(fd, "link", nil, 100); err == nil {
		t.Error("ReadFile followed a final symlink")
	}
}

// The mount options and the module list come from under the roots given.
func TestRootMountinfoAndLSMs(t *testing.T) {
	dir := t.TempDir()
	proc, sys := filepath.Join(dir, "proc"), filepath.Join(dir, "sys")
	for path, content := range map[string]string{
		filepath.Join(proc, "self/mountinfo"):       "22 27 0:21 / " + proc + " rw - proc proc rw,hidepid=invisible,gid=27\n",
		filepath.Join(sys, "kernel/security/lsm"):   "lockdown,capability,landlock,yama,apparmor\n",
		filepath.Join(dir, "other/kernel/security"): "",
	} {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r, err := procfs.Open(proc)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, m, found, err := r.Mountinfo()
	want := procfs.Mount{MountPoint: proc, Options: kernel.ProcOptions{HidePID: kernel.HidePIDInvisible, GID: 27, HasGID: true}}
	if err != nil || !found || m != want {
		t.Errorf("Mountinfo = %+v, %v, %v; want %+v", m, found, err, want)
	}
	lsms, err := procfs.ReadLSMs(sys)
	if want := []string{"lockdown", "capability", "landlock", "yama", "apparmor"}; err != nil || !reflect.DeepEqual(lsms, want) {
		t.Errorf("ReadLSMs = %v, %v; want %v", lsms, err, want)
	}
	if _, err := procfs.ReadLSMs(filepath.Join(dir, "other")); err == nil {
		t.Error("ReadLSMs without the file succeeded")
	}
}
