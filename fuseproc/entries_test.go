package fuseproc

import (
	"strings"
	"syscall"
	"testing"

	"github.com/procgate/procgate/policy"
)

// TestEntries: the served entries are the catalog's, with the kernel's
// modes, and what tools need is there.
func TestEntries(t *testing.T) {
	for _, tc := range []struct {
		name string
		item policy.Item
		mode uint32
	}{
		{"status", policy.ItemStatus, syscall.S_IFREG | 0o444},
		{"stat", policy.ItemStat, syscall.S_IFREG | 0o444},
		{"environ", policy.ItemEnviron, syscall.S_IFREG | 0o400},
		{"mem", policy.ItemMem, syscall.S_IFREG | 0o600},
		{"exe", policy.ItemExe, syscall.S_IFLNK | 0o777},
		{"fd", policy.ItemFd, syscall.S_IFDIR | 0o500},
		{"fdinfo", policy.ItemFdinfo, syscall.S_IFDIR | 0o555},
		{"ns", policy.ItemNS, syscall.S_IFDIR | 0o511},
		{"mounts", policy.ItemMountinfo, syscall.S_IFREG | 0o444},
	} {
		e := byName[tc.name]
		if e == nil {
			t.Errorf("%s is not served", tc.name)
			continue
		}
		if e.item != tc.item || e.mode() != tc.mode {
			t.Errorf("%s: item %v mode %o, want %v %o", tc.name, e.item, e.mode(), tc.item, tc.mode)
		}
	}
	if byName["mem"].denied != syscall.EACCES || byName["stack"].denied != syscall.EPERM {
		t.Errorf("kernel errnos: mem %v, stack %v", byName["mem"].denied, byName["stack"].denied)
	}
	for _, n := range []string{"stat_full", "fd_count", "fd/N", "attach"} {
		if byName[n] != nil {
			t.Errorf("%s is served", n)
		}
	}
}

func TestMountsOf(t *testing.T) {
	info := "22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:5 - proc proc rw,hidepid=2\n" +
		"30 22 0:40 / /x ro,relatime - fuse.procgate procgate ro,user_id=0,group_id=0,allow_other\n"
	want := "proc /proc proc rw,nosuid,nodev,noexec,relatime,hidepid=2 0 0\n" +
		"procgate /x fuse.procgate ro,relatime,user_id=0,group_id=0,allow_other 0 0\n"
	if got := string(mountsOf([]byte(info))); got != want {
		t.Errorf("mountsOf:\n%s\nwant\n%s", got, want)
	}
}

func FuzzMountsOf(f *testing.F) {
	f.Add([]byte("22 1 0:21 / /proc rw,nosuid shared:5 - proc proc rw\n"))
	f.Add([]byte("- - - - - - - -\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		out := mountsOf(b)
		if strings.Count(string(out), "\n") > strings.Count(string(b), "\n")+1 {
			t.Fatalf("more lines out than in: %q", out)
		}
	})
}

// FuzzPathNames: a name is a pid only in /proc's own spelling, and no
// name crashes the parser.
func FuzzPathNames(f *testing.F) {
	for _, s := range []string{"1", "01", "+1", "-1", "0", "4194304", "4194305", "99999999999", "self", "..", "\x00", strings.Repeat("9", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		pid, ok := parsePID(s)
		if !ok {
			return
		}
		if pid <= 0 || s[0] == '0' || s[0] == '+' {
			t.Fatalf("%q parsed as pid %d", s, pid)
		}
		if got := strings.TrimLeft(s, "0123456789"); got != "" {
			t.Fatalf("%q parsed as pid %d", s, pid)
		}
	})
}

func TestParseHidePID(t *testing.T) {
	for in, want := range map[string]HidePID{"off": HidePIDOff, "0": HidePIDOff, "invisible": HidePIDInvisible, "2": HidePIDInvisible, "ptraceable": HidePIDPtraceable, "4": HidePIDPtraceable} {
		if got, err := ParseHidePID(in); err != nil || got != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	if _, err := ParseHidePID("1"); err == nil {
		t.Error("hidepid=1 accepted")
	}
}
