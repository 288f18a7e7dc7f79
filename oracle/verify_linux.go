package oracle

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/procfs"
)

// observe reads what the kernel holds for pid from /proc/PID/status (no
// ptrace check: fs/proc/array.c:proc_pid_status) and its user namespace.
func observe(pid int, initNS string) (Observed, error) {
	o := Observed{Pid: pid}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return o, fmt.Errorf("read status of %d: %w", pid, err)
	}
	seen := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(val)
		switch key {
		case "Uid", "Gid":
			if len(f) != 4 {
				return o, fmt.Errorf("status of %d: bad %s line %q", pid, key, val)
			}
			dst := &o.UID
			if key == "Gid" {
				dst = &o.GID
			}
			for i := range 4 {
				n, err := strconv.ParseUint(f[i], 10, 32)
				if err != nil {
					return o, fmt.Errorf("status of %d: %s: %w", pid, key, err)
				}
				dst[i] = uint32(n)
			}
			seen++
		case "Groups":
			o.Groups = []uint32{}
			for _, s := range f {
				n, err := strconv.ParseUint(s, 10, 32)
				if err != nil {
					return o, fmt.Errorf("status of %d: Groups: %w", pid, err)
				}
				o.Groups = append(o.Groups, uint32(n))
			}
			seen++
		case "CapEff", "CapPrm":
			if len(f) != 1 {
				return o, fmt.Errorf("status of %d: bad %s line %q", pid, key, val)
			}
			n, err := strconv.ParseUint(f[0], 16, 64)
			if err != nil {
				return o, fmt.Errorf("status of %d: %s: %w", pid, key, err)
			}
			if key == "CapEff" {
				o.CapEff = n
			} else {
				o.CapPrm = n
			}
			seen++
		case "NoNewPrivs":
			o.NoNewPrivs = len(f) == 1 && f[0] == "1"
			seen++
		}
	}
	if seen != 6 {
		return o, fmt.Errorf("status of %d: missing fields (%d of 6 found)", pid, seen)
	}
	nsPath := "/proc/" + strconv.Itoa(pid) + "/ns/user"
	if o.UserNS, err = os.Readlink(nsPath); err != nil {
		return o, fmt.Errorf("user namespace of %d: %w", pid, err)
	}
	o.InitNS = o.UserNS == initNS
	owner, err := nsOwner(nsPath)
	if err != nil {
		return o, fmt.Errorf("user namespace owner of %d: %w", pid, err)
	}
	o.NSOwner = owner
	if o.AppArmor, err = readAppArmor(pid); err != nil {
		return o, err
	}
	if o.SELinux, err = readSELinux(pid); err != nil {
		return o, err
	}
	if exe, err := fileID("/proc/" + strconv.Itoa(pid) + "/exe"); err == nil {
		o.Exe = &exe
	}
	o.Cgroup = cgroupOf(pid)
	if id, err := fileID("/proc/" + strconv.Itoa(pid) + "/ns/pid"); err == nil {
		o.PIDNS = uint32(id.Ino)
	}
	return o, nil
}

// cgroupOf reads pid's cgroup v2 path with each directory's id (what a
// BPF LSM program reads of task->cgroups); nil where it cannot be read
// (no cgroup2 mount showing the whole hierarchy).
func cgroupOf(pid int) []kernel.CgroupNode {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return nil
	}
	path, ok := procfs.CgroupV2Path(string(b))
	mount := procfs.Cgroup2Mount("/sys")
	if !ok || mount == "" {
		return nil
	}
	nodes, err := procfs.CgroupNodes(mount, path)
	if err != nil {
		return nil
	}
	return nodes
}

// fileID names the file at path (following links) as the kernel does.
func fileID(path string) (kernel.FileID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return kernel.FileID{}, err
	}
	return kernel.FileIDOfStat(st.Dev, st.Ino), nil
}

// nsOwner returns the kuid owning the user namespace at path
// (ioctl NS_GET_OWNER_UID, fs/nsfs.c:ns_ioctl).
func nsOwner(path string) (uint32, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	uid, err := unix.IoctlGetUint32(fd, nsGetOwner)
	if err != nil {
		return 0, fmt.Errorf("NS_GET_OWNER_UID: %w", err)
	}
	return uid, nil
}

// verify compares what the kernel holds with what was requested, and
// returns an error listing every difference (this catches P1 and P2).
func verify(role string, want Creds, got Observed) error {
	ns := want.UserNS
	var diffs []string
	cmp := func(name string, w, g uint32) {
		if w != g {
			diffs = append(diffs, fmt.Sprintf("%s want %d got %d", name, w, g))
		}
	}
	wu := [4]uint32{want.RUID, want.EUID, want.SUID, want.FSUID}
	wg := [4]uint32{want.RGID, want.EGID, want.SGID, want.FSGID}
	for i, n := range []string{"ruid", "euid", "suid", "fsuid"} {
		cmp(n, ns.kid(wu[i], false), got.UID[i])
	}
	for i, n := range []string{"rgid", "egid", "sgid", "fsgid"} {
		cmp(n, ns.kid(wg[i], true), got.GID[i])
	}
	wgroups := make([]uint32, 0, len(want.Groups))
	for _, g := range want.Groups {
		wgroups = append(wgroups, ns.kid(g, true))
	}
	slices.Sort(wgroups)
	ggroups := slices.Sorted(slices.Values(got.Groups))
	if !slices.Equal(wgroups, ggroups) {
		diffs = append(diffs, fmt.Sprintf("groups want %v got %v", wgroups, ggroups))
	}
	if want.CapEff != got.CapEff {
		diffs = append(diffs, fmt.Sprintf("CapEff want %#x got %#x", want.CapEff, got.CapEff))
	}
	if want.CapPrm != got.CapPrm {
		diffs = append(diffs, fmt.Sprintf("CapPrm want %#x got %#x", want.CapPrm, got.CapPrm))
	}
	if want.NoNewPrivs != got.NoNewPrivs {
		diffs = append(diffs, fmt.Sprintf("NoNewPrivs want %v got %v", want.NoNewPrivs, got.NoNewPrivs))
	}
	if want.Dumpable != got.Dumpable {
		diffs = append(diffs, fmt.Sprintf("dumpable want %d got %d", want.Dumpable, got.Dumpable))
	}
	switch ns.kind() {
	case NSNone:
		if !got.InitNS {
			diffs = append(diffs, "want the initial user namespace, got "+got.UserNS)
		}
	case NSRoot:
		if got.InitNS || got.NSOwner != 0 {
			diffs = append(diffs, fmt.Sprintf("want a new namespace owned by 0, got %s owned by %d", got.UserNS, got.NSOwner))
		}
	case NSOwned:
		if got.InitNS || got.NSOwner != ns.Owner {
			diffs = append(diffs, fmt.Sprintf("want a new namespace owned by %d, got %s owned by %d", ns.Owner, got.UserNS, got.NSOwner))
		}
	}
	if !appArmorMatches(want.AppArmor, got.AppArmor) {
		diffs = append(diffs, fmt.Sprintf("apparmor want %q got %q", want.AppArmor, got.AppArmor))
	}
	if !selinuxMatches(want.SELinux, got.SELinux) {
		diffs = append(diffs, fmt.Sprintf("selinux want %q got %q", want.SELinux, got.SELinux))
	}
	if len(diffs) > 0 {
		return fmt.Errorf("%s pid %d: kernel credentials differ from the request: %s", role, got.Pid, strings.Join(diffs, "; "))
	}
	return nil
}
