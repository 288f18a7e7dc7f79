package procfs

import (
	"errors"
	"os"
	"reflect"
	"testing"

	"github.com/procgate/procgate/kernel"
)

func mustRead(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseStatus(t *testing.T) {
	tests := []struct {
		file string
		want Status
	}{
		{"status-sshd.txt", Status{
			Name: "sshd", State: 'S', Tgid: 812, Pid: 812, PPid: 1,
			CapEff: 0x1ffffffffff, CapPrm: 0x1ffffffffff, HasKthread: true, HasMM: true, NSpid: []int{812},
		}},
		{"status-setuid.txt", Status{
			Name: "passwd (tty)", State: 'R', Tgid: 4242, Pid: 4243, PPid: 4000, TracerPid: 4100,
			UIDs: [4]uint32{1000, 0, 0, 0}, GIDs: [4]uint32{1000, 1000, 1000, 1001},
			Groups: []uint32{4, 24, 27}, CapPrm: 1 << 19, HasMM: true, NSpid: []int{4243, 7},
		}},
		{"status-kthread.txt", Status{
			Name: "kworker/0:1-events", State: 'I', Tgid: 45, Pid: 45, PPid: 2,
			CapEff: 0x1ffffffffff, CapPrm: 0x1ffffffffff, Kthread: true, HasKthread: true, NSpid: []int{45},
		}},
		{"status-zombie.txt", Status{
			Name: "defunct", State: 'Z', Tgid: 900, Pid: 900, PPid: 899,
			UIDs: [4]uint32{1000, 1000, 1000, 1000}, GIDs: [4]uint32{1000, 1000, 1000, 1000}, HasKthread: true,
		}},
	}
	for _, tt := range tests {
		got, err := ParseStatus(mustRead(t, tt.file))
		if err != nil {
			t.Errorf("%s: %v", tt.file, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.file, got, tt.want)
		}
	}
}

func TestParseStatusErrors(t *testing.T) {
	for _, in := range []string{
		"",
		"Name:\tx\nPid:\t1\n", // ids missing
		"Tgid:\t1\nPid:\tx\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nCapPrm:\t0\nCapEff:\t0\n",  // bad pid
		"Tgid:\t1\nPid:\t1\nUid:\t0\t0\t0\nGid:\t0\t0\t0\t0\nCapPrm:\t0\nCapEff:\t0\n",     // 3 uids
		"Tgid:\t1\nPid:\t1\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nCapPrm:\tzz\nCapEff:\t0\n", // bad caps
		"Tgid:\t1\nPid:\t1\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nCapPrm:\t0\nCapEff:\t0\nGroups:\t1 x\n",
		"Tgid:\t1\nPid:\t1\nUid:\t0\t0\t0\t99999999999\nGid:\t0\t0\t0\t0\nCapPrm:\t0\nCapEff:\t0\n",
	} {
		if _, err := ParseStatus([]byte(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseStatus(%q): %v, want a parse error", in, err)
		}
	}
}

// The parser does not allocate beyond the name and the lists.
func TestParseStatusAllocs(t *testing.T) {
	b := mustRead(t, "status-sshd.txt")
	n := testing.AllocsPerRun(100, func() {
		if _, err := ParseStatus(b); err != nil {
			t.Fatal(err)
		}
	})
	if n > 2 {
		t.Errorf("ParseStatus allocates %v times, want at most 2 (name, NSpid)", n)
	}
}

func FuzzParseStatus(f *testing.F) {
	for _, name := range []string{"status-sshd.txt", "status-setuid.txt", "status-kthread.txt", "status-zombie.txt"} {
		f.Add(mustRead(f, name))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseStatus(b)
		if err == nil && s.Pid < 0 {
			t.Errorf("negative pid %d", s.Pid)
		}
	})
}

func TestParseStat(t *testing.T) {
	in := "4243 (a (weird) name) S 4000 4243 4000 34816 4243 4194560 115 0 0 0 0 0 0 0 20 0 1 0 123456 1000 200"
	got, err := ParseStat([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := StatFields{State: 'S', PPid: 4000, Flags: 4194560, StartTime: 123456}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	kt := "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 3 0 0"
	got, err = ParseStat([]byte(kt))
	if err != nil || !got.Kthread() {
		t.Errorf("kthreadd: %+v, %v: want PF_KTHREAD", got, err)
	}
	for _, bad := range []string{"", "1 (x", "1 (x) S 0", "1 (x) S y 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0"} {
		if _, err := ParseStat([]byte(bad)); err == nil {
			t.Errorf("ParseStat(%q): no error", bad)
		}
	}
}

func TestParseNSLink(t *testing.T) {
	if v, err := ParseNSLink([]byte("user:[4026531837]"), "user"); err != nil || v != 4026531837 {
		t.Errorf("got %d, %v", v, err)
	}
	for _, bad := range []string{"", "user:[]", "pid:[4026531837]", "user:[12", "user:[x]", "user[1]"} {
		if _, err := ParseNSLink([]byte(bad), "user"); err == nil {
			t.Errorf("ParseNSLink(%q): no error", bad)
		}
	}
}

func TestParseIDMap(t *testing.T) {
	got, err := ParseIDMap([]byte("         0       1000          1\n         1     100000      65536\n"))
	want := []kernel.IDExtent{{Inside: 0, Outside: 1000, Count: 1}, {Inside: 1, Outside: 100000, Count: 65536}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, %v", got, err)
	}
	if got, err := ParseIDMap(nil); err != nil || got != nil {
		t.Errorf("empty map: %v, %v", got, err)
	}
	for _, bad := range []string{"0 1\n", "0 1 0\n", "0 1 2 3\n", "a b c\n"} {
		if _, err := ParseIDMap([]byte(bad)); err == nil {
			t.Errorf("ParseIDMap(%q): no error", bad)
		}
	}
}

func TestParseLSMList(t *testing.T) {
	got := ParseLSMList([]byte("lockdown,capability,landlock,bpf\n"))
	if want := []string{"lockdown", "capability", "landlock", "bpf"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %v", got)
	}
}

func TestParseMountinfo(t *testing.T) {
	mi := mustRead(t, "mountinfo.txt")
	pm, ok, err := ParseMountinfo(mi, "/proc")
	want := Mount{MountPoint: "/proc", Options: kernel.ProcOptions{HidePID: kernel.HidePIDInvisible, GID: 27, HasGID: true}}
	if err != nil || !ok || pm != want {
		t.Errorf("/proc: %+v, %v, %v; want the last mount, %+v", pm, ok, err, want)
	}
	pm, ok, err = ParseMountinfo(mi, "/mnt/my proc")
	want = Mount{MountPoint: "/mnt/my proc", Options: kernel.ProcOptions{HidePID: kernel.HidePIDPtraceable}, SubsetPID: true}
	if err != nil || !ok || pm != want {
		t.Errorf("/mnt/my proc: %+v, %v, %v; want %+v", pm, ok, err, want)
	}
	if _, ok, _ := ParseMountinfo(mi, "/sys"); ok {
		t.Error("sysfs taken for procfs")
	}
	if _, _, err := ParseMountinfo([]byte("1 2 0:1 / /proc rw - proc proc rw,hidepid=7\n"), "/proc"); err == nil {
		t.Error("hidepid=7 accepted")
	}
	if !HasMount(mi, "/sys/kernel/security", "securityfs") || HasMount(mi, "/sys/kernel/security", "proc") {
		t.Error("hasMount")
	}
}

func TestCgroupV2Path(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		ok             bool
	}{
		{"unified", "0::/system.slice/sshd.service\n", "/system.slice/sshd.service", true},
		{"hybrid", "9:name=systemd:/\n4:memory:/x\n0::/user.slice\n", "/user.slice", true},
		{"root", "0::/\n", "/", true},
		{"v1 only", "9:name=systemd:/\n4:memory:/x\n", "", false},
		{"empty", "", "", false},
	} {
		if got, ok := CgroupV2Path(tc.in); got != tc.want || ok != tc.ok {
			t.Errorf("%s: %q, %v; want %q, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}
