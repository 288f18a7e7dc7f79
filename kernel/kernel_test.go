package kernel_test

import (
	"errors"
	"io/fs"
	"strings"
	"syscall"
	"testing"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/capability"
)

func TestParseMode(t *testing.T) {
	tests := []struct {
		in      string
		want    kernel.Mode
		wantErr string
	}{
		{"read_fscreds", kernel.ReadFSCreds, ""},
		{"read_realcreds", kernel.ReadRealCreds, ""},
		{"attach_fscreds", kernel.AttachFSCreds, ""},
		{"attach_realcreds,noaudit", kernel.AttachRealCreds | kernel.ModeNoAudit, ""},
		{"PTRACE_MODE_READ_FSCREDS", kernel.ReadFSCreds, ""},
		{"read", 0, "unknown mode"},
		{"read_fscreds,quiet", 0, "unknown mode flag"},
	}
	for _, tc := range tests {
		got, err := kernel.ParseMode(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseMode(%q) error = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseMode(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		if back, err := kernel.ParseMode(got.String()); err != nil || back != got {
			t.Errorf("round trip %v: %v, %v", got, back, err)
		}
	}
}

func TestModeWellFormed(t *testing.T) {
	for _, tc := range []struct {
		m    kernel.Mode
		want bool
	}{
		{kernel.ReadFSCreds, true},
		{kernel.AttachRealCreds | kernel.ModeNoAudit, true},
		{kernel.ModeRead, false},
		{kernel.ModeAttach | kernel.ModeFSCreds | kernel.ModeRealCreds, false},
	} {
		if got := tc.m.CredsWellFormed(); got != tc.want {
			t.Errorf("%v.CredsWellFormed() = %v, want %v", tc.m, got, tc.want)
		}
	}
}

func TestParseCap(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want kernel.Cap
		err  string
	}{
		{"sys_ptrace", kernel.CapSysPtrace, ""},
		{"CAP_SYS_PTRACE", kernel.CapSysPtrace, ""},
		{"perfmon", kernel.CapPerfmon, ""},
		{"40", kernel.CapCheckpointRestore, ""},
		{"sys_ptrac", 0, `did you mean "sys_ptrace"`},
		{"41", 0, "unknown capability"},
	} {
		got, err := kernel.ParseCap(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseCap(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseCap(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	if s := kernel.CapsOf(kernel.CapSysPtrace, kernel.CapNetRaw).String(); s != "net_raw,sys_ptrace" {
		t.Errorf("CapSet.String = %q", s)
	}
}

func TestReleaseFeatures(t *testing.T) {
	for _, tc := range []struct {
		rel                                  string
		userDumpable, perfmon, esrch, fdinfo bool
	}{
		{"6.1.0-56-amd64", false, false, false, false},
		{"6.12.30", false, false, false, true},
		{"6.12.59", false, false, true, true},
		{"6.18.20", false, true, true, true},
		{"6.18.31", true, true, true, true},
		{"6.18.44-fc-v657", true, true, true, true},
		{"7.1", true, true, true, true},
		{"5.10.0", false, false, false, false},
	} {
		r, err := kernel.ParseRelease(tc.rel)
		if err != nil {
			t.Fatal(err)
		}
		f := kernel.FeaturesFor(r)
		if f.UserDumpable != tc.userDumpable || f.PerfmonMMAccess != tc.perfmon || f.ProcMemESRCH != tc.esrch || f.FdinfoPermission != tc.fdinfo {
			t.Errorf("FeaturesFor(%s) = %+v", tc.rel, f)
		}
	}
	for _, bad := range []string{"", "6", "six.1", "6.-1.2", "1.2.3.4"} {
		if _, err := kernel.ParseRelease(bad); err == nil {
			t.Errorf("ParseRelease(%q) accepted", bad)
		}
	}
}

func TestErrnoMatchesSyscallErrno(t *testing.T) {
	if !errors.Is(kernel.EACCES, syscall.EACCES) || !errors.Is(kernel.EPERM, fs.ErrPermission) {
		t.Error("kernel errnos must match syscall.Errno and fs.ErrPermission")
	}
	if errors.Is(kernel.EPERM, syscall.EACCES) {
		t.Error("EPERM matched EACCES")
	}
	if kernel.EACCES.String() != "EACCES" || kernel.OK.String() != "" {
		t.Error("errno names")
	}
}

// TestHasCapIn covers security/commoncap.c:cap_capable's namespace walk.
func TestHasCapIn(t *testing.T) {
	init := kernel.NewInitUserNS()
	child := &kernel.UserNS{Name: "child", Parent: init, Level: 1, Owner: 1000}
	grand := &kernel.UserNS{Name: "grand", Parent: child, Level: 2, Owner: 5}
	other := &kernel.UserNS{Name: "other", Parent: init, Level: 1, Owner: 2000}
	none := kernel.Cred{EUID: 1000, UserNS: init}
	ptrace := kernel.Cred{EUID: 0, UserNS: init, CapEffective: kernel.CapsOf(kernel.CapSysPtrace), CapPermitted: kernel.CapsOf(kernel.CapSysPtrace)}
	permittedOnly := kernel.Cred{EUID: 0, UserNS: init, CapPermitted: kernel.CapsOf(kernel.CapSysPtrace)}
	inChild := kernel.Cred{EUID: 5, UserNS: child, CapEffective: kernel.CapSetAll, CapPermitted: kernel.CapSetAll}
	for _, tc := range []struct {
		name string
		cred kernel.Cred
		ns   *kernel.UserNS
		want bool
	}{
		{"no caps in init", none, init, false},
		{"owner of child has all caps in it", none, child, true},
		{"owner of child has all caps in its descendants", none, grand, true},
		{"not the owner of another namespace", none, other, false},
		{"effective cap in init", ptrace, init, true},
		{"effective cap reaches child namespaces", ptrace, other, true},
		{"permitted-only cap does not count", permittedOnly, init, false},
		{"full caps in child do not reach init", inChild, init, false},
		{"full caps in child do not reach a sibling", inChild, other, false},
		{"full caps in child reach its descendant", inChild, grand, true},
	} {
		if got := tc.cred.HasCapIn(tc.ns, kernel.CapSysPtrace); got != tc.want {
			t.Errorf("%s: HasCapIn = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestDumpOwner(t *testing.T) {
	init := kernel.NewInitUserNS()
	ns := &kernel.UserNS{Name: "c", Parent: init, Level: 1, Owner: 1000, Group: 1000,
		UIDMap: []kernel.IDExtent{{0, 1000, 1}}, GIDMap: []kernel.IDExtent{{0, 1000, 1}}}
	cred := kernel.Cred{UID: 1001, EUID: 1002, GID: 1001, EGID: 1003, UserNS: init}
	for _, tc := range []struct {
		name string
		task kernel.Task
		perm uint16
		dir  bool
		uid  kernel.KUID
		gid  kernel.KGID
	}{
		{"dumpable: euid/egid", kernel.Task{Cred: cred, MM: &kernel.MM{Dumpable: 1, UserNS: init}}, 0o400, false, 1002, 1003},
		{"non-dumpable: global root", kernel.Task{Cred: cred, MM: &kernel.MM{Dumpable: 0, UserNS: init}}, 0o400, false, 0, 0},
		{"non-dumpable 0555 dir keeps euid", kernel.Task{Cred: cred, MM: &kernel.MM{Dumpable: 0, UserNS: init}}, 0o555, true, 1002, 1003},
		{"non-dumpable 0500 dir is root's", kernel.Task{Cred: cred, MM: &kernel.MM{Dumpable: 2, UserNS: init}}, 0o500, true, 0, 0},
		{"non-dumpable in a namespace: its root", kernel.Task{Cred: cred, MM: &kernel.MM{Dumpable: 0, UserNS: ns}}, 0o400, false, 1000, 1000},
		{"no mm: global root", kernel.Task{Cred: cred, State: kernel.Zombie}, 0o444, false, 0, 0},
		{"kernel thread: global root even for 0555", kernel.Task{Cred: cred, Kthread: true}, 0o555, true, 0, 0},
	} {
		uid, gid := kernel.DumpOwner(&tc.task, tc.perm, tc.dir)
		if uid != tc.uid || gid != tc.gid {
			t.Errorf("%s: DumpOwner = %d:%d, want %d:%d", tc.name, uid, gid, tc.uid, tc.gid)
		}
	}
}

func TestLookupEntry(t *testing.T) {
	for in, want := range map[string]string{
		"environ": "environ", "/maps": "maps", "fd/": "fd", "fd/3": "fd/N", "fdinfo/12": "fdinfo/N",
		"ns/user": "ns/NAME", "map_files/7f00-7f10": "map_files/RANGE", "map_files/7f00-7f10:open": "map_files/RANGE:open",
		"attr/current": "attr/NAME", "": ".",
	} {
		e, err := kernel.LookupEntry(in)
		if err != nil || e.Name != want {
			t.Errorf("LookupEntry(%q) = %v, %v; want %s", in, e, err, want)
		}
	}
	if _, err := kernel.LookupEntry("envron"); err == nil || !strings.Contains(err.Error(), `"environ"`) {
		t.Errorf("misspelt entry: %v", err)
	}
	if _, err := kernel.LookupEntry("fd/x"); err == nil {
		t.Error("fd/x accepted")
	}
}

func TestValidate(t *testing.T) {
	w := kernel.NewWorld(kernel.DefaultRelease)
	if err := w.Validate(); err == nil || !strings.Contains(err.Error(), "capability module") {
		t.Errorf("missing capability module: %v", err)
	}
	w.LSMs = []kernel.LSM{capability.New()}
	bad := &kernel.Task{Name: "bad", PID: 10, TGID: 10,
		Cred: kernel.Cred{UserNS: w.Init, CapEffective: kernel.CapsOf(kernel.CapSysAdmin)}}
	w.AddTask(bad)
	if err := w.Validate(); err == nil || !strings.Contains(err.Error(), "not a subset of permitted") {
		t.Errorf("effective not within permitted: %v", err)
	}
}

// TestModeSelectorWarn: a mode without exactly one creds selector is
// denied with EPERM at the first step, even within one thread group.
func TestModeSelectorWarn(t *testing.T) {
	w, c, _ := benchWorld(t)
	for _, m := range []kernel.Mode{kernel.ModeRead, kernel.ModeAttach | kernel.ModeFSCreds | kernel.ModeRealCreds} {
		d := w.ExplainPtraceMayAccess(c, c, m)
		if d.Allowed || d.Errno != kernel.EPERM || d.Layer != kernel.LayerMode {
			t.Errorf("mode %v: %+v", m, d)
		}
	}
}
